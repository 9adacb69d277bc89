"""tf-plan and the rounds loop: each decision rule on hand-made summaries, the CLI's output
and summary, and bin/tf-rounds end to end with the hf engine (its rounds are a prefix of one
fixed run with -n N_MAX; a second run of the loop changes nothing)."""

from __future__ import annotations

import os
import subprocess

import orjson
import pytest
from typer.testing import CliRunner

from tf_tools.cli.plan import app
from tf_tools.planning import PlanConfig, decide, next_round, wilson

from .conftest import ROOT, read_jsonl, write_jsonl

runner = CliRunner()


def traj(i: int, text: str | None = None, first: int = 0) -> dict:
    return {"sample_idx": i, "completion": text or f"solution {i}",
            "_tf": {"sample": {"first_index": first}}}


def summary(correct: list[int], wrong: dict[str, list[int]], pid: str = "p", texts=None,
            rounds=()) -> dict:
    """A tf-cluster summary: correct sample indices, wrong ones by answer; ``rounds`` the
    first index of each later round (for the trajectories' provenance)."""
    def first(i):
        return max([0, *[r for r in rounds if r <= i]])

    n = len(correct) + sum(map(len, wrong.values()))
    return {"id": pid, "problem": "What?", "answer": "1", "n": n, "n_correct": len(correct),
            "correct": [traj(i, (texts or {}).get(i), first(i)) for i in correct],
            "clusters": [{"answer": a, "size": len(ix), "trajectories": [traj(i, first=first(i)) for i in ix]}
                         for a, ix in wrong.items()],
            "unclustered": [], "_tf": {"cluster": {}}}


CFG = PlanConfig(n_min=4, n_max=16, max_correct=2)


def test_all_correct_first_samples_decide_at_once():
    assert decide(summary([0, 1, 2, 3], {}), CFG) == ("all_correct", 4)
    # a wrong one among the first n_min: not RFT material yet
    assert decide(summary([0, 1, 3], {"7": [2]}), CFG)[0] != "all_correct"


def test_n_max_reached_is_too_hard_without_a_correct_one():
    assert decide(summary([], {"5": list(range(16))}), CFG) == ("too_hard", 16)
    assert decide(summary([3], {"5": [i for i in range(16) if i != 3]}), CFG) == ("n_max", 16)
    assert decide(summary([], {"5": [0, 1, 2, 3]}), CFG) == (None, 4)  # keep looking


def test_stable_needs_enough_distinct_correct_solutions():
    # 6 correct of 8 but all the same text: fewer than max_correct distinct ones
    same = summary([0, 1, 2, 4, 5, 6], {"9": [3, 7]}, texts={i: "same" for i in range(8)})
    assert decide(same, CFG)[0] is None
    varied = summary([0, 1, 2, 4, 5, 6], {"9": [3, 7]})
    reason, n = decide(varied, CFG)
    assert n == 8 and reason in ("stable", None)


def test_stable_when_k_is_the_same_across_the_interval_or_the_last_round():
    # 28 of 32 wrong, one cluster: e in [0.72, 0.95], k = round(e * 1) = 1 at both ends
    one = PlanConfig(n_min=4, n_max=64, max_correct=1)
    s = summary([0, 8, 16, 24], {"9": [i for i in range(32) if i % 8]})
    assert decide(s, one) == ("stable", 32)
    # 16 of 32 wrong: the interval spans k = 0 and k = 1: another round
    half = summary(list(range(0, 32, 2)), {"9": list(range(1, 32, 2))})
    assert decide(half, one) == (None, 32)
    # adaptive, k_max 3: 8 samples, half wrong in 3 clusters: the interval spans several k
    wide = summary([0, 2, 4, 6], {"a": [1], "b": [3], "c": [5, 7]})
    assert decide(wide, PlanConfig(n_min=4, n_max=64, max_correct=2))[0] is None
    # ... the same samples after a round from index 4 on, and k unchanged since: stable
    again = summary([0, 2, 4, 6], {"a": [1], "b": [3], "c": [5, 7]}, rounds=(4,))
    k_before = PlanConfig(max_correct=2).k(0.5, 0.6931471805599453, 2)  # samples 0-3: a, b
    k_now = PlanConfig(max_correct=2).k(0.5, 1.0397207708399179, 3)
    expected = "stable" if k_before == k_now else None
    assert decide(again, PlanConfig(n_min=4, n_max=64, max_correct=2))[0] == expected


def test_the_intervals_level_is_chosen_by_confidence():
    # 16 of 32 wrong, one cluster: at 95% the interval spans k = 0 and 1; at confidence 0 it is
    # the observed rate 0.5 alone, k = round(0.5) = 1 at both ends: stable
    half = summary(list(range(0, 32, 2)), {"9": list(range(1, 32, 2))})
    assert decide(half, PlanConfig(n_min=4, n_max=64, max_correct=1)) == (None, 32)
    assert decide(half, PlanConfig(n_min=4, n_max=64, max_correct=1, confidence=0.0)) == (
        "stable", 32)
    assert wilson(5, 10, PlanConfig(confidence=0.0).z) == pytest.approx((0.5, 0.5))
    assert PlanConfig().z == pytest.approx(1.959964, abs=1e-6)
    wide = wilson(3, 10, PlanConfig(confidence=0.99).z)
    narrow = wilson(3, 10, PlanConfig(confidence=0.8).z)
    assert wide[0] < narrow[0] < 0.3 < narrow[1] < wide[1]
    with pytest.raises(ValueError, match="confidence"):
        PlanConfig(confidence=1.0)


def test_next_round_doubles_within_the_bounds():
    cfg = PlanConfig(n_min=4, n_max=12)
    assert [next_round(n, cfg) for n in (0, 2, 4, 8, 12)] == [4, 2, 4, 4, 0]
    lo, hi = wilson(5, 10)
    assert lo < 0.5 < hi and wilson(0, 0) == (0.0, 1.0)


def test_cli_writes_open_problems_with_their_plan_and_sums_up(tmp_path):
    src = write_jsonl(tmp_path / "c.jsonl", [
        summary([0, 1, 2, 3], {}, pid="easy"),
        summary([], {"5": [0, 1, 2, 3]}, pid="open"),
        summary([], {"5": list(range(16))}, pid="hard"),
    ])
    res = runner.invoke(app, [str(src), "--n-max", "16", "--round", "2"])
    assert res.exit_code == 0, res.output
    [rec] = read_jsonl(res.stdout)
    assert rec["id"] == "open" and rec["problem"] == "What?" and "clusters" not in rec
    assert rec["_tf"] == {"plan": {"first_index": 4, "n": 4, "reason": "more_samples", "round": 2}}
    assert "3 problems, 24 samples so far: 1 need another round (4 samples)" in res.stderr
    assert "1 all correct" in res.stderr and "1 too hard" in res.stderr
    every = read_jsonl(runner.invoke(app, [str(src), "--n-max", "16", "--all"]).stdout)
    assert {r["id"]: r["_tf"]["plan"]["reason"] for r in every} == {
        "easy": "all_correct", "open": "more_samples", "hard": "too_hard"}
    assert runner.invoke(app, [str(src), "--n-min", "8", "--n-max", "4"]).exit_code == 2
    assert runner.invoke(app, [str(src), "--policy", "nope"]).exit_code == 2
    assert runner.invoke(app, [str(src), "--stable", "nope"]).exit_code == 2
    assert runner.invoke(app, [str(src), "--confidence", "1"]).exit_code == 2
    half = write_jsonl(tmp_path / "half.jsonl",
                       [summary(list(range(0, 32, 2)), {"9": list(range(1, 32, 2))})])
    reasons = [read_jsonl(runner.invoke(app, [str(half), "--n-max", "64", "--max-correct", "1",
                                              "--all", *flags]).stdout)[0]["_tf"]["plan"]["reason"]
               for flags in ([], ["--confidence", "0"])]
    assert reasons == ["more_samples", "stable"]
    assert runner.invoke(app, [str(src), "--n-max", "16", "--stable", "decision"]).exit_code == 0


def test_rounds_loop_is_a_prefix_of_one_fixed_run_and_resumes(tiny_model, tmp_path):
    problems = write_jsonl(tmp_path / "p.jsonl", [
        {"id": "a", "problem": "What is 1+1?", "answer": "2"},
        {"id": "b", "problem": "What is 2+3?", "answer": "5"}])
    env = {**os.environ, "N_MIN": "2", "N_MAX": "4", "HF_HUB_OFFLINE": "1",
           "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}"}
    flags = ["-m", str(tiny_model), "--engine", "hf", "--max-tokens", "8", "--seed", "3", "-q"]
    run = tmp_path / "rounds"
    cmd = [str(ROOT / "bin" / "tf-rounds"), str(problems), str(run), *flags]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    samples = [r for f in sorted(run.glob("round-*.samples.jsonl")) for r in read_jsonl(f.read_bytes())]
    fixed = subprocess.run([str(ROOT / ".venv" / "bin" / "tf-sample"), *flags, "-n", "4", str(problems)],
                           env=env, capture_output=True, timeout=600)
    whole = {(r["id"], r["sample_idx"]): r["completion"] for r in read_jsonl(fixed.stdout)}
    got = {(r["id"], r["sample_idx"]): r["completion"] for r in samples}
    assert got and all(whole[k] == v for k, v in got.items())
    for pid in ("a", "b"):  # each problem's indices are 0..n-1: a prefix
        idx = sorted(i for (q, i) in got if q == pid)
        assert idx == list(range(len(idx))) and len(idx) in (2, 4)
    decisions = {r["id"]: r["_tf"]["plan"]["reason"] for r in read_jsonl((run / "decisions.jsonl").read_bytes())}
    assert set(decisions) == {"a", "b"} and "more_samples" not in decisions.values()
    assert (run / "clusters.jsonl").exists()
    before = {f.name: f.read_bytes() for f in run.iterdir()}
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and {f.name: f.read_bytes() for f in run.iterdir()} == before


def test_rounds_help_and_usage():
    p = subprocess.run([str(ROOT / "bin" / "tf-rounds"), "--help"], capture_output=True, text=True)
    assert p.returncode == 0 and "N_MIN" in p.stdout and "usage: tf-rounds" in p.stdout
    p = subprocess.run([str(ROOT / "bin" / "tf-rounds")], capture_output=True, text=True)
    assert p.returncode == 2 and "expected PROBLEMS.jsonl and RUN_DIR" in p.stderr


@pytest.mark.parametrize("bad", [b"not json\n"])
def test_a_bad_summary_line_names_its_line(tmp_path, bad):
    src = tmp_path / "c.jsonl"
    src.write_bytes(orjson.dumps(summary([0], {})) + b"\n" + bad)
    res = runner.invoke(app, [str(src)])
    assert res.exit_code == 1 and "line 2" in res.stderr
