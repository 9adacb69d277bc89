"""One optimizer step of tf-train, and the clock of --save-minutes.

``OptimizerStep``: a planned global batch (``batches.plan_epoch``) run as this process's
micro-batches forward (``loss.forward_losses``) and backward, clipped, AdamW and the cosine
schedule stepped. Its loss is the mean over every trained token of the global batch, so
padding, packing, the micro-batch size and the number of processes change how a step is
computed, not what it computes.

``SaveClock``: when --save-minutes asks for a checkpoint, agreed by every process.

It does not plan batches, log or checkpoint (``loop.py``).
"""

from __future__ import annotations

import time
from typing import Any

from tf_tools.training.batches import collate, rank_share
from tf_tools.training.config import TrainConfig
from tf_tools.training.data import Sample
from tf_tools.training.loss import forward_losses
from tf_tools.training.setup import Prepared


class OptimizerStep:
    """One optimizer step over a planned global batch (this process's micro-batches)."""

    def __init__(self, cfg: TrainConfig, prepared: Prepared, samples: list[Sample], pad_id: int,
                 rank: int, world: int) -> None:
        self.cfg, self.samples, self.pad_id = cfg, samples, pad_id
        self.accelerator, self.model = prepared.accelerator, prepared.model
        self.optimizer, self.scheduler = prepared.optimizer, prepared.scheduler
        self.capacity = cfg.pack_length or cfg.max_length
        self.attn, self.rank, self.world = prepared.step_attn, rank, world
        self.keep_logits = prepared.keep_logits

    def __call__(self, planned: list[list[int]]) -> tuple[float, float, float | None, dict[str, int]]:
        """(loss, lr, grad norm, {tokens, trained_tokens, slots}) of the step, all processes."""
        import torch

        acc = self.accelerator
        batch_samples = [self.samples[i] for micro in planned for i in micro]
        n_trained = sum(s.n_trained for s in batch_samples)
        n_tokens = sum(len(s) for s in batch_samples)
        # every trained token of the global batch weighs the same: backward() divides by the
        # accumulation steps and DDP/FSDP/DeepSpeed average over processes, so scale back up
        scale = self.world * acc.gradient_accumulation_steps / n_trained
        loss_sum = torch.zeros((), dtype=torch.float64, device=acc.device)
        slots = 0
        for micro in rank_share(planned, self.rank, self.world):
            batch = collate([self.samples[i] for i in micro], self.pad_id, self.cfg.packing,
                            self.capacity, self.attn).to(acc.device)
            slots += batch.n_slots
            with acc.accumulate(self.model):
                losses, _owner = forward_losses(self.model, batch, self.keep_logits)
                total = losses.sum()
                acc.backward(total * scale)
                loss_sum += total.detach().double()
        grad_norm = None
        if self.cfg.max_grad_norm > 0:
            norm = acc.clip_grad_norm_(self.model.parameters(), self.cfg.max_grad_norm)
            grad_norm = float(norm) if norm is not None else None
        lr = float(self.scheduler.get_last_lr()[0])
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        totals = acc.reduce(torch.stack([loss_sum, torch.tensor(float(slots), dtype=torch.float64,
                                                                device=acc.device)]), "sum")
        counts = {"tokens": n_tokens, "trained_tokens": n_trained, "slots": int(totals[1])}
        return float(totals[0]) / n_trained, lr, grad_norm, counts


class SaveClock:
    """--save-minutes: due when that much time has passed since the last checkpoint on the
    main process's clock; every process learns it through one all-reduce (the processes'
    clocks may disagree, and a checkpoint needs all of them)."""

    def __init__(self, accelerator: Any, minutes: float | None) -> None:
        self.accelerator, self.seconds = accelerator, (minutes or 0) * 60
        self.since = time.monotonic()

    def due(self) -> bool:
        if not self.seconds:
            return False
        import torch

        mine = self.accelerator.is_main_process and time.monotonic() - self.since >= self.seconds
        flag = torch.tensor([1.0 if mine else 0.0], device=self.accelerator.device)
        if float(self.accelerator.reduce(flag, "sum")[0]) > 0:
            self.since = time.monotonic()
            return True
        return False
