"""Where tf-train --packing and TRL's padding-free SFTTrainer differ in speed: one packed
micro-batch, forward + backward, with TRL's parts swapped for tf-train's one at a time.

    python bench/train_explain.py [--model smollm2|tiny] [--samples 4] [--repeats 2] [--profile]

The micro-batch is the first ``--samples`` samples bench/train.py picks for the model (the
bundled trajectories through tf-grade | tf-cluster | tf-fuse), flattened into one row by
TRL's own collator (``padding_free=True``) and by tf-train's (``collate(..., packing=True)``).
Timed in CPU seconds of this process (and wall seconds), median of ``--repeats`` after one
warm-up, one torch thread:

- TRL: ``SFTTrainer.compute_loss`` on its batch (sdpa; transformers builds the mask from the
  restarting ``position_ids``) and backward;
- TRL, attention per sample: the same with tf-train's per-sample causal sdpa
  (tf_tools/training/attention.py), which reads the ``cu_seq_lens_q`` TRL's batch carries;
- TRL, LM head at trained positions: the model's own head through ``logits_to_keep`` and a
  cross-entropy, instead of TRL's chunked "fused" head (on a CPU it scores every position,
  recomputes the logits in backward and computes entropy and top-1 for its metrics);
- TRL, both swapped; tf-train (``loss.forward_losses`` on its packed ``Batch``).

It also reports which mask the sdpa layers get on TRL's row (shape, ``is_causal``), the loss
of TRL's and tf-train's forward (the same if no token attends across samples), the time of
each collator and of one fused AdamW step. It does not time whole trainers (bench/train.py
does) and does not run on a GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _timed(fn, repeats: int) -> tuple[float, float, float]:  # noqa: ANN001
    """(median CPU seconds, median wall seconds, last loss) of ``fn`` (forward + backward,
    returns the loss). With one torch thread CPU time is the work done, whatever the other
    jobs of a shared machine take from the wall clock."""
    cpu, wall, loss = [], [], 0.0
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        loss = float(fn())
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return statistics.median(cpu), statistics.median(wall), loss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=["smollm2", "tiny"], default="smollm2")
    ap.add_argument("--samples", type=int, default=4, help="samples in the micro-batch")
    ap.add_argument("--max-length", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--profile", action="store_true", help="also print torch profiler tables")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "train")
    args = ap.parse_args()
    os.environ.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    sys.path.insert(0, str(ROOT))
    import json

    import datasets
    import torch
    import torch.nn.functional as F
    from train import fused_samples, pick
    from train_trl import generation_template
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
    from transformers.utils import logging as hf_logging
    from trl import SFTConfig, SFTTrainer

    from tf_tools.models import export_smollm2
    from tf_tools.training import attention
    from tf_tools.training.batches import collate
    from tf_tools.training.data import DataConfig, tokenize_record
    from tf_tools.training.loss import forward_losses

    torch.set_num_threads(args.threads)
    hf_logging.set_verbosity_error()
    datasets.disable_progress_bars()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.model == "tiny":
        from tests.tiny_model import build_tiny_qwen2

        path = str(build_tiny_qwen2(args.out / "tiny-qwen2"))
    else:
        cache = Path(os.environ.get("TF_TOOLS_CACHE", Path.home() / ".cache" / "tf-tools"))
        path = str(export_smollm2(cache / "smollm2-135m-instruct"))
    records = [json.loads(line) for line in fused_samples(args.out).read_text().splitlines() if line.strip()]
    tok = AutoTokenizer.from_pretrained(path)
    chosen = pick(records, tok, args.max_length, args.samples)
    samples = [tokenize_record(r, tok, DataConfig(max_length=args.max_length)) for r in chosen]

    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="sdpa")
    tok.chat_template = generation_template(tok, chosen)
    config = SFTConfig(output_dir=str(args.out / "trl-explain"), use_cpu=True, bf16=False,
                       gradient_checkpointing=False, report_to=[], assistant_only_loss=True,
                       padding_free=True, max_length=None, per_device_train_batch_size=args.samples,
                       disable_tqdm=True)
    with contextlib.redirect_stdout(sys.stderr):
        trainer = SFTTrainer(model=model, args=config, processing_class=tok,
                             train_dataset=datasets.Dataset.from_list([{"messages": r["messages"]} for r in chosen]))
    rows = [trainer.train_dataset[i] for i in range(len(chosen))]
    t0 = time.perf_counter()
    trl_batch = trainer.data_collator(rows)
    trl_collate = time.perf_counter() - t0
    t0 = time.perf_counter()
    tf_batch = collate(samples, tok.pad_token_id or 0, True, args.max_length, attention.VARLEN)
    tf_collate = time.perf_counter() - t0
    model = trainer.model
    model.train()
    n_tokens = trl_batch["input_ids"].numel()
    n_trained = int((trl_batch["labels"][:, 1:] != -100).sum())

    seen = {}  # the mask transformers hands to sdpa on TRL's row

    def spy(module, query, key, value, attention_mask, **kw):  # noqa: ANN001, ANN003, ANN202
        seen.setdefault("mask", None if attention_mask is None else tuple(attention_mask.shape))
        seen.setdefault("is_causal", kw.get("is_causal"))
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kw)

    def trl_loss() -> float:
        model.zero_grad(set_to_none=True)
        loss = trainer.compute_loss(model, dict(trl_batch))
        loss.backward()
        return loss.item()

    def plain_head_loss() -> float:  # the model's own LM head at trained positions only
        model.zero_grad(set_to_none=True)
        targets = trl_batch["labels"][:, 1:]
        positions = (targets != -100).any(0).nonzero().squeeze(1)
        kw = {k: v for k, v in trl_batch.items() if k != "labels"}
        logits = model(**kw, use_cache=False, logits_to_keep=positions).logits
        loss = F.cross_entropy(logits.flatten(0, 1).float(), targets[:, positions].flatten())
        loss.backward()
        return loss.item()

    def tf_loss() -> float:
        model.zero_grad(set_to_none=True)
        losses, _ = forward_losses(model, tf_batch, keep_logits=True)
        loss = losses.mean()
        loss.backward()
        return loss.item()

    ALL_ATTENTION_FUNCTIONS["sdpa"] = spy
    try:
        trl_loss()  # warm-up, and the mask seen
    finally:
        ALL_ATTENTION_FUNCTIONS["sdpa"] = sdpa_attention_forward
    variants = [("TRL SFTTrainer.compute_loss", "sdpa", trl_loss),
                ("TRL, attention per sample", attention.VARLEN, trl_loss),
                ("TRL, LM head at trained pos.", "sdpa", plain_head_loss),
                ("TRL, both swapped", attention.VARLEN, plain_head_loss),
                ("tf-train forward_losses", attention.VARLEN, tf_loss)]
    attention.register()
    results = []
    for label, attn, fn in variants:
        model.set_attn_implementation(attn)
        results.append((label, *_timed(fn, args.repeats)))
    model.set_attn_implementation("sdpa")

    lengths = [len(s) for s in samples]
    print(f"== {args.model}: one micro-batch of {len(samples)} samples ({'+'.join(map(str, lengths))} = "
          f"{n_tokens} tokens, {n_trained} trained) in one packed row; forward + backward, median of "
          f"{args.repeats}, {args.threads} torch thread(s)")
    print(f"sdpa on TRL's row gets mask {seen.get('mask')} is_causal={seen.get('is_causal')}")
    base = results[0][1]
    print(f"{'variant':<32}{'cpu s':>8}{'vs TRL':>8}{'wall s':>8}{'loss':>9}")
    for label, cpu, wall, loss in results:
        print(f"{label:<32}{cpu:>8.2f}{cpu / base:>7.2f}x{wall:>8.2f}{loss:>9.4f}")
    print(f"collate: TRL {1000 * trl_collate:.1f} ms, tf-train {1000 * tf_collate:.1f} ms")
    trainer.create_optimizer()
    opt = trainer.optimizer
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    t0 = time.perf_counter()
    opt.step()
    print(f"optimizer: {type(opt).__name__} fused={opt.defaults.get('fused')} ({1000 * (time.perf_counter() - t0):.0f} ms "
          f"a step, the same kernel as tf-train's)")
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        for label, attn, fn in (variants[0], variants[-1]):
            model.set_attn_implementation(attn)
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                fn()
            print(f"\n-- {label}\n" + prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
        model.set_attn_implementation("sdpa")


if __name__ == "__main__":
    main()
