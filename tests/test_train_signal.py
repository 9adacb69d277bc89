"""A SLURM time limit that saves the run, simulated on the CPU: examples/slurm/requeue.sh (the
code train.sbatch sources) gets the warning signal as the batch shell would
(--signal=B:USR1), passes it to the step, and requeues the job (`scontrol`, here a stand-in
that writes down its arguments) only when the step saved a new checkpoint and did not
finish. The step is first a stand-in (its decisions, fast), then the real thing: two
tf-train processes under torchrun with train.sbatch's launcher settings, stopped and resumed
onto the loss curve of an uninterrupted run."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import ROOT, read_jsonl, write_jsonl
from .test_train import losses, mixed_records

SLURM = ROOT / "examples" / "slurm"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
       "TORCH_CPP_LOG_LEVEL": "ERROR"}
JOB = "4242"

# the batch shell: train.sbatch's shell options, the helper, then the step
DRIVER = 'set -euo pipefail; source "$0"; tf_run_or_requeue "$@"'

# a stand-in for srun + launcher + tf-train: waits for USR1 (or not), then does MODE
FAKE_STEP = r"""
import pathlib, signal, sys, time
run, mode = pathlib.Path(sys.argv[1]), sys.argv[2]
got = []
signal.signal(signal.SIGUSR1, lambda *_: got.append(1))
(run / "ready").touch()
if mode.startswith("wait-"):
    while not got:
        time.sleep(0.01)
    mode = mode[len("wait-"):]
if mode == "checkpoint":  # stopped at step 7, as a launcher stopped by a signal exits
    (run / "checkpoints" / "step-00000007").mkdir(parents=True)
    sys.exit(1)
if mode == "finish":
    (run / "manifest.json").write_text("{}")
    sys.exit(0)
sys.exit(int(mode))
"""


def job_env(tmp: Path) -> dict[str, str]:
    """The environment of a job: SLURM_JOB_ID, and an `scontrol` that logs its arguments."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir(exist_ok=True)
    scontrol = bin_dir / "scontrol"
    scontrol.write_text(f'#!/usr/bin/env bash\necho "$@" >> {tmp / "scontrol.log"}\n')
    scontrol.chmod(0o755)
    return {**ENV, "SLURM_JOB_ID": JOB, "PATH": f"{bin_dir}:{ENV['PATH']}"}


def scontrol_calls(tmp: Path) -> list[str]:
    log = tmp / "scontrol.log"
    return log.read_text().splitlines() if log.exists() else []


def batch_job(tmp: Path, run: Path, step: list[str], env: dict[str, str],
              warn_when=None, timeout: float = 240) -> subprocess.CompletedProcess:
    """The batch shell running STEP through requeue.sh; SLURM's warning (USR1 to this shell,
    as --signal=B:USR1 sends it) once ``warn_when()`` is true, if given."""
    proc = subprocess.Popen(["bash", "-c", DRIVER, str(SLURM / "requeue.sh"), str(run), *step],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    if warn_when is not None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None and not warn_when():
            time.sleep(0.01)
        assert proc.poll() is None, "the step ended before the warning: " + proc.stderr.read().decode()[-3000:]
        proc.send_signal(signal.SIGUSR1)
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def fake(run: Path, mode: str) -> list[str]:
    return [sys.executable, "-c", FAKE_STEP, str(run), mode]


@pytest.mark.parametrize(("mode", "warn", "status", "requeued"), [
    ("wait-checkpoint", True, 0, True),   # stopped with a new checkpoint: requeue
    ("wait-1", True, 1, False),           # stopped without one: nothing to resume, the job fails
    ("wait-finish", True, 0, False),      # finished within the grace period: done
    ("finish", False, 0, False),          # no warning, finished
    ("3", False, 3, False),               # no warning, failed: its own status, no requeue
])
def test_the_batch_shell_requeues_only_a_stopped_run_with_a_new_checkpoint(tmp_path, mode, warn, status, requeued):
    run = tmp_path / "run"
    run.mkdir()
    done = batch_job(tmp_path, run, fake(run, mode), job_env(tmp_path),
                     warn_when=(lambda: (run / "ready").exists()) if warn else None, timeout=30)
    err = done.stderr.decode()
    assert done.returncode == status, err
    assert scontrol_calls(tmp_path) == ([f"requeue {JOB}"] if requeued else [])
    if requeued:
        assert f"stopped at {run}/checkpoints/step-00000007; requeuing" in err
    if mode == "wait-1":
        assert "error: no checkpoint saved since the job started (none): not requeuing" in err


def test_a_checkpoint_from_an_earlier_start_is_not_progress(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints" / "step-00000007").mkdir(parents=True)
    (run / "checkpoints" / "step-00000009.tmp").mkdir()  # a save cut short is no checkpoint
    done = batch_job(tmp_path, run, fake(run, "wait-1"), job_env(tmp_path),
                     warn_when=lambda: (run / "ready").exists(), timeout=30)
    assert done.returncode == 1
    assert f"no checkpoint saved since the job started ({run}/checkpoints/step-00000007)" in done.stderr.decode()
    assert scontrol_calls(tmp_path) == []


def sbatch_settings() -> dict[str, str]:
    """What train.sbatch sets for the launcher, and its SLURM signal and requeue lines."""
    text = (SLURM / "train.sbatch").read_text()
    assert "#SBATCH --signal=B:USR1@" in text and "#SBATCH --requeue" in text
    assert re.search(r'^source "\$\{TF_SLURM_DIR:-examples/slurm\}/requeue\.sh"$', text, re.M)
    assert re.search(r"^tf_run_or_requeue \"\$RUN\" srun ", text, re.M)
    return dict(re.findall(r"^export (PET_SIGNALS_TO_HANDLE|TORCH_ELASTIC_SHUTDOWN_TIMEOUT)=\$\{\w+:-(.+)\}$",
                           text, re.M))


def test_train_sbatch_hands_usr1_to_the_launcher_and_gives_it_time():
    settings = sbatch_settings()
    assert "SIGUSR1" in settings["PET_SIGNALS_TO_HANDLE"].split(",")
    assert int(settings["TORCH_ELASTIC_SHUTDOWN_TIMEOUT"]) > 30  # torch's default kills a checkpoint
    signal_time = int(re.search(r"--signal=B:USR1@(\d+)", (SLURM / "train.sbatch").read_text())[1])
    assert int(settings["TORCH_ELASTIC_SHUTDOWN_TIMEOUT"]) <= signal_time - 60  # sent up to 60 s early


@pytest.mark.slow
def test_the_warning_checkpoints_two_processes_under_torchrun_and_the_requeued_job_resumes(tiny_model, tmp_path):
    data = write_jsonl(tmp_path / "mixed.jsonl", mixed_records())
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2"]
    # --save-steps past the end: the only checkpoint is the one the warning asks for
    train = ["-m", "tf_tools.cli.train", "-m", str(tiny_model), str(data), "--epochs", "40",
             "--global-batch-size", "4", "--micro-batch-size", "1", "--lr", "3e-3",
             "--save-steps", "1000", "-q"]
    full = subprocess.run([*torchrun, *train, "-o", str(tmp_path / "full")], capture_output=True,
                          env=ENV, timeout=600)
    assert full.returncode == 0, full.stderr.decode()[-3000:]

    env = {**job_env(tmp_path), **sbatch_settings()}
    run = tmp_path / "run"
    log = run / "loss.jsonl"
    first = batch_job(tmp_path, run, [*torchrun, *train, "-o", str(run)], env,
                      warn_when=lambda: log.exists() and log.read_bytes().count(b"\n") >= 3, timeout=600)
    err = first.stderr.decode()
    assert first.returncode == 0, err[-3000:]
    [ckpt] = (run / "checkpoints").iterdir()
    step = int(ckpt.name.removeprefix("step-"))
    assert 3 <= step < 80
    assert {"random_states_0.pkl", "random_states_1.pkl"} <= {p.name for p in ckpt.iterdir()}
    assert f"stopped by SIGUSR1 after step {step} of 80" in err
    assert "Sending process" in err and "closing signal SIGUSR1" in err  # the launcher passed it on
    assert "forcefully exiting" not in err  # and did not have to SIGKILL a worker
    assert f"job {JOB}: the training step exited with status 1" in err  # torchrun after a signal
    assert scontrol_calls(tmp_path) == [f"requeue {JOB}"]
    assert len(losses(run)) == step and not (run / "final").exists()

    # the requeued job: train.sbatch passes --resume, as the run folder holds run.json
    assert (run / "run.json").exists()
    second = batch_job(tmp_path, run, [*torchrun, *train, "-o", str(run), "--resume"], env, timeout=600)
    assert second.returncode == 0, second.stderr.decode()[-3000:]
    assert scontrol_calls(tmp_path) == [f"requeue {JOB}"]  # no second requeue
    [manifest] = read_jsonl(second.stdout)
    assert manifest["resumed_from"] == str(ckpt)
    assert (run / "manifest.json").exists() and (run / "final").is_dir()
    assert len(losses(run)) == 80
    assert losses(run) == pytest.approx(losses(tmp_path / "full"), abs=1e-6)
    assert manifest["final_loss"] == read_jsonl(full.stdout)[0]["final_loss"]
