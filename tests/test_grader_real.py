"""tf-grade against reality: other graders' labelled cases and labelled real trajectories."""

from __future__ import annotations

import json
from pathlib import Path

from tf_tools.grading.grader import GradeConfig, grade_records

from .conftest import ROOT

NON_DEFAULT = ("precision", "strict", "allow_set_relation_comp", "language")


def test_agreement_with_other_graders_test_cases(shared_data):
    cases = []
    for path in sorted((shared_data / "grader_cases").glob("*.jsonl")):
        cases += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    cases = [c for c in cases if not any(k in c["config"] for k in NON_DEFAULT)]
    assert len(cases) > 400
    # run each case with the extraction its config names (as bench/grader_cases.py does)
    groups: dict[tuple, list[dict]] = {}
    for c in cases:
        types = c["config"].get("match_types") or c["config"].get("match_type") or ["latex", "expr"]
        groups.setdefault(("expr" in types, "latex" in types, "NativeLetters" in types), []).append(c)
    misses = []
    for (number, math, letters), group in groups.items():
        cfg = GradeConfig(workers=2, timeout=10, last_number=number, last_math=math,
                          choices="ABCD" if letters else None)
        recs = [{"answer": c["gold"], "completion": c["pred"]} for c in group]
        for case, graded in zip(group, grade_records(recs, cfg), strict=True):
            if graded["correct"] != case["equal"]:
                misses.append((case["gold"], case["pred"][-80:], case["equal"]))
    agreement = 1 - len(misses) / len(cases)
    assert agreement >= 0.97, misses


def test_agreement_with_labels_of_bundled_real_trajectories():
    """The bundled slices carry their sources' labels; tf-grade must agree with nearly all.

    The qwen25math disagreements are one problem whose source label was computed against a
    broken normalised gold ('4:30p..' for '\\text{4:30 p.m.}'), where tf-grade is right."""
    for name, minimum in (("qwen25math_math_25x8.jsonl", 0.95), ("gsm8k_gpt3_50x4.jsonl", 0.99)):
        path = Path(ROOT / "examples" / "data" / name)
        recs = [json.loads(line) for line in path.read_text().splitlines()]
        graded = list(grade_records(recs, GradeConfig(workers=2)))
        agree = sum(g["correct"] == g["label"] for g in graded)
        assert agree / len(graded) >= minimum, (name, agree, len(graded))


def test_constants_of_different_value_are_decided_without_sympy_and_mixed_numbers_are_not():
    """Two constants we evaluate without SymPy and whose values differ are "incorrect" on
    the value path; equal values, and mixed numbers (which math-verify reads as 1 + 1/10),
    still go to math-verify, which agrees with every verdict here."""
    cases = [("\\frac{3+2\\sqrt{3}}{3}", "2 + \\sqrt{3}", "incorrect", "value"),
             ("7", "15 - 42√2", "incorrect", "value"),
             ("\\frac{3+2\\sqrt{3}}{3}", "1 + \\frac{2\\sqrt{3}}{3}", "correct", "math-verify"),
             ("1\\frac{1}{10}", "1.1", "correct", "math-verify"),
             ("2\\frac{1}{2}", "2 \\frac{1}{3}", "incorrect", "math-verify")]
    recs = [{"id": str(i), "answer": g, "completion": f"so \\boxed{{{p}}}"} for i, (g, p, _, _) in enumerate(cases)]
    graded = list(grade_records(recs, GradeConfig(workers=1)))
    assert [(r["verdict"], r["_tf"]["grade"]["path"]) for r in graded] == [(v, p) for _, _, v, p in cases]
