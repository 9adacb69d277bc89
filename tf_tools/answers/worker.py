"""What runs inside a grading worker process: math-verify parsing and comparison.

Imported by the pool's worker processes only: it imports math-verify (and with it SymPy) at
the top, so the pool's fork server preloads it once and every worker, restarted ones too,
starts with it in memory. The parent never imports it (``pool.py`` starts workers through a
function of its own).

math-verify's own SIGALRM timeouts do not work in threads and cannot interrupt C code, so
they are switched off here; the pool kills a worker that runs over its time instead.
"""

from __future__ import annotations

import logging
import math
import os
import re
import resource
import time
import zlib
from collections import OrderedDict
from typing import Any

import math_verify
import sympy
from math_verify import ExprExtractionConfig, LatexExtractionConfig

from tf_tools.answers.values import latexify

# with timeouts off math-verify warns once per process that we must time out ourselves: we do
logging.getLogger("math_verify").setLevel(logging.ERROR)

_GOLD_CACHE: OrderedDict[tuple[str, ...], list[Any]] = OrderedDict()
_PRED_CACHE: OrderedDict[str, list[Any]] = OrderedDict()
_CACHE_SIZE = 2048


def math_verify_parse(answer: str) -> list[Any]:
    """Parse one extracted answer with math-verify (no SIGALRM: this process can be killed)."""
    # math-verify reads plain-text "28√2" as 28 and "sqrt(193)" not at all: LaTeX them first
    text = _plain_names(_degrees_in_trig(latexify(answer.strip())))
    if not (text.startswith("$") or text.startswith("\\(") or text.startswith("\\[")):
        text = f"${text}$"
    parsed = math_verify.parse(
        text,
        extraction_config=[LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()],
        parsing_timeout=None,  # type: ignore[arg-type]
    )
    exprs = [p for p in parsed if not isinstance(p, str)]
    if exprs:
        return exprs
    # nothing parsed: math-verify then compares the text it extracted, which may be a cut
    # piece ("\\{" of a set it could not read) that two different answers share; only the
    # whole answer is compared as text
    whole = text.strip("$ ")
    return [p for p in parsed if p.strip("$ ") == whole]


_TRIG_RE = re.compile(r"\\(?:sin|cos|tan|cot|sec|csc)(?![A-Za-z])")
_DEGREES_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(?:\^\s*\{?\s*\\circ\s*\}?|°|\\degree(?![A-Za-z]))")


def _degrees_in_trig(text: str) -> str:
    """``\\cos(90^\\circ - x)`` -> ``\\cos(\\frac{90\\pi}{180} - x)``: math-verify drops the
    degree sign, which puts a trigonometric function's argument in radians. Only where a
    trigonometric function occurs: an angle answer ``30^\\circ`` stays 30."""
    if "\\" not in text or not _TRIG_RE.search(text):
        return text
    return _DEGREES_RE.sub(r"\\frac{\1\\pi}{180}", text)


_TEXT_INDEX_RE = re.compile(r"_\s*\{\s*\\(?:text|mathrm|mathit|rm|textrm)\s*\{([^{}]*)\}\s*\}")
_I_INDEX_RE = re.compile(r"(?<![\\A-Za-z])I(?=\s*_)")
_E_INDEX_RE = re.compile(r"(?<![\\A-Za-z])[Ee]\s*_\s*(?:([A-Za-z0-9])|\{\s*([A-Za-z0-9])\s*\})")
_LONE_D_RE = re.compile(r"(?<![\\A-Za-z])d(?![A-Za-z_])")


def _plain_names(text: str) -> str:
    """Names math-verify (0.7) misreads, rewritten alike in gold and prediction to spellings
    it reads as plain symbols: ``I_1`` became the imaginary unit (so ``I_1 = I_2`` and
    ``\\mu_0 I_1^2 = \\mu_0 I_1``), ``E_k`` and ``d_{\\text{x}}`` did not parse, and a
    trailing ``d`` vanished (``2\\pi d`` = ``2\\pi``). math-verify lower-cases names itself,
    so ``I_1`` -> ``i_1`` merges nothing it did not merge already."""
    if "_" in text:
        text = _TEXT_INDEX_RE.sub(r"_{\1}", text)
        text = _I_INDEX_RE.sub("i", text)
        text = _E_INDEX_RE.sub(lambda m: "\\mathrm{E}_" + (m.group(1) or m.group(2)), text)
    if "d" in text:
        text = _LONE_D_RE.sub(_braced_d, text)
    return text


def _braced_d(m: re.Match[str]) -> str:
    s, i = m.string, m.start()
    return "d" if s[i - 1:i] == "{" and s[i + 1:i + 2] == "}" else "{d}"


def math_verify_equal(gold_parsed: list[Any], pred_parsed: list[Any]) -> bool:
    if math_verify.verify(gold_parsed, pred_parsed, timeout_seconds=None):  # type: ignore[arg-type]
        return True
    # complex numbers: math-verify reads i as a variable, so i(3+i) is not -1+3i; when i is
    # the only symbol on both sides, it is the imaginary unit
    gold_i, pred_i = _as_complex(gold_parsed), _as_complex(pred_parsed)
    if gold_i is None or pred_i is None:
        return False
    return bool(math_verify.verify(gold_i, pred_i, timeout_seconds=None))  # type: ignore[arg-type]


def _as_complex(parsed: list[Any]) -> list[Any] | None:
    """The parsed answers with the symbol i as sympy's I; None unless i is their only symbol."""
    out = []
    for p in parsed:
        symbols = getattr(p, "free_symbols", None)
        if symbols is None:
            return None
        if any(getattr(s, "name", None) != "i" for s in symbols):
            return None  # (math-verify's i carries assumptions: compare by name)
        out.append(p.subs({s: sympy.I for s in symbols}) if symbols else p)
    return out if any(getattr(p, "free_symbols", None) for p in parsed) else None


def limit_memory(megabytes: int) -> None:
    """Cap this worker's address space so a runaway expansion fails instead of swapping."""
    if megabytes > 0:
        limit = megabytes * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _cached(cache: OrderedDict, key: Any, make: Any) -> Any:
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    value = make()
    cache[key] = value
    if len(cache) > _CACHE_SIZE:
        cache.popitem(last=False)
    return value


def parse_golds(golds: tuple[str, ...]) -> list[Any]:
    """Parse a problem's gold answers once; later samples of the problem hit the cache."""

    def make() -> list[Any]:
        out: list[Any] = []
        for g in golds:
            out.extend(p for p in math_verify_parse(g) if not isinstance(p, str))
        return out

    return _cached(_GOLD_CACHE, golds, make)


# ----------------------------------------------------------------------------- fingerprints

#: what evalf would integrate, sum or take limits of (slow), or cannot evaluate
_NO_EVAL = (sympy.Integral, sympy.Sum, sympy.Product, sympy.Limit, sympy.Derivative)


def _point(name: str) -> sympy.Float:
    """The value every symbol of this name takes in fingerprints: fixed, positive, distinct
    per name (a positive point keeps ``\\sqrt{x^2}`` and ``x`` alike, as SymPy's positive
    symbols would)."""
    return sympy.Float(0.61 + (zlib.crc32(name.encode()) % 9973) / 9973 * 0.87, 20)


#: one parsed answer's values: ``(0, (value,), False)`` for an expression, ``(n, element
#: values, False)`` for a set or tuple of ``n`` elements; an equation is its right-hand side
#: with ``True`` (what math-verify compares with an answer that is no equation)
Item = tuple[int, tuple[complex, ...], bool]
#: an answer's fingerprint: the items of its parsed expressions, and their scale
Print = tuple[tuple[Item, ...], float]


def _concrete(expr: Any) -> Any:
    """``f(x)`` of an undefined ``f`` as one fixed function of its arguments per name and
    arity: what is equal for every ``f`` (math-verify's symbolic comparison) is equal for
    this one, so values that differ here differ there."""
    from sympy.core.function import AppliedUndef

    def concrete(call: Any) -> Any:
        c = sympy.Float(0.3 + (zlib.crc32(f"{call.func.__name__}/{len(call.args)}".encode()) % 997) / 1994, 20)
        return sympy.exp(c * sum(sympy.Float(k + 1) * a for k, a in enumerate(call.args))) + c

    return expr.replace(lambda e: isinstance(e, AppliedUndef), concrete)


def fingerprint(answer: str, parsed: list[Any]) -> Print | None:
    """The values of the answer's parsed expressions, every symbol at its fixed point
    (``_point``), and their *scale* (the largest magnitude of any part of them). It lets
    the caller tell two answers apart without comparing them (``far_apart`` in
    ``clustering/equivalence.py``): math-verify compares values without leniency
    (``verify`` with ``strict=True``: the same names, numbers to 6 decimals, a difference
    chopped to 0 only when tiny next to the parts it came from: ``257^{48}/256^{48}``
    "equals" a number near 0 there), sets and tuples element by element, an expression as
    the set of itself, and an equation with an answer that is none by its last right-hand
    side (or not at all).

    A set or tuple gives its elements' values (``FiniteSet`` counts distinct elements, as
    math-verify's comparison does); an undefined function one fixed function
    (``_concrete``). Where the symbol ``i`` is an answer's only symbol, both readings are
    given (a symbol, and the imaginary unit, as ``math_verify_equal`` retries). None where
    math-verify has more than values to go on: an inequality, an interval, a matrix, a
    bare symbol (compared by name with a product of letters), a percent (``9%`` equals 9
    there), or what cannot be evaluated quickly (integrals, sums, limits, overflows, big
    trees)."""
    if "%" in answer or "percent" in answer or not parsed:
        return None
    exprs: list[tuple[Any, list[Any], bool]] = []  # (set or expression, its elements, an equation?)
    for p in parsed:
        equation = _is_equation(p)
        if equation:
            while isinstance(p, sympy.And):
                p = p._unsorted_args[-1] if hasattr(p, "_unsorted_args") else p.args[-1]
            p = p.rhs
        elements = list(p.args) if isinstance(p, (sympy.FiniteSet, sympy.Tuple)) else [p]
        for q in elements:
            if not isinstance(q, sympy.Expr) or isinstance(q, sympy.Symbol) or q.has(*_NO_EVAL):
                return None
        exprs.append((p, [_concrete(q) for q in elements], equation))
    symbols = set().union(*(q.free_symbols for _, elements, _ in exprs for q in elements))
    if len(symbols) > 40:
        return None
    readings = [{sym: _point(sym.name) for sym in symbols}]
    if symbols and all(getattr(sym, "name", None) == "i" for sym in symbols):
        readings.append({sym: sympy.I for sym in symbols})
    items: list[Item] = []
    scale = 1.0
    for at in readings:
        for p, elements, equation in exprs:
            parts = [q for e in elements for q in sympy.preorder_traversal(e)
                     if isinstance(q, sympy.Expr) and not isinstance(q, sympy.Symbol)]
            if len(parts) > 400:
                return None
            try:
                values = tuple(complex(e.evalf(15, subs=at)) for e in elements)
                for q in parts:
                    scale = max(scale, abs(complex(q.evalf(15, subs=at))))
            except (TypeError, ValueError, OverflowError, ArithmeticError, AttributeError):
                return None
            if not all(math.isfinite(abs(v)) for v in values) or not math.isfinite(scale):
                return None
            size = len(p) if isinstance(p, (sympy.FiniteSet, sympy.Tuple)) else 0
            items.append((size, values, equation))
    return tuple(items), scale


def _is_equation(expr: Any) -> bool:
    """An equation or a chain of them (``a = b = c``), as math-verify's ``is_equation``."""
    if isinstance(expr, sympy.Eq):
        return True
    return isinstance(expr, sympy.And) and bool(expr.args) and all(isinstance(a, sympy.Eq) for a in expr.args)


def describe(answer: str) -> tuple[str, Print | None, str]:
    """A reading task (``verify_task`` with no prediction): "gold_unparseable" when
    math-verify reads no expression from the answer, else "ok" with its fingerprint."""
    try:
        parsed = parse_golds((answer,))
        if not parsed:
            return "gold_unparseable", None, "math-verify reads no expression"
        return "ok", fingerprint(answer, parsed), "readable"
    except Exception as exc:  # noqa: BLE001 - as verify_task
        return _failure(exc)


def verify_task(golds: tuple[str, ...], pred: str | None) -> tuple[str, Any, str]:
    """(status, equal, reason): status is "ok", "gold_unparseable" or "error". With no
    prediction, a reading of the one gold instead (``describe``: "equal" is its fingerprint)."""
    if pred is None:
        return describe(golds[0])
    try:
        gold_parsed = parse_golds(golds)
        if not gold_parsed:
            return "gold_unparseable", None, f"math-verify cannot parse the gold {list(golds)!r}"[:300]
        pred_parsed = _cached(_PRED_CACHE, pred, lambda: math_verify_parse(pred))
        if not pred_parsed:
            return "ok", False, "prediction does not parse"
        return "ok", math_verify_equal(gold_parsed, pred_parsed), "math-verify"
    except Exception as exc:  # noqa: BLE001 - a SymPy or parser bug on one answer must not kill the worker
        return _failure(exc)


def _failure(exc: Exception) -> tuple[str, None, str]:
    """An item's exception as its "error" result."""
    if isinstance(exc, MemoryError):
        return "error", None, "out of memory (worker limit)"
    if isinstance(exc, RecursionError):
        return "error", None, "recursion limit in SymPy"
    return "error", None, f"{type(exc).__name__}: {exc}"[:300]


_warm = False


def warm_up() -> None:
    """The first parses build math-verify's regexes, the LaTeX parser and SymPy's caches
    (seconds on a busy machine): done once, when the fork server preloads this module, so
    every worker forked from it starts warm (and again in a worker only if it was not)."""
    global _warm
    if _warm:
        return
    for gold, pred in (("\\frac{1}{2}", "\\sqrt{x}+1"), ("(\\frac{2}{3},1)\\cup(7,\\infty)", "4"),
                       ("a^2+b^2", "b^2+a^2"), ("\\begin{pmatrix}1\\\\2\\end{pmatrix}", "x+y=1")):
        verify_task((gold,), pred)
    _GOLD_CACHE.clear()
    _PRED_CACHE.clear()
    _warm = True


def serve(conn: Any, memory_mb: int) -> None:
    """Worker loop: say READY once warm, then receive lists of (seq, golds, pred) and answer
    each as soon as it is done. Ends quietly when the parent goes away."""
    limit_memory(memory_mb)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        warm_up()
        conn.send(READY)
        while True:
            batch = conn.recv()
            if batch is None:
                return
            for seq, golds, pred in batch:
                t0 = time.perf_counter()
                status, equal, reason = verify_task(golds, pred)
                conn.send((seq, status, equal, reason, time.perf_counter() - t0))
    except (EOFError, OSError, KeyboardInterrupt):
        return  # the parent closed the pipe or was killed


READY = ("ready",)

# the fork server imports this module once (pool.py preloads it): warm it there
warm_up()
