"""Accumulator for problem summaries (tf-cluster's output): error rate, entropy, error
modes (the paper's Figure 1), and pass@k / maj@k from the trajectories they carry.

Like the other accumulators (``trajectories.py``), ``add`` checks a record before it changes
anything, and ``summary()`` returns a plain JSON-ready dict.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable
from typing import Any

from tf_tools.errors import InputError
from tf_tools.schema import sample_order
from tf_tools.stats.metrics import CORRECT, AnswerGrouper, bin_counts, describe
from tf_tools.stats.trajectories import KCurves, answer_vote, ratio
from tf_tools.stats.values import integer, real, shown

ERROR_RATE_EDGES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
CLUSTER_HINT = "make problem summaries with tf-cluster"
ENTROPY_STEP = 0.5  # nats; bins up to 2 (ln 8 = 2.08 is the most N = 8 samples can show) or the max


def entropy_edges(values: list[float]) -> list[float]:
    top = max(2.0, math.ceil(max(values, default=0.0) / ENTROPY_STEP) * ENTROPY_STEP)
    return [i * ENTROPY_STEP for i in range(round(top / ENTROPY_STEP) + 1)]


class ProblemStats:
    """Problem summaries (tf-cluster's output): error rate, entropy, error modes (the paper's
    Figure 1), and pass@k / maj@k from the trajectories they carry."""

    kind = "problems"

    def __init__(self, id_key: str = "id", tolerance: float = 1e-6) -> None:
        self.id_key = id_key
        self.tolerance = tolerance
        self.problems = 0
        self.n_total = 0
        self.c_total = 0
        self.modes: list[int] = []  # n_error_modes of every problem
        # of the problems with n > 0, aligned:
        self.error_rates: list[float] = []
        self.entropies: list[float] = []
        self.gradable_modes: list[int] = []
        self.no_gradable = 0
        self.no_correct = 0
        self.fusable = 0  # some correct and at least one wrong-answer cluster
        self.curves = KCurves()
        self.maj_partial = 0  # problems whose trajectories do not add up to n (no maj@k)

    def add(self, rec: dict[str, Any], pos: int, where: str | None) -> None:
        n, c, modes = (integer(rec.get(k)) for k in ("n", "n_correct", "n_error_modes"))
        if n is None or c is None or modes is None or not 0 <= c <= n or modes < 0:
            raise InputError("problem summary needs integers 0 <= 'n_correct' <= 'n' and "
                             "'n_error_modes' >= 0", where, CLUSTER_HINT)
        if n == 0:
            self.problems += 1
            self.modes.append(modes)
            self.no_gradable += 1
            return
        rate, h = _rate_and_entropy(rec, n, c, where)
        votes = self._votes(rec)
        self.problems += 1
        self.modes.append(modes)
        self.n_total += n
        self.c_total += c
        self.error_rates.append(rate)
        self.entropies.append(h)
        self.gradable_modes.append(modes)
        self.no_correct += c == 0
        self.fusable += c > 0 and modes > 0
        if votes is not None and len(votes) != n:
            self.maj_partial += 1
            votes = None
        self.curves.add(n, c, votes)

    def _votes(self, rec: dict[str, Any]) -> list[Hashable | None] | None:
        """The problem's samples as maj@k votes; tf-cluster's clusters are the groups of
        wrong answers."""
        clusters = rec.get("clusters")
        if not isinstance(clusters, list):
            return None
        lists: list[tuple[Any, Hashable | None]] = [(rec.get("correct"), CORRECT)]
        lists += [(cl.get("trajectories") if isinstance(cl, dict) else None, ("cluster", j))
                  for j, cl in enumerate(clusters)]
        lists.append((rec.get("unclustered"), None))
        grouper = AnswerGrouper(self.tolerance)
        placed: list[tuple[tuple[int, Any, int], Hashable | None]] = []
        for trajs, key in lists:
            for t in trajs if isinstance(trajs, list) else []:
                if not isinstance(t, dict) or t.get("verdict") == "ungradable":
                    continue
                vote = key if key is not None else answer_vote(str(t.get("verdict")), t.get("pred"), grouper)
                placed.append((sample_order(t, len(placed)), vote))
        placed.sort(key=lambda p: p[0])
        return [v for _o, v in placed]

    @property
    def error_entropies(self) -> list[float]:
        """Entropies of the problems with at least one wrong-answer cluster (the others
        have no errors to spread: their 0 says nothing about diversity)."""
        return [h for h, m in zip(self.entropies, self.gradable_modes, strict=True) if m > 0]

    def summary(self) -> dict[str, Any]:
        with_errors = self.error_entropies
        return {
            "problems": self.problems,
            "samples": self.n_total,
            "accuracy": ratio(self.c_total, self.n_total),
            "error_rate": {**(describe(self.error_rates) or {}),
                           "histogram": bin_counts(self.error_rates, ERROR_RATE_EDGES,
                                                   exact_low=True, exact_high=True)},
            "entropy": {"over": "problems with at least one wrong-answer cluster",
                        **(describe(with_errors) or {"count": 0}),
                        "histogram": bin_counts(with_errors, entropy_edges(with_errors), exact_low=True)},
            "error_modes": {"mean": _mean(self.modes),
                            "counts": {str(k): v for k, v in sorted(Counter(self.modes).items())}},
            "effective_modes_mean": _mean([math.exp(h) for h in with_errors]),
            "problems_no_correct": self.no_correct,
            "problems_all_correct": sum(1 for e in self.error_rates if e == 0),
            "problems_fusable": self.fusable,
            "problems_no_gradable": self.no_gradable,
            **self.curves.summary(),
            **({"problems_without_maj": self.maj_partial} if self.maj_partial else {}),
        }


def _rate_and_entropy(rec: dict[str, Any], n: int, c: int, where: str | None) -> tuple[float, float]:
    """A problem summary's error rate (wrong / n unless it says) and entropy (0 unless it says).

    The entropy of n samples' wrong answers is at most ln n nats; a larger one (or a
    string) is not tf-cluster's and would overflow e^H.
    """
    raw_rate, raw_h = rec.get("error_rate"), rec.get("entropy")
    rate = (n - c) / n if raw_rate is None else real(raw_rate)
    if rate is None or not 0 <= rate <= 1:
        raise InputError(f"'error_rate' must be a number from 0 to 1, got {shown(raw_rate)}",
                         where, CLUSTER_HINT)
    h = 0.0 if raw_h is None else real(raw_h)
    top = math.log(n)
    if h is None or not 0 <= h <= top + 1e-6:
        raise InputError(f"'entropy' must be a number from 0 to ln(n) = {top:.4g} nats "
                         f"(n = {n}), got {shown(raw_h)}", where, CLUSTER_HINT)
    return rate, h


def _mean(values: list[float] | list[int]) -> float | None:
    return sum(values) / len(values) if values else None
