"""TRL's ``SFTTrainer`` as a baseline of bench/train.py: the same samples and hyperparameters.

``run_trl`` trains one epoch with TRL's own data path on the conversational ``messages`` of
the chosen samples: TRL tokenises them through the chat template, masks all but the
assistant turns (``assistant_only_loss``) and collates without padding, in one of its two
packed modes:

- ``padding_free=True``: every micro-batch of ``--micro-batch`` samples flattened into one
  row, ``position_ids`` restarting at each sample (what tf-train --packing does: the same
  samples per step, the same steps);
- ``packing=True, packing_strategy="bfd"``: the samples packed best-fit-decreasing into
  rows of at most max-length tokens before training; a micro-batch is one such row and the
  accumulation steps are chosen to give the same number of optimizer steps (the samples of
  a step cannot match: a row holds whole samples in best-fit order).

Both in float32 on sdpa, the lr, cosine schedule, warmup, clipping, weight decay (0) and
seed of the other runs, TRL's defaults otherwise (its chunked "fused" LM head and its
entropy / token-accuracy metrics included). SmolLM2's and the tiny model's ChatML templates
have no ``{% generation %}`` markers, which ``assistant_only_loss`` needs:
``generation_template`` writes a ChatML template that has them around each assistant
message and its ``<|im_end|>`` (the tokens tf-train trains) and checks that it renders
every chosen conversation exactly as the model's own template. ``check_tokens`` compares
TRL's prepared samples with tf-train's tokenisation (token ids and loss mask).

It does not run without trl and datasets (``missing`` says what is absent; bench/train.py
then skips the TRL runs), does not handle non-ChatML templates, and times only TRL's
training loop (``train_runtime``): tokenisation and packing happen in the constructor.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
from typing import Any


def missing() -> str | None:
    """Why the TRL baseline cannot run here (None: it can)."""
    try:
        import datasets  # noqa: F401
        import trl  # noqa: F401
    except ImportError as exc:
        return f"{exc.name} is not importable (pip install 'tf-tools[dev]')"
    return None


def generation_template(tokenizer: Any, records: list[dict]) -> str:
    """A ChatML template with ``{% generation %}`` around each assistant message and its
    ``<|im_end|>``, the tokenizer's default system message kept; ValueError if it does not
    render every record's ``messages`` exactly as the tokenizer's own template does."""
    probe = tokenizer.apply_chat_template([{"role": "user", "content": "x"}], tokenize=False)
    if "<|im_start|>user\n" not in probe:
        raise ValueError("the model's chat template is not ChatML")
    default_system = probe[: probe.index("<|im_start|>user\n")]
    template = (
        "{% for message in messages %}"
        "{% if loop.first and messages[0]['role'] != 'system' %}{{ " + json.dumps(default_system)
        + " }}{% endif %}"
        "{% if message['role'] == 'assistant' %}{{ '<|im_start|>assistant\\n' }}"
        "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\\n' }}"
        "{% else %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
        "{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
    for i, rec in enumerate(records):
        ours = tokenizer.apply_chat_template(rec["messages"], tokenize=False, chat_template=template)
        if ours != tokenizer.apply_chat_template(rec["messages"], tokenize=False):
            raise ValueError(f"the generation template renders sample {i} differently")
    return template


def check_tokens(prepared: Any, samples: list[Any]) -> dict[str, int]:
    """TRL's prepared (unpacked) dataset against tf-train's samples: how many samples have
    the same token ids and the same trained tokens, and the trained tokens on both sides
    (a label at position 0 is never a target: nothing predicts it)."""
    same, trl_trained = 0, 0
    for row, s in zip(prepared, samples, strict=True):
        trained = [label != -100 for label in row["labels"]]
        trained[0] = False
        trl_trained += sum(trained)
        same += row["input_ids"] == s.input_ids.tolist() and trained == s.trained.tolist()
    return {"same": same, "n": len(samples), "trl": trl_trained,
            "tf": sum(s.n_trained for s in samples)}


def _packed_rows(samples: list[Any], max_length: int) -> int:
    """How many rows TRL's best-fit-decreasing packing makes of these samples."""
    from datasets import Dataset
    from trl import pack_dataset

    lengths = Dataset.from_dict({"input_ids": [s.input_ids.tolist() for s in samples]})
    return len(pack_dataset(lengths, max_length, "bfd"))


def run_trl(model_path: str, records: list[dict], max_length: int, gb: int, args: Any,
            bfd: bool, clock: Any) -> dict:
    """One epoch of TRL's SFTTrainer; the dict bench/train.py's report reads, plus the token
    check (``check``, padding-free mode) and the step losses."""
    import datasets
    import torch
    from accelerate.state import AcceleratorState
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from transformers.utils import logging as hf_logging
    from trl import SFTConfig, SFTTrainer

    from tf_tools.training.data import DataConfig, tokenize_record

    hf_logging.set_verbosity_error()
    datasets.disable_progress_bars()
    tok = AutoTokenizer.from_pretrained(model_path)
    samples = [tokenize_record(r, tok, DataConfig(max_length=max_length)) for r in records]
    tok.chat_template = generation_template(tok, records)
    steps = math.ceil(len(records) / gb)
    if bfd:  # rows of at most max_length tokens, one per micro-batch; the same number of steps
        micro, accum = 1, math.ceil(_packed_rows(samples, max_length) / steps)
    else:
        micro, accum = args.micro_batch, gb // args.micro_batch
    config = SFTConfig(
        output_dir=str(args.out / "trl"), per_device_train_batch_size=micro,
        gradient_accumulation_steps=accum, num_train_epochs=1, learning_rate=args.lr,
        lr_scheduler_type="cosine", warmup_steps=math.ceil(0.03 * steps), max_grad_norm=1.0,
        weight_decay=0.0, save_strategy="no", report_to=[], logging_steps=1, seed=0,
        use_cpu=True, bf16=False, gradient_checkpointing=False, dataloader_num_workers=0,
        disable_tqdm=True, assistant_only_loss=True,
        packing=bfd, packing_strategy="bfd", padding_free=not bfd,
        max_length=max_length if bfd else None,  # padding-free without packing truncates nothing
    )
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32,
                                                 attn_implementation="sdpa")
    micro_counts: list[tuple[int, int]] = []  # (tokens, trained tokens) of every micro-batch

    class Steps(TrainerCallback):
        def on_step_end(self, targs, state, control, **kw):  # noqa: ANN001, ANN003
            clock.mark(0)  # tokens filled in from micro_counts after the run

    data = Dataset.from_list([{"messages": r["messages"]} for r in records])
    with contextlib.redirect_stdout(sys.stderr):  # the trainers print their log dicts
        trainer = SFTTrainer(model=model, args=config, train_dataset=data, processing_class=tok,
                             callbacks=[Steps()])
        check = None if bfd else check_tokens(trainer.train_dataset, samples)
        collate = trainer.data_collator

        def counting(features):  # noqa: ANN001, ANN202
            batch = collate(features)
            micro_counts.append((batch["input_ids"].numel(), int((batch["labels"][:, 1:] != -100).sum())))
            return batch

        trainer.data_collator = counting
        metrics = trainer.train().metrics
    AcceleratorState._reset_state(True)
    per_step = [micro_counts[i:i + accum] for i in range(0, len(micro_counts), accum)]
    tokens = [sum(t for t, _ in step) for step in per_step]
    trained = [sum(n for _, n in step) for step in per_step]
    clock.marks = [(w, c, sum(tokens[: i + 1])) for i, (w, c, _) in enumerate(clock.marks)]
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {"tokens": sum(tokens), "padding": 0.0, "seconds": metrics["train_runtime"],
            "steps": len(losses), "losses": losses, "trained": trained, "check": check}
