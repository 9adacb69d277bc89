"""Real pipes on real teacher trajectories: tf-grade | tf-cluster | tf-fuse."""

from __future__ import annotations

import os
import subprocess
import sys

from .conftest import ROOT, read_jsonl, tool

BUNDLED = ROOT / "examples" / "data" / "qwen25math_math_25x8.jsonl"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def pipe(commands: list[list[str]], stdin_path: str | None = None, timeout: float = 120):
    """Run a shell-free pipeline; returns (stdout bytes, [(rc, stderr)] per command)."""
    procs = []
    prev = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL  # noqa: SIM115
    for cmd in commands:
        p = subprocess.Popen(cmd, stdin=prev, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=ENV)
        if prev not in (subprocess.DEVNULL, None) and hasattr(prev, "close"):
            prev.close()
        prev = p.stdout
        procs.append(p)
    out = procs[-1].stdout.read()
    results = []
    for p in procs:
        err = p.stderr.read().decode()
        results.append((p.wait(timeout=timeout), err))
    return out, results


def check_training_samples(samples: list[dict]) -> None:
    for s in samples:
        text = s["messages"][-1]["content"]
        assert s["segments"][-1]["kind"] == "correct" and s["segments"][-1]["end"] == len(text)
        assert s["k"] == sum(g["kind"] == "incorrect" for g in s["segments"])
        assert s["k"] <= 3 and (s["kind"] == "fused") == (s["k"] > 0)
        assert "<|im_end|>" not in text


def test_grade_cluster_fuse_pipe_on_bundled_trajectories():
    out, results = pipe([[tool("tf-grade"), "--workers", "2", "-"],
                         [tool("tf-cluster"), "--workers", "2"],
                         [tool("tf-fuse"), "--seed", "1"]], str(BUNDLED))
    assert [rc for rc, _ in results] == [0, 0, 0], results
    samples = read_jsonl(out)
    assert samples and len({s["id"] for s in samples}) >= 20
    check_training_samples(samples)
    assert any(s["kind"] == "fused" for s in samples)
    assert all(s["source"]["repo"] == "QwenLM/Qwen2.5-Math" for s in samples)  # user keys survive
    _, cluster_err = results[1]
    _, fuse_err = results[2]
    assert "25 problems, 200 trajectories" in cluster_err
    assert "25 problems in:" in fuse_err and "token multiplier" in fuse_err
    assert "k per sample:" in fuse_err


def test_closed_downstream_pipe_exits_0_quietly(tmp_path):
    graded = tmp_path / "g.jsonl"
    subprocess.run([tool("tf-grade"), "--workers", "2", str(BUNDLED), "-o", str(graded)],
                   check=True, env=ENV, capture_output=True)
    out, results = pipe([[tool("tf-cluster"), "--workers", "1", str(graded)],
                         [sys.executable, "-c", "import sys; sys.stdin.readline()"]])
    rc, err = results[0]
    assert rc == 0 and "Traceback" not in err


def test_qwen25math_100x8_from_shared_data(shared_data, tmp_path):
    src = shared_data / "trajectories" / "qwen25math_math_cot_100_x8.jsonl"
    traj = tmp_path / "q.jsonl"
    with open(traj, "wb") as f:
        subprocess.run([sys.executable, str(ROOT / "examples" / "convert_trajectories.py"),
                        "qwen25math", str(src)], check=True, stdout=f, env=ENV)
    out, results = pipe([[tool("tf-grade"), "--workers", "2", "-"],
                         [tool("tf-cluster"), "--workers", "2"],
                         [tool("tf-fuse")]], str(traj))
    assert [rc for rc, _ in results] == [0, 0, 0], results
    check_training_samples(read_jsonl(out))
    assert "100 problems in:" in results[2][1]


def test_fuse_resume_after_a_kill_matches_an_uninterrupted_run(tmp_path):
    graded, problems = tmp_path / "g.jsonl", tmp_path / "p.jsonl"
    subprocess.run([tool("tf-grade"), "--workers", "2", str(BUNDLED), "-o", str(graded)],
                   check=True, env=ENV, capture_output=True)
    subprocess.run([tool("tf-cluster"), "--workers", "2", str(graded), "-o", str(problems)],
                   check=True, env=ENV, capture_output=True)
    full = tmp_path / "full.jsonl"
    subprocess.run([tool("tf-fuse"), str(problems), "-o", str(full)], check=True, env=ENV,
                   capture_output=True)
    whole = full.read_bytes()
    lines = whole.splitlines(keepends=True)
    ids = [read_jsonl(line)[0]["id"] for line in lines]
    # a killed run: its .tmp ends inside a problem's samples, with a torn last line
    cut = next(i for i in range(1, len(ids)) if ids[i] == ids[i - 1] and i > len(ids) // 2)
    out = tmp_path / "resumed.jsonl"
    (tmp_path / "resumed.jsonl.tmp").write_bytes(b"".join(lines[:cut]) + lines[cut][:25])
    proc = subprocess.run([tool("tf-fuse"), str(problems), "-o", str(out), "--resume", "-v"],
                          env=ENV, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "resuming:" in proc.stderr
    assert out.read_bytes() == whole
    assert not (tmp_path / "resumed.jsonl.tmp").exists()
