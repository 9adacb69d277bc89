"""The model's loss on a batch: per-target cross-entropy, and per sample.

``forward_losses`` runs the model forward on a ``Batch`` (``batches.py``) and returns the
cross-entropy of every trained token with the sample it belongs to; ``per_sample_losses``
averages them per sample. It does not call backward, scale or reduce the loss, nor step
an optimizer (``loop.py`` does). torch is imported inside the functions.
"""

from __future__ import annotations

from typing import Any

from tf_tools.training.batches import Batch

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
