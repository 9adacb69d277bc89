"""tf-train on CUDA (skipped without a GPU): bf16 steps, packing with sdpa and with
flash-attention's varlen path, the real SmolLM2 with gradient checkpointing, LoRA merged in
bf16, and FSDP2 on 2 GPUs with the shipped accelerate config (skipped with fewer).
bench/train_gpu.sh runs these after its timed runs."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

from tests.conftest import ROOT, read_jsonl, tool, write_jsonl  # noqa: E402
from tests.test_train import chat, losses, mixed_records  # noqa: E402
from tests.test_train_data import fused_record  # noqa: E402


def _train(model, data, run, *extra, launcher=()):
    """tf-train's manifest; ``launcher``: the command that starts it (default: tf-train)."""
    cmd = [*launcher, "-m", "tf_tools.cli.train"] if launcher else [tool("tf-train")]
    proc = subprocess.run([*cmd, "-m", str(model), str(data), "-o", str(run), "-q",
                           "--epochs", "2", "--global-batch-size", "4", "--micro-batch-size", "2",
                           "--lr", "1e-3", *extra], capture_output=True, timeout=900)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    [manifest] = read_jsonl(proc.stdout)  # one manifest: only rank 0 writes
    return manifest


def _sample(model, *extra):
    """One greedy completion of a short problem by tf-sample from ``model``."""
    out = subprocess.run([tool("tf-sample"), "-m", str(model), "-n", "1", "--max-tokens", "16", "-q",
                          *extra], input=b'{"id":"q","problem":"What is 3 + 5?","answer":"8"}\n',
                         capture_output=True, timeout=900)
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    [rec] = read_jsonl(out.stdout)
    return rec


def test_bf16_on_cuda_packed_matches_padded(tiny_model, tmp_path):
    data = write_jsonl(tmp_path / "t.jsonl", mixed_records())
    plain = _train(tiny_model, data, tmp_path / "plain")
    packed = _train(tiny_model, data, tmp_path / "packed", "--packing")
    for m in (plain, packed):
        assert m["config"]["mixed_precision"] == "bf16" and m["config"]["device"].startswith("cuda")
        assert m["peak_gpu_memory_gib"] > 0
    # bf16 sums in another order: equal to bf16 precision, not to 1e-4
    assert losses(tmp_path / "packed") == pytest.approx(losses(tmp_path / "plain"), abs=2e-2)
    assert packed["padding_share"] < 0.05


@pytest.mark.skipif(importlib.util.find_spec("flash_attn") is None, reason="needs flash-attn")
def test_flash_attention_packing_uses_position_ids_only(tiny_model, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tf_tools.training.data import (
        DataConfig,
        pack_batch,
        pad_batch,
        per_sample_losses,
        tokenize_record,
    )

    tok = AutoTokenizer.from_pretrained(tiny_model)
    samples = [tokenize_record(r, tok, DataConfig()) for r in mixed_records()]
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.bfloat16,
                                                 attn_implementation="flash_attention_2").cuda().eval()
    with torch.no_grad():
        packed = pack_batch(samples, tok.pad_token_id, 4096, "flash_attention_2")
        assert packed.attention_mask is None
        got = per_sample_losses(model, packed.to("cuda"), len(samples))
        ref_model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.bfloat16).cuda().eval()
        ref = per_sample_losses(ref_model, pad_batch(samples, tok.pad_token_id).to("cuda"), len(samples))
    assert torch.allclose(got, ref, atol=2e-2)


def test_smollm2_bf16_with_gradient_checkpointing_round_trips(smollm2, tmp_path):
    data = write_jsonl(tmp_path / "t.jsonl", [fused_record() | {"id": f"f{i}"} for i in range(4)]
                       + [chat("What is 3 + 5?", "3 + 5 = 8, so \\boxed{8}.", id=f"c{i}") for i in range(4)])
    m = _train(smollm2, data, tmp_path / "run", "--packing", "--gradient-checkpointing", "--lr", "1e-5")
    assert m["steps"] == 4 and m["config"]["mixed_precision"] == "bf16"
    assert json.loads((tmp_path / "run" / "final" / "config.json").read_text())["dtype"] == "bfloat16"
    assert _sample(tmp_path / "run" / "final")["completion"]  # tf-sample's default engine (vLLM)


def test_lora_in_bf16_merges_into_a_model_in_the_students_dtype(tiny_model, tmp_path):
    data = write_jsonl(tmp_path / "t.jsonl", mixed_records())
    run = tmp_path / "lora"
    m = _train(tiny_model, data, run, "--lora-r", "8", "--merge")
    assert m["config"]["mixed_precision"] == "bf16" and m["config"]["device"].startswith("cuda")
    assert 0 < m["trainable_parameters"] < m["parameters"] / 5
    assert json.loads((run / "adapter" / "adapter_config.json").read_text())["r"] == 8
    # merged from bf16 training into the student's own dtype (the tiny model: float32)
    assert json.loads((run / "final" / "config.json").read_text())["dtype"] == "float32"
    assert _sample(run / "final", "--engine", "hf")["finish_reason"] in ("stop", "length")


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs")
def test_fsdp2_on_two_gpus_shards_and_trains_the_steps_of_one_gpu(tiny_model, tmp_path):
    """examples/accelerate/fsdp.yaml on 2 GPUs: accelerate shards with FSDP (on a CPU it is
    DDP: tests/test_train_dist.py), each GPU writes its own checkpoint shard, the plan (so the
    loss of each step) is that of one GPU to bf16 precision, final/ is a whole model."""
    data = write_jsonl(tmp_path / "t.jsonl", mixed_records())
    launcher = (tool("accelerate"), "launch", "--config_file",
                str(ROOT / "examples" / "accelerate" / "fsdp.yaml"), "--num_processes", "2")
    fsdp = _train(tiny_model, data, tmp_path / "fsdp", "--packing", "--save-steps", "2",
                  launcher=launcher)
    assert fsdp["config"]["distributed_type"] == "FSDP" and fsdp["config"]["world_size"] == 2
    assert fsdp["config"]["mixed_precision"] == "bf16" and fsdp["peak_gpu_memory_gib"] > 0
    # one file per GPU (torch.distributed.checkpoint's __RANK_0.distcp, or accelerate's
    # per-rank *_rankN.bin without DCP), not a gathered copy
    ckpt = tmp_path / "fsdp" / "checkpoints" / "step-00000002"
    per_gpu = {p.name for p in ckpt.rglob("*") if p.suffix == ".distcp" or "_rank" in p.name}
    assert len(per_gpu) >= 2, sorted(p.name for p in ckpt.rglob("*"))
    one = _train(tiny_model, data, tmp_path / "one", "--packing")
    assert len(losses(tmp_path / "fsdp")) == len(losses(tmp_path / "one")) == fsdp["steps"]
    assert losses(tmp_path / "fsdp") == pytest.approx(losses(tmp_path / "one"), rel=2e-2, abs=2e-2)
    assert one["steps"] == fsdp["steps"]
    assert _sample(tmp_path / "fsdp" / "final", "--engine", "hf")["finish_reason"] in ("stop", "length")


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v"]))
