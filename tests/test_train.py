"""tf-train end to end on the tiny Qwen2 model: the loss goes down, the model round-trips through
tf-sample, packing changes nothing but speed, a crash resumes onto the same loss curve, bad
input and reused run folders are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tf_tools.cli.sample import app as sample_app
from tf_tools.cli.train import app
from tf_tools.records import read_jsonl_file
from tf_tools.training import TrainConfig, train

from .conftest import read_jsonl, write_jsonl
from .test_train_data import fused_record

runner = CliRunner()

QUESTION = "What is 3 + 5?"
ANSWER = "3 + 5 = 8, so \\boxed{8}."


def chat(q: str, a: str, **extra) -> dict:
    return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}], **extra}


def mixed_records() -> list[dict]:
    """Samples of very different lengths (fused and plain), so batches need padding."""
    out = [fused_record() | {"id": "fused"}, fused_record(system=None) | {"id": "fused-nosys"}]
    for i in range(6):
        out.append(chat(f"What is {i} + {2 * i}?" + " Think." * i, f"{i} + {2 * i} = {3 * i}. " * (1 + 2 * i), id=f"s{i}"))
    return out


def run_cli(*args: str, input: str | None = None):
    return runner.invoke(app, [str(a) for a in args], input=input)


def losses(run: Path) -> list[float]:
    return [r["loss"] for r in read_jsonl((run / "loss.jsonl").read_bytes())]


# ----------------------------------------------------------------------------- training


def test_short_run_learns_and_the_model_round_trips_through_tf_sample(tiny_model, tmp_path,
                                                                      monkeypatch):
    monkeypatch.setenv("TF_HEARTBEAT_S", "0")  # a heartbeat line per step on stderr
    data = write_jsonl(tmp_path / "toy.jsonl", [chat(QUESTION, ANSWER, id="toy")])
    run = tmp_path / "runs" / "toy"
    result = run_cli("-m", tiny_model, data, "-o", run, "--epochs", "45", "--global-batch-size", "1",
                     "--micro-batch-size", "1", "--lr", "1e-2", "--warmup-ratio", "0", "--seed", "1")
    assert result.exit_code == 0, result.output
    [manifest] = read_jsonl(result.stdout)
    curve = losses(run)
    assert len(curve) == 45 and manifest["steps"] == 45
    assert curve[-1] < 0.1 * curve[0], curve
    assert manifest["final_loss"] == pytest.approx(curve[-1], abs=1e-6)
    assert manifest["final"] == str(run / "final") and (run / "final" / "config.json").exists()
    assert manifest["samples"] == 1 and manifest["tokens_seen"] > 0
    assert manifest["samples_by_kind"] == {"other": {"none": 1}}
    assert manifest["skipped"] == {"too_long": 0, "bad": 0, "empty": 0, "by_kind": {}, "fraction": 0.0}
    assert "skipped" not in result.stderr and "hint:" not in result.stderr
    assert manifest["config"]["lr"] == 1e-2 and manifest["config"]["world_size"] == 1
    assert json.loads((run / "manifest.json").read_text()) == manifest
    assert "trained 45 steps on 1 samples" in result.stderr
    beats = [line for line in result.stderr.splitlines() if line.startswith("tf-train: ")
             and " steps, " in line]
    assert len(beats) == 45 and beats[0].startswith("tf-train: 1/45 steps")
    assert beats[-1].startswith("tf-train: 45/45 steps") and ", loss " in beats[-1]
    # tf-sample's transformers engine loads the checkpoint; greedy decoding says what was
    # taught and stops by itself: the end-of-turn token was trained
    problems = json.dumps({"id": "q", "problem": QUESTION, "answer": "8"}) + "\n"
    out = runner.invoke(sample_app, ["-m", str(run / "final"), "--engine", "hf", "-n", "1",
                                     "--temperature", "0", "--system", "", "--max-tokens", "40"],
                        input=problems)
    assert out.exit_code == 0, out.output
    [rec] = read_jsonl(out.stdout)
    assert rec["completion"] == ANSWER and rec["finish_reason"] == "stop"


def test_packing_and_checkpointing_change_nothing_but_speed(tiny_model, tmp_path):
    data = write_jsonl(tmp_path / "mixed.jsonl", mixed_records())
    common = ["-m", tiny_model, data, "--epochs", "1", "--global-batch-size", "4",
              "--micro-batch-size", "2", "--lr", "5e-3", "--warmup-ratio", "0", "-q"]
    plain = run_cli(*common, "-o", tmp_path / "plain")
    packed = run_cli(*common, "-o", tmp_path / "packed", "--packing", "--gradient-checkpointing")
    assert plain.exit_code == 0 and packed.exit_code == 0, plain.output + packed.output
    a, b = read_jsonl(plain.stdout)[0], read_jsonl(packed.stdout)[0]
    assert a["steps"] == b["steps"] == 2
    assert losses(tmp_path / "packed") == pytest.approx(losses(tmp_path / "plain"), abs=1e-4)
    assert a["tokens_seen"] == b["tokens_seen"]
    assert b["padding_share"] < a["padding_share"] and b["padding_share"] < 0.05


def _config(tiny_model, data_dir: Path, **kw) -> TrainConfig:
    base = dict(model=str(tiny_model), epochs=4, global_batch_size=4, micro_batch_size=2,
                lr=5e-3, warmup_ratio=0.2, save_steps=3, save_total_limit=2, quiet=True)
    return TrainConfig(**{**base, **kw, "output": str(data_dir)})


class Crash(Exception):
    pass


def test_a_crash_resumes_onto_the_uninterrupted_loss_curve(tiny_model, tmp_path):
    data = write_jsonl(tmp_path / "mixed.jsonl", mixed_records())
    full = train(read_jsonl_file(str(data)), _config(tiny_model, tmp_path / "full"))
    assert full["steps"] == 8

    def crash_at_7(info):
        if info.step == 7:
            raise Crash

    run = tmp_path / "crashed"
    with pytest.raises(Crash):
        train(read_jsonl_file(str(data)), _config(tiny_model, run), on_step=crash_at_7)
    # checkpoints at steps 3 and 6, whole; the log ran on to step 7
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-00000003", "step-00000006"]
    assert len(losses(run)) == 7 and not (run / "final").exists()
    resumed = train(read_jsonl_file(str(data)), _config(tiny_model, run, resume=True))
    assert resumed["resumed_from"] == str(run / "checkpoints" / "step-00000006")
    assert losses(run) == pytest.approx(losses(tmp_path / "full"), abs=1e-6)
    assert resumed["tokens_seen"] == full["tokens_seen"]
    assert resumed["final_loss"] == pytest.approx(full["final_loss"], abs=1e-6)
    # a finished run: --resume has nothing to do and says so
    again = train(read_jsonl_file(str(data)), _config(tiny_model, run, resume=True))
    assert again == resumed


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("bad, message", [
    ({"id": "x", "problem": "2+2"}, "line 2 of {path}: record has no 'messages' field"),
    ({"messages": [{"role": "user", "content": "hi"}]}, "line 2 of {path}: conversation has no assistant turn"),
    (chat("q", "abc", segments=[{"kind": "incorrect", "start": 0, "end": 7}]),
     "line 2 of {path}: segment incorrect [0, 7) falls outside the assistant message (3 characters)"),
])
def test_bad_records_stop_with_the_line_named(tiny_model, tmp_path, bad, message):
    data = write_jsonl(tmp_path / "t.jsonl", [chat(QUESTION, ANSWER), bad])
    result = run_cli("-m", tiny_model, data, "-o", tmp_path / "run")
    assert result.exit_code == 1
    assert f"tf-train: error: {message.format(path=data)}" in result.stderr
    assert result.stdout == ""


def test_keep_going_skips_bad_records_and_exits_3(tiny_model, tmp_path):
    data = write_jsonl(tmp_path / "t.jsonl", [chat(QUESTION, ANSWER), {"id": "x"}, chat(QUESTION, ANSWER)])
    with data.open("a") as f:
        f.write('{"messages": [{"role": "user", "content": "torn\n')  # stopped tf-train before
    result = run_cli("-m", tiny_model, data, "-o", tmp_path / "run", "--keep-going", "--epochs", "1",
                     "--global-batch-size", "2", "--micro-batch-size", "2")
    assert result.exit_code == 3, result.output
    [manifest] = read_jsonl(result.stdout)
    assert manifest["samples"] == 2 and manifest["skipped"] == {
        "too_long": 0, "bad": 2, "empty": 0, "by_kind": {"other": {"none": 2}}, "fraction": 0.5}
    assert f"line 2 of {data}: record has no 'messages' field (skipped)" in result.stderr
    assert f"line 4 of {data}: is not valid JSON" in result.stderr


def test_an_unexpected_tokenizer_error_names_the_record(tiny_model, tmp_path, monkeypatch):
    from tf_tools.training import setup

    from .test_train_data import FlakyTokenizer

    load = setup.load_tokenizer
    monkeypatch.setattr(setup, "load_tokenizer", lambda path: FlakyTokenizer(load(path)))
    data = write_jsonl(tmp_path / "t.jsonl", [chat(QUESTION, ANSWER), chat(QUESTION, "BOOM"),
                                              chat(QUESTION, ANSWER)])
    result = run_cli("-m", tiny_model, data, "-o", tmp_path / "run")
    assert result.exit_code == 1 and "Traceback" not in result.stderr and result.stdout == ""
    assert result.stderr.splitlines()[-2:] == [
        f"tf-train: error: line 2 of {data}: cannot train this record: RuntimeError: offsets went missing",
        "hint: --keep-going marks the record (_tf.error) and goes on; -vv shows the traceback"]


def test_too_long_samples_are_reported_and_skipped(tiny_model, tmp_path):
    data = write_jsonl(tmp_path / "t.jsonl", [chat(QUESTION, ANSWER, id="ok"), chat(QUESTION, "8 " * 200, id="long"),
                                              chat(QUESTION, ANSWER, id="ok2")])
    result = run_cli("-m", tiny_model, data, "-o", tmp_path / "run", "--max-length", "64", "--epochs", "1",
                     "--global-batch-size", "2", "--micro-batch-size", "2")
    assert result.exit_code == 0, result.output
    [manifest] = read_jsonl(result.stdout)
    assert manifest["samples"] == 2 and manifest["skipped"]["too_long"] == 1
    assert f"line 2 of {data}: " in result.stderr and "> --max-length 64" in result.stderr


def test_skipped_samples_are_counted_by_kind_and_k_with_a_warning(tiny_model, tmp_path):
    long = "8 " * 200
    records = [
        chat(QUESTION, ANSWER, kind="fused", k=1), chat(QUESTION, long, kind="fused", k=3),
        chat(QUESTION, ANSWER, kind="rft", k=0), chat(QUESTION, long, kind="fused", k=2),
        chat(QUESTION, "8 " * 15, kind="fused", k=2), chat(QUESTION, long, kind="rft", k=0),
        chat(QUESTION, ANSWER, kind="rft", k=0), chat(QUESTION, long, kind="fused", k=3),
        chat(QUESTION, ANSWER),  # a dataset from elsewhere: no kind, no k
    ]
    data = write_jsonl(tmp_path / "t.jsonl", records)
    result = run_cli("-m", tiny_model, data, "-o", tmp_path / "run", "--max-length", "64", "--epochs", "1",
                     "--global-batch-size", "5", "--micro-batch-size", "5")
    assert result.exit_code == 0, result.output
    [manifest] = read_jsonl(result.stdout)
    assert manifest["samples"] == 5
    assert manifest["samples_by_kind"] == {"fused": {"1": 1, "2": 1}, "rft": {"0": 2}, "other": {"none": 1}}
    assert manifest["skipped"] == {"too_long": 4, "bad": 0, "empty": 0, "fraction": 0.4444,
                                   "by_kind": {"fused": {"2": 1, "3": 2}, "rft": {"0": 1}}}
    # 15 x ("8", " "): Qwen2's pre-tokenizer splits digits one by one; plus <|im_end|>
    assert manifest["longest_answer_tokens"] == 31
    assert ("skipped 4 of 9 samples (44.4%): 4 longer than --max-length 64 tokens (never cut); "
            "by kind and k: fused k=2: 1, k=3: 2; rft k=0: 1") in result.stderr
    assert "more than 1% of the training samples are skipped" in result.stderr
    assert "hint: pass the training length to tf-fuse --max-tokens" in result.stderr
    assert "trained 1 steps on 5 samples (4 skipped, 44.4%)" in result.stderr


def test_missing_student_and_missing_flags(tmp_path):
    data = write_jsonl(tmp_path / "t.jsonl", [chat(QUESTION, ANSWER)])
    result = run_cli("-m", tmp_path / "nope", data, "-o", tmp_path / "run")
    assert result.exit_code == 1 and "model not found" in result.stderr
    assert not (tmp_path / "run").exists()
    assert run_cli(data, "-o", tmp_path / "run").exit_code == 2
    assert run_cli("-m", tmp_path / "nope", data).exit_code == 2
    assert run_cli("-m", tmp_path, data, "-o", tmp_path / "r", "--global-batch-size", "0").exit_code == 2


def test_a_folder_holding_another_run_is_refused(tiny_model, tmp_path):
    data = write_jsonl(tmp_path / "t.jsonl", [chat(QUESTION, ANSWER, id=str(i)) for i in range(2)])
    args = ["-m", tiny_model, data, "--epochs", "1", "--global-batch-size", "2", "--micro-batch-size", "2", "-q"]
    run = tmp_path / "run"
    assert run_cli(*args, "-o", run).exit_code == 0
    again = run_cli(*args, "-o", run)
    assert again.exit_code == 2 and "already holds a run" in again.stderr
    assert "--resume" in again.stderr and "--overwrite" in again.stderr
    other = run_cli(*args, "-o", run, "--resume", "--lr", "3e-4")
    assert other.exit_code == 2 and "holds a different run (lr: 1e-05 there, 0.0003 now)" in other.stderr
    # --resume of the same, finished run prints its manifest again; --overwrite starts over
    same = run_cli(*args, "-o", run, "--resume")
    assert same.exit_code == 0 and read_jsonl(same.stdout)[0]["run"] == str(run)
    fresh = run_cli(*args, "-o", run, "--overwrite", "--lr", "3e-4")
    assert fresh.exit_code == 0 and read_jsonl(fresh.stdout)[0]["config"]["lr"] == 3e-4
    # a folder that holds something else is never trained into, nor deleted
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    refused = run_cli(*args, "-o", tmp_path / "other", "--overwrite")
    assert refused.exit_code == 2 and "holds no tf-train run" in refused.stderr
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"


def test_sigterm_checkpoints_the_step_and_resume_continues_the_curve(tiny_model, tmp_path):
    """A SLURM time limit / scancel / preemption sends SIGTERM: tf-train finishes the step,
    saves a checkpoint there and stops (exit 130); --resume continues onto the same curve."""
    import os
    import signal

    from tf_tools.errors import Interrupted

    data = write_jsonl(tmp_path / "mixed.jsonl", mixed_records())
    train(read_jsonl_file(str(data)), _config(tiny_model, tmp_path / "full"))

    def term_at_4(info):
        if info.step == 4:
            os.kill(os.getpid(), signal.SIGTERM)

    run = tmp_path / "stopped"
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Interrupted) as stopped:
        train(read_jsonl_file(str(data)), _config(tiny_model, run), on_step=term_at_4)
    assert stopped.value.exit_code == 130
    assert "SIGTERM after step 4 of 8" in stopped.value.message and "--resume" in stopped.value.hint
    assert signal.getsignal(signal.SIGTERM) == before  # handlers restored
    # the periodic checkpoint at 3 and the one the signal asked for at 4
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-00000003", "step-00000004"]
    assert len(losses(run)) == 4
    resumed = train(read_jsonl_file(str(data)), _config(tiny_model, run, resume=True))
    assert resumed["resumed_from"] == str(run / "checkpoints" / "step-00000004")
    assert losses(run) == pytest.approx(losses(tmp_path / "full"), abs=1e-6)
