"""Answer equivalence for tf-cluster, one pair at a time: ``Equivalence`` (below).

It does not choose which pairs to compare: ``answers.py`` (``cluster_answers``) does.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from tf_tools.answers.forms import fast_decision
from tf_tools.answers.pool import VerifyPool

#: an answer's fingerprint (``worker.fingerprint``): items ``(size, values)``, and a scale
Item = tuple[int, tuple[complex, ...], bool]
Print = tuple[tuple[Item, ...], float]

if TYPE_CHECKING:  # annotations only: answers.py imports this module
    from tf_tools.clustering.answers import ClusterConfig, ClusterStats


class Equivalence:
    """Answer equivalence for clustering: fast paths here, math-verify in a killable pool.

    math-verify comparisons are asynchronous (``submit`` / ``results``) so that the
    clustering can keep every worker busy. Before a problem's pairs are submitted, each of
    its non-numeric answers is checked once per run (``prefetch``) for whether math-verify
    reads a SymPy expression from it: one it cannot read ("___", "Cannot be determined")
    equals nothing through math-verify, as gold ("gold does not parse") or as prediction (a
    string never equals an expression), so its pairs need no call. The same reading brings
    back the answer's *fingerprint* (``worker.fingerprint``: the values of its expressions,
    every symbol at one fixed point; a plain number's is taken here): two answers whose
    fingerprints are far apart are not equal to math-verify either, so their pair needs no
    call. One reading per answer instead of one call per pair. Pair results are cached.
    """

    def __init__(self, cfg: ClusterConfig, stats: ClusterStats, cache_size: int = 100_000) -> None:
        self.cfg = cfg
        self.stats = stats
        self.cache_size = cache_size
        self._pool: Any = None
        self._seq = 0
        self._readable: OrderedDict[str, bool] = OrderedDict()
        self._prints: OrderedDict[str, Print | None] = OrderedDict()
        self._pairs: OrderedDict[tuple[str, str], bool] = OrderedDict()
        self._reading: dict[int, str] = {}  # seq -> answer being checked for readability
        self._comparing: dict[int, tuple[str, str]] = {}  # seq -> pair being compared
        self._ready: dict[int, bool] = {}

    def fast(self, rep: str, cand: str) -> bool | None:
        self.stats.checks += 1
        return fast_decision(rep, cand, self.cfg.tolerance)

    def prefetch(self, answers: Iterable[str]) -> None:
        """Check, in parallel and once per run, whether math-verify can read each answer."""
        if not self.cfg.math_verify:
            return
        for answer in dict.fromkeys(a for a in answers if a not in self._readable):
            value = plain_value(answer)
            if value is not None:  # "12", "-0.5", "3/10": no call needed
                _remember(self._readable, answer, True, self.cache_size)
                _remember(self._prints, answer, (((0, (value,), False),), max(1.0, abs(value))), self.cache_size)
                continue
            self.stats.mv_reads += 1
            self._reading[self._send(answer, None)] = answer
        while self._reading:
            self._collect()

    def submit(self, rep: str, cand: str) -> tuple[bool | None, int]:
        """(answer, -1) when no call is needed, else (None, ticket) for ``results``."""
        if not self.cfg.math_verify:
            return False, -1
        if not (self._readable.get(rep, True) and self._readable.get(cand, True)):
            self.stats.mv_unreadable += 1
            return False, -1
        if self.cfg.shortcuts and far_apart(self._prints.get(rep), self._prints.get(cand)):
            self.stats.print_decided += 1
            return False, -1
        cached = self._pairs.get((rep, cand))
        if cached is not None:
            self.stats.mv_cached += 1
            return cached, -1
        self.stats.mv_checks += 1
        ticket = self._send(rep, cand)
        self._comparing[ticket] = (rep, cand)
        return None, ticket

    def results(self) -> dict[int, bool]:
        """Comparisons finished since the last call (waiting briefly for one): ticket -> equal."""
        if not self._ready and self._comparing:
            self._collect()
        ready, self._ready = self._ready, {}
        return ready

    def _send(self, gold: str, pred: str | None) -> int:
        if self._pool is None:
            self._pool = VerifyPool(self.cfg.workers, self.cfg.timeout, self.cfg.memory_mb)
        seq = self._seq
        self._seq += 1
        while not self._pool.submit((seq, (gold,), pred)):
            self._collect()
        return seq

    def _collect(self) -> None:
        for seq, status, equal, _reason, seconds in self._pool.collect(block=0.05):
            self.stats.timeouts += status == "timeout"
            self.stats.mv_seconds += seconds
            if seq in self._reading:
                # a timeout or crash says nothing about readability: compare as usual
                answer = self._reading.pop(seq)
                _remember(self._readable, answer, status != "gold_unparseable", self.cache_size)
                _remember(self._prints, answer, equal if status == "ok" else None, self.cache_size)
                continue
            pair = self._comparing.pop(seq, None)
            if pair is None:
                continue
            self.stats.mv_failures += status not in ("ok", "timeout")
            same = status == "ok" and bool(equal)
            _remember(self._pairs, pair, same, self.cache_size)
            self._ready[seq] = same

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None


_PLAIN_NUMBER_RE = re.compile(r"[+-]?(?:\d{1,15}(?:\.\d{1,15})?|\d{1,15}/\d{1,15}|\\frac\{\d{1,15}\}\{\d{1,15}\})")


def plain_value(answer: str) -> complex | None:
    """The value of an answer that can only be read one way ("12", "-0.5", "3/10",
    "\\frac{3}{10}"), as math-verify reads it; None for anything else ("1,000", "2 3/4")."""
    text = answer.strip()
    if not _PLAIN_NUMBER_RE.fullmatch(text):
        return None
    sign = -1 if text.startswith("-") else 1
    body = text.lstrip("+-")
    if body.startswith("\\frac"):
        top, bottom = body[6:-1].split("}{")
        body = f"{top}/{bottom}"
    if "/" in body:
        top, bottom = body.split("/")
        return None if int(bottom) == 0 else complex(sign * int(top) / int(bottom))
    return complex(sign * float(body))


def far_apart(a: Print | None, b: Print | None) -> bool:
    """Whether math-verify would find no two parsed items of the answers equal, by their
    fingerprints (``worker.fingerprint``). Two items differ when their sizes differ (an
    expression is a set of one; math-verify compares sets and tuples of different sizes as
    different) or when some element of one is far from every element of the other: by more
    than 1e-4 of the largest value or scale of the two (math-verify rounds decimals to 6
    places and chops a difference that is tiny next to the parts it came from). An
    equation is compared only with an expression (math-verify takes its right-hand side,
    or calls them different); with a set or another equation its items say nothing."""
    if a is None or b is None or not a[0] or not b[0]:
        return False
    scale = max(a[1], b[1])

    def far(x: complex, y: complex) -> bool:
        return abs(x - y) > 1e-4 * max(scale, abs(x), abs(y))

    def apart(p: Item, q: Item) -> bool:
        if (p[2] and (q[2] or q[0])) or (q[2] and p[0]):
            return False  # an equation against an equation or a set: other rules apply
        if max(p[0], 1) != max(q[0], 1):
            return True
        return (any(all(far(x, y) for y in q[1]) for x in p[1])
                or any(all(far(x, y) for x in p[1]) for y in q[1]))

    return all(apart(p, q) for p in a[0] for q in b[0])


def _remember(cache: OrderedDict, key: Any, value: Any, size: int) -> None:
    cache[key] = value
    if len(cache) > size:
        cache.popitem(last=False)
