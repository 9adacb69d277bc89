"""The float value of a constant answer (``12\\sqrt{3}``, ``\\frac{91\\sqrt{23}}{2}``, ``36π``),
without SymPy, so that clustering can tell two answers apart without a math-verify call.

A small recursive-descent reader over the normalised answer text: numbers, ``+ - * /``,
``\\cdot``, ``\\times``, implicit multiplication, ``^`` (braced or one digit), parentheses and
braces, ``\\frac``, ``\\sqrt``, ``\\sqrt[n]``, ``√``, ``\\pi``/``π``. Anything else (a letter,
a set, an interval, ``\\infty``, a percent sign) gives None: the answer is left to
math-verify. Ambiguous spellings (``\\sqrt34``, ``√34``, ``2^10``) also give None.

It deliberately never says two answers are *equal*: only that two constant values differ,
which math-verify (exact symbolic comparison, numbers rounded to 6 decimals) agrees with.
"""

from __future__ import annotations

import math

_MAX_LEN = 200
_MAX_EXPONENT = 1024.0
_MAX_VALUE = 1e300


class _Fail(Exception):
    pass


class _Reader:
    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0

    # ------------------------------------------------------------------ helpers

    def peek(self) -> str:
        while self.i < len(self.s) and self.s[self.i] == " ":
            self.i += 1
        return self.s[self.i] if self.i < len(self.s) else ""

    def take(self, token: str) -> bool:
        self.peek()
        if self.s.startswith(token, self.i):
            if token[0] == "\\" and self.s[self.i + len(token):self.i + len(token) + 1].isalpha():
                return False  # \pi is not \pid
            self.i += len(token)
            return True
        return False

    def expect(self, token: str) -> None:
        if not self.take(token):
            raise _Fail

    def starts_atom(self) -> bool:
        c = self.peek()
        return bool(c) and (c.isdigit() or c in "({.√π" or any(
            self.s.startswith(t, self.i) for t in ("\\frac", "\\sqrt", "\\pi", "sqrt")))

    # ------------------------------------------------------------------ grammar

    def expr(self) -> float:
        value = self.term()
        while True:
            if self.take("+"):
                value = _check(value + self.term())
            elif self.take("-"):
                value = _check(value - self.term())
            else:
                return value

    def term(self) -> float:
        value = self.unary()
        while True:
            if self.take("*") or self.take("\\cdot") or self.take("\\times"):
                value = _check(value * self.unary())
            elif self.take("/"):
                divisor = self.unary()
                if divisor == 0:
                    raise _Fail
                value = _check(value / divisor)
            elif self.starts_atom():
                if self.peek().isdigit() or self.peek() == ".":
                    raise _Fail  # "2 3": two numbers side by side
                value = _check(value * self.power())
            else:
                return value

    def unary(self) -> float:
        if self.take("-"):
            return -self.unary()
        if self.take("+"):
            return self.unary()
        return self.power()

    def power(self) -> float:
        base = self.atom()
        if self.take("^"):
            exponent = self.group(allow_unary=True)
            if abs(exponent) > _MAX_EXPONENT or (base < 0 and exponent != int(exponent)):
                raise _Fail
            if base == 0 and exponent < 0:
                raise _Fail
            try:
                return _check(base ** exponent)
            except OverflowError:
                raise _Fail from None
        return base

    def group(self, allow_unary: bool = False) -> float:
        """A braced argument, or one digit not followed by another (``\\frac12``, ``x^2``)."""
        if self.take("{"):
            value = self.expr()
            self.expect("}")
            return value
        if self.take("("):
            value = self.expr()
            self.expect(")")
            return value
        if allow_unary and self.take("-"):
            return -self.group()
        c = self.peek()
        if c.isdigit():
            nxt = self.s[self.i + 1:self.i + 2]
            if nxt.isdigit() or nxt == ".":
                raise _Fail  # ambiguous: \sqrt34, 2^10
            self.i += 1
            return float(c)
        raise _Fail

    def atom(self) -> float:
        c = self.peek()
        if c.isdigit() or c == ".":
            start = self.i
            while self.i < len(self.s) and (self.s[self.i].isdigit() or self.s[self.i] == "."):
                self.i += 1
            try:
                return float(self.s[start:self.i])
            except ValueError:
                raise _Fail from None
        if self.take("(") or self.take("{"):
            close = ")" if self.s[self.i - 1] == "(" else "}"
            value = self.expr()
            self.expect(close)
            return value
        if self.take("\\frac"):
            num = self.group()
            den = self.group()
            if den == 0:
                raise _Fail
            return _check(num / den)
        if self.take("\\sqrt"):
            degree = 2.0
            if self.take("["):
                degree = self.expr()
                self.expect("]")
            return _root(self.group(), degree)
        if self.take("√") or self.take("sqrt"):
            return _root(self.group(), 2.0)
        if self.take("\\pi") or self.take("π"):
            return math.pi
        raise _Fail


def _check(value: float) -> float:
    if not math.isfinite(value) or abs(value) > _MAX_VALUE:
        raise _Fail
    return value


def _root(value: float, degree: float) -> float:
    if value < 0 or degree == 0:
        raise _Fail
    return _check(value ** (1.0 / degree))


def constant_value(text: str) -> float | None:
    """The value of ``text`` (already normalised) when it is a constant we can read, else None."""
    if not text or len(text) > _MAX_LEN:
        return None
    text = text.replace("**", "^").replace("−", "-").replace("×", "*").replace("·", "*")
    reader = _Reader(text)
    try:
        value = reader.expr()
    except (_Fail, RecursionError, ZeroDivisionError, OverflowError, ValueError):
        return None
    if reader.peek():
        return None  # something we do not read is left over
    return value
