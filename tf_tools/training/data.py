"""Chat records to tokenised training samples: validation, chat-template tokenisation, loss masks.

- ``check_record``: the record's ``messages`` and ``segments``, or an ``InputError`` saying
  what is wrong with them.
- ``tokenize_record``: render ``messages`` with the student's chat template, tokenise once
  with the offset mapping, and mark as trained the characters of every assistant message
  plus its end-of-turn token (a model that never learns to stop is a known failure of other
  trainers); the prompt, system message and template scaffolding stay at -100. ``segments``
  (character offsets into the last assistant message, DESIGN §3) map onto tokens through the
  offset mapping, so ``mask_incorrect`` / ``mask_reflection`` can take segments out of the
  loss. A token belongs to the span that holds its first character.
- ``load_samples``: tokenise every record, skip the ones that cannot train (too long, bad,
  nothing trained left) and count kept and skipped samples by kind (fused / rft / other)
  and k, so a caller can say which samples were lost. A bad record is any exception raised
  while tokenising it (a check below, the chat template, the tokenizer): it goes through
  ``schema.record_failed``, which stops with its file and line or, with ``keep_going``,
  lets it be skipped and counted; ``report_skips`` warns about what was skipped.
  ``fingerprint``: a hash of what training sees.

It does not load the tokenizer (the caller passes one), does not cut long samples (they
are reported and skipped), does not batch (``batches.py``) and does not touch the model
(``loss.py``). It needs numpy only, not torch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tf_tools import console
from tf_tools.errors import InputError
from tf_tools.schema import SEGMENT_KINDS, TF_KEY, failed_by, is_int, record_failed

SAMPLE_KINDS = ("fused", "rft")  # tf-fuse's ``kind``; anything else counts as "other"
STEP = "train"  # _tf.error.step of the records tf-train could not use


@dataclass(frozen=True)
class DataConfig:
    max_length: int = 4096
    mask_incorrect: bool = False
    mask_reflection: bool = False
    messages_key: str = "messages"
    segments_key: str = "segments"


@dataclass
class Sample:
    """One tokenised training sample. ``trained[t]``: token t is a target of the loss."""

    input_ids: np.ndarray  # int32, (n,)
    trained: np.ndarray  # bool, (n,); never true at position 0 (nothing predicts it)
    id: Any = None
    where: str = ""
    answer_tokens: int = 0  # the longest assistant turn, its end-of-turn token included

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def n_trained(self) -> int:
        return int(self.trained.sum())


# --------------------------------------------------------------------------- validation


def check_record(rec: dict[str, Any], cfg: DataConfig) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    """The record's messages and segments, or an ``InputError`` saying what is wrong."""
    messages = rec.get(cfg.messages_key)
    if messages is None:
        raise InputError(f"record has no '{cfg.messages_key}' field",
                         hint="tf-train reads chat records: {\"messages\": [{\"role\": \"user\", ...}, "
                              "{\"role\": \"assistant\", ...}]} (what tf-fuse writes)")
    if not isinstance(messages, list) or not messages:
        raise InputError(f"'{cfg.messages_key}' must be a non-empty list of {{role, content}} objects")
    for i, m in enumerate(messages):
        if not (isinstance(m, dict) and isinstance(m.get("role"), str)
                and isinstance(m.get("content"), str)):
            raise InputError(f"message {i} is not a {{\"role\": str, \"content\": str}} object")
    if not any(m["role"] == "assistant" for m in messages):
        raise InputError("conversation has no assistant turn: nothing to train on")
    segments = rec.get(cfg.segments_key) or []
    if not isinstance(segments, list):
        raise InputError(f"'{cfg.segments_key}' must be a list of {{kind, start, end}} objects")
    last = next(m for m in reversed(messages) if m["role"] == "assistant")["content"]
    for s in segments:
        if not (isinstance(s, dict) and is_int(s.get("start")) and is_int(s.get("end"))):
            raise InputError(f"segment {s!r} is not a {{kind, start, end}} object with integer offsets")
        if s.get("kind") not in SEGMENT_KINDS:
            raise InputError(f"segment kind {s.get('kind')!r} is not one of {', '.join(SEGMENT_KINDS)}")
        if not 0 <= s["start"] <= s["end"] <= len(last):
            raise InputError(
                f"segment {s['kind']} [{s['start']}, {s['end']}) falls outside the assistant "
                f"message ({len(last)} characters)")
    return messages, segments


# --------------------------------------------------------------------------- tokenisation


def _locate(text: str, content: str, start: int) -> tuple[int, int, int]:
    """Where ``content`` sits in ``text`` at or after ``start``: (offset, lead, length).

    Templates that trim the content shift it: ``lead`` is how many leading characters of
    ``content`` the template dropped and ``length`` how many characters it kept.
    """
    at = text.find(content, start)
    if at >= 0:
        return at, 0, len(content)
    stripped = content.strip()
    at = text.find(stripped, start)
    if at < 0:  # the template may do so for some conversations only: a bad record
        raise InputError("the chat template changes the assistant text (cannot find it in the "
                         "rendered conversation); tf-train cannot place the loss mask",
                         hint="use a template that writes message['content'] unchanged")
    return at, len(content) - len(content.lstrip()), len(stripped)


def _end_of_turn(text: str, after: int, limit: int, eos: str | None) -> int:
    """End (exclusive) of the assistant turn's end-of-turn marker, searched in text[after:limit].

    The eos token when the template writes it (``<|im_end|>``), else the template's suffix
    without trailing whitespace (a marker such as ``<end_of_turn>``).
    """
    suffix = text[after:limit]
    if eos and eos in suffix:
        return after + suffix.index(eos) + len(eos)
    return after + len(suffix.rstrip())


def tokenize_record(rec: dict[str, Any], tokenizer: Any, cfg: DataConfig,
                    where: str = "") -> Sample:
    """Tokenise one record through the chat template; see the module docstring."""
    messages, segments = check_record(rec, cfg)
    try:
        text = tokenizer.apply_chat_template(messages, tokenize=False)
    except Exception as exc:  # jinja errors of all kinds: the template rejected the record
        raise InputError(f"the chat template rejected the conversation: {exc}") from None
    spans: list[tuple[int, int]] = []  # trained character spans in ``text``
    masked: list[tuple[int, int]] = []  # character spans taken out of the loss
    cursor = 0
    last_assistant = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        # the text before this turn is its prompt: render it to skip past it
        prefix = tokenizer.apply_chat_template(messages[:i], tokenize=False,
                                               add_generation_prompt=True) if i else ""
        start = len(prefix) if text.startswith(prefix) else cursor
        at, lead, length = _locate(text, m["content"], max(start, cursor))
        end = at + length
        nxt = len(text)
        if i + 1 < len(messages):
            nxt_prefix = tokenizer.apply_chat_template(messages[: i + 1], tokenize=False)
            nxt = len(nxt_prefix) if text.startswith(nxt_prefix) else nxt
        stop = _end_of_turn(text, end, nxt, tokenizer.eos_token)
        spans.append((at, stop))
        cursor = stop
        if i == last_assistant:
            for s in segments:
                if (s["kind"] == "incorrect" and cfg.mask_incorrect) or (
                        s["kind"] == "reflection" and cfg.mask_reflection):
                    masked.append((at + s["start"] - lead, at + s["end"] - lead))
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = np.asarray(enc["input_ids"], dtype=np.int32)
    starts = np.asarray([a for a, _b in enc["offset_mapping"]], dtype=np.int64)
    trained = np.zeros(len(ids), dtype=bool)
    answer_tokens = 0
    for a, b in spans:
        turn = (starts >= a) & (starts < b)
        trained |= turn
        answer_tokens = max(answer_tokens, int(turn.sum()))
    for a, b in masked:
        trained &= ~((starts >= a) & (starts < b))
    if len(trained):
        trained[0] = False
    return Sample(ids, trained, rec.get("id"), where, answer_tokens)


def kind_and_k(rec: Any) -> tuple[str, str]:
    """What a sample is counted under: its kind (fused / rft / other) and its k ("none" if
    the record has none, as datasets from elsewhere)."""
    kind = rec.get("kind") if isinstance(rec, dict) else None
    k = rec.get("k") if isinstance(rec, dict) else None
    return (kind if kind in SAMPLE_KINDS else "other",
            str(k) if is_int(k) else "none")


def _count(table: dict[str, dict[str, int]], rec: Any) -> None:
    kind, k = kind_and_k(rec)
    by_k = table.setdefault(kind, {})
    by_k[k] = by_k.get(k, 0) + 1


def by_kind_and_k(table: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """``table`` in a stable order: fused, rft, other; k ascending, "none" last."""
    kinds = [*SAMPLE_KINDS, "other"]

    def k_order(k: str) -> tuple[int, int]:
        return (0, int(k)) if k.isdigit() else (1, 0)

    return {kind: {k: table[kind][k] for k in sorted(table[kind], key=k_order)}
            for kind in sorted(table, key=kinds.index)}


@dataclass
class LoadStats:
    read: int = 0
    kept: int = 0
    too_long: int = 0  # over max_length tokens
    bad: int = 0  # invalid records (only with keep_going; otherwise they stop the load)
    empty: int = 0  # no trained token left after masking
    kept_by: dict[str, dict[str, int]] = field(default_factory=dict)  # kind -> k -> samples
    skipped_by: dict[str, dict[str, int]] = field(default_factory=dict)
    longest_answer_tokens: int = 0  # over the kept samples

    @property
    def skipped(self) -> int:
        return self.too_long + self.bad + self.empty

    @property
    def skipped_fraction(self) -> float:
        return self.skipped / self.read if self.read else 0.0


def load_samples(records: Iterable[dict[str, Any]], tokenizer: Any, cfg: DataConfig,
                 where: Callable[[], str] = lambda: "", keep_going: bool = False,
                 on_skip: Callable[[str], None] | None = None) -> tuple[list[Sample], LoadStats]:
    """Tokenise every record; skip (and report through ``on_skip``) the too-long ones and
    those with no trained token left.

    A bad record (any exception while tokenising it, or a line the reader could not parse
    under ``keep_going``: marked failed by step ``train``) stops with an ``InputError``
    naming its line, or with ``keep_going`` is reported and skipped
    (``schema.record_failed``). ``stats`` counts kept and skipped samples by kind and k.
    """
    samples: list[Sample] = []
    stats = LoadStats()
    for rec in records:
        stats.read += 1
        at = where()
        if not failed_by(rec, STEP):
            try:
                s = tokenize_record(rec, tokenizer, cfg, at)
            except Exception as exc:  # noqa: BLE001 - record_failed tells what stops the run
                rec = record_failed(rec, STEP, exc, keep_going=keep_going, where=at)
        if failed_by(rec, STEP):
            stats.bad += 1
            _count(stats.skipped_by, rec)
            if on_skip:
                on_skip(f"{at}: {rec[TF_KEY]['error']['message']} (skipped)")
            continue
        if len(s) > cfg.max_length:
            stats.too_long += 1
            _count(stats.skipped_by, rec)
            if on_skip:
                on_skip(f"{at}: {len(s)} tokens > --max-length {cfg.max_length} (id "
                        f"{s.id!r}): skipped, not cut")
            continue
        if s.n_trained == 0:
            stats.empty += 1
            _count(stats.skipped_by, rec)
            if on_skip:
                on_skip(f"{at}: no trained token left after masking (id {s.id!r}): skipped")
            continue
        samples.append(s)
        _count(stats.kept_by, rec)
        stats.longest_answer_tokens = max(stats.longest_answer_tokens, s.answer_tokens)
    stats.kept = len(samples)
    return samples, stats


#: more than this share of the samples read skipped: a warning with what to do
SKIP_WARN_FRACTION = 0.01


def _describe(table: dict[str, dict[str, int]]) -> str:
    """``fused k=3: 2, k=2: 1; rft k=0: 1``."""
    return "; ".join(f"{kind} " + ", ".join(f"k={k}: {n}" for k, n in by_k.items())
                     for kind, by_k in by_kind_and_k(table).items())


def report_skips(skipped: list[str], stats: LoadStats, max_length: int) -> None:
    """Warn about the skipped samples: the first lines of ``skipped``, then the counts by
    reason, kind and k, and what to do when more than ``SKIP_WARN_FRACTION`` were lost."""
    for line in skipped[:10]:
        console.warn(line)
    if len(skipped) > 10:
        console.warn(f"... and {len(skipped) - 10} more")
    if not stats.skipped:
        return
    why = [f"{n} {what}" for n, what in (
        (stats.too_long, f"longer than --max-length {max_length} tokens (never cut)"),
        (stats.bad, "bad"), (stats.empty, "with no trained token left")) if n]
    share = stats.skipped_fraction
    console.warn(f"skipped {stats.skipped} of {stats.read} samples "
                 f"({f'{100 * share:.1f}%' if share >= 0.001 else '<0.1%'}): {', '.join(why)}; "
                 "by kind and k: "
                 f"{_describe(stats.skipped_by)}")
    if share > SKIP_WARN_FRACTION:
        console.warn(f"more than {SKIP_WARN_FRACTION:.0%} of the training samples are skipped: "
                     "the student does not train on the data it was given")
        hint = ("pass the training length to tf-fuse --max-tokens so wrong segments are trimmed "
                "instead of whole samples dropped, or raise --max-length") if stats.too_long else (
                "see the lines above for the records skipped and why")
        console.log.warning("hint: %s", hint)



def fingerprint(samples: Sequence[Sample]) -> str:
    """A hash of what training sees (ids and loss masks): data, tokenizer and masking flags."""
    h = hashlib.blake2b(digest_size=12)
    for s in samples:
        h.update(len(s).to_bytes(4, "little"))
        h.update(s.input_ids.tobytes())
        h.update(np.packbits(s.trained).tobytes())
    return h.hexdigest()
