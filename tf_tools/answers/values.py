"""The float value of a constant answer (``12\\sqrt{3}``, ``\\frac{91\\sqrt{23}}{2}``, ``36π``),
without SymPy, so that clustering can tell two answers apart without a math-verify call.

A small recursive-descent reader over the normalised answer text: numbers, ``+ - * /``,
``\\cdot``, ``\\times``, implicit multiplication, ``^`` (braced or one digit), parentheses and
braces, ``\\frac``, ``\\sqrt``, ``\\sqrt[n]``, ``√``, ``\\pi``/``π``. Anything else (a letter,
a set, an interval, ``\\infty``, a percent sign) gives None: the answer is left to
math-verify. Ambiguous spellings (``\\sqrt34``, ``√34``, ``2^10``) also give None.

It deliberately never says two answers are *equal*: only that two constant values differ,
which math-verify (exact symbolic comparison, numbers rounded to 6 decimals) agrees with.

``latexify`` rewrites plain-text math (``2√26``, ``1994 * sqrt(2)``, ``36π``, ``x²``) as
LaTeX before anything compares it: math-verify (0.7) silently reads ``28√2`` as 28 and
``24 + sqrt(193)`` as 24, which would put different answers in one cluster.
"""

from __future__ import annotations

import math
import re

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
        return bool(c) and (c.isdigit() or c in "({[.√π" or any(
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
        if self.take("(") or self.take("{") or self.take("["):
            close = {"(": ")", "{": "}", "[": "]"}[self.s[self.i - 1]]
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


def constant_value(text: str, max_len: int = _MAX_LEN) -> float | None:
    """The value of ``text`` (already normalised) when it is a constant we can read, else None."""
    if not text or len(text) > max_len:
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


_SYMBOLS = {"·": "\\cdot ", "⋅": "\\cdot ", "×": "\\times ", "π": "\\pi ", "−": "-",
            "∞": "\\infty ", "²": "^{2}", "³": "^{3}", "≤": "\\le ", "≥": "\\ge "}
_ROOT_ARG_RE = re.compile(r"\s*(\d+(?:\.\d+)?|[A-Za-z])")


def _closing(text: str, start: int, pair: str) -> int:
    """Index of the bracket closing ``text[start]`` (one of ``pair``), or -1."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == pair[0]:
            depth += 1
        elif text[i] == pair[1]:
            depth -= 1
            if depth == 0:
                return i
    return -1


def latexify(text: str) -> str:
    """Plain-text roots and symbols as LaTeX: ``2√26`` -> ``2\\sqrt{26}``,
    ``sqrt(x+1)`` -> ``\\sqrt{x+1}``, ``π`` -> ``\\pi``; anything else unchanged."""
    if not any(c in text for c in "√·⋅×π−∞²³≤≥") and "sqrt(" not in text:
        return text
    try:
        return _latexify(text)
    except RecursionError:  # sqrt(sqrt(sqrt(... 2000 deep: left as written
        return text


def _latexify(text: str) -> str:
    for symbol, latex in _SYMBOLS.items():
        text = text.replace(symbol, latex)
    out: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith("√", i) or (text.startswith("sqrt(", i) and not text[:i].endswith("\\")):
            j = i + (1 if text[i] == "√" else 4)
            while j < len(text) and text[j] == " ":
                j += 1
            if j < len(text) and text[j] in "({":
                end = _closing(text, j, "()" if text[j] == "(" else "{}")
                if end > 0:
                    out.append("\\sqrt{" + _latexify(text[j + 1:end]) + "}")
                    i = end + 1
                    continue
            m = _ROOT_ARG_RE.match(text, j)
            if m and text[i] == "√":
                out.append("\\sqrt{" + m.group(1) + "}")
                i = m.end()
                continue
        out.append(text[i])
        i += 1
    return "".join(out).strip()


# a name: one letter, maybe with a subscript (``v_0``, ``x_{12}``) or digits (``r2``)
_NAME_TOKEN_RE = re.compile(r"\\[A-Za-z]+|([A-Za-z])(?:_\{([A-Za-z0-9]+)\}|_([A-Za-z0-9])|\d+)?")


def varies(text: str) -> bool:
    """True when ``text`` (normalised) is an expression in one-letter variables whose value
    changes with them: evaluated at two points (each variable a fixed number, different at
    each point), it gives two different values. Such an expression equals no number.
    False whenever that cannot be shown: no variable, ``e``/``i``/``I`` (constants), anything
    the reader does not read, or the same value twice (``\\frac{a-1}{1-a}`` is -1)."""
    if len(text) > _MAX_LEN:
        return False
    seen: dict[str, int] = {}

    def at(point: int) -> str:
        def value(m: re.Match[str]) -> str:
            if m.group(1) is None:
                return m.group(0)  # a command (\\frac, \\sqrt, \\pi) stays
            name = m.group(0)
            k = seen.setdefault(name, len(seen))
            return f"({0.5 + 0.37 * k + 0.61 * point + 0.013 * k * point:.6g})"
        return _NAME_TOKEN_RE.sub(value, text)

    if any(c in text for c in "eiI"):
        stripped = _NAME_TOKEN_RE.sub(lambda m: "" if m.group(1) is None else m.group(1), text)
        if any(c in stripped for c in "eiI"):
            return False
    # each variable becomes a parenthesised number: the text grows, not the work
    first = constant_value(at(0), 8 * _MAX_LEN)
    if not seen or first is None:
        return False
    second = constant_value(at(1), 8 * _MAX_LEN)
    if second is None:
        return False
    return abs(first - second) > 1e-6 * max(1.0, abs(first), abs(second))
