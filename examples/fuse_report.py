"""Report on a tf-cluster | tf-fuse run: the paper's Figure 1 as text, and samples to read.

    python examples/fuse_report.py problems.jsonl train.jsonl [--tokenizer PATH]
                                   [--show 10] [--seed 0] [--max-chars 1200]

problems.jsonl is tf-cluster's output, train.jsonl tf-fuse's. Prints the distribution of
the error rate and of the error entropy over problems (histograms as text), how many
problems fuse / fall back to RFT / are dropped, the distribution of k, the token-cost
multiplier (fused tokens / the same samples' RFT tokens, prompt included; with
``--tokenizer`` the student's tokenizer, else tf-fuse's approximation), and ``--show N``
fused samples chosen at random, with their segments marked, to read.

``tf-stats problems.jsonl train.jsonl`` prints the same statistics (and ``--plot DIR`` draws
them); what this script adds is ``--show``: the fused text itself, cut at its segments.
"""

from __future__ import annotations

import argparse
import json
import math
import random
from collections import Counter

from tf_tools.models import load_counter


def histogram(values: list[float], edges: list[float]) -> list[str]:
    """Bars for: exactly 0, then (0, e1), [e1, e2), ..., and the last edge's own bucket
    (exactly it for the error rate's 1.0, at least it otherwise: ``top_closed``)."""
    buckets = [("0", lambda v: v == 0)]
    lo = 0.0
    for hi in edges[:-1]:
        buckets.append((f"{'(' if lo == 0 else '['}{lo:g}, {hi:g})", lambda v, lo=lo, hi=hi: lo < v < hi or (lo > 0 and v == lo)))
        lo = hi
    top = edges[-1]
    if top == 1.0:
        buckets.append((f"[{lo:g}, 1)", lambda v, lo=lo: lo <= v < 1))
        buckets.append(("1", lambda v: v == 1))
    else:
        buckets.append((f"[{lo:g}, {top:g})", lambda v, lo=lo, top=top: lo <= v < top))
        buckets.append((f">= {top:g}", lambda v, top=top: v >= top))
    counts = [sum(1 for v in values if test(v)) for _, test in buckets]
    width = max(counts + [1])
    return [f"  {label:<12} {c:>5}  {'#' * round(40 * c / width)}"
            for (label, _), c in zip(buckets, counts, strict=True)]


def read(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("problems")
    ap.add_argument("train")
    ap.add_argument("--tokenizer")
    ap.add_argument("--show", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-chars", type=int, default=1200, help="per segment when shown (0: all)")
    args = ap.parse_args()

    problems = read(args.problems)
    train = read(args.train)
    rates = [p["error_rate"] for p in problems if p.get("error_rate") is not None]
    entropies = [p["entropy"] for p in problems]
    print(f"{args.problems}: {len(problems)} problems, {sum(p['n'] for p in problems)} graded samples")
    print(f"error rate per problem (mean {sum(rates) / max(len(rates), 1):.3f}):")
    print("\n".join(histogram(rates, [0.25, 0.5, 0.75, 1.0])))
    print(f"error entropy per problem, nats (mean {sum(entropies) / max(len(entropies), 1):.3f}; "
          f"D = e^H mean {sum(math.exp(h) for h in entropies) / max(len(entropies), 1):.2f}):")
    print("\n".join(histogram(entropies, [0.5, 1.0, 1.5, 2.0, 2.5, 3.0])))
    modes = Counter(min(p["n_error_modes"], 10) for p in problems)
    print("wrong-answer clusters per problem: "
          + ", ".join(f"{k if k < 10 else '10+'}: {v}" for k, v in sorted(modes.items())))

    kinds: dict[object, set[str]] = {}
    for s in train:
        kinds.setdefault(s["id"], set()).add(s["kind"])
    fused = sum(1 for k in kinds.values() if "fused" in k)
    no_correct = sum(1 for p in problems if p["n_correct"] == 0)
    print(f"\n{args.train}: {len(train)} samples "
          f"({sum(s['kind'] == 'fused' for s in train)} fused, {sum(s['kind'] == 'rft' for s in train)} RFT)")
    print(f"problems: {fused} fuse, {len(kinds) - fused} RFT only, "
          f"{len(problems) - len(kinds)} dropped ({no_correct} with no correct trajectory)")
    ks = Counter(s["k"] for s in train)
    print("k per sample: " + ", ".join(f"{k}: {v}" for k, v in sorted(ks.items())))

    counter = load_counter(args.tokenizer)
    total = rft = 0
    for s in train:
        total += counter.count(s["messages"])
        last = s["segments"][-1]
        correct = s["messages"][-1]["content"][last["start"]:last["end"]]
        rft += counter.count([*s["messages"][:-1], {"role": "assistant", "content": correct}])
    print(f"token multiplier ({counter.name}): {total / max(rft, 1):.2f}x ({total} / {rft} tokens)")

    pool = [s for s in train if s["kind"] == "fused"]
    rng = random.Random(args.seed)
    for s in rng.sample(pool, min(args.show, len(pool))):
        text = s["messages"][-1]["content"]
        print(f"\n======== {s['id']} (k={s['k']}, sources {s['_tf']['fuse']['sources']})")
        print(f"[problem] {s['messages'][-2]['content'][:400]}")
        for seg in s["segments"]:
            piece = text[seg["start"]:seg["end"]]
            if args.max_chars and len(piece) > args.max_chars:
                half = args.max_chars // 2
                piece = f"{piece[:half]}\n  [... {len(piece) - 2 * half} chars ...]\n{piece[-half:]}"
            print(f"--- [{seg['kind']}]\n{piece}")


if __name__ == "__main__":
    main()
