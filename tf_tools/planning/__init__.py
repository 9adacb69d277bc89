"""Sampling in rounds: which problems need more samples, and how many (tf-plan's core).

``plan_records(summaries, cfg)`` reads problem summaries (tf-cluster's output over every
sample drawn so far) and yields, per problem that needs another round, the problem's own
fields plus ``_tf.plan = {first_index, n, round, reason}``: tf-sample reads that plan and
draws sample indices first_index .. first_index + n - 1. A sample's seed depends only on
(seed, id, index), so rounds draw exactly the samples one fixed run with the larger n would
have drawn (DESIGN §3): an adaptive run is a prefix of the fixed run.

A problem is decided (no more samples) when, in this order:

1. ``all_correct``: its first ``n_min`` samples are all correct (RFT material: more samples
   would add duplicate correct solutions and no error to learn from);
2. ``too_hard`` / ``n_max``: it has ``n_max`` samples (``too_hard`` when none is correct:
   dropped, reported);
3. ``stable``: it has at least ``max_correct`` distinct correct solutions (what tf-fuse keeps)
   and the k tf-fuse would choose is settled: the same k at both ends of the error rate's
   Wilson interval at ``confidence`` (95% by default; entropy and clusters as observed), or
   the same k as before the last round. With ``stable="decision"`` (stricter;
   bench/adaptive.py measures both): the same k at both ends of the interval *and* the same
   k and the same k largest clusters (largest first, ties by the smaller first sample_idx,
   as tf-fuse takes them) as before the last round.

Otherwise it gets another round: as many samples as it has (doubling), at most up to
``n_max``, and at least ``n_min`` in all. ``PlanStats`` counts the decisions.

It does not sample, grade or cluster (the loop in bin/tf-rounds runs those), and does not
look at the trajectories' text beyond telling distinct correct solutions apart.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

from tf_tools.clustering.answers import entropy
from tf_tools.fusion.policy import choose_k
from tf_tools.schema import TF_KEY, Record, is_failed, provenance

#: fields tf-cluster adds to a problem: not carried into the next round's problem record
SUMMARY_KEYS = frozenset({"n", "n_correct", "error_rate", "n_error_modes", "entropy",
                          "n_clustered", "n_ungradable", "correct", "clusters", "unclustered"})


@dataclass(frozen=True)
class PlanConfig:
    n_min: int = 4
    n_max: int = 32
    max_correct: int = 4  # tf-fuse --max-correct
    policy: str = "adaptive"  # tf-fuse --policy and its parameters
    k_max: int = 3
    gamma: float = 1.0
    min_error_rate: float = 0.25
    min_modes: float = 1.0
    stable: str = "k"  # "k" or "decision": the stability test of rule 3
    confidence: float = 0.95  # level of the error rate's interval in rule 3 (0: the point)
    write_done: bool = False  # also write decided problems (n = 0, the reason)
    id_key: str = "id"

    def __post_init__(self) -> None:
        if self.stable not in ("k", "decision"):
            raise ValueError(f"unknown stability test {self.stable!r} (k or decision)")
        if not 0.0 <= self.confidence < 1.0:
            raise ValueError(f"confidence {self.confidence!r} is not in [0, 1)")

    @property
    def z(self) -> float:
        """The normal quantile of a two-sided interval at ``confidence``."""
        return NormalDist().inv_cdf(0.5 + self.confidence / 2)

    def k(self, error_rate: float | None, h: float, m: int) -> int:
        return choose_k(self.policy, error_rate, h, m, k_max=self.k_max, gamma=self.gamma,
                        min_error_rate=self.min_error_rate, min_modes=self.min_modes)


@dataclass
class PlanStats:
    problems: int = 0
    open: int = 0
    samples_asked: int = 0
    samples_so_far: int = 0
    failed: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    def summary_lines(self) -> list[str]:
        done = ", ".join(f"{n} {r.replace('_', ' ')}" for r, n in sorted(self.reasons.items()))
        return [f"{self.problems} problems, {self.samples_so_far} samples so far: {self.open} "
                f"need another round ({self.samples_asked} samples)"
                + (f"; decided: {done}" if done else "")]


@dataclass(frozen=True)
class _Sample:
    idx: int
    correct: bool
    cluster: int | None  # index of its wrong-answer cluster; None: correct or not clustered
    text: str | None
    round_start: int  # first_index of the round that drew it


def _samples(rec: Record) -> list[_Sample]:
    out: list[_Sample] = []

    def add(trajs: Any, correct: bool, cluster: int | None) -> None:
        for t in trajs if isinstance(trajs, list) else ():
            if isinstance(t, dict) and isinstance(t.get("sample_idx"), int):
                start = (provenance(t, "sample") or {}).get("first_index", 0)
                out.append(_Sample(t["sample_idx"], correct, cluster, t.get("completion"),
                                   start if isinstance(start, int) else 0))

    add(rec.get("correct"), True, None)
    for i, c in enumerate(rec.get("clusters") or ()):
        add(c.get("trajectories") if isinstance(c, dict) else None, False, i)
    add(rec.get("unclustered"), False, None)
    return sorted(out, key=lambda s: s.idx)


def _k_of(samples: list[_Sample], cfg: PlanConfig, error_rate: float | None = None) -> int:
    sizes = Counter(s.cluster for s in samples if s.cluster is not None)
    n = len(samples)
    e = error_rate if error_rate is not None else (
        sum(not s.correct for s in samples) / n if n else None)
    return cfg.k(e, entropy(sizes.values()), len(sizes))


def _choice(samples: list[_Sample], cfg: PlanConfig) -> tuple[int, tuple[int, ...]]:
    """k and the k largest clusters (ids) tf-fuse would take from these samples."""
    sizes = Counter(s.cluster for s in samples if s.cluster is not None)
    first: dict[int, int] = {}
    for s in samples:  # samples are in sample_idx order
        if s.cluster is not None:
            first.setdefault(s.cluster, s.idx)
    k = _k_of(samples, cfg)
    return k, tuple(sorted(sizes, key=lambda c: (-sizes[c], first[c]))[:k])


def wilson(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95% by default; z = 0: the point)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z ** 2 / n
    centre = (p + z ** 2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z ** 2 / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def decide(rec: Record, cfg: PlanConfig) -> tuple[str | None, int]:
    """(reason the problem is decided, or None; the number of samples drawn so far)."""
    samples = _samples(rec)
    n = samples[-1].idx + 1 if samples else 0
    first = [s for s in samples if s.idx < cfg.n_min]
    if len(first) >= cfg.n_min and all(s.correct for s in first):
        return "all_correct", n
    n_correct = sum(s.correct for s in samples)
    if n >= cfg.n_max:
        return ("too_hard" if n_correct == 0 else "n_max"), n
    distinct = {s.text for s in samples if s.correct}
    if n_correct == 0 or len(distinct) < cfg.max_correct:
        return None, n
    wrong = len(samples) - n_correct
    lo, hi = wilson(wrong, len(samples), cfg.z)
    settled = _k_of(samples, cfg, lo) == _k_of(samples, cfg, hi)
    last_round = max(s.round_start for s in samples)
    before = [s for s in samples if s.idx < last_round]
    if cfg.stable == "decision":
        same = settled and bool(before) and _choice(before, cfg) == _choice(samples, cfg)
        return ("stable" if same else None), n
    if settled:
        return "stable", n
    if before and _k_of(before, cfg) == _k_of(samples, cfg):
        return "stable", n
    return None, n


def next_round(n: int, cfg: PlanConfig) -> int:
    """Samples of the next round: double what there is, at least n_min in all, at most n_max."""
    return max(min(max(n, cfg.n_min - n, 1), cfg.n_max - n), 0)


def plan_records(summaries: Iterable[Record], cfg: PlanConfig, stats: PlanStats | None = None,
                 round_no: int | None = None) -> Iterator[Record]:
    stats = stats if stats is not None else PlanStats()
    for rec in summaries:
        if is_failed(rec):
            stats.failed += 1
            yield rec
            continue
        stats.problems += 1
        reason, n = decide(rec, cfg)
        stats.samples_so_far += n
        more = 0 if reason else next_round(n, cfg)
        if reason:
            stats.reasons[reason] += 1
            if not cfg.write_done:
                continue
        else:
            stats.open += 1
            stats.samples_asked += more
        problem = {k: v for k, v in rec.items() if k not in SUMMARY_KEYS and k != TF_KEY}
        plan: dict[str, Any] = {"first_index": n, "n": more,
                                "reason": reason or "more_samples"}
        if round_no is not None:
            plan["round"] = round_no
        problem[TF_KEY] = {"plan": plan}
        yield problem
