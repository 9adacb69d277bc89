"""tf-stats: pass@k and maj@k against hand-computed values, every summary on real files.

Real data: the bundled examples/data files (graded here by the real tf-grade core, then
clustered and fused by the real cores), the DESIGN §4 worked example, a tf-train loss log
written with tf-train's own StepInfo records, and (``shared_data``) real model outputs from
../shared/data/trajectories converted with examples/convert_trajectories.py.
"""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
from collections import Counter
from fractions import Fraction

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tf_tools.cli.stats import app
from tf_tools.clustering import ClusterConfig, cluster_records
from tf_tools.fusion import FuseConfig, FuseStats, fuse_records
from tf_tools.grading.grader import GradeConfig, grade_records
from tf_tools.records import read_jsonl_file
from tf_tools.stats import (
    CORRECT,
    AnswerGrouper,
    StatsConfig,
    VoteCounts,
    field_value,
    kind_of,
    maj_at_k,
    maj_curve,
    pass_at_k,
    pass_at_k_exact,
    summarize,
    vote_counts,
)
from tf_tools.stats.metrics import MAJ_EXACT_MAX_N, MAJ_RESAMPLES, bin_counts

from .conftest import ROOT, write_jsonl

runner = CliRunner()
EXAMPLES = ROOT / "examples" / "data"
QWEN = EXAMPLES / "qwen25math_math_25x8.jsonl"  # 25 MATH problems x 8 samples, with `level`
GSM8K = EXAMPLES / "gsm8k_gpt3_50x4.jsonl"  # 50 GSM8K problems x 4 (2 per GPT-3 model)
CONVERT = ROOT / "examples" / "convert_trajectories.py"


def stats_of(records, **cfg):
    return summarize(records, StatsConfig(**cfg)).to_dict()


def invoke(args, records=None):
    text = None if records is None else "".join(orjson.dumps(r).decode() + "\n" for r in records)
    return runner.invoke(app, args, input=text)


# --------------------------------------------------------------------------- pass@k by hand


@pytest.mark.parametrize(("n", "c", "k", "expected"), [
    (1, 0, 1, Fraction(0)),  # n = 1
    (1, 1, 1, Fraction(1)),
    (5, 2, 1, Fraction(2, 5)),  # k = 1 is c/n
    (5, 2, 2, Fraction(7, 10)),  # 1 - C(3,2)/C(5,2) = 1 - 3/10
    (5, 2, 3, Fraction(9, 10)),  # 1 - C(3,3)/C(5,3) = 1 - 1/10
    (5, 2, 4, Fraction(1)),  # n - c < k: every 4-subset holds a correct one
    (4, 1, 4, Fraction(1)),  # k = n with a correct sample
    (4, 0, 4, Fraction(0)),  # k = n without one
    (8, 8, 8, Fraction(1)),
    (10, 3, 5, Fraction(11, 12)),  # 1 - C(7,5)/C(10,5) = 1 - 21/252
    (1000, 1, 500, Fraction(1, 2)),  # big binomials: 1 - C(999,500)/C(1000,500) = 1 - 500/1000
])
def test_pass_at_k_hand_computed(n, c, k, expected):
    assert pass_at_k_exact(n, c, k) == expected
    assert pass_at_k(n, c, k) == float(expected)


@pytest.mark.parametrize(("n", "c", "k"), [(4, 5, 1), (4, -1, 1), (4, 2, 0), (4, 2, 5), (0, 0, 1)])
def test_pass_at_k_rejects_impossible_arguments(n, c, k):
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


@given(st.integers(1, 60).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(1, n))))
def test_pass_at_k_matches_chen_et_al_product_form(nck):
    n, c, k = nck
    # the numerically stable form of Chen et al. 2021 (their numpy code, in plain Python)
    chen = 1.0 if n - c < k else 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))
    assert pass_at_k(n, c, k) == pytest.approx(chen, abs=1e-12)
    assert pass_at_k_exact(n, c, 1) == Fraction(c, n)


# --------------------------------------------------------------------------- maj@k by hand

W7, W9 = ("wrong", 0), ("wrong", 1)
F = Fraction


def subsets_oracle(votes):
    """maj@k by enumerating every k-subset: the definition, written out."""
    n, out = len(votes), []
    for k in range(1, n + 1):
        total = Fraction(0)
        for subset in itertools.combinations(votes, k):
            tally = Counter(v for v in subset if v is not None)
            top = max(tally.values(), default=0)
            if tally[CORRECT] and tally[CORRECT] == top:
                total += Fraction(1, sum(1 for c in tally.values() if c == top))
        out.append(total / math.comb(n, k))
    return out


def old_full_set_majority(votes):
    """The previous rule at k = n: most votes wins, a tie goes to the answer voted for first."""
    tally, first = Counter(), {}
    for i, v in enumerate(votes):
        if v is not None:
            tally[v] += 1
            first.setdefault(v, i)
    if not tally:
        return False
    return min(tally, key=lambda v: (-tally[v], first[v])) == CORRECT


@pytest.mark.parametrize(("votes", "expected"), [
    ([CORRECT], [F(1)]),
    ([None], [F(0)]),  # no vote: 0
    ([CORRECT, W7], [F(1, 2), F(1, 2)]),  # k=2: a 1:1 tie counts 1/2
    ([CORRECT, CORRECT, W7], [F(2, 3), F(2, 3), F(1)]),  # k=2: {C,C} 1, {C,W} 1/2 twice -> 2/3
    # k=2: {C,W} 1/2 x2, {C,-} 1, {W,W} {W,-} x2 0 -> 2/6; k=3: {C,W,-} 1/2 x2 of 4; k=4: 1:2
    ([CORRECT, W7, W7, None], [F(1, 4), F(1, 3), F(1, 4), F(0)]),
    # worked out in the docs: ungradable left out, no_answer and truncated do not vote
    ([None, None, W7, CORRECT, CORRECT], [F(2, 5), F(3, 5), F(7, 10), F(4, 5), F(1)]),
    ([W9, W7, CORRECT], [F(1, 3), F(1, 3), F(1, 3)]),  # every k: a 3-way tie or one vote each
])
def test_maj_at_k_hand_computed(votes, expected):
    assert list(maj_curve(vote_counts(votes))) == expected
    assert [maj_at_k(votes, k) for k in range(1, len(votes) + 1)] == expected
    assert subsets_oracle(votes) == expected
    with pytest.raises(ValueError):
        maj_at_k(votes, len(votes) + 1)


VOTES = st.lists(st.sampled_from([CORRECT, W7, W9, ("wrong", 2), None]), min_size=1, max_size=9)


@settings(deadline=None)  # a busy 2-core machine: the oracle enumerates up to 2^9 subsets
@given(VOTES)
def test_maj_at_k_is_the_expectation_over_k_subsets(votes):
    assert list(maj_curve(vote_counts(votes))) == subsets_oracle(votes)


@settings(deadline=None)
@given(VOTES, st.randoms(use_true_random=False))
def test_maj_at_1_is_pass_at_1_and_maj_at_n_the_full_set_majority(votes, rnd):
    n, c = len(votes), votes.count(CORRECT)
    curve = maj_curve(vote_counts(votes))
    assert curve[0] == pass_at_k_exact(n, c, 1)  # exactly, as fractions
    tally = Counter(v for v in votes if v is not None)
    top = max(tally.values(), default=0)
    tied = sum(1 for x in tally.values() if x == top)
    if tied <= 1:  # no tie at the top: the old rule's answer
        assert curve[-1] == old_full_set_majority(votes)
    else:  # a t-way tie: 1/t when the correct answer is among the tied
        assert curve[-1] == (Fraction(1, tied) if tally[CORRECT] == top else 0)
    assert all(m <= pass_at_k_exact(n, c, k) for k, m in enumerate(curve, start=1))
    shuffled = list(votes)
    rnd.shuffle(shuffled)
    assert maj_curve(vote_counts(shuffled)) == curve  # the order of the samples does not matter


def test_maj_at_k_resampled_above_the_exact_limit_is_seeded_and_close():
    from tf_tools.stats.metrics import _exact_curve

    counts = VoteCounts(correct=120, wrong=(90, 60, 30, 1, 1), abstain=MAJ_EXACT_MAX_N)
    assert counts.n > MAJ_EXACT_MAX_N and not counts.exact
    curve = maj_curve(counts)
    maj_curve.cache_clear()
    assert maj_curve(counts) == curve  # seeded: the same numbers again
    assert curve[0] == Fraction(120, counts.n)  # k = 1 and k = n exact
    assert curve[-1] == 1
    exact = _exact_curve(counts)  # the exact count still works at this size, just slower
    assert exact[0] == curve[0] and exact[-1] == curve[-1]
    se = 0.5 / math.sqrt(MAJ_RESAMPLES)
    assert max(abs(float(e) - float(r)) for e, r in zip(exact, curve, strict=True)) < 5 * se
    # one problem over the limit is counted in the summary
    recs = graded("big", [("correct", "1")] * 3 + [("incorrect", "2")] * (MAJ_EXACT_MAX_N - 1))
    s = stats_of(recs)["graded"]["all"]
    assert s["maj_at_k_resampled_problems"] == 1 and "seeded" in s["maj_at_k_estimator"]


def test_answer_grouper_uses_tf_grades_normal_form():
    g = AnswerGrouper()
    half = g.key("\\frac{1}{2}")
    assert g.key("0.5") == half and g.key("1/2") == half and g.key("\\dfrac12") == half
    assert g.key("$12$") == g.key("12") == g.key("12 apples") != half
    assert g.key("7") != g.key("8")


def graded(pid, verdicts_preds, **extra):
    return [{"id": pid, "sample_idx": i, "verdict": v, "correct": v == "correct", "pred": p, **extra}
            for i, (v, p) in enumerate(verdicts_preds)]


def test_maj_at_k_on_graded_records_groups_equal_wrong_answers():
    # gold 3: two wrong votes for one half (written two ways) beat one correct vote at k=3
    s = stats_of(graded("p", [("correct", "3"), ("incorrect", "1/2"), ("incorrect", "0.5")]))["graded"]["all"]
    assert s["maj_at_k"] == {"1": 1 / 3, "2": 1 / 3, "3": 0.0}
    assert s["maj_at_k_estimator"].startswith("expectation over the k-subsets")
    assert s["maj_at_k_resampled_problems"] == 0
    # no_answer and truncated samples take a place but do not vote; ungradable ones are not in n
    recs = graded("q", [("ungradable", None), ("no_answer", None), ("truncated", "7"),
                        ("incorrect", "7"), ("correct", "3"), ("correct", "3.0")])
    s = stats_of(recs)["graded"]["all"]
    assert s["samples_per_problem"] == {"min": 5, "max": 5}
    assert s["maj_at_k"] == {"1": 0.4, "2": 0.6, "3": 0.7, "4": 0.8, "5": 1.0}
    assert s["pass_at_k"]["1"] == s["maj_at_k"]["1"] == 2 / 5 and s["accuracy"] == 2 / 5
    # the order of the samples does not matter
    assert stats_of(list(reversed(recs)))["graded"]["all"]["maj_at_k"] == s["maj_at_k"]


def test_truncation_and_no_answer_rates_next_to_accuracy():
    recs = graded("p", [("correct", "1"), ("truncated", None), ("truncated", "2"), ("no_answer", None),
                        ("incorrect", "3"), ("ungradable", None)])
    s = stats_of(recs)["graded"]["all"]
    # shares of the 5 gradable samples, as accuracy is
    assert (s["accuracy"], s["truncation_rate"], s["no_answer_rate"]) == (0.2, 0.4, 0.2)
    res = invoke([], recs)
    assert res.exit_code == 0
    lines = res.stdout.splitlines()
    row = next(i for i, line in enumerate(lines) if line.strip().startswith("accuracy"))
    assert "20.0%" in lines[row]
    assert lines[row + 1].split()[:2] == ["truncated", "40.0%"] and "hit the length limit" in lines[row + 1]
    assert lines[row + 2].split()[:3] == ["no", "answer", "20.0%"]
    res = invoke(["--by", "id"], recs)
    header = next(line for line in res.stdout.splitlines() if "accuracy" in line).split()
    assert header[header.index("accuracy") + 1] == "truncated"
    assert "40.0%" in res.stdout
    # trajectories before grading: the share with finish_reason length
    trajs = [{"id": "p", "sample_idx": i, "completion": "x", "finish_reason": f}
             for i, f in enumerate(["stop", "length", "length", "stop"])]
    assert stats_of(trajs)["trajectories"]["all"]["truncation_rate"] == 0.5


# --------------------------------------------------------------------------- the worked example

GOLDEN = [("\\boxed{12}", "stop"), ("so \\boxed{12}", "stop"), ("\\boxed{7}", "stop"),
          ("gives \\boxed{7}", "stop"), ("makes \\boxed{7}", "stop"), ("\\boxed{15}", "stop"),
          ("1, 2, 3, 4, 5, 6, 7, 8,", "length"), ("\\boxed{9}", "stop")]


def golden_graded():
    recs = [{"id": "golden", "problem": "4 boxes of 3 apples: how many apples?", "answer": "12",
             "sample_idx": i, "completion": t, "finish_reason": f} for i, (t, f) in enumerate(GOLDEN)]
    return list(grade_records(recs, GradeConfig(workers=1)))


def test_worked_example_from_graded_trajectories_and_from_its_problem_summary():
    g = golden_graded()
    (summary,) = cluster_records(g, ClusterConfig(math_verify=False))
    report = stats_of([*g, summary])
    a, p = report["graded"]["all"], report["problems"]["all"]
    # votes: C C 7 7 7 15 (truncated: none) 9 -> every k-subset, counted by the definition
    votes = [CORRECT, CORRECT, W7, W7, W7, W9, None, ("wrong", 2)]
    expected_maj = {str(k): float(m) for k, m in enumerate(subsets_oracle(votes), start=1)}
    assert a["maj_at_k"] == p["maj_at_k"] == expected_maj
    assert a["maj_at_k"]["1"] == a["pass_at_k"]["1"] == 0.25
    assert a["maj_at_k"]["8"] == 0.0  # 2 votes for 12 against 3 for 7
    assert a["maj_at_k"]["2"] == float(F(1 + 10 * F(1, 2) + 2, 28))  # {12,12}, {12,wrong} x10, {12,-} x2
    assert a["pass_at_k"] == p["pass_at_k"]
    assert a["pass_at_k"]["1"] == 0.25 and a["pass_at_k"]["8"] == 1.0
    assert a["pass_at_k"]["2"] == float(1 - Fraction(math.comb(6, 2), math.comb(8, 2)))
    assert a["verdicts"] == {"correct": 2, "incorrect": 5, "no_answer": 0, "truncated": 1, "ungradable": 0}
    assert p["error_rate"]["mean"] == 0.75
    assert p["entropy"]["mean"] == pytest.approx(0.9503, abs=1e-4)
    assert p["effective_modes_mean"] == pytest.approx(2.586, abs=1e-3)
    assert p["error_modes"]["counts"] == {"3": 1}
    assert p["error_rate"]["histogram"]["(0.6, 0.8]"] == 1
    assert p["problems_fusable"] == 1


# --------------------------------------------------------------------------- bundled real files


@pytest.fixture(scope="module")
def graded_examples():
    cfg = GradeConfig(workers=2)
    return {"qwen": list(grade_records(read_jsonl_file(str(QWEN)), cfg)),
            "gsm8k": list(grade_records(read_jsonl_file(str(GSM8K)), cfg))}


@pytest.fixture(scope="module")
def qwen_pipeline(graded_examples):
    problems = list(cluster_records(graded_examples["qwen"], ClusterConfig(workers=2)))
    fuse_stats = FuseStats()
    samples = list(fuse_records(problems, FuseConfig(seed=0), fuse_stats))
    return problems, samples, fuse_stats


def per_problem(records):
    out: dict = {}
    for r in records:
        out.setdefault(r["id"], []).append(r)
    for recs in out.values():
        recs.sort(key=lambda r: r["sample_idx"])
    return out


@pytest.mark.parametrize("name", ["qwen", "gsm8k"])
def test_graded_summary_of_bundled_real_files(graded_examples, name):
    recs = graded_examples[name]
    s = stats_of(recs)["graded"]["all"]
    problems = per_problem(recs)
    n = {"qwen": 8, "gsm8k": 4}[name]
    assert s["samples"] == len(recs) and s["problems"] == len(problems)
    assert s["samples_per_problem"] == {"min": n, "max": n}
    assert s["verdicts"] == {v: Counter(r["verdict"] for r in recs)[v] for v in s["verdicts"]}
    assert s["verdicts"]["ungradable"] == 0
    correct = sum(r["correct"] for r in recs)
    assert s["accuracy"] == correct / len(recs)
    assert s["pass_at_k"]["1"] == s["accuracy"]  # exactly: same n for every problem
    assert len(s["pass_at_k"]) == n and set(s["problems_at_k"].values()) == {len(problems)}
    any_correct = sum(any(r["correct"] for r in rs) for rs in problems.values())
    assert s["pass_at_k"][str(n)] == any_correct / len(problems)
    mean_pass_2 = sum(pass_at_k(n, sum(r["correct"] for r in rs), 2) for rs in problems.values()) / len(problems)
    assert s["pass_at_k"]["2"] == pytest.approx(mean_pass_2, abs=1e-12)
    values = [s["pass_at_k"][str(k)] for k in range(1, n + 1)]
    assert values == sorted(values)  # pass@k never falls with k
    # one estimator family: maj@1 is pass@1 exactly; maj@k never beats pass@k
    assert s["maj_at_k"]["1"] == s["pass_at_k"]["1"]
    assert all(s["maj_at_k"][k] <= s["pass_at_k"][k] + 1e-12 for k in s["pass_at_k"])
    assert s["problems_all_correct"] + s["problems_some_correct"] + s["problems_none_correct"] == len(problems)
    assert s["tokens"]["source"] == "approx" and s["tokens"]["count"] == len(recs)
    labelled = [r for r in recs if isinstance(r["label"], bool)]
    assert s["label_agreement"] == sum(r["label"] == r["correct"] for r in labelled) / len(labelled)


def test_qwen_values(graded_examples):
    s = stats_of(graded_examples["qwen"])["graded"]["all"]
    # what tf-grade finds in the bundled Qwen2.5-Math file: 191 of 200 correct
    assert s["verdicts"]["correct"] == 191 and s["accuracy"] == 0.955
    assert s["problems_all_correct"] == 23 and s["problems_some_correct"] == 2
    assert s["pass_at_k"]["8"] == 1.0


def test_by_field_and_dotted_path(graded_examples):
    recs = graded_examples["qwen"]
    report = stats_of(recs, by="level")["graded"]
    assert report["by"] == "level"
    groups = report["groups"]
    assert list(groups) == sorted(groups) and set(groups) == {r["level"] for r in recs}
    assert sum(g["samples"] for g in groups.values()) == 200
    assert sum(g["problems"] for g in groups.values()) == 25
    for level, g in groups.items():
        mine = [r for r in recs if r["level"] == level]
        assert g["accuracy"] == sum(r["correct"] for r in mine) / len(mine)
    # a per-sample field: each model's two samples of a problem form that model's problem
    by_model = stats_of(graded_examples["gsm8k"], by="source.model")["graded"]["groups"]
    assert set(by_model) == {"GPT-3 6B", "GPT-3 175B"}
    for g in by_model.values():
        assert g["problems"] == 50 and g["samples"] == 100
        assert g["samples_per_problem"] == {"min": 2, "max": 2}
        assert g["pass_at_k"]["1"] == g["accuracy"]
    assert field_value({"source": {"model": None}}, "source.model") == "(none)"
    assert field_value({"a": {"b": 3}}, "a.b") == "3"
    assert field_value({"a.b": "x"}, "a.b") == "x"
    assert field_value({}, "level") == "(none)"


def test_problem_summaries_of_bundled_real_file(graded_examples, qwen_pipeline):
    problems, _samples, _ = qwen_pipeline
    g = stats_of(graded_examples["qwen"])["graded"]["all"]
    s = stats_of(problems)["problems"]["all"]
    assert s["problems"] == 25 and s["samples"] == 200 and s["accuracy"] == g["accuracy"]
    assert s["pass_at_k"] == g["pass_at_k"]  # from n and n_correct: the same numbers
    # maj@k from tf-cluster's clusters agrees with tf-stats' own grouping on this file
    assert s["maj_at_k"] == g["maj_at_k"]
    rates = [p["error_rate"] for p in problems]
    assert s["error_rate"]["mean"] == pytest.approx(sum(rates) / 25)
    assert sum(s["error_rate"]["histogram"].values()) == 25
    assert s["error_rate"]["histogram"]["0"] == sum(r == 0 for r in rates) == 23
    with_errors = [p["entropy"] for p in problems if p["n_error_modes"] > 0]
    assert s["entropy"]["count"] == len(with_errors) == 2
    assert s["entropy"]["max"] == pytest.approx(max(with_errors))
    assert s["error_modes"]["counts"] == {str(k): v for k, v in
                                          sorted(Counter(p["n_error_modes"] for p in problems).items())}
    assert s["problems_no_correct"] == sum(p["n_correct"] == 0 for p in problems)


def test_training_samples_of_bundled_real_file(qwen_pipeline):
    _problems, samples, fuse_stats = qwen_pipeline
    s = stats_of(samples)["samples"]["all"]
    assert s["samples"] == fuse_stats.samples == len(samples)
    assert s["kinds"].get("fused", 0) == fuse_stats.fused and s["kinds"]["rft"] == fuse_stats.rft
    assert s["k"] == {str(k): v for k, v in sorted(fuse_stats.k.items())}
    # the same counter (tf-fuse's approximation) gives tf-fuse's own multiplier exactly
    assert s["tokens"]["total"] == fuse_stats.tokens
    assert s["tokens"]["rft_equivalent"] == fuse_stats.rft_tokens
    assert s["tokens"]["multiplier"] == fuse_stats.multiplier
    assert s["tokens"]["multiplier_by_k"]["0"] == 1.0
    assert s["fuse"]["policy"] == "adaptive"
    assert sum(s["segment_char_share"].values()) == pytest.approx(1.0)
    by = stats_of(samples, by="kind")["samples"]["groups"]
    assert by["rft"]["k"] == {"0": fuse_stats.rft}
    assert by["rft"]["tokens"]["multiplier"] == 1.0


# --------------------------------------------------------------------------- training runs


def write_run(folder, losses):
    from tf_tools.training.loop import StepInfo  # tf-train's own loss-log record

    folder.mkdir(parents=True)
    lines = [StepInfo(i + 1, (i + 1) / len(losses), loss, 1e-4, 1.0, 100 * (i + 1), 80 * (i + 1),
                      120 * (i + 1), 0.5 * (i + 1)).record() for i, loss in enumerate(losses)]
    write_jsonl(folder / "loss.jsonl", lines)
    return folder


def test_loss_log_from_run_folder_file_and_manifest(tmp_path):
    run_a = write_run(tmp_path / "runs" / "model.rft", [2.0, 1.5, 1.7, 1.2, 1.25])
    run_b = write_run(tmp_path / "runs" / "model.trajfusion", [3.0, 2.0])
    res = invoke([str(run_a), "--json"])
    assert res.exit_code == 0, res.output
    runs = orjson.loads(res.stdout)["loss"]["runs"]
    assert list(runs) == ["model.rft"]  # the run folder's name, not its path
    a = runs["model.rft"]
    assert a["path"] == str(run_a)
    assert (a["steps"], a["first_loss"], a["final_loss"]) == (5, 2.0, 1.25)
    assert (a["min_loss"], a["min_loss_step"]) == (1.2, 4)
    assert a["tokens"] == 500 and a["tokens_per_s"] == 200.0
    assert a["curve"] == [[1, 2.0], [2, 1.5], [3, 1.7], [4, 1.2], [5, 1.25]]
    same = orjson.loads(invoke([str(run_a / "loss.jsonl"), "--json"]).stdout)
    assert same["loss"]["runs"]["model.rft"] == a
    both = orjson.loads(invoke([str(run_a), str(run_b), "--json"]).stdout)["loss"]["runs"]
    assert list(both) == ["model.rft", "model.trajfusion"] and both["model.trajfusion"]["final_loss"] == 2.0
    # tf-train's manifest on stdin: its loss log is read
    manifest = {"run": str(run_a), "loss_log": str(run_a / "loss.jsonl"), "final_loss": 1.25}
    res = invoke(["-", "--json"], [manifest])
    assert orjson.loads(res.stdout)["loss"]["runs"]["model.rft"] == a
    res = invoke([str(run_a), str(run_b)])
    assert res.exit_code == 0 and "training runs" in res.stdout and "1.2500" in res.stdout
    assert "model.trajfusion" in res.stdout and str(tmp_path) not in res.stdout
    (tmp_path / "empty").mkdir()
    res = invoke([str(tmp_path / "empty")])
    assert res.exit_code == 1 and "without a loss.jsonl" in res.stderr


def test_run_labels_are_folder_names_told_apart_by_their_parents():
    from tf_tools.stats.report import run_labels

    assert run_labels(["/w/runs/model.rft", "runs/model.trajfusion"]) == {
        "/w/runs/model.rft": "model.rft", "runs/model.trajfusion": "model.trajfusion"}
    assert run_labels(["/w/seed0/model.rft", "/w/seed1/model.rft", "/w/seed1/model.tf"]) == {
        "/w/seed0/model.rft": "seed0/model.rft", "/w/seed1/model.rft": "seed1/model.rft",
        "/w/seed1/model.tf": "model.tf"}


def test_loss_chart_tells_two_runs_apart(tmp_path):
    pytest.importorskip("matplotlib")
    from tf_tools.stats.plots import _loss, _pyplot
    from tf_tools.stats.report import run_labels
    from tf_tools.stats.training import LossStats

    accs = {}
    for name in ("model.rft", "model.trajfusion"):
        path = write_run(tmp_path / name, [3.0 - 0.01 * i + 0.05 * (i % 3) for i in range(120)])
        acc = accs[str(path)] = LossStats()
        for i, rec in enumerate(read_jsonl_file(str(path / "loss.jsonl"))):
            acc.add(rec, i, None)
    plt = _pyplot()
    fig = _loss(plt, accs, run_labels(list(accs)))
    ax = fig.axes[0]
    shown = {line.get_label(): line for line in ax.get_lines() if not line.get_label().startswith("_")}
    assert [label.split(" (")[0] for label in shown] == ["model.rft", "model.trajfusion"]
    first, second = shown.values()
    assert first.get_color() != second.get_color()
    assert first.get_linestyle() != second.get_linestyle()
    assert first.get_marker() != second.get_marker()
    assert ax.get_legend() is not None
    assert "model.rft vs model.trajfusion" in ax.get_title() and str(tmp_path) not in ax.get_title()
    plt.close(fig)


def test_eval_loss_joins_the_summary_the_table_and_the_chart(tmp_path):
    pytest.importorskip("matplotlib")
    from tf_tools.stats.plots import _loss, _pyplot
    from tf_tools.stats.report import run_labels
    from tf_tools.stats.training import LossStats

    run = write_run(tmp_path / "runs" / "model.tf", [2.0, 1.5, 1.4, 1.2])
    lines = list(read_jsonl_file(str(run / "loss.jsonl")))
    lines[1]["eval_loss"], lines[3]["eval_loss"] = 1.8, 1.6  # as tf-train --eval-steps 2 logs
    write_jsonl(run / "loss.jsonl", lines)
    res = invoke([str(run), "--json"])
    summary = orjson.loads(res.stdout)["loss"]["runs"]["model.tf"]
    assert summary["eval_curve"] == [[2, 1.8], [4, 1.6]] and summary["final_eval_loss"] == 1.6
    assert "1.6000" in invoke([str(run)]).stdout  # the table's eval column
    acc = LossStats()
    for i, rec in enumerate(lines):
        acc.add(rec, i, None)
    plt = _pyplot()
    fig = _loss(plt, {str(run): acc}, run_labels([str(run)]))
    ax = fig.axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert any(label.startswith("model.tf eval") for label in labels)
    assert ax.get_title().startswith("Training and evaluation loss")
    plt.close(fig)


# --------------------------------------------------------------------------- the command


def test_json_shape_tables_and_kinds_in_one_stream(graded_examples, qwen_pipeline, tmp_path):
    problems, samples, _ = qwen_pipeline
    paths = [write_jsonl(tmp_path / f"{n}.jsonl", r) for n, r in
             (("graded", graded_examples["qwen"]), ("problems", problems), ("train", samples))]
    res = invoke([*map(str, paths), "--json"])
    assert res.exit_code == 0, res.output
    d = orjson.loads(res.stdout)  # one JSON object
    assert set(d) == {"records", "failed", "bad", "graded", "problems", "samples"}
    assert d["records"] == 200 + 25 + len(samples) and d["failed"] == 0
    assert set(d["graded"]) == {"all"}
    assert {"accuracy", "pass_at_k", "maj_at_k", "problems_at_k", "verdicts", "tokens"} <= set(d["graded"]["all"])
    assert {"error_rate", "entropy", "error_modes"} <= set(d["problems"]["all"])
    assert {"kinds", "k", "tokens"} <= set(d["samples"]["all"])
    res = invoke([*map(str, paths), "--by", "level", "--json"])
    d = orjson.loads(res.stdout)
    assert d["graded"]["by"] == "level" and len(d["graded"]["groups"]) == 5
    res = invoke([*map(str, paths)])
    assert res.exit_code == 0
    for text in ("graded trajectories: 200 samples of 25 problems", "95.5%", "pass@k",
                 "error rate per problem", "training samples:", "token multiplier"):
        assert text in res.stdout
    res = invoke([str(paths[0]), "--by", "level"])
    assert "graded trajectories by level" in res.stdout and "Level 5" in res.stdout


def test_plot_writes_readable_pngs(graded_examples, qwen_pipeline, tmp_path):
    problems, samples, _ = qwen_pipeline
    run = write_run(tmp_path / "run", [2.0, 1.5, 1.2])
    paths = [write_jsonl(tmp_path / "g.jsonl", graded_examples["qwen"]),
             write_jsonl(tmp_path / "p.jsonl", problems), write_jsonl(tmp_path / "t.jsonl", samples)]
    res = invoke([*map(str, paths), str(run), "--plot", str(tmp_path / "plots"), "--json"])
    assert res.exit_code == 0, res.output
    pngs = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert pngs == ["graded_pass_at_k.png", "graded_tokens.png", "loss.png", "problems_entropy.png",
                    "problems_error_modes.png", "problems_error_rate.png", "problems_pass_at_k.png",
                    "samples_k.png"]
    for name in pngs:
        data = (tmp_path / "plots" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, name
    assert "wrote" in res.stderr
    res = invoke([str(paths[0]), "--by", "level", "--plot", str(tmp_path / "by")])
    assert res.exit_code == 0 and (tmp_path / "by" / "graded_pass_at_k.png").stat().st_size > 10_000


def test_bad_input_failed_records_and_empty_input(tmp_path):
    res = invoke([], [{"id": "a", "problem": "2+2?"}])
    assert res.exit_code == 1
    assert "line 1 of <stdin>: cannot tell what this record is" in res.stderr
    res = invoke([], [{"id": "a", "verdict": "maybe", "pred": None}])
    assert res.exit_code == 1 and "unknown verdict 'maybe'" in res.stderr
    failed = {"_raw": "{oops", "_tf": {"error": {"step": "grade", "message": "bad"}}}
    res = invoke(["--json"], [*graded("p", [("correct", "1")]), failed])
    d = orjson.loads(res.stdout)
    assert res.exit_code == 0 and d["failed"] == 1 and d["graded"]["all"]["samples"] == 1
    assert "1 records marked failed" in res.stderr
    res = invoke([], [])
    assert res.exit_code == 0 and "no records" in res.stdout
    assert orjson.loads(invoke(["--json"], []).stdout) == {"records": 0, "failed": 0, "bad": 0}
    res = invoke([str(tmp_path / "missing.jsonl")])
    assert res.exit_code == 1 and "no such file" in res.stderr


def test_kind_detection():
    assert kind_of({"messages": [], "kind": "rft"}) == "samples"
    assert kind_of({"clusters": [], "n_correct": 1, "verdict": "x"}) == "problems"
    assert kind_of({"verdict": "correct", "completion": "x"}) == "graded"
    assert kind_of({"step": 1, "loss": 2.0}) == "loss"
    assert kind_of({"loss_log": "runs/a/loss.jsonl"}) == "manifest"
    assert kind_of({"completion": "x"}) == "trajectories"
    assert kind_of({"problem": "x"}) is None


def test_trajectories_before_grading():
    recs = [{"id": f"p{i // 2}", "sample_idx": i % 2, "completion": "a b c", "finish_reason": f,
             "_tf": {"sample": {"n_completion_tokens": 10 + i}}}
            for i, f in enumerate(["stop", "stop", "length", "stop"])]
    s = stats_of(recs)["trajectories"]["all"]
    assert s["samples"] == 4 and s["problems"] == 2 and s["finish_reason"] == {"stop": 3, "length": 1}
    assert s["tokens"]["source"] == "n_completion_tokens" and s["tokens"]["mean"] == 11.5
    assert bin_counts([0, 0.1, 0.2, 0.5, 1.0], (0.0, 0.5, 1.0), exact_low=True, exact_high=True) == {
        "0": 1, "(0, 0.5]": 3, "(0.5, 1)": 0, "1": 1}


def test_help_has_examples_and_the_console_script_runs(graded_examples, tmp_path):
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0 and "tf-stats graded.jsonl" in res.stdout and "--by" in res.stdout
    path = write_jsonl(tmp_path / "g.jsonl", graded_examples["gsm8k"])
    exe = ROOT / ".venv" / "bin" / "tf-stats"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "tf_tools.cli.stats"]
    p = subprocess.run([*cmd, str(path), "--json"], capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert orjson.loads(p.stdout)["graded"]["all"]["samples"] == 200


# --------------------------------------------------------------------------- ../shared/data


def convert(fmt, *inputs, limit=None):
    cmd = [sys.executable, str(CONVERT), fmt, *map(str, inputs)]
    if limit:
        cmd += ["--limit-problems", str(limit)]
    p = subprocess.run(cmd, capture_output=True, timeout=120, check=True)
    return [orjson.loads(line) for line in p.stdout.splitlines() if line.strip()]


def test_shared_tora_accuracy_matches_the_published_metrics(shared_data):
    folder = shared_data / "trajectories" / "tora_gsm8k"
    recs = convert("tora", folder)
    # ToRA's own extracted answers, graded by tf-grade against the gold
    out = list(grade_records(recs, GradeConfig(workers=2, pred_key="source_pred")))
    s = stats_of(out, by="source.model")["graded"]
    for model, g in s["groups"].items():
        text = (folder / f"{model}_gsm8k_test.metrics").read_text()
        published = float(text.split("Mean score: [")[1].split("]")[0])
        assert g["problems"] == 1319 and g["pass_at_k"]["1"] == g["accuracy"]
        assert 100 * g["accuracy"] == pytest.approx(published, abs=0.5), model
    both = s["all"]
    assert both["samples_per_problem"] == {"min": 2, "max": 2}
    per = per_problem(out)
    assert both["pass_at_k"]["2"] == sum(any(r["correct"] for r in rs) for rs in per.values()) / 1319


def test_shared_qwen_math_every_summary(shared_data):
    recs = convert("qwen25math", shared_data / "trajectories" / "qwen25math_math_cot_100_x8.jsonl",
                   limit=40)
    out = list(grade_records(recs, GradeConfig(workers=2)))
    problems = list(cluster_records(out, ClusterConfig(workers=2)))
    fuse_stats = FuseStats()
    samples = list(fuse_records(problems, FuseConfig(seed=0), fuse_stats))
    report = stats_of([*out, *problems, *samples])
    g, p, t = report["graded"]["all"], report["problems"]["all"], report["samples"]["all"]
    assert g["problems"] == p["problems"] == 40 and g["samples"] == 320
    assert g["pass_at_k"]["1"] == g["accuracy"] == p["accuracy"]
    assert g["pass_at_k"]["8"] == sum(q["n_correct"] > 0 for q in problems) / 40 == p["pass_at_k"]["8"]
    assert p["error_rate"]["mean"] == pytest.approx(sum(q["error_rate"] for q in problems) / 40)
    assert p["problems_no_correct"] == sum(q["n_correct"] == 0 for q in problems)
    assert t["samples"] == fuse_stats.samples and t["tokens"]["multiplier"] == fuse_stats.multiplier
    labelled = [r for r in out if isinstance(r.get("label"), bool)]
    assert g["label_agreement"] == sum(r["label"] == r["correct"] for r in labelled) / len(labelled)
    assert g["label_agreement"] > 0.9


def test_shared_gsm8k_openai_by_model(shared_data):
    recs = convert("gsm8k-openai", shared_data / "trajectories" / "gsm8k_openai_example_model_solutions.jsonl",
                   limit=150)
    out = list(grade_records(recs, GradeConfig(workers=2)))
    s = stats_of(out, by="source.model")["graded"]
    assert set(s["groups"]) == {"GPT-3 6B", "GPT-3 175B"}
    for model, g in s["groups"].items():
        mine = [r for r in out if r["source"]["model"] == model]
        assert g["accuracy"] == sum(r["correct"] for r in mine) / len(mine)
        assert g["pass_at_k"]["1"] == g["accuracy"]
    # the bigger model is the better one, as the GSM8K paper reports
    assert s["groups"]["GPT-3 175B"]["accuracy"] > s["groups"]["GPT-3 6B"]["accuracy"]


# --------------------------------------------------------------------------- one bad record


def problem_summary(pid, n=4, c=2, **extra):
    return {"id": pid, "n": n, "n_correct": c, "n_error_modes": 1, "error_rate": (n - c) / n,
            "entropy": 0.0, "clusters": [], **extra}


def stdin_lines(*items):
    """Records (dicts) and raw lines (str) as tf-stats reads them on stdin."""
    return "".join((it if isinstance(it, str) else orjson.dumps(it).decode()) + "\n" for it in items)


# Problem summaries that crashed tf-stats with a ValueError / TypeError / OverflowError
# traceback before (float('half'), float([1]), math.ceil(1e308 / 0.5) in the histogram bins)
CRASHED = [problem_summary("bad-rate", error_rate="half"), problem_summary("bad-h", entropy=[1]),
           problem_summary("huge-h", entropy=1e308)]


def test_a_bad_record_stops_with_its_line_or_is_left_out_with_keep_going():
    good = [*graded("g1", [("correct", "1"), ("incorrect", "2")]), problem_summary("a"),
            problem_summary("b", c=4)]
    text = stdin_lines(good[0], CRASHED[0], good[1], "{not json", good[2], *CRASHED[1:], good[3])
    res = runner.invoke(app, [], input=text)
    assert res.exit_code == 1 and "Traceback" not in res.stderr and res.stdout == ""
    assert res.stderr.splitlines() == [
        "tf-stats: error: line 2 of <stdin>: 'error_rate' must be a number from 0 to 1, got 'half'",
        "hint: make problem summaries with tf-cluster"]
    res = runner.invoke(app, ["--json", "--keep-going"], input=text)
    assert res.exit_code == 3 and "Traceback" not in res.stderr
    d = orjson.loads(res.stdout)
    assert (d["records"], d["failed"], d["bad"]) == (8, 0, 4)
    assert d["graded"]["all"]["samples"] == 2 and d["graded"]["all"]["accuracy"] == 0.5
    p = d["problems"]["all"]  # every good problem counted, nothing of the bad ones
    assert p["problems"] == 2 and p["samples"] == 8 and p["error_rate"]["mean"] == 0.25
    assert [b["where"] for b in d["bad_records"]] == [f"line {i} of <stdin>" for i in (2, 4, 6, 7)]
    assert "is not valid JSON" in d["bad_records"][1]["error"]
    assert d["bad_records"][3]["error"].startswith("'entropy' must be a number from 0 to ln(n)")
    assert "line 6 of <stdin>: 'entropy' must be" in res.stderr
    assert "4 bad records left out of the summary" in res.stderr
    res = runner.invoke(app, ["--keep-going"], input=text)  # the tables say it too
    assert res.exit_code == 3 and "4 bad records left out (--keep-going)" in res.stdout
    assert "line 7 of <stdin>" in res.stdout and "graded trajectories: 2 samples" in res.stdout


def test_any_exception_of_one_record_goes_through_record_failed(monkeypatch):
    from tf_tools.errors import InputError
    from tf_tools.stats import trajectories

    real_tokens = trajectories._completion_tokens

    def flaky(rec):  # an unexpected bug, hit by one record only
        if rec.get("completion") == "boom":
            raise RuntimeError("no tokens for you")
        return real_tokens(rec)

    monkeypatch.setattr(trajectories, "_completion_tokens", flaky)
    recs = [{**r, "completion": c} for r, c in zip(
        graded("p", [("correct", "1"), ("incorrect", "2"), ("correct", "1")]), ["a", "boom", "b c"], strict=True)]
    res = invoke(["--by", "id"], recs)
    assert res.exit_code == 1 and "Traceback" not in res.stderr
    assert res.stderr.splitlines() == [
        "tf-stats: error: line 2 of <stdin>: cannot stats this record: RuntimeError: no tokens for you",
        "hint: --keep-going marks the record (_tf.error) and goes on; -vv shows the traceback"]
    res = invoke(["--json", "--by", "id", "--keep-going"], recs)
    assert res.exit_code == 3
    d = orjson.loads(res.stdout)
    s = d["graded"]["all"]
    assert d["bad"] == 1 and s["samples"] == 2 and s["verdicts"]["incorrect"] == 0
    assert s["tokens"]["count"] == 2 and d["graded"]["groups"]["p"]["samples"] == 2
    assert d["bad_records"] == [{"where": "line 2 of <stdin>",
                                 "error": "RuntimeError: no tokens for you"}]
    res = invoke(["-vv", "--by", "id"], recs)  # -vv: the traceback, the cause chained
    assert isinstance(res.exception, InputError)
    assert isinstance(res.exception.__cause__, RuntimeError)
    # the library: the same, through StatsConfig(keep_going=...)
    with pytest.raises(InputError, match="cannot stats this record: RuntimeError"):
        summarize([dict(r) for r in recs], StatsConfig())
    report = summarize([dict(r) for r in recs], StatsConfig(keep_going=True))
    assert report.bad == 1 and report.to_dict()["graded"]["all"]["samples"] == 2


def test_a_sample_the_tokenizer_rejects_is_named_or_left_out(tiny_model, tmp_path):
    # --tokenizer: a role that is not a string made the chat template raise a TypeError
    def sample(pid, role="user", k=1):
        return {"id": pid, "kind": "fused", "k": k, "messages": [
            {"role": role, "content": "What is 3 + 5?"}, {"role": "assistant", "content": "8"}]}

    data = write_jsonl(tmp_path / "train.jsonl", [sample("a"), sample("b", role=["user"]), sample("c", k=2)])
    res = invoke([str(data), "--tokenizer", str(tiny_model)])
    assert res.exit_code == 1 and "Traceback" not in res.stderr
    assert res.stderr.startswith(f"tf-stats: error: line 2 of {data}: cannot stats this record: TypeError: ")
    res = invoke([str(data), "--tokenizer", str(tiny_model), "--json", "--keep-going"])
    assert res.exit_code == 3
    d = orjson.loads(res.stdout)
    s = d["samples"]["all"]
    assert d["bad"] == 1 and s["samples"] == 2 and s["k"] == {"1": 1, "2": 1}
    assert s["tokens"]["total"] == 2 * s["tokens"]["mean_by_kind"]["fused"]


def test_a_bad_line_of_a_loss_log_is_named_by_its_own_file_and_line(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    log = run / "loss.jsonl"
    log.write_text(stdin_lines({"step": 1, "loss": 2.0}, {"step": 2, "loss": None}, "{torn",
                               {"step": 3, "loss": 1.0, "seconds": "12", "tokens": 30, "lr": [1]}))
    manifest = {"run": str(run), "loss_log": str(log)}
    res = invoke([], [manifest])
    assert res.exit_code == 1 and "Traceback" not in res.stderr
    assert f"tf-stats: error: line 2 of {log}: loss log line needs an integer 'step'" in res.stderr
    res = invoke(["--json", "--keep-going"], [manifest])
    assert res.exit_code == 3
    d = orjson.loads(res.stdout)
    [s] = d["loss"]["runs"].values()
    assert d["bad"] == 2 and [b["where"] for b in d["bad_records"]] == [f"line {i} of {log}" for i in (2, 3)]
    # the last line's totals that are not numbers are left blank, not divided
    assert s["steps"] == 3 and s["final_loss"] == 1.0 and s["tokens"] == 30
    assert s["seconds"] is None and s["tokens_per_s"] is None and s["final_lr"] is None
    res = invoke([str(run), "--keep-going"])  # the run folder: the same lines, the table drawn
    assert res.exit_code == 3 and "2 bad records left out" in res.stdout
    res = invoke([], [{"loss_log": str(tmp_path / "gone.jsonl")}, {"step": 1, "loss": 1.0}])
    assert res.exit_code == 1 and "line 1 of <stdin>: the loss log" in res.stderr
    res = invoke(["--json", "--keep-going"], [{"loss_log": str(tmp_path / "gone.jsonl")}, {"step": 1, "loss": 1.0}])
    assert res.exit_code == 3 and orjson.loads(res.stdout)["bad"] == 1
