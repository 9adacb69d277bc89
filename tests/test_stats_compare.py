"""tf-stats --compare: two graded evaluation files paired by problem.

Oracles: hand-computed exact McNemar p-values, the binomial test written out by its own
definition (scipy.stats.binomtest too when scipy is installed), hand-built files whose
won/lost/both counts are known, and the bundled real GSM8K file (two GPT-3 models' samples
of the same 50 problems, graded by the real tf-grade core) split into one file per model.
"""

from __future__ import annotations

import math
from fractions import Fraction

import orjson
import pytest
from typer.testing import CliRunner

from tf_tools.cli.stats import app
from tf_tools.errors import InputError
from tf_tools.grading.grader import GradeConfig, grade_records
from tf_tools.records import read_jsonl_file
from tf_tools.stats import StatsConfig, summarize
from tf_tools.stats.compare import (
    bootstrap_ci,
    compare,
    labels_for,
    mcnemar_exact,
    read_side,
)

from .conftest import ROOT, write_jsonl

runner = CliRunner()
KEYS = {"a", "b", "problems", "difference", "difference_of", "ci95", "ci_method", "mcnemar_p", "test",
        "won", "lost", "both_correct", "both_wrong", "tied", "intersect", "left_out", "failed_records",
        "bad_records"}
SIDE_KEYS = {"name", "path", "n", "samples", "samples_per_problem", "accuracy", "correct",
             "truncation_rate", "no_answer_rate"}


# --------------------------------------------------------------------------- McNemar


@pytest.mark.parametrize(("won", "lost", "p"), [
    (1, 5, 0.21875),  # 2 * (1 + 6) / 64
    (5, 1, 0.21875),
    (0, 6, 0.03125),  # 2 / 64
    (2, 8, 0.109375),  # 2 * (1 + 10 + 45) / 1024
    (0, 1, 1.0),  # 2 * 1/2
    (3, 3, 1.0),  # capped at 1
    (0, 0, 1.0),  # no discordant problem
    (0, 20, 2 / 2 ** 20),
])
def test_mcnemar_hand_computed(won, lost, p):
    assert mcnemar_exact(won, lost) == p


def binomial_test_by_definition(k: int, m: int) -> float:
    """Two-sided exact binomial test at 1/2: the probability of every outcome no likelier
    than the one observed (scipy's definition)."""
    prob = [Fraction(math.comb(m, i), 2 ** m) for i in range(m + 1)]
    return float(min(Fraction(1), sum(q for q in prob if q <= prob[k])))


def test_mcnemar_against_the_binomial_test():
    binomtest = None
    try:
        from scipy.stats import binomtest
    except ImportError:
        pass
    for m in range(0, 41):
        for won in range(m + 1):
            p = mcnemar_exact(won, m - won)
            if m:
                assert p == pytest.approx(binomial_test_by_definition(won, m), rel=1e-12, abs=0)
            if binomtest is not None and m:
                assert p == pytest.approx(binomtest(won, m, 0.5).pvalue, rel=1e-9)
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 2)


# --------------------------------------------------------------------------- bootstrap


def test_bootstrap_is_seeded_contains_the_difference_and_ignores_order():
    diffs = [1] * 9 + [-1] * 3 + [0] * 38
    lo, hi = bootstrap_ci(diffs, 10_000, seed=0)
    assert (lo, hi) == bootstrap_ci(diffs, 10_000, seed=0)  # the same output twice
    assert (lo, hi) == bootstrap_ci(list(reversed(diffs)), 10_000, seed=0)
    spread = [((i * 37) % 101) / 101 - 0.3 for i in range(60)]  # many distinct values
    assert bootstrap_ci(spread, 1000, seed=0) != bootstrap_ci(spread, 1000, seed=1)
    assert lo < sum(diffs) / len(diffs) < hi
    # the normal approximation of the same interval, as a sanity bound
    mean = sum(diffs) / len(diffs)
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / len(diffs) / len(diffs))
    assert lo == pytest.approx(mean - 1.96 * sd, abs=0.03) and hi == pytest.approx(mean + 1.96 * sd, abs=0.03)
    assert bootstrap_ci([0.5] * 7, 100) == (0.5, 0.5)
    with pytest.raises(ValueError):
        bootstrap_ci([])


# --------------------------------------------------------------------------- files


def evaluation(outcomes, name="p", **extra):
    """One graded record per problem: outcomes[i] is problem i's verdict."""
    return [{"id": f"{name}{i}", "sample_idx": 0, "verdict": v, "correct": v == "correct",
             "pred": "1", **extra} for i, v in enumerate(outcomes)]


# 20 problems: 6 both correct, 8 both wrong, 5 won by B, 1 lost by B
A_OUT = ["correct"] * 6 + ["incorrect"] * 4 + ["truncated"] * 2 + ["no_answer"] * 2 + ["incorrect"] * 5 + ["correct"]
B_OUT = ["correct"] * 6 + ["incorrect"] * 6 + ["truncated"] * 2 + ["correct"] * 5 + ["incorrect"]


@pytest.fixture
def two_runs(tmp_path):
    a = write_jsonl(_mk(tmp_path / "runs" / "model.rft"), evaluation(A_OUT))
    b = write_jsonl(_mk(tmp_path / "runs" / "model.trajfusion"), evaluation(B_OUT)[::-1])
    return a, b


def _mk(folder):
    folder.mkdir(parents=True)
    return folder / "eval.jsonl"


def invoke(args):
    return runner.invoke(app, [str(a) for a in args])


def test_compare_json_hand_computed(two_runs):
    a, b = two_runs
    res = invoke(["--compare", "--json", a, b])
    assert res.exit_code == 0, res.output
    c = orjson.loads(res.stdout)
    assert set(c) == KEYS and set(c["a"]) == SIDE_KEYS and set(c["b"]) == SIDE_KEYS
    assert (c["a"]["name"], c["b"]["name"]) == ("model.rft", "model.trajfusion")
    assert c["a"]["path"] == str(a)
    assert (c["a"]["n"], c["b"]["n"], c["problems"]) == (20, 20, 20)
    assert (c["a"]["accuracy"], c["b"]["accuracy"]) == (7 / 20, 11 / 20)
    assert c["difference"] == 0.2 and c["difference_of"] == "b - a"
    assert (c["won"], c["lost"], c["both_correct"], c["both_wrong"], c["tied"]) == (5, 1, 6, 8, 0)
    assert c["mcnemar_p"] == 0.21875
    lo, hi = c["ci95"]
    assert lo < 0.2 < hi
    assert c["ci_method"] == "percentile bootstrap over problems, 10000 resamples, seed 0"
    assert (c["a"]["truncation_rate"], c["a"]["no_answer_rate"]) == (0.1, 0.1)
    assert (c["b"]["truncation_rate"], c["b"]["no_answer_rate"]) == (0.1, 0.0)
    assert c["left_out"] == {"only_in_a": 0, "only_in_b": 0, "ungradable": 0} and not c["intersect"]
    again = orjson.loads(invoke(["--compare", "--json", a, b]).stdout)
    assert again == c  # seeded
    diffs = [1] * 5 + [-1] + [0] * 14
    assert c["ci95"] == list(bootstrap_ci(diffs, 10_000, seed=0))
    other = orjson.loads(invoke(["--compare", "--json", "--seed", "7", a, b]).stdout)
    assert other["ci95"] == list(bootstrap_ci(diffs, 10_000, seed=7)) and other["ci_method"].endswith("seed 7")
    swapped = orjson.loads(invoke(["--compare", "--json", b, a]).stdout)
    assert swapped["difference"] == -0.2 and (swapped["won"], swapped["lost"]) == (1, 5)


def test_compare_text(two_runs):
    a, b = two_runs
    res = invoke(["--compare", a, b])
    assert res.exit_code == 0, res.output
    lines = [line.rstrip() for line in res.stdout.splitlines()]
    assert lines[0].strip() == "paired comparison: 20 problems matched by id"
    row_a = next(line.split() for line in lines if line.strip().startswith("A "))
    row_b = next(line.split() for line in lines if line.strip().startswith("B "))
    assert row_a[:7] == ["A", "model.rft", "20", "20", "35.0%", "10.0%", "10.0%"]
    assert row_b[:7] == ["B", "model.trajfusion", "20", "20", "55.0%", "10.0%", "0.0%"]
    text = "\n".join(lines)
    assert "difference B - A   +20.0 points of accuracy" in text
    assert "McNemar p          0.2188  (exact, two-sided, on the 6 problems where A and B differ)" in text
    assert "5 won (B right, A wrong) · 1 lost (B wrong, A right) · 6 both correct · 8 both wrong" in text
    assert lines[-1].startswith("model.trajfusion - model.rft: +20.0 points (55.0% vs 35.0%, 20 problems), "
                                "95% CI [")
    assert lines[-1].endswith("McNemar p = 0.219 (5 won, 1 lost)")


def test_compare_refuses_different_problem_sets_unless_intersect(tmp_path):
    a = write_jsonl(tmp_path / "eval.rft.jsonl", evaluation(A_OUT))
    b = write_jsonl(tmp_path / "eval.trajfusion.jsonl", evaluation(B_OUT[:15]) + evaluation(["correct"], "q"))
    res = invoke(["--compare", a, b])
    assert res.exit_code == 1
    assert res.stderr.startswith("tf-stats: error: the two files do not hold the same problems: "
                                 f"5 problems only in {a} (e.g. id 'p15'); 1 problem only in {b} (e.g. id 'q0')")
    assert "--intersect" in res.stderr
    res = invoke(["--compare", "--intersect", "--json", a, b])
    assert res.exit_code == 0, res.output
    c = orjson.loads(res.stdout)
    assert c["intersect"] and c["problems"] == 15
    assert c["left_out"] == {"only_in_a": 5, "only_in_b": 1, "ungradable": 0}
    assert (c["a"]["name"], c["b"]["name"]) == ("eval.rft", "eval.trajfusion")
    assert (c["won"], c["lost"], c["both_correct"], c["both_wrong"]) == (1, 0, 6, 8)  # p14 won
    assert c["mcnemar_p"] == 1.0 and c["ci95"][0] <= 1 / 15 <= c["ci95"][1]
    res = invoke(["--compare", "--intersect", a, b])
    assert "5 problems only in A and 1 only in B left out (--intersect)" in res.stdout


def test_compare_bad_inputs(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", evaluation(A_OUT))
    dup = write_jsonl(tmp_path / "dup.jsonl", evaluation(A_OUT) + evaluation(["correct"]))
    res = invoke(["--compare", a, dup])
    assert res.exit_code == 1 and f"line 21 of {dup}: id 'p0' sample_idx 0 appears twice" in res.stderr
    raw = write_jsonl(tmp_path / "raw.jsonl", [{"id": "p0", "completion": "4"}])
    res = invoke(["--compare", a, raw])
    assert res.exit_code == 1 and "no tf-grade verdict" in res.stderr and "hint: grade" in res.stderr
    for args in (["--compare", a], ["--compare", a, a, a], ["--compare", "--by", "level", a, a],
                 ["--compare", "--plot", str(tmp_path / "p"), a, a], ["--intersect", a]):
        res = invoke(args)
        assert res.exit_code == 2, (args, res.output)
    assert "does not apply to --compare" in invoke(["--compare", "--by", "level", a, a]).stderr


def test_compare_several_samples_per_problem_and_ungradable_problems():
    def recs(rows):
        return [{"id": pid, "sample_idx": i, "verdict": v} for pid, vs in rows for i, v in enumerate(vs)]

    a = recs([("x", ["correct", "incorrect"]), ("y", ["correct", "correct"]), ("z", ["incorrect", "correct"]),
              ("w", ["ungradable", "ungradable"]), ("v", ["incorrect", "incorrect"])])
    b = recs([("x", ["correct", "correct"]), ("y", ["correct", "correct"]), ("z", ["correct", "incorrect"]),
              ("w", ["correct", "correct"]), ("v", ["incorrect", "truncated"])])
    c = compare(read_side(a, "A", "a.jsonl"), read_side(b, "B", "b.jsonl"))
    # per-problem shares: x 1/2 -> 1 (won), y 1 = 1, z 1/2 = 1/2 (tied), v 0 = 0; w ungradable in A
    assert c["problems"] == 4 and c["left_out"]["ungradable"] == 1
    assert (c["won"], c["lost"], c["both_correct"], c["both_wrong"], c["tied"]) == (1, 0, 1, 1, 1)
    assert c["a"]["accuracy"] == (0.5 + 1 + 0.5 + 0) / 4 and c["b"]["accuracy"] == (1 + 1 + 0.5 + 0) / 4
    assert c["difference"] == 0.125 and c["mcnemar_p"] == 1.0
    assert c["a"]["samples_per_problem"] == {"min": 2, "max": 2} and c["b"]["truncation_rate"] == 1 / 8


def test_compare_failed_records_are_counted_and_their_problem_left_out():
    a = evaluation(["correct", "incorrect"])
    b = [evaluation(["correct"])[0], {"id": "p1", "sample_idx": 0, "_tf": {"error": {"message": "boom"}}}]
    c = compare(read_side(a, "A", "a"), read_side(b, "B", "b"))
    assert c["problems"] == 1 and c["left_out"]["ungradable"] == 1 and c["failed_records"] == {"a": 0, "b": 1}


def test_labels_say_what_a_reader_calls_the_runs():
    assert labels_for("/x/runs/model.rft/eval.jsonl", "runs/model.trajfusion/eval.jsonl") == (
        "model.rft", "model.trajfusion")
    assert labels_for("run/eval.rft.jsonl", "run/eval.trajfusion.jsonl.gz") == ("eval.rft", "eval.trajfusion")
    assert labels_for("s0/m.rft/eval.jsonl", "s1/m.rft/eval.jsonl") == ("s0/m.rft", "s1/m.rft")
    assert labels_for("same.jsonl", "same.jsonl") == ("A", "B")
    assert labels_for("-", "b.jsonl") == ("stdin", "b")


# --------------------------------------------------------------------------- real data


def test_bundled_gsm8k_two_models_against_tf_stats_own_accuracy(tmp_path):
    """GPT-3 6B vs 175B on the same 50 GSM8K problems (2 samples each), graded for real."""
    graded = list(grade_records(read_jsonl_file(str(ROOT / "examples" / "data" / "gsm8k_gpt3_50x4.jsonl")),
                                GradeConfig(workers=1)))
    by_model = summarize(graded, StatsConfig(by="source.model")).to_dict()["graded"]["groups"]
    small = write_jsonl(tmp_path / "gpt3-6b.jsonl", [r for r in graded if r["source"]["model"] == "GPT-3 6B"])
    big = write_jsonl(tmp_path / "gpt3-175b.jsonl", [r for r in graded if r["source"]["model"] == "GPT-3 175B"])
    res = invoke(["--compare", "--json", small, big])
    assert res.exit_code == 0, res.output
    c = orjson.loads(res.stdout)
    assert c["problems"] == 50 and c["a"]["samples_per_problem"] == {"min": 2, "max": 2}
    assert c["a"]["accuracy"] == pytest.approx(by_model["GPT-3 6B"]["accuracy"], abs=1e-15)
    assert c["b"]["accuracy"] == pytest.approx(by_model["GPT-3 175B"]["accuracy"], abs=1e-15)
    assert c["a"]["truncation_rate"] == by_model["GPT-3 6B"]["truncation_rate"]
    assert c["difference"] == pytest.approx(c["b"]["accuracy"] - c["a"]["accuracy"], abs=1e-15)
    assert c["ci95"][0] <= c["difference"] <= c["ci95"][1]
    # one sample per problem and model (the first: sample_idx 0 for 6B, 2 for 175B): exact
    # McNemar on the 2x2 table counted here by hand
    firsts = {m: [r for r in graded if r["source"]["model"] == m and r["sample_idx"] in (0, 2)]
              for m in ("GPT-3 6B", "GPT-3 175B")}
    one = compare(read_side(firsts["GPT-3 6B"], "6B", "6b"), read_side(firsts["GPT-3 175B"], "175B", "175b"))
    right = {m: {r["id"]: r["correct"] for r in rs} for m, rs in firsts.items()}
    small_right, big_right = right["GPT-3 6B"], right["GPT-3 175B"]
    won = sum(big_right[i] and not small_right[i] for i in small_right)
    lost = sum(small_right[i] and not big_right[i] for i in small_right)
    both = sum(big_right[i] and small_right[i] for i in small_right)
    assert (one["won"], one["lost"], one["both_correct"]) == (won, lost, both)
    assert one["both_wrong"] == 50 - won - lost - both and one["tied"] == 0
    assert one["mcnemar_p"] == pytest.approx(binomial_test_by_definition(min(won, lost), won + lost), rel=1e-12)


def test_read_side_names_the_line_of_a_bad_record():
    with pytest.raises(InputError, match="line 7 of f.jsonl: record without an 'id'"):
        read_side([{"verdict": "correct"}], "A", "f.jsonl", where=lambda: "line 7 of f.jsonl")


def test_compare_keep_going_leaves_bad_records_out_and_exits_3(tmp_path):
    # a dict sample_idx crashed --compare with "TypeError: unhashable type: 'dict'"
    odd = evaluation(A_OUT)
    odd[3]["sample_idx"] = {"i": 0}
    b = write_jsonl(tmp_path / "b.jsonl", evaluation(B_OUT))
    res = invoke(["--compare", "--json", write_jsonl(tmp_path / "odd.jsonl", odd), b])
    assert res.exit_code == 0 and orjson.loads(res.stdout)["problems"] == 20
    # bad records of A: a verdict tf-grade never writes, a repeated sample, a torn line
    lines = [orjson.dumps(r).decode() for r in evaluation(A_OUT)]
    lines[4] = orjson.dumps({**evaluation(A_OUT)[4], "verdict": ["correct"]}).decode()
    lines.insert(7, lines[6])
    lines.insert(12, '{"id": "p11", "verdi')
    a = tmp_path / "a.jsonl"
    a.write_text("\n".join(lines) + "\n")
    res = invoke(["--compare", a, b])
    assert res.exit_code == 1 and "Traceback" not in res.stderr and res.stdout == ""
    assert res.stderr.splitlines() == [
        f"tf-stats: error: line 5 of {a}: no tf-grade verdict (['correct']): --compare reads "
        "graded evaluation files", "hint: grade the samples first: tf-sample ... | tf-grade"]
    res = invoke(["--compare", "--json", "--keep-going", a, b])
    assert res.exit_code == 3, res.output
    c = orjson.loads(res.stdout)
    assert c["bad_records"] == {"a": 3, "b": 0} and c["failed_records"] == {"a": 0, "b": 0}
    # p4 lost its only sample (left out); every other problem is compared as before
    assert c["problems"] == 19 and c["left_out"]["ungradable"] == 1
    assert A_OUT[4] == B_OUT[4] == "correct"  # p4, left out of both
    assert c["a"]["correct"] == A_OUT.count("correct") - 1 and c["b"]["correct"] == B_OUT.count("correct") - 1
    assert [f"line {i} of {a}" in res.stderr for i in (5, 8, 13)] == [True] * 3
    res = invoke(["--compare", "--keep-going", a, b])
    assert res.exit_code == 3 and "3 bad records of A left out (--keep-going)" in res.stdout
