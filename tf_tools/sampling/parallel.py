"""``tf-sample --dp N``: N copies of the engine in worker processes, one queue of chunks.

The parent reads the problems, drops those already complete (``--resume``), and puts
chunks of ``--chunk`` problems on one queue; each worker (its own engine, its own GPUs:
``CUDA_VISIBLE_DEVICES`` split by ``--tp``) takes the next chunk when it is done with
its last, so no worker waits on a slow one's fixed share. The parent writes the chunks'
records in input order as they come back. Per-sample seeds do not depend on which worker
drew a sample, so the records are those of ``--dp 1``.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import shutil
import time
from collections.abc import Callable, Container, Iterable, Iterator
from dataclasses import fields, replace
from typing import Any

from tf_tools.errors import TfError, UsageError
from tf_tools.records import Record
from tf_tools.sampling.engines import EngineConfig, make_engine
from tf_tools.sampling.prompts import normalize_problem
from tf_tools.sampling.sampler import SampleConfig, SampleStats, sample_problems

_DONE = None


def gpu_slices(dp: int, tp: int) -> list[str | None]:
    """Each worker's ``CUDA_VISIBLE_DEVICES``: ``tp`` devices each, from the parent's list
    (or 0 .. dp*tp-1 on a machine with ``nvidia-smi``); None on a machine without GPUs."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        devices = [d for d in visible.split(",") if d.strip()]
    elif shutil.which("nvidia-smi"):
        devices = [str(i) for i in range(dp * tp)]
    else:
        return [None] * dp
    if len(devices) < dp * tp:
        raise UsageError(f"--dp {dp} --tp {tp} needs {dp * tp} GPUs; CUDA_VISIBLE_DEVICES has {len(devices)}")
    return [",".join(devices[r * tp:(r + 1) * tp]) for r in range(dp)]


def sample_parallel(problems: Iterable[Record], ecfg: EngineConfig, cfg: SampleConfig, dp: int,
                    stats: SampleStats, where: Callable[[], str] | None = None, skip: Container[Any] = (),
                    on_chunk: Callable[[SampleStats], None] | None = None) -> Iterator[list[Record]]:
    """``sample_problems`` over ``dp`` engine copies: per problem, in input order, its records."""
    ctx = mp.get_context("spawn")  # a fresh interpreter per worker: CUDA and vLLM start clean
    tasks: Any = ctx.Queue()
    results: Any = ctx.Queue()
    workers = [ctx.Process(target=_work, args=(env, ecfg, cfg, tasks, results), daemon=True,
                           name=f"tf-sample-dp{rank}") for rank, env in enumerate(gpu_slices(dp, ecfg.tp))]
    for w in workers:
        w.start()
    chunks = _chunks(problems, cfg, where, skip)
    t0 = time.perf_counter()
    sent = next_out = 0
    back: dict[int, list[list[Record]]] = {}
    exhausted = False
    try:
        while True:
            while not exhausted and sent - next_out < 2 * dp:  # keep every worker fed, memory bounded
                chunk = next(chunks, None)
                if chunk is None:
                    exhausted = True
                    break
                tasks.put((sent, chunk))
                sent += 1
            if exhausted and next_out == sent:
                break
            idx, groups, part = _result(results, workers)
            back[idx] = groups
            _add(stats, part)
            stats.seconds = time.perf_counter() - t0  # the copies run at once: wall time, not their sum
            while next_out in back:
                yield from back.pop(next_out)
                next_out += 1
                if on_chunk:
                    on_chunk(stats)
    finally:
        for _ in workers:
            tasks.put(_DONE)
        for w in workers:
            w.join(timeout=30)
            if w.is_alive():
                w.kill()


def _chunks(problems: Iterable[Record], cfg: SampleConfig, where: Callable[[], str] | None,
            skip: Container[Any]) -> Iterator[list[tuple[Record, str | None]]]:
    """Chunks of (record, where it was read), without those already complete."""
    chunk: list[tuple[Record, str | None]] = []
    for rec in problems:
        try:
            if normalize_problem(rec, cfg.fields)["id"] in skip:
                continue
        except Exception:  # noqa: BLE001 - the worker reports it, as --dp 1 does
            pass
        chunk.append((rec, where() if where else None))
        if len(chunk) >= cfg.chunk:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _result(results: Any, workers: list[Any]) -> tuple[int, list[list[Record]], SampleStats]:
    """The next chunk back from any worker; a worker's error is raised here, and a worker
    that died without one ends the run."""
    while True:
        try:
            kind, idx, payload, part = results.get(timeout=1.0)
        except queue.Empty:
            dead = [w for w in workers if not w.is_alive()]
            if dead:
                raise TfError(f"sampling worker {dead[0].name} died (exit code {dead[0].exitcode})") from None
            continue
        if kind == "error":
            cls, message, hint = payload
            error = cls.__new__(cls)
            TfError.__init__(error, message, hint)  # as raised in the worker, message and hint
            raise error
        return idx, payload, part


def _add(total: SampleStats, part: SampleStats) -> None:
    for f in fields(SampleStats):
        value = getattr(part, f.name)
        if f.name == "finish":
            for k, v in value.items():
                total.finish[k] = total.finish.get(k, 0) + v
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and f.name not in (
                "seconds", "price_in", "price_out", "total_problems"):
            setattr(total, f.name, getattr(total, f.name) + value)
    total.served = total.served or part.served


def _sample_chunk(engine: Any, cfg: SampleConfig,
                  chunk: list[tuple[Record, str | None]]) -> tuple[list[list[Record]], SampleStats]:
    """One chunk through ``sample_problems``; a bad record's error names the line the
    parent read it from."""
    at = [0]

    def records() -> Iterator[Record]:
        for i, (rec, _) in enumerate(chunk):
            at[0] = i
            yield rec

    part = SampleStats()
    groups = list(sample_problems(records(), engine, replace(cfg, chunk=len(chunk)), part,
                                  where=lambda: chunk[at[0]][1] or "?"))
    return groups, part


def _portable(exc: Exception) -> tuple[type[TfError], str, str | None]:
    """An exception as (class, message, hint): what the parent raises again (a TfError's
    own constructor may take other arguments than its message)."""
    if isinstance(exc, TfError):
        return type(exc), exc.message, exc.hint
    return TfError, f"{type(exc).__name__}: {exc}", None


def _work(cuda: str | None, ecfg: EngineConfig, cfg: SampleConfig, tasks: Any, results: Any) -> None:
    """A worker: its engine once, then chunks until told to stop."""
    if cuda is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = cuda
    try:
        engine = make_engine(ecfg)
    except Exception as exc:  # noqa: BLE001 - the parent raises it
        results.put(("error", -1, _portable(exc), None))
        return
    while True:
        task = tasks.get()
        if task is _DONE:
            break
        idx, chunk = task
        try:
            groups, part = _sample_chunk(engine, cfg, chunk)
        except Exception as exc:  # noqa: BLE001 - the parent raises it, naming the line
            results.put(("error", idx, _portable(exc), None))
            continue
        results.put(("ok", idx, groups, part))
    close = getattr(engine, "close", None)
    if close:
        close()
