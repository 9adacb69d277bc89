"""Training samples to tensors: chat-template tokenisation, loss masks, batching, packing.

- ``tokenize_record``: render ``messages`` with the student's chat template, tokenise once
  with the offset mapping, and mark as trained the characters of every assistant message
  plus its end-of-turn token (a model that never learns to stop is a known failure of other
  trainers); the prompt, system message and template scaffolding stay at -100. ``segments``
  (character offsets into the last assistant message, DESIGN §3) map onto tokens through the
  offset mapping, so ``mask_incorrect`` / ``mask_reflection`` can take segments out of the
  loss. A token belongs to the span that holds its first character.
- ``plan_epoch``: length-grouped global batches, each split into the same number of
  micro-batches for every process (the plan does not depend on the world size, so one
  process and eight see the same samples in the same optimizer steps).
- ``pad_batch`` / ``pack_batch``: a micro-batch as padded rows, or packed rows whose samples
  cannot see each other. Under tf-train's per-sample sdpa (``attention.py``) the whole
  micro-batch is one unpadded row with ``cu_seq_lens``; otherwise position ids restart per
  sample *and* an explicit 4D block-diagonal causal mask isolates them (position ids alone
  do not under sdpa or eager, DESIGN §6); flash-attention gets position ids only (its
  varlen path).

- ``load_samples``: tokenise every record, skip the ones that cannot train (too long, bad,
  nothing trained left) and count kept and skipped samples by kind (fused / rft / other)
  and k, so a caller can say which samples were lost. A bad record is any exception raised
  while tokenising it (a check below, the chat template, the tokenizer): it goes through
  ``records.record_failed``, which stops with its file and line or, with ``keep_going``,
  lets it be skipped and counted.

It does not cut long samples (they are reported and skipped by the caller) and does not
touch the model. torch is imported inside the functions that build tensors.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tf_tools.errors import InputError, TfError
from tf_tools.records import TF_KEY, is_failed, record_failed

SEGMENT_KINDS = ("incorrect", "reflection", "correct")
ROLES_PROMPT = ("system", "user", "tool", "developer")
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
        if not (isinstance(s, dict) and isinstance(s.get("start"), int)
                and isinstance(s.get("end"), int) and not isinstance(s.get("start"), bool)):
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
            str(k) if isinstance(k, int) and not isinstance(k, bool) else "none")


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


def _failed_here(rec: Any) -> bool:
    """Marked failed by tf-train (its reader, or ``record_failed`` below), not upstream."""
    return is_failed(rec) and rec[TF_KEY]["error"].get("step") == STEP


def load_samples(records: Iterable[dict[str, Any]], tokenizer: Any, cfg: DataConfig,
                 where: Callable[[], str] = lambda: "", keep_going: bool = False,
                 on_skip: Callable[[str], None] | None = None) -> tuple[list[Sample], LoadStats]:
    """Tokenise every record; skip (and report through ``on_skip``) the too-long ones and
    those with no trained token left.

    A bad record (any exception while tokenising it, or a line the reader could not parse
    under ``keep_going``: marked failed by step ``train``) stops with an ``InputError``
    naming its line, or with ``keep_going`` is reported and skipped
    (``records.record_failed``). ``stats`` counts kept and skipped samples by kind and k.
    """
    samples: list[Sample] = []
    stats = LoadStats()
    for rec in records:
        stats.read += 1
        at = where()
        if not _failed_here(rec):
            try:
                s = tokenize_record(rec, tokenizer, cfg, at)
            except Exception as exc:  # noqa: BLE001 - record_failed tells what stops the run
                rec = record_failed(rec, STEP, exc, keep_going=keep_going, where=at)
        if _failed_here(rec):
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


def fingerprint(samples: Sequence[Sample]) -> str:
    """A hash of what training sees (ids and loss masks): data, tokenizer and masking flags."""
    h = hashlib.blake2b(digest_size=12)
    for s in samples:
        h.update(len(s).to_bytes(4, "little"))
        h.update(s.input_ids.tobytes())
        h.update(np.packbits(s.trained).tobytes())
    return h.hexdigest()


# --------------------------------------------------------------------------- plan


def plan_epoch(lengths: Sequence[int], epoch: int, seed: int, global_batch: int,
               n_micro: int, group_by_length: bool = True,
               group_factor: int = 16) -> list[list[list[int]]]:
    """The optimizer steps of one epoch: steps -> ``n_micro`` micro-batches -> sample indices.

    A seeded shuffle; with ``group_by_length``, each run of ``group_factor`` global batches
    is sorted by length so a batch holds samples of similar length (little padding), and the
    batches are then shuffled. A remainder too small to give every micro-batch a sample
    joins the previous batch, so no sample is dropped. Inside a batch, samples are sorted by
    length and cut into ``n_micro`` near-equal consecutive micro-batches: micro-batches of
    similar lengths, and process r taking every world-th one gets about the same work as
    the others.
    """
    n = len(lengths)
    if n < n_micro:
        raise TfError(f"{n} training samples cannot fill the {n_micro} micro-batches of one "
                      "optimizer step", hint="lower --global-batch-size / --micro-batch-size")
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(n)
    lens = np.asarray(lengths)
    if group_by_length:
        mega = global_batch * group_factor
        order = np.concatenate([
            chunk[np.argsort(-lens[chunk], kind="stable")]
            for chunk in np.array_split(order, max(1, -(-n // mega)))
        ])
    batches = [order[i: i + global_batch] for i in range(0, n, global_batch)]
    if len(batches) > 1 and len(batches[-1]) < n_micro:
        batches[-2] = np.concatenate([batches[-2], batches.pop()])
    if group_by_length:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    steps = []
    for b in batches:
        b = b[np.argsort(-lens[b], kind="stable")]
        steps.append([chunk.tolist() for chunk in np.array_split(b, n_micro)])
    return steps


def rank_share(step: list[list[int]], rank: int, world: int) -> list[list[int]]:
    """The micro-batches of one process: every ``world``-th, so ranks get similar lengths."""
    return step[rank::world]


# --------------------------------------------------------------------------- collation


@dataclass
class Batch:
    input_ids: Any  # LongTensor (rows, width)
    labels: Any  # LongTensor (rows, width): the token at t is a target, else -100 (unshifted)
    attention_mask: Any  # (rows, width) 2D, (rows, 1, width, width) 4D, or None (flash)
    position_ids: Any  # LongTensor (rows, width) or None
    sample_index: Any  # LongTensor (rows, width): index into the micro-batch's samples, -1 pad
    n_tokens: int  # real (non-padding) tokens
    n_slots: int  # rows * width
    cu_seq_lens: Any = None  # CPU IntTensor (samples + 1,): where each sample of one row starts
    longest: int = 0  # the longest sample (with cu_seq_lens)

    def model_inputs(self) -> dict[str, Any]:
        out = {"input_ids": self.input_ids, "attention_mask": self.attention_mask}
        if self.position_ids is not None:
            out["position_ids"] = self.position_ids
        if self.cu_seq_lens is not None:  # transformers' kwarg names, read by attention.VARLEN
            out.update(cu_seq_lens_q=self.cu_seq_lens, cu_seq_lens_k=self.cu_seq_lens,
                       max_length_q=self.longest, max_length_k=self.longest)
        return out

    def to(self, device: Any) -> Batch:
        def move(t: Any) -> Any:
            return None if t is None else t.to(device, non_blocking=True)

        return Batch(move(self.input_ids), move(self.labels), move(self.attention_mask),
                     move(self.position_ids), move(self.sample_index), self.n_tokens,
                     self.n_slots, self.cu_seq_lens, self.longest)  # bounds: read on the CPU


def _labels(s: Sample) -> np.ndarray:
    return np.where(s.trained, s.input_ids, -100).astype(np.int64)


def pad_batch(samples: Sequence[Sample], pad_id: int) -> Batch:
    """One sample per row, right-padded to the longest; a 2D attention mask."""
    import torch

    width = max(len(s) for s in samples)
    ids = np.full((len(samples), width), pad_id, dtype=np.int64)
    labels = np.full((len(samples), width), -100, dtype=np.int64)
    index = np.full((len(samples), width), -1, dtype=np.int64)
    for r, s in enumerate(samples):
        ids[r, : len(s)] = s.input_ids
        labels[r, : len(s)] = _labels(s)
        index[r, : len(s)] = r
    return Batch(torch.from_numpy(ids), torch.from_numpy(labels),
                 torch.from_numpy(index >= 0).long(), None, torch.from_numpy(index),
                 sum(len(s) for s in samples), ids.size)


def _deal(order: list[int], lengths: Sequence[int], n_rows: int) -> tuple[list[list[int]], int]:
    """Longest first, each sample to the shortest row (LPT); the rows and the longest load."""
    rows: list[list[int]] = [[] for _ in range(n_rows)]
    loads = [0] * n_rows
    for i in order:
        r = min(range(n_rows), key=lambda r: (loads[r], r))
        rows[r].append(i)
        loads[r] += lengths[i]
    return rows, max(loads)


def pack_rows(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Sample indices per row, rows of at most ``capacity`` tokens, as few padded slots as can be.

    Rows are padded to the longest, so for each row count r from ceil(total / capacity) up
    to one sample per row (the padded layout), deal the samples over r rows (LPT) and keep
    the r with the fewest slots (r x longest row): packing never pads more than padding.
    """
    n = len(lengths)
    order = sorted(range(n), key=lambda i: -lengths[i])
    best: tuple[int, list[list[int]]] | None = None
    for n_rows in range(max(1, -(-sum(lengths) // capacity)), n + 1):
        rows, longest = _deal(order, lengths, n_rows)
        if longest <= capacity and (best is None or n_rows * longest < best[0]):
            best = (n_rows * longest, rows)
    if best is None:  # a sample longer than the capacity: one per row
        return [[i] for i in order]
    return [row for row in best[1] if row]


def pack_batch(samples: Sequence[Sample], pad_id: int, capacity: int,
               attn_implementation: str = "sdpa") -> Batch:
    """Several samples per row (``pack_rows``); no token attends across samples.

    ``attention.VARLEN`` (tf-train's packing under sdpa): every sample in one row, nothing
    padded, no mask, ``cu_seq_lens`` (sample starts; kept on the CPU, where the attention
    function reads them). Others: rows of at most ``capacity`` tokens; sdpa/eager/others get a
    4D block-diagonal causal mask (bool for sdpa, additive float for eager), plus restarting
    position ids; flash-attention: restarting position ids only, which transformers turns
    into its varlen path. Padding tokens attend to themselves only (a row with nothing to
    attend to would give NaNs). When no row is shared, the micro-batch goes out as padded
    rows with a 2D mask (sdpa's causal kernels are faster than a 4D mask).
    """
    import torch

    from tf_tools.training.attention import VARLEN

    varlen = attn_implementation == VARLEN
    if varlen:
        rows = [list(range(len(samples)))]
    else:
        rows = pack_rows([len(s) for s in samples], capacity)
        if all(len(row) == 1 for row in rows):
            return pad_batch(samples, pad_id)  # nothing shares a row: no 4D mask needed
    width = max(sum(len(samples[i]) for i in row) for row in rows)
    n_rows = len(rows)
    ids = np.full((n_rows, width), pad_id, dtype=np.int64)
    labels = np.full((n_rows, width), -100, dtype=np.int64)
    pos = np.zeros((n_rows, width), dtype=np.int64)
    index = np.full((n_rows, width), -1, dtype=np.int64)
    seq = np.full((n_rows, width), -1, dtype=np.int64)  # block id within the row
    for r, row in enumerate(rows):
        at = 0
        for b, i in enumerate(row):
            s = samples[i]
            n = len(s)
            ids[r, at: at + n] = s.input_ids
            labels[r, at: at + n] = _labels(s)
            pos[r, at: at + n] = np.arange(n)
            index[r, at: at + n] = i
            seq[r, at: at + n] = b
            at += n
        pos[r, at:] = np.arange(width - at)
    if varlen:
        lengths = [len(s) for s in samples]
        cu = torch.from_numpy(np.cumsum([0, *lengths]).astype(np.int32))
        return Batch(torch.from_numpy(ids), torch.from_numpy(labels), None, torch.from_numpy(pos),
                     torch.from_numpy(index), sum(lengths), ids.size, cu, max(lengths))
    flash = "flash" in attn_implementation
    mask: Any = None
    if not flash:
        seq_t = torch.from_numpy(seq)
        same = seq_t[:, :, None] == seq_t[:, None, :]
        causal = torch.ones(width, width, dtype=torch.bool).tril()
        real = (seq_t >= 0)[:, :, None]
        diag = torch.eye(width, dtype=torch.bool)
        mask = ((same & causal & real) | (diag & ~real))[:, None]
        if attn_implementation == "eager":
            mask = torch.zeros(mask.shape, dtype=torch.float32).masked_fill(
                ~mask, torch.finfo(torch.float32).min)
    return Batch(torch.from_numpy(ids), torch.from_numpy(labels), mask, torch.from_numpy(pos),
                 torch.from_numpy(index), sum(len(s) for s in samples), ids.size)


def collate(samples: Sequence[Sample], pad_id: int, packing: bool, capacity: int,
            attn_implementation: str = "sdpa") -> Batch:
    if packing:
        return pack_batch(samples, pad_id, capacity, attn_implementation)
    return pad_batch(samples, pad_id)


# --------------------------------------------------------------------------- loss


def supports_logits_to_keep(model: Any) -> bool:
    """Whether the model's forward takes ``logits_to_keep`` (transformers' causal LMs do)."""
    import inspect

    try:
        return "logits_to_keep" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def forward_losses(model: Any, batch: Batch, keep_logits: bool = True) -> tuple[Any, Any]:
    """Per-target cross-entropy (float32) and the micro-batch sample each target belongs to.

    The logit at position t predicts the token at t + 1; a packed sample's first token is
    never a target (its label is -100), so no loss crosses a sample boundary. With
    ``keep_logits`` the LM head runs only at positions whose next token is a target in some
    row (``logits_to_keep``): prompt and padding positions cost no vocabulary projection,
    which is a fifth of a small model's work.
    """
    import torch.nn.functional as F

    targets_all = batch.labels[:, 1:]
    if keep_logits:
        positions = (targets_all != -100).any(0).nonzero().squeeze(1)
        out = model(**batch.model_inputs(), use_cache=False, logits_to_keep=positions)
        logits = out.logits
        targets = targets_all[:, positions]
        owner = batch.sample_index[:, 1:][:, positions]
    else:
        out = model(**batch.model_inputs(), use_cache=False)
        logits = out.logits[:, :-1]
        targets, owner = targets_all, batch.sample_index[:, 1:]
    keep = targets != -100
    if bool(keep.all()):  # one packed row: every kept position is a target; no copy
        return (F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction="none"),
                owner.flatten())
    losses = F.cross_entropy(logits[keep].float(), targets[keep], reduction="none")
    return losses, owner[keep]


def per_sample_losses(model: Any, batch: Batch, n_samples: int) -> Any:
    """Mean loss of each sample of a micro-batch (index order of the micro-batch)."""
    import torch

    losses, owner = forward_losses(model, batch, supports_logits_to_keep(model))
    total = torch.zeros(n_samples, dtype=torch.float64, device=losses.device)
    count = torch.zeros(n_samples, dtype=torch.float64, device=losses.device)
    total.index_add_(0, owner, losses.double())
    count.index_add_(0, owner, torch.ones_like(losses, dtype=torch.float64))
    return total / count.clamp_min(1)
