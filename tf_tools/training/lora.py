"""LoRA for tf-train, through ``peft``: wrap the student, count parameters, merge for saving.

- ``apply(model, cfg)``: ``get_peft_model`` with a ``LoraConfig`` from ``--lora-r``,
  ``--lora-alpha`` (default 2r), ``--lora-dropout`` and ``--lora-target`` (default
  ``all-linear``: every linear layer but the output head, i.e. the attention and MLP
  projections of a decoder). Only the adapter's matrices keep ``requires_grad``, so the
  optimizer (built from trainable parameters) holds only them.
- ``base_of(model)``: the transformers model under a ``PeftModel`` (attention switches and
  signature checks look at it).
- ``merged_state_dict(state_dict, ...)``: the full model's weights with each adapter folded
  in (``W + scaling * B @ A``), named as the plain model names them. It works on the state
  dict ``accelerator.get_state_dict`` gathers, so the same merge serves a single process,
  DDP, FSDP and ZeRO-3 (where ``merge_and_unload`` would see shards). The test checks it
  against peft's own ``merge_and_unload``.

It does not load adapters for sampling (``tf-train --merge`` writes a model tf-sample
loads), quantise (QLoRA) or train several adapters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tf_tools.errors import TfError, UsageError

ALL_LINEAR = "all-linear"
_LORA_A, _LORA_B, _BASE = ".lora_A.", ".lora_B.", ".base_layer."
_PEFT_PREFIX = "base_model.model."


@dataclass(frozen=True)
class LoraSettings:
    r: int
    alpha: int
    dropout: float
    target: str  # "all-linear" or comma-separated module names

    @property
    def scaling(self) -> float:
        return self.alpha / self.r

    def targets(self) -> str | list[str]:
        if self.target == ALL_LINEAR:
            return ALL_LINEAR
        return [t.strip() for t in self.target.split(",") if t.strip()]


def apply(model: Any, lora: LoraSettings) -> Any:
    """The student wrapped with fresh LoRA adapters (the base weights frozen)."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as exc:
        raise TfError("--lora-r needs peft", hint="pip install 'tf-tools[train]' (or pip install peft)") from exc
    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                        target_modules=lora.targets(), bias="none", task_type="CAUSAL_LM")
    try:
        peft_model = get_peft_model(model, config)
    except ValueError as exc:  # no module matches --lora-target
        raise UsageError(f"--lora-target {lora.target}: {exc}".splitlines()[0]) from exc
    if getattr(model, "is_gradient_checkpointing", False):
        # frozen embeddings give checkpointed blocks inputs without grad: peft's documented fix
        peft_model.enable_input_require_grads()
    return peft_model


def is_peft(model: Any) -> bool:
    return hasattr(model, "get_base_model") and hasattr(model, "peft_config")


def base_of(model: Any) -> Any:
    """The transformers model under LoRA (the model itself without)."""
    return model.get_base_model() if is_peft(model) else model


def parameter_counts(model: Any) -> tuple[int, int]:
    """(trainable, total) parameters."""
    trainable = total = 0
    for p in model.parameters():
        n = p.numel()
        total += n
        trainable += n if p.requires_grad else 0
    return trainable, total


def adapter_state_dict(state_dict: dict[str, Any]) -> dict[str, Any]:
    """Only the adapter's tensors (what ``adapter_model.safetensors`` holds)."""
    return {k: v for k, v in state_dict.items() if "lora_" in k}


def merged_state_dict(state_dict: dict[str, Any], scaling: float) -> dict[str, Any]:
    """The plain model's state dict with every adapter folded into its base weight."""
    adapters = _adapters(state_dict)
    merged: dict[str, Any] = {}
    for key, value in state_dict.items():
        if _LORA_A in key or _LORA_B in key:
            continue
        name = key[len(_PEFT_PREFIX):] if key.startswith(_PEFT_PREFIX) else key
        if _BASE in name and name.endswith(".weight"):
            module = key[: key.index(_BASE)]
            a, b = adapters.get(module, (None, None))
            if a is not None and b is not None:
                delta = (b.float() @ a.float()) * scaling
                if delta.shape != value.shape:  # Conv1D layers store the weight transposed
                    delta = delta.T
                if delta.shape != value.shape:
                    raise TfError(f"cannot merge the LoRA adapter of {module}: "
                                  f"{tuple(delta.shape)} vs {tuple(value.shape)}")
                value = (value.float() + delta).to(value.dtype)
        merged[name.replace(_BASE, ".")] = value
    return merged


def _adapters(state_dict: dict[str, Any]) -> dict[str, list[Any]]:
    """module name -> [A, B] of its adapter (peft names the one adapter ``default``)."""
    found: dict[str, list[Any]] = {}
    for key, value in state_dict.items():
        for i, part in enumerate((_LORA_A, _LORA_B)):
            if part in key:
                found.setdefault(key[: key.index(part)], [None, None])[i] = value
    return found


def default_alpha(r: int, alpha: int | None) -> int:
    """--lora-alpha, else 2r (the common choice; the update's scale alpha/r is then 2)."""
    return alpha if alpha is not None else 2 * r
