"""Sampling in rounds against one fixed run, on the same problems and teacher (make rounds).

    python examples/rounds_report.py FIXED_SAMPLES FIXED_TRAIN ROUNDS_DIR ROUNDS_TRAIN

FIXED_SAMPLES: the fixed run's samples (tf-sample -n N); FIXED_TRAIN / ROUNDS_TRAIN: tf-fuse's
samples from each; ROUNDS_DIR: bin/tf-rounds' folder (round-R.samples.jsonl,
decisions.jsonl). Prints samples and completion tokens drawn (the teacher's cost), the
problems' decisions, and the training samples each gives: how many, by kind and k, and how
many problems get the same training samples (same k, same texts) from both.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any


def read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def cost(samples: list[dict[str, Any]]) -> tuple[int, int]:
    tokens = sum((s.get("_tf", {}).get("sample", {}) or {}).get("n_completion_tokens") or 0
                 for s in samples)
    return len(samples), tokens


def by_problem(train: list[dict[str, Any]]) -> dict[Any, list[tuple[Any, str]]]:
    out: dict[Any, list[tuple[Any, str]]] = {}
    for s in train:
        out.setdefault(s.get("id"), []).append((s.get("k"), s["messages"][-1]["content"]))
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    fixed_samples, fixed_train, rounds_dir, rounds_train = map(Path, argv)
    fixed = read(fixed_samples)
    rounds = [s for f in sorted(rounds_dir.glob("round-*.samples.jsonl"),
                                key=lambda p: int(p.name.split("-")[1].split(".")[0]))
              for s in read(f)]
    (n_f, t_f), (n_r, t_r) = cost(fixed), cost(rounds)
    print(f"teacher samples:   fixed {n_f:6d}   rounds {n_r:6d}   ({1 - n_r / n_f:+.1%} fewer)"
          if n_f else "no fixed samples")
    if t_f:
        print(f"completion tokens: fixed {t_f:6d}   rounds {t_r:6d}   ({1 - t_r / t_f:+.1%} fewer)")
    n_rounds = len(list(rounds_dir.glob("round-*.samples.jsonl")))
    decisions = Counter(d["_tf"]["plan"]["reason"] for d in read(rounds_dir / "decisions.jsonl"))
    print(f"rounds: {n_rounds}; decisions: " + ", ".join(f"{n} {r}" for r, n in sorted(decisions.items())))
    tf, tr = read(fixed_train), read(rounds_train)
    kinds = lambda t: dict(sorted(Counter(f"{s.get('kind')} k={s.get('k')}" for s in t).items()))  # noqa: E731
    print(f"training samples:  fixed {len(tf)} {kinds(tf)}")
    print(f"                   rounds {len(tr)} {kinds(tr)}")
    pf, pr = by_problem(tf), by_problem(tr)
    ids = set(pf) | set(pr)
    same = sum(pf.get(i) == pr.get(i) for i in ids)
    same_k = sum(sorted(k for k, _ in pf.get(i, [])) == sorted(k for k, _ in pr.get(i, [])) for i in ids)
    print(f"problems with training samples: fixed {len(pf)}, rounds {len(pr)}; identical samples "
          f"{same}/{len(ids)}, same k {same_k}/{len(ids)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
