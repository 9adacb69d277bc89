"""bench/adaptive.py's core: sampling in rounds replayed on a pool of existing samples.

A *pool* holds many graded samples per problem. Each problem's samples are put in a fixed
random order (seeded by the problem id) and renumbered ``sample_idx`` 0..N-1: what
tf-sample's per-sample seeds give, where round r draws the indices after the previous
rounds', so every round is a prefix of one fixed run. Then:

- ``Pool.summary(i, n)``: problem i's summary over its first n samples, made by tf-cluster's
  own core (``summarize_problem``, one ``Equivalence`` for the run, as tf-cluster does);
- ``adaptive(pool, i, cfg)``: tf-plan's loop, ``decide`` / ``next_round`` of
  ``tf_tools.planning``, from n_min samples until decided; the pool size is a hard n_max;
- ``decision(summary, fuser, cfg)``: what tf-fuse would make of a summary: the k its policy
  chooses, the clusters it takes (the k largest, its order: largest first, ties by smaller
  first sample_idx; named by their first sample_idx) and the correct solutions it keeps
  (the first max_correct distinct texts in sample_idx order; for a prefix of the pool the
  list is equal exactly when the set is); ``NO_SAMPLE`` when there is no correct solution;
- ``compare(outcomes, reference, members)``: how often two rules' decisions agree, exactly
  and *up to ties*: the same k and correct solutions, and clusters that are the k largest of
  the whole pool with another tie-break (each chosen cluster lies in a different cluster of
  the pool, of the size the reference's cluster at that place has);
- ``oracle(pool, i, cfg, fuser, ref)``: the fewest samples on the rounds' schedule whose
  decision equals the reference's: what no stopping rule on that schedule can beat;
  ``oracle_any`` the same on no schedule (one sample at a time), and ``at_share`` what
  either allows when only a share (95%) of the decisions must be identical.

It does not grade, read files or print: bench/adaptive.py does.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from itertools import accumulate
from typing import Any

from tf_tools.clustering import ClusterConfig, ClusterStats, Equivalence, summarize_problem
from tf_tools.fusion.fuse import FuseConfig, Fuser, FuseStats
from tf_tools.models import ApproxTokenCounter
from tf_tools.planning import PlanConfig, decide, next_round
from tf_tools.schema import TF_KEY, Record, sample_order


def shuffled(group: list[Record], seed: int, id_key: str = "id") -> list[Record]:
    """One problem's samples in a fixed random order, renumbered sample_idx 0..N-1."""
    order = sorted(group, key=sample_order)
    random.Random(f"{seed}:{order[0][id_key]}").shuffle(order)
    return [{**r, "sample_idx": i} for i, r in enumerate(order)]


def chars4(rec: Record) -> float:
    """Completion tokens, approximated as characters / 4 (the pools carry no token counts)."""
    text = rec.get("completion")
    return len(text) / 4 if isinstance(text, str) else 0.0


class Pool:
    """A pool's problems (each already in its fixed order) and their prefixes' summaries."""

    def __init__(self, problems: list[list[Record]], ccfg: ClusterConfig | None = None,
                 tokens: Callable[[Record], float] = chars4) -> None:
        self.problems = problems
        self.ccfg = ccfg if ccfg is not None else ClusterConfig()
        self.stats = ClusterStats()
        self.eq = Equivalence(self.ccfg, self.stats)
        self._cum = [[0.0, *accumulate(tokens(r) for r in p)] for p in problems]
        self._summaries: dict[tuple[int, int], Record] = {}

    def size(self, i: int) -> int:
        return len(self.problems[i])

    def tokens(self, i: int, n: int) -> float:
        """Completion tokens of problem i's first n samples."""
        return self._cum[i][min(n, self.size(i))]

    def summary(self, i: int, n: int) -> Record:
        n = min(n, self.size(i))
        key = (i, n)
        if key not in self._summaries:
            self._summaries[key] = summarize_problem(self.problems[i][:n], self.eq, self.ccfg)
        return self._summaries[key]

    def close(self) -> None:
        self.eq.close()


def stamped(summary: Record, starts: list[int]) -> Record:
    """A copy of ``summary`` whose trajectories carry ``_tf.sample.first_index``: the first
    index of the round that drew them (``starts``, ascending), as tf-sample writes it."""

    def stamp(t: Record) -> Record:
        first = max(s for s in starts if s <= t["sample_idx"])
        tf = t.get(TF_KEY) if isinstance(t.get(TF_KEY), dict) else {}
        return {**t, TF_KEY: {**tf, "sample": {"first_index": first}}}

    out = dict(summary)
    for key in ("correct", "unclustered"):
        out[key] = [stamp(t) for t in summary.get(key) or ()]
    out["clusters"] = [{**c, "trajectories": [stamp(t) for t in c["trajectories"]]}
                       for c in summary.get("clusters") or ()]
    return out


@dataclass(frozen=True)
class Decision:
    """What tf-fuse makes of a summary: k, the chosen clusters (their first sample_idx, in
    tf-fuse's order) and the kept correct solutions (their sample_idx); k None: no sample."""

    k: int | None
    clusters: tuple[Any, ...] = ()
    correct: tuple[Any, ...] = ()


NO_SAMPLE = Decision(None)


def fuser_for(cfg: PlanConfig) -> Fuser:
    """A tf-fuse core with the plan's fusion parameters (only its selection is used)."""
    fcfg = FuseConfig(policy=cfg.policy, gamma=cfg.gamma, k_max=cfg.k_max,
                      min_error_rate=cfg.min_error_rate, min_modes=cfg.min_modes,
                      max_correct=cfg.max_correct, id_key=cfg.id_key)
    return Fuser(fcfg, ApproxTokenCounter(), FuseStats())


def decision(summary: Record, fuser: Fuser, cfg: PlanConfig) -> Decision:
    correct = fuser.correct(summary)
    if not correct:
        return NO_SAMPLE
    clusters = fuser.clusters(summary)
    k = cfg.k(summary.get("error_rate"), summary.get("entropy"), len(clusters))
    chosen = tuple(min(t.sample_idx for t in c) for c in clusters[:k])
    return Decision(k, chosen, tuple(t.sample_idx for t in correct))


def members(summary: Record, fuser: Fuser) -> dict[Any, tuple[Any, int]]:
    """sample_idx of each clustered wrong answer -> (its cluster's first sample_idx, size)."""
    out: dict[Any, tuple[Any, int]] = {}
    for c in fuser.clusters(summary):
        rep = min(t.sample_idx for t in c)
        out.update((t.sample_idx, (rep, len(c))) for t in c)
    return out


def same_up_to_ties(d: Decision, ref: Decision, pool_members: dict[Any, tuple[Any, int]]) -> bool:
    if (d.k, d.correct) != (ref.k, ref.correct):
        return False
    mine = [pool_members.get(c, (None, 0)) for c in d.clusters]
    theirs = [pool_members[c][1] for c in ref.clusters]
    return len({c for c, _ in mine}) == len(mine) and [n for _, n in mine] == theirs


@dataclass(frozen=True)
class Outcome:
    """One problem under one rule: samples and tokens drawn, why it stopped, the decision."""

    n: int
    tokens: float
    reason: str
    decision: Decision


def adaptive(pool: Pool, i: int, cfg: PlanConfig, fuser: Fuser) -> Outcome:
    """tf-plan's rounds on problem i until ``decide`` says done (pool size: a hard n_max)."""
    cfg = replace(cfg, n_max=min(cfg.n_max, pool.size(i)))
    starts: list[int] = []
    n = 0
    while True:
        more = next_round(n, cfg)
        if more <= 0:  # only when n_max <= 0: decide stops at n_max before this
            reason = "n_max"
            break
        starts.append(n)
        n += more
        summary = pool.summary(i, n)
        found, _ = decide(stamped(summary, starts), cfg)
        if found:
            reason = found
            break
    return Outcome(n, pool.tokens(i, n), reason, decision(pool.summary(i, n), fuser, cfg))


def oracle(pool: Pool, i: int, cfg: PlanConfig, fuser: Fuser, ref: Decision) -> int:
    """The fewest samples, on the schedule of ``cfg``'s rounds, that give the decision ``ref``."""
    cfg = replace(cfg, n_max=min(cfg.n_max, pool.size(i)))
    n = 0
    while (more := next_round(n, cfg)) > 0:
        n += more
        if decision(pool.summary(i, n), fuser, cfg) == ref:
            return n
    return n


def oracle_any(pool: Pool, i: int, cfg: PlanConfig, fuser: Fuser, ref: Decision) -> int:
    """The fewest samples, at least ``n_min``, whose decision is ``ref``, on no schedule (rounds
    of one sample): what no stopping rule on prefixes of the pool can beat."""
    size = pool.size(i)
    return next((n for n in range(min(cfg.n_min, size), size + 1)
                 if decision(pool.summary(i, n), fuser, cfg) == ref), size)


def at_share(drawn: list[int], first: list[int], share: float) -> int:
    """Samples drawn when ``1 - share`` of the problems may get another decision than the
    reference's: those with the most to save stop after their first round (``first``), the
    rest as ``drawn``. A bound: no rule at that share of identical decisions draws fewer."""
    gains = sorted((d - f for d, f in zip(drawn, first, strict=True)), reverse=True)
    return sum(drawn) - sum(gains[: int((1 - share) * len(drawn))])


def fixed(pool: Pool, i: int, n: int, cfg: PlanConfig, fuser: Fuser) -> Outcome:
    """The first n samples of problem i (all of them when n >= its pool)."""
    n = min(n, pool.size(i))
    return Outcome(n, pool.tokens(i, n), "fixed", decision(pool.summary(i, n), fuser, cfg))


@dataclass
class Agreement:
    """How often a rule's decisions equal the reference's, and what it drew."""

    problems: int = 0
    identical: int = 0
    up_to_ties: int = 0  # identical but for which of equal-sized clusters are taken
    k: int = 0
    clusters: int = 0
    correct: int = 0
    sample_mismatch: int = 0  # a training sample in one, none in the other
    samples: int = 0
    tokens: float = 0.0
    ref_samples: int = 0
    ref_tokens: float = 0.0
    by_reason: Counter[str] = field(default_factory=Counter)  # problems per stopping reason
    same_by_reason: Counter[str] = field(default_factory=Counter)  # ... with identical decisions

    def share(self, count: float) -> float:
        return count / self.problems if self.problems else 0.0


def compare(outcomes: list[Outcome], reference: list[Outcome],
            pool_members: list[dict[Any, tuple[Any, int]]]) -> Agreement:
    a = Agreement()
    for o, r, m in zip(outcomes, reference, pool_members, strict=True):
        d, ref = o.decision, r.decision
        same = d == ref
        a.problems += 1
        a.identical += same
        a.up_to_ties += same or same_up_to_ties(d, ref, m)
        a.k += d.k == ref.k
        a.clusters += d.clusters == ref.clusters
        a.correct += d.correct == ref.correct
        a.sample_mismatch += (d.k is None) != (ref.k is None)
        a.samples += o.n
        a.tokens += o.tokens
        a.ref_samples += r.n
        a.ref_tokens += r.tokens
        a.by_reason[o.reason] += 1
        a.same_by_reason[o.reason] += same
    return a
