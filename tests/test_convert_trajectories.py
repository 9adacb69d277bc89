"""Tests for examples/convert_trajectories.py against the real files in ../shared/data.

The script is run as a subprocess, as a user would run it. Skipped when the shared data
folder is absent (a plain clone of the project does not have it).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "examples" / "convert_trajectories.py"
DATA = Path(os.environ.get("TF_SHARED_DATA", REPO.parent / "shared" / "data"))
TRAJ = DATA / "trajectories"

pytestmark = pytest.mark.skipif(not TRAJ.is_dir(), reason=f"shared data not found at {DATA}")

FIELDS = ("id", "problem", "answer", "sample_idx", "completion", "finish_reason", "label", "source")


def run(fmt, *inputs, limit=None, check=True):
    cmd = [sys.executable, str(SCRIPT), fmt, *map(str, inputs)]
    if limit is not None:
        cmd += ["--limit-problems", str(limit)]
    p = subprocess.run(cmd, capture_output=True, text=True, encoding="utf-8", timeout=300)
    if check:
        assert p.returncode == 0, p.stderr
    return [json.loads(line) for line in p.stdout.splitlines()], p.stderr


def load(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def check_records(recs, per_problem=None, n_problems=None):
    """Schema, grouping and sample_idx checks shared by every format; returns id -> records."""
    assert recs, "no records"
    groups: dict[str, list] = {}
    prev = None
    for r in recs:
        for k in FIELDS:
            assert k in r, f"missing {k}: {sorted(r)}"
        assert isinstance(r["id"], str) and r["id"]
        assert isinstance(r["problem"], str) and r["problem"]
        assert isinstance(r["answer"], (str, list))
        assert isinstance(r["completion"], str)
        assert isinstance(r["sample_idx"], int) and r["sample_idx"] >= 0
        assert r["finish_reason"] in ("stop", "length")
        assert r["label"] is None or isinstance(r["label"], bool)
        assert {"format", "file", "model", "license"} <= set(r["source"])
        if r["id"] != prev:
            assert r["id"] not in groups, f"id {r['id']} is not contiguous"
            groups[r["id"]] = []
            prev = r["id"]
        groups[r["id"]].append(r)
    for pid, g in groups.items():
        idx = [r["sample_idx"] for r in g]
        assert idx == sorted(set(idx)), f"{pid}: sample_idx {idx}"
        if per_problem is not None:
            assert idx == list(range(per_problem)), f"{pid}: sample_idx {idx}"
    if n_problems is not None:
        assert len(groups) == n_problems
    return groups


def test_qwen25math():
    path = TRAJ / "qwen25math_math_cot_100_x8.jsonl"
    recs, _ = run("qwen25math", path, limit=3)
    groups = check_records(recs, per_problem=8, n_problems=3)
    src = load(path)[:3]
    for s, (pid, g) in zip(src, groups.items(), strict=False):
        assert pid == f"qwen25math/{s['idx']}"
        assert [r["label"] for r in g] == s["score"]
        assert [r["completion"] for r in g] == s["code"]
        assert [r["source_pred"] for r in g] == s["pred"]
        assert all(r["problem"] == s["question"] and r["answer"] == s["answer"] for r in g)
        assert all(r["source_gt"] == s["gt"] for r in g)


def test_gsm8k_openai():
    path = TRAJ / "gsm8k_openai_example_model_solutions.jsonl"
    recs, _ = run("gsm8k-openai", path, limit=3)
    groups = check_records(recs, per_problem=4, n_problems=3)
    keys = ["6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification"]
    for n, (s, (pid, g)) in enumerate(zip(load(path)[:3], groups.items(), strict=False)):
        assert pid == f"gsm8k-test/{n}"
        assert [r["label"] for r in g] == [s[k]["is_correct"] for k in keys]
        assert [r["completion"] for r in g] == [s[k]["solution"] for k in keys]
        assert all(r["answer"] == s["ground_truth"] and r["problem"] == s["question"] for r in g)
        assert [r["source"]["model"] for r in g] == ["GPT-3 6B"] * 2 + ["GPT-3 175B"] * 2


def test_mathcoder_merges_files_by_id():
    files = sorted((TRAJ / "mathcoder_gsm8k").glob("*.jsonl"))
    assert len(files) == 4
    recs, _ = run("mathcoder", *files, limit=5)
    groups = check_records(recs, per_problem=4, n_problems=5)
    by_id = [{r["id"]: r for r in load(f)} for f in files]  # files are not in the same order
    first_ids = [r["id"] for r in load(files[0])[:5]]
    assert list(groups) == [f"gsm8k-test/{int(i) - 1}" for i in first_ids]
    for g in groups.values():
        for r in g:
            s = by_id[r["sample_idx"]][r["source"]["id"]]
            assert r["source"]["model"] == s["model"]
            assert r["label"] is s["correct"]
            assert r["problem"] == s["question"]
            assert r["answer"] == s["ground_truth"]["answer"]
            assert r["source_pred"] == s["completion"]
            # the rendered completion holds the model's turns, code fenced
            turns = [t for t in s["trajectory"] if t["role"] == "code"]
            assert all(t["content"] in r["completion"] for t in turns)
            if turns:
                assert "```python\n" in r["completion"]


def test_merge_follows_given_file_order():
    files = sorted((TRAJ / "mathcoder_gsm8k").glob("*.jsonl"))[:2][::-1]
    recs, _ = run("mathcoder", *files, limit=2)
    check_records(recs, per_problem=2, n_problems=2)
    first = load(files[0])[0]
    assert recs[0]["source"]["id"] == first["id"]
    assert [r["source"]["model"] for r in recs[:2]] == [load(f)[0]["model"] for f in files]


def test_tora():
    files = sorted((TRAJ / "tora_gsm8k").glob("*.jsonl"))
    recs, _ = run("tora", TRAJ / "tora_gsm8k", limit=3)  # a directory: .metrics ignored
    groups = check_records(recs, per_problem=2, n_problems=3)
    src = [load(f)[:3] for f in files]
    for n, g in enumerate(groups.values()):
        for r in g:
            s = src[r["sample_idx"]][n]
            assert r["id"] == f"gsm8k-test/{s['idx']}"
            assert r["label"] is None
            assert r["completion"] == s["code"][0] and r["source_pred"] == s["pred"][0]
            assert r["answer"] == s["gt"] and r["problem"] == s["question"]
            assert r["source"]["model"] == files[r["sample_idx"]].name.split("_")[0]


def test_nemo():
    files = sorted((TRAJ / "nemo_skills_math_train_50x3").glob("output-rs*.jsonl"))
    recs, _ = run("nemo", *files, limit=4)
    groups = check_records(recs, per_problem=3, n_problems=4)
    src = [{r["id"]: r for r in load(f)} for f in files]
    for g in groups.values():
        for r in g:
            s = src[r["sample_idx"]][r["source"]["id"]]
            assert r["source"]["seed"] == r["sample_idx"]
            assert r["label"] is s["symbolic_correct"]
            assert r["source_pred"] == s["predicted_answer"]
            assert r["completion"] == s["generation"]
            assert r["answer"] == s["expected_answer"] and r["problem"] == s["problem"]


def test_zeroeval_math_l5_forty_models():
    d = TRAJ / "zeroeval" / "math-l5"
    files = sorted(d.glob("*.jsonl"), key=lambda p: p.name)
    assert len(files) == 40
    recs, _ = run("zeroeval", d, limit=3)
    groups = check_records(recs, per_problem=40, n_problems=3)
    src = [{r["id"]: r for r in load(f)} for f in files]
    for g in groups.values():
        for r in g:
            assert r["label"] is None
            s = src[r["sample_idx"]][r["source"]["id"]]
            assert r["id"] == f"math-l5/{s['id']}"
            assert r["source"]["model"] == s["model"] == files[r["sample_idx"]].stem
            assert r["completion"] == s["output"]  # verbatim
            assert r["source_pred"] == s["pred_answer_field"]
            assert r["answer"] == s["answer"] and r["problem"] == s["problem"]


def test_zeroeval_gsm():
    recs, _ = run("zeroeval", *sorted((TRAJ / "zeroeval" / "gsm").glob("*.jsonl")), limit=2)
    groups = check_records(recs, per_problem=16, n_problems=2)
    assert list(groups) == ["gsm/gsm8k-main-test-#0", "gsm/gsm8k-main-test-#1"]
    assert recs[0]["answer"] == "# 18"


def test_zeroeval_matches_by_id_and_reports_missing(tmp_path):
    d = TRAJ / "zeroeval" / "math-l5"
    full, partial = d / "Athene-70B.jsonl", d / "Meta-Llama-3.1-70B-Instruct@hyperbolic.jsonl"
    # a copy of the full file in reversed line order (same task directory name)
    shuffled = tmp_path / "math-l5" / "zz-reversed.jsonl"
    shuffled.parent.mkdir()
    shuffled.write_text("".join(reversed(full.read_text(encoding="utf-8").splitlines(True))),
                        encoding="utf-8")
    recs, err = run("zeroeval", shuffled, full, partial)
    groups = check_records(recs)
    n_partial = len(load(partial))
    assert len(groups) == 721
    # sorted by file name: Athene-70B, Meta-...@hyperbolic, zz-reversed
    assert list(groups)[0] == "math-l5/0"
    for pid, g in groups.items():
        assert len({r["problem"] for r in g}) == 1, pid  # matched by id, not by line
        assert len({r["answer"] for r in g}) == 1, pid
    assert Counter(len(g) for g in groups.values()) == {3: n_partial, 2: 721 - n_partial}
    missing = next(pid for pid, g in groups.items() if len(g) == 2)
    assert [r["sample_idx"] for r in groups[missing]] == [0, 2]
    assert "lacks 296 problem(s)" in err and missing in err


def test_limit_zero_and_help():
    recs, _ = run("qwen25math", TRAJ / "qwen25math_math_cot_100_x8.jsonl", limit=0)
    assert recs == []
    p = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True)
    assert p.returncode == 0
    for fmt in ("qwen25math", "gsm8k-openai", "mathcoder", "tora", "nemo", "zeroeval"):
        assert f"convert_trajectories.py {fmt} " in p.stdout


def test_wrong_format_fails_cleanly():
    p = subprocess.run([sys.executable, str(SCRIPT), "tora",
                        str(TRAJ / "nemo_skills_math_train_50x3" / "output-rs0.jsonl")],
                       capture_output=True, text=True)
    assert p.returncode != 0 and "does not look like format" in p.stderr and not p.stdout
