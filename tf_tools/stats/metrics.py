"""The numbers tf-stats reports: pass@k, maj@k, and small distribution helpers.

pass@k is the unbiased estimator of Chen et al. 2021 ("Evaluating Large Language Models
Trained on Code", eq. 1): with n samples of which c are correct,
``pass@k = 1 - C(n-c, k) / C(n, k)``. The paper computes the ratio as a running product to
avoid huge binomials in floating point; Python's integers are exact, so we form the ratio
as a ``Fraction`` of two exact binomials instead: no rounding until the very end, which is
what makes ``pass@1 == accuracy`` hold to the last bit when every problem has the same n.

maj@k (majority voting, "self-consistency") uses the same estimator family as pass@k: it is
the expectation, over the C(n, k) subsets of k of a problem's n samples, of "the majority
answer of the subset is correct". Within a subset, each sample with an extracted answer votes
for it and the answer with the most votes wins. Precisely:

- voters: samples whose verdict is ``correct`` or ``incorrect`` (they have an answer and were
  finished). ``no_answer`` and ``truncated`` samples fill a place in a subset but do not
  vote; ``ungradable`` samples are not samples at all (left out of n, as in tf-cluster);
- groups: every correct answer is equal to the gold, so all correct votes form one group
  however they are written. Wrong answers are grouped by tf-cluster's canonical key
  (normalised text, or the exact value of a number) and then by ``fast_equal`` against one
  answer per group; wrong answers that only SymPy could tell equal stay apart (that can only
  make maj@k slightly too high). Problem summaries already carry tf-cluster's clusters,
  which are used as they are;
- ties: when t answers share the most votes and the correct one is among them, the subset
  counts 1/t (the expectation of a fair coin among the tied answers). So the result depends
  only on the group sizes, never on the order of the samples;
- no vote at all in the subset: 0.

Hence maj@1 = c/n = pass@1 exactly, and maj@n is the majority of all n samples (1/t on a
t-way tie at the top). Not "the first k samples": that is one draw among the subsets, noisier,
and not comparable with pass@k (it let maj@1 exceed pass@1 on a chart).

The estimator is exact (``Fraction``) when n <= ``MAJ_EXACT_MAX_N``: a count over the
answer-group sizes (for each number j of correct votes, a polynomial over the wrong groups
that caps each at j and tracks how many reach j), not an enumeration of subsets, so n = 256
takes a few hundredths of a second. Above that, k = 1 and k = n are exact and every other k
is the mean over ``MAJ_RESAMPLES`` random orderings of the samples (the first k of a uniform
random ordering are a uniform k-subset), seeded from ``MAJ_SEED`` and the group sizes: the
same input gives the same numbers. ``MAJ_ESTIMATOR`` says this in one line (the JSON and the
charts carry it).

This module deliberately knows nothing about records.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Any

from tf_tools.answers.equivalence import fast_equal
from tf_tools.answers.forms import canonical_key

#: the group key of every correct answer
CORRECT = ("correct",)


def pass_at_k_exact(n: int, c: int, k: int) -> Fraction:
    """1 - C(n-c, k)/C(n, k) as an exact fraction (Chen et al. 2021)."""
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got n={n}, k={k}")
    if n - c < k:
        return Fraction(1)  # every k-subset holds a correct sample
    return 1 - Fraction(math.comb(n - c, k), math.comb(n, k))


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased pass@k estimate for one problem with n samples, c of them correct."""
    return float(pass_at_k_exact(n, c, k))


class AnswerGrouper:
    """Groups wrong answers: canonical key first, then ``fast_equal`` against each group's
    first answer. One instance per problem (groups never span problems)."""

    def __init__(self, tolerance: float = 1e-6) -> None:
        self.tolerance = tolerance
        self._by_key: dict[Hashable, int] = {}
        self._reps: list[str] = []

    def key(self, answer: str) -> Hashable:
        ck = canonical_key(answer)
        if ck in self._by_key:
            return ("wrong", self._by_key[ck])
        for j, rep in enumerate(self._reps):
            same = fast_equal(rep, answer, self.tolerance)
            if same is not None and same.equal:
                self._by_key[ck] = j
                return ("wrong", j)
        self._reps.append(answer)
        self._by_key[ck] = len(self._reps) - 1
        return ("wrong", len(self._reps) - 1)


MAJ_EXACT_MAX_N = 256
MAJ_RESAMPLES = 1000
MAJ_SEED = 0
MAJ_ESTIMATOR = (f"expectation over the k-subsets of a problem's n samples, a tie at the top "
                 f"counting 1/t: exact when n <= {MAJ_EXACT_MAX_N}, else {MAJ_RESAMPLES} seeded "
                 f"random orderings (seed {MAJ_SEED}; k = 1 and k = n exact)")


@dataclass(frozen=True)
class VoteCounts:
    """What maj@k of a problem depends on: the size of the correct group, the sizes of the
    wrong-answer groups (largest first) and the number of samples that do not vote."""

    correct: int
    wrong: tuple[int, ...]
    abstain: int

    @property
    def n(self) -> int:
        return self.correct + sum(self.wrong) + self.abstain

    @property
    def exact(self) -> bool:
        return self.n <= MAJ_EXACT_MAX_N


def vote_counts(votes: Sequence[Hashable | None]) -> VoteCounts:
    """``votes[i]``: sample i's group key (``CORRECT`` for a correct answer), or None when the
    sample does not vote."""
    groups = Counter(v for v in votes if v is not None)
    correct = groups.pop(CORRECT, 0)
    return VoteCounts(correct, tuple(sorted(groups.values(), reverse=True)),
                      sum(1 for v in votes if v is None))


@lru_cache(maxsize=4096)
def maj_curve(counts: VoteCounts) -> tuple[Fraction, ...]:
    """maj@k for k = 1 .. n of one problem (the rule is in the module docstring)."""
    if counts.n == 0:
        return ()
    if counts.exact:
        return _exact_curve(counts)
    return _resampled_curve(counts)


def maj_at_k(votes: Sequence[Hashable | None], k: int) -> Fraction:
    """maj@k of one problem from its samples' votes."""
    if not 1 <= k <= len(votes):
        raise ValueError(f"need 1 <= k <= n, got n={len(votes)}, k={k}")
    return maj_curve(vote_counts(votes))[k - 1]


def _full_set(counts: VoteCounts) -> Fraction:
    """The majority of all n samples: 1, 1/t on a t-way tie at the top, or 0."""
    c = counts.correct
    if c == 0 or (counts.wrong and counts.wrong[0] > c):
        return Fraction(0)
    return Fraction(1, 1 + sum(1 for w in counts.wrong if w == c))


def _exact_curve(counts: VoteCounts) -> tuple[Fraction, ...]:
    """Sum of the subset scores for every k at once, in integers scaled by ``scale``.

    A subset with j >= 1 correct votes scores when no wrong group has more than j votes in
    it, 1/(1 + t) when t groups have exactly j. Wrong groups smaller than j can neither beat
    nor tie j votes, so for a given j they join the non-voters in a free pool (Vandermonde:
    C(a, r) ways to take r from a pool of a). For the others a polynomial in (subset size,
    groups at j) counts the ways, each group contributing C(w, x) for x <= j.
    """
    c, wrong, n = counts.correct, counts.wrong, counts.n
    scale = math.lcm(*range(1, len(wrong) + 2))
    total = [0] * (n + 1)
    for j in range(1, c + 1):
        active = [w for w in wrong if w >= j]
        free = n - c - sum(active)
        width = len(active) + 1
        poly = [[1] + [0] * (width - 1)]  # poly[s][t]
        for w in active:
            ways = [math.comb(w, x) for x in range(j + 1)]
            new = [[0] * width for _ in range(len(poly) + j)]
            for s, row in enumerate(poly):
                for t, v in enumerate(row):
                    if v:
                        for x in range(j):
                            new[s + x][t] += v * ways[x]
                        new[s + j][t + 1] += v * ways[j]
            poly = new
        weighted = [sum(v * (scale // (t + 1)) for t, v in enumerate(row)) for row in poly]
        c_j = math.comb(c, j)
        free_ways = [math.comb(free, r) for r in range(free + 1)]
        for s, a in enumerate(weighted):
            if a:
                for r, f in enumerate(free_ways):
                    total[j + s + r] += c_j * a * f
    return tuple(Fraction(total[k], scale * math.comb(n, k)) for k in range(1, n + 1))


def _resampled_curve(counts: VoteCounts) -> tuple[Fraction, ...]:
    """The mean over ``MAJ_RESAMPLES`` random orderings of each ordering's first-k score."""
    n, c = counts.n, counts.correct
    labels = [0] * c + [-1] * counts.abstain
    for g, w in enumerate(counts.wrong, start=1):
        labels += [g] * w
    rng = random.Random(f"tf-stats maj@k {MAJ_SEED} {c} {counts.wrong} {counts.abstain}")
    wins = [0] * (n + 1)
    ties: list[Counter[int]] = [Counter() for _ in range(n + 1)]
    for _ in range(MAJ_RESAMPLES):
        rng.shuffle(labels)
        votes = [0] * (len(counts.wrong) + 1)
        at: Counter[int] = Counter()  # wrong groups per vote count
        right = top = 0
        for k, g in enumerate(labels, start=1):
            if g > 0:
                at[votes[g]] -= 1
                votes[g] += 1
                at[votes[g]] += 1
                top = max(top, votes[g])
            elif g == 0:
                right += 1
            if right and top <= right:
                tied = at[right] if top == right else 0
                if tied:
                    ties[k][tied] += 1
                else:
                    wins[k] += 1
    curve = [(wins[k] + sum((Fraction(m, t + 1) for t, m in ties[k].items()), Fraction(0)))
             / MAJ_RESAMPLES for k in range(1, n + 1)]
    curve[0] = Fraction(c, n)
    curve[-1] = _full_set(counts)
    return tuple(curve)


# --------------------------------------------------------------------------- distributions


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default) of already sorted values."""
    if not sorted_values:
        raise ValueError("no values")
    pos = (len(sorted_values) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def describe(values: Iterable[float]) -> dict[str, Any] | None:
    """count, mean, median, p90, min, max of some numbers (None when there are none)."""
    vals = sorted(values)
    if not vals:
        return None
    return {"count": len(vals), "mean": sum(vals) / len(vals), "median": quantile(vals, 0.5),
            "p90": quantile(vals, 0.9), "min": vals[0], "max": vals[-1]}


def bin_counts(values: Iterable[float], edges: Sequence[float], *, exact_low: bool = False,
               exact_high: bool = False, fmt: str = "{:g}") -> dict[str, int]:
    """Counts per bin ``(a, b]`` (the first bin is ``[a, b]``), labelled by their edges.

    ``exact_low`` / ``exact_high`` give the first / last edge a bin of its own (``0`` and
    ``1`` for an error rate: all-correct and all-wrong problems matter on their own; ``0``
    for an entropy). Values above the last edge go to a ``>last`` bin, shown when not empty.
    """
    lo, hi = edges[0], edges[-1]
    labels = [fmt.format(lo)] if exact_low else []
    for i, (a, b) in enumerate(zip(edges, edges[1:], strict=False)):
        left = "(" if exact_low or i > 0 else "["
        right = ")" if exact_high and i == len(edges) - 2 else "]"
        labels.append(f"{left}{fmt.format(a)}, {fmt.format(b)}{right}")
    if exact_high:
        labels.append(fmt.format(hi))
    counts = dict.fromkeys(labels, 0)
    over = 0
    first = 1 if exact_low else 0  # index of the first interval's label
    for v in values:
        if exact_low and v == lo:
            counts[labels[0]] += 1
        elif exact_high and v == hi:
            counts[labels[-1]] += 1
        elif v > hi:
            over += 1
        else:
            i = next((j for j in range(1, len(edges)) if v <= edges[j]), len(edges) - 1)
            counts[labels[first + i - 1]] += 1
    if over:
        counts[f">{fmt.format(hi)}"] = over
    return counts
