"""tf-train's core: ``train(records, cfg)`` as named phases.

The phases: check the model path; start the processes; open the run folder; load the
tokenizer and tokenise every record (``data.py``), holding out the evaluation samples
(``evaluate.py``); return a finished run's manifest on ``--resume``, else claim the folder;
derive the schedule and prepare accelerator, model (LoRA-wrapped with ``--lora-r``:
``lora.py``), optimizer and learning-rate schedule (``setup.py``); restore the newest
checkpoint on ``--resume``; run the optimizer steps (``step.py``); save the final model (or
the adapter, or the merged model) and write the manifest.

Every step appends a line to the loss log, reports to the trackers (``tracking.py``) and
calls the ``on_step`` hook (the CLI draws its progress from it); every ``eval_every`` steps
and at the last one the evaluation loss joins that line; every ``save_every`` steps (about
a tenth of the run unless --save-steps says), every --save-minutes, or when SIGTERM /
SIGUSR1 asks to stop, a checkpoint is saved (``checkpoints.py``).

Distribution is accelerate's: the same code runs alone, under ``torchrun`` or under
``accelerate launch`` with DDP, FSDP or DeepSpeed ZeRO-3 (examples/accelerate/). We write
no distributed code beyond what accelerate asks for: ``prepare``, ``accumulate``,
``backward``, ``save_state`` / ``load_state``, ``reduce`` of a few numbers per step.

It does not generate, does not draw progress (the caller does, through ``on_step``), does
not stream data from disk (the tokenised set is held in memory by every process) and does
not cut long samples.
"""

from __future__ import annotations

import functools
import json
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from tf_tools import __version__, console
from tf_tools.errors import Interrupted, TfError
from tf_tools.training import attention, lora, setup, tracking
from tf_tools.training.batches import plan_epoch
from tf_tools.training.checkpoints import RunFolder
from tf_tools.training.config import TrainConfig, eval_every, identity, save_every
from tf_tools.training.data import (
    LoadStats,
    Sample,
    by_kind_and_k,
    fingerprint,
    load_samples,
    report_skips,
)
from tf_tools.training.evaluate import EvalLoss, load_eval_file, split
from tf_tools.training.setup import Prepared, Schedule
from tf_tools.training.step import OptimizerStep, SaveClock


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
    eval_loss: float | None = None  # at the steps that evaluate (--eval-steps, the last)

    def record(self) -> dict[str, Any]:
        """The loss log line (``eval_loss`` only where the step evaluated)."""
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()
                if k != "total_steps" and not (k == "eval_loss" and v is None)}


@dataclass
class _Position:
    """Where a run stands: the steps done and the counters so far (saved in checkpoints)."""

    step: int = 0
    totals: dict[str, Any] = field(default_factory=lambda: {
        "tokens": 0, "trained_tokens": 0, "slots": 0, "seconds": 0.0})
    resumed_from: str | None = None


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
    procs = setup.start_processes()
    run = RunFolder(cfg.output)
    mode = run.status(cfg.resume, cfg.overwrite)
    tokenizer = setup.load_tokenizer(cfg.model)
    samples, stats = _load_samples(records, tokenizer, cfg, where)
    samples, held_out = _eval_samples(samples, tokenizer, cfg)
    ident = identity(cfg, cfg.model, fingerprint(samples), len(samples))
    finished = _finished_run(run, ident) if mode == "resume" else None
    if finished is not None:
        console.log.warning("%s already finished; its manifest follows", cfg.output)
        return finished
    _claim_folder(run, mode, ident, procs)
    schedule = Schedule.of(cfg, [len(s) for s in samples], procs.num_processes)
    prepared = setup.prepare(cfg, schedule)
    pos = _restore(run, mode, prepared.accelerator, schedule, procs.is_main_process)
    resolved = _resolved(cfg, schedule, prepared, tokenizer)
    resolved["eval_samples"] = len(held_out)
    _announce(cfg, len(samples), schedule, resolved)
    tracking.start(prepared.accelerator, cfg, resolved)
    evaluate = _evaluator(cfg, prepared, held_out, tokenizer) if held_out else None
    # the stop handler stays through the final save: a signal that comes after the last step
    # lets the run finish (final/ and the manifest) instead of killing it halfway through
    stop = _StopOnSignal(prepared.accelerator)
    try:
        last = _run_steps(cfg, schedule, prepared, samples, tokenizer, run, pos, on_step,
                          procs.process_index, stop, evaluate)
        return _finish(cfg, run, prepared, tokenizer, last, pos, stats, len(samples), schedule,
                       resolved, ident["data"])
    finally:
        stop.restore()


def _load_samples(records: Iterable[dict[str, Any]], tokenizer: Any, cfg: TrainConfig,
                  where: Callable[[], str]) -> tuple[list[Sample], LoadStats]:
    """Every record tokenised; the skipped ones reported; no sample left is an error."""
    skipped: list[str] = []
    samples, stats = load_samples(records, tokenizer, cfg.data(), where, cfg.keep_going,
                                  skipped.append)
    report_skips(skipped, stats, cfg.max_length)
    if not samples:
        raise TfError("no training samples" + (" left" if stats.read else " in the input"))
    return samples, stats


def _eval_samples(samples: list[Sample], tokenizer: Any,
                  cfg: TrainConfig) -> tuple[list[Sample], list[Sample]]:
    """(training samples, evaluation samples): --eval-share holds some out, --eval-file
    brings its own; neither: no evaluation."""
    if cfg.eval_share:
        samples, held = split(samples, cfg.eval_share)
        if not samples or not held:
            raise TfError(f"--eval-share {cfg.eval_share} leaves {len(samples)} training and "
                          f"{len(held)} evaluation samples", hint="change the share, or use --eval-file")
        return samples, held
    if cfg.eval_file:
        held, skipped = load_eval_file(cfg.eval_file, tokenizer, cfg.data(), cfg.keep_going)
        if skipped:
            console.warn(f"{skipped} samples of {cfg.eval_file} skipped (too long, empty or bad)")
        if not held:
            raise TfError(f"no evaluation samples in {cfg.eval_file}")
        return samples, held
    return samples, []


def _evaluator(cfg: TrainConfig, prepared: Prepared, held: list[Sample], tokenizer: Any) -> EvalLoss:
    return EvalLoss(held, prepared.accelerator, prepared.model, setup.pad_id(tokenizer),
                    cfg.micro_batch_size, cfg.packing, cfg.pack_length or cfg.max_length,
                    prepared.step_attn, prepared.keep_logits)


def _finished_run(run: RunFolder, ident: dict[str, Any]) -> dict[str, Any] | None:
    """On --resume: the folder must hold this run; its manifest when it has finished."""
    run.check_same_run(ident)
    return run.read_manifest()


def _claim_folder(run: RunFolder, mode: str, ident: dict[str, Any], procs: Any) -> None:
    """The main process clears (--overwrite) or creates the folder and writes the identity."""
    procs.wait_for_everyone()
    if procs.is_main_process:
        if mode == "overwrite":
            run.clear()
        run.path.mkdir(parents=True, exist_ok=True)
        run.write_identity(ident)
    procs.wait_for_everyone()


def _restore(run: RunFolder, mode: str, accelerator: Any, schedule: Schedule,
             main: bool) -> _Position:
    """The newest checkpoint's state on --resume (else step 0); the loss log cut to match."""
    pos = _Position()
    latest = run.latest() if mode == "resume" else None
    if latest is not None:
        accelerator.load_state(str(latest))
        saved = run.read_state(latest)
        pos = _Position(int(saved["step"]), {k: saved[k] for k in pos.totals}, str(latest))
        console.info(f"resuming from {latest} (step {pos.step} of {schedule.total_steps})")
    if main:
        run.trim_loss_log(pos.step)  # a fresh run starts an empty log
    return pos


def _resolved(cfg: TrainConfig, schedule: Schedule, prepared: Prepared,
              tokenizer: Any) -> dict[str, Any]:
    """What the run resolved from its settings and the machine (the manifest's config)."""
    attn, accelerator = prepared.attn, prepared.accelerator
    return {
        "world_size": schedule.world, "micro_batches_per_step": schedule.n_micro,
        "gradient_accumulation_steps": schedule.accum,
        "steps_per_epoch": schedule.steps_per_epoch,
        "total_steps": schedule.total_steps, "warmup_steps": schedule.warmup,
        "mixed_precision": accelerator.mixed_precision, "attn_implementation": attn,
        "distributed_type": prepared.distributed_type,
        "device": str(accelerator.device), "pad_token_id": setup.pad_id(tokenizer),
        "packed_attention": (None if not cfg.packing else "per-sample sdpa (varlen)"
                             if prepared.varlen else "position ids" if "flash" in attn
                             else "4D block mask"),
    }


def _announce(cfg: TrainConfig, n_samples: int, schedule: Schedule,
              resolved: dict[str, Any]) -> None:
    console.info(f"{n_samples} samples, {schedule.total_steps} steps "
                 f"({schedule.steps_per_epoch} per epoch), {schedule.world} process(es), "
                 f"{schedule.accum} micro-batch(es) of <= {cfg.micro_batch_size} per step and "
                 f"process, {resolved['mixed_precision']}, attention "
                 f"{resolved['attn_implementation']}"
                 + (f", packed: {resolved['packed_attention']}" if cfg.packing else ""))


def _run_steps(cfg: TrainConfig, schedule: Schedule, prepared: Prepared, samples: list[Sample],
               tokenizer: Any, run: RunFolder, pos: _Position,
               on_step: Callable[[StepInfo], None] | None, rank: int, stop: _StopOnSignal,
               evaluate: EvalLoss | None = None) -> StepInfo | None:
    """The optimizer steps from ``pos.step`` on; the last one's report (None if none ran).
    The evaluation set's loss every ``eval_every`` steps and at the last; a checkpoint every
    ``save_every`` steps or ``--save-minutes``."""
    step_once = OptimizerStep(cfg, prepared, samples, setup.pad_id(tokenizer), rank,
                               schedule.world)
    lengths = [len(s) for s in samples]

    @functools.lru_cache(maxsize=1)
    def plan(epoch: int) -> list[list[list[int]]]:
        return plan_epoch(lengths, epoch, cfg.seed, cfg.global_batch_size, schedule.n_micro,
                          cfg.group_by_length)

    last: StepInfo | None = None
    log = open(run.loss_log, "a", encoding="utf-8") if rank == 0 else None  # noqa: SIM115
    saves, evals = save_every(cfg, schedule.total_steps), eval_every(cfg, schedule.total_steps)
    clock = SaveClock(prepared.accelerator, cfg.save_minutes)
    try:
        for step in range(pos.step, schedule.total_steps):
            epoch, index = divmod(step, schedule.steps_per_epoch)
            t0 = time.perf_counter()
            loss, lr, grad_norm, counts = step_once(plan(epoch)[index])
            pos.totals["seconds"] += time.perf_counter() - t0
            for key, n in counts.items():
                pos.totals[key] += n
            pos.step = step + 1
            last = StepInfo(pos.step, round(pos.step / schedule.steps_per_epoch, 4), loss, lr,
                            grad_norm, **pos.totals, total_steps=schedule.total_steps)
            if evaluate is not None and (pos.step % evals == 0 or pos.step == schedule.total_steps):
                last.eval_loss = evaluate()
            tracking.log(prepared.accelerator, cfg, tracking.step_values(last), pos.step)
            if log is not None:
                log.write(json.dumps(last.record()) + "\n")
                log.flush()
            if on_step is not None:
                on_step(last)
            _checkpoint_or_stop(cfg, schedule, prepared, run, pos, stop,
                                pos.step % saves == 0 or clock.due())
    finally:
        if log is not None:
            log.close()
    return last


def _checkpoint_or_stop(cfg: TrainConfig, schedule: Schedule, prepared: Prepared,
                        run: RunFolder, pos: _Position, stop: _StopOnSignal,
                        save_now: bool = False) -> None:
    """A checkpoint when the cadence says so (``save_now``), or now and a stop when a signal
    asked for one."""
    if pos.step >= schedule.total_steps:  # the last step ends in final/, not a checkpoint
        return
    stopping = stop.requested()  # every process, every step: an all-reduce
    if stopping or save_now:
        path = run.save_checkpoint(prepared.accelerator, pos.step,
                                   {"step": pos.step, **pos.totals}, cfg.save_total_limit)
    if stopping:
        raise Interrupted(
            f"stopped by {stop.name} after step {pos.step} of {schedule.total_steps}; "
            f"checkpoint {path}", hint="run the same command with --resume to go on")


def _finish(cfg: TrainConfig, run: RunFolder, prepared: Prepared, tokenizer: Any,
            last: StepInfo | None, pos: _Position, stats: LoadStats, n_samples: int,
            schedule: Schedule, resolved: dict[str, Any], data: str) -> dict[str, Any]:
    """Save final/ and write the manifest (main process); returns the manifest."""
    import torch

    accelerator, model = prepared.accelerator, prepared.model
    peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None
    attention.use_sdpa(lora.base_of(accelerator.unwrap_model(model)))  # saved: plain sdpa
    run.save_final(accelerator, model, tokenizer, setup.student_dtype(cfg.model, cfg.save_dtype),
                   cfg.lora(), cfg.merge)
    resolved = {**resolved, "trainable_parameters": prepared.trainable_parameters,
                "parameters": prepared.parameters,
                "save_every": save_every(cfg, schedule.total_steps)}
    manifest = _manifest(cfg, run, last, pos, stats, n_samples, schedule.total_steps, resolved,
                         data)
    if peak is not None:
        manifest["peak_gpu_memory_gib"] = round(peak, 3)
    if accelerator.is_main_process:
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


def _manifest(cfg: TrainConfig, run: RunFolder, last: StepInfo | None, pos: _Position,
              stats: LoadStats, n_samples: int, total_steps: int, resolved: dict[str, Any],
              data: str) -> dict[str, Any]:
    totals, seconds = pos.totals, pos.totals["seconds"]
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
        "eval_loss": round(last.eval_loss, 6) if last and last.eval_loss is not None else None,
        "eval_samples": resolved.get("eval_samples", 0),
        "trainable_parameters": resolved.get("trainable_parameters"),
        "parameters": resolved.get("parameters"),
        "adapter": str(run.adapter) if cfg.lora_r else None,
        "train_seconds": round(seconds, 3),
        "tokens_per_s": round(totals["tokens"] / seconds, 1) if seconds else None,
        "resumed_from": pos.resumed_from, "data_fingerprint": data,
        "config": {**asdict(cfg), **resolved}, "version": __version__,
    }
