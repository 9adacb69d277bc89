"""Everything a run needs before its first step: processes, tokenizer, step counts, model, optimizer.

- ``start_processes``: accelerate's process state (several CPU processes under torchrun
  included); processes other than rank 0 log errors only.
- ``load_tokenizer``: the student's tokenizer (``models.load_tokenizer``, the project's one
  loader), checked for what training needs (fast, with a chat template); ``pad_id``: the id
  that pads rows.
- ``Schedule.of``: the step counts a run derives from its config, its samples' lengths and
  the number of processes (gradient accumulation, steps per epoch, total and warmup steps).
- ``prepare``: the ``Accelerator`` (mixed precision, gradient accumulation from
  ``--global-batch-size``, DeepSpeed's batch settings), then the model (loaded after it:
  ZeRO-3 partitions while loading), its attention for packed rows, AdamW with weight decay
  on matrices only and the cosine schedule with warmup, through ``accelerator.prepare``;
  with ``--lora-r`` the model is wrapped with LoRA adapters first (``lora.py``) and the
  optimizer holds only their matrices.
- ``student_dtype``: the dtype ``final/`` is saved in.

It does not read records, run a step or touch the run folder (``loop.py``,
``checkpoints.py``). torch, transformers and accelerate are imported inside the functions.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tf_tools import console, models
from tf_tools.errors import TfError, UsageError
from tf_tools.training import attention, lora, tracking
from tf_tools.training.batches import plan_epoch
from tf_tools.training.config import TrainConfig
from tf_tools.training.loss import supports_logits_to_keep


def _several_cpu_processes() -> bool:
    """Several processes without CUDA (torchrun on CPU, gloo): accelerate needs cpu=True to
    see them, else every process trains alone."""
    import torch

    return not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1


def start_processes() -> Any:
    """accelerate's ``PartialState`` (rank, world size, barriers); only rank 0 logs."""
    from accelerate import PartialState
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    state = PartialState(cpu=_several_cpu_processes())
    if not state.is_main_process:  # only rank 0 logs
        logging.getLogger("tf_tools").setLevel(logging.ERROR)
        hf_logging.set_verbosity_error()
    return state


def load_tokenizer(path: str) -> Any:
    """The student's tokenizer: it must load, be fast (offset mapping) and hold a chat template."""
    try:
        tok = models.load_tokenizer(path)
    except (OSError, ValueError) as exc:
        raise TfError(f"transformers could not load the tokenizer of {path}: {exc}".splitlines()[0]) from exc
    if not getattr(tok, "chat_template", None):
        raise TfError(f"the tokenizer of {path} has no chat template",
                      hint="tf-train formats samples with the student's chat template; add one "
                           "to tokenizer_config.json (or chat_template.jinja)")
    if not getattr(tok, "is_fast", False):
        raise TfError(f"the tokenizer of {path} is not a fast tokenizer (no offset mapping)")
    return tok


def pad_id(tokenizer: Any) -> int:
    """The id that pads rows: the pad token, else the end-of-sequence token, else 0."""
    for tid in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if tid is not None:
            return int(tid)
    return 0


@dataclass(frozen=True)
class Schedule:
    """How many optimizer steps a run makes and how each is split; the same steps whatever
    the number of processes (only the split of a step's micro-batches changes)."""

    world: int  # processes
    accum: int  # micro-batches per step and process (gradient accumulation)
    n_micro: int  # micro-batches per step, all processes
    steps_per_epoch: int
    total_steps: int
    warmup: int

    @classmethod
    def of(cls, cfg: TrainConfig, lengths: Sequence[int], world: int) -> Schedule:
        accum = max(1, math.ceil(cfg.global_batch_size / (cfg.micro_batch_size * world)))
        n_micro = accum * world
        steps_per_epoch = len(plan_epoch(lengths, 0, cfg.seed, cfg.global_batch_size, n_micro,
                                         cfg.group_by_length))
        total_steps = cfg.epochs * steps_per_epoch
        if cfg.max_steps is not None:
            total_steps = min(total_steps, cfg.max_steps)
        return cls(world, accum, n_micro, steps_per_epoch, total_steps,
                   math.ceil(cfg.warmup_ratio * total_steps))


@dataclass
class Prepared:
    """The training objects, after ``accelerator.prepare``."""

    accelerator: Any
    model: Any
    optimizer: Any
    scheduler: Any
    attn: str  # the model's attention implementation (sdpa, eager, flash_attention_2, ...)
    varlen: bool  # packed rows run per-sample sdpa (attention.VARLEN)
    trainable_parameters: int
    parameters: int

    @property
    def distributed_type(self) -> str:
        return str(self.accelerator.distributed_type).split(".")[-1]

    @property
    def step_attn(self) -> str:
        """The attention the batches are built for (``batches.collate``)."""
        return attention.VARLEN if self.varlen else self.attn

    @property
    def keep_logits(self) -> bool:
        """Whether forwards may ask for the logits of the trained positions only
        (``loss.forward_losses``): the transformers model under any wrapper takes
        ``logits_to_keep``."""
        return supports_logits_to_keep(lora.base_of(self.accelerator.unwrap_model(self.model)))


def prepare(cfg: TrainConfig, schedule: Schedule) -> Prepared:
    from accelerate.utils import set_seed
    from transformers import get_cosine_schedule_with_warmup

    accelerator = _accelerator(cfg, schedule.accum)
    set_seed(cfg.seed)
    model = _load_model(cfg)  # after Accelerator: ZeRO-3 partitions while loading
    attn = getattr(model.config, "_attn_implementation", None) or "sdpa"
    # packed rows under sdpa: attention per sample (no 4D mask over the row, no padding)
    varlen = cfg.packing and attn == "sdpa" and attention.use_varlen(model)
    settings = cfg.lora()
    if settings is not None:  # after the attention switch: it acts on the transformers model
        model = lora.apply(model, settings)
    trainable, total = lora.parameter_counts(model)
    optimizer = _optimizer(model, cfg)
    scheduler = get_cosine_schedule_with_warmup(optimizer, schedule.warmup, schedule.total_steps)
    # model and optimizer prepared together, as accelerate documents for FSDP2: it shards the
    # model and then switches the optimizer's parameters to the sharded ones in place (so
    # the scheduler, built on the same optimizer object, follows)
    model, optimizer = accelerator.prepare(model, optimizer)
    if accelerator.gradient_accumulation_steps != schedule.accum:
        raise UsageError(f"the accelerate/DeepSpeed config sets gradient_accumulation_steps="
                         f"{accelerator.gradient_accumulation_steps}; tf-train derives it from "
                         f"--global-batch-size ({schedule.accum} here)",
                         hint="remove gradient_accumulation_steps from the config (or set it to auto)")
    accelerator.register_for_checkpointing(scheduler)
    model.train()
    return Prepared(accelerator, model, optimizer, scheduler, attn, varlen, trainable, total)


def _accelerator(cfg: TrainConfig, accum: int) -> Any:
    from accelerate import Accelerator
    from accelerate.utils import GradientAccumulationPlugin

    # the accumulation steps follow from --global-batch-size; a plugin (not the plain
    # argument) keeps ACCELERATE_GRADIENT_ACCUMULATION_STEPS from overriding them
    accelerator = Accelerator(cpu=_several_cpu_processes(), mixed_precision=_precision(cfg.precision),
                              gradient_accumulation_plugin=GradientAccumulationPlugin(num_steps=accum),
                              step_scheduler_with_optimizer=False,
                              **tracking.accelerator_kwargs(cfg))
    kind = str(accelerator.distributed_type).split(".")[-1]
    if os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true" and kind != "FSDP":
        # accelerate (1.15) shards with FSDP on accelerators only; on CPUs it runs DDP
        console.warn(f"the accelerate config asks for FSDP, but accelerate runs FSDP on GPUs "
                     f"only: this run is {kind} (every process holds the whole model)")
    ds = getattr(accelerator.state, "deepspeed_plugin", None)
    if ds is not None:  # DeepSpeed wants these in its config before prepare()
        ds.deepspeed_config["train_micro_batch_size_per_gpu"] = cfg.micro_batch_size
        ds.deepspeed_config["gradient_accumulation_steps"] = accum
        if ds.deepspeed_config.get("gradient_clipping", "auto") == "auto":
            ds.deepspeed_config["gradient_clipping"] = cfg.max_grad_norm
    return accelerator


def _precision(name: str) -> str | None:
    """accelerate's mixed_precision; None lets `accelerate launch` / its config decide."""
    import torch

    if name == "bf16":
        return "bf16"
    if name == "fp32":
        return "no"
    if os.environ.get("ACCELERATE_MIXED_PRECISION"):
        return None
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"


def _load_model(cfg: TrainConfig) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": torch.float32}
    if cfg.attn_implementation:
        kwargs["attn_implementation"] = cfg.attn_implementation
    try:
        model = AutoModelForCausalLM.from_pretrained(cfg.model, **kwargs)
    except (OSError, ValueError, ImportError) as exc:
        raise TfError(f"transformers could not load {cfg.model}: {exc}".splitlines()[0]) from exc
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False
    return model


def _optimizer(model: Any, cfg: TrainConfig) -> Any:
    import torch

    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    try:  # the fused kernel (CPU and CUDA since torch 2.4) is several times faster
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8)


def student_dtype(model_path: str, save_dtype: str) -> Any:
    """The dtype of final/: --save-dtype, or with auto the one the student's config.json names."""
    import torch

    if save_dtype != "auto":
        return getattr(torch, save_dtype)
    try:
        with open(os.path.join(model_path, "config.json"), encoding="utf-8") as f:
            conf = json.load(f)
    except OSError:
        return torch.float32
    name = conf.get("dtype") or conf.get("torch_dtype") or "float32"
    return getattr(torch, name) if name in ("float32", "bfloat16", "float16") else torch.float32
