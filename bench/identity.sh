#!/usr/bin/env bash
# Byte-identity of the pipeline's records across a code change (issue 12): runs
# tf-grade | tf-cluster | tf-fuse (and tf-grade | tf-stats --json) on every examples/data/*.jsonl with the
# code at PYTHONPATH (default: this checkout) and writes them under OUT with timing fields
# removed; diff two OUT folders to compare.
#   (cd /tmp/before && PYTHONPATH=/tmp/before /path/to/bench/identity.sh /tmp/id-before)
#   -- from the other tree's own folder: before a0cfc8c the math-verify workers' fork server
#   imported tf_tools from the current folder, whatever PYTHONPATH said
#   bench/identity.sh /tmp/id-after && diff -r /tmp/id-before /tmp/id-after
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:?usage: bench/identity.sh OUT_DIR}
export PATH="$HERE/.venv/bin:$PATH" HF_HUB_OFFLINE=1 PYTHONPATH=${PYTHONPATH:-$HERE}
TOK=${TOKENIZER:-$HOME/.cache/tf-tools/smollm2-135m-instruct}
mkdir -p "$OUT"
# timing and host fields are the only ones allowed to differ
strip() { python3 -c '
import sys, json
def clean(o):
    if isinstance(o, dict):
        return {k: clean(v) for k, v in o.items() if not any(t in k for t in ("seconds", "elapsed", "time", "host", "version", "_s"))}
    if isinstance(o, list):
        return [clean(v) for v in o]
    return o
text = sys.stdin.read()
try:  # one JSON document (tf-stats --json) or JSON lines
    docs = [json.loads(text)]
except ValueError:
    docs = [json.loads(line) for line in text.splitlines() if line.strip()]
for doc in docs:
    print(json.dumps(clean(doc), sort_keys=True, ensure_ascii=False))
'; }
for f in "$HERE"/examples/data/*.jsonl; do
  n=$(basename "$f" .jsonl)
  head -1 "$f" | grep -q '"completion"' || continue  # problem files: nothing to grade
  tf-grade -q "$f" | tee >(strip > "$OUT/$n.graded.jsonl") \
    | tf-cluster -q | tee >(strip > "$OUT/$n.clusters.jsonl") \
    | tf-fuse -q --tokenizer "$TOK" --seed 0 | strip > "$OUT/$n.fused.jsonl"
  tf-grade -q "$f" | tf-stats --json | strip > "$OUT/$n.stats.json"
done
sleep 1
wc -l "$OUT"/* | tail -1
