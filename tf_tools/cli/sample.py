"""tf-sample: N sampled solutions per problem from a teacher model (vLLM or transformers)."""

from __future__ import annotations

from typing import Annotated

import typer

from tf_tools.cli import common
from tf_tools.schema import DEFAULT_SYSTEM

HELP = """For each problem, N sampled solutions, one trajectory record per sample (the N
samples of a problem together, problems in input order). Each sample's seed is derived
from (--seed, id, sample_idx): a sample can be regenerated alone, whatever the batch,
shard or input order.

With --engine openai, -m is the model's name on the server; the server applies its chat
template (--system is sent as a system message), or with --api completions the prompt is
--template's text. Each sample is one request with its own seed.

Examples:

\b
  tf-sample -m models/qwen2.5-math-7b -n 8 < problems.jsonl > trajectories.jsonl
  tf-sample -m models/smollm2 -n 8 --max-tokens 256 examples/data/word_problems_train.jsonl | tf-grade --last-number
  tf-sample -m M --problem-key question --answer-key answer gsm8k/test.jsonl -o t.jsonl
  tf-sample -m M --shard 3/16 problems.jsonl -o shard3.jsonl   # or --shard slurm in an array job
  tf-sample -m M --resume problems.jsonl -o t.jsonl            # finish a killed run
  tf-sample -m models/base --template prompt.txt problems.jsonl  # {problem} in the file
  tf-sample -m M --dp 8 problems.jsonl -o t.jsonl              # a whole node: 8 engine copies, one queue
  tf-sample --config sample.toml --seed 1 problems.jsonl -o t.jsonl  # options from a file; flags win
  tf-sample --engine openai --base-url http://localhost:8000/v1 -m Qwen/Qwen2.5-Math-7B-Instruct problems.jsonl -o t.jsonl
  tf-sample --engine openai --base-url http://node1:8000/v1 --base-url http://node2:8000/v1 --concurrency 256 -m M ...
  tf-sample --engine openai --base-url https://api.deepseek.com/v1 --api-key-env DEEPSEEK_API_KEY -m deepseek-chat --price-in 0.27 --price-out 1.1 ...

"""

app = typer.Typer(add_completion=False, rich_markup_mode=None)


@app.command(help=HELP)
@common.tf_command("tf-sample", "id_key", "resume", "keep_going", "shard")
def sample(
    inputs: common.Inputs = None,
    model: common.Model = "",
    n: Annotated[int, typer.Option("-n", help="Samples per problem (a problem's _tf.plan, written by tf-plan, overrides it).")] = 8,
    first_index: Annotated[int, typer.Option("--first-index", help="Draw sample indices S..S+n-1: a later round adds exactly the samples one run with a larger -n would have drawn.")] = 0,
    temperature: Annotated[float, typer.Option("--temperature", help="Sampling temperature (0: greedy).")] = 0.7,
    top_p: Annotated[float, typer.Option("--top-p")] = 1.0,
    top_k: Annotated[int, typer.Option("--top-k", help="0: off.")] = 0,
    max_tokens: Annotated[int, typer.Option("--max-tokens", help="New tokens per sample at most.")] = 1024,
    stop: Annotated[list[str] | None, typer.Option("--stop", help="Stop string (repeatable).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Base seed; per-sample seeds derive from it.")] = 0,
    engine: Annotated[str | None, typer.Option("--engine", help="vllm (default when vLLM imports) or hf (transformers).")] = None,
    system: Annotated[str, typer.Option("--system", help="System prompt ('' for none).")] = DEFAULT_SYSTEM,
    template: Annotated[str | None, typer.Option("--template", help="Prompt template file with {problem}, for models without a chat template.")] = None,
    problem_key: Annotated[str | None, typer.Option("--problem-key", help="Field with the problem text (default: problem, question, ...).")] = None,
    answer_key: Annotated[str | None, typer.Option("--answer-key", help="Field with the gold answer (default: answer, final_answer, ...).")] = None,
    dtype: Annotated[str, typer.Option("--dtype", help="auto (the model's own; float32 on a CPU without native bf16), bfloat16, float16, float32.")] = "auto",
    max_model_len: Annotated[int | None, typer.Option("--max-model-len", help="Context length; longer prompts come back failed.")] = None,
    tp: Annotated[int, typer.Option("--tp", help="Tensor-parallel GPUs (vllm).")] = 1,
    gpu_memory_utilization: Annotated[float, typer.Option("--gpu-memory-utilization")] = 0.9,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Sequences per generate() call (hf engine).")] = 16,
    chunk: Annotated[int, typer.Option("--chunk", help="Problems handed to the engine at once; output is written after each chunk.")] = 256,
    base_url: Annotated[list[str] | None, typer.Option("--base-url", help="openai engine: the server's OpenAI-compatible URL, e.g. http://HOST:8000/v1 (repeatable: requests are spread over them).")] = None,
    api_key_env: Annotated[str, typer.Option("--api-key-env", help="openai engine: environment variable with the API key (unset is fine for a local vllm serve).")] = "OPENAI_API_KEY",
    api: Annotated[str, typer.Option("--api", help="openai engine: chat (the server's chat template) or completions (with --template, for base models).")] = "chat",
    concurrency: Annotated[int, typer.Option("--concurrency", help="openai engine: requests in flight.")] = 64,
    max_retries: Annotated[int, typer.Option("--max-retries", help="openai engine: tries after the first on 429, 5xx, dropped connections and timeouts (exponential backoff with jitter, or the server's Retry-After).")] = 6,
    request_timeout: Annotated[float, typer.Option("--request-timeout", help="openai engine: seconds one request may take.")] = 600.0,
    dp: Annotated[int, typer.Option("--dp", help="Engine copies in worker processes, each on its own --tp GPUs, pulling chunks from one queue (a whole node: --dp 8, or --tp 4 --dp 2).")] = 1,
    price_in: Annotated[float | None, typer.Option("--price-in", help="Price per million prompt tokens: the cost so far and for the whole input, in the progress and the summary.")] = None,
    price_out: Annotated[float | None, typer.Option("--price-out", help="Price per million completion tokens.")] = None,
    output: common.Output = None,
    *,
    run: common.Run,
) -> None:
    from tf_tools import console
    from tf_tools.errors import UsageError
    from tf_tools.records import JsonlReader, in_shard, parse_shard
    from tf_tools.sampling.engines import (
        EngineConfig,
        SamplingConfig,
        make_engine,
        resolve_engine,
    )
    from tf_tools.sampling.prompts import FieldMap
    from tf_tools.sampling.sampler import SampleConfig, SampleStats, planned_count, sample_problems

    if not model:
        raise UsageError("no model: give one with -m/--model")
    if n < 1 or max_tokens < 1 or chunk < 1 or first_index < 0:
        raise UsageError("-n, --max-tokens and --chunk must be at least 1, --first-index at least 0")
    served = resolve_engine(engine) == "openai"
    if dp < 1 or (served and dp > 1):
        raise UsageError("--dp must be at least 1" if dp < 1 else "--dp is for engines in this job; "
                         "a served teacher takes more requests in flight: --concurrency")
    _check_served(served, base_url, api, template, concurrency, max_retries, request_timeout)
    shard_spec = parse_shard(run.shard)  # a bad --shard is a usage error before the model loads
    paths = common.require_input(inputs)
    template_text = _read_template(template)
    # tf-sample's records carry the id as "id" whatever --id-key read it from
    out = common.open_output(output, run.resume, "problems already complete",
                             problem_size=lambda rec: planned_count(rec, n),
                             stdout=None if output else common.protect_stdout())
    writer = out.writer
    ecfg = EngineConfig(model=model, engine=engine, dtype=dtype, max_model_len=max_model_len,
                        tp=tp, gpu_memory_utilization=gpu_memory_utilization,
                        batch_size=batch_size, base_urls=tuple(base_url or ()),
                        api_key_env=api_key_env, api=api, concurrency=concurrency,
                        max_retries=max_retries, request_timeout=request_timeout)
    eng = make_engine(ecfg) if dp == 1 else None
    cfg = SampleConfig(
        sampling=SamplingConfig(n=n, temperature=temperature, top_p=top_p, top_k=top_k,
                                max_tokens=max_tokens, stop=tuple(stop or ()), seed=seed,
                                first_index=first_index),
        fields=FieldMap(problem_key, answer_key, run.id_key), system=system or None,
        template=template_text, chunk=chunk, keep_going=run.keep_going, model_name=model,
    )
    reader = JsonlReader(paths, keep_going=run.keep_going, step="sample")
    total = common.count_lines(paths)
    stats = SampleStats(price_in=price_in, price_out=price_out,
                        total_problems=total - out.n_done if total is not None else None)
    problems = in_shard(reader, shard_spec, run.id_key)
    try:
        with console.Progress("problems", total, enabled=not run.quiet) as bar, common.sigterm_as_interrupt(served):
            if eng is None:  # --dp N: the engines live in the workers
                from tf_tools.sampling.parallel import sample_parallel

                groups = lambda show: sample_parallel(problems, ecfg, cfg, dp, stats, reader.where,  # noqa: E731
                                                      skip=out.done_ids, on_chunk=show)
            else:
                groups = lambda show: sample_problems(problems, eng, cfg, stats, reader.where,  # noqa: E731
                                                      skip=out.done_ids, on_chunk=show)
            _write_problems(groups, writer, bar, out.n_done, served)
    finally:
        writer.close()
        if served and eng is not None:
            eng.close()  # type: ignore[attr-defined]
    writer.commit()
    common.finish(stats)


def _check_served(served: bool, base_url: list[str] | None, api: str, template: str | None,
                  concurrency: int, max_retries: int, request_timeout: float) -> None:
    """The openai engine's options make sense together (a usage error before any request)."""
    from tf_tools.errors import UsageError

    if not served:
        if base_url:
            raise UsageError("--base-url is for --engine openai")
        return
    if not base_url:
        raise UsageError("--engine openai needs the server's address", hint="--base-url http://HOST:8000/v1")
    if api not in ("chat", "completions"):
        raise UsageError(f"--api must be chat or completions, not {api!r}")
    if (api == "completions") != (template is not None):
        raise UsageError("--api completions sends --template's text; the chat endpoint takes no template",
                         hint="--api completions --template FILE, or neither")
    if concurrency < 1 or max_retries < 0 or request_timeout <= 0:
        raise UsageError("--concurrency must be at least 1, --max-retries at least 0, --request-timeout above 0")


def _write_problems(groups_of, writer, bar, done: int, served: bool = False) -> None:  # type: ignore[no-untyped-def]
    """Write each problem's lines as ``groups_of(on_chunk)`` yields them; the bar moves by
    whole chunks: sample_problems calls ``on_chunk`` after each chunk, when this loop has
    written all of that chunk's problems (so a heartbeat line's rate and eta are per chunk).
    A served teacher's problems come in one by one: the bar moves with each."""
    bar.count = written = done

    def show(s) -> None:  # type: ignore[no-untyped-def]
        bar.postfix = f"{s.samples} samples, {s.tokens} tokens, {s.tokens_per_s:.0f} tok/s"
        if s.served:
            bar.postfix += f"; {s.served_line()}"
        bar.advance(written - bar.count)

    for group in groups_of(show):
        writer.write_many(group)  # one problem: whole lines, flushed
        written += 1
        if served:
            bar.advance(written - bar.count)


def _read_template(template: str | None) -> str | None:
    """The text of --template FILE (a usage error when it cannot be read), or None."""
    from tf_tools.errors import UsageError

    if not template:
        return None
    try:
        with open(template, encoding="utf-8") as f:
            return f.read()
    except OSError as exc:
        raise UsageError(f"cannot read --template {template}: {exc.strerror}") from None


def main() -> None:
    app(prog_name="tf-sample")


if __name__ == "__main__":
    main()
