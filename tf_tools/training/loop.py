"""tf-train's core: supervised fine-tuning of a causal LM on chat records, with accelerate.

``train(records, cfg)`` tokenises every record (``data.py``), plans the optimizer steps
(length-grouped global batches of ``global_batch_size`` samples, the same plan whatever the
number of processes), and runs AdamW with a cosine schedule, warmup and gradient clipping.
The loss of a step is the mean over every trained token of the global batch, so padding,
packing, the micro-batch size and the number of processes change how a step is computed,
not what it computes.

Distribution is accelerate's: the same code runs alone, under ``torchrun`` or under
``accelerate launch`` with DDP, FSDP or DeepSpeed ZeRO-3 (examples/accelerate/). We write
no distributed code beyond what accelerate asks for: ``prepare``, ``accumulate``,
``backward``, ``save_state`` / ``load_state``, ``reduce`` of two numbers per step.

It does not evaluate, does not stream data from disk (the tokenised set is held in memory by
every process) and does not cut long samples.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

from tf_tools import __version__, console
from tf_tools.errors import Interrupted, TfError, UsageError
from tf_tools.training import attention
from tf_tools.training.batches import collate, plan_epoch, rank_share
from tf_tools.training.checkpoints import RunFolder
from tf_tools.training.config import TrainConfig, identity
from tf_tools.training.data import (
    LoadStats,
    Sample,
    by_kind_and_k,
    fingerprint,
    load_samples,
)
from tf_tools.training.loss import forward_losses, supports_logits_to_keep


@dataclass
class StepInfo:
    """What a step reports (loss log line, hooks)."""

    step: int
    epoch: float
    loss: float
    lr: float
    grad_norm: float | None
    tokens: int  # non-padding input tokens seen so far (all processes)
    trained_tokens: int  # loss tokens seen so far
    slots: int  # rows x width processed so far (tokens + padding)
    seconds: float  # training time so far (model load and tokenisation not counted)
    total_steps: int = 0  # the run's optimizer steps (for hooks; not in the loss log)

    def record(self) -> dict[str, Any]:
        """The loss log line."""
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()
                if k != "total_steps"}


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


def _load_tokenizer(path: str) -> Any:
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise TfError(f"transformers could not load the tokenizer of {path}: {exc}".splitlines()[0]) from exc
    if not getattr(tok, "chat_template", None):
        raise TfError(f"the tokenizer of {path} has no chat template",
                      hint="tf-train formats samples with the student's chat template; add one "
                           "to tokenizer_config.json (or chat_template.jinja)")
    if not getattr(tok, "is_fast", False):
        raise TfError(f"the tokenizer of {path} is not a fast tokenizer (no offset mapping)")
    return tok


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


def _student_dtype(model_path: str, save_dtype: str) -> Any:
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


def train(
    records: Iterable[dict[str, Any]],
    cfg: TrainConfig,
    where: Callable[[], str] = lambda: "",
    on_step: Callable[[StepInfo], None] | None = None,
) -> dict[str, Any]:
    """Train; returns the manifest record (also written to ``run/manifest.json``)."""
    from accelerate.state import AcceleratorState

    try:
        return _train(records, cfg, where, on_step)
    finally:
        # leave the process clean for a second run (tests, notebooks): DESIGN §6
        AcceleratorState._reset_state(True)


def _train(records: Iterable[dict[str, Any]], cfg: TrainConfig, where: Callable[[], str],
           on_step: Callable[[StepInfo], None] | None) -> dict[str, Any]:
    cfg.check()
    from tf_tools.models import check_model_path

    check_model_path(cfg.model)
    import torch
    from accelerate import Accelerator, PartialState
    from accelerate.utils import GradientAccumulationPlugin, set_seed
    from transformers import get_cosine_schedule_with_warmup
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    # several processes without CUDA (torchrun on CPU, gloo): accelerate needs cpu=True to
    # see them, else every process trains alone
    cpu = not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1
    state = PartialState(cpu=cpu)
    world, rank, main = state.num_processes, state.process_index, state.is_main_process
    if not main:  # only rank 0 logs
        logging.getLogger("tf_tools").setLevel(logging.ERROR)
        hf_logging.set_verbosity_error()
    run = RunFolder(cfg.output)
    mode = run.status(cfg.resume, cfg.overwrite)

    tokenizer = _load_tokenizer(cfg.model)
    skipped: list[str] = []
    samples, stats = load_samples(records, tokenizer, cfg.data(), where, cfg.keep_going,
                                  skipped.append)
    _report_skips(skipped, stats, cfg)
    if not samples:
        raise TfError("no training samples" + (" left" if stats.read else " in the input"))
    ident = identity(cfg, cfg.model, fingerprint(samples), len(samples))
    if mode == "resume":
        run.check_same_run(ident)
        finished = run.read_manifest()
        if finished is not None:
            console.log.warning("%s already finished; its manifest follows", cfg.output)
            return finished
    state.wait_for_everyone()
    if main:
        if mode == "overwrite":
            run.clear()
        run.path.mkdir(parents=True, exist_ok=True)
        run.write_identity(ident)
    state.wait_for_everyone()

    accum = max(1, math.ceil(cfg.global_batch_size / (cfg.micro_batch_size * world)))
    n_micro = accum * world
    lengths = [len(s) for s in samples]
    steps_per_epoch = len(plan_epoch(lengths, 0, cfg.seed, cfg.global_batch_size, n_micro,
                                     cfg.group_by_length))
    total_steps = cfg.epochs * steps_per_epoch
    if cfg.max_steps is not None:
        total_steps = min(total_steps, cfg.max_steps)
    warmup = math.ceil(cfg.warmup_ratio * total_steps)

    # the accumulation steps follow from --global-batch-size; a plugin (not the plain
    # argument) keeps ACCELERATE_GRADIENT_ACCUMULATION_STEPS from overriding them
    accelerator = Accelerator(cpu=cpu, mixed_precision=_precision(cfg.precision),
                              gradient_accumulation_plugin=GradientAccumulationPlugin(num_steps=accum),
                              step_scheduler_with_optimizer=False)
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
    set_seed(cfg.seed)
    model = _load_model(cfg)  # after Accelerator: ZeRO-3 partitions while loading
    attn = getattr(model.config, "_attn_implementation", None) or "sdpa"
    # packed rows under sdpa: attention per sample (no 4D mask over the row, no padding)
    varlen = cfg.packing and attn == "sdpa" and attention.use_varlen(model)
    optimizer = _optimizer(model, cfg)
    scheduler = get_cosine_schedule_with_warmup(optimizer, warmup, total_steps)
    model, optimizer = accelerator.prepare(model, optimizer)
    if accelerator.gradient_accumulation_steps != accum:
        raise UsageError(f"the accelerate/DeepSpeed config sets gradient_accumulation_steps="
                         f"{accelerator.gradient_accumulation_steps}; tf-train derives it from "
                         f"--global-batch-size ({accum} here)",
                         hint="remove gradient_accumulation_steps from the config (or set it to auto)")
    accelerator.register_for_checkpointing(scheduler)
    model.train()

    start_step, resumed_from = 0, None
    totals: dict[str, Any] = {"tokens": 0, "trained_tokens": 0, "slots": 0, "seconds": 0.0}
    latest = run.latest() if mode == "resume" else None
    if latest is not None:
        accelerator.load_state(str(latest))
        saved = run.read_state(latest)
        start_step = int(saved["step"])
        totals = {k: saved[k] for k in totals}
        resumed_from = str(latest)
        console.info(f"resuming from {latest} (step {start_step} of {total_steps})")
    if main:
        run.trim_loss_log(start_step)  # a fresh run starts an empty log

    resolved = {
        "world_size": world, "micro_batches_per_step": n_micro,
        "gradient_accumulation_steps": accum, "steps_per_epoch": steps_per_epoch,
        "total_steps": total_steps, "warmup_steps": warmup,
        "mixed_precision": accelerator.mixed_precision, "attn_implementation": attn,
        "distributed_type": kind,
        "device": str(accelerator.device), "pad_token_id": _pad_id(tokenizer),
        "packed_attention": (None if not cfg.packing else "per-sample sdpa (varlen)" if varlen
                             else "position ids" if "flash" in attn else "4D block mask"),
    }
    console.info(f"{len(samples)} samples, {total_steps} steps ({steps_per_epoch} per epoch), "
                 f"{world} process(es), {accum} micro-batch(es) of <= {cfg.micro_batch_size} per "
                 f"step and process, {resolved['mixed_precision']}, attention {attn}"
                 + (f", packed: {resolved['packed_attention']}" if cfg.packing else ""))

    loop = _Loop(cfg, accelerator, model, optimizer, scheduler, samples, tokenizer,
                 attention.VARLEN if varlen else attn, rank, world, n_micro)
    last: StepInfo | None = None
    log = open(run.loss_log, "a", encoding="utf-8") if main else None  # noqa: SIM115
    stop = _StopOnSignal(accelerator)
    try:
        plan: list[list[list[int]]] = []
        plan_epoch_no = -1
        for step in range(start_step, total_steps):
            epoch, index = divmod(step, steps_per_epoch)
            if epoch != plan_epoch_no:
                plan = plan_epoch(lengths, epoch, cfg.seed, cfg.global_batch_size, n_micro,
                                  cfg.group_by_length)
                plan_epoch_no = epoch
            t0 = time.perf_counter()
            loss, lr, grad_norm, n_tok, n_trained, n_slots = loop.step(plan[index])
            totals["seconds"] += time.perf_counter() - t0
            totals["tokens"] += n_tok
            totals["trained_tokens"] += n_trained
            totals["slots"] += n_slots
            last = StepInfo(step + 1, round((step + 1) / steps_per_epoch, 4), loss, lr,
                            grad_norm, totals["tokens"], totals["trained_tokens"],
                            totals["slots"], totals["seconds"], total_steps)
            if log is not None:
                log.write(json.dumps(last.record()) + "\n")
                log.flush()
            if on_step is not None:
                on_step(last)
            more = step + 1 < total_steps  # the last step ends in final/, not a checkpoint
            stopping = more and stop.requested()
            if more and (stopping or (step + 1) % cfg.save_steps == 0):
                path = run.save_checkpoint(accelerator, step + 1, {"step": step + 1, **totals},
                                           cfg.save_total_limit)
            if stopping:
                raise Interrupted(
                    f"stopped by {stop.name} after step {step + 1} of {total_steps}; "
                    f"checkpoint {path}", hint="run the same command with --resume to go on")
    finally:
        stop.restore()
        if log is not None:
            log.close()

    peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None
    attention.use_sdpa(accelerator.unwrap_model(model))  # the saved model names plain sdpa
    run.save_final(accelerator, model, tokenizer, _student_dtype(cfg.model, cfg.save_dtype))
    manifest = _manifest(cfg, run, last, totals, stats, len(samples), total_steps, resolved,
                         resumed_from, ident["data"])
    if peak is not None:
        manifest["peak_gpu_memory_gib"] = round(peak, 3)
    if main:
        run.write_manifest(manifest)
    accelerator.end_training()
    return manifest


class _StopOnSignal:
    """SIGTERM / SIGUSR1 (a SLURM time limit, ``scancel``, a preemption, ``--signal``) ask for
    a checkpoint at the end of the current step, then a clean stop; every process agrees on
    the step through accelerate's trigger (one all-reduce per step)."""

    SIGNALS = ("SIGTERM", "SIGUSR1")

    def __init__(self, accelerator: Any) -> None:
        self.accelerator = accelerator
        self.name = ""
        self._old: dict[int, Any] = {}
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread
        for name in self.SIGNALS:
            sig = getattr(signal, name, None)
            if sig is not None:
                self._old[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: Any) -> None:
        self.name = signal.Signals(signum).name
        self.accelerator.set_trigger()

    def requested(self) -> bool:
        if self.accelerator.check_trigger():
            self.name = self.name or "a signal to another process"
            return True
        return False

    def restore(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()


def _pad_id(tokenizer: Any) -> int:
    for tid in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if tid is not None:
            return int(tid)
    return 0


class _Loop:
    """One optimizer step over a planned global batch (this process's micro-batches)."""

    def __init__(self, cfg: TrainConfig, accelerator: Any, model: Any, optimizer: Any,
                 scheduler: Any, samples: list[Sample], tokenizer: Any, attn: str, rank: int,
                 world: int, n_micro: int) -> None:
        self.cfg, self.accelerator, self.model = cfg, accelerator, model
        self.optimizer, self.scheduler, self.samples = optimizer, scheduler, samples
        self.pad_id = _pad_id(tokenizer)
        self.capacity = cfg.pack_length or cfg.max_length
        self.attn, self.rank, self.world, self.n_micro = attn, rank, world, n_micro
        self.keep_logits = supports_logits_to_keep(accelerator.unwrap_model(model))

    def step(self, planned: list[list[int]]) -> tuple[float, float, float | None, int, int, int]:
        """(loss, lr, grad norm, tokens, trained tokens, slots) of the step, all processes."""
        import torch

        acc = self.accelerator
        batch_samples = [self.samples[i] for micro in planned for i in micro]
        n_trained = sum(s.n_trained for s in batch_samples)
        n_tokens = sum(len(s) for s in batch_samples)
        # every trained token of the global batch weighs the same: backward() divides by the
        # accumulation steps and DDP/FSDP/DeepSpeed average over processes, so scale back up
        scale = self.world * acc.gradient_accumulation_steps / n_trained
        loss_sum = torch.zeros((), dtype=torch.float64, device=acc.device)
        slots = 0
        for micro in rank_share(planned, self.rank, self.world):
            batch = collate([self.samples[i] for i in micro], self.pad_id, self.cfg.packing,
                            self.capacity, self.attn).to(acc.device)
            slots += batch.n_slots
            with acc.accumulate(self.model):
                losses, _owner = forward_losses(self.model, batch, self.keep_logits)
                total = losses.sum()
                acc.backward(total * scale)
                loss_sum += total.detach().double()
        grad_norm = None
        if self.cfg.max_grad_norm > 0:
            norm = acc.clip_grad_norm_(self.model.parameters(), self.cfg.max_grad_norm)
            grad_norm = float(norm) if norm is not None else None
        lr = float(self.scheduler.get_last_lr()[0])
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        totals = acc.reduce(torch.stack([loss_sum, torch.tensor(float(slots), dtype=torch.float64,
                                                                device=acc.device)]), "sum")
        return (float(totals[0]) / n_trained, lr, grad_norm, n_tokens, n_trained, int(totals[1]))


#: more than this share of the samples read skipped: a warning with what to do
SKIP_WARN_FRACTION = 0.01


def _describe(table: dict[str, dict[str, int]]) -> str:
    """``fused k=3: 2, k=2: 1; rft k=0: 1``."""
    return "; ".join(f"{kind} " + ", ".join(f"k={k}: {n}" for k, n in by_k.items())
                     for kind, by_k in by_kind_and_k(table).items())


def _report_skips(skipped: list[str], stats: LoadStats, cfg: TrainConfig) -> None:
    for line in skipped[:10]:
        console.warn(line)
    if len(skipped) > 10:
        console.warn(f"... and {len(skipped) - 10} more")
    if not stats.skipped:
        return
    why = [f"{n} {what}" for n, what in (
        (stats.too_long, f"longer than --max-length {cfg.max_length} tokens (never cut)"),
        (stats.bad, "bad"), (stats.empty, "with no trained token left")) if n]
    share = stats.skipped_fraction
    console.warn(f"skipped {stats.skipped} of {stats.read} samples "
                 f"({f'{100 * share:.1f}%' if share >= 0.001 else '<0.1%'}): {', '.join(why)}; "
                 "by kind and k: "
                 f"{_describe(stats.skipped_by)}")
    if share > SKIP_WARN_FRACTION:
        console.warn(f"more than {SKIP_WARN_FRACTION:.0%} of the training samples are skipped: "
                     "the student does not train on the data it was given")
        hint = ("pass the training length to tf-fuse --max-tokens so wrong segments are trimmed "
                "instead of whole samples dropped, or raise --max-length") if stats.too_long else (
                "see the lines above for the records skipped and why")
        console.log.warning("hint: %s", hint)


def _manifest(cfg: TrainConfig, run: RunFolder, last: StepInfo | None, totals: dict[str, Any],
              stats: LoadStats, n_samples: int, total_steps: int, resolved: dict[str, Any],
              resumed_from: str | None, data: str) -> dict[str, Any]:
    seconds = totals["seconds"]
    return {
        "run": str(run.path), "final": str(run.final), "loss_log": str(run.loss_log),
        "model": cfg.model, "steps": last.step if last else total_steps,
        "epochs": cfg.epochs, "samples": n_samples,
        "samples_by_kind": by_kind_and_k(stats.kept_by),
        "longest_answer_tokens": stats.longest_answer_tokens,
        "skipped": {"too_long": stats.too_long, "bad": stats.bad, "empty": stats.empty,
                    "by_kind": by_kind_and_k(stats.skipped_by),
                    "fraction": round(stats.skipped_fraction, 4)},
        "tokens_seen": totals["tokens"], "trained_tokens_seen": totals["trained_tokens"],
        "padding_share": round(1 - totals["tokens"] / totals["slots"], 4) if totals["slots"] else 0.0,
        "final_loss": round(last.loss, 6) if last else None,
        "train_seconds": round(seconds, 3),
        "tokens_per_s": round(totals["tokens"] / seconds, 1) if seconds else None,
        "resumed_from": resumed_from, "data_fingerprint": data,
        "config": {**asdict(cfg), **resolved}, "version": __version__,
    }
