"""Packed training without a 4D mask: causal sdpa run on each sample of a packed row.

A packed row holds several samples back to back. Isolating them with a 4D block-diagonal
mask works with every attention implementation, but sdpa then computes attention over the
whole row (every query against every key, masked or not) and loses its causal kernel; on a
CPU that made packed rows dearer per token than padded ones. Flash-attention solves this
with its varlen path (``cu_seq_lens``: where each sample starts). This module gives sdpa the
same: an attention function, registered with transformers' ``AttentionInterface`` as
``VARLEN``, that cuts query, key and value at ``cu_seq_lens_q`` and runs transformers' own
sdpa forward with ``is_causal=True`` on each sample. Attention costs what the samples need
(sum of n_i^2 / 2, not row^2) and nothing is padded: a packed micro-batch is one row.

The model keeps every other part of its forward; ``cu_seq_lens_q`` / ``cu_seq_lens_k``
travel as keyword arguments from ``model(...)`` down to the attention layers (transformers'
``TransformersKwargs``, the names its flash-attention path reads too). The mask function
registered under the same name returns no mask: the sample boundaries are the mask.

``use_varlen(model)`` switches a model to it for training, ``use_sdpa(model)`` back (before
saving: the saved folder names plain sdpa). Models that do not route attention through
``AttentionInterface`` cannot switch; the caller then packs with a 4D mask.
"""

from __future__ import annotations

from typing import Any

from tf_tools.errors import UsageError

VARLEN = "tf_varlen_sdpa"


def _varlen_sdpa(module: Any, query: Any, key: Any, value: Any, attention_mask: Any,
                 dropout: float = 0.0, scaling: float | None = None, **kwargs: Any) -> tuple[Any, None]:
    """Causal sdpa on each sample: query/key/value (batch 1, heads, tokens, dim); output
    (1, tokens, heads, dim) as transformers' attention functions return it."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    cu = kwargs.get("cu_seq_lens_q")
    if cu is None or query.shape[0] != 1:
        raise UsageError(f"attention '{VARLEN}' needs one packed row and cu_seq_lens_q "
                         "(tf-train passes them; generation does not)")
    window = kwargs.get("sliding_window")
    bounds = cu.tolist()  # a CPU tensor (Batch.to leaves it there): no device sync per layer
    if window and max(b - a for a, b in zip(bounds[:-1], bounds[1:], strict=False)) > window:
        raise UsageError(f"a packed sample is longer than the model's sliding window ({window})",
                         hint="train with --attn-implementation eager (4D masks) or without --packing")
    outs = []
    for a, b in zip(bounds[:-1], bounds[1:], strict=False):
        out, _ = sdpa_attention_forward(module, query[:, :, a:b], key[:, :, a:b], value[:, :, a:b],
                                        None, dropout=dropout, scaling=scaling, is_causal=True)
        outs.append(out)
    return torch.cat(outs, dim=1), None


def _no_mask(*_args: Any, **_kwargs: Any) -> None:
    return None


def register() -> None:
    """Make ``VARLEN`` known to transformers (idempotent: a dict entry)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(VARLEN, _varlen_sdpa)
    AttentionMaskInterface.register(VARLEN, _no_mask)


def use_varlen(model: Any) -> bool:
    """Switch ``model`` to per-sample sdpa; False if it cannot (attention not pluggable)."""
    register()
    can = getattr(model, "_can_set_attn_implementation", None)
    if can is None or not can():
        return False
    model.set_attn_implementation(VARLEN)
    return getattr(model.config, "_attn_implementation", None) == VARLEN


def use_sdpa(model: Any) -> None:
    """Back to transformers' sdpa (what the saved model says and other loaders use)."""
    if getattr(model.config, "_attn_implementation", None) == VARLEN:
        model.set_attn_implementation("sdpa")
