"""Experiment tracking for tf-train through accelerate's trackers (``--report-to``).

``tensorboard`` writes event files under ``RUN/tracking/``; ``wandb`` logs to Weights &
Biases (``WANDB_MODE=offline`` keeps it on disk, ``wandb sync`` uploads later). Every step
logs its loss, learning rate, gradient norm and tokens/s, every evaluation its loss; the
run's settings go in as hyperparameters. ``loss.jsonl`` is written whatever the choice: it
is what ``--resume`` and ``tf-stats`` read.

Only the main process reports (accelerate's trackers do that themselves). It does not
pick a tracker for the user, log models or upload anything on its own.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from typing import Any

from tf_tools.errors import TfError
from tf_tools.training.config import TrainConfig

LOG_DIR = "tracking"
_PACKAGE = {"tensorboard": "tensorboard", "wandb": "wandb"}


def accelerator_kwargs(cfg: TrainConfig) -> dict[str, Any]:
    """What ``Accelerator(...)`` needs to report to ``cfg.report_to``."""
    if cfg.report_to == "none":
        return {}
    from accelerate.utils import ProjectConfiguration

    package = _PACKAGE[cfg.report_to]
    try:
        __import__(package)
    except ImportError as exc:
        raise TfError(f"--report-to {cfg.report_to} needs {package}",
                      hint=f"pip install 'tf-tools[track]' (or pip install {package})") from exc
    return {"log_with": cfg.report_to,
            "project_config": ProjectConfiguration(project_dir=cfg.output,
                                                   logging_dir=os.path.join(cfg.output, LOG_DIR))}


def start(accelerator: Any, cfg: TrainConfig, resolved: dict[str, Any]) -> None:
    """Open the trackers with the run's settings (scalars only: what every tracker takes)."""
    if cfg.report_to == "none":
        return
    settings = {k: v for k, v in {**asdict(cfg), **resolved}.items()
                if isinstance(v, (int, float, str, bool))}
    name = os.path.basename(os.path.normpath(cfg.output)) or "tf-train"
    init = {"wandb": {"name": name}} if cfg.report_to == "wandb" else {}
    accelerator.init_trackers(name, config=settings, init_kwargs=init)


def log(accelerator: Any, cfg: TrainConfig, values: dict[str, Any], step: int) -> None:
    if cfg.report_to != "none":
        accelerator.log({k: v for k, v in values.items() if v is not None}, step=step)


def step_values(info: Any) -> dict[str, Any]:
    """What the trackers get each step (from a ``loop.StepInfo``)."""
    return {"train/loss": info.loss, "train/lr": info.lr, "train/grad_norm": info.grad_norm,
            "train/tokens_per_s": info.tokens / info.seconds if info.seconds else None,
            "train/epoch": info.epoch, "eval/loss": info.eval_loss}
