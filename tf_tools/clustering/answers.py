"""Clusters of equivalent answers, without comparing all pairs and mostly without SymPy.

A candidate answer (in sample order) is placed by, in turn:

1. its canonical key (normalised text, or the exact value of a number: ``1/2``,
   ``\\frac{1}{2}`` and ``0.5`` share one) looked up in a dict: equal keys imply equal;
2. one representative per existing cluster: two different exact numbers are different
   without a call; otherwise ``fast_equal``; a pair it cannot decide is told apart by its
   *form* when it can be (two constants with different values, ``values.py``, or plain words
   against a constant), and only the rest goes to
3. math-verify, in the killable ``VerifyPool`` (never SymPy in this process), after checking
   once per answer that math-verify can read it at all (one it cannot read equals nothing
   through math-verify, so its pairs need no call). Pair results are cached for the run. A
   comparison that times out or fails counts as "not equal" and is counted.

The representative plays the gold's part in every comparison (it is the earlier sample).
"""

from __future__ import annotations

import math
import re
from collections import Counter, OrderedDict
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from tf_tools.clustering.values import constant_value
from tf_tools.grading.equivalence import compact, fast_equal, normalize, to_number


@dataclass(frozen=True)
class ClusterConfig:
    id_key: str = "id"
    unsorted: bool = False
    tolerance: float = 1e-6
    workers: int = 2
    timeout: float = 5.0  # seconds per math-verify comparison; then the worker is killed
    memory_mb: int = 4096
    math_verify: bool = True  # False: pairs the fast paths cannot decide count as different
    shortcuts: bool = True  # False: no decisions by value / form (every undecided pair to math-verify)
    keep_going: bool = False


@dataclass
class ClusterStats:
    problems: int = 0
    trajectories: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)
    clustered: int = 0  # answers clustered
    clusters: int = 0
    key_hits: int = 0  # answers placed by the canonical key, no comparison
    answers_mv: int = 0  # answers whose placement needed math-verify
    checks: int = 0  # answer pairs compared (fast_equal; math-verify when it cannot decide)
    number_decided: int = 0  # pairs of two different exact numbers: not compared at all
    form_decided: int = 0  # pairs fast_equal could not decide, told apart by value or form
    mv_checks: int = 0  # pairs compared by math-verify (in the pool)
    mv_cached: int = 0  # pairs math-verify had already compared earlier in the run
    mv_reads: int = 0  # answers checked once for whether math-verify can read them
    mv_unreadable: int = 0  # pairs settled: math-verify cannot read one side
    timeouts: int = 0  # math-verify calls that ran out of time (= not equal)
    mv_failures: int = 0  # math-verify crashed (= not equal)
    all_pairs: int = 0  # what naive all-pairs clustering would compare
    failed: int = 0

    @property
    def mv_calls(self) -> int:
        """Every task sent to math-verify: pair comparisons and readability checks."""
        return self.mv_checks + self.mv_reads


# --------------------------------------------------------------------------- forms


def canonical_key(pred: str) -> tuple[str, Any]:
    """A key such that equal keys imply ``fast_equal`` says equal (so no comparison is run)."""
    norm = normalize(pred)
    if not norm.text:
        return ("raw", pred.strip())
    num = to_number(norm.text)
    if num is not None:
        return ("pct" if norm.percent else "num", num.value)
    return ("text", compact(norm.text))


_WORDS_RE = re.compile(r"^[A-Za-z][A-Za-z \-']{2,}$")
_NOT_CONSTANT_LETTER_RE = re.compile(r"[a-df-hj-zA-DF-HJ-Z]")  # letters other than e, i


@dataclass(frozen=True)
class Form:
    """What a cheap look at an answer tells: exact number, constant value, plain words."""

    exact: Fraction | None  # an exact, non-percent number
    value: float | None  # a constant we can evaluate
    decimal: bool  # written with a decimal point (may be rounded)
    words: bool  # plain words with a letter that is not a constant (e, i)


def form_of(pred: str) -> Form:
    norm = normalize(pred)
    text = norm.text
    if not text or norm.percent:
        return Form(None, None, False, False)
    num = to_number(text)
    if num is not None:
        return Form(num.value if num.exact else None, float(num.value), not num.exact, False)
    words = bool(_WORDS_RE.match(text) and _NOT_CONSTANT_LETTER_RE.search(text))
    return Form(None, None if words else constant_value(text), "." in text, words)


def forms_differ(a: Form, b: Form) -> bool:
    """True when the two answers cannot be equal: different constants, or words vs a constant.

    Decimals may be rounded answers: they must differ by more than 1e-4 (relative);
    math-verify itself compares numbers to 6 decimals.
    """
    if a.value is not None and b.value is not None:
        margin = 1e-4 if a.decimal or b.decimal else 1e-9
        return abs(a.value - b.value) > margin * max(1.0, abs(a.value), abs(b.value))
    return (a.words and b.value is not None) or (b.words and a.value is not None)


# --------------------------------------------------------------------------- equivalence


class Equivalence:
    """Answer equivalence for clustering: fast paths here, math-verify in a killable pool."""

    def __init__(self, cfg: ClusterConfig, stats: ClusterStats, cache_size: int = 100_000) -> None:
        self.cfg = cfg
        self.stats = stats
        self.cache_size = cache_size
        self._pool: Any = None
        self._seq = 0
        self._readable: OrderedDict[str, bool] = OrderedDict()
        self._pairs: OrderedDict[tuple[str, str], bool] = OrderedDict()

    def fast(self, rep: str, cand: str) -> bool | None:
        self.stats.checks += 1
        res = fast_equal(rep, cand, self.cfg.tolerance)
        return None if res is None else res.equal

    def slow_many(self, pairs: list[tuple[str, str]]) -> list[bool]:
        """math-verify on each (rep, cand) pair, in parallel; timeouts and failures are False."""
        if not pairs or not self.cfg.math_verify:
            return [False] * len(pairs)
        unknown = sorted({a for pair in pairs for a in pair if a not in self._readable})
        self.stats.mv_reads += len(unknown)
        for answer, (status, _equal) in zip(unknown, self._run([(a, a) for a in unknown]), strict=True):
            # a timeout or crash says nothing about readability: compare as usual
            _remember(self._readable, answer, status != "gold_unparseable", self.cache_size)
            self.stats.timeouts += status == "timeout"
        equal = [False] * len(pairs)
        todo = []
        for i, pair in enumerate(pairs):
            if not (self._readable.get(pair[0], True) and self._readable.get(pair[1], True)):
                self.stats.mv_unreadable += 1
            elif pair in self._pairs:
                self.stats.mv_cached += 1
                equal[i] = self._pairs[pair]
            else:
                todo.append(i)
        self.stats.mv_checks += len(todo)
        for i, (status, eq) in zip(todo, self._run([pairs[i] for i in todo]), strict=True):
            if status == "timeout":
                self.stats.timeouts += 1
            elif status != "ok":
                self.stats.mv_failures += 1
            equal[i] = status == "ok" and bool(eq)
            _remember(self._pairs, pairs[i], equal[i], self.cache_size)
        return equal

    def _run(self, pairs: list[tuple[str, str]]) -> list[tuple[str, bool | None]]:
        """(status, equal) of each (gold, pred) pair from the pool, in order."""
        if not pairs:
            return []
        if self._pool is None:
            from tf_tools.grading.pool import VerifyPool

            self._pool = VerifyPool(self.cfg.workers, self.cfg.timeout, self.cfg.memory_mb)
        first = self._seq
        results: dict[int, tuple[str, bool | None]] = {}
        for gold, pred in pairs:
            task = (self._seq, (gold,), pred)
            self._seq += 1
            while not self._pool.submit(task):
                self._take(results)
        while len(results) < len(pairs):
            self._take(results)
        return [results[first + i] for i in range(len(pairs))]

    def _take(self, results: dict[int, tuple[str, bool | None]]) -> None:
        for seq, status, equal, _reason, _seconds in self._pool.collect():
            results[seq] = (status, equal)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None


def _remember(cache: OrderedDict, key: Any, value: bool, size: int) -> None:
    cache[key] = value
    if len(cache) > size:
        cache.popitem(last=False)


def cluster_answers(preds: list[str], eq: Equivalence) -> list[list[int]]:
    """Partition ``preds`` (in sample order) into clusters of equivalent answers.

    Returns lists of indices into ``preds`` in order of creation; each cluster's first
    member is its representative. Greedy against one representative per cluster, which
    gives the same partition as comparing all pairs when equivalence is transitive.
    """
    clusters: list[list[int]] = []
    reps: list[tuple[str, Form]] = []
    by_key: dict[Hashable, int] = {}
    stats = eq.stats
    for i, pred in enumerate(preds):
        key = canonical_key(pred)
        found = by_key.get(key)
        if found is not None:
            stats.key_hits += 1
            clusters[found].append(i)
            continue
        form = form_of(pred)
        undecided: list[int] = []
        for c, (rep, rep_form) in enumerate(reps):
            if form.exact is not None and rep_form.exact is not None:
                stats.number_decided += 1  # two different exact numbers (equal ones share a key)
                continue
            verdict = eq.fast(rep, pred)
            if verdict:
                found = c
                break
            if verdict is None:
                if eq.cfg.shortcuts and forms_differ(rep_form, form):
                    stats.form_decided += 1
                else:
                    undecided.append(c)
        if found is None and undecided:
            stats.answers_mv += 1
            equal = eq.slow_many([(reps[c][0], pred) for c in undecided])
            found = next((c for c, e in zip(undecided, equal, strict=True) if e), None)
        if found is None:
            found = len(clusters)
            clusters.append([])
            reps.append((pred, form))
        clusters[found].append(i)
        by_key.setdefault(key, found)
    return clusters


def entropy(sizes: Iterable[int]) -> float:
    """Shannon entropy in nats of the distribution given by cluster sizes (0 for none)."""
    sizes = [s for s in sizes if s > 0]
    total = sum(sizes)
    if not total:
        return 0.0
    return -sum(s / total * math.log(s / total) for s in sizes) + 0.0
