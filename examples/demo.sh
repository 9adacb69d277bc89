#!/usr/bin/env bash
# make demo: grade the bundled slices of real teacher trajectories and say what was found.
# (The full sample -> grade -> cluster -> fuse -> train pipeline replaces this as the
# commands land.) Expects the tf-* commands on PATH (the Makefile puts .venv/bin first).
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${RUN:-runs/demo}
mkdir -p "$RUN"
for src in examples/data/qwen25math_math_25x8.jsonl examples/data/gsm8k_gpt3_50x4.jsonl; do
  name=$(basename "$src" .jsonl)
  out="$RUN/$name.graded.jsonl"
  if [[ "$out" -nt "$src" ]]; then
    echo "demo: $out is up to date"
  else
    echo "demo: tf-grade $src -> $out"
    tf-grade "$src" -o "$out"
  fi
done
echo "demo: gold answers of the bundled problems:"
tf-grade --check-gold examples/data/qwen25math_math_25x8.jsonl examples/data/gsm8k_gpt3_50x4.jsonl > "$RUN/bad_golds.jsonl"
python examples/summarize_grades.py "$RUN"/*.graded.jsonl
echo
echo "demo: outputs in $RUN/"
