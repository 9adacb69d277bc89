"""Benchmark: useful (non-padding) tokens per second of tf-train, with and without --packing,
against a plain transformers Trainer with a padding collator and TRL's SFTTrainer with its
own packing, on the same fused samples.

    python bench/train.py [--models tiny,smollm2] [--tiny-samples 96] [--smollm2-samples 24]
                          [--smollm2-max-length 1024] [--smollm2-rounds 3] [--runs trainer,tf,...]

The samples are real TrajFusion training data: the bundled teacher trajectories
(examples/data: GSM8K with GPT-3 solutions, MATH with Qwen2.5-Math solutions) through
tf-grade | tf-cluster | tf-fuse. For each model (the tiny random Qwen2 of the tests and
SmolLM2-135M-Instruct, which trains at 100-200 tokens/s on a shared 2-core CPU) the same
samples, the same steps (micro-batches of 4 samples; global batch 16 for the tiny model, 8
for SmolLM2, which gets 24 samples to keep CPU time down; both at most 1024 tokens long), lr,
schedule and clipping run in this process, in interleaved rounds (order alternating); the
table shows medians over the rounds, each ratio the median of the per-round ratios (a run
against the baseline measured next to it), the last line the ratio of every round:

- baseline: transformers ``Trainer``, ``DataCollatorForSeq2Seq`` (pads every micro-batch to
  its longest sample, labels -100 on the prompt: the same tokens and loss mask as ours), the
  default random order, float32, the Trainer's default (fused) AdamW;
- tf-train (length-grouped padded micro-batches), and tf-train --packing (each micro-batch
  one unpadded row, attention per sample: tf_tools/training/attention.py); for the tiny
  model also both without length grouping (random order, as the baseline), which shows what
  packing alone removes;
- TRL's SFTTrainer (bench/train_trl.py) on the conversational ``messages``, with its own
  tokenisation, assistant-only loss mask and packing: ``padding_free`` (the micro-batches
  of the baseline, each flattened into one row) and ``packing bfd`` (best-fit-decreasing
  rows of at most max-length tokens, as many optimizer steps). Skipped, with a message,
  when trl or datasets is not importable.

Below each table: the loss over the epoch's trained tokens and of the last step, and the
trained tokens, of every run (the same samples and loss mask give the same epoch loss
whatever the order, to the few-step drift); whether TRL's token ids and loss mask equal
tf-train's; tf-train against each TRL run (per-round speed ratios, loss difference).

Useful tokens/s = non-padding tokens / training-loop seconds (model loading and tokenisation
left out on both sides: the Trainer's ``train_runtime``, tf-train's ``train_seconds``); then
the same over steps 2+ (the first step carries one-time start-up costs), per wall second and
per CPU second of this process. Every run uses --threads torch threads (default 1: on an
oversubscribed machine two threads mostly wait for each other, and padding stops showing in
the timings). Wall time on a shared machine moves by tens of percent with the other jobs;
CPU time less; the padding shares not at all.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SOURCES = ["examples/data/gsm8k_gpt3_50x4.jsonl", "examples/data/qwen25math_math_25x8.jsonl"]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
RUNS = {  # --runs key: (label, how): None the baseline Trainer, {"bfd": ...} TRL, else tf-train flags
    "trainer": ("baseline Trainer", None),
    "tf": ("tf-train", {}),
    "tf-packing": ("tf-train --packing", {"packing": True}),
    "trl": ("TRL SFT padding_free", {"bfd": False}),
    "trl-bfd": ("TRL SFT packing bfd", {"bfd": True}),
    # what packing alone does to random (not length-grouped) batches; tiny model only
    "tf-random": ("tf-train, random order", {"group_by_length": False}),
    "tf-random-packing": ("  + --packing", {"group_by_length": False, "packing": True}),
}


def fused_samples(out: Path) -> Path:
    """tf-grade | tf-cluster | tf-fuse over the bundled trajectories (cached)."""
    dest = out / "fused.jsonl"
    if dest.exists():
        return dest
    chunks = []
    for src in SOURCES:
        grade = subprocess.Popen([str(BIN / "tf-grade"), "-q", str(ROOT / src)], stdout=subprocess.PIPE)
        cluster = subprocess.Popen([str(BIN / "tf-cluster"), "-q"], stdin=grade.stdout, stdout=subprocess.PIPE)
        fuse = subprocess.run([str(BIN / "tf-fuse"), "-q"], stdin=cluster.stdout, capture_output=True, check=True)
        chunks.append(fuse.stdout)
    dest.write_bytes(b"".join(chunks))
    return dest


def pick(records: list[dict], tokenizer, max_length: int, limit: int) -> list[dict]:
    """The first ``limit`` samples that fit ``max_length``: fused and RFT alternating, so
    the set holds both kinds (as a real TrajFusion set does)."""
    from tf_tools.training.data import DataConfig, tokenize_record

    fits = [r for r in records if len(tokenize_record(r, tokenizer, DataConfig())) <= max_length]
    fused = [r for r in fits if r.get("kind") == "fused"]
    rft = [r for r in fits if r.get("kind") != "fused"]
    mixed = [r for pair in zip(fused, rft, strict=False) for r in pair]
    mixed += fused[len(rft):] + rft[len(fused):]
    return mixed[:limit]


class Clock:
    """(wall, cpu, non-padding tokens) at the end of every optimizer step."""

    def __init__(self) -> None:
        self.marks: list[tuple[float, float, int]] = []

    def mark(self, tokens: int) -> None:
        self.marks.append((time.perf_counter(), time.process_time(), tokens))

    def steady(self) -> tuple[float | None, float | None]:
        """Useful tokens per wall second and per CPU second over steps 2+."""
        if len(self.marks) < 2:
            return None, None
        (w0, c0, t0), (w1, c1, t1) = self.marks[0], self.marks[-1]
        return (t1 - t0) / (w1 - w0), (t1 - t0) / (c1 - c0)


def run_trainer(model_path: str, records: list[dict], max_length: int, gb: int, args) -> dict:
    """The baseline: a plain Trainer and a padding collator, the default random order."""
    import torch
    from accelerate.state import AcceleratorState
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        DataCollatorForSeq2Seq,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )
    from transformers.utils import logging as hf_logging

    from tf_tools.training.data import DataConfig, tokenize_record

    hf_logging.set_verbosity_error()
    tok = AutoTokenizer.from_pretrained(model_path)
    rows = []
    for r in records:  # the same token ids and loss mask tf-train uses
        s = tokenize_record(r, tok, DataConfig(max_length=max_length))
        ids = s.input_ids.tolist()
        rows.append({"input_ids": ids, "attention_mask": [1] * len(ids),
                     "labels": [t if m else -100 for t, m in zip(ids, s.trained.tolist(), strict=True)]})
    pad = DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100)
    seen = {"tokens": 0, "slots": 0}
    micro_trained: list[int] = []

    def collate(features):
        batch = pad(features)
        seen["tokens"] += int(batch["attention_mask"].sum())
        seen["slots"] += batch["input_ids"].numel()
        micro_trained.append(int((batch["labels"][:, 1:] != -100).sum()))
        return batch

    clock = Clock()

    class Steps(TrainerCallback):
        def on_step_end(self, targs, state, control, **kw):  # noqa: ANN001, ANN003
            clock.mark(state.num_input_tokens_seen)

    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    targs = TrainingArguments(
        output_dir=str(args.out / "trainer"), per_device_train_batch_size=args.micro_batch,
        gradient_accumulation_steps=gb // args.micro_batch, num_train_epochs=1,
        learning_rate=args.lr, lr_scheduler_type="cosine", max_grad_norm=1.0,
        warmup_steps=math.ceil(0.03 * math.ceil(len(rows) / gb)),
        weight_decay=0.0, save_strategy="no", report_to=[], logging_steps=1, seed=0,
        use_cpu=True, dataloader_num_workers=0, disable_tqdm=True, remove_unused_columns=False,
        include_num_input_tokens_seen="non_padding",
    )
    trainer = Trainer(model=model, args=targs, train_dataset=rows, data_collator=collate,
                      callbacks=[Steps()])
    with contextlib.redirect_stdout(sys.stderr):  # the Trainer prints its log dicts
        metrics = trainer.train().metrics
    AcceleratorState._reset_state(True)
    wall, cpu = clock.steady()
    accum = gb // args.micro_batch
    return {"tokens": seen["tokens"], "padding": 1 - seen["tokens"] / seen["slots"],
            "seconds": metrics["train_runtime"], "steady": wall, "cpu": cpu, "steps": len(clock.marks),
            "losses": [h["loss"] for h in trainer.state.log_history if "loss" in h],
            "trained": [sum(micro_trained[i:i + accum]) for i in range(0, len(micro_trained), accum)]}


def run_trl(model_path: str, records: list[dict], max_length: int, gb: int, args, bfd: bool) -> dict:
    """TRL's SFTTrainer with its own tokenisation, loss mask and packing (bench/train_trl.py)."""
    from train_trl import run_trl as trl_run

    clock = Clock()
    out = trl_run(model_path, records, max_length, gb, args, bfd, clock)
    wall, cpu = clock.steady()
    return {**out, "steady": wall, "cpu": cpu}


def run_tf_train(model_path: str, records: list[dict], run: Path, max_length: int, gb: int,
                 args, **flags) -> dict:
    """tf-train's core, in this process (as `tf-train -m M data -o run ...` runs it)."""
    from tf_tools.training import TrainConfig, train

    cfg = TrainConfig(model=model_path, output=str(run), overwrite=run.exists(), epochs=1,
                      global_batch_size=gb, micro_batch_size=args.micro_batch, lr=args.lr,
                      max_length=max_length, quiet=True, **flags)
    clock = Clock()
    steps: list = []

    def on_step(info) -> None:  # noqa: ANN001
        clock.mark(info.tokens)
        steps.append(info)

    m = train(iter(records), cfg, on_step=on_step)
    wall, cpu = clock.steady()
    trained = [b.trained_tokens - a for a, b in zip([0] + [i.trained_tokens for i in steps], steps, strict=False)]
    return {"tokens": m["tokens_seen"], "padding": m["padding_share"], "seconds": m["train_seconds"],
            "steady": wall, "cpu": cpu, "steps": m["steps"], "losses": [i.loss for i in steps],
            "trained": trained}


def _median(xs: list[float]) -> float:
    xs = sorted(xs)
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2


def report(name: str, tries: dict[str, list[dict]], meta: dict) -> list[str]:
    """One table per model: medians over the rounds. Each ratio is the median of the
    per-round ratios (a run against the baseline of the same round, measured next to it):
    useful tok/s over the whole loop (wall clock), and over steps 2+ (the first step carries
    one-time start-up costs on both sides) per wall second and per CPU second of this
    process (steadier than wall time on a shared machine)."""
    base = tries["baseline Trainer"]
    rounds = len(base)

    def rate(r: dict) -> float:
        return r["tokens"] / r["seconds"]

    lines = [f"\n== {name}: {meta['n']} samples, {base[0]['tokens']} non-padding tokens, "
             f"max length {meta['max_length']}, {base[0]['steps']} optimizer steps of "
             f"{meta['gb']} samples; medians of {rounds} rounds",
             f"{'run':<26}{'padding':>8}{'loop s':>8}{'tok/s':>8}{'ratio':>7}"
             f"{'2+ tok/s':>10}{'ratio':>7}{'2+ tok/cpu-s':>14}{'ratio':>7}"]
    for label, runs in tries.items():
        pairs = list(zip(runs, base, strict=True))
        line = (f"{label:<26}{100 * runs[0]['padding']:>7.1f}%"
                f"{_median([r['seconds'] for r in runs]):>8.1f}{_median([rate(r) for r in runs]):>8.0f}"
                f"{_median([rate(r) / rate(b) for r, b in pairs]):>6.2f}x")
        if all(r["steady"] and b["steady"] for r, b in pairs):
            line += (f"{_median([r['steady'] for r in runs]):>10.0f}"
                     f"{_median([r['steady'] / b['steady'] for r, b in pairs]):>6.2f}x"
                     f"{_median([r['cpu'] for r in runs]):>14.0f}"
                     f"{_median([r['cpu'] / b['cpu'] for r, b in pairs]):>6.2f}x")
        lines.append(line)
    lines.append("ratio (whole loop) of every round: " + "; ".join(
        f"{label.strip()} " + " ".join(f"{rate(r) / rate(b):.2f}" for r, b in zip(runs, base, strict=True))
        for label, runs in tries.items() if label != "baseline Trainer"))
    lines.append("loop seconds of every round: " + "; ".join(
        f"{label.strip()} " + " ".join(f"{r['seconds']:.1f}" for r in runs)
        for label, runs in tries.items()))
    return lines + versus(tries)


def epoch_loss(r: dict) -> float:
    """The loss over every trained token of the epoch: the step losses (each a mean over the
    step's trained tokens) weighted by those tokens."""
    return sum(loss * n for loss, n in zip(r["losses"], r["trained"], strict=True)) / sum(r["trained"])


def versus(tries: dict[str, list[dict]]) -> list[str]:
    """The loss and trained tokens of every run; tf-train against TRL's SFTTrainer: the
    median of the per-round speed ratios (whole loop, steps 2+, CPU), the loss difference."""
    lines = ["loss over the epoch's trained tokens / of the last step, trained tokens, steps:"]
    for label, runs in tries.items():
        r = runs[0]
        lines.append(f"  {label.strip():<24}{_median([epoch_loss(x) for x in runs]):.4f} / "
                     f"{_median([x['losses'][-1] for x in runs]):.4f}  {sum(r['trained'])} "
                     f"trained tokens in {len(r['losses'])} steps")
    checks = [r["check"] for runs in tries.values() for r in runs if r.get("check")]
    if checks:
        c = checks[0]
        lines.append(f"TRL's tokenisation against tf-train's: the same token ids and loss mask in "
                     f"{c['same']}/{c['n']} samples; trained tokens TRL {c['trl']}, tf-train {c['tf']}")
    trl = [label for label in tries if label.startswith("TRL")]
    ours = [label for label in ("tf-train --packing", "tf-train") if label in tries]
    for a in ours:
        for b in trl:
            pairs = list(zip(tries[a], tries[b], strict=True))
            speed = [x["tokens"] / x["seconds"] / (y["tokens"] / y["seconds"]) for x, y in pairs]
            line = f"{a} / {b}: {_median(speed):.2f}x whole loop"
            if all(x["steady"] and y["steady"] for x, y in pairs):
                line += (f", {_median([x['steady'] / y['steady'] for x, y in pairs]):.2f}x steps 2+, "
                         f"{_median([x['cpu'] / y['cpu'] for x, y in pairs]):.2f}x per CPU second")
            diff = _median([epoch_loss(x) - epoch_loss(y) for x, y in pairs])
            lines.append(f"{line} (rounds {' '.join(f'{v:.2f}' for v in speed)}); "
                         f"loss difference {diff:+.4f}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="tiny,smollm2")
    ap.add_argument("--tiny-samples", type=int, default=96)
    ap.add_argument("--tiny-max-length", type=int, default=1024)
    ap.add_argument("--smollm2-samples", type=int, default=24)
    ap.add_argument("--smollm2-max-length", type=int, default=1024,
                    help="only samples this short (CPU time); --max-length of the runs")
    ap.add_argument("--global-batch", type=int, default=16, help="tiny model")
    ap.add_argument("--smollm2-global-batch", type=int, default=8)
    ap.add_argument("--micro-batch", type=int, default=4)
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads for every run (1: an oversubscribed machine makes "
                         "multi-threaded timings measure waiting, not work)")
    ap.add_argument("--tiny-rounds", type=int, default=3)
    ap.add_argument("--smollm2-rounds", type=int, default=3)
    ap.add_argument("--runs", default=",".join(RUNS),
                    help="which runs, comma-separated (the baseline Trainer always runs: the "
                         "table's ratios are against it); tf-random* only for the tiny model")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "train")
    args = ap.parse_args()
    wanted = set(args.runs.split(",")) | {"trainer"}
    if wanted - set(RUNS):
        ap.error(f"unknown --runs {', '.join(sorted(wanted - set(RUNS)))}; known: {', '.join(RUNS)}")
    trl_missing = None
    if wanted & {"trl", "trl-bfd"}:
        from train_trl import missing

        trl_missing = missing()
        if trl_missing:
            print(f"bench: skipping the TRL SFTTrainer runs: {trl_missing}", file=sys.stderr)
            wanted -= {"trl", "trl-bfd"}
    os.environ.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    args.out.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT))
    import torch
    from transformers import AutoTokenizer

    from tf_tools.models import export_smollm2

    torch.set_num_threads(args.threads)

    start = time.perf_counter()
    data = fused_samples(args.out)
    records = [json.loads(line) for line in data.read_text().splitlines() if line.strip()]
    print(f"bench: {len(records)} fused/RFT samples from {', '.join(SOURCES)}", file=sys.stderr)
    out_lines = []
    for name in args.models.split(","):
        if name == "tiny":
            from tests.tiny_model import build_tiny_qwen2

            path, limit, max_length = str(build_tiny_qwen2(args.out / "tiny-qwen2")), args.tiny_samples, args.tiny_max_length
            gb = args.global_batch
        else:
            cache = Path(os.environ.get("TF_TOOLS_CACHE", Path.home() / ".cache" / "tf-tools"))
            path, limit, max_length = str(export_smollm2(cache / "smollm2-135m-instruct")), args.smollm2_samples, args.smollm2_max_length
            gb = args.smollm2_global_batch
        chosen = pick(records, AutoTokenizer.from_pretrained(path), max_length, limit)
        meta = {"n": len(chosen), "max_length": max_length, "gb": gb}
        runs = [(label, flags) for key, (label, flags) in RUNS.items() if key in wanted
                and (name == "tiny" or not key.startswith("tf-random"))]
        rounds = args.tiny_rounds if name == "tiny" else args.smollm2_rounds
        tries: dict[str, list[dict]] = {label: [] for label, _ in runs}
        for round_no in range(rounds):  # interleaved, alternating order: load drifts
            for label, flags in (runs if round_no % 2 == 0 else runs[::-1]):
                print(f"bench: {name}: round {round_no + 1}/{rounds}: {label.strip()} ...",
                      file=sys.stderr, flush=True)
                if flags is None:
                    tries[label].append(run_trainer(path, chosen, max_length, gb, args))
                elif "bfd" in flags:
                    tries[label].append(run_trl(path, chosen, max_length, gb, args, **flags))
                else:
                    run = args.out / f"run-{name}-{label.strip().replace(' ', '_')}"
                    tries[label].append(run_tf_train(path, chosen, run, max_length, gb, args, **flags))
        lines = report(name, tries, meta)
        print("\n".join(lines), flush=True)
        out_lines += lines
    print(f"\nbench: {time.perf_counter() - start:.0f} s in all", file=sys.stderr)


if __name__ == "__main__":
    main()
