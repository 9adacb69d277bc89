"""tf-train's library: tokenise chat records with loss masks, batch or pack them, train.

    from tf_tools.training import TrainConfig, train
    manifest = train(records, TrainConfig(model="models/student", output="runs/tf"))

torch, transformers and accelerate are imported inside the functions that use them.
"""

from tf_tools.training.data import (
    Batch,
    DataConfig,
    Sample,
    check_record,
    collate,
    load_samples,
    pack_batch,
    pad_batch,
    per_sample_losses,
    plan_epoch,
    tokenize_record,
)
from tf_tools.training.loop import StepInfo, TrainConfig, train

__all__ = [
    "Batch", "DataConfig", "Sample", "StepInfo", "TrainConfig", "check_record", "collate",
    "load_samples", "pack_batch", "pad_batch", "per_sample_losses", "plan_epoch",
    "tokenize_record", "train",
]
