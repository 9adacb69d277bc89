"""tf-cluster: the worked example, counting rules, equivalence clusters, bad input, CLI."""

from __future__ import annotations

import math
import time

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tf_tools.answers.forms import fast_decision, form_of, forms_differ
from tf_tools.answers.values import constant_value, latexify
from tf_tools.cli.cluster import app
from tf_tools.clustering import (
    ClusterConfig,
    ClusterStats,
    Equivalence,
    cluster_answers,
    cluster_records,
)
from tf_tools.errors import InputError
from tf_tools.grading.grader import GradeConfig, grade_records

from .conftest import read_jsonl, write_jsonl

runner = CliRunner()
FAST_ONLY = ClusterConfig(math_verify=False)

# --------------------------------------------------------------------------- the worked example

PROBLEM = "There are 4 boxes with 3 apples in each box. How many apples are there?"
# DESIGN §4: N = 8, gold 12; answers 12, 12, 7, 7, 7, 15, (truncated, no answer), 9
GOLDEN_COMPLETIONS = [
    ("Each box holds 3 apples and there are 4 boxes, so 3 \\times 4 = 12. The answer is \\boxed{12}.", "stop"),
    ("We need 4 groups of 3: 4 \\cdot 3 = 12, so there are \\boxed{12} apples.<|im_end|>", "stop"),
    ("3 + 4 = 7, so the answer is \\boxed{7}.", "stop"),
    ("Adding the numbers gives \\boxed{7}.", "stop"),
    ("There are 3 apples and 4 boxes, which makes \\boxed{7}.", "stop"),
    ("3 \\times 5 = 15, so the answer is \\boxed{15}.", "stop"),
    ("Let me count the apples one by one: 1, 2, 3, 4, 5, 6, 7, 8,", "length"),
    ("3 \\times 3 = 9, so the answer is \\boxed{9}.", "stop"),
]


def golden_trajectories(pid: str = "golden", **extra) -> list[dict]:
    return [{"id": pid, "problem": PROBLEM, "answer": "12", "sample_idx": i, "completion": text,
             "finish_reason": finish, **extra}
            for i, (text, finish) in enumerate(GOLDEN_COMPLETIONS)]


def golden_graded(pid: str = "golden", **extra) -> list[dict]:
    """The worked example, graded by the real tf-grade core (fast paths only)."""
    return list(grade_records(golden_trajectories(pid, **extra), GradeConfig(workers=1)))


def golden_summary(**extra) -> dict:
    (summary,) = cluster_records(golden_graded(**extra), FAST_ONLY)
    return summary


def test_worked_example_error_rate_entropy_and_clusters():
    s = golden_summary()
    assert [t["verdict"] for t in golden_graded()] == [
        "correct", "correct", "incorrect", "incorrect", "incorrect", "incorrect", "truncated",
        "incorrect"]
    assert (s["n"], s["n_correct"], s["n_clustered"], s["n_error_modes"]) == (8, 2, 5, 3)
    assert s["error_rate"] == 0.75
    assert round(s["entropy"], 3) == 0.950
    assert s["entropy"] == pytest.approx(-(0.6 * math.log(0.6) + 2 * 0.2 * math.log(0.2)))
    assert round(math.exp(s["entropy"]), 3) == 2.586
    assert [(c["answer"], c["size"]) for c in s["clusters"]] == [("7", 3), ("15", 1), ("9", 1)]
    assert [t["sample_idx"] for t in s["clusters"][0]["trajectories"]] == [2, 3, 4]
    assert [t["sample_idx"] for t in s["correct"]] == [0, 1]
    # the truncated sample counts in e and is kept, unclustered
    assert [(t["sample_idx"], t["verdict"]) for t in s["unclustered"]] == [(6, "truncated")]
    # problem-level fields are lifted; each trajectory keeps its own
    assert s["problem"] == PROBLEM and s["answer"] == "12" and s["id"] == "golden"
    assert "problem" not in s["correct"][0] and s["correct"][0]["completion"].startswith("Each")
    assert s["_tf"]["cluster"]["checks"] == 0  # integers: told apart by value, no comparison


# --------------------------------------------------------------------------- counting rules


def graded(pid, idx, verdict, pred, finish="stop", **extra):
    return {"id": pid, "problem": "p", "answer": "1", "sample_idx": idx,
            "completion": f"... \\boxed{{{pred}}}", "finish_reason": finish, "pred": pred,
            "verdict": verdict, "correct": verdict == "correct", **extra}


def test_counting_rules_no_answer_truncated_ungradable():
    recs = [graded("a", 0, "correct", "1"), graded("a", 1, "incorrect", "2"),
            graded("a", 2, "no_answer", None), graded("a", 3, "truncated", "5", "length"),
            graded("a", 4, "ungradable", "x"), graded("a", 5, "incorrect", "2"),
            graded("a", 6, "incorrect", "3", "length")]  # cut off: wrong, never clustered
    (s,) = cluster_records(recs, FAST_ONLY)
    assert s["n"] == 6 and s["n_correct"] == 1 and s["n_ungradable"] == 1
    assert s["error_rate"] == pytest.approx(5 / 6)
    assert [(c["answer"], c["size"]) for c in s["clusters"]] == [("2", 2)]
    assert s["entropy"] == 0.0 and s["n_error_modes"] == 1
    assert sorted(t["sample_idx"] for t in s["unclustered"]) == [2, 3, 4, 6]


def test_all_ungradable_problem_has_no_error_rate():
    (s,) = cluster_records([graded("a", 0, "ungradable", "x")], FAST_ONLY)
    assert s["n"] == 0 and s["error_rate"] is None and s["clusters"] == []


def test_equivalent_spellings_share_a_cluster_without_sympy():
    preds = ["1/2", "0.5", "\\frac{1}{2}", "\\dfrac12", "$\\frac{1}{2}$", "2", "x = 2", "3"]
    recs = [graded("a", i, "incorrect", p) for i, p in enumerate(preds)]
    stats = ClusterStats()
    (s,) = cluster_records(recs, ClusterConfig(math_verify=True), stats)
    assert [(c["answer"], c["size"]) for c in s["clusters"]] == [("1/2", 5), ("2", 2), ("3", 1)]
    assert stats.mv_calls == 0 and stats.key_hits == 5


def test_clusters_order_ties_by_first_sample_idx():
    recs = [graded("a", i, "incorrect", p) for i, p in enumerate(["4", "3", "3", "4", "5"])]
    (s,) = cluster_records(list(reversed(recs)), FAST_ONLY)
    assert [(c["answer"], c["size"]) for c in s["clusters"]] == [("4", 2), ("3", 2), ("5", 1)]


def test_math_verify_decides_in_the_pool():
    preds = ["\\frac{\\sqrt{3}}{2}", "\\frac{1}{2}\\sqrt{3}", "\\sqrt{2}", "(1, 2)", "(2, 1)"]
    recs = [graded("a", i, "incorrect", p) for i, p in enumerate(preds)]
    stats = ClusterStats()
    (s,) = cluster_records(recs, ClusterConfig(workers=2, timeout=20), stats)
    assert [c["size"] for c in s["clusters"]] == [2, 1, 1, 1]
    assert stats.mv_checks >= 1 and stats.timeouts == 0
    # without math-verify the undecided pair counts as different
    (s,) = cluster_records(recs, FAST_ONLY)
    assert [c["size"] for c in s["clusters"]] == [1, 1, 1, 1, 1]


def test_a_pathological_answer_times_out_as_different_and_is_counted():
    preds = ["9^{9^{9^9}}", "(x+1)^{2000}", "x^2 + 2x + 1", "9^{9^{9^9}}"]
    recs = [graded("a", i, "incorrect", p) for i, p in enumerate(preds)]
    stats = ClusterStats()
    t0 = time.monotonic()
    (s,) = cluster_records(recs, ClusterConfig(workers=2, timeout=1), stats)
    assert time.monotonic() - t0 < 60  # a hang would be unbounded
    assert stats.timeouts >= 1
    # the identical spelling still joins by its key; the slow pairs count as different
    assert sorted(c["size"] for c in s["clusters"]) == [1, 1, 2]


def test_forms_tell_constants_apart_and_never_claim_equality():
    assert constant_value("12\\sqrt{3}") == pytest.approx(12 * math.sqrt(3))
    assert constant_value("\\frac{91\\sqrt{23}}{2}") == pytest.approx(91 * math.sqrt(23) / 2)
    assert constant_value("36π") == pytest.approx(36 * math.pi)
    assert constant_value("12 \\sqrt[3]{8}") == pytest.approx(24)
    for unreadable in ["\\sqrt34", "√34", "2^10", "x+1", "9^{1311}", "\\infty", "(1, 2)", "1 000"]:
        assert constant_value(unreadable) is None, unreadable
    assert forms_differ(form_of("28"), form_of("28\\sqrt{2}"))
    assert forms_differ(form_of("No solution"), form_of("5"))
    assert not forms_differ(form_of("\\sqrt{8}"), form_of("2\\sqrt{2}"))  # equal: math-verify decides
    assert not forms_differ(form_of("0.7071"), form_of("\\frac{\\sqrt{2}}{2}"))  # rounded decimal
    assert not forms_differ(form_of("e"), form_of("3"))  # e is a constant, not a word


def test_plain_text_roots_are_read_as_latex():
    # math-verify reads "28√2" as 28: without latexify these would share a cluster
    assert latexify("28√2") == "28\\sqrt{2}"
    assert latexify("24 + sqrt(193)") == "24 + \\sqrt{193}"
    assert latexify("sqrt((1 + sqrt(5))/2)") == "\\sqrt{(1 + \\sqrt{5})/2}"
    assert latexify("36π") == "36\\pi"
    assert latexify("\\sqrt{2}") == "\\sqrt{2}" and latexify("No solution") == "No solution"
    preds = ["28", "28√2", "28\\sqrt{2}", "28 * sqrt(2)", "24 + sqrt(193)", "24"]
    recs = [graded("a", i, "incorrect", p) for i, p in enumerate(preds)]
    stats = ClusterStats()
    (s,) = cluster_records(recs, ClusterConfig(workers=2, timeout=20), stats)
    assert sorted(sorted(t["sample_idx"] for t in c["trajectories"]) for c in s["clusters"]) == [
        [0], [1, 2, 3], [4], [5]]
    assert stats.mv_checks == 1  # 28\sqrt{2} vs 28*\sqrt{2}; the rest by key or by value
    assert s["clusters"][0]["answer"] == "28√2"  # the answer as written


def test_never_compares_all_pairs():
    preds = [str(i % 7) for i in range(40)] + ["\\sqrt{2}", "No solution"]
    stats = ClusterStats()
    eq = Equivalence(FAST_ONLY, stats)
    parts = cluster_answers(preds, eq)
    assert len(parts) == 9
    n = len(preds)
    assert stats.checks < n * (n - 1) // 2 / 5


ANSWERS = st.sampled_from(["The answer is 2", "so x = 2 here", "1", "2", "-2", "1/2", "0.5", "\\frac{1}{2}", "2.0", "\\frac{4}{2}",
                           "\\sqrt{2}", "2\\sqrt{2}", "2√2", "2 * sqrt(2)", "√2", "\\pi", "π",
                           "No solution", "x = 1", "50\\%",
                           "0.50", "3.14159", "7", "(1, 2)", "\\{1, 2\\}", "\\text{two}"])


def naive_partition(preds: list[str], cfg: ClusterConfig) -> set[frozenset[int]]:
    """All pairs with the same pairwise rule (fast paths, then forms), connected components."""
    parent = list(range(len(preds)))

    def find(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    preds = [latexify(p) for p in preds]
    for i in range(len(preds)):
        for j in range(i + 1, len(preds)):
            if fast_decision(preds[i], preds[j], cfg.tolerance):
                parent[find(j)] = find(i)
    groups: dict[int, set[int]] = {}
    for i in range(len(preds)):
        groups.setdefault(find(i), set()).add(i)
    return {frozenset(g) for g in groups.values()}


@settings(max_examples=150, deadline=None)
@given(st.lists(ANSWERS, min_size=0, max_size=25))
def test_greedy_clusters_equal_all_pairs_clusters(preds):
    parts = cluster_answers(preds, Equivalence(FAST_ONLY, ClusterStats()))
    assert {frozenset(p) for p in parts} == naive_partition(preds, FAST_ONLY)
    assert sorted(i for p in parts for i in p) == list(range(len(preds)))


class OracleEquivalence(Equivalence):
    """math-verify replaced by a value table, answering in a random order and in bits."""

    VALUES = {"\\sqrt{4}": 2, "2": 2, "\\sqrt{9}": 3, "3": 3, "\\sqrt{16}": 4, "4": 4,
              "2^{2}": 4, "1+1": 2, "\\frac{6}{2}": 3, "x": "x", "y": "y", "\\text{x}": "x"}

    def __init__(self, cfg, stats, rng):
        super().__init__(cfg, stats)
        self.rng = rng
        self.waiting = {}

    def prefetch(self, answers):
        pass

    def submit(self, rep, cand):
        self.stats.mv_checks += 1
        ticket = len(self.waiting) + self.stats.mv_checks * 1000
        self.waiting[ticket] = self.VALUES[rep] == self.VALUES[cand]
        return None, ticket

    def results(self):
        take = [t for t in self.waiting if self.rng.random() < 0.3]
        return {t: self.waiting.pop(t) for t in take}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(sorted(OracleEquivalence.VALUES)), max_size=20),
       st.integers(1, 3), st.randoms(use_true_random=False))
def test_asynchronous_math_verify_gives_the_all_pairs_partition(preds, workers, rng):
    cfg = ClusterConfig(workers=workers, shortcuts=False)
    stats = ClusterStats()
    parts = cluster_answers(preds, OracleEquivalence(cfg, stats, rng))
    values = OracleEquivalence.VALUES
    want: dict[object, set[int]] = {}
    for i, p in enumerate(preds):
        want.setdefault(values[p], set()).add(i)
    assert {frozenset(p) for p in parts} == {frozenset(g) for g in want.values()}
    # clusters in order of their first member (the representative)
    assert [p[0] for p in parts] == sorted(p[0] for p in parts)
    n_distinct = len(set(preds))
    assert stats.mv_checks <= n_distinct * (n_distinct - 1) // 2


# --------------------------------------------------------------------------- bad input, CLI


def lines(records) -> str:
    return "".join(orjson.dumps(r).decode() + "\n" for r in records)


def test_missing_grade_fields_say_run_tf_grade_first(tmp_path):
    path = write_jsonl(tmp_path / "t.jsonl", golden_trajectories())
    result = runner.invoke(app, [str(path)])
    assert result.exit_code == 1
    assert f"line 1 of {path}: record has no 'verdict' and 'pred' field" in result.stderr
    assert "hint: run tf-grade first" in result.stderr
    assert result.stdout == ""
    with pytest.raises(InputError, match="tf-cluster reads graded trajectories"):
        list(cluster_records([{"id": "a", "verdict": "correct"}]))


def test_keep_going_passes_a_bad_record_on_marked(tmp_path):
    recs = golden_graded()
    del recs[3]["verdict"]
    result = runner.invoke(app, ["--keep-going"], input=lines(recs))
    assert result.exit_code == 3
    out = read_jsonl(result.stdout)
    assert out[0]["_tf"]["error"]["step"] == "cluster" and out[0]["sample_idx"] == 3
    assert out[1]["n"] == 7


def test_an_exception_summarising_one_problem_marks_its_trajectories(monkeypatch):
    from tf_tools.clustering import problems

    real = problems.cluster_answers

    def explode(preds, eq):
        if "666" in preds:
            raise RuntimeError("the clustering met a bug")
        return real(preds, eq)

    monkeypatch.setattr(problems, "cluster_answers", explode)
    bad = golden_graded("b")
    bad[2]["pred"] = "666"
    recs = golden_graded("a") + bad + golden_graded("c")
    result = runner.invoke(app, ["--no-math-verify"], input=lines(recs))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "tf-cluster: error: line 9 of <stdin> (problem 'b', 8 trajectories): cannot cluster "
        "this record: RuntimeError: the clustering met a bug",
        "hint: --keep-going marks the record (_tf.error) and goes on; -vv shows the traceback"]
    result = runner.invoke(app, ["--no-math-verify", "--keep-going"], input=lines(recs))
    assert result.exit_code == 3
    out = read_jsonl(result.stdout)
    assert [(r["id"], "n" in r) for r in out] == [("a", True)] + [("b", False)] * 8 + [("c", True)]
    assert [r["sample_idx"] for r in out[1:9]] == list(range(8))
    assert all(r["_tf"]["error"] == {
        "step": "cluster", "type": "RuntimeError", "message": "RuntimeError: the clustering met a bug",
        "where": "line 9 of <stdin> (problem 'b', 8 trajectories)"} for r in out[1:9])
    assert "8 records failed" in result.stderr


def test_a_pathological_answer_is_clustered_not_a_crash():
    recs = golden_graded()
    recs[7]["pred"] = "sqrt(" * 2000 + "2" + ")" * 2000  # latexify's recursion ran out here
    recs[5]["pred"] = "9" * 200_000  # int() refuses it
    (s,) = read_jsonl(runner.invoke(app, ["--no-math-verify"], input=lines(recs)).stdout)
    assert s["n_error_modes"] == 3 and s["n_clustered"] == 5


def test_non_contiguous_ids_name_the_id_unless_unsorted():
    recs = golden_graded("a")[:4] + golden_graded("b") + golden_graded("a")[4:]
    result = runner.invoke(app, [], input=lines(recs))
    assert result.exit_code == 1
    assert "id 'a' appears again after other ids" in result.stderr
    assert "--unsorted" in result.stderr
    result = runner.invoke(app, ["--unsorted"], input=lines(recs))
    assert result.exit_code == 0, result.stderr
    out = read_jsonl(result.stdout)
    assert [(r["id"], r["n"]) for r in out] == [("a", 8), ("b", 8)]
    def shape(summary):
        return [(c["answer"], [t["sample_idx"] for t in c["trajectories"]])
                for c in summary["clusters"]]

    assert shape(out[0]) == shape(golden_summary()) == [("7", [2, 3, 4]), ("15", [5]), ("9", [7])]
    assert "holding every record in memory" in result.stderr


def test_empty_input_no_output_exit_0():
    result = runner.invoke(app, [], input="")
    assert result.exit_code == 0 and result.stdout == "" and result.stderr == ""


def test_cli_unknown_keys_survive_and_summary_on_stderr(tmp_path):
    recs = golden_graded(user_field={"keep": [1, 2]})
    for r in recs:
        r["per_sample"] = r["sample_idx"] * 10
    path = write_jsonl(tmp_path / "g.jsonl", recs)
    result = runner.invoke(app, [str(path), "--workers", "1"])
    assert result.exit_code == 0, result.stderr
    (s,) = read_jsonl(result.stdout)
    assert s["user_field"] == {"keep": [1, 2]}
    assert s["clusters"][1]["trajectories"][0]["per_sample"] == 50
    assert "1 problems, 8 trajectories (correct 2, incorrect 5, truncated 1)" in result.stderr
    assert "clustered 5 wrong answers into 3 clusters" in result.stderr


def test_resume_skips_problems_already_written(tmp_path):
    src = write_jsonl(tmp_path / "g.jsonl", golden_graded("a") + golden_graded("b"))
    out = tmp_path / "p.jsonl"
    first = runner.invoke(app, [str(src), "-o", str(out)])
    assert first.exit_code == 0
    # a killed run left only problem a
    (out.with_suffix(".jsonl.tmp")).write_text(out.read_text().splitlines()[0] + "\n")
    out.unlink()
    again = runner.invoke(app, [str(src), "-o", str(out), "--resume"])
    assert again.exit_code == 0, again.stderr
    assert [r["id"] for r in read_jsonl(out.read_text())] == ["a", "b"]


class LenientEquivalence(OracleEquivalence):
    """A non-transitive "equal", as lenient readings make it: a = b and b = c, but a != c."""

    EQUAL = {frozenset({"s+1", "t+1"}), frozenset({"t+1", "r+1"})}

    def submit(self, rep, cand):
        self.stats.mv_checks += 1
        ticket = len(self.waiting) + self.stats.mv_checks * 1000
        self.waiting[ticket] = rep == cand or frozenset({rep, cand}) in self.EQUAL
        return None, ticket


@settings(max_examples=100, deadline=None)
@given(st.permutations(["s+1", "r+1", "t+1", "s+1", "7"]), st.randoms(use_true_random=False))
def test_non_transitive_equal_still_gives_the_connected_components(preds, rng):
    """Whatever the order, "s+1" and "r+1" meet through "t+1" (the all-pairs components),
    also when "t+1" is not the representative of its cluster."""
    stats = ClusterStats()
    parts = cluster_answers(preds, LenientEquivalence(ClusterConfig(workers=2), stats, rng))
    seven = preds.index("7")
    assert {frozenset(p) for p in parts} == {frozenset(set(range(5)) - {seven}), frozenset({seven})}
    assert [p[0] for p in parts] == sorted(p[0] for p in parts)


# --------------------------------------------------------------------------- fingerprints

# (a, b, what math-verify says): pairs where a fingerprint could go wrong if it ignored one of
# math-verify's rules: chopped cancellation, sets of distinct elements, sets against tuples,
# the complex reading of i, rounding of decimals, names, percents, equations, intervals
FINGERPRINT_PAIRS = [
    ("257^{48}/256^{48}", "((1 - 5^(1/2))^192) / (1 - 5)^48", True),  # math-verify's evalf chops
    ("2^48", "((1 - 5^(1/2))^192) / (1 - 5)^48", False),
    ("1, 1", "1", True),  # a set of one distinct element
    ("(1, 1)", "1", False),  # a tuple of two
    ("2, 4", "4, 2", True),
    ("2, 4", "2, 5", False),
    ("-1, 1", "5", False),
    ("x, y", "y, x", True),
    ("i(3+i)", "-1+3i", True),  # i as the imaginary unit when it is the only symbol
    ("i(3+i)", "-1+2i", False),
    ("\\frac{2}{1+i}", "1-i", True),
    ("3 - i", "11", False),
    ("0.333333", "\\frac{1}{3}", True),  # decimals to 6 places
    ("0.3333", "\\frac{1}{3}", False),
    ("x^2+2x+1", "(x+1)^2", True),
    ("x^2+2x+1", "(y+1)^2", False),  # names count
    ("\\sqrt{x^2}", "x", False),
    ("9\\%", "9", True),  # no fingerprint for a percent
    ("x = 2", "2", True),  # an equation against an expression: its right-hand side
    ("x = 2", "3", False),
    ("a = b = 3", "3", True),  # a chain: its last side
    ("y = 2x + 1", "2x + 1", True),
    ("y = 2x + 1", "2x - 1", False),
    ("x = 2", "y = 2", False),  # two equations: left to math-verify
    ("f(x) + f(x)", "2f(x)", True),  # an undefined function: one fixed function
    ("f(x) + 1", "f(x)", False),
    ("(1, 2)", "1, 2", True),  # nor for an interval
    ("Cannot be determined", "18976/23 - 35d", False),
    ("No solution", "None", False),
]


@pytest.fixture(scope="module")
def readings():
    from tf_tools.answers.worker import describe, verify_task

    texts = {t for a, b, _ in FINGERPRINT_PAIRS for t in (a, b)}
    prints = {t: describe(t)[1] for t in texts}
    verdicts = {(a, b): (verify_task((a,), b)[1], verify_task((b,), a)[1]) for a, b, _ in FINGERPRINT_PAIRS}
    return prints, verdicts


@pytest.mark.parametrize(("a", "b", "equal"), FINGERPRINT_PAIRS, ids=[f"{a} vs {b}" for a, b, _ in FINGERPRINT_PAIRS])
def test_fingerprints_far_apart_only_where_math_verify_says_different(readings, a, b, equal):
    from tf_tools.clustering.equivalence import far_apart

    prints, verdicts = readings
    assert verdicts[(a, b)] == (equal, equal), "the case itself: math-verify's verdict both ways"
    far = far_apart(prints[a], prints[b])
    assert far == far_apart(prints[b], prints[a])
    if equal:
        assert not far
    else:  # the fingerprints do tell these apart, except where a value is within 1e-4
        assert far == ((a, b) not in NOT_FAR), (prints[a], prints[b])


NOT_FAR = {
    ("0.3333", "\\frac{1}{3}"),  # within 1e-4
    ("2^48", "((1 - 5^(1/2))^192) / (1 - 5)^48"),  # within 1e-4 of the parts' scale (1e28)
    ("\\sqrt{x^2}", "x"),  # a bare symbol has no fingerprint
    ("x = 2", "y = 2"),  # an equation against an equation
}


def test_what_has_no_fingerprint():
    from tf_tools.answers.worker import describe

    for text in ["9\\%", "(1, 2]", "a", "\\int_0^1 x dx", "2^{1980} \\cdot 3^{4000}",
                 "\\begin{pmatrix}1\\\\2\\end{pmatrix}", "x = y"]:
        status, fp, _ = describe(text)
        assert status == "ok" and fp is None, text
    assert describe("___")[0] == "gold_unparseable"
    status, ((item,), scale), _ = describe("\\frac{1}{2}")
    assert status == "ok" and item == (0, (0.5 + 0j,), False) and scale == 1.0
    status, ((item,), _), _ = describe("x = 2")  # an equation: its right-hand side, marked
    assert status == "ok" and item == (0, (2 + 0j,), True)
    assert describe("f(x)")[1] is not None  # an undefined function: a fixed one


def test_fingerprints_spare_math_verify_calls_and_change_no_cluster():
    preds = ["x^2+2x+1", "(x+1)^2", "2x+1", "\\sqrt{2}+x", "3 - i", "-1, 1", "1, -1", "\\frac{7}{3}x",
             "Cannot be determined", "x^3"]
    recs = [graded("a", i, "incorrect", p) for i, p in enumerate(preds)]
    runs = {}
    for shortcuts in (True, False):
        stats = ClusterStats()
        (s,) = cluster_records(recs, ClusterConfig(workers=2, timeout=20, shortcuts=shortcuts), stats)
        runs[shortcuts] = ([sorted(t["sample_idx"] for t in c["trajectories"]) for c in s["clusters"]], stats)
    (with_prints, fast), (without, slow) = runs[True], runs[False]
    assert with_prints == without
    assert sorted(map(len, with_prints)) == [1] * 6 + [2, 2]
    assert fast.print_decided > 0 and slow.print_decided == 0
    assert fast.mv_checks < slow.mv_checks
