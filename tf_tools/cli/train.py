"""tf-train: supervised fine-tuning of a student on training samples (messages + segments)."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Annotated

import typer

from tf_tools import console
from tf_tools.cli import common
from tf_tools.errors import EXIT_PARTIAL

if TYPE_CHECKING:
    from tf_tools.training import StepInfo

HELP = """Fine-tune a causal LM on JSONL records with `messages` (tf-fuse's output, or any chat
data set) and print one manifest record on stdout. The loss covers the assistant messages
and their end-of-turn token; `segments` let --mask-incorrect / --mask-reflection take parts
of the assistant message out of the loss. Samples longer than --max-length are reported and
skipped, never cut. The trained model lands in OUTPUT/final, ready for tf-sample -m
(with --lora-r: the adapter, or with --merge the merged model). --eval-file / --eval-share
add the loss of held-out samples to loss.jsonl; --report-to sends the curves to
TensorBoard or wandb. Checkpoints come about every 10% of the steps (--save-steps,
--save-minutes) and on SIGTERM / SIGUSR1.

Runs unchanged under torchrun and `accelerate launch` (DDP, FSDP, DeepSpeed ZeRO-3: see
examples/accelerate/ and examples/slurm/train.sbatch).

Examples:

\b
  tf-train -m models/qwen2.5-math-1.5b train.jsonl -o runs/tf
  tf-train -m M train.jsonl -o runs/tf-masked --mask-incorrect --epochs 3 --lr 1e-5
  tf-train -m M train.jsonl -o runs/tf --packing --max-length 4096 --global-batch-size 128
  tf-train -m M train.jsonl -o runs/tf --resume          # continue from the newest checkpoint
  tf-train -m M train.jsonl -o runs/lora --lora-r 16 --lr 2e-4 --merge   # LoRA, merged into final/
  tf-train -m M train.jsonl -o runs/tf --eval-share 0.05 --report-to tensorboard
  tf-train --config train.toml train.jsonl -o runs/tf    # options from a file (TOML or YAML; flags win)
  accelerate launch --config_file examples/accelerate/fsdp.yaml -m tf_tools.cli.train \\
      -m M train.jsonl -o runs/tf
  tf-sample -m runs/tf/final -n 1 --temperature 0 test.jsonl | tf-grade
"""

app = typer.Typer(add_completion=False, rich_markup_mode=None)


@app.command(help=HELP, no_args_is_help=False)
@common.tf_command("tf-train", "keep_going")
def train(
    inputs: common.Inputs = None,
    model: Annotated[str, typer.Option("-m", "--model", help="The student: a local model folder with a chat template.")] = "",
    output: Annotated[str, typer.Option("-o", "--output", help="Run folder (checkpoints, loss.jsonl, final/, manifest.json).")] = "",
    epochs: Annotated[int, typer.Option("--epochs")] = 3,
    max_steps: Annotated[int | None, typer.Option("--max-steps", help="Stop after this many optimizer steps (the schedule ends there too).")] = None,
    lr: Annotated[float, typer.Option("--lr", help="Peak learning rate (AdamW).")] = 1e-5,
    weight_decay: Annotated[float, typer.Option("--weight-decay")] = 0.0,
    warmup_ratio: Annotated[float, typer.Option("--warmup-ratio", help="Linear warmup share of the steps, then cosine decay to 0.")] = 0.03,
    max_grad_norm: Annotated[float, typer.Option("--max-grad-norm", help="Gradient clipping (0: off).")] = 1.0,
    global_batch_size: Annotated[int, typer.Option("--global-batch-size", help="Samples per optimizer step, over all processes (gradient accumulation makes up the rest).")] = 64,
    micro_batch_size: Annotated[int, typer.Option("--micro-batch-size", help="Samples per forward pass and process.")] = 4,
    max_length: Annotated[int, typer.Option("--max-length", help="Longer samples are reported and skipped, never cut.")] = 4096,
    packing: Annotated[bool, typer.Option("--packing/--no-packing", help="Pack the samples of a micro-batch into one unpadded row; no token attends across samples (sdpa runs per sample; eager gets a block-diagonal mask), position ids restart per sample.")] = False,
    pack_length: Annotated[int | None, typer.Option("--pack-length", help="Row capacity in tokens where packing needs rows (eager / flash attention; default: --max-length).")] = None,
    group_by_length: Annotated[bool, typer.Option("--group-by-length/--no-group-by-length", help="Batch samples of similar length together.")] = True,
    mask_incorrect: Annotated[bool, typer.Option("--mask-incorrect", help="No loss on the incorrect segments (ablation).")] = False,
    mask_reflection: Annotated[bool, typer.Option("--mask-reflection", help="No loss on the reflection segments.")] = False,
    precision: Annotated[str, typer.Option("--precision", help="auto (bf16 on a GPU that has it, else fp32; or what `accelerate launch` says), bf16, fp32.")] = "auto",
    gradient_checkpointing: Annotated[bool, typer.Option("--gradient-checkpointing", help="Recompute activations in backward: less memory, ~30% slower.")] = False,
    attn_implementation: Annotated[str | None, typer.Option("--attn-implementation", help="sdpa (default), eager, flash_attention_2, ...")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the data order and of torch.")] = 0,
    save_steps: Annotated[int | None, typer.Option("--save-steps", help="Checkpoint every N optimizer steps (default: about every 10% of the run's steps).")] = None,
    save_minutes: Annotated[float | None, typer.Option("--save-minutes", help="Also checkpoint when this many minutes have passed since the last one.")] = None,
    save_total_limit: Annotated[int, typer.Option("--save-total-limit", help="Keep the newest N checkpoints (0: all).")] = 2,
    save_dtype: Annotated[str, typer.Option("--save-dtype", help="dtype of final/: auto (the student's), float32, bfloat16, float16.")] = "auto",
    lora_r: Annotated[int, typer.Option("--lora-r", help="Train LoRA adapters of this rank (peft) instead of every weight (0: full fine-tuning).")] = 0,
    lora_alpha: Annotated[int | None, typer.Option("--lora-alpha", help="LoRA scale numerator (default: 2 x --lora-r).")] = None,
    lora_dropout: Annotated[float, typer.Option("--lora-dropout")] = 0.05,
    lora_target: Annotated[str, typer.Option("--lora-target", help="Modules that get adapters: all-linear (the attention and MLP projections) or names, comma-separated (q_proj,v_proj).")] = "all-linear",
    merge: Annotated[bool, typer.Option("--merge", help="LoRA: final/ holds the merged model (tf-sample loads it) and adapter/ the adapter; without it final/ holds the adapter.")] = False,
    eval_file: Annotated[str | None, typer.Option("--eval-file", help="Evaluation samples (same format as the input): their loss every --eval-steps and at the end.")] = None,
    eval_share: Annotated[float, typer.Option("--eval-share", help="Hold out this share of the samples for evaluation (split by a stable hash of the id).")] = 0.0,
    eval_steps: Annotated[int | None, typer.Option("--eval-steps", help="Evaluate every N steps (default: with every checkpoint).")] = None,
    report_to: Annotated[str, typer.Option("--report-to", help="Also log to: none, tensorboard (RUN/tracking/), wandb. loss.jsonl is always written.")] = "none",
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in -o from its newest checkpoint (same model, data and settings).")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the run in -o.")] = False,
    *,
    run: common.Run,
) -> None:
    import os

    from tf_tools.errors import UsageError
    from tf_tools.records import JsonlReader, JsonlWriter
    from tf_tools.training import TrainConfig
    from tf_tools.training import train as run_training

    if not model:
        raise UsageError("no model: give the student with -m/--model")
    if not output:
        raise UsageError("no run folder: give one with -o/--output (e.g. -o runs/tf)")
    paths = common.require_input(inputs)
    if paths == ["-"] and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise UsageError("several processes cannot share stdin: name the input files")
    cfg = TrainConfig(
        model=model, output=output, epochs=epochs, max_steps=max_steps, lr=lr,
        weight_decay=weight_decay, warmup_ratio=warmup_ratio, max_grad_norm=max_grad_norm,
        global_batch_size=global_batch_size, micro_batch_size=micro_batch_size,
        max_length=max_length, packing=packing, pack_length=pack_length,
        group_by_length=group_by_length, mask_incorrect=mask_incorrect,
        mask_reflection=mask_reflection, precision=precision,
        gradient_checkpointing=gradient_checkpointing,
        attn_implementation=attn_implementation, seed=seed, save_steps=save_steps,
        save_minutes=save_minutes, save_total_limit=save_total_limit, save_dtype=save_dtype,
        lora_r=lora_r, lora_alpha=lora_alpha, lora_dropout=lora_dropout, lora_target=lora_target,
        merge=merge, eval_file=eval_file, eval_share=eval_share, eval_steps=eval_steps,
        report_to=report_to, resume=resume,
        overwrite=overwrite, keep_going=run.keep_going, quiet=run.quiet,
    )
    cfg.check()
    reader = JsonlReader(paths, keep_going=run.keep_going, step="train")
    stdout = common.protect_stdout()
    with _StepProgress(enabled=not run.quiet and int(os.environ.get("RANK", "0")) == 0) as progress:
        manifest = run_training(reader, cfg, reader.where, on_step=progress)
    if int(os.environ.get("RANK", "0")) == 0:
        writer = JsonlWriter(None, stdout=stdout)
        writer.write(manifest)
        writer.commit()
    skipped = manifest["skipped"]
    if manifest.get("steps"):
        n_skipped = skipped["too_long"] + skipped["bad"] + skipped.get("empty", 0)
        console.log.warning(
            "trained %d steps on %d samples%s: %d tokens (%s tok/s, padding %.1f%%), final "
            "loss %s; model in %s", manifest["steps"], manifest["samples"],
            f" ({n_skipped} skipped, {100 * skipped.get('fraction', 0):.1f}%)" if n_skipped else "",
            manifest["tokens_seen"], manifest["tokens_per_s"],
            100 * manifest["padding_share"], manifest["final_loss"], manifest["final"])
    if run.keep_going and skipped.get("bad"):
        raise typer.Exit(EXIT_PARTIAL)


class _StepProgress:
    """The steps on stderr (a rich bar on a terminal, heartbeat lines in logs), fed by the
    library's ``on_step`` hook; it opens at the first step, so a resumed run counts on from
    the step it resumed at."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._stack = contextlib.ExitStack()
        self._bar: console.Progress | None = None

    def __enter__(self) -> _StepProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def __call__(self, info: StepInfo) -> None:
        if self._bar is None:
            self._bar = self._stack.enter_context(
                console.Progress("steps", info.total_steps, enabled=self.enabled))
            self._bar.count = info.step - 1
        rate = info.tokens / info.seconds if info.seconds else 0.0
        self._bar.postfix = f"loss {info.loss:.4f}, {rate:,.0f} tok/s"
        self._bar.advance(1)


def main() -> None:
    app(prog_name="tf-train")


if __name__ == "__main__":
    main()
