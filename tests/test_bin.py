"""bin/: the launchers a cluster user puts on PATH from a checkout, and the SLURM driver.

Everything runs as a subprocess with a bare environment (``env -i``-like: only PATH and
HOME), from a folder outside the checkout, as a user's shell would run it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT, read_jsonl, write_jsonl

BIN = ROOT / "bin"
COMMANDS = ["tf-sample", "tf-grade", "tf-cluster", "tf-fuse", "tf-train", "tf-stats", "tf-plan"]

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX shell launchers")


def run(cmd: list[str], cwd: Path, path: str, **kw) -> subprocess.CompletedProcess:
    env = {"PATH": path, "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, **kw)


@pytest.mark.parametrize("command", COMMANDS)
def test_launcher_help_from_elsewhere_with_only_bin_on_path(command, tmp_path):
    if not (ROOT / ".venv" / "bin" / "python").exists():
        pytest.skip("no .venv in the checkout: PATH=bin/ alone finds no python3")
    p = run([command, "--help"], cwd=tmp_path, path=str(BIN))
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(f"Usage: {command} [OPTIONS]")
    assert p.stderr == ""


def test_launcher_grades_records_and_keeps_the_current_folder_off_sys_path(tmp_path):
    if not (ROOT / ".venv" / "bin" / "python").exists():
        pytest.skip("no .venv in the checkout: PATH=bin/ alone finds no python3")
    # a package in the current folder named like ours must not shadow the checkout's
    (tmp_path / "tf_tools").mkdir()
    (tmp_path / "tf_tools" / "__init__.py").write_text("raise ImportError('the current folder was imported')\n")
    write_jsonl(tmp_path / "t.jsonl", [
        {"id": "a", "answer": "4", "completion": "2 + 2 = \\boxed{4}", "finish_reason": "stop", "mine": 1},
        {"id": "b", "answer": "1/2", "completion": "so \\boxed{0.25}", "finish_reason": "stop"},
        {"id": "c", "answer": "7", "completion": "I am not sure.", "finish_reason": "stop"},
        # only math-verify decides this one: a worker process must find the checkout too
        {"id": "d", "answer": "x^2+2x+1", "completion": "\\boxed{(x+1)^2}", "finish_reason": "stop"},
    ])
    p = run(["tf-grade", "t.jsonl"], cwd=tmp_path, path=str(BIN))
    assert p.returncode == 0, p.stderr
    out = read_jsonl(p.stdout)
    assert [(r["id"], r["verdict"], r["correct"]) for r in out] == [
        ("a", "correct", True), ("b", "incorrect", False), ("c", "no_answer", False),
        ("d", "correct", True)]
    assert out[3]["_tf"]["grade"]["path"] == "math-verify"
    assert out[0]["mine"] == 1
    assert p.stderr.startswith("tf-grade: graded 4")


def test_launcher_through_a_symlink(tmp_path):
    if not (ROOT / ".venv" / "bin" / "python").exists():
        pytest.skip("no .venv in the checkout")
    links = tmp_path / "links"
    links.mkdir()
    (links / "stats").symlink_to(BIN / "tf-stats")  # any name: the real file names the command
    (tmp_path / "relative").symlink_to(Path("links") / "stats")  # a chain, relative
    p = run([str(tmp_path / "relative"), "--help"], cwd=tmp_path, path="/usr/bin:/bin")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("Usage: tf-stats [OPTIONS]")


def fake_checkout(tmp_path: Path) -> Path:
    """A checkout without .venv whose tf_tools is a stub that prints what it was given."""
    co = tmp_path / "checkout"
    (co / "bin").mkdir(parents=True)
    (co / "bin" / "tf-grade").write_bytes((BIN / "tf-grade").read_bytes())
    (co / "bin" / "tf-grade").chmod(0o755)
    (co / "tf_tools" / "cli").mkdir(parents=True)
    (co / "tf_tools" / "__init__.py").write_text("")
    (co / "tf_tools" / "cli" / "__init__.py").write_text("")
    (co / "tf_tools" / "cli" / "grade.py").write_text(
        "import sys\n\ndef main():\n    print('stub', sys.argv, sys.path[0])\n")
    return co


def test_launcher_without_venv_runs_python3_from_path(tmp_path):
    co = fake_checkout(tmp_path)
    py = tmp_path / "py"
    py.mkdir()
    (py / "python3").symlink_to(sys.executable)
    p = run(["tf-grade", "a b", "-q"], cwd=tmp_path, path=f"{co / 'bin'}:{py}")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == f"stub ['tf-grade', 'a b', '-q'] {co}"


def test_launcher_without_venv_or_python3_says_so(tmp_path):
    co = fake_checkout(tmp_path)
    p = run(["tf-grade", "--help"], cwd=tmp_path, path=str(co / "bin"))
    assert p.returncode == 1
    assert p.stdout == ""
    assert p.stderr.splitlines() == [f"tf-grade: error: no {co}/.venv and no python3 on PATH",
                                     f"hint: make install in {co}, or put a python3 with tf-tools' "
                                     "dependencies on PATH"]


# ----------------------------------------------------------------------------- tf-pipeline

FAKE_SBATCH = """#!/bin/sh
# records its arguments (tab-separated) and the environment the jobs would get; prints a job id
n=$(( $(cat "$SBATCH_LOG.n" 2>/dev/null || echo 100) + 1 ))
echo "$n" > "$SBATCH_LOG.n"
{ printf '%s' "$n"; printf '\\t%s' "$@"; printf '\\tPATH=%s\\tCONFIG=%s\\tMAX_LENGTH=%s\\tN=%s\\tTF_SLURM_DIR=%s\\n' \\
  "$PATH" "$CONFIG" "$MAX_LENGTH" "${N:-}" "${TF_SLURM_DIR:-}"; } >> "$SBATCH_LOG"
echo "$n"
"""


def test_pipeline_checks_its_arguments(tmp_path):
    p = run([str(BIN / "tf-pipeline"), "problems.jsonl", "test.jsonl"], cwd=tmp_path, path="/usr/bin:/bin")
    assert p.returncode == 2
    assert p.stderr.splitlines() == [
        "tf-pipeline: error: expected 5 arguments, got 2",
        "usage: tf-pipeline PROBLEMS.jsonl TEST.jsonl TEACHER_DIR STUDENT_DIR RUN_DIR"]
    assert not list(tmp_path.iterdir())
    p = run([str(BIN / "tf-pipeline"), "--help"], cwd=tmp_path, path="/usr/bin:/bin")
    assert p.returncode == 0 and p.stdout.startswith("Submit the whole pipeline")
    assert p.stdout.rstrip().endswith("usage: tf-pipeline PROBLEMS.jsonl TEST.jsonl TEACHER_DIR STUDENT_DIR RUN_DIR")


def test_pipeline_submits_the_chain_from_any_folder(tmp_path):
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "sbatch").write_text(FAKE_SBATCH)
    (fake / "sbatch").chmod(0o755)
    log = tmp_path / "sbatch.log"
    env_path = f"{fake}:/usr/bin:/bin"
    p = subprocess.run([str(BIN / "tf-pipeline"), "p.jsonl", "t.jsonl", "models/teacher", "models/student", "runs/x"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=60,
                       env={"PATH": env_path, "HOME": str(tmp_path), "USER": "me", "SHARDS": "4",
                            "SBATCH_LOG": str(log)})
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "runs" / "x").is_dir()
    calls = [line.split("\t") for line in log.read_text().splitlines()]
    jobs = {c[0]: c[1:] for c in calls}
    slurm = ROOT / "examples" / "slurm"

    scripts = [Path(next(a for a in c if a.endswith(".sbatch"))) for c in calls[:-1]]
    assert [s.name for s in scripts] == ["sample.sbatch", "grade.sbatch", "fuse.sbatch",
                                         "train.sbatch", "eval.sbatch", "train.sbatch", "eval.sbatch"]
    assert all(s.parent == slurm and s.exists() for s in scripts)
    assert "--wrap" in calls[-1]
    sample, grade, fuse, train_rft, eval_rft, train_tf, eval_tf, compare = (c[0] for c in calls)
    assert "--array=0-3" in jobs[sample] and "N=8" in jobs[sample]
    assert f"--dependency=afterok:{sample}" in jobs[grade]
    assert f"--dependency=afterok:{grade}" in jobs[fuse]
    assert f"--dependency=afterok:{fuse}" in jobs[train_rft] and f"--dependency=afterok:{fuse}" in jobs[train_tf]
    assert "runs/x/train.rft.jsonl" in jobs[train_rft] and "runs/x/train.trajfusion.jsonl" in jobs[train_tf]
    assert f"--dependency=afterok:{train_rft}" in jobs[eval_rft] and f"--dependency=afterok:{train_tf}" in jobs[eval_tf]
    assert f"--dependency=afterok:{eval_rft}:{eval_tf}" in jobs[compare]
    assert "tf-stats --compare runs/x/eval.rft.jsonl runs/x/eval.trajfusion.jsonl" in jobs[compare]
    for c in calls:  # the jobs find tf-* and accelerate in the checkout, after the user's own PATH
        assert f"PATH={env_path}:{BIN}:{ROOT / '.venv' / 'bin'}" in c
        assert f"CONFIG={ROOT / 'examples' / 'accelerate' / 'fsdp.yaml'}" in c and "MAX_LENGTH=4096" in c
        assert f"TF_SLURM_DIR={slurm}" in c  # train.sbatch sources requeue.sh from there
    assert (slurm / "requeue.sh").exists()
    assert (ROOT / "examples" / "accelerate" / "fsdp.yaml").exists()
    assert p.stdout.splitlines()[-1].startswith(f"sample array {sample} -> grade {grade} -> fuse {fuse}")
