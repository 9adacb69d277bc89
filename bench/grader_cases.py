"""Agreement of tf-grade and of math-verify with other graders' labelled test cases.

Reads ``grader_cases/*.jsonl`` (508 cases from math-verify's, lighteval's, verl's and
open-r1's test suites; see ../shared/data/README.md) and grades every case both ways:

- tf-grade: the case becomes a record ``{"answer": gold, "completion": pred}`` and goes
  through ``grade_records`` exactly as ``tf-grade`` runs it;
- math-verify: ``verify(parse(gold), parse(pred))`` with the extraction the case's
  ``config`` names (its default, latex + expr, otherwise).

"Run the same way": a case whose config asks for expression (plain number) extraction is
graded by tf-grade with its ``--last-number`` fallback, one that asks for LaTeX extraction
with ``--last-math``. Cases whose config asks for a non-default setting (a precision, strict
mode, set-relation comparison, or a language other than English) are excluded from the
headline figure and reported apart.

    python bench/grader_cases.py [--data ../shared/data/grader_cases] [--misses]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
from collections import Counter

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from tf_tools.grading.grader import GradeConfig, grade_records  # noqa: E402

NON_DEFAULT = ("precision", "strict", "allow_set_relation_comp", "language")


def is_default(config: dict) -> bool:
    return not any(k in config for k in NON_DEFAULT)


def match_types(config: dict) -> list[str]:
    return config.get("match_types") or config.get("match_type") or ["latex", "expr"]


def ours(cases: list[dict]) -> list[bool | None]:
    """Grade the cases in one tf-grade run per extraction setting (one worker pool each)."""
    settings: dict[tuple, list[int]] = {}
    for i, case in enumerate(cases):
        types = match_types(case["config"])
        key = ("expr" in types, "latex" in types, "NativeLetters" in types)
        settings.setdefault(key, []).append(i)
    results: list[bool | None] = [None] * len(cases)
    for (number, math, letters), idx in settings.items():
        cfg = GradeConfig(workers=2, timeout=10, last_number=number, last_math=math,
                          choices="ABCD" if letters else None)
        recs = [{"answer": cases[i]["gold"], "completion": cases[i]["pred"]} for i in idx]
        for i, graded in zip(idx, grade_records(recs, cfg), strict=True):
            results[i] = None if graded["verdict"] == "ungradable" else graded["correct"]
            cases[i]["_ours"] = graded
    return results


def math_verify(cases: list[dict]) -> list[bool]:
    from math_verify import (
        ExprExtractionConfig,
        LatexExtractionConfig,
        StringExtractionConfig,
        parse,
        verify,
    )

    out = []
    for case in cases:
        types = match_types(case["config"])
        extraction = []
        if "latex" in types:
            extraction.append(LatexExtractionConfig())
        if "expr" in types:
            extraction.append(ExprExtractionConfig())
        if "NativeLetters" in types:
            extraction.append(StringExtractionConfig())
        if not extraction:
            extraction = [LatexExtractionConfig(), ExprExtractionConfig()]
        try:
            out.append(bool(verify(parse(case["gold"], extraction), parse(case["pred"], extraction))))
        except Exception:
            out.append(False)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--data", default=os.path.join(here, "..", "..", "shared", "data", "grader_cases"))
    ap.add_argument("--misses", action="store_true", help="list every miss of tf-grade")
    args = ap.parse_args()
    cases = []
    for path in sorted(glob.glob(os.path.join(args.data, "*.jsonl"))):
        with open(path) as f:
            cases.extend(json.loads(line) for line in f if line.strip())
    mv = math_verify(cases)
    tf = ours(cases)
    groups = {"default settings": [i for i, c in enumerate(cases) if is_default(c["config"])],
              "non-default settings": [i for i, c in enumerate(cases) if not is_default(c["config"])]}
    for name, idx in groups.items():
        agree_tf = sum(tf[i] == cases[i]["equal"] for i in idx)
        agree_mv = sum(mv[i] == cases[i]["equal"] for i in idx)
        print(f"{name}: {len(idx)} cases  tf-grade {agree_tf}/{len(idx)} = {agree_tf / len(idx):.1%}"
              f"  math-verify {agree_mv}/{len(idx)} = {agree_mv / len(idx):.1%}")
        # the worst error: a "not equal" case graded equal (a wrong answer trained on as right)
        unequal = [i for i in idx if not cases[i]["equal"]]
        fp_tf = sum(tf[i] is True for i in unequal)
        fp_mv = sum(mv[i] is True for i in unequal)
        print(f"  false positives (not-equal cases graded equal): tf-grade {fp_tf}/{len(unequal)}"
              f"  math-verify {fp_mv}/{len(unequal)}")
    by_source: Counter = Counter()
    for i in groups["default settings"]:
        by_source[(cases[i]["source"], tf[i] == cases[i]["equal"], mv[i] == cases[i]["equal"])] += 1
    print("by source (source, tf ok, mv ok): count")
    for key, n in sorted(by_source.items()):
        print(f"  {key}: {n}")
    if args.misses:
        for i in groups["default settings"]:
            if tf[i] != cases[i]["equal"]:
                c = cases[i]
                g = c["_ours"]
                print(f"MISS expected={c['equal']} ours={tf[i]} mv={mv[i]} "
                      f"gold={c['gold'][:80]!r} pred={c['pred'][-120:]!r} -> pred={g['pred']!r} "
                      f"reason={g['_tf']['grade']['reason']!r} config={c['config']}")


if __name__ == "__main__":
    main()
