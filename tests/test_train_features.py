"""tf-train's LoRA, validation, tracking and checkpoint cadence on the tiny Qwen2 model (and
SmolLM2 for LoRA + packing, slow): only adapter weights change, the merged model equals
peft's own merge and loads in transformers, resume continues the same curve, the eval loss
is logged where asked, TensorBoard's own reader reads the events, the default cadence
checkpoints about every tenth of the run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from tf_tools.cli.train import app
from tf_tools.training import lora
from tf_tools.training.evaluate import split

from .conftest import read_jsonl, write_jsonl
from .test_train import chat, mixed_records

runner = CliRunner()


def run_cli(*args):
    return runner.invoke(app, [str(a) for a in args])


def many_records(n: int = 24) -> list[dict]:
    return [chat(f"What is {i} + {i + 1}?", f"{i} + {i + 1} = {2 * i + 1}. So \\boxed{{{2 * i + 1}}}.",
                 id=f"p{i}") for i in range(n)]


def loss_log(run: Path) -> list[dict]:
    return read_jsonl((run / "loss.jsonl").read_bytes())


def weights(folder: Path) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for f in sorted(folder.glob("*.safetensors")):
        out.update(load_file(str(f)))
    return out


COMMON = ("--global-batch-size", "4", "--micro-batch-size", "2", "--warmup-ratio", "0", "-q")


# ----------------------------------------------------------------------------- LoRA


def test_lora_trains_only_adapters_and_the_merge_equals_peft_merge(tiny_model, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    data = write_jsonl(tmp_path / "d.jsonl", many_records(16))
    run = tmp_path / "lora"
    res = run_cli("-m", tiny_model, data, "-o", run, "--epochs", "3", "--lr", "5e-2",
                  "--lora-r", "4", "--merge", *COMMON)
    assert res.exit_code == 0, res.output
    [manifest] = read_jsonl(res.stdout)
    assert 0 < manifest["trainable_parameters"] < manifest["parameters"] / 5
    curve = [r["loss"] for r in loss_log(run)]
    assert curve[-1] < curve[0]

    # the adapter: only LoRA matrices, and B moved away from its zero start
    adapter = weights(run / "adapter")
    assert adapter and all("lora_" in k for k in adapter)
    assert any(v.abs().max() > 0 for k, v in adapter.items() if "lora_B" in k)
    assert json.loads((run / "adapter" / "adapter_config.json").read_text())["r"] == 4

    # final/: merged; the weights without adapters (embeddings, norms) are the student's own
    base, merged = weights(tiny_model), weights(run / "final")
    assert set(merged) == set(base)
    untouched = [k for k in base if "proj" not in k]
    changed = [k for k in base if "proj" in k and not torch.equal(base[k], merged[k])]
    assert untouched and all(torch.equal(base[k], merged[k]) for k in untouched)
    assert changed

    # the merge equals peft's merge_and_unload of the saved adapter: same logits
    ids = torch.tensor([[1, 5, 9, 13, 2, 7]])
    ours = AutoModelForCausalLM.from_pretrained(run / "final", dtype=torch.float32).eval()
    theirs = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32),
                                       run / "adapter").merge_and_unload().eval()
    with torch.no_grad():
        torch.testing.assert_close(ours(ids).logits, theirs(ids).logits, rtol=1e-4, atol=1e-4)
    config = json.loads((run / "final" / "config.json").read_text())
    assert config["dtype"] == config["torch_dtype"] == "float32"


def test_lora_without_merge_leaves_the_adapter_in_final_and_resume_continues_the_curve(tiny_model, tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", many_records(16))
    args = ("--epochs", "3", "--lr", "5e-2", "--lora-r", "4", "--save-steps", "4", *COMMON)
    whole = tmp_path / "whole"
    assert run_cli("-m", tiny_model, data, "-o", whole, *args).exit_code == 0
    assert (whole / "final" / "adapter_config.json").exists()
    assert not (whole / "final" / "config.json").exists() and not (whole / "adapter").exists()
    from tf_tools.cli.sample import app as sample_app

    res = runner.invoke(sample_app, ["-m", str(whole / "final"), str(data), "--engine", "hf"])
    assert res.exit_code == 1 and "LoRA adapter" in res.output and "--merge" in res.output

    # a crash after the step-4 checkpoint: the copy loses final/, its manifest and the
    # later checkpoint; --resume goes on from step 4
    resumed = tmp_path / "resumed"
    assert run_cli("-m", tiny_model, data, "-o", resumed, *args).exit_code == 0
    assert sorted(p.name for p in (resumed / "checkpoints").iterdir()) == ["step-00000004", "step-00000008"]
    shutil.rmtree(resumed / "final")
    shutil.rmtree(resumed / "checkpoints" / "step-00000008")
    (resumed / "manifest.json").unlink()
    res = run_cli("-m", tiny_model, data, "-o", resumed, *args, "--resume")
    assert res.exit_code == 0, res.output
    a = [r["loss"] for r in loss_log(whole)]
    b = [r["loss"] for r in loss_log(resumed)]
    assert len(a) == len(b) == 12
    assert a == pytest.approx(b, rel=1e-5, abs=1e-6)


def test_lora_options_are_checked(tiny_model, tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", many_records(4))
    res = run_cli("-m", tiny_model, data, "-o", tmp_path / "r", "--merge")
    assert res.exit_code == 2 and "--lora-r" in res.output
    res = run_cli("-m", tiny_model, data, "-o", tmp_path / "r2", "--lora-r", "2", "--lora-target", "no_such_proj", *COMMON)
    assert res.exit_code == 2 and "--lora-target" in res.output


# ----------------------------------------------------------------------------- evaluation


def test_eval_share_holds_out_by_id_and_logs_the_eval_loss(tiny_model, tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", many_records(24))
    run = tmp_path / "ev"
    res = run_cli("-m", tiny_model, data, "-o", run, "--epochs", "2", "--lr", "2e-2",
                  "--eval-share", "0.25", "--eval-steps", "2", *COMMON)
    assert res.exit_code == 0, res.output
    [manifest] = read_jsonl(res.stdout)
    n_eval = manifest["eval_samples"]
    assert 0 < n_eval < 24 and manifest["samples"] + n_eval == 24
    log = loss_log(run)
    steps = [r["step"] for r in log if "eval_loss" in r]
    total = manifest["steps"]
    assert steps == sorted({*range(2, total + 1, 2), total})
    evals = [r["eval_loss"] for r in log if "eval_loss" in r]
    assert evals[-1] < evals[0] and manifest["eval_loss"] == pytest.approx(evals[-1])
    assert all(r.get("eval_loss") is None for r in log if r["step"] not in steps)


def test_eval_split_is_stable_and_keeps_a_problem_together():
    import numpy as np

    from tf_tools.training.data import Sample

    samples = [Sample(np.arange(5, dtype=np.int32), np.ones(5, bool), id=f"q{i // 3}") for i in range(300)]
    train, held = split(samples, 0.2)
    again_train, again_held = split(samples, 0.2)
    assert [s.id for s in held] == [s.id for s in again_held]
    assert {s.id for s in train}.isdisjoint({s.id for s in held})
    assert 0.1 < len(held) / len(samples) < 0.3


def test_eval_file_and_its_errors(tiny_model, tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", many_records(8))
    held = write_jsonl(tmp_path / "e.jsonl", mixed_records())
    run = tmp_path / "evf"
    res = run_cli("-m", tiny_model, data, "-o", run, "--epochs", "1", "--eval-file", held, *COMMON)
    assert res.exit_code == 0, res.output
    [manifest] = read_jsonl(res.stdout)
    assert manifest["eval_samples"] == len(mixed_records()) and manifest["eval_loss"] > 0
    res = run_cli("-m", tiny_model, data, "-o", tmp_path / "x", "--eval-steps", "2")
    assert res.exit_code == 2 and "--eval-file or --eval-share" in res.output
    res = run_cli("-m", tiny_model, data, "-o", tmp_path / "y", "--eval-file", tmp_path / "missing.jsonl")
    assert res.exit_code == 1 and "missing.jsonl" in res.output


# ----------------------------------------------------------------------------- tracking, cadence


def test_tensorboard_events_hold_the_loss_curve(tiny_model, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    data = write_jsonl(tmp_path / "d.jsonl", many_records(16))
    run = tmp_path / "tb"
    res = run_cli("-m", tiny_model, data, "-o", run, "--epochs", "1", "--eval-share", "0.25",
                  "--report-to", "tensorboard", *COMMON)
    assert res.exit_code == 0, res.output
    # tracking/<run name>/ holds the scalars (hparams go to a subfolder of their own)
    [events] = list((run / "tracking" / "tb").glob("events.out.tfevents.*"))
    acc = EventAccumulator(str(events.parent))
    acc.Reload()
    scalars = {e.step: e.value for e in acc.Scalars("train/loss")}
    log = {r["step"]: r["loss"] for r in loss_log(run)}
    assert scalars.keys() == log.keys()
    assert [scalars[s] for s in sorted(scalars)] == pytest.approx([log[s] for s in sorted(log)], rel=1e-5)
    assert acc.Scalars("eval/loss")


def test_wandb_offline_run_is_written(tiny_model, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    data = write_jsonl(tmp_path / "d.jsonl", many_records(8))
    res = run_cli("-m", tiny_model, data, "-o", tmp_path / "wb", "--epochs", "1", "--report-to", "wandb", *COMMON)
    assert res.exit_code == 0, res.output
    runs = list((tmp_path / "wandb").rglob("run-*.wandb"))
    assert runs and runs[0].stat().st_size > 0


def test_default_cadence_checkpoints_about_every_tenth_of_the_run(tiny_model, tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", many_records(20))
    run = tmp_path / "cad"
    res = run_cli("-m", tiny_model, data, "-o", run, "--epochs", "4", "--save-total-limit", "0", *COMMON)
    assert res.exit_code == 0, res.output
    [manifest] = read_jsonl(res.stdout)
    assert manifest["steps"] == 20 and manifest["config"]["save_every"] == 2
    steps = sorted(int(p.name.split("-")[1]) for p in (run / "checkpoints").iterdir())
    assert steps == list(range(2, 20, 2))


def test_save_minutes_checkpoints_on_time(tiny_model, tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", many_records(8))
    run = tmp_path / "min"
    # a tiny interval: every step is due; --save-steps large so only the clock saves
    res = run_cli("-m", tiny_model, data, "-o", run, "--epochs", "2", "--save-steps", "1000",
                  "--save-minutes", "0.000001", "--save-total-limit", "0", *COMMON)
    assert res.exit_code == 0, res.output
    steps = sorted(int(p.name.split("-")[1]) for p in (run / "checkpoints").iterdir())
    assert steps == [1, 2, 3]


def test_saved_tokenizer_keeps_the_chat_template_in_its_config(tiny_model, tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", many_records(4))
    run = tmp_path / "tok"
    assert run_cli("-m", tiny_model, data, "-o", run, "--epochs", "1", *COMMON).exit_code == 0
    config = json.loads((run / "final" / "tokenizer_config.json").read_text())
    assert "{%" in config["chat_template"]


def test_merged_state_dict_folds_each_adapter():
    a, b = torch.randn(2, 5), torch.randn(3, 2)
    w = torch.randn(3, 5)
    sd = {"base_model.model.layer.q_proj.base_layer.weight": w,
          "base_model.model.layer.q_proj.lora_A.default.weight": a,
          "base_model.model.layer.q_proj.lora_B.default.weight": b,
          "base_model.model.norm.weight": torch.ones(5)}
    merged = lora.merged_state_dict(sd, scaling=0.5)
    assert set(merged) == {"layer.q_proj.weight", "norm.weight"}
    torch.testing.assert_close(merged["layer.q_proj.weight"], w + 0.5 * b @ a)


@pytest.mark.slow
def test_smollm2_lora_with_packing(smollm2, tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", mixed_records())
    run = tmp_path / "smol"
    # 4 steps, no warmup: LoRA's B starts at zero, so a first step at lr 0 would change nothing
    res = run_cli("-m", smollm2, data, "-o", run, "--epochs", "2", "--lr", "1e-3", "--lora-r", "8",
                  "--packing", "--merge", "--global-batch-size", "4", "--micro-batch-size", "4",
                  "--warmup-ratio", "0", "--save-steps", "1000", "-q")
    assert res.exit_code == 0, res.output
    [manifest] = read_jsonl(res.stdout)
    assert manifest["config"]["packed_attention"] == "per-sample sdpa (varlen)"
    assert manifest["trainable_parameters"] < manifest["parameters"] / 50
    curve = [r["loss"] for r in loss_log(run)]
    assert curve[-1] < curve[0]
    config = json.loads((run / "final" / "config.json").read_text())
    assert config["torch_dtype"] == config["dtype"]
