"""tf-train on CUDA (skipped without a GPU): bf16 steps, packing with sdpa and with
flash-attention's varlen path, the real SmolLM2 with gradient checkpointing."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

from tests.conftest import read_jsonl, tool, write_jsonl  # noqa: E402
from tests.test_train import chat, losses, mixed_records  # noqa: E402
from tests.test_train_data import fused_record  # noqa: E402


def _train(model, data, run, *extra):
    proc = subprocess.run([tool("tf-train"), "-m", str(model), str(data), "-o", str(run), "-q",
                           "--epochs", "2", "--global-batch-size", "4", "--micro-batch-size", "2",
                           "--lr", "1e-3", *extra], capture_output=True)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    return read_jsonl(proc.stdout)[0]


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
    out = subprocess.run([tool("tf-sample"), "-m", str(tmp_path / "run" / "final"), "-n", "1",
                          "--max-tokens", "16", "-q"], input=b'{"id":"q","problem":"What is 3 + 5?","answer":"8"}\n',
                         capture_output=True)
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    assert read_jsonl(out.stdout)[0]["completion"]


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v"]))
