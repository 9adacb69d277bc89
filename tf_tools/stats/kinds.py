"""One accumulator per kind of record tf-stats understands (DESIGN §3).

Each takes records one at a time (``add``) and holds only what its summary needs: per
problem the sample order, verdicts and answer groups (for pass@k / maj@k), per sample a token
count, per problem summary five numbers, per loss-log line a few floats. ``add`` works out
everything it needs from a record before it changes anything, so a record it rejects (an
``InputError``, or any other exception) leaves the accumulator as it was. ``summary()``
returns plain JSON-ready dicts; the raw values stay on the object for the plots.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable
from fractions import Fraction
from functools import lru_cache
from typing import Any

from tf_tools.errors import InputError
from tf_tools.models import ApproxTokenCounter
from tf_tools.schema import TF_KEY, VERDICTS, is_int, sample_order
from tf_tools.stats.metrics import (
    CORRECT,
    MAJ_ESTIMATOR,
    AnswerGrouper,
    bin_counts,
    describe,
    maj_curve,
    pass_at_k_exact,
    vote_counts,
)

ERROR_RATE_EDGES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
CLUSTER_HINT = "make problem summaries with tf-cluster"
ENTROPY_STEP = 0.5  # nats; bins up to 2 (ln 8 = 2.08 is the most N = 8 samples can show) or the max


def entropy_edges(values: list[float]) -> list[float]:
    top = max(2.0, math.ceil(max(values, default=0.0) / ENTROPY_STEP) * ENTROPY_STEP)
    return [i * ENTROPY_STEP for i in range(round(top / ENTROPY_STEP) + 1)]


_APPROX = ApproxTokenCounter()


def approx_tokens(text: str) -> int:
    """tf-fuse's approximate count (``\\w+`` runs and single other non-space characters)."""
    return _APPROX.count([{"content": text}])


def _ratio(a: int | Fraction, b: int) -> float | None:
    return float(Fraction(a) / b) if b else None


@lru_cache(maxsize=65536)
def _pass(n: int, c: int, k: int) -> Fraction:
    return pass_at_k_exact(n, c, k)


class KCurves:
    """pass@k and maj@k for k = 1 .. max n, each averaged over the problems with n >= k."""

    def __init__(self) -> None:
        self.pass_sum: list[Fraction] = []
        self.maj_sum: list[Fraction] = []
        self.count: list[int] = []
        self.maj_count: list[int] = []
        self.maj_resampled = 0  # problems whose maj@k came from seeded resamples

    def add(self, n: int, c: int, votes: list[Hashable | None] | None) -> None:
        while len(self.count) < n:
            self.pass_sum.append(Fraction(0))
            self.maj_sum.append(Fraction(0))
            self.count.append(0)
            self.maj_count.append(0)
        for k in range(1, n + 1):
            self.pass_sum[k - 1] += _pass(n, c, k)
            self.count[k - 1] += 1
        if votes is not None:
            counts = vote_counts(votes)
            self.maj_resampled += not counts.exact
            for k, share in enumerate(maj_curve(counts), start=1):
                self.maj_sum[k - 1] += share
                self.maj_count[k - 1] += 1

    def summary(self) -> dict[str, Any]:
        ks = [str(k) for k in range(1, len(self.count) + 1)]
        return {
            "pass_at_k": {k: float(s / c) for k, s, c in zip(ks, self.pass_sum, self.count, strict=True)},
            "maj_at_k": {k: (float(m / c) if c else None)
                         for k, m, c in zip(ks, self.maj_sum, self.maj_count, strict=True)},
            "maj_at_k_estimator": MAJ_ESTIMATOR,
            "maj_at_k_resampled_problems": self.maj_resampled,
            "problems_at_k": dict(zip(ks, self.count, strict=True)),
        }


class GradedStats:
    """Graded trajectories (tf-grade's output): accuracy, verdicts, pass@k, maj@k, tokens."""

    kind = "graded"

    def __init__(self, id_key: str = "id", tolerance: float = 1e-6) -> None:
        self.id_key = id_key
        self.tolerance = tolerance
        self.samples = 0
        self.verdicts: Counter[str] = Counter()
        self.problems: dict[Hashable, list[tuple[tuple[int, Any, int], str, Any]]] = {}
        self.tokens: dict[str, list[int]] = {v: [] for v in VERDICTS}
        self.token_source: Counter[str] = Counter()
        self.labels = [0, 0]  # agree, labelled
        self._result: dict[str, Any] | None = None
        self.per_problem: list[tuple[int, int]] = []  # (n, c) of each problem with n > 0

    def add(self, rec: dict[str, Any], pos: int, where: str | None) -> None:
        verdict = rec.get("verdict")
        if verdict not in VERDICTS:
            raise InputError(f"unknown verdict {verdict!r} (expected one of {', '.join(VERDICTS)})",
                             where, "run tf-grade on the trajectories first")
        pid = rec.get(self.id_key)
        pid = pid if isinstance(pid, Hashable) else repr(pid)
        n_tokens, source = _completion_tokens(rec)
        self.samples += 1
        self.verdicts[verdict] += 1
        self.problems.setdefault(pid, []).append((sample_order(rec, pos), verdict, rec.get("pred")))
        if n_tokens is not None:
            self.tokens[verdict].append(n_tokens)
            self.token_source[source] += 1
        label = rec.get("label")
        if isinstance(label, bool) and verdict != "ungradable":
            self.labels[1] += 1
            self.labels[0] += label == (verdict == "correct")
        self._result = None

    def curves(self) -> KCurves:
        curves = KCurves()
        self.per_problem = []
        for samples in self.problems.values():
            samples.sort(key=lambda s: s[0])
            gradable = [s for s in samples if s[1] != "ungradable"]
            if not gradable:
                continue
            grouper = AnswerGrouper(self.tolerance)
            votes = [_vote(verdict, pred, grouper) for _o, verdict, pred in gradable]
            n, c = len(gradable), sum(1 for s in gradable if s[1] == "correct")
            curves.add(n, c, votes)
            self.per_problem.append((n, c))
        return curves

    def summary(self) -> dict[str, Any]:
        if self._result is not None:
            return self._result
        curves = self.curves()
        gradable = self.samples - self.verdicts["ungradable"]
        ns = [n for n, _c in self.per_problem]
        all_tokens = [t for v in VERDICTS for t in self.tokens[v]]
        out: dict[str, Any] = {
            "samples": self.samples,
            "problems": len(self.problems),
            "samples_per_problem": {"min": min(ns), "max": max(ns)} if ns else None,
            "accuracy": _ratio(self.verdicts["correct"], gradable),
            # the other two shares of the same gradable samples an evaluation must show
            # next to accuracy: hit the length limit (finish_reason length), no answer found
            "truncation_rate": _ratio(self.verdicts["truncated"], gradable),
            "no_answer_rate": _ratio(self.verdicts["no_answer"], gradable),
            "verdicts": {v: self.verdicts[v] for v in VERDICTS},
            "problems_all_correct": sum(1 for n, c in self.per_problem if c == n),
            "problems_some_correct": sum(1 for n, c in self.per_problem if 0 < c < n),
            "problems_none_correct": sum(1 for n, c in self.per_problem if c == 0),
            "problems_ungradable": len(self.problems) - len(self.per_problem),
            **curves.summary(),
            "tokens": _token_summary(all_tokens, self.token_source),
            "tokens_mean_by_verdict": {v: sum(t) / len(t) for v, t in self.tokens.items() if t},
        }
        if self.labels[1]:
            out["label_agreement"] = self.labels[0] / self.labels[1]
            out["labelled"] = self.labels[1]
        self._result = out
        return out


def _vote(verdict: str, pred: Any, grouper: AnswerGrouper) -> Hashable | None:
    if verdict == "correct":
        return CORRECT
    if verdict == "incorrect" and pred is not None:
        return grouper.key(str(pred))
    return None  # no_answer, truncated: a place in a k-subset, but no vote


def _completion_tokens(rec: dict[str, Any]) -> tuple[int | None, str]:
    tf = rec.get(TF_KEY)
    sample = tf.get("sample") if isinstance(tf, dict) else None
    if isinstance(sample, dict):
        n = sample.get("n_completion_tokens")
        if is_int(n):
            return n, "n_completion_tokens"
    text = rec.get("completion")
    if isinstance(text, str):
        return approx_tokens(text), "approx"
    return None, ""


def _token_summary(values: list[int], sources: Counter[str]) -> dict[str, Any] | None:
    d = describe(values)
    if d is None:
        return None
    d["source"] = "+".join(sorted(sources)) if sources else None
    return d


class TrajectoryStats:
    """Trajectories before grading (tf-sample's output): counts, finish reasons, tokens."""

    kind = "trajectories"

    def __init__(self, id_key: str = "id") -> None:
        self.id_key = id_key
        self.samples = 0
        self.per_problem: Counter[Hashable] = Counter()
        self.finish: Counter[str] = Counter()
        self.tokens: list[int] = []
        self.token_source: Counter[str] = Counter()

    def add(self, rec: dict[str, Any], pos: int, where: str | None) -> None:
        n, source = _completion_tokens(rec)
        self.samples += 1
        pid = rec.get(self.id_key)
        self.per_problem[pid if isinstance(pid, Hashable) else repr(pid)] += 1
        self.finish[str(rec.get("finish_reason"))] += 1
        if n is not None:
            self.tokens.append(n)
            self.token_source[source] += 1

    def summary(self) -> dict[str, Any]:
        sizes = list(self.per_problem.values())
        return {
            "samples": self.samples, "problems": len(self.per_problem),
            "samples_per_problem": {"min": min(sizes), "max": max(sizes)} if sizes else None,
            "finish_reason": dict(self.finish.most_common()),
            "truncation_rate": _ratio(self.finish["length"], self.samples),
            "tokens": _token_summary(self.tokens, self.token_source),
        }


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
                vote = key if key is not None else _vote(str(t.get("verdict")), t.get("pred"), grouper)
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
            "accuracy": _ratio(self.c_total, self.n_total),
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


def integer(value: Any) -> int | None:
    """A JSON integer (not a boolean), else None."""
    return value if is_int(value) else None


def real(value: Any) -> float | None:
    """A JSON number as a finite float (not a boolean, not a numeric string), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    x = float(value)
    return x if math.isfinite(x) else None


def shown(value: Any, limit: int = 60) -> str:
    """A value quoted in an error message, cut short (it may be a whole answer)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


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
