#!/usr/bin/env python3
"""The table of an examples/fidelity run: every arm's training data, accuracy and proxy.

    report.py RUN EVAL_SET... > report.md

Reads what the Makefile wrote under RUN: stats/train.*.json (tf-stats), model.*.json
(tf-train's manifests), eval/SET.ARM.jsonl (graded greedy answers), compare/*.json
(tf-stats --compare, each arm vs rft) and proxy/ARM.json (preference.py). Prints Markdown.
The proxy's paired differences (arm - rft, per problem) get a percentile-bootstrap 95%
interval over problems (10000 resamples, seed 0), the same method as tf-stats --compare.
Stdlib only.
"""
from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

ARMS = ("base", "rft", "trajfusion", "masked")
DATA = {"rft": "rft", "trajfusion": "trajfusion", "masked": "trajfusion"}
LABEL = {"base": "base (no training)", "rft": "RFT", "trajfusion": "TrajFusion (adaptive)",
         "masked": "TrajFusion --mask-incorrect"}


def load(path: Path) -> Any:
    return json.loads(path.read_text()) if path.exists() else None


def pct(x: Any) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def points(x: float) -> str:
    return f"{100 * x:+.1f}"


def eval_file(path: Path) -> dict[str, Any] | None:
    """Accuracy and truncation rate of a graded greedy file (ungradable left out)."""
    if not path.exists():
        return None
    recs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    gradable = [r for r in recs if r.get("verdict") not in (None, "ungradable")]
    n = len(gradable)
    return {"n": n, "correct": sum(r["verdict"] == "correct" for r in gradable),
            "accuracy": sum(r["verdict"] == "correct" for r in gradable) / n if n else None,
            "truncated": sum(r["verdict"] == "truncated" for r in gradable) / n if n else None}


def bootstrap(diffs: list[float], resamples: int = 10000, seed: int = 0) -> tuple[float, float]:
    rng = random.Random(seed)
    n = len(diffs)
    means = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    return means[int(0.025 * resamples)], means[int(0.975 * resamples) - 1]


def training_rows(run: Path) -> list[str]:
    rows = ["| arm | training samples | fused / RFT | k = 0/1/2/3 | training tokens (tf-train) "
            "| skipped | final loss |", "|---|---|---|---|---|---|---|"]
    for arm in ARMS[1:]:
        st = (load(run / "stats" / f"train.{DATA[arm]}.json") or {}).get("samples", {}).get("all", {})
        man = load(run / f"model.{arm}.json")
        if man is None:
            continue  # an arm left out of this run
        kinds = st.get("kinds", {})
        k = st.get("k", {})
        skipped = man.get("skipped", {})
        n_skipped = sum(v for key, v in skipped.items() if key in ("too_long", "bad", "empty"))
        rows.append(f"| {LABEL[arm]} | {st.get('samples', '-')} | {kinds.get('fused', 0)} / "
                    f"{kinds.get('rft', 0)} | {'/'.join(str(k.get(str(i), 0)) for i in range(4))} "
                    f"| {man.get('tokens_seen', 0):,} | {n_skipped} | "
                    f"{man.get('final_loss', float('nan')):.3f} |")
    return rows


def accuracy_rows(run: Path, sets: list[str]) -> list[str]:
    rows = ["| eval set | arm | problems | accuracy (greedy pass@1) | truncated | vs RFT: "
            "difference [95% CI] | McNemar p | won / lost |", "|---|---|---|---|---|---|---|---|"]
    for s in sets:
        for arm in ARMS:
            e = eval_file(run / "eval" / f"{s}.{arm}.jsonl")
            if e is None:
                continue
            cmp = load(run / "compare" / f"{s}.rft-vs-{arm}.json") if arm != "rft" else None
            if cmp:
                lo, hi = cmp["ci95"]
                versus = (f"{points(cmp['difference'])} [{points(lo)}, {points(hi)}] points",
                          f"{cmp['mcnemar_p']:.3g}", f"{cmp['won']} / {cmp['lost']}")
            else:
                versus = ("-", "-", "-")
            rows.append(f"| {s} | {LABEL[arm]} | {e['n']} | {pct(e['accuracy'])} "
                        f"({e['correct']}) | {pct(e['truncated'])} | " + " | ".join(versus) + " |")
    return rows


def proxy_rows(run: Path) -> list[str]:
    proxies = {arm: load(run / "proxy" / f"{arm}.json") for arm in ARMS}
    rows = ["| arm | problems | log-lik. correct | log-lik. incorrect | margin (correct - "
            "incorrect) | prefers correct | margin vs RFT [95% CI] | margin vs base [95% CI] |",
            "|---|---|---|---|---|---|---|---|"]

    def versus(p: dict[str, Any], ref: dict[str, Any] | None) -> str:
        if ref is None or p is ref:
            return "-"
        theirs = {r["id"]: r["ll_correct"] - r["ll_incorrect"] for r in ref["per_problem"]}
        diffs = [r["ll_correct"] - r["ll_incorrect"] - theirs[r["id"]]
                 for r in p["per_problem"] if r["id"] in theirs]
        if not diffs:
            return "-"
        lo, hi = bootstrap(diffs)
        return f"{sum(diffs) / len(diffs):+.4f} [{lo:+.4f}, {hi:+.4f}]"

    for arm in ARMS:
        p = proxies[arm]
        if p is None:
            continue
        rows.append(f"| {LABEL[arm]} | {p['problems']} | {p['mean_ll_correct']:.4f} | "
                    f"{p['mean_ll_incorrect']:.4f} | {p['mean_margin']:+.4f} | "
                    f"{pct(p['prefer_correct'])} | {versus(p, proxies['rft'])} | "
                    f"{versus(p, proxies['base'])} |")
    return rows


def main(argv: list[str]) -> None:
    if not argv:
        sys.exit(__doc__)
    run, sets = Path(argv[0]), argv[1:]
    out = ["## Training data", "", *training_rows(run), "",
           "## Greedy pass@1 (tf-sample -n 1 --temperature 0 | tf-grade)", "",
           *accuracy_rows(run, sets), "",
           "## Proxy: mean per-token log-likelihood of the teachers' held-out solutions", "",
           *proxy_rows(run), ""]
    print("\n".join(out))


if __name__ == "__main__":
    main(sys.argv[1:])
