"""tf-train's settings: ``TrainConfig`` (one field per command-line option) and the run identity.

``TrainConfig.check`` rejects impossible settings with a ``UsageError``; ``data()`` gives
the tokenising settings (``data.DataConfig``). ``identity`` is what makes a run this run
(the settings that change what is computed, the model, the data fingerprint): ``--resume``
refuses a run folder holding another one.

It does not read files, load models or resolve anything that depends on the machine
(precision ``auto``, the attention implementation): ``setup.py`` does.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from typing import Any

from tf_tools.errors import UsageError
from tf_tools.training.data import DataConfig
from tf_tools.training.lora import LoraSettings, default_alpha

PRECISIONS = ("auto", "bf16", "fp32")
TRACKERS = ("none", "tensorboard", "wandb")
SAVE_DTYPES = ("auto", "float32", "bfloat16", "float16")

#: config fields that change how a step is computed, not what: free to differ on --resume
_NOT_IDENTITY = frozenset({
    "output", "resume", "overwrite", "keep_going", "save_steps", "save_total_limit",
    "save_dtype", "micro_batch_size", "packing", "pack_length", "gradient_checkpointing",
    "attn_implementation", "quiet", "save_minutes", "merge", "report_to", "eval_steps",
})


@dataclass(frozen=True)
class TrainConfig:
    model: str
    output: str
    epochs: int = 3
    max_steps: int | None = None  # stop after this many optimizer steps (the schedule too)
    lr: float = 1e-5
    weight_decay: float = 0.0
    warmup_ratio: float = 0.03
    max_grad_norm: float = 1.0
    global_batch_size: int = 64  # samples per optimizer step, over all processes
    micro_batch_size: int = 4  # samples per forward pass and process
    max_length: int = 4096
    packing: bool = False
    pack_length: int | None = None  # packed row capacity (default: max_length)
    group_by_length: bool = True
    mask_incorrect: bool = False
    mask_reflection: bool = False
    precision: str = "auto"  # auto: bf16 on a GPU that has it, else fp32
    gradient_checkpointing: bool = False
    attn_implementation: str | None = None  # None: transformers' default (sdpa)
    seed: int = 0
    save_steps: int | None = None  # None: about every 10% of the run (``save_every``)
    save_minutes: float | None = None  # also checkpoint when this much time has passed
    save_total_limit: int = 2
    save_dtype: str = "auto"  # auto: the student's dtype
    lora_r: int = 0  # 0: full fine-tuning
    lora_alpha: int | None = None  # None: 2 * lora_r
    lora_dropout: float = 0.05
    lora_target: str = "all-linear"  # the attention and MLP projections
    merge: bool = False  # LoRA: final/ holds the merged model (else the adapter)
    eval_file: str | None = None
    eval_share: float = 0.0  # hold out this share of the samples (by a hash of the id)
    eval_steps: int | None = None  # None: with every checkpoint
    report_to: str = "none"
    resume: bool = False
    overwrite: bool = False
    keep_going: bool = False
    quiet: bool = False

    def check(self) -> None:
        bad = [name for name in ("epochs", "global_batch_size", "micro_batch_size", "max_length")
               if getattr(self, name) < 1]
        bad += [name for name in ("max_steps", "save_steps", "eval_steps")
                if getattr(self, name) is not None and getattr(self, name) < 1]
        if bad:
            raise UsageError(f"--{bad[0].replace('_', '-')} must be at least 1")
        if self.lr <= 0 or not 0 <= self.warmup_ratio < 1 or self.max_grad_norm < 0:
            raise UsageError("need --lr > 0, 0 <= --warmup-ratio < 1 and --max-grad-norm >= 0")
        if self.pack_length is not None and self.pack_length < self.max_length:
            raise UsageError("--pack-length must be at least --max-length (samples are never cut)")
        if self.precision not in PRECISIONS:
            raise UsageError(f"--precision must be one of {', '.join(PRECISIONS)}")
        if self.save_dtype not in SAVE_DTYPES:
            raise UsageError(f"--save-dtype must be one of {', '.join(SAVE_DTYPES)}")
        if self.save_minutes is not None and self.save_minutes <= 0:
            raise UsageError("--save-minutes must be above 0")
        if self.report_to not in TRACKERS:
            raise UsageError(f"--report-to must be one of {', '.join(TRACKERS)}")
        self._check_lora()
        self._check_eval()

    def _check_lora(self) -> None:
        if self.lora_r < 0:
            raise UsageError("--lora-r must be at least 0 (0: full fine-tuning)")
        if not 0 <= self.lora_dropout < 1:
            raise UsageError("--lora-dropout must be in [0, 1)")
        if self.lora_r == 0 and self.merge:
            raise UsageError("--merge merges a LoRA adapter: give --lora-r too")
        if self.lora_alpha is not None and self.lora_alpha <= 0:
            raise UsageError("--lora-alpha must be above 0")

    def _check_eval(self) -> None:
        if not 0 <= self.eval_share < 1:
            raise UsageError("--eval-share must be in [0, 1)")
        if self.eval_share and self.eval_file:
            raise UsageError("--eval-file and --eval-share exclude each other")
        if self.eval_steps is not None and not (self.eval_share or self.eval_file):
            raise UsageError("--eval-steps needs an evaluation set: --eval-file or --eval-share")

    def lora(self) -> LoraSettings | None:
        if not self.lora_r:
            return None
        return LoraSettings(self.lora_r, default_alpha(self.lora_r, self.lora_alpha),
                            self.lora_dropout, self.lora_target)

    @property
    def evaluates(self) -> bool:
        return bool(self.eval_share or self.eval_file)

    def data(self) -> DataConfig:
        return DataConfig(max_length=self.max_length, mask_incorrect=self.mask_incorrect,
                          mask_reflection=self.mask_reflection)



def save_every(cfg: TrainConfig, total_steps: int) -> int:
    """The checkpoint cadence: --save-steps, else about every 10% of the run's steps (a crash
    loses at most a tenth of the run; each checkpoint costs a model and optimizer write)."""
    return cfg.save_steps if cfg.save_steps is not None else max(1, math.ceil(total_steps / 10))


def eval_every(cfg: TrainConfig, total_steps: int) -> int:
    """The evaluation cadence: --eval-steps, else with every checkpoint."""
    return cfg.eval_steps if cfg.eval_steps is not None else save_every(cfg, total_steps)


def identity(cfg: TrainConfig, model_path: str, data_fingerprint: str, n_samples: int) -> dict[str, Any]:
    """What makes a run this run: --resume refuses a folder holding another one."""
    fields = {k: v for k, v in asdict(cfg).items() if k not in _NOT_IDENTITY}
    fields["model"] = os.path.abspath(model_path) if os.path.exists(model_path) else model_path
    return {"tool": "tf-train", **fields, "data": data_fingerprint, "n_samples": n_samples}
