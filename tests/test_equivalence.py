"""Equivalence: the fast paths, and math-verify behind them, category by category."""

from __future__ import annotations

import pytest

from tf_tools.answers.equivalence import fast_equal, normalize, to_number
from tf_tools.answers.worker import verify_task


def equal(gold: str, pred: str) -> bool:
    """The full decision: a fast path, else math-verify (run in-process here)."""
    fast = fast_equal(gold, pred)
    if fast is not None:
        return fast.equal
    status, result, _ = verify_task((gold,), pred)
    assert status == "ok", status
    return bool(result)


FAST_CASES = [
    # (gold, pred, equal)
    ("42", "42", True),
    ("42", "42.0", True),
    ("42", "43", False),
    ("1000", "1,000", True),
    ("1000000", "1\\,000\\,000", True),
    ("0.5", "\\frac{1}{2}", True),
    ("0.5", "\\dfrac12", True),
    ("-\\frac{3}{4}", "-0.75", True),
    ("3/4", "\\tfrac{3}{4}", True),
    ("1/3", "0.333333", True),
    ("1/3", "0.33", False),
    ("1.5e3", "1500", True),
    ("2.5 \\times 10^{3}", "2500", True),
    ("28\\%", "28", True),
    ("28\\%", "0.28", True),
    ("45^\\circ", "45", True),
    ("45", "45^{\\circ}", True),
    ("\\$18.90", "18.9", True),
    ("18.90", "18.90 dollars", True),
    ("5", "5 \\text{ meters}", True),
    ("12", "12 apples", True),
    ("x = 3", "3", True),
    ("3", "x=3", True),
    ("1, 2, 3", "3, 2, 1", True),
    ("1, 2, 3", "1, 2", False),
    ("19, 46, and 82", "19, 46, \\text{ and } 82", True),
    ("\\text{Even}", "Even", True),
    ("\\text{even}", "odd", False),
    ("C", "(C)", True),
    ("C", "B", False),
]


@pytest.mark.parametrize(("gold", "pred", "expected"), FAST_CASES)
def test_fast_paths_decide_common_answers_without_sympy(gold, pred, expected):
    result = fast_equal(gold, pred)
    assert result is not None, "should not need SymPy"
    assert result.equal is expected


SYMPY_CASES = [
    ("\\frac{\\sqrt{3}}{2}", "\\frac{1}{2}\\sqrt{3}", True),
    ("2\\sqrt{2}", "\\sqrt{8}", True),
    ("2\\pi", "\\pi \\cdot 2", True),
    ("e^{2}", "e^2", True),
    ("x^2 + 2x + 1", "(x+1)^2", True),
    ("x^2 + 2x + 1", "(x+2)^2", False),
    ("(1, 2)", "(1,2)", True),
    ("(1, 2)", "(2, 1)", False),
    ("[0, 1)", "[0,1)", True),
    ("[0, 1)", "(0, 1]", False),
    ("x \\le 3", "(-\\infty, 3]", True),
    ("\\{1, 2\\}", "\\{2, 1\\}", True),
    ("x < 3", "x \\lt 3", True),
    ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix}1\\\\2\\end{pmatrix}", True),
    ("\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}", "\\begin{pmatrix} 1 & 2 \\\\ 3 & 5 \\end{pmatrix}", False),
    ("y = 2x + 1", "y=1+2x", True),
    ("\\sqrt{2}/2", "0.7071", False),
]


@pytest.mark.parametrize(("gold", "pred", "expected"), SYMPY_CASES)
def test_math_verify_behind_the_fast_paths(gold, pred, expected):
    assert equal(gold, pred) is expected


def test_unparseable_gold_is_reported_not_false():
    status, result, reason = verify_task(("\\frac{1}{2",), "5")
    assert status == "gold_unparseable" and result is None
    assert "cannot parse" in reason


def test_normalize_strips_annotations():
    assert normalize("\\$1{,}000 \\text{ dollars}").text in ("1,000", "1000")
    assert normalize("50\\%").percent
    assert to_number("1,234,567").value == 1234567  # type: ignore[union-attr]
    assert to_number("\\frac{-3}{6}").value == -0.5  # type: ignore[union-attr]
    assert to_number("x") is None


def test_a_text_label_on_the_left_of_an_answer_is_dropped():
    result = fast_equal("64800", "\\text{Difference in Revenue} = \\$64,800")
    assert result is not None and result.equal
    result = fast_equal("11232", "\\text{Total Cost} = \\$11,232")
    assert result is not None and result.equal


@pytest.mark.parametrize(
    ("gold", "pred", "expected", "path"),
    [
        ("5", "Cannot be determined with elementary techniques", False, "prose"),
        ("4", "4, 5", False, "numeric_list"),
        ("(5,-5)", "(9, 19)", False, "numeric_tuple"),
        ("(5,-5)", "(5, -5.0)", True, "numeric_tuple"),
        ("[0,1)", "[0, 1)", True, "normalized"),
    ],
)
def test_more_fast_paths(gold, pred, expected, path):
    result = fast_equal(gold, pred)
    assert result is not None and (result.equal, result.path) == (expected, path)


LONG_ONES = "1" * 200_000  # over LONG: no Fraction, no int(), decided by its digits


@pytest.mark.parametrize(
    ("gold", "pred", "expected"),
    [
        ("2 3/4", LONG_ONES + " 1/2", False),  # took math-verify 0.94 s of a 1 s limit
        (LONG_ONES + " 1/2", LONG_ONES + " 2/4", True),
        (LONG_ONES + " 1/2", "0" + LONG_ONES + " 1/2", True),
        (LONG_ONES + " 1/2", LONG_ONES + ".5", True),
        (LONG_ONES + " 1/2", LONG_ONES, False),  # a proper fraction is never 0
        (LONG_ONES + " 1/2", LONG_ONES[:-1] + "2 1/2", False),  # the last whole digit
        ("-" + LONG_ONES + " 1/2", "-" + LONG_ONES[:-1] + "2 1/2", False),
        ("-" + LONG_ONES + " 1/2", LONG_ONES + ".5", False),
        (LONG_ONES + " 1/3", LONG_ONES + ".3333333", True),  # a decimal: within the tolerance
    ],
)
def test_long_mixed_numbers_are_decided_by_their_parts(gold, pred, expected):
    result = fast_equal(gold, pred)
    assert result is not None and (result.equal, result.path) == (expected, "numeric")


def test_fast_tuples_agree_with_math_verify():
    for gold, pred in [("(1, 2)", "(2, 1)"), ("(1, 2)", "(1, 2, 3)"), ("[1, 2]", "[1, 2]"), ("(1,2)", "(1.0, 2)")]:
        fast = fast_equal(gold, pred)
        status, result, _ = verify_task((gold,), pred)
        assert fast is not None and fast.equal == result, (gold, pred)


def test_function_names_are_not_prose():
    assert fast_equal("5", "sqrt(25)") is None  # left to SymPy, not called prose


def test_plain_text_roots_are_not_dropped():
    assert equal("28", "28√2") is False
    assert equal("28\\sqrt{2}", "28√2") is True
