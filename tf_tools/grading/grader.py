"""tf-grade's core: add ``pred``, ``verdict``, ``correct`` and ``_tf.grade`` to records.

Extraction and the cheap equivalence paths run in this process; only answers that need
SymPy go to the worker pool (``answers/pool.py``), which enforces a hard per-item time limit.
Records come out in input order. A record whose grading cannot be trusted is
``ungradable`` with a reason, never silently false.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from tf_tools import __version__
from tf_tools.answers.boxes import BOX_RE
from tf_tools.answers.equivalence import LONG, fast_equal, normalize, to_number
from tf_tools.answers.extract import (
    ExtractOptions,
    extract_answer,
    extract_letter,
    gold_answers,
    plain_number,
)
from tf_tools.answers.forms import form_of, forms_differ, is_words
from tf_tools.answers.notation import choice_letter
from tf_tools.answers.pool import VerifyPool
from tf_tools.answers.values import latexify
from tf_tools.errors import InputError
from tf_tools.schema import TF_KEY, VERDICTS, Record, is_failed, record_failed, set_provenance


@dataclass(frozen=True)
class GradeConfig:
    completion_key: str = "completion"
    answer_key: str = "answer"
    pred_key: str | None = None  # take the prediction from this field as-is (no extraction)
    id_key: str = "id"
    last_number: bool = False
    last_math: bool = False
    choices: str | None = None  # multiple-choice letters; auto when the gold is one of A-E
    tolerance: float = 1e-6
    workers: int = 2
    timeout: float = 5.0
    memory_mb: int = 4096
    keep_going: bool = False
    window: int = 16384  # records held for reordering at most


@dataclass
class GradeStats:
    verdicts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(VERDICTS, 0))
    paths: dict[str, int] = field(default_factory=dict)
    failed: int = 0
    timeouts: int = 0

    def add(self, verdict: str, path: str) -> None:
        self.verdicts[verdict] = self.verdicts.get(verdict, 0) + 1
        self.paths[path] = self.paths.get(path, 0) + 1

    def summary_lines(self) -> list[str]:
        """The run in one line for a reader (tf-grade prints it on stderr); none for no records."""
        v = self.verdicts
        n = sum(v.values())
        if not n:
            return []
        parts = ", ".join(f"{k} {c}" for k, c in v.items() if c)
        fast = n - self.paths.get("math-verify", 0) - self.paths.get("timeout", 0)
        return [f"graded {n}: {parts} (accuracy {100 * v['correct'] / n:.1f}%; {fast} decided "
                f"without SymPy; {self.timeouts} timeouts)"]


def _finish(rec: Record, pred: str | None, verdict: str, reason: str, path: str,
            method: str, seconds: float, cfg: GradeConfig, stats: GradeStats) -> Record:
    rec["pred"] = pred
    rec["verdict"] = verdict
    rec["correct"] = verdict == "correct"
    set_provenance(rec, "grade", {
        "grader": "tf-grade", "version": __version__, "reason": reason, "path": path,
        "extracted_by": method, "seconds": round(seconds, 6),
        **({"tolerance": cfg.tolerance} if path == "numeric" else {}),
    })
    stats.add(verdict, path)
    return rec


class _Pending:
    __slots__ = ("rec", "pred", "method", "t0")

    def __init__(self, rec: Record, pred: str, method: str, t0: float) -> None:
        self.rec, self.pred, self.method, self.t0 = rec, pred, method, t0


def _read_answers(rec: Record, cfg: GradeConfig, golds_of: Callable[[Any], tuple[str, ...]],
                  ) -> tuple[str | None, str, tuple[str, ...]]:
    """The record's predicted answer, how it was found, and its gold answers; InputError
    when the gold field or the model output is missing."""
    if cfg.answer_key not in rec:
        raise InputError(f"record has no {cfg.answer_key!r} field (the gold answer)",
                         hint="name the gold field with --answer-key")
    text_key = cfg.pred_key or cfg.completion_key
    if text_key not in rec:
        raise InputError(f"record has no {text_key!r} field",
                         hint="name the model output with --completion-key (or --pred-key)")
    if cfg.pred_key:
        raw = rec[cfg.pred_key]
        pred, method = (None, "none") if raw is None else (str(raw).strip() or None, "field")
    else:
        pred, method = extract_answer(rec[text_key], ExtractOptions(cfg.last_math, cfg.last_number))
    golds = golds_of(rec[cfg.answer_key])
    if cfg.last_number:
        # plain-number mode reads decimal commas the European way: "1,22" is 1.22
        raw_gold = rec[cfg.answer_key]
        if isinstance(raw_gold, str) and _COMMA_NUMBER.fullmatch(raw_gold.strip()):
            golds = (plain_number(raw_gold.strip()),)
        if pred is not None and method in ("whole", "last_number") and _COMMA_NUMBER.fullmatch(pred):
            pred = plain_number(pred)
    return pred, method, golds


def _grade_fast(rec: Record, cfg: GradeConfig, stats: GradeStats,
                golds_of: Callable[[Any], tuple[str, ...]]) -> Record | tuple[_Pending, tuple[str, ...]]:
    t0 = time.perf_counter()
    pred, method, golds = _read_answers(rec, cfg, golds_of)

    def done(verdict: str, reason: str, path: str) -> Record:
        return _finish(rec, pred, verdict, reason, path, method, time.perf_counter() - t0, cfg, stats)

    if rec.get("finish_reason") == "length":
        return done("truncated", "finish_reason=length", "finish_reason")
    if not golds:
        return done("ungradable", f"no gold answer in {cfg.answer_key!r}", "gold")
    letters = _gold_letters(golds, cfg.choices)
    if letters:
        # the answer must be a bare choice ("C", "(C) Cecile"), not "3C", "C'" or "\\hat{C}";
        # only with --choices (the user says the answers are letters) is a letter searched
        # for in the text when no answer was found
        text = rec[cfg.pred_key or cfg.completion_key]
        letter = choice_letter(normalize(pred).text) if pred is not None else None
        if letter is not None and cfg.choices and letter not in cfg.choices:
            letter = None
        if letter is None and cfg.choices and method != "boxed" and isinstance(text, str):
            letter = extract_letter(text, cfg.choices)  # "The answer is for sure D, not A"
        if letter is not None:
            pred, method = letter, "letter"
            if letter in letters:
                return done("correct", "letter", "letter")
            return done("incorrect", "letter", "letter")
    if pred is None:
        return done("no_answer", "nothing extractable", "extract")
    if _PLACEHOLDER_RE.fullmatch(pred):
        # "\\boxed{___}", "\\boxed{}": the answer's place, left empty
        return done("no_answer", "a placeholder, no answer", "extract")
    if _too_nested(pred) or any(_too_nested(g) for g in golds):
        # the fast path runs here, in the parent, without a clock: an answer nested hundreds
        # of braces deep goes straight to a worker, which has one (its regexes took 17 s on
        # a 24 KB nested \sqrt, with --timeout 2)
        return _Pending(rec, pred, method, t0), golds
    undecided = False
    path = "fast"
    for gold in golds:
        fast = fast_equal(gold, pred, cfg.tolerance)
        if fast is None:
            # two constants with different values (``12\\sqrt{3}``, ``2\\pi``): math-verify would
            # say "not equal", so it is not asked; words against a constant stay its call
            if forms_differ(form_of(latexify(gold)), form_of(latexify(pred)), words=False):
                path = "value"
            else:
                undecided = True
        elif fast.equal:
            return done("correct", fast.path, fast.path)
        elif path == "fast":
            path = fast.path  # the rule that decided "different" (numeric, decoration, time...)
    if not undecided:
        reason = ("different values" if path == "value" else path) if len(golds) == 1 else "no gold matched"
        return done("incorrect", reason, path)
    return _Pending(rec, pred, method, t0), golds


_COMMA_NUMBER = re.compile(r"-?\d+,\d+")
#: an answer with nothing in it but blanks: "___", "\\underline{\\quad}", "...", "?"
_PLACEHOLDER_RE = re.compile(r"(?:[\s_.?*…{}\-]|\\(?:underline|text|q?quad|[,;:! ])(?![A-Za-z]))*")
#: a run this long starts its math-verify workers in the background at this record, before
#: one is needed: their start (the fork server imports math-verify and SymPy, ~1 s of one
#: core) then overlaps the fast paths instead of holding up the end of the run; a pool
#: that gets no task is killed at close without waiting for that start
EAGER_POOL_AFTER = 64
#: answers with more braces than this skip the fast path (see _grade_fast)
FAST_MAX_BRACES = 256


def _too_nested(answer: str) -> bool:
    return answer.count("{") > FAST_MAX_BRACES
_SINGLE_LETTER = re.compile(r"^\(?([A-E])\)?\.?$")


@lru_cache(maxsize=16384)
def _gold_letters(golds: tuple[str, ...], choices: str | None) -> frozenset[str]:
    """The gold's choice letters: with ``choices`` from any gold text ("(C) Cecile"),
    otherwise only when the gold is a bare letter ("C", "(C)", "\\text{C}")."""
    out = set()
    for g in golds:
        if choices:
            letter = extract_letter(g, choices)
        else:
            m = _SINGLE_LETTER.match(normalize(g).text)
            letter = m.group(1) if m else None
        if letter:
            out.add(letter)
    return frozenset(out)


def grade_records(records: Iterable[Record], cfg: GradeConfig = GradeConfig(),
                  stats: GradeStats | None = None,
                  where: Callable[[], str] | None = None) -> Iterator[Record]:
    """Grade records lazily, in input order. A record that cannot be graded (a missing
    field, or any exception while grading it) raises InputError naming its line; with
    ``cfg.keep_going`` it is passed on ``ungradable`` and marked failed instead."""
    stats = stats if stats is not None else GradeStats()
    golds_of = _cached_golds()
    out: dict[int, Record | _Pending] = {}
    next_out = 0
    pool = None
    try:
        for seq, rec in enumerate(records):
            if is_failed(rec):
                stats.failed += 1
                out[seq] = rec
            else:
                t0 = time.perf_counter()
                try:
                    graded = _grade_fast(rec, cfg, stats, golds_of)
                except Exception as exc:  # one bad record never ends the run
                    out[seq] = _failed(rec, exc, t0, cfg, stats, where)
                else:
                    if isinstance(graded, tuple):
                        pending, golds = graded
                        if pool is None:
                            pool = _make_pool(cfg)
                        while not pool.submit((seq, golds, pending.pred)):
                            _collect(pool, out, cfg, stats)
                        out[seq] = pending
                    else:
                        out[seq] = graded
            if pool is None and seq == EAGER_POOL_AFTER:
                pool = _make_pool(cfg)  # starts beside the fast paths; closed unused if none needs it
            while next_out in out and not isinstance(out[next_out], _Pending):
                yield out.pop(next_out)  # type: ignore[misc]
                next_out += 1
            while pool is not None and len(out) >= cfg.window:
                _collect(pool, out, cfg, stats)
                while next_out in out and not isinstance(out[next_out], _Pending):
                    yield out.pop(next_out)  # type: ignore[misc]
                    next_out += 1
        while out:
            if pool is not None and pool.outstanding:
                _collect(pool, out, cfg, stats)
            while next_out in out and not isinstance(out[next_out], _Pending):
                yield out.pop(next_out)  # type: ignore[misc]
                next_out += 1
    finally:
        if pool is not None:
            pool.close()


def _cached_golds() -> Callable[[Any], tuple[str, ...]]:
    """``gold_answers`` as a tuple, remembered for the run (the samples of a problem share
    its gold)."""
    cache: dict[str, tuple[str, ...]] = {}

    def golds_of(value: Any) -> tuple[str, ...]:
        key = value if isinstance(value, str) else repr(value)
        found = cache.get(key)
        if found is None:
            found = tuple(gold_answers(value))
            if len(key) <= LONG:  # 4096 golds of 200,000 characters would fill the memory
                if len(cache) > 4096:
                    cache.clear()
                cache[key] = found
        return found

    return golds_of


def _failed(rec: Record, exc: Exception, t0: float, cfg: GradeConfig, stats: GradeStats,
            where: Callable[[], str] | None) -> Record:
    """A record whose grading raised: stop naming its line, or (``keep_going``) mark it
    failed and ``ungradable`` with the exception as the reason, and go on."""
    rec = record_failed(rec, "grade", exc, keep_going=cfg.keep_going, where=where)
    stats.failed += 1
    reason = f"error: {rec[TF_KEY]['error']['message']}"
    return _finish(rec, None, "ungradable", reason, "error", "none", time.perf_counter() - t0,
                   cfg, stats)


def _make_pool(cfg: GradeConfig) -> VerifyPool:
    return VerifyPool(cfg.workers, cfg.timeout, cfg.memory_mb, max_queue=64, background=True)


def _collect(pool: Any, out: dict[int, Any], cfg: GradeConfig, stats: GradeStats) -> None:
    for seq, status, equal, reason, seconds in pool.collect(block=0.05):
        pending = out.get(seq)
        if not isinstance(pending, _Pending):
            continue
        # the worker's own time for this item (not the time it waited in the queue)
        elapsed = seconds
        if status == "ok":
            verdict = "correct" if equal else "incorrect"
            path = "math-verify"
        else:
            verdict, path = "ungradable", status
            reason = f"{status}: {reason}"
            if status == "timeout":
                stats.timeouts += 1
        out[seq] = _finish(pending.rec, pending.pred, verdict, reason, path, pending.method,
                           elapsed, cfg, stats)



# ----------------------------------------------------------------------------- --check-gold


def check_golds(records: Iterable[Record], cfg: GradeConfig = GradeConfig(),
                where: Callable[[], str] | None = None) -> Iterator[Record]:
    """Yield one report per problem whose gold answer cannot be graded against.

    A gold is fine when a fast path can read it (a number, a list of numbers, a choice
    letter, plain words) or when math-verify parses it and finds it equal to itself, in
    the killable worker pool. Reports: {"id", "answer", "line", "problem": reason}.
    """
    pool = None
    pending: dict[int, Record] = {}
    seen: set[tuple[Any, str]] = set()
    try:
        for seq, rec in enumerate(records):
            if is_failed(rec):
                continue
            # the samples of one problem share its gold: check it once
            gold_key = (rec.get(cfg.id_key), repr(rec.get(cfg.answer_key)))
            if gold_key in seen:
                continue
            if len(seen) > 1_000_000:
                seen.clear()
            seen.add(gold_key)
            line = where() if where else None
            report = {"id": rec.get(cfg.id_key), "answer": rec.get(cfg.answer_key), "where": line}
            if cfg.answer_key not in rec:
                yield {**report, "problem": f"no {cfg.answer_key!r} field"}
                continue
            golds = tuple(gold_answers(rec[cfg.answer_key]))
            if not golds:
                yield {**report, "problem": "empty gold answer"}
                continue
            ambiguous = ambiguity(rec[cfg.answer_key], golds)
            if ambiguous:
                yield {**report, "problem": f"ambiguous: {ambiguous}", "graded_as": list(golds)}
                continue
            hard = [g for g in golds if not (to_number(normalize(g).text) or _gold_letters((g,), None)
                                             or is_words(g))]
            if not hard:
                continue
            if pool is None:
                pool = _make_pool(cfg)
            for j, g in enumerate(hard):
                key = seq * 64 + j
                while not pool.submit((key, (g,), g)):
                    yield from _check_results(pool, pending)
                pending[key] = {**report, "gold": g}
            yield from _check_results(pool, pending, block=0.0)
        while pool is not None and pool.outstanding:
            yield from _check_results(pool, pending)
    finally:
        if pool is not None:
            pool.close()


_RANGE_RE = re.compile(
    r"(?:between|from)?\s*[-+]?\$?\d[\d,]*(?:\.\d+)?\s*(?:to|and|through|--?|–|—|\\text\{\s*to\s*\})\s*"
    r"[-+]?\$?\d[\d,]*(?:\.\d+)?(?:\s*[A-Za-z%]+\.?)?", re.IGNORECASE)


def ambiguity(value: Any, golds: tuple[str, ...]) -> str | None:
    """Why a gold answer may not say what the data set means, or None: several boxed answers
    in one gold ("\\boxed{3} ... \\boxed{4}": graded against the last box, or the chain of
    boxes before it), or a range written as text ("3 to 5", "10-12": a range, or a
    difference?)."""
    if isinstance(value, str) and len(value) <= 100_000:
        boxes = len(BOX_RE.findall(value))
        if boxes > 1:
            return f"{boxes} boxed answers in the gold"
    for g in golds:
        if len(g) > 200:
            continue
        text = normalize(g).text
        if (_RANGE_RE.fullmatch(text) or _RANGE_RE.fullmatch(g.strip())) and to_number(text) is None:
            return f"a range written as text ({g!r})"
    return None


def _check_results(pool: Any, pending: dict[int, Record], block: float = 0.05) -> Iterator[Record]:
    for key, status, equal, reason, _seconds in pool.collect(block=block):
        report = pending.pop(key, None)
        if report is None:
            continue
        if status == "gold_unparseable":
            yield {**report, "problem": "does not parse"}
        elif status != "ok":
            yield {**report, "problem": reason}
        elif not equal:
            yield {**report, "problem": "does not equal itself"}
