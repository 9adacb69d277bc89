"""tf-train's library: tokenise chat records with loss masks, batch or pack them, train.

    from tf_tools.training import TrainConfig, train
    manifest = train(records, TrainConfig(model="models/student", output="runs/tf"))

torch, transformers and accelerate are imported inside the functions that use them.
"""

from tf_tools.training.batches import Batch, collate, pack_batch, pad_batch, plan_epoch
from tf_tools.training.config import TrainConfig
from tf_tools.training.data import DataConfig, Sample, check_record, load_samples, tokenize_record
from tf_tools.training.loop import StepInfo, train
from tf_tools.training.loss import per_sample_losses

__all__ = [
    "Batch", "DataConfig", "Sample", "StepInfo", "TrainConfig", "check_record", "collate",
    "load_samples", "pack_batch", "pad_batch", "per_sample_losses", "plan_epoch",
    "tokenize_record", "train",
]
