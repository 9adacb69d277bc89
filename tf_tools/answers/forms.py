"""What a cheap look at an answer tells, without SymPy: canonical keys and forms.

- ``canonical_key``: equal keys imply ``fast_equal`` says equal (``1/2``, ``\\frac{1}{2}`` and
  ``0.5`` share one), so a dict groups identical answers without comparing them;
- ``form_of`` / ``forms_differ``: an exact number, the value of a constant (``values.py``),
  plain words; two forms can prove two answers *different* (two constants with different
  values, words against a constant), never equal;
- ``fast_decision``: ``fast_equal`` made symmetric, for clustering.

tf-grade, tf-cluster and tf-stats' maj@k all decide with these, so they agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from tf_tools.answers.equivalence import WORDS_RE, compact, fast_equal, normalize, to_number
from tf_tools.answers.values import constant_value


def canonical_key(pred: str) -> tuple[str, Any]:
    """A key such that equal keys imply ``fast_equal`` says equal (so no comparison is run)."""
    norm = normalize(pred)
    if not norm.text:
        return ("raw", pred.strip())
    num = to_number(norm.text)
    if num is not None:
        return ("pct" if norm.percent else "num", num.value)
    return ("text", compact(norm.text))


_MIXED_RE = re.compile(r"\d\s*\\[dt]?frac")
_NOT_CONSTANT_LETTER_RE = re.compile(r"[a-df-hj-zA-DF-HJ-Z]")  # letters other than e, i


@dataclass(frozen=True)
class Form:
    """What a cheap look at an answer tells: exact number, constant value, plain words."""

    exact: Fraction | None  # an exact, non-percent number
    value: float | None  # a constant we can evaluate
    decimal: bool  # written with a decimal point (may be rounded)
    words: bool  # plain words with a letter that is not a constant (e, i)


def form_of(pred: str) -> Form:
    norm = normalize(pred)
    text = norm.text
    if not text or norm.percent:
        return Form(None, None, False, False)
    num = to_number(text)
    if num is not None:
        try:
            value: float | None = float(num.value)
        except OverflowError:  # a 400-digit integer is exact, but no float
            value = None
        return Form(num.value if num.exact else None, value, not num.exact, False)
    words = bool(WORDS_RE.match(text) and _NOT_CONSTANT_LETTER_RE.search(text))
    # "1\frac{1}{10}": math-verify reads a mixed number (11/10), our reader a product
    value = None if words or _MIXED_RE.search(text) else constant_value(text)
    return Form(None, value, "." in text, words)


def forms_differ(a: Form, b: Form, *, words: bool = True) -> bool:
    """True when the two answers cannot be equal: different constants, or (unless ``words``
    is False) plain words against a constant. Never says two answers are equal: that stays
    math-verify's call.

    Decimals may be rounded answers: they must differ by more than 1e-4 (relative);
    math-verify itself compares numbers to 6 decimals.
    """
    if a.value is not None and b.value is not None:
        margin = 1e-4 if a.decimal or b.decimal else 1e-9
        return abs(a.value - b.value) > margin * max(1.0, abs(a.value), abs(b.value))
    return words and ((a.words and b.value is not None) or (b.words and a.value is not None))


def is_words(answer: str) -> bool:
    """The answer, normalised, is plain words (``"Monday"``, ``"no solution"``)."""
    return bool(WORDS_RE.match(normalize(answer).text))


def fast_decision(a: str, b: str, tolerance: float = 1e-6) -> bool | None:
    """``fast_equal`` both ways round (either saying "equal" wins): clustering needs a
    symmetric relation, and fast_equal's gold side is special (a number as gold against
    prose is decided "different", prose as gold against a number is left to SymPy)."""
    first = fast_equal(a, b, tolerance)
    if first is not None and first.equal:
        return True
    second = fast_equal(b, a, tolerance)
    if second is not None and second.equal:
        return True
    return None if first is None and second is None else False
