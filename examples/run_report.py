"""The closing table of an examples/Makefile run: what each stage did, from tf-stats' JSON.

    python examples/run_report.py RUN_FOLDER [POLICY ...]     # POLICY: rft, trajfusion

Reads RUN/stats/*.json (written by the Makefile's tf-stats targets) and the manifests, and
prints where everything is, the teacher's samples and error clusters, then the students side
by side (base = before training, then one column per policy: training set, loss, greedy
pass@1 and truncation rate) and tf-stats --compare's line for RFT vs TrajFusion.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def _get(d: dict[str, Any], *keys: str, default: Any = None) -> Any:
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return default
        d = d[k]
    return d


def _pct(x: Any) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _dist(d: dict[str, Any] | None) -> str:
    if not d:
        return "-"
    return ", ".join(f"{k}: {v}" for k, v in sorted(d.items(), key=lambda kv: int(kv[0])))


def _summary(d: dict[str, Any] | None) -> str:
    if not d:
        return "-"
    return f"mean {d.get('mean', 0):.2f}, median {d.get('median', 0):.2f}"


def _eval_cell(stats: dict[str, Any]) -> tuple[str, str]:
    """(pass@1 with counts, truncation rate) of a graded greedy evaluation."""
    g = _get(stats, "graded", "all") or {}
    if not g:
        return "-", "-"
    correct = _get(g, "verdicts", "correct", default=0)
    return f"{_pct(g.get('accuracy'))} ({correct}/{g.get('samples', 0)})", _pct(g.get("truncation_rate"))


def _compare_line(cmp: dict[str, Any]) -> str:
    """tf-stats --compare's result in one line (its JSON: difference = b - a, fractions)."""
    lo, hi = cmp["ci95"]
    a, b = cmp["a"], cmp["b"]
    return (f"{b['name']} - {a['name']}: {100 * cmp['difference']:+.1f} points "
            f"({_pct(b['accuracy'])} vs {_pct(a['accuracy'])}, {cmp['problems']} problems), "
            f"95% CI [{100 * lo:+.1f}, {100 * hi:+.1f}], McNemar p = {cmp['mcnemar_p']:.3g} "
            f"({cmp['won']} won, {cmp['lost']} lost)")


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    run = Path(sys.argv[1])
    policies = sys.argv[2:] or ["rft", "trajfusion"]
    st = run / "stats"
    graded = _get(_load(st / "graded.json"), "graded", "all") or {}
    problems = _get(_load(st / "clusters.json"), "problems", "all") or {}
    losses = _get(_load(st / "models.json"), "loss", "runs") or {}

    rows: list[tuple[str, str]] = []
    n = max((int(k) for k in (graded.get("pass_at_k") or {"1": 0})), default=1)
    rows += [
        ("teacher: problems x samples", f"{graded.get('problems', 0)} x {n} = {graded.get('samples', 0)}"),
        ("teacher: accuracy (pass@1)", _pct(graded.get("accuracy"))),
        (f"teacher: pass@{n}", _pct(_get(graded, "pass_at_k", str(n)))),
        ("teacher: verdicts", ", ".join(f"{k} {v}" for k, v in (graded.get("verdicts") or {}).items() if v)),
        ("problems with a correct trajectory", f"{problems.get('problems', 0) - problems.get('problems_no_correct', 0)}"
                                               f" of {problems.get('problems', 0)}"),
        ("problems with correct and fusable wrong answers", str(problems.get("problems_fusable", "-"))),
        ("error rate per problem", _summary(problems.get("error_rate"))),
        ("answer entropy per problem (nats)", _summary(problems.get("entropy"))),
    ]

    # the students side by side: base (before training), then one column per policy
    columns = ["base", *policies]
    table: dict[str, dict[str, str]] = {c: {} for c in columns}
    table["base"]["pass@1 (greedy)"], table["base"]["truncated"] = _eval_cell(_load(st / "eval.base.json"))
    for p in policies:
        s = _get(_load(st / f"train.{p}.json"), "samples", "all") or {}
        kinds = s.get("kinds") or {}
        manifest = _load(run / f"model.{p}.json")
        cell = table[p]
        cell["training samples"] = f"{s.get('samples', 0)} ({kinds.get('fused', 0)} fused)"
        cell["k (wrong attempts)"] = _dist(s.get("k"))
        cell["token multiplier"] = f"{_get(s, 'tokens', 'multiplier', default=0):.2f}x"
        skipped = manifest.get("skipped") or {}
        cell["skipped by tf-train"] = str(sum(v for k, v in skipped.items()
                                              if k in ("too_long", "bad", "empty")))
        loss = next((v for k, v in losses.items() if Path(k).name == f"model.{p}"), None)
        if loss:
            cell["training loss"] = (f"{loss['first_loss']:.3f} -> {loss['final_loss']:.3f} "
                                     f"({loss['steps']} steps)")
        cell["pass@1 (greedy)"], cell["truncated"] = _eval_cell(_load(st / f"eval.{p}.json"))
    names = ["training samples", "k (wrong attempts)", "token multiplier", "skipped by tf-train",
             "training loss", "pass@1 (greedy)", "truncated"]
    grid = [["student", *columns]] + [[name, *(table[c].get(name, "-") for c in columns)]
                                      for name in names]
    widths = [max(len(r[i]) for r in grid) for i in range(len(columns) + 1)]
    compares = [_load(st / f"compare.rft-vs-{p}.json") for p in policies if p != "rft"]

    width = max(len(k) for k, _ in rows)
    print()
    print(f"run folder: {run}")
    for name in ("samples.jsonl", "graded.jsonl", "clusters.jsonl"):
        print(f"  {name:<22} {sum(1 for _ in open(run / name)) if (run / name).exists() else 0:>5} records")
    for p in policies:
        print(f"  train.{p}.jsonl, model.{p}/final, eval.{p}.jsonl")
    print(f"  eval.base.jsonl; tf-stats JSON in stats/, charts in plots/ "
          f"({len(list((run / 'plots').rglob('*.png')))} PNG)")
    print()
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    print()
    for r in grid:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
    for cmp in compares:
        if cmp:
            print()
            print("paired (tf-stats --compare): " + _compare_line(cmp))


if __name__ == "__main__":
    main()
