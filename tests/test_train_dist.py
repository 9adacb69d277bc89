"""tf-train in real processes (slow: they still run in CI, `-m 'not slow'` skips them):
two processes under torchrun, SIGKILL and --resume, the vLLM round trip, the real SmolLM2."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tf_tools.records import read_jsonl_file
from tf_tools.training import TrainConfig, train

from .conftest import read_jsonl, tool, write_jsonl
from .test_train import ANSWER, QUESTION, chat, losses, mixed_records, run_cli
from .test_train_data import fused_record

pytestmark = pytest.mark.slow

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def test_two_processes_under_torchrun_train_the_same_steps_as_one(tiny_model, tmp_path):
    data = write_jsonl(tmp_path / "mixed.jsonl", mixed_records())
    args = ["-m", str(tiny_model), str(data), "--epochs", "2", "--global-batch-size", "4",
            "--micro-batch-size", "1", "--lr", "5e-3", "--save-steps", "2", "-q"]
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "-m", "tf_tools.cli.train", *args, "-o", str(tmp_path / "two")],
                          capture_output=True, env=ENV, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    [manifest] = read_jsonl(proc.stdout)  # one manifest: only rank 0 writes
    assert manifest["config"]["world_size"] == 2
    assert manifest["config"]["distributed_type"] == "MULTI_CPU"
    assert manifest["config"]["gradient_accumulation_steps"] == 2  # 4 samples = 2 ranks x 2 x 1
    two = tmp_path / "two"
    assert (two / "final" / "model.safetensors").exists()
    ckpt = two / "checkpoints" / "step-00000002"
    assert {"random_states_0.pkl", "random_states_1.pkl"} <= {p.name for p in ckpt.iterdir()}
    # the plan does not depend on the number of processes: one process, same loss curve
    one = run_cli(*args, "-o", tmp_path / "one")
    assert one.exit_code == 0, one.output
    assert losses(two) == pytest.approx(losses(tmp_path / "one"), abs=1e-4)
    assert len(losses(two)) == 4


def test_accelerate_launch_with_the_shipped_fsdp_config_trains_and_says_it_is_ddp_on_cpu(tiny_model, tmp_path):
    """examples/accelerate/fsdp.yaml parses under `accelerate launch` and trains packed on 2
    CPU processes; accelerate shards with FSDP on GPUs only, so on a CPU it is DDP and
    tf-train says so instead of leaving the user to believe the model is sharded."""
    data = write_jsonl(tmp_path / "mixed.jsonl", mixed_records())
    config = Path(__file__).resolve().parent.parent / "examples" / "accelerate" / "fsdp.yaml"
    args = ["-m", str(tiny_model), str(data), "--epochs", "2", "--global-batch-size", "4",
            "--micro-batch-size", "1", "--lr", "5e-3", "--packing"]
    proc = subprocess.run([str(Path(sys.executable).parent / "accelerate"), "launch",
                           "--config_file", str(config), "--num_processes", "2",
                           "--mixed_precision", "no", "-m", "tf_tools.cli.train", *args,
                           "-o", str(tmp_path / "launched")],
                          capture_output=True, env=ENV, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    [manifest] = read_jsonl(proc.stdout)
    assert manifest["config"]["world_size"] == 2
    assert manifest["config"]["distributed_type"] == "MULTI_CPU"
    assert manifest["config"]["packed_attention"] == "per-sample sdpa (varlen)"
    assert "asks for FSDP, but accelerate runs FSDP on GPUs only" in proc.stderr.decode()
    assert (tmp_path / "launched" / "final" / "model.safetensors").exists()
    one = run_cli(*args, "-o", tmp_path / "one")
    assert one.exit_code == 0, one.output
    assert losses(tmp_path / "launched") == pytest.approx(losses(tmp_path / "one"), abs=1e-4)


def test_sigkill_then_resume_gives_the_uninterrupted_loss_curve(tiny_model, tmp_path):
    data = write_jsonl(tmp_path / "mixed.jsonl", mixed_records())
    args = [tool("tf-train"), "-m", str(tiny_model), str(data), "--epochs", "40",
            "--global-batch-size", "4", "--micro-batch-size", "2", "--lr", "3e-3",
            "--save-steps", "3", "-q"]
    full = subprocess.run([*args, "-o", str(tmp_path / "full")], capture_output=True, env=ENV, timeout=300)
    assert full.returncode == 0, full.stderr.decode()[-2000:]
    run = tmp_path / "killed"
    proc = subprocess.Popen([*args, "-o", str(run)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    log = run / "loss.jsonl"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if log.exists() and log.read_text().count("\n") >= 7:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run / "final").exists()
    assert (run / "checkpoints").is_dir()
    resumed = subprocess.run([*args, "-o", str(run), "--resume"], capture_output=True, env=ENV, timeout=300)
    assert resumed.returncode == 0, resumed.stderr.decode()[-2000:]
    [manifest] = read_jsonl(resumed.stdout)
    assert manifest["resumed_from"] and "step-" in manifest["resumed_from"]
    assert losses(run) == pytest.approx(losses(tmp_path / "full"), abs=1e-6)
    assert len(losses(run)) == 80
    assert manifest["final_loss"] == read_jsonl(full.stdout)[0]["final_loss"]


@pytest.fixture(scope="module")
def toy_model(tiny_model, tmp_path_factory) -> Path:
    """The tiny model taught one answer (the same run as the hf round-trip test)."""
    tmp = tmp_path_factory.mktemp("toy")
    data = write_jsonl(tmp / "toy.jsonl", [chat(QUESTION, ANSWER, id="toy")])
    cfg = TrainConfig(model=str(tiny_model), output=str(tmp / "run"), epochs=45, global_batch_size=1,
                      micro_batch_size=1, lr=1e-2, warmup_ratio=0, seed=1, quiet=True)
    return Path(train(read_jsonl_file(str(data)), cfg)["final"])


def test_vllm_loads_the_trained_model(toy_model, tmp_path):
    pytest.importorskip("vllm")
    problems = write_jsonl(tmp_path / "p.jsonl", [{"id": "q", "problem": QUESTION, "answer": "8"}])
    out = subprocess.run([tool("tf-sample"), "-m", str(toy_model), "--engine", "vllm", "-n", "1",
                          "--temperature", "0", "--system", "", "--max-tokens", "40", "-q", str(problems)],
                         capture_output=True, env=ENV, timeout=300)
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    [rec] = read_jsonl(out.stdout)
    assert rec["_tf"]["sample"]["engine"] == "vllm"
    assert rec["completion"] == ANSWER and rec["finish_reason"] == "stop"


def test_smollm2_trains_packed_and_saves_in_its_own_dtype(smollm2, tmp_path):
    records = [fused_record() | {"id": f"f{i}"} for i in range(2)] + [
        chat(QUESTION, ANSWER, id="a"), chat("What is 12 + 30?", "12 + 30 = 42, so \\boxed{42}.", id="b")]
    data = write_jsonl(tmp_path / "t.jsonl", records)
    run = tmp_path / "run"
    result = run_cli("-m", smollm2, data, "-o", run, "--epochs", "1", "--global-batch-size", "4",
                     "--micro-batch-size", "2", "--packing", "--mask-incorrect", "--lr", "1e-5")
    assert result.exit_code == 0, result.output
    [manifest] = read_jsonl(result.stdout)
    assert manifest["steps"] == 1 and manifest["padding_share"] < 0.05
    assert json.loads((run / "final" / "config.json").read_text())["dtype"] == "bfloat16"
    problems = write_jsonl(tmp_path / "p.jsonl", [{"id": "q", "problem": QUESTION, "answer": "8"}])
    out = subprocess.run([tool("tf-sample"), "-m", str(run / "final"), "--engine", "hf", "-n", "1",
                          "--max-tokens", "16", "-q", str(problems)], capture_output=True, env=ENV, timeout=300)
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    assert read_jsonl(out.stdout)[0]["completion"]
