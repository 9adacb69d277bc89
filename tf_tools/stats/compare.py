"""Two graded evaluation files, paired by problem: ``tf-stats --compare A.jsonl B.jsonl``.

Both files hold tf-grade's output over the same problems (typically one greedy sample per
problem). Problems are matched by id; the unit of every statistic is the problem:

- a problem's score in a file is its share of correct samples among its gradable ones
  (0 or 1 with one sample per problem). Several samples of a problem are not independent
  observations, so they are averaged per problem, never paired by ``sample_idx``;
- **accuracy** of a file = the mean score over the compared problems (the sample accuracy
  when every problem has the same number of samples); truncation and no-answer rates are
  shares of the gradable samples of those problems;
- **difference** = accuracy of B − accuracy of A (positive: B is better);
- **ci95**: percentile bootstrap of that difference, ``BOOTSTRAP_RESAMPLES`` resamples of the
  problems with replacement (``random.Random(seed)``, seed 0 by default; the per-problem
  differences are sorted first, so the interval does not depend on the order of the files);
- **mcnemar_p**: the exact two-sided McNemar test on the discordant problems — won (B scores
  higher than A) against lost (A higher): ``p = min(1, 2 * sum_{i <= min(b, c)} C(b + c, i) /
  2^(b + c))``, and 1 when no problem is discordant. With one sample per problem this is
  McNemar's test exactly; with several it is the exact sign test on the per-problem scores;
- **won / lost / both_correct / both_wrong** partition the problems (``tied``: equal scores
  strictly between 0 and 1, possible only with several samples per problem).

Ids in one file but not the other are an error unless ``intersect`` is set (then only the
problems in both are compared and the counts of the others are reported). A problem with no
gradable sample in either file (``ungradable``, or marked failed upstream) is left out and
counted. The same (id, sample_idx) twice in one file is an error (two runs concatenated?).
A record that cannot be read as a graded sample (that error, no verdict, any exception) goes
through ``schema.record_failed``: it stops with its file and line, or with ``keep_going`` is
counted ``bad`` and left out like a record failed upstream.

Pure functions: nothing here prints or reads files.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import partial
from typing import Any

from tf_tools.errors import InputError
from tf_tools.schema import VERDICTS, Record, guarded, is_failed
from tf_tools.stats.metrics import quantile
from tf_tools.stats.report import SHOWN_BAD, STEP, bad_entry, failed_here, run_labels
from tf_tools.stats.values import shown

BOOTSTRAP_RESAMPLES = 10_000
SUFFIXES = (".gz", ".zst", ".bz2", ".xz", ".jsonl", ".json", ".parquet")


@dataclass(frozen=True)
class CompareConfig:
    id_key: str = "id"
    intersect: bool = False  # compare on the ids both files have instead of refusing
    seed: int = 0
    resamples: int = BOOTSTRAP_RESAMPLES


@dataclass
class Side:
    """One file's samples, per problem: verdict counts."""

    name: str
    path: str
    problems: dict[Hashable, dict[str, int]] = field(default_factory=dict)
    failed: int = 0  # marked failed upstream
    bad: int = 0  # could not be read here (only with keep_going)
    bad_records: list[dict[str, str]] = field(default_factory=list)  # the first few: where, error


def read_side(records: Iterable[dict[str, Any]], name: str, path: str, id_key: str = "id",
              where: Callable[[], str] | None = None, keep_going: bool = False) -> Side:
    """Collect one file's graded records (tf-grade's output)."""
    side = Side(name, path)
    seen: set[tuple[Hashable, Hashable]] = set()
    for rec in records:
        if not is_failed(rec):
            at = where() if where else None
            _, failed = guarded(rec, STEP, partial(_add_sample, side, seen, rec, id_key, at),
                                keep_going=keep_going, where=at)
            if failed is None:
                continue
            rec = failed
        if failed_here(rec):
            side.bad += 1
            if len(side.bad_records) < SHOWN_BAD:
                side.bad_records.append(bad_entry(rec))
        else:
            side.failed += 1
        pid = _key(rec.get(id_key))
        if pid is not None:  # its problem is left out unless another sample of it is gradable
            side.problems.setdefault(pid, dict.fromkeys(VERDICTS, 0))
    return side


def _key(value: Any) -> Hashable:
    return value if isinstance(value, Hashable) else repr(value)


def _add_sample(side: Side, seen: set[tuple[Hashable, Hashable]], rec: Record, id_key: str,
                where: str | None) -> None:
    verdict = rec.get("verdict")
    if verdict not in VERDICTS:
        raise InputError(f"no tf-grade verdict ({shown(verdict)}): --compare reads graded evaluation files",
                         where, "grade the samples first: tf-sample ... | tf-grade")
    pid = _key(rec.get(id_key))
    if pid is None:
        raise InputError(f"record without an {id_key!r}: problems are matched by id",
                         where, "--id-key names the field that holds the id")
    idx = _key(rec.get("sample_idx"))
    if (pid, idx) in seen:
        raise InputError(f"id {shown(pid)} sample_idx {shown(idx)} appears twice in {side.path}",
                         where, "compare one run per file")
    seen.add((pid, idx))
    side.problems.setdefault(pid, dict.fromkeys(VERDICTS, 0))[verdict] += 1


def labels_for(path_a: str, path_b: str) -> tuple[str, str]:
    """Names a reader would use: the file names without .jsonl (``eval.rft``), or the
    folders that tell them apart when the file names are equal
    (``runs/model.rft/eval.jsonl`` -> ``model.rft``)."""

    def stem(path: str) -> str:
        if path in ("-", "<stdin>"):
            return "stdin"
        for suffix in SUFFIXES:
            if path.endswith(suffix) and len(os.path.basename(path)) > len(suffix):
                path = path[: -len(suffix)]
        return path

    a, b = stem(path_a), stem(path_b)
    if os.path.basename(a) == os.path.basename(b):  # runs/model.rft/eval, runs/model.tf/eval
        a, b = os.path.dirname(os.path.abspath(a)), os.path.dirname(os.path.abspath(b))
    if a == b:
        return "A", "B"
    labels = run_labels([a, b])
    return labels[a], labels[b]


def mcnemar_exact(won: int, lost: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts (a binomial test at 1/2)."""
    if won < 0 or lost < 0:
        raise ValueError(f"counts must be >= 0, got {won}, {lost}")
    m = won + lost
    if m == 0:
        return 1.0
    tail = sum(math.comb(m, i) for i in range(min(won, lost) + 1))
    return float(min(Fraction(1), Fraction(2 * tail, 2 ** m)))


def bootstrap_ci(diffs: Sequence[float], resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``diffs`` (resampling the items)."""
    if not diffs:
        raise ValueError("no differences to resample")
    values = sorted(diffs)  # the interval must not depend on the order of the input
    n = len(values)
    rng = random.Random(seed)
    means = sorted(sum(rng.choices(values, k=n)) / n for _ in range(resamples))
    alpha = (1 - level) / 2
    return quantile(means, alpha), quantile(means, 1 - alpha)


def _side_summary(side: Side, ids: list[Hashable], scores: list[Fraction]) -> dict[str, Any]:
    counts = [side.problems[i] for i in ids]
    gradable = sum(sum(c.values()) - c["ungradable"] for c in counts)
    sizes = [sum(c.values()) - c["ungradable"] for c in counts]
    return {
        "name": side.name,
        "path": side.path,
        "n": len(ids),
        "samples": gradable,
        "samples_per_problem": {"min": min(sizes), "max": max(sizes)},
        "accuracy": float(sum(scores, Fraction(0)) / len(scores)),
        "correct": sum(c["correct"] for c in counts),
        "truncation_rate": sum(c["truncated"] for c in counts) / gradable,
        "no_answer_rate": sum(c["no_answer"] for c in counts) / gradable,
    }


def _score(counts: dict[str, int]) -> Fraction | None:
    gradable = sum(counts.values()) - counts["ungradable"]
    return Fraction(counts["correct"], gradable) if gradable else None


def compare(a: Side, b: Side, cfg: CompareConfig | None = None) -> dict[str, Any]:
    """The paired comparison of two files (the keys are documented in docs/stats.md)."""
    cfg = cfg or CompareConfig()
    only_a = [i for i in a.problems if i not in b.problems]
    only_b = [i for i in b.problems if i not in a.problems]
    if (only_a or only_b) and not cfg.intersect:
        parts = [f"{len(ids):,} problem{'' if len(ids) == 1 else 's'} only in {side.path} "
                 f"(e.g. id {ids[0]!r})"
                 for ids, side in ((only_a, a), (only_b, b)) if ids]
        raise InputError("the two files do not hold the same problems: " + "; ".join(parts),
                         hint="compare evaluations of the same problem set, or pass --intersect "
                              "to compare the problems both files have")
    shared = [i for i in a.problems if i in b.problems]
    ids: list[Hashable] = []
    sa: list[Fraction] = []
    sb: list[Fraction] = []
    for i in shared:
        x, y = _score(a.problems[i]), _score(b.problems[i])
        if x is not None and y is not None:
            ids.append(i)
            sa.append(x)
            sb.append(y)
    if not ids:
        raise InputError(f"no problem of {a.path} and {b.path} has gradable samples in both",
                         hint="--compare reads tf-grade's output over the same problems")
    diffs = [y - x for x, y in zip(sa, sb, strict=True)]  # exact: the difference is not rounded
    won = sum(1 for d in diffs if d > 0)
    lost = sum(1 for d in diffs if d < 0)
    both_correct = sum(1 for x, y in zip(sa, sb, strict=True) if x == y == 1)
    both_wrong = sum(1 for x, y in zip(sa, sb, strict=True) if x == y == 0)
    lo, hi = bootstrap_ci([float(d) for d in diffs], cfg.resamples, cfg.seed)
    return {
        "a": _side_summary(a, ids, sa),
        "b": _side_summary(b, ids, sb),
        "problems": len(ids),
        "difference": float(sum(diffs, Fraction(0)) / len(diffs)),
        "difference_of": "b - a",
        "ci95": [lo, hi],
        "ci_method": f"percentile bootstrap over problems, {cfg.resamples} resamples, seed {cfg.seed}",
        "mcnemar_p": mcnemar_exact(won, lost),
        "test": "exact two-sided McNemar test (binomial at 1/2 on the problems won and lost)",
        "won": won,
        "lost": lost,
        "both_correct": both_correct,
        "both_wrong": both_wrong,
        "tied": len(ids) - won - lost - both_correct - both_wrong,
        "intersect": cfg.intersect,
        "left_out": {"only_in_a": len(only_a), "only_in_b": len(only_b),
                     "ungradable": len(shared) - len(ids)},
        "failed_records": {"a": a.failed, "b": b.failed},
        "bad_records": {"a": a.bad, "b": b.bad},
    }
