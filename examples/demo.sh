#!/usr/bin/env bash
# make demo: the whole TrajFusion pipeline on the CPU with a real model, unattended —
# SmolLM2-135M-Instruct samples 8 solutions to each of 32 easy word problems (vLLM), then
# tf-grade, tf-cluster, tf-fuse, a short tf-train of the student (the same small model),
# its greedy pass@1 on 32 other problems before and after, and tf-stats with charts.
# Every stage is a file target of examples/Makefile in one run folder: a second run is a
# no-op. Expects the tf-* commands on PATH (the top Makefile puts .venv/bin first).
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${RUN:-$PWD/runs/demo}
start=$(date +%s)
make --no-print-directory -C examples demo RUN="$RUN"
echo
echo "demo: finished in $(( $(date +%s) - start )) s; every stage's output is in $RUN/"
