"""Accumulators for trajectories: tf-sample's (``TrajectoryStats``) and tf-grade's
(``GradedStats``), and the pass@k / maj@k curves over problems (``KCurves``) that graded
trajectories and problem summaries (``problems.py``) share.

Like every accumulator of tf-stats (``problems.py``, ``training.py``), each takes records
one at a time (``add``) and holds only what its summary needs: per problem the sample order,
verdicts and answer groups (for pass@k / maj@k), per sample a token count. ``add`` works out
everything it needs from a record before it changes anything, so a record it rejects (an
``InputError``, or any other exception) leaves the accumulator as it was. ``summary()``
returns plain JSON-ready dicts; the raw values stay on the object for the plots.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable
from fractions import Fraction
from functools import lru_cache
from typing import Any

from tf_tools.errors import InputError
from tf_tools.models import ApproxTokenCounter
from tf_tools.schema import VERDICTS, is_int, provenance, sample_order
from tf_tools.stats.metrics import (
    CORRECT,
    MAJ_ESTIMATOR,
    AnswerGrouper,
    describe,
    maj_curve,
    pass_at_k_exact,
    vote_counts,
)

_APPROX = ApproxTokenCounter()


def approx_tokens(text: str) -> int:
    """tf-fuse's approximate count (``\\w+`` runs and single other non-space characters)."""
    return _APPROX.count([{"content": text}])


def ratio(a: int | Fraction, b: int) -> float | None:
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
            votes = [answer_vote(verdict, pred, grouper) for _o, verdict, pred in gradable]
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
            "accuracy": ratio(self.verdicts["correct"], gradable),
            # the other two shares of the same gradable samples an evaluation must show
            # next to accuracy: hit the length limit (finish_reason length), no answer found
            "truncation_rate": ratio(self.verdicts["truncated"], gradable),
            "no_answer_rate": ratio(self.verdicts["no_answer"], gradable),
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


def answer_vote(verdict: str, pred: Any, grouper: AnswerGrouper) -> Hashable | None:
    """A sample's maj@k vote: every correct answer the same group, a wrong one its answer's key."""
    if verdict == "correct":
        return CORRECT
    if verdict == "incorrect" and pred is not None:
        return grouper.key(str(pred))
    return None  # no_answer, truncated: a place in a k-subset, but no vote


def _completion_tokens(rec: dict[str, Any]) -> tuple[int | None, str]:
    sample = provenance(rec, "sample")
    if sample is not None:
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
            "truncation_rate": ratio(self.finish["length"], self.samples),
            "tokens": _token_summary(self.tokens, self.token_source),
        }
