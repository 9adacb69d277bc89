"""What runs inside a grading worker process: math-verify parsing and comparison.

Imported by the pool's worker processes only (it imports SymPy and math-verify at the top
so that a fork-server can preload it once). The parent never imports it.
"""

from __future__ import annotations

import os
import resource
import time
from collections import OrderedDict
from typing import Any

from tf_tools.grading.equivalence import math_verify_equal, math_verify_parse

_GOLD_CACHE: OrderedDict[tuple[str, ...], list[Any]] = OrderedDict()
_PRED_CACHE: OrderedDict[str, list[Any]] = OrderedDict()
_CACHE_SIZE = 2048


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


def verify_task(golds: tuple[str, ...], pred: str) -> tuple[str, bool | None, str]:
    """(status, equal, reason): status is "ok", "gold_unparseable" or "error"."""
    try:
        gold_parsed = parse_golds(golds)
        if not gold_parsed:
            return "gold_unparseable", None, f"math-verify cannot parse the gold {list(golds)!r}"[:300]
        pred_parsed = _cached(_PRED_CACHE, pred, lambda: math_verify_parse(pred))
        if not pred_parsed:
            return "ok", False, "prediction does not parse"
        return "ok", math_verify_equal(gold_parsed, pred_parsed), "math-verify"
    except MemoryError:
        return "error", None, "out of memory (worker limit)"
    except RecursionError:
        return "error", None, "recursion limit in SymPy"
    except Exception as exc:  # a SymPy or parser bug on one answer must not kill the worker
        return "error", None, f"{type(exc).__name__}: {exc}"[:300]


def warm_up() -> None:
    """The first parse builds math-verify's regexes and the LaTeX parser (seconds on a busy
    machine): do it before the first item's clock starts."""
    verify_task(("\\frac{1}{2}",), "\\sqrt{x}+1")
    _GOLD_CACHE.clear()
    _PRED_CACHE.clear()


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
