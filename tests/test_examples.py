"""examples/Makefile end to end on the CPU with the demo's model and data (SMALL=1): the RFT
baseline and TrajFusion from the same teacher samples, both students evaluated, every stage
a file; a second make runs no tf-* command."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import orjson
import pytest

from .conftest import BIN, ROOT, model_cache, read_jsonl

pytestmark = pytest.mark.slow


def _make(*args: str, run: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "HF_HUB_OFFLINE": "1",
           "TF_TOOLS_CACHE": str(model_cache())}
    return subprocess.run(["make", "--no-print-directory", "-C", str(ROOT / "examples"), "SMALL=1",
                           f"RUN={run}", f"PYTHON={BIN / 'python'}", *args],
                          env=env, capture_output=True, text=True, timeout=1800)


@pytest.mark.timeout(1800)
def test_make_examples_small_runs_rft_and_trajfusion_side_by_side(smollm2, tmp_path):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    run = tmp_path / "run"
    proc = _make(run=run)
    assert proc.returncode == 0, proc.stderr[-4000:]

    graded = read_jsonl((run / "graded.jsonl").read_text())
    assert len(graded) == 8 * 8 and {r["verdict"] for r in graded} <= {
        "correct", "incorrect", "no_answer", "truncated", "ungradable"}
    assert len(read_jsonl((run / "clusters.jsonl").read_text())) == 8
    rft = read_jsonl((run / "train.rft.jsonl").read_text())
    fused = read_jsonl((run / "train.trajfusion.jsonl").read_text())
    assert rft and all(r["kind"] == "rft" and r["k"] == 0 for r in rft)
    assert fused and any(r["kind"] == "fused" for r in fused)
    # the same correct trajectories end both sets
    assert sorted(r["id"] for r in rft) == sorted(r["id"] for r in fused)
    for policy in ("rft", "trajfusion"):
        assert (run / f"model.{policy}" / "final" / "config.json").exists()
        manifest = read_jsonl((run / f"model.{policy}.json").read_text())[0]
        assert manifest["steps"] >= 1 and manifest["final"].endswith(f"model.{policy}/final")
        evaluated = read_jsonl((run / f"eval.{policy}.jsonl").read_text())
        assert len(evaluated) == 8 and all(r["_tf"]["sample"]["temperature"] == 0 for r in evaluated)
    assert len(read_jsonl((run / "eval.base.jsonl").read_text())) == 8
    assert list((run / "plots").rglob("*.png"))
    # one length end to end: tf-fuse trimmed to tf-train's length (nothing skipped), the
    # evaluation's budget covers the longest answer trained on, and the samples carry the
    # system prompt the teacher was sampled with (the one tf-sample evaluates with)
    system = graded[0]["_tf"]["sample"]["system"]
    assert all(r["messages"][0] == {"role": "system", "content": system} for r in rft + fused)
    for policy in ("rft", "trajfusion"):
        manifest = read_jsonl((run / f"model.{policy}.json").read_text())[0]
        assert manifest["skipped"]["too_long"] == 0
        budget = read_jsonl((run / f"eval.{policy}.jsonl").read_text())[0]["_tf"]["sample"]["max_tokens"]
        assert budget >= manifest["longest_answer_tokens"]
    cmp = orjson.loads((run / "stats" / "compare.rft-vs-trajfusion.json").read_bytes())
    assert cmp["problems"] == 8 and cmp["a"]["name"] == "eval.rft" and 0 <= cmp["mcnemar_p"] <= 1
    # the closing table: base, RFT and TrajFusion side by side, and the paired comparison
    table = proc.stdout
    header = next(line for line in table.splitlines() if line.startswith("student "))
    assert header.split() == ["student", "base", "rft", "trajfusion"]
    for line in ("teacher: pass@8", "training samples", "token multiplier", "pass@1 (greedy)",
                 "truncated", "paired (tf-stats --compare): eval.trajfusion - eval.rft"):
        assert line in table, table

    # a second make: every file is up to date, only the report runs
    again = _make("-n", run=run)
    assert again.returncode == 0
    planned = [line for line in again.stdout.splitlines() if line.strip()]
    assert planned and all("run_report.py" in line for line in planned), planned
