#!/usr/bin/env python3
"""A proxy that is sensitive where pass@1 is at the floor: does the student prefer what is right?

    preference.py -m MODEL graded_heldout.jsonl [--problems N] > proxy.json

For every problem of a graded file (tf-grade's output, several teacher trajectories per
problem) that has both a correct and an incorrect finished trajectory, it takes the first of
each (by sample_idx) and measures the student's mean per-token log-likelihood of each as the
assistant answer to the problem, under the prompt tf-fuse writes into training samples
(system = tf-sample's default, user = the problem). The tokens and the scored positions are
exactly tf-train's (``tokenize_record``: the assistant text and its end-of-turn token).

Prints one JSON object: mean log-likelihood of the correct and of the incorrect solutions,
their mean difference (the margin: higher = the student prefers the correct solution more),
the share of problems with a positive margin, and the per-problem values (so that two models
can be compared problem by problem). A proxy: it says what the student's distribution
favours, not whether its own greedy answers are right.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from typing import Any


def pairs(path: str, limit: int, seed: int) -> list[dict[str, Any]]:
    """(id, problem, correct text, incorrect text) for each problem that has both."""
    by_id: dict[Any, dict[str, Any]] = {}
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            rec = json.loads(line)
            if rec.get("finish_reason") == "length" or not isinstance(rec.get("completion"), str):
                continue
            kind = {"correct": "correct", "incorrect": "incorrect"}.get(rec.get("verdict"))
            if kind is None:
                continue
            entry = by_id.setdefault(rec["id"], {"id": rec["id"], "problem": rec["problem"]})
            best = entry.get(kind)
            if best is None or rec.get("sample_idx", 0) < best[0]:
                entry[kind] = (rec.get("sample_idx", 0), rec["completion"])
    found = [e for e in by_id.values() if "correct" in e and "incorrect" in e]
    if limit:
        def key(e: dict[str, Any]) -> bytes:
            return hashlib.blake2b(f"{seed}:{e['id']}".encode(), digest_size=8).digest()
        order = {pid: i for i, pid in enumerate(by_id)}
        found = sorted(sorted(found, key=key)[:limit], key=lambda e: order[e["id"]])
    return found


def mean_loglik(model: Any, tokenizer: Any, system: str | None, problem: str, answer: str) -> float:
    import torch

    from tf_tools.training.data import DataConfig, tokenize_record

    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": problem}, {"role": "assistant", "content": answer}]
    sample = tokenize_record({"messages": messages}, tokenizer, DataConfig(max_length=1 << 30))
    ids = torch.as_tensor(sample.input_ids, dtype=torch.long)[None]
    with torch.no_grad():
        logits = model(ids).logits[0, :-1].float()
    logp = torch.log_softmax(logits, dim=-1).gather(1, ids[0, 1:, None])[:, 0]
    scored = torch.as_tensor(sample.trained[1:])
    return float(logp[scored].mean())


def main(argv: list[str] | None = None) -> None:
    from tf_tools.schema import DEFAULT_SYSTEM

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("graded", help="graded trajectories of the held-out problems")
    ap.add_argument("-m", "--model", required=True, help="the student (a local folder)")
    ap.add_argument("--problems", type=int, default=0, help="at most N problems (0: all), chosen by a hash of the id")
    ap.add_argument("--seed", type=int, default=0, help="salt of that hash")
    ap.add_argument("--system", default=DEFAULT_SYSTEM, help="system prompt ('' for none)")
    args = ap.parse_args(argv)

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval()
    rows = []
    for e in pairs(args.graded, args.problems, args.seed):
        good = mean_loglik(model, tokenizer, args.system or None, e["problem"], e["correct"][1])
        bad = mean_loglik(model, tokenizer, args.system or None, e["problem"], e["incorrect"][1])
        rows.append({"id": e["id"], "ll_correct": good, "ll_incorrect": bad})
        print(f"preference: {len(rows)} problems", file=sys.stderr, end="\r")
    print(file=sys.stderr)
    n = len(rows)
    mean = (lambda xs: sum(xs) / len(xs) if xs else math.nan)  # noqa: E731
    out = {
        "model": args.model, "graded": args.graded, "problems": n, "system": args.system,
        "mean_ll_correct": mean([r["ll_correct"] for r in rows]),
        "mean_ll_incorrect": mean([r["ll_incorrect"] for r in rows]),
        "mean_margin": mean([r["ll_correct"] - r["ll_incorrect"] for r in rows]),
        "prefer_correct": mean([float(r["ll_correct"] > r["ll_incorrect"]) for r in rows]),
        "per_problem": rows,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
