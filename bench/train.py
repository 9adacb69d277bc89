"""Benchmark: useful (non-padding) tokens per second of tf-train, with and without --packing,
against a plain transformers Trainer with a padding collator, on the same fused samples.

    python bench/train.py [--models tiny,smollm2] [--tiny-samples 96] [--smollm2-samples 32]

The samples are real TrajFusion training data: the bundled teacher trajectories
(examples/data: GSM8K with GPT-3 solutions, MATH with Qwen2.5-Math solutions) through
tf-grade | tf-cluster | tf-fuse. For each model (the tiny random Qwen2 of the tests and
SmolLM2-135M-Instruct) the same samples, the same steps (micro-batches of 4 samples, global
batch 16 for the tiny model and 8 for SmolLM2, which trains at a few dozen tokens/s on a
shared 2-core CPU), lr, schedule and clipping run three ways in one process tree:

- baseline: transformers ``Trainer``, ``DataCollatorForSeq2Seq`` (pads every micro-batch to
  its longest sample, labels -100 on the prompt: the same tokens and loss mask as ours), the
  default random order;
- tf-train (length-grouped padded micro-batches), and tf-train --packing.

Useful tokens/s = non-padding tokens / training-loop seconds (model loading and tokenisation
left out on both sides: the Trainer's ``train_runtime``, tf-train's ``train_seconds``). The
padding share counts what each side actually fed the model. CPU timings on a shared machine
move by 10-20% between runs; the padding shares do not.
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


def run_trainer(model_path: str, records: list[dict], max_length: int, gb: int, args) -> dict:
    """The baseline: a plain Trainer and a padding collator."""
    import torch
    from accelerate.state import AcceleratorState
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        DataCollatorForSeq2Seq,
        Trainer,
        TrainingArguments,
    )
    from transformers.utils import logging as hf_logging

    from tf_tools.training.data import DataConfig, tokenize_record

    hf_logging.set_verbosity_error()
    tok = AutoTokenizer.from_pretrained(model_path)
    rows = []
    for r in records:
        s = tokenize_record(r, tok, DataConfig(max_length=max_length))
        ids = s.input_ids.tolist()
        rows.append({"input_ids": ids, "attention_mask": [1] * len(ids),
                     "labels": [t if m else -100 for t, m in zip(ids, s.trained.tolist(), strict=True)]})
    pad = DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100)
    seen = {"tokens": 0, "slots": 0}

    def collate(features):
        batch = pad(features)
        seen["tokens"] += int(batch["attention_mask"].sum())
        seen["slots"] += batch["input_ids"].numel()
        return batch

    from transformers import TrainerCallback

    marks: list[tuple[float, int]] = []  # (time, non-padding tokens) at each step's end

    class Clock(TrainerCallback):
        def on_step_end(self, targs, state, control, **kw):  # noqa: ANN001, ANN003
            marks.append((time.perf_counter(), state.num_input_tokens_seen))

    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    targs = TrainingArguments(
        output_dir=str(args.out / "trainer"), per_device_train_batch_size=args.micro_batch,
        gradient_accumulation_steps=gb // args.micro_batch, num_train_epochs=1,
        learning_rate=args.lr, lr_scheduler_type="cosine", max_grad_norm=1.0,
        warmup_steps=math.ceil(0.03 * math.ceil(len(rows) / gb)),
        weight_decay=0.0, save_strategy="no", report_to=[], logging_steps=10_000, seed=0,
        use_cpu=True, dataloader_num_workers=0, disable_tqdm=True, remove_unused_columns=False,
        include_num_input_tokens_seen="non_padding",
    )
    trainer = Trainer(model=model, args=targs, train_dataset=rows, data_collator=collate,
                      callbacks=[Clock()])
    with contextlib.redirect_stdout(sys.stderr):  # the Trainer prints its log dicts
        metrics = trainer.train().metrics
    AcceleratorState._reset_state(True)
    seconds = metrics["train_runtime"]
    steady = (marks[-1][1] - marks[0][1]) / (marks[-1][0] - marks[0][0]) if len(marks) > 1 else None
    return {"tokens": seen["tokens"], "slots": seen["slots"], "seconds": seconds,
            "loss": metrics.get("train_loss"), "steady": steady, "steps": len(marks)}


def run_tf_train(model_path: str, data: Path, run: Path, max_length: int, gb: int, args,
                 *extra: str) -> dict:
    cmd = [str(BIN / "tf-train"), "-m", model_path, str(data), "-o", str(run), "--overwrite",
           "--epochs", "1", "--global-batch-size", str(gb), "--micro-batch-size",
           str(args.micro_batch), "--lr", str(args.lr), "--max-length", str(max_length), "-q", *extra]
    proc = subprocess.run(cmd, capture_output=True, env=ENV)
    if proc.returncode != 0:
        sys.exit(f"bench: {' '.join(cmd)} failed:\n{proc.stderr.decode()[-3000:]}")
    m = json.loads(proc.stdout)
    log = [json.loads(line) for line in (run / "loss.jsonl").read_text().splitlines()]
    steady = ((log[-1]["tokens"] - log[0]["tokens"]) / (log[-1]["seconds"] - log[0]["seconds"])
              if len(log) > 1 else None)
    return {"steady": steady, "tokens": m["tokens_seen"], "slots": round(m["tokens_seen"] / (1 - m["padding_share"]))
            if m["padding_share"] < 1 else 0, "seconds": m["train_seconds"], "loss": m["final_loss"],
            "padding": m["padding_share"], "steps": m["steps"]}


def report(name: str, results: dict[str, dict]) -> list[str]:
    """One table per model: padding, loop seconds, useful tok/s over the whole loop and over
    steps 2+ (the first step carries one-time start-up costs on both sides), ratios."""
    base = results["baseline Trainer"]
    lines = [f"\n== {name}: {results['_n']} samples, {base['tokens']} non-padding tokens, "
             f"max length {results['_max_length']}, {base['steps']} optimizer steps",
             f"{'run':<22}{'padding':>8}{'loop s':>8}{'useful tok/s':>14}{'ratio':>7}"
             f"{'steps 2+ tok/s':>16}{'ratio':>7}"]
    for label, r in results.items():
        if label.startswith("_"):
            continue
        pad = r.get("padding", 1 - r["tokens"] / r["slots"])
        rate = r["tokens"] / r["seconds"]
        steady = r.get("steady")
        lines.append(
            f"{label:<22}{100 * pad:>7.1f}%{r['seconds']:>8.1f}{rate:>14.0f}"
            f"{rate / (base['tokens'] / base['seconds']):>6.2f}x"
            + (f"{steady:>16.0f}{steady / base['steady']:>6.2f}x" if steady and base.get("steady") else ""))
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="tiny,smollm2")
    ap.add_argument("--tiny-samples", type=int, default=96)
    ap.add_argument("--tiny-max-length", type=int, default=1024)
    ap.add_argument("--smollm2-samples", type=int, default=16)
    ap.add_argument("--smollm2-max-length", type=int, default=384)
    ap.add_argument("--global-batch", type=int, default=16, help="tiny model")
    ap.add_argument("--smollm2-global-batch", type=int, default=8)
    ap.add_argument("--micro-batch", type=int, default=4)
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "train")
    args = ap.parse_args()
    os.environ.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    args.out.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT))
    from transformers import AutoTokenizer

    from tf_tools.models import export_smollm2

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
        subset = args.out / f"{name}.jsonl"
        subset.write_text("".join(json.dumps(r) + "\n" for r in chosen))
        results: dict[str, dict] = {"_n": len(chosen), "_max_length": max_length}
        print(f"bench: {name}: baseline Trainer ...", file=sys.stderr)
        results["baseline Trainer"] = run_trainer(path, chosen, max_length, gb, args)
        print(f"bench: {name}: tf-train ...", file=sys.stderr)
        results["tf-train"] = run_tf_train(path, subset, args.out / f"run-{name}", max_length, gb, args)
        print(f"bench: {name}: tf-train --packing ...", file=sys.stderr)
        results["tf-train --packing"] = run_tf_train(path, subset, args.out / f"run-{name}-packed",
                                                     max_length, gb, args, "--packing")
        lines = report(name, results)
        print("\n".join(lines), flush=True)
        out_lines += lines
    print(f"\nbench: {time.perf_counter() - start:.0f} s in all", file=sys.stderr)


if __name__ == "__main__":
    main()
