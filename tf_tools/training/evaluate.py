"""Validation for tf-train: the held-out samples and their loss.

- ``split(samples, share)``: ``--eval-share`` holds out the samples whose id hashes below the
  share (``records.shard_of``: the same split on every machine and run, and every sample of
  a problem — tf-fuse gives them one id — on the same side, so no problem leaks).
- ``load_eval_file``: ``--eval-file`` read and tokenised like the training data (too long or
  empty samples are skipped and counted).
- ``EvalLoss``: the mean cross-entropy per trained token over the whole evaluation set, in
  eval mode without gradients; the micro-batches are dealt round-robin to the processes,
  each process runs the same number of forward passes (FSDP and ZeRO-3 gather weights in
  every forward, so a process with fewer would hang the others) and two numbers are summed
  over processes.

It does not generate or grade (evaluate a trained model with tf-sample | tf-grade), and does
not stop early on the evaluation loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tf_tools.records import JsonlReader
from tf_tools.records.shards import shard_of
from tf_tools.training.batches import collate
from tf_tools.training.data import DataConfig, Sample, load_samples
from tf_tools.training.loss import forward_losses

_BUCKETS = 1_000_000


def _key(s: Sample) -> Any:
    return s.id if s.id is not None else s.input_ids.tobytes().hex()


def split(samples: Sequence[Sample], share: float) -> tuple[list[Sample], list[Sample]]:
    """(train, held out): a sample is held out when its id hashes below ``share``."""
    cut = round(share * _BUCKETS)
    train: list[Sample] = []
    held: list[Sample] = []
    for s in samples:
        (held if shard_of(_key(s), _BUCKETS) < cut else train).append(s)
    return train, held


def load_eval_file(path: str, tokenizer: Any, cfg: DataConfig, keep_going: bool) -> tuple[list[Sample], int]:
    """The samples of ``--eval-file`` and how many were skipped (too long, empty, bad)."""
    reader = JsonlReader([path], keep_going=keep_going, step="train")
    samples, stats = load_samples(reader, tokenizer, cfg, reader.where, keep_going)
    return samples, stats.skipped


class EvalLoss:
    """Callable: the evaluation set's mean loss per trained token (all processes agree)."""

    def __init__(self, samples: Sequence[Sample], accelerator: Any, model: Any, pad_id: int,
                 micro_batch_size: int, packing: bool, capacity: int, attn: str,
                 keep_logits: bool) -> None:
        self.samples, self.accelerator, self.model = list(samples), accelerator, model
        self.pad_id, self.packing, self.capacity, self.attn = pad_id, packing, capacity, attn
        self.keep_logits = keep_logits
        order = sorted(range(len(self.samples)), key=lambda i: len(self.samples[i]))
        self.micro = [order[i:i + micro_batch_size] for i in range(0, len(order), micro_batch_size)]

    def __len__(self) -> int:
        return len(self.samples)

    def __call__(self) -> float:
        import torch

        acc = self.accelerator
        world, rank = acc.num_processes, acc.process_index
        rounds = -(-len(self.micro) // world)
        sums = torch.zeros(2, dtype=torch.float64, device=acc.device)
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                for r in range(rounds):
                    i = r * world + rank
                    real = i < len(self.micro)
                    # a process without a micro-batch this round repeats the first one and
                    # counts nothing: every process runs the same forwards
                    chunk = [self.samples[j] for j in self.micro[i if real else 0]]
                    batch = collate(chunk, self.pad_id, self.packing, self.capacity,
                                    self.attn).to(acc.device)
                    losses, _owner = forward_losses(self.model, batch, self.keep_logits)
                    if real:
                        sums[0] += losses.sum().double()
                        sums[1] += losses.numel()
        finally:
            self.model.train(was_training)
        total = acc.reduce(sums, "sum")
        return float(total[0] / total[1]) if float(total[1]) else float("nan")
