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

from tf_tools.sampling.engines import Completion, Engine, Request, SamplingConfig
from tf_tools.sampling.prompts import DEFAULT_SYSTEM, FieldMap, PromptBuilder, normalize_problem
from tf_tools.sampling.seeds import sample_seed
from tf_tools.schema import (
    TF_KEY,
    Record,
    is_failed,
    mark_failed,
    provenance,
    record_failed,
    set_provenance,
)


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
    prompt_tokens: int = 0
    failed: int = 0
    too_long: int = 0
    seconds: float = 0.0
    finish: dict[str, int] = field(default_factory=dict)
    # served engine: requests answered, retries, requests failed after the last retry
    served: bool = False
    requests: int = 0
    retries: int = 0
    errors: int = 0
    # --price-in / --price-out (per million tokens), and the problems of the whole input
    price_in: float | None = None
    price_out: float | None = None
    total_problems: int | None = None

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0

    @property
    def cost(self) -> float | None:
        if self.price_in is None and self.price_out is None:
            return None
        return (self.prompt_tokens * (self.price_in or 0) + self.tokens * (self.price_out or 0)) / 1e6

    def served_line(self) -> str:
        """Requests/s, retries, errors and cost so far (the progress line's and the
        summary's second part, for a served teacher)."""
        rate = self.requests / self.seconds if self.seconds else 0.0
        line = f"{self.requests} requests ({rate:.1f}/s), {self.retries} retries, {self.errors} errors"
        cost = self.cost
        if cost is not None:
            line += f", cost ${cost:.4f}"
            if self.total_problems and self.problems:
                line += f" (whole input: ~${cost / self.problems * self.total_problems:.2f})"
        return line

    def summary_lines(self) -> list[str]:
        """The run in one line for a reader (tf-sample prints it on stderr)."""
        lines = [f"sampled {self.problems} problems, {self.samples} samples, {self.tokens} tokens "
                 f"({self.tokens_per_s:.0f} tok/s); finish {self.finish or {}}"]
        if self.served:
            lines.append(f"served: {self.served_line()}; {self.prompt_tokens} prompt tokens")
        return lines


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
    stats.served = engine.tokenizer is None
    builder = PromptBuilder(engine.tokenizer, cfg.system, cfg.template, served=stats.served)
    chunk: list[tuple[Record, Any] | Record] = []  # (problem, its prompt) or a failed record
    for rec in problems:
        if is_failed(rec):
            chunk.append(rec)
            continue
        try:
            problem = normalize_problem(rec, cfg.fields)
            if problem["id"] in skip:
                continue
            ids = builder.prompt(problem["problem"])
            planned_indices(problem, cfg.sampling)  # a malformed _tf.plan fails here, named
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
            problem, prompt = item
            if not _too_long(prompt, engine):
                requests += [_request(prompt, sample_seed(sp.seed, problem["id"], j))
                             for j in planned_indices(problem, sp)]
    t0 = time.perf_counter()
    completions = _timed(iter(engine.generate(requests, sp) if requests else []), stats)
    stats.seconds += time.perf_counter() - t0
    for item in chunk:
        if not isinstance(item, tuple):
            yield [item]
            continue
        problem, prompt = item
        stats.problems += 1
        out = []
        indices = planned_indices(problem, sp)
        for j in indices:
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
                "n_prompt_tokens": len(prompt) if isinstance(prompt, list) and not stats.served else None,
                "first_index": indices.start, "n": len(indices),
            }
            if _too_long(prompt, engine):
                rec["completion"] = None
                rec["finish_reason"] = None
                meta["n_completion_tokens"] = 0
                set_provenance(rec, "sample", meta)
                mark_failed(rec, "sample", f"prompt has {len(prompt)} tokens; the model's context "
                                           f"(--max-model-len) is {engine.max_model_len}")
                stats.too_long += 1
                stats.failed += 1
            else:
                _fill(rec, meta, next(completions), stats)
            stats.samples += 1
            out.append(rec)
        yield out


def planned_indices(problem: Record, sp: SamplingConfig) -> range:
    """The sample indices to draw for ``problem``: its ``_tf.plan`` (``first_index``, ``n``:
    what tf-plan asks of the next round) or else --first-index and -n. A sample's seed
    depends only on (seed, id, index), so rounds draw exactly the samples one run with the
    larger n would have drawn."""
    plan = provenance(problem, "plan")
    if plan is not None:
        first, n = plan.get("first_index", sp.first_index), plan.get("n", sp.n)
        if not (isinstance(first, int) and isinstance(n, int) and first >= 0 and n >= 0):
            raise ValueError(f"_tf.plan needs integers first_index >= 0 and n >= 0, not {plan!r}")
        return range(first, first + n)
    return range(sp.first_index, sp.first_index + sp.n)


def planned_count(rec: Record, default: int) -> int:
    """How many samples a problem has in this run, from one of its sample records
    (``_tf.sample.n``; records of older runs have none: ``default``)."""
    meta = provenance(rec, "sample")
    n = meta.get("n") if meta is not None else None
    return n if isinstance(n, int) else default


def _too_long(prompt: Any, engine: Engine) -> bool:
    """A prompt of token ids that does not fit the model's context (a served model's
    context is the server's to enforce)."""
    return engine.max_model_len is not None and len(prompt) >= engine.max_model_len


def _request(prompt: list[int] | list[dict[str, str]] | str, seed: int) -> Request:
    """A request for the prompt as ``PromptBuilder.prompt`` gave it: token ids, a chat
    conversation (served chat endpoint) or a text (served completions endpoint)."""
    if isinstance(prompt, str):
        return Request([], seed, text=prompt)
    if prompt and isinstance(prompt[0], dict):
        return Request([], seed, messages=prompt)  # type: ignore[arg-type]
    return Request(prompt, seed)  # type: ignore[arg-type]


def _fill(rec: Record, meta: dict[str, Any], done: Completion, stats: SampleStats) -> None:
    """One sample's record from its completion; a request that failed after its retries
    is marked (``_tf.error``) and counted, and the run goes on."""
    if done.n_prompt_tokens is not None:
        meta["n_prompt_tokens"] = done.n_prompt_tokens
        stats.prompt_tokens += done.n_prompt_tokens
    elif meta["n_prompt_tokens"] is not None:
        stats.prompt_tokens += meta["n_prompt_tokens"]
    if done.endpoint is not None:  # served: where it came from (no key), and its retries
        meta["endpoint"] = done.endpoint
        meta["retries"] = done.retries
        stats.retries += done.retries
    meta["n_completion_tokens"] = done.n_tokens
    if done.error is not None:
        rec["completion"] = None
        rec["finish_reason"] = None
        set_provenance(rec, "sample", meta)
        mark_failed(rec, "sample", done.error)
        stats.errors += 1
        stats.failed += 1
        return
    rec["completion"] = done.text
    rec["finish_reason"] = done.finish_reason
    set_provenance(rec, "sample", meta)
    stats.tokens += done.n_tokens
    stats.requests += stats.served
    stats.finish[done.finish_reason] = stats.finish.get(done.finish_reason, 0) + 1


def _timed(completions: Iterator[Completion], stats: SampleStats) -> Iterator[Completion]:
    """The engine's completions, the time spent waiting for them added to ``stats.seconds``
    (a served engine returns them as they come in)."""
    while True:
        t0 = time.perf_counter()
        try:
            done = next(completions)
        except StopIteration:
            return
        finally:
            stats.seconds += time.perf_counter() - t0
        yield done
