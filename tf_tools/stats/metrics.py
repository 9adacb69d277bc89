"""The numbers tf-stats reports: pass@k, maj@k, and small distribution helpers.

pass@k is the unbiased estimator of Chen et al. 2021 ("Evaluating Large Language Models
Trained on Code", eq. 1): with n samples of which c are correct,
``pass@k = 1 - C(n-c, k) / C(n, k)``. The paper computes the ratio as a running product to
avoid huge binomials in floating point; Python's integers are exact, so we form the ratio
as a ``Fraction`` of two exact binomials instead: no rounding until the very end, which is
what makes ``pass@1 == accuracy`` hold to the last bit when every problem has the same n.

maj@k (majority voting, "self-consistency"): over the first k samples of a problem in
``sample_idx`` order, each sample with an extracted answer votes for it; the answer with the
most votes wins and maj@k is 1 when it is a correct one. Precisely:

- voters: samples whose verdict is ``correct`` or ``incorrect`` (they have an answer and were
  finished). ``no_answer`` and ``truncated`` samples take up a place among the first k but do
  not vote; ``ungradable`` samples are not samples at all (left out of n, as in tf-cluster);
- groups: every correct answer is equal to the gold, so all correct votes form one group
  however they are written. Wrong answers are grouped by tf-cluster's canonical key
  (normalised text, or the exact value of a number) and then by ``fast_equal`` against one
  answer per group; wrong answers that only SymPy could tell equal stay apart (that can only
  make maj@k slightly too high). Problem summaries already carry tf-cluster's clusters,
  which are used as they are;
- ties: among the groups with the most votes, the one whose first vote came first wins;
- no vote at all among the first k: maj@k = 0.

This module deliberately knows nothing about records.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence
from fractions import Fraction
from typing import Any

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
        from tf_tools.clustering.answers import canonical_key
        from tf_tools.grading.equivalence import fast_equal

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


def majority_curve(votes: Sequence[Hashable | None]) -> list[bool]:
    """maj@k for k = 1 .. len(votes): whether the winning group among the first k is CORRECT.

    ``votes[i]`` is sample i's group key (``CORRECT`` for a correct answer), or None when
    the sample does not vote. Ties go to the group whose first vote came first.
    """
    counts: dict[Hashable, int] = {}
    first: dict[Hashable, int] = {}
    best: Hashable | None = None
    curve = []
    for i, key in enumerate(votes):
        if key is not None:
            counts[key] = counts.get(key, 0) + 1
            first.setdefault(key, i)
            if best is None or counts[key] > counts[best] or (
                    counts[key] == counts[best] and first[key] < first[best]):
                best = key
        curve.append(best == CORRECT)
    return curve


def maj_at_k(votes: Sequence[Hashable | None], k: int) -> bool:
    """maj@k of one problem (see the module docstring for the rule)."""
    if not 1 <= k <= len(votes):
        raise ValueError(f"need 1 <= k <= n, got n={len(votes)}, k={k}")
    return majority_curve(votes[:k])[-1]


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
