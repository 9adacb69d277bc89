"""tf-sample's core: problems in, N trajectory records per problem out, in input order.

Problems are normalised (field mapping, ids), turned into prompts, and handed to the engine
a chunk at a time (``chunk`` problems × N samples in one call, so vLLM can batch and share
prefixes). Each sample's seed comes from (seed, id, sample_idx). A problem whose prompt
does not fit the model's context comes back as N records marked failed with the reason;
the run goes on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Container, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from tf_tools.sampling.engines import Engine, Request, SamplingConfig
from tf_tools.sampling.prompts import DEFAULT_SYSTEM, FieldMap, PromptBuilder, normalize_problem
from tf_tools.sampling.seeds import sample_seed
from tf_tools.schema import TF_KEY, Record, is_failed, mark_failed, record_failed, set_provenance


@dataclass(frozen=True)
class SampleConfig:
    sampling: SamplingConfig = SamplingConfig()
    fields: FieldMap = FieldMap()
    system: str | None = DEFAULT_SYSTEM
    template: str | None = None
    chunk: int = 256  # problems per engine call
    keep_going: bool = False
    model_name: str = ""


@dataclass
class SampleStats:
    problems: int = 0
    samples: int = 0
    tokens: int = 0
    failed: int = 0
    too_long: int = 0
    seconds: float = 0.0
    finish: dict[str, int] = field(default_factory=dict)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0

    def summary_lines(self) -> list[str]:
        """The run in one line for a reader (tf-sample prints it on stderr)."""
        return [f"sampled {self.problems} problems, {self.samples} samples, {self.tokens} tokens "
                f"({self.tokens_per_s:.0f} tok/s); finish {self.finish or {}}"]


def sample_problems(
    problems: Iterable[Record],
    engine: Engine,
    cfg: SampleConfig,
    stats: SampleStats | None = None,
    where: Callable[[], str] | None = None,
    skip: Container[Any] = (),
    on_chunk: Callable[[SampleStats], None] | None = None,
) -> Iterator[list[Record]]:
    """Yield, per problem and in input order, the list of its N trajectory records.

    ``skip`` holds ids already complete (``--resume``). A problem that cannot be prompted (a
    missing problem field, or any exception building its prompt) stops the run naming its
    line, or under ``keep_going`` comes back alone, marked (``record_failed``).
    """
    stats = stats if stats is not None else SampleStats()
    builder = PromptBuilder(engine.tokenizer, cfg.system, cfg.template)
    chunk: list[tuple[Record, list[int]] | Record] = []
    for rec in problems:
        if is_failed(rec):
            chunk.append(rec)
            continue
        try:
            problem = normalize_problem(rec, cfg.fields)
            if problem["id"] in skip:
                continue
            ids = builder.token_ids(problem["problem"])
        except Exception as exc:  # one bad problem never ends the run
            chunk.append(record_failed(rec, "sample", exc, keep_going=cfg.keep_going, where=where))
            stats.failed += 1
            continue
        chunk.append((problem, ids))
        if sum(1 for c in chunk if isinstance(c, tuple)) >= cfg.chunk:
            yield from _run_chunk(chunk, engine, cfg, stats)
            chunk = []
            if on_chunk:
                on_chunk(stats)
    if chunk:
        yield from _run_chunk(chunk, engine, cfg, stats)
        if on_chunk:
            on_chunk(stats)


def _run_chunk(chunk: list[Any], engine: Engine, cfg: SampleConfig,
               stats: SampleStats) -> Iterator[list[Record]]:
    sp = cfg.sampling
    requests: list[Request] = []
    for item in chunk:
        if isinstance(item, tuple):
            problem, ids = item
            if len(ids) < engine.max_model_len:
                requests += [Request(ids, sample_seed(sp.seed, problem["id"], j)) for j in range(sp.n)]
    t0 = time.perf_counter()
    completions = iter(engine.generate(requests, sp) if requests else [])
    stats.seconds += time.perf_counter() - t0
    for item in chunk:
        if not isinstance(item, tuple):
            yield [item]
            continue
        problem, ids = item
        stats.problems += 1
        out = []
        for j in range(sp.n):
            rec = dict(problem)
            if isinstance(problem.get(TF_KEY), dict):
                rec[TF_KEY] = dict(problem[TF_KEY])  # each sample has its own provenance
            rec["sample_idx"] = j
            seed = sample_seed(sp.seed, problem["id"], j)
            meta = {
                "engine": engine.name, "model": cfg.model_name, "seed": seed, "base_seed": sp.seed,
                "temperature": sp.temperature, "top_p": sp.top_p, "top_k": sp.top_k,
                "max_tokens": sp.max_tokens, "stop": list(sp.stop), "dtype": getattr(engine, "dtype", None),
                "system": cfg.system if cfg.template is None else None,
                "n_prompt_tokens": len(ids),
            }
            if len(ids) >= engine.max_model_len:
                rec["completion"] = None
                rec["finish_reason"] = None
                meta["n_completion_tokens"] = 0
                set_provenance(rec, "sample", meta)
                mark_failed(rec, "sample", f"prompt has {len(ids)} tokens; the model's context "
                                           f"(--max-model-len) is {engine.max_model_len}")
                stats.too_long += 1
                stats.failed += 1
            else:
                done = next(completions)
                rec["completion"] = done.text
                rec["finish_reason"] = done.finish_reason
                meta["n_completion_tokens"] = done.n_tokens
                set_provenance(rec, "sample", meta)
                stats.tokens += done.n_tokens
                stats.finish[done.finish_reason] = stats.finish.get(done.finish_reason, 0) + 1
            stats.samples += 1
            out.append(rec)
        yield out
