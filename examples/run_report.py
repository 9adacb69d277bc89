"""The closing table of an examples/Makefile run: what each stage did, from tf-stats' JSON.

    python examples/run_report.py RUN_FOLDER [POLICY ...]     # POLICY: rft, trajfusion

Reads RUN/stats/*.json (written by the Makefile's tf-stats targets) and prints where
everything is and one table: the teacher's samples, the error clusters, each policy's
training set and student, and the students' greedy pass@1 before and after training.
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


def _eval_row(stats: dict[str, Any]) -> str:
    g = _get(stats, "graded", "all") or {}
    if not g:
        return "-"
    correct = _get(g, "verdicts", "correct", default=0)
    return f"{_pct(g.get('accuracy'))} ({correct}/{g.get('samples', 0)})"


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
    base = _load(st / "eval.base.json")
    rows.append(("student before training: pass@1 (greedy)", _eval_row(base)))
    for p in policies:
        s = _get(_load(st / f"train.{p}.json"), "samples", "all") or {}
        kinds = s.get("kinds") or {}
        rows += [
            (f"{p}: training samples", f"{s.get('samples', 0)} ({kinds.get('fused', 0)} fused, {kinds.get('rft', 0)} RFT)"),
            (f"{p}: k (wrong attempts per sample)", _dist(s.get("k"))),
            (f"{p}: token multiplier (vs RFT)", f"{_get(s, 'tokens', 'multiplier', default=0):.2f}x"),
        ]
        loss = next((v for k, v in losses.items() if Path(k).name == f"model.{p}"), None)
        if loss:
            rows.append((f"{p}: training loss", f"{loss['first_loss']:.3f} -> {loss['final_loss']:.3f} over "
                                                f"{loss['steps']} steps ({loss.get('tokens_per_s', 0):.0f} tok/s)"))
        rows.append((f"{p}: student after training: pass@1", _eval_row(_load(st / f"eval.{p}.json"))))

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


if __name__ == "__main__":
    main()
