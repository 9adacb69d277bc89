"""Print what tf-grade found in graded trajectory files: verdicts, accuracy, agreement
with the labels the source shipped (records with a boolean `label`), and a few
disagreements to read. Stand-in for `tf-stats` in `make demo` until that lands.

    python examples/summarize_grades.py runs/demo/*.graded.jsonl
"""

from __future__ import annotations

import json
import sys
from collections import Counter


def summarize(path: str) -> None:
    verdicts: Counter[str] = Counter()
    paths: Counter[str] = Counter()
    agree = labelled = 0
    disagreements = []
    problems = set()
    with open(path) as f:
        for line in f:
            rec = json.loads(line)
            problems.add(rec.get("id"))
            verdicts[rec["verdict"]] += 1
            paths[rec["_tf"]["grade"]["path"]] += 1
            if isinstance(rec.get("label"), bool):
                labelled += 1
                if rec["label"] == rec["correct"]:
                    agree += 1
                elif len(disagreements) < 3:
                    disagreements.append(rec)
    n = sum(verdicts.values())
    print(f"\n{path}: {n} trajectories of {len(problems)} problems")
    for verdict in ("correct", "incorrect", "no_answer", "truncated", "ungradable"):
        print(f"  {verdict:<11} {verdicts[verdict]:>6}  {100 * verdicts[verdict] / max(n, 1):5.1f}%")
    fast = n - paths["math-verify"] - paths["timeout"]
    print(f"  decided by a fast path (no SymPy): {fast}/{n}")
    if labelled:
        print(f"  agreement with the source's labels: {agree}/{labelled} = {100 * agree / labelled:.1f}%")
    for rec in disagreements:
        print(f"    {rec['id']}#{rec.get('sample_idx')}: label={rec['label']} tf-grade={rec['verdict']} "
              f"pred={rec['pred']!r} gold={str(rec['answer'])[-40:]!r}")


if __name__ == "__main__":
    for p in sys.argv[1:]:
        summarize(p)
