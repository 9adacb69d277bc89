"""The record contract (DESIGN.md §3): what every stage agrees a record means.

Holds the names and small predicates that more than one stage must spell the same way: the
reserved ``_tf`` key, the verdicts, the segment kinds, which kind a record is, the order of
one problem's samples, which wrong answers tf-fuse can use, the one shape of ``_tf.error``
and the one way a command deals with a record that raised (``record_failed``).

It does no I/O (``records`` reads and writes lines) and knows no mathematics
(``answers/``); it imports nothing from tf_tools but ``errors``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tf_tools.errors import InputError, TfError

Record = dict[str, Any]

#: key under which every step records provenance and failures (DESIGN §3)
TF_KEY = "_tf"

#: tf-sample's system prompt (the Qwen2.5-Math CoT convention, DESIGN §4.1); tf-fuse writes
#: it into training samples whose trajectories do not say which prompt they were sampled with
DEFAULT_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."

#: tf-grade's verdicts, in the order reports list them
VERDICTS = ("correct", "incorrect", "no_answer", "truncated", "ungradable")

#: the kinds of a training sample's ``segments`` (tf-fuse writes them, tf-train masks them)
SEGMENT_KINDS = ("incorrect", "reflection", "correct")


def is_int(value: Any) -> bool:
    """A JSON integer: an ``int`` that is not a ``bool`` (``True`` is an int in Python)."""
    return isinstance(value, int) and not isinstance(value, bool)


def kind_of(rec: Record) -> str | None:
    """Which stage's output a record is, by the fields that stage writes (None: unknown)."""
    if "messages" in rec:
        return "samples"
    if "clusters" in rec and "n_correct" in rec:
        return "problems"
    if "verdict" in rec:
        return "graded"
    if "step" in rec and "loss" in rec:
        return "loss"
    if "loss_log" in rec:
        return "manifest"
    if "completion" in rec:
        return "trajectories"
    return None


def sample_order(rec: Record, pos: int = 0) -> tuple[int, Any, int]:
    """Sort key of one problem's samples: by ``sample_idx``, then by position ``pos``; samples
    without an integer ``sample_idx`` go last, in position order."""
    idx = rec.get("sample_idx")
    return (0, idx, pos) if is_int(idx) else (1, 0, pos)


def is_fusable(rec: Record) -> bool:
    """An incorrect sample with an answer that the teacher finished (not truncated)."""
    return (rec.get("verdict") == "incorrect" and rec.get("pred") is not None
            and rec.get("finish_reason", "stop") in ("stop", None))


# --------------------------------------------------------------------------- provenance


def provenance(rec: Record, step: str) -> dict[str, Any] | None:
    """``rec["_tf"][step]`` when it is there as an object, else None (records from elsewhere
    carry no ``_tf``, or something else under it)."""
    tf = rec.get(TF_KEY)
    value = tf.get(step) if isinstance(tf, dict) else None
    return value if isinstance(value, dict) else None


def set_provenance(rec: Record, step: str, value: Any) -> None:
    """Set ``rec["_tf"][step]``, keeping what earlier steps put under ``_tf``."""
    tf = rec.get(TF_KEY)
    if not isinstance(tf, dict):
        tf = rec[TF_KEY] = {}
    tf[step] = value


# --------------------------------------------------------------------------- _tf.error


def error_entry(step: str, message: str, *, type: str | None = None, where: str | None = None,
                file: str | None = None, line: int | None = None) -> dict[str, Any]:
    """The one shape of ``_tf.error``: ``step`` and ``message`` always; then, when known,
    ``type`` (the exception's class), ``where`` (``"line 17 of f.jsonl"``, for a record), or
    ``file`` and ``line`` (for a line that could not be read as a record)."""
    extra = {"type": type, "where": where, "file": file, "line": line}
    return {"step": step, "message": message, **{k: v for k, v in extra.items() if v is not None}}


def mark_failed(rec: Record, step: str, message: str, **context: Any) -> Record:
    """Mark a record as failed by ``step`` (``context``: see ``error_entry``); it is passed
    on, not dropped."""
    tf = rec.setdefault(TF_KEY, {})
    if not isinstance(tf, dict):
        rec[TF_KEY] = tf = {}
    tf["error"] = error_entry(step, message, **context)
    return rec


def failed_line(text: str, step: str, message: str, file: str, line: int) -> Record:
    """The record that stands in for an unreadable line under ``--keep-going``."""
    return {"_raw": text, TF_KEY: {"error": error_entry(step, message, file=file, line=line)}}


def is_failed(rec: Record) -> bool:
    # a null error is none: a row read back from Parquet, whose one schema gives every row
    # the keys any row has, carries _tf.error = null when another row failed
    tf = rec.get(TF_KEY)
    return isinstance(tf, dict) and tf.get("error") is not None


def failed_by(rec: Record, step: str) -> bool:
    """Marked failed by ``step`` itself (its reader or ``record_failed``), not upstream."""
    error = rec[TF_KEY]["error"] if is_failed(rec) else None
    return isinstance(error, dict) and error.get("step") == step


def error_where(error: dict[str, Any]) -> str:
    """Where a failed record was, from its ``_tf.error`` (``""`` when it does not say)."""
    if error.get("where"):
        return str(error["where"])
    return f"line {error['line']} of {error['file']}" if "line" in error else ""


# --------------------------------------------------------------------------- --keep-going

#: the hint under a record's error when the error brings none of its own
KEEP_GOING_HINT = "--keep-going marks the record (_tf.error) and goes on; -vv shows the traceback"
_MAX_MESSAGE = 500  # an exception's message may quote a 200,000-character answer


def record_failed(rec: Record, step: str, exc: BaseException, *, keep_going: bool,
                  where: Callable[[], str] | str | None = None) -> Record:
    """The one way to deal with an exception raised while processing one record.

    Without ``keep_going``: raise an ``InputError`` naming the file and line (``where``) in
    one line plus a hint; an unexpected exception stays chained to it for ``-vv``. With
    ``keep_going``: mark ``rec`` failed (``_tf.error`` = step, message, type, where) and
    return it, so the caller passes it on and the run exits 3 at the end. Errors that are
    not about the record (a usage error, a missing dependency, an interrupt) go on up as
    they are.
    """
    if isinstance(exc, TfError) and not isinstance(exc, InputError):
        raise exc
    at = where() if callable(where) else where
    if isinstance(exc, InputError):
        message, hint, cause = exc.bare_message, exc.hint, None
    else:
        text = str(exc)
        if len(text) > _MAX_MESSAGE:
            text = text[:_MAX_MESSAGE] + "..."
        message, hint, cause = f"{type(exc).__name__}: {text}", None, exc
    if not keep_going:
        what = message if cause is None else f"cannot {step} this record: {message}"
        raise InputError(what, at, hint or KEEP_GOING_HINT) from cause
    return mark_failed(rec, step, message, type=type(exc).__name__, where=at or None)


def guarded(rec: Record, step: str, work: Callable[[], Any], *, keep_going: bool,
            where: Callable[[], str] | str | None = None) -> tuple[Any, Record | None]:
    """``(work(), None)``, or when ``work`` raises, ``(None, rec)`` marked failed through
    ``record_failed`` (which raises instead without ``keep_going``)."""
    try:
        return work(), None
    except Exception as exc:  # noqa: BLE001 - record_failed tells what stops the run
        return None, record_failed(rec, step, exc, keep_going=keep_going, where=where)
