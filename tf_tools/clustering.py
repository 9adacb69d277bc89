"""tf-cluster's core: per-problem error statistics and clusters of equivalent wrong answers.

Reads graded trajectories (tf-grade's output) grouped by id and writes one *problem summary*
per id (DESIGN §3): ``n``, ``n_correct``, ``error_rate``, ``n_error_modes``, ``entropy``,
the correct trajectories, and the fusable wrong ones grouped into clusters of mathematically
equivalent final answers, largest first (DESIGN §4 step 3).

What counts (DESIGN §4 step 3):

- ``ungradable`` samples are left out of N and out of the clusters (kept in ``unclustered``);
- ``no_answer`` and ``truncated`` samples count as wrong in ``error_rate`` but are never
  clustered (kept in ``unclustered``);
- only ``incorrect`` samples with an answer and ``finish_reason`` ``stop`` (or none given)
  are clustered, and only they can be fused.

Clustering cost: each candidate answer is placed by (1) a canonical key (normalised text, or
the exact value of a number) looked up in a dict, (2) ``fast_equal`` against one
representative per existing cluster, skipping pairs that two different exact numbers already
decide, and (3) math-verify only for the pairs the fast paths cannot decide, in the killable
``VerifyPool`` (never SymPy in this process), after checking once per answer that
math-verify can read it at all. A comparison that times out or fails counts as "not equal"
and is counted. All pairs are never compared.

Fields equal across every sample of a problem (``problem``, ``answer``, user fields) are
lifted onto the problem record; each trajectory keeps the rest of its record (always its
``sample_idx``, ``completion``, ``finish_reason``, ``pred``, ``verdict``, ``correct``, ``_tf``).
Nothing here writes output or knows about flags.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from tf_tools import __version__
from tf_tools.errors import InputError
from tf_tools.grading.equivalence import compact, fast_equal, normalize, to_number
from tf_tools.records import (
    TF_KEY,
    Record,
    group_by_id,
    is_failed,
    mark_failed,
)

VERDICTS = ("correct", "incorrect", "no_answer", "truncated", "ungradable")
#: per-sample keys that stay on each trajectory even when every sample has the same value
SAMPLE_KEYS = frozenset({"sample_idx", "completion", "finish_reason", "pred", "verdict",
                         "correct", TF_KEY})
#: keys tf-cluster writes on a problem summary (tf-fuse does not carry the lists on)
SUMMARY_KEYS = ("n", "n_correct", "error_rate", "n_error_modes", "entropy", "n_clustered",
                "n_ungradable", "correct", "clusters", "unclustered")
GRADE_HINT = "run tf-grade first: tf-grade trajectories.jsonl | tf-cluster > problems.jsonl"


@dataclass(frozen=True)
class ClusterConfig:
    id_key: str = "id"
    unsorted: bool = False
    tolerance: float = 1e-6
    workers: int = 2
    timeout: float = 5.0  # seconds per math-verify comparison; then the worker is killed
    memory_mb: int = 4096
    math_verify: bool = True  # False: pairs the fast paths cannot decide count as different
    keep_going: bool = False


@dataclass
class ClusterStats:
    problems: int = 0
    trajectories: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)
    clustered: int = 0
    clusters: int = 0
    key_hits: int = 0  # answers placed by the canonical key, no comparison
    key_decided: int = 0  # pairs two different exact numbers decide, no comparison
    fast_checks: int = 0  # answer pairs compared (fast_equal, then math-verify if undecided)
    mv_checks: int = 0  # pairs compared by math-verify (in the pool)
    mv_reads: int = 0  # answers checked once for whether math-verify can read them
    mv_unreadable: int = 0  # undecided pairs settled: math-verify cannot read one side
    timeouts: int = 0  # math-verify comparisons that ran out of time (= not equal)
    mv_failures: int = 0  # math-verify could not parse / crashed (= not equal)
    all_pairs: int = 0  # what naive all-pairs clustering would compare
    failed: int = 0

    @property
    def checks(self) -> int:
        """Equivalence checks: answer pairs compared (each once, however it was decided)."""
        return self.fast_checks

    @property
    def mv_calls(self) -> int:
        """Every task sent to math-verify: pair comparisons and readability checks."""
        return self.mv_checks + self.mv_reads


# --------------------------------------------------------------------------- equivalence


def canonical_key(pred: str) -> tuple[str, Any]:
    """A key such that equal keys imply ``fast_equal`` says equal (so no comparison is run).

    Numbers key on their exact value (``1/2``, ``\\frac{1}{2}``, ``0.5`` share one), the rest
    on the normalised text without spaces.
    """
    norm = normalize(pred)
    if not norm.text:
        return ("raw", pred.strip())
    num = to_number(norm.text)
    if num is not None:
        return ("pct" if norm.percent else "num", num.value)
    return ("text", compact(norm.text))


def _exact_number(pred: str) -> Fraction | None:
    """The value when ``pred`` is an exact, non-percent number (decides against others)."""
    norm = normalize(pred)
    if not norm.text or norm.percent:
        return None
    num = to_number(norm.text)
    return num.value if num is not None and num.exact else None


class Equivalence:
    """Answer equivalence for clustering: fast paths here, math-verify in a killable pool.

    ``rep`` plays the gold's part in every comparison (it is the earlier sample). Before
    comparing a pair with math-verify, each of its answers is checked once (per run) for
    whether math-verify reads any SymPy expression from it: one it cannot read ("___",
    "Cannot be determined") equals nothing through math-verify, as gold ("gold does not
    parse") or as prediction (a string never equals an expression), so its pairs are
    decided without further calls, exactly as math-verify would decide them.
    """

    def __init__(self, cfg: ClusterConfig, stats: ClusterStats) -> None:
        self.cfg = cfg
        self.stats = stats
        self._pool: Any = None
        self._seq = 0
        self._readable: dict[str, bool] = {}

    def fast(self, rep: str, cand: str) -> bool | None:
        self.stats.fast_checks += 1
        res = fast_equal(rep, cand, self.cfg.tolerance)
        return None if res is None else res.equal

    def slow_many(self, pairs: list[tuple[str, str]]) -> list[bool]:
        """math-verify on each (rep, cand) pair, in parallel; timeouts and failures are False."""
        if not pairs or not self.cfg.math_verify:
            return [False] * len(pairs)
        unknown = sorted({a for pair in pairs for a in pair if a not in self._readable})
        if unknown:
            if len(self._readable) > 200_000:
                self._readable.clear()
            self.stats.mv_reads += len(unknown)
            for answer, (status, _equal) in zip(unknown, self._run([(a, a) for a in unknown])):
                # a timeout or crash says nothing about readability: compare as usual
                self._readable[answer] = status != "gold_unparseable"
                self.stats.timeouts += status == "timeout"
        todo = [i for i, (rep, cand) in enumerate(pairs)
                if self._readable.get(rep, True) and self._readable.get(cand, True)]
        equal = [False] * len(pairs)
        self.stats.mv_unreadable += len(pairs) - len(todo)
        self.stats.mv_checks += len(todo)
        for i, (status, eq) in zip(todo, self._run([pairs[i] for i in todo])):
            if status == "timeout":
                self.stats.timeouts += 1
            elif status != "ok":
                self.stats.mv_failures += 1
            equal[i] = status == "ok" and bool(eq)
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


def cluster_answers(preds: list[str], eq: Equivalence) -> list[list[int]]:
    """Partition ``preds`` (in sample order) into clusters of equivalent answers.

    Returns lists of indices into ``preds``, in order of creation (each cluster's first
    member is its representative). Never compares all pairs: a candidate is matched by its
    canonical key, else against one representative per cluster.
    """
    clusters: list[list[int]] = []
    reps: list[tuple[str, Fraction | None]] = []
    by_key: dict[Hashable, int] = {}
    for i, pred in enumerate(preds):
        key = canonical_key(pred)
        found = by_key.get(key)
        if found is not None:
            eq.stats.key_hits += 1
            clusters[found].append(i)
            continue
        value = _exact_number(pred)
        undecided: list[int] = []
        for c, (rep, rep_value) in enumerate(reps):
            if value is not None and rep_value is not None:
                eq.stats.key_decided += 1  # two different exact numbers: not equal
                continue
            verdict = eq.fast(rep, pred)
            if verdict:
                found = c
                break
            if verdict is None:
                undecided.append(c)
        if found is None and undecided:
            equal = eq.slow_many([(reps[c][0], pred) for c in undecided])
            found = next((c for c, e in zip(undecided, equal) if e), None)
        if found is None:
            found = len(clusters)
            clusters.append([])
            reps.append((pred, value))
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


# --------------------------------------------------------------------------- problems


def _order_key(pos_rec: tuple[int, Record]) -> tuple[int, int]:
    pos, rec = pos_rec
    idx = rec.get("sample_idx")
    return (0, idx) if isinstance(idx, int) and not isinstance(idx, bool) else (1, pos)


def is_fusable(rec: Record) -> bool:
    """An incorrect sample with an answer that the teacher finished (not truncated)."""
    return (rec.get("verdict") == "incorrect" and rec.get("pred") is not None
            and rec.get("finish_reason", "stop") in ("stop", None))


def summarize_problem(group: list[Record], eq: Equivalence, cfg: ClusterConfig) -> Record:
    """The problem summary of one problem's graded trajectories."""
    t0 = time.perf_counter()
    stats = eq.stats
    checks_before, mv_before = stats.checks, stats.mv_calls
    timeouts_before = stats.timeouts
    trajs = [r for _, r in sorted(enumerate(group), key=_order_key)]
    first = trajs[0]
    common = {k: v for k, v in first.items()
              if k not in SAMPLE_KEYS and all(k in r and r[k] == v for r in trajs[1:])}
    common[cfg.id_key] = first.get(cfg.id_key)

    def own(rec: Record) -> Record:
        return {k: v for k, v in rec.items() if k not in common}

    verdicts = Counter(r["verdict"] for r in trajs)
    stats.verdicts.update(verdicts)
    n = len(trajs) - verdicts["ungradable"]
    n_correct = verdicts["correct"]
    fusable = [r for r in trajs if is_fusable(r)]
    parts = cluster_answers([str(r["pred"]) for r in fusable], eq)
    parts.sort(key=lambda p: (-len(p), _order_key((p[0], fusable[p[0]]))))
    clusters = [{"answer": fusable[p[0]]["pred"], "size": len(p),
                 "trajectories": [own(fusable[i]) for i in p]} for p in parts]
    h = entropy(len(p) for p in parts)
    fusable_ids = {id(r) for r in fusable}
    stats.problems += 1
    stats.trajectories += len(trajs)
    stats.clustered += len(fusable)
    stats.clusters += len(parts)
    stats.all_pairs += len(fusable) * (len(fusable) - 1) // 2
    out: Record = {cfg.id_key: common.pop(cfg.id_key), **common}
    out.update({
        "n": n,
        "n_correct": n_correct,
        "error_rate": (n - n_correct) / n if n else None,
        "n_error_modes": len(parts),
        "entropy": h,
        "n_clustered": len(fusable),
        "n_ungradable": verdicts["ungradable"],
        "correct": [own(r) for r in trajs if r["verdict"] == "correct"],
        "clusters": clusters,
        "unclustered": [own(r) for r in trajs
                        if r["verdict"] != "correct" and id(r) not in fusable_ids],
    })
    out[TF_KEY] = {"cluster": {
        "version": __version__, "tolerance": cfg.tolerance, "timeout": cfg.timeout,
        "math_verify": cfg.math_verify, "checks": stats.checks - checks_before,
        "math_verify_calls": stats.mv_calls - mv_before,
        "timeouts": stats.timeouts - timeouts_before,
        "seconds": round(time.perf_counter() - t0, 6),
    }}
    return out


def _missing(rec: Record, id_key: str) -> tuple[str, str | None] | None:
    """Why ``rec`` is not a graded trajectory (message, hint), or None when it is."""
    absent = [k for k in ("verdict", "pred") if k not in rec]
    if absent:
        names = " and ".join(repr(k) for k in absent)
        return (f"record has no {names} field: tf-cluster reads graded trajectories", GRADE_HINT)
    if rec["verdict"] not in VERDICTS:
        return (f"unknown verdict {rec['verdict']!r} (expected one of {', '.join(VERDICTS)})",
                GRADE_HINT)
    if id_key not in rec:
        return (f"record has no {id_key!r} field (the problem id)", "name it with --id-key")
    return None


def cluster_records(records: Iterable[Record], cfg: ClusterConfig = ClusterConfig(),
                    stats: ClusterStats | None = None,
                    where: Callable[[], str] | None = None) -> Iterator[Record]:
    """One problem summary per id, in input order, holding one problem at a time.

    Records already marked failed upstream are passed on as they are. A record that is not
    a graded trajectory raises InputError naming its line (``cfg.keep_going``: it is passed
    on marked failed and its problem is summarised without it).
    """
    stats = stats if stats is not None else ClusterStats()
    passing: list[Record] = []

    def checked() -> Iterator[Record]:
        for rec in records:
            if is_failed(rec):
                stats.failed += 1
                passing.append(rec)
                continue
            problem = _missing(rec, cfg.id_key)
            if problem is None:
                yield rec
                continue
            message, hint = problem
            if not cfg.keep_going:
                raise InputError(message, where() if where else None, hint)
            stats.failed += 1
            loc = {"where": where()} if where else {}
            passing.append(mark_failed(rec, "cluster", message, **loc))

    eq = Equivalence(cfg, stats)
    try:
        for _pid, group in group_by_id(checked(), cfg.id_key, unsorted=cfg.unsorted,
                                       where=where):
            yield from passing
            passing.clear()
            yield summarize_problem(group, eq, cfg)
        yield from passing
    finally:
        eq.close()


def skip_ids(records: Iterable[Record], done: Iterable[Hashable],
             id_key: str = "id") -> Iterator[Record]:
    """Drop the records of problems an earlier run already summarised (``--resume``)."""
    done_ids = set(done)
    for rec in records:
        if is_failed(rec) or rec.get(id_key) not in done_ids:
            yield rec
