"""Decide whether a predicted answer equals a gold answer.

Fast paths first, so most answers never reach SymPy (DESIGN §4 step 2):

1. exact string match;
2. the normalised strings match (``\\dfrac``/``\\tfrac``, ``\\text{}``, units, currency,
   degrees, ``\\left``/``\\right``, spacing, thousands separators, ``x = 3`` -> ``3``);
3. both sides are numbers (integers, decimals, thousands separators, fractions, ``\\frac``,
   scientific notation, percentages): compared exactly, or within ``tolerance`` when one
   side is written as a decimal; the same for comma-separated lists of numbers (unordered);
   numbers longer than ``LONG`` characters (a 200,000-digit integer) by their digits;
4. multiple-choice letters and plain-text words are compared as such.

Whatever is left (expressions, ``\\sqrt``, ``\\pi``, intervals, sets, tuples, matrices,
equations, inequalities) goes to math-verify, in a worker process the caller can kill
(``worker.py``, ``pool.py``).
"""

from __future__ import annotations

import decimal
import re
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache

from tf_tools.answers.notation import (
    choice_letter,
    decorations,
    grouped_integer,
    list_entries,
    squeeze,
    time_of_day,
    vector_entries,
)
from tf_tools.answers.values import latexify, varies

# ----------------------------------------------------------------------------- normalising

# text and font commands: \mathcal{C} is the letter C, \mathbf{v} the name v
_TEXT_MACRO_RE = re.compile(
    r"\\(?:text|textbf|textit|textnormal|mathrm|mathbf|mbox|operatorname|mathcal|mathit|mathsf|"
    r"mathtt|mathscr|mathfrak|mathbb|boldsymbol|bm)\s*\{([^{}]*)\}"
)
_SPACING_RE = re.compile(r"\\[,;:! ]|\\quad|\\qquad|~|\\displaystyle|\\left|\\right|\\bigl|\\bigr|\\Bigl|\\Bigr")
_DEGREE_RE = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|°|\\degree|\\circ(?![a-zA-Z])")
_CURRENCY_RE = re.compile(r"\\\$|\$|€|£|¥|\bUSD\b|\bdollars?\b|\bcents?\b|\bRs\.?\s|\\euro")
_PERCENT_RE = re.compile(r"\\%|%|\s*\bpercent(?:age)?\b|\s*\bpct\b")
_FRAC_SHORT_RE = re.compile(r"\\frac\s*(\d)\s*(\d)")
_ASSIGN_RE = re.compile(r"^[A-Za-z](?:_\{?[A-Za-z0-9]+\}?)?(?:\([a-z]\))?\s*(?:=|\\in|:=)\s*(?=\S)")
_UNIT_TAIL_RE = re.compile(
    r"^(?P<num>[-+]?(?:[\d.,/]+|\\frac\{[-\d.]+\}\{[-\d.]+\}))\s*(?:[A-Za-z]{2,}\.?)(?:\s+[A-Za-z]+\.?)*(?:\^?\{?[23]\}?)?$"
)
# "11,\!111,\!100", "1,\!23,\!45,\!678": a digit grouping, never a list
# "2600 \\text{g}", "5\\,\\mathrm{m}^2": a number, then a unit in a text command (a unit of one
# letter counts here, where plain "3 x" would be a product)
_TEXT_UNIT_RE = re.compile(
    r"^(?P<num>[-+]?[\d.,]+)\s*\\(?:text|mathrm|mbox)\s*\{\s*(?P<unit>[A-Za-z]+)\.?\s*\}(?:\^\{?[23]\}?)?$"
)
_THIN_THOUSANDS_RE = re.compile(r"(?<=\d),\s*\\!\s*(?=\d)")
_LABEL_RE = re.compile(r"^[A-Za-z][A-Za-z ]{1,60}[A-Za-z]\s*=\s*(?=\S)(?!.*=)")
_NOT_UNITS = {"pi", "sqrt", "frac", "cdot", "times", "and", "or", "i", "to", "is", "e"}
_WS_RE = re.compile(r"\s+")
_AND_LIST_RE = re.compile(r"\s*,?\s+and\s+")
_LETTER_GOLD_RE = re.compile(r"^\(?([A-E])\)?$")
WORDS_RE = re.compile(r"^[A-Za-z][A-Za-z \-']{2,}$")


def _unwrap_text(s: str) -> str:
    prev = None
    while prev != s:
        prev = s
        s = _TEXT_MACRO_RE.sub(lambda m: m.group(1), s)
    return s


@dataclass(frozen=True)
class Normal:
    """An answer string in normal form, with what normalising took off."""

    text: str
    percent: bool = False


#: numbers longer than this (characters) are compared by their digits (``_long_numbers``):
#: Python refuses ``int()`` of more than 4300 digits (and the conversion is quadratic)
LONG = 4000


@lru_cache(maxsize=65536)
def normalize(answer: str) -> Normal:
    s = answer.strip()
    s = s.strip("$").strip()
    if s.startswith("\\(") and s.endswith("\\)"):
        s = s[2:-2]
    if s.startswith("\\[") and s.endswith("\\]"):
        s = s[2:-2]
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = _FRAC_SHORT_RE.sub(r"\\frac{\1}{\2}", s)
    s = _THIN_THOUSANDS_RE.sub(",", s)
    s = _SPACING_RE.sub(" ", s)
    m = _TEXT_UNIT_RE.match(s.strip())
    if m and m.group("unit").lower() not in _NOT_UNITS:
        s = m.group("num")
    s = _unwrap_text(s)
    s = _DEGREE_RE.sub("", s)
    percent = bool(_PERCENT_RE.search(s))
    if percent:
        s = _PERCENT_RE.sub("", s)
    s = _CURRENCY_RE.sub("", s)
    s = s.replace("{,}", ",").replace("\\{", "{").replace("\\}", "}")
    s = s.strip().rstrip(".").lstrip(",").strip()  # ", 940": a list marker left over
    if "and" in s and any(c.isdigit() for c in s):
        s = _AND_LIST_RE.sub(", ", s)  # "19, 46, and 82" -> "19, 46, 82"
    s = _ASSIGN_RE.sub("", s)
    s = _LABEL_RE.sub("", s)  # "\\text{Total Cost} = \\$11,232" -> "11,232"
    m = _UNIT_TAIL_RE.match(s)
    if m and not any(w.lower().strip(".") in _NOT_UNITS for w in s[m.end("num"):].split()):
        if to_number(compact(m.group("num"))) is not None:
            s = m.group("num")
    s = _WS_RE.sub(" ", s).strip()
    return Normal(s, percent)


def compact(text: str) -> str:
    """Whitespace is not significant in LaTeX math, except between digits (``squeeze``)."""
    return squeeze(text)


# ----------------------------------------------------------------------------- numbers

_INT_RE = re.compile(r"^[+-]?\d+$")
_THOUSANDS_RE = re.compile(r"^[+-]?\d{1,3}(?:[, ]\d{3})+(?:\.\d+)?$")
_DEC_RE = re.compile(r"^[+-]?(?:\d+\.\d*|\.\d+)$")
_SCI_RE = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:[eE]([+-]?\d+)|\s*(?:\\times|\\cdot|x|\*)\s*10\^\{?([+-]?\d+)\}?)$")
_MIXED_RE = re.compile(r"^([+-]?)(\d+)\s+(\d+)\s*/\s*(\d+)$")
_SLASH_RE = re.compile(r"^([+-]?\d+)\s*/\s*([+-]?\d+)$")
_FRAC_RE = re.compile(r"^([+-]?)\\frac\{\s*([+-]?\d+(?:\.\d+)?)\s*\}\{\s*([+-]?\d+(?:\.\d+)?)\s*\}$")


@dataclass(frozen=True)
class Num:
    value: Fraction
    exact: bool  # False when written as a decimal: compared within the tolerance


@lru_cache(maxsize=65536)
def to_number(text: str) -> Num | None:
    """The value of a plain number (integer, decimal, fraction, scientific notation); None
    otherwise, and for text over ``LONG`` characters (``_long_numbers`` compares those)."""
    if len(text) > LONG:
        return None
    m = _MIXED_RE.match(text.strip())
    if m:  # "2 3/4", "1045 1/4": a whole number and a proper fraction
        whole, top, bottom = int(m.group(2)), int(m.group(3)), int(m.group(4))
        if 0 < top < bottom:
            return Num((-1 if m.group(1) == "-" else 1) * (whole + Fraction(top, bottom)), True)
        return None
    s = compact(text) if len(text) < 64 else text
    if _INT_RE.match(s):
        return Num(Fraction(int(s)), True)
    if _THOUSANDS_RE.match(text.strip()):
        s = text.strip().replace(",", "").replace(" ", "")
    if _INT_RE.match(s):
        return Num(Fraction(int(s)), True)
    if _DEC_RE.match(s):
        return Num(Fraction(s), False)
    m = _SLASH_RE.match(s)
    if m and int(m.group(2)) != 0:
        return Num(Fraction(int(m.group(1)), int(m.group(2))), True)
    m = _FRAC_RE.match(s)
    if m:
        num, den = Fraction(m.group(2)), Fraction(m.group(3))
        if den != 0:
            exact = "." not in m.group(2) + m.group(3)
            return Num((-1 if m.group(1) == "-" else 1) * num / den, exact)
    m = _SCI_RE.match(text.strip())
    if m:
        exp = int(m.group(2) or m.group(3))
        if abs(exp) > 400:
            return None
        return Num(Fraction(m.group(1)) * Fraction(10) ** exp, False)
    return None


def numbers_equal(a: Num, b: Num, tolerance: float) -> bool:
    if a.value == b.value:
        return True
    if a.exact and b.exact:
        return False
    scale = max(abs(a.value), abs(b.value), Fraction(1))
    return abs(a.value - b.value) <= Fraction(tolerance) * scale


def split_top_level(text: str, sep: str = ",") -> list[str]:
    """Split on ``sep`` outside brackets, braces and parentheses."""
    parts, depth, start = [], 0, 0
    for i, c in enumerate(text):
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


# ----------------------------------------------------------------------------- fast paths


@dataclass(frozen=True)
class FastResult:
    equal: bool
    path: str


def fast_equal(gold: str, pred: str, tolerance: float = 1e-6) -> FastResult | None:
    """Equal / not equal when a cheap rule can tell for sure; None when SymPy must decide."""
    if gold.strip() == pred.strip():
        return FastResult(True, "exact")
    ng, np_ = normalize(gold), normalize(pred)
    if not ng.text or not np_.text:
        return None
    if compact(ng.text) == compact(np_.text):
        return FastResult(True, "normalized")
    letter = _LETTER_GOLD_RE.match(ng.text)
    if letter:
        choice = choice_letter(np_.text)  # a bare choice only: not "3C", "C'", "C + 1"
        if choice is not None:
            return FastResult(choice == letter.group(1), "letter")
    special = _notations(ng, np_, tolerance)
    if special is not None:
        return special
    a, b = to_number(ng.text), to_number(np_.text)
    if a is not None and b is not None:
        if numbers_equal(a, b, tolerance):
            return FastResult(True, "numeric")
        # 28% against 0.28 (and the other way round)
        if ng.percent != np_.percent:
            pct, plain = (a, b) if ng.percent else (b, a)
            if numbers_equal(Num(pct.value / 100, pct.exact), plain, tolerance):
                return FastResult(True, "numeric")
        return FastResult(False, "numeric")
    if a is not None and b is None:
        # a chain of equalities ending in a number ("128 - 24 + 2 = 106"): math-verify
        # compares the last right-hand side with a gold that is no equation
        last = None if np_.percent else _equation_result(np_.text)  # which side had the %?
        if last is not None:
            found = fast_equal(gold, last, tolerance)
            if found is not None:
                return FastResult(found.equal, "equation")
        # a number against prose ("Cannot be determined ...") or against a list of numbers
        if _is_prose(np_.text):
            return FastResult(False, "prose")
        if "," in np_.text and not _has_brackets(np_.text):
            items = [to_number(normalize(x).text) for x in split_top_level(np_.text)]
            if len(items) > 1 and all(x is not None for x in items):
                return FastResult(False, "numeric_list")
        if _has_variable(np_.text):
            return FastResult(False, "variables")
        if _number_tuple(np_.text) is not None:
            return FastResult(False, "numeric_tuple")  # "(5, -5)" is no single number
    if b is not None and a is None and _has_variable(ng.text):
        return FastResult(False, "variables")
    gt, pt = _number_tuple(ng.text), _number_tuple(np_.text)
    if gt is not None and pt is not None:
        # "(5, -5)" against "(9, 19)": the same brackets, numbers element by element
        (gl, gv), (pl, pv) = gt, pt
        if gl == pl:
            same = len(gv) == len(pv) and all(numbers_equal(x, y, tolerance) for x, y in zip(gv, pv, strict=False))
            return FastResult(same, "numeric_tuple")
    if "," in ng.text and "," in np_.text and not _has_brackets(ng.text + np_.text):
        ga = [to_number(normalize(x).text) for x in split_top_level(ng.text)]
        pa = [to_number(normalize(x).text) for x in split_top_level(np_.text)]
        if all(x is not None for x in ga + pa):
            if len(ga) != len(pa):
                return FastResult(False, "numeric_list")
            gvals = sorted(x.value for x in ga)  # type: ignore[union-attr]
            pvals = sorted(x.value for x in pa)  # type: ignore[union-attr]
            return FastResult(gvals == pvals, "numeric_list")
    if WORDS_RE.match(ng.text) and WORDS_RE.match(np_.text):
        return FastResult(ng.text.lower() == np_.text.lower(), "text")
    if len(ng.text) > LONG or len(np_.text) > LONG:
        return _long_numbers(ng, np_, tolerance)
    return None


def _notations(gold: Normal, pred: Normal, tolerance: float) -> FastResult | None:
    """Decorated names, times of day, Indian digit groups, one-row/column matrices against
    lists (``notation.py``); None when none of them applies."""
    g, p = gold.text, pred.text
    named = decorations(g, p)
    if named is not None:
        return FastResult(named, "decoration")
    tg, tp = time_of_day(g), time_of_day(p)
    if tg is not None and tp is not None:
        return FastResult(tg == tp, "time")
    if (tg is None) != (tp is None) and to_number(p if tg is not None else g) is not None:
        return FastResult(False, "time")  # "14:00" is a time of day, not the number 2 (or 14)
    if gold.percent == pred.percent and "," in g + p:
        ig, ip = grouped_integer(compact(g)), grouped_integer(compact(p))
        if (ig is None) != (ip is None):  # "12,34,567" against a single number
            other = to_number(p if ig is not None else g)
            if other is not None:
                value = Fraction(ig if ig is not None else ip or 0)
                return FastResult(numbers_equal(Num(value, True), other, tolerance), "grouping")
    if "\\begin" in g + p:
        return _vectors(g, p, tolerance)
    return None


def _vectors(gold: str, pred: str, tolerance: float) -> FastResult | None:
    """A one-row or one-column matrix against a list or tuple of the same entries, in order:
    equal when every pair of entries is decided equal, different when one pair is decided
    different or the lengths differ; None otherwise."""
    vg, vp = vector_entries(gold), vector_entries(pred)
    if (vg is None) == (vp is None):
        return None  # two matrices (or none): math-verify compares matrices
    if vg is None:
        vg = list_entries(gold, split_top_level)
    else:
        vp = list_entries(pred, split_top_level)
    if vg is None or vp is None:
        return None
    if len(vg) != len(vp):
        return FastResult(False, "vector")
    decided = [fast_equal(x, y, tolerance) for x, y in zip(vg, vp, strict=True)]
    if any(d is not None and not d.equal for d in decided):
        return FastResult(False, "vector")
    if all(d is not None for d in decided):
        return FastResult(True, "vector")
    return None


_PLAIN_NUMBER_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")


def _long_numbers(gold: Normal, pred: Normal, tolerance: float) -> FastResult | None:
    """Plain numbers too long for ``to_number`` (a 200,000-digit integer): equal exactly by
    their digits (``decimal`` reads any length in linear time), decimals within the
    tolerance; a mixed number (``1111…1 1/2``) by its whole part and its proper fraction;
    None when either side is not one of these."""
    if gold.percent != pred.percent:
        return None
    a, b = _long_value(gold.text), _long_value(pred.text)
    if a is None or b is None:
        return None
    (wa, fa, exact_a), (wb, fb, exact_b) = a, b
    same = wa == wb and fa == fb
    if same or (exact_a and exact_b):
        # integers and mixed numbers (whose fraction is proper, never 0) are equal exactly
        # when the whole parts and the fractions are; decimals within the tolerance below
        return FastResult(same, "numeric")
    with decimal.localcontext() as ctx:
        ctx.prec, ctx.Emax, ctx.Emin = 50, decimal.MAX_EMAX, decimal.MIN_EMIN
        va = wa + Decimal(fa.numerator) / Decimal(fa.denominator)
        vb = wb + Decimal(fb.numerator) / Decimal(fb.denominator)
        scale = max(abs(va), abs(vb), Decimal(1))
        return FastResult(abs(va - vb) <= Decimal(tolerance) * scale, "numeric")


def _long_value(text: str) -> tuple[Decimal, Fraction, bool] | None:
    """(whole part, fraction, exact) of a plain number or a mixed number of any length; the
    fraction is 0 for a plain number (a decimal keeps its digits in the whole part)."""
    text = text.strip()
    m = _MIXED_RE.match(text) if "/" in text else None
    if m:
        if len(m.group(3)) + len(m.group(4)) > LONG:
            return None
        top, bottom = int(m.group(3)), int(m.group(4))
        if not 0 < top < bottom:  # a proper fraction, as to_number reads "2 3/4"
            return None
        fraction = Fraction(top, bottom)
        # the sign goes into the text: arithmetic on a Decimal rounds to the context's precision
        whole = Decimal(m.group(1) + m.group(2))
        return whole, -fraction if m.group(1) == "-" else fraction, True
    plain = compact(text)
    if not _PLAIN_NUMBER_RE.fullmatch(plain):
        return None
    return Decimal(plain), Fraction(0), "." not in plain


_COMMAND_RE = re.compile(r"\\[A-Za-z]+")
_PROSE_RE = re.compile(r"[A-Za-z]{4,}")
_MATH_WORDS = {"sqrt", "frac", "sin", "cos", "tan", "cot", "sec", "csc", "log", "exp", "infty",
               "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh", "cdot", "times", "binom",
               "choose", "floor", "ceil", "max", "min", "gcd", "lcm", "mod", "pmod", "pi"}


def _is_prose(text: str) -> bool:
    words = _PROSE_RE.findall(_COMMAND_RE.sub(" ", text))
    return any(w.lower() not in _MATH_WORDS for w in words)


_RELATION_RE = re.compile(r"=|<|>|\\[lg]eq?(?![A-Za-z])|\\in(?![A-Za-z])|\\to(?![A-Za-z])|\\ne(?![A-Za-z])|\\approx")
_LEADING_NUMBER_RE = re.compile(r"^[-+]?\d[\d.,]*\s*[A-Za-z]")
_LETTERS_RE = re.compile(r"[A-Za-z]+")
_CONSTANT_LETTERS = {"e", "i", "I"}


_EQUATION_SKIP_RE = re.compile(r"[<>!,;]|\\(?:[lg]eq?|ne|neq|approx|pm|mp|text|quad)(?![A-Za-z])|\b(?:or|and)\b")


def _equation_result(text: str) -> str | None:
    """The last side of ``a = b = ... = 106`` when it is a bare number (no unit); None for
    anything else (no ``=``, an inequality, ``\\pm``, several equations joined by a comma or
    words, prose around the numbers)."""
    if "=" not in text or len(text) > 2000 or _EQUATION_SKIP_RE.search(text) or _is_prose(text):
        return None  # "30 hamsters + 15 guinea pigs = 45 rodents": math-verify reads no equation
    sides = split_top_level(text, "=")
    if len(sides) < 2 or not all(sides):
        return None
    last = sides[-1]
    return last if to_number(compact(last)) is not None else None


def _has_variable(text: str) -> bool:
    """An expression in a variable ("1/(x^2+1)", "\\frac{7N}{5}", "c^2 + 1"), which no number
    equals: math-verify, asked, spends up to a second simplifying it to say so. Not an
    equation or inequality (math-verify compares a side of those), not a number with a unit
    after it ("4 m/s"), not words (``_is_prose``): a variable is a letter standing alone."""
    if len(text) > 2000 or _RELATION_RE.search(text) or _LEADING_NUMBER_RE.match(text):
        return False
    runs = _LETTERS_RE.findall(_COMMAND_RE.sub(" ", text))
    if not any(len(r) == 1 and r not in _CONSTANT_LETTERS for r in runs):
        return False
    # "\\frac{a-1}{1-a}" is -1: only a value that changes counts; plain-text roots read as
    # math-verify is given them ("3√130 + q" as 3\\sqrt{130} + q)
    return varies(latexify(text))


_TUPLE_RE = re.compile(r"^([(\[])(.*)([)\]])$")


def _number_tuple(text: str) -> tuple[str, list[Num]] | None:
    """"(1, -2)" -> ("()", [1, -2]) when every element is a plain number."""
    m = _TUPLE_RE.match(text.replace(" ", ""))
    if not m or "," not in m.group(2):
        return None
    items = [to_number(x) for x in split_top_level(m.group(2))]
    if any(x is None for x in items) or any(c in m.group(2) for c in "()[]{}"):
        return None
    return m.group(1) + m.group(3), items  # type: ignore[return-value]


def _has_brackets(text: str) -> bool:
    return any(c in text for c in "()[]{}")
