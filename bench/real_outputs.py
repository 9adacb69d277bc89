"""How tf-grade's verdicts compare with published figures and labels on real model outputs.

A report, not a timing. Everything is converted from ``../shared/data/trajectories`` with
``examples/convert_trajectories.py`` and graded with tf-grade's core (``grade_records``,
2 workers), in one process:

(a) ZeroEval MATH level 5, 40 models x 721 problems (answers in a JSON object in
    ``output``): each model's accuracy next to the published one in
    ``zeroeval/math-l5.summary.json``, sorted by the absolute difference, with the mean
    absolute difference. Models are matched by name, then by a normalised name
    ("Meta-Llama-3.1-405B-Instruct@hyperbolic" ~ "Llama-3.1-405B-Inst@hyperbolic");
    what still does not match is listed. Our accuracy is over the records the model's file
    has (two files have fewer than 721; the summary's ``Total`` says the same). The
    published figures come from ZeroEval's own rule (src/evaluation/math_eval.py): the
    first number of the parsed ``answer`` field equals the first number of the gold, so
    "6\\sqrt{2}" passes for 6; an empty answer (" ") counts as an answer there and as
    ``no_answer`` here.
(b) The labelled sets (GSM8K-OpenAI, MathCoder, Qwen2.5-Math, NeMo-Skills): agreement of
    ``correct`` with the source's own label, with and without ``--last-number``, the
    confusion counts, and a few disagreements (gold, our prediction, the source's own
    extracted answer, the tail of the completion) so a person can judge who is right. The
    examples come from the setting the source's convention calls for: ``--last-number`` for
    GSM8K-OpenAI ("A: 18" lines) and MathCoder, none for the two boxed MATH sets.
(c) ZeroEval GSM8K, 16 models x 1,319 problems, as in (a) against ``gsm.summary.json``.

It does not judge who is right: read the examples.

    python bench/real_outputs.py [--examples N] [--json] [--data DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from tf_tools.grading.grader import GradeConfig, GradeStats, grade_records  # noqa: E402

CONVERT = os.path.join(ROOT, "examples", "convert_trajectories.py")
# (name, format, inputs, --last-number by the source's convention)
LABELLED = [
    ("gsm8k-openai", "gsm8k-openai", ["gsm8k_openai_example_model_solutions.jsonl"], True),
    ("mathcoder", "mathcoder", ["mathcoder_gsm8k"], True),
    ("qwen25math", "qwen25math", ["qwen25math_math_cot_100_x8.jsonl"], False),
    ("nemo", "nemo", ["nemo_skills_math_train_50x3"], False),
]


def convert(data: str, fmt: str, inputs: list[str]) -> list[dict]:
    paths = [os.path.join(data, p) for p in inputs]
    out = subprocess.run([sys.executable, CONVERT, fmt, *paths],
                         check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def grade(records: list[dict], last_number: bool) -> list[dict]:
    cfg = GradeConfig(workers=2, last_number=last_number)
    return list(grade_records(({**r} for r in records), cfg, GradeStats()))


# ----------------------------------------------------------------------------- (a), (c)


def _norm_model(name: str) -> str:
    name = name.lower().removeprefix("meta-")
    return re.sub(r"-instruct\b", "-inst", name)


def match_models(ours: list[str], published: list[str]) -> tuple[dict[str, str], list[str], list[str]]:
    """ours name -> published name; then the unmatched of each side."""
    match = {m: m for m in ours if m in published}
    left = [m for m in published if m not in match.values()]
    for m in ours:
        if m in match:
            continue
        hits = [p for p in left if _norm_model(p) == _norm_model(m)]
        if len(hits) == 1:
            match[m] = hits[0]
            left.remove(hits[0])
    return match, [m for m in ours if m not in match], left


def zeroeval_report(data: str, task: str) -> dict:
    records = convert(data, "zeroeval", [f"zeroeval/{task}"])
    with open(os.path.join(data, "zeroeval", f"{task}.summary.json"), encoding="utf-8") as f:
        summary = {row["Model"]: row for row in json.load(f)}
    per_model: dict[str, list[int]] = {}  # model -> [n, correct, no_answer]
    no_sympy = 0
    for g in grade(records, last_number=False):
        no_sympy += g["_tf"]["grade"]["path"] not in ("math-verify", "timeout")
        c = per_model.setdefault(g["source"]["model"], [0, 0, 0])
        c[0] += 1
        c[1] += g["correct"]
        c[2] += g["verdict"] == "no_answer"
    match, ours_only, published_only = match_models(list(per_model), list(summary))
    rows: list[dict[str, Any]] = []
    for model, (n, correct, no_answer) in per_model.items():
        pub = summary.get(match.get(model, ""))
        acc = 100 * correct / n
        rows.append({
            "model": model, "published_name": match.get(model), "n": n, "ours": acc,
            "published": float(pub["Acc"]) if pub else None,
            "diff": acc - float(pub["Acc"]) if pub else None,
            "no_answer_ours": 100 * no_answer / n,
            "no_answer_published": float(pub["No answer"]) if pub else None,
            "published_total": pub["Total"] if pub else None,
        })
    diffs = [abs(r["diff"]) for r in rows if r["diff"] is not None]
    rows.sort(key=lambda r: -abs(r["diff"]) if r["diff"] is not None else 1)
    return {"task": task, "records": len(records), "models": rows, "no_sympy": no_sympy / len(records),
            "mean_abs_diff": sum(diffs) / len(diffs) if diffs else None,
            "mean_diff": sum(r["diff"] for r in rows if r["diff"] is not None) / len(diffs) if diffs else None,
            "unmatched_ours": ours_only, "unmatched_published": published_only}


def print_zeroeval(rep: dict) -> None:
    print(f"\n== ZeroEval {rep['task']}: {rep['records']} records, {len(rep['models'])} models "
          f"(tf-grade, no --last-number) vs {rep['task']}.summary.json")
    print(f"{'model':40} {'n':>4} {'ours':>6} {'publ.':>6} {'diff':>6}   {'no-ans ours':>11} {'publ.':>6}")
    for r in rep["models"]:
        pub = lambda v: f"{v:6.2f}" if v is not None else "     -"  # noqa: E731
        diff = f"{r['diff']:+6.2f}" if r["diff"] is not None else "     -"
        print(f"{r['model']:40} {r['n']:4} {r['ours']:6.2f} {pub(r['published'])} {diff}   "
              f"{r['no_answer_ours']:11.2f} {pub(r['no_answer_published'])}")
    if rep["mean_abs_diff"] is not None:
        print(f"mean absolute difference: {rep['mean_abs_diff']:.2f} points "
              f"(mean signed difference {rep['mean_diff']:+.2f})")
    fuzzy = [f"{r['model']} ~ {r['published_name']}" for r in rep["models"]
             if r["published_name"] not in (None, r["model"])]
    print(f"matched by normalised name: {', '.join(fuzzy) or 'none'}")
    print(f"decided without SymPy: {rep['no_sympy']:.1%} of the records")
    print(f"unmatched, ours: {', '.join(rep['unmatched_ours']) or 'none'}")
    print(f"unmatched, published ({len(rep['unmatched_published'])}): "
          f"{', '.join(rep['unmatched_published']) or 'none'}")


# ----------------------------------------------------------------------------- (b)


def labelled_report(data: str, name: str, fmt: str, inputs: list[str], used: bool,
                    n_examples: int) -> dict:
    records = convert(data, fmt, inputs)
    settings = {}
    examples: list[dict] = []
    for last_number in (False, True):
        graded = [g for g in grade(records, last_number) if g.get("label") is not None]
        conf = {"TT": 0, "TF": 0, "FT": 0, "FF": 0}  # label, ours
        for g in graded:
            conf[("T" if g["label"] else "F") + ("T" if g["correct"] else "F")] += 1
        agree = conf["TT"] + conf["FF"]
        settings["last_number" if last_number else "default"] = {
            "n": len(graded), "agree": agree, "agreement": agree / len(graded) if graded else None,
            "label_T_ours_F": conf["TF"], "label_F_ours_T": conf["FT"],
            "ungradable": sum(g["verdict"] == "ungradable" for g in graded),
            "no_answer": sum(g["verdict"] == "no_answer" for g in graded),
            "no_sympy": sum(g["_tf"]["grade"]["path"] not in ("math-verify", "timeout")
                            for g in graded) / len(graded) if graded else None,
        }
        if last_number == used:
            examples = pick_examples([g for g in graded if g["correct"] != g["label"]], n_examples)
    return {"name": name, "records": len(records), "settings": settings,
            "examples_from": "last_number" if used else "default", "examples": examples}


def pick_examples(wrong: list[dict], k: int) -> list[dict]:
    """Up to k disagreements, alternating the two kinds, spread over the file."""
    kinds = [[g for g in wrong if g["label"]], [g for g in wrong if not g["label"]]]
    picked: list[dict] = []
    taken = [0, 0]
    while len(picked) < k and any(taken[i] < len(kinds[i]) for i in (0, 1)):
        for i in (0, 1):
            if len(picked) < k and taken[i] < len(kinds[i]):
                group = kinds[i]
                step = max(1, len(group) // max(1, k))
                j = min(taken[i] * step, len(group) - 1)
                while group[j] in picked:
                    j = (j + 1) % len(group)
                picked.append(group[j])
                taken[i] += 1
    return [{
        "id": g["id"], "sample_idx": g["sample_idx"], "label": g["label"], "ours": g["correct"],
        "verdict": g["verdict"], "path": g["_tf"]["grade"]["path"],
        "gold": g["answer"] if isinstance(g["answer"], str) else json.dumps(g["answer"]),
        "pred": g["pred"], "source_pred": g.get("source_pred"),
        "tail": g["completion"][-300:] if isinstance(g["completion"], str) else g["completion"],
    } for g in picked]


def print_labelled(rep: dict) -> None:
    print(f"\n== {rep['name']}: {rep['records']} records")
    print(f"  {'setting':14} {'n':>5} {'agreement':>18} {'label T/ours F':>15} {'false positive':>15} "
          f"{'no_answer':>9} {'ungradable':>10} {'no SymPy':>8}")
    for setting, s in rep["settings"].items():
        mark = " *" if setting == rep["examples_from"] else ""
        flag = "--last-number" if setting == "last_number" else "(default)"
        print(f"  {flag:14} {s['n']:5} {s['agree']:>6}/{s['n']} = {s['agreement']:6.2%} "
              f"{s['label_T_ours_F']:15} {s['label_F_ours_T']:15} {s['no_answer']:9} {s['ungradable']:10} {s['no_sympy']:8.1%}{mark}")
    print("  (false positive: the source labels the answer wrong, tf-grade grades it correct)")
    print("  disagreements (setting marked *; label = the source's verdict, ours = tf-grade's):")
    for e in rep["examples"]:
        gold = e["gold"].strip().replace("\n", " | ")
        print(f"  - {e['id']} #{e['sample_idx']}: label {e['label']}, ours {e['ours']} "
              f"({e['verdict']}, {e['path']})")
        print(f"      gold: {gold[-100:]!r}")
        print(f"      our pred: {e['pred']!r}   source's pred: {e['source_pred']!r}")
        print(f"      tail: {e['tail'][-300:]!r}")


# ----------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "trajectories"))
    ap.add_argument("--examples", type=int, default=3, help="disagreements shown per labelled set")
    ap.add_argument("--json", action="store_true", help="print the numbers as one JSON object instead")
    args = ap.parse_args()
    t0 = time.perf_counter()
    out: dict = {"zeroeval": [], "labelled": []}

    def show(kind: str, rep: dict) -> None:
        out[kind].append(rep)
        if not args.json:
            (print_zeroeval if kind == "zeroeval" else print_labelled)(rep)
            sys.stdout.flush()

    show("zeroeval", zeroeval_report(args.data, "math-l5"))
    for name, fmt, inputs, used in LABELLED:
        show("labelled", labelled_report(args.data, name, fmt, inputs, used, args.examples))
    show("zeroeval", zeroeval_report(args.data, "gsm"))
    out["seconds"] = round(time.perf_counter() - t0, 1)
    if args.json:
        print(json.dumps(out, indent=1, ensure_ascii=False))
    else:
        print(f"\ndone in {out['seconds']} s")


if __name__ == "__main__":
    main()
