"""Tokenised samples to batches: the epoch plan, padded rows and packed rows.

- ``plan_epoch``: length-grouped global batches, each split into the same number of
  micro-batches for every process (the plan does not depend on the world size, so one
  process and eight see the same samples in the same optimizer steps); ``rank_share``: the
  micro-batches of one process.
- ``pad_batch`` / ``pack_batch``: a micro-batch as padded rows, or packed rows whose samples
  cannot see each other. Under tf-train's per-sample sdpa (``attention.py``) the whole
  micro-batch is one unpadded row with ``cu_seq_lens``; otherwise position ids restart per
  sample *and* an explicit 4D block-diagonal causal mask isolates them (position ids alone
  do not under sdpa or eager, DESIGN §6); flash-attention gets position ids only (its
  varlen path). ``collate`` picks one of the two.

It does not tokenise (``data.py``), does not run the model (``loss.py``) and never cuts or
drops a sample. torch is imported inside the functions that build tensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tf_tools.errors import TfError
from tf_tools.training.data import Sample

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
    ids, labels, pos, index, seq = _lay_out(samples, rows, pad_id)
    if varlen:
        lengths = [len(s) for s in samples]
        cu = torch.from_numpy(np.cumsum([0, *lengths]).astype(np.int32))
        return Batch(torch.from_numpy(ids), torch.from_numpy(labels), None, torch.from_numpy(pos),
                     torch.from_numpy(index), sum(lengths), ids.size, cu, max(lengths))
    flash = "flash" in attn_implementation
    mask = None if flash else _block_mask(seq, attn_implementation)
    return Batch(torch.from_numpy(ids), torch.from_numpy(labels), mask, torch.from_numpy(pos),
                 torch.from_numpy(index), sum(len(s) for s in samples), ids.size)


def _lay_out(samples: Sequence[Sample], rows: list[list[int]],
             pad_id: int) -> tuple[np.ndarray, ...]:
    """The samples laid out back to back in their rows: ids, labels, position ids (restarting
    per sample, running on through the padding), sample index (-1 pad) and block id within
    the row (-1 pad)."""
    width = max(sum(len(samples[i]) for i in row) for row in rows)
    n_rows = len(rows)
    ids = np.full((n_rows, width), pad_id, dtype=np.int64)
    labels = np.full((n_rows, width), -100, dtype=np.int64)
    pos = np.zeros((n_rows, width), dtype=np.int64)
    index = np.full((n_rows, width), -1, dtype=np.int64)
    seq = np.full((n_rows, width), -1, dtype=np.int64)
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
    return ids, labels, pos, index, seq


def _block_mask(seq: np.ndarray, attn_implementation: str) -> Any:
    """(rows, 1, width, width): causal within a block, nothing across blocks, padding to itself
    only; bool, or additive float for eager."""
    import torch

    width = seq.shape[1]
    seq_t = torch.from_numpy(seq)
    same = seq_t[:, :, None] == seq_t[:, None, :]
    causal = torch.ones(width, width, dtype=torch.bool).tril()
    real = (seq_t >= 0)[:, :, None]
    diag = torch.eye(width, dtype=torch.bool)
    mask = ((same & causal & real) | (diag & ~real))[:, None]
    if attn_implementation == "eager":
        mask = torch.zeros(mask.shape, dtype=torch.float32).masked_fill(
            ~mask, torch.finfo(torch.float32).min)
    return mask


def collate(samples: Sequence[Sample], pad_id: int, packing: bool, capacity: int,
            attn_implementation: str = "sdpa") -> Batch:
    if packing:
        return pack_batch(samples, pad_id, capacity, attn_implementation)
    return pad_batch(samples, pad_id)
