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

Examples:

\b
  tf-sample -m models/qwen2.5-math-7b -n 8 < problems.jsonl > trajectories.jsonl
  tf-sample -m models/smollm2 -n 8 --max-tokens 256 examples/data/word_problems_train.jsonl | tf-grade --last-number
  tf-sample -m M --problem-key question --answer-key answer gsm8k/test.jsonl -o t.jsonl
  tf-sample -m M --shard 3/16 problems.jsonl -o shard3.jsonl   # or --shard slurm in an array job
  tf-sample -m M --resume problems.jsonl -o t.jsonl            # finish a killed run
  tf-sample -m models/base --template prompt.txt problems.jsonl  # {problem} in the file
  tf-sample --config sample.toml --seed 1 problems.jsonl -o t.jsonl  # options from a file; flags win
"""

app = typer.Typer(add_completion=False, rich_markup_mode=None)


@app.command(help=HELP)
@common.tf_command("tf-sample", "id_key", "resume", "keep_going", "shard")
def sample(
    inputs: common.Inputs = None,
    model: common.Model = "",
    n: Annotated[int, typer.Option("-n", help="Samples per problem.")] = 8,
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
    from tf_tools.sampling.sampler import SampleConfig, SampleStats, sample_problems

    if not model:
        raise UsageError("no model: give one with -m/--model")
    if n < 1 or max_tokens < 1 or chunk < 1:
        raise UsageError("-n, --max-tokens and --chunk must be at least 1")
    resolve_engine(engine)
    shard_spec = parse_shard(run.shard)  # a bad --shard is a usage error before the model loads
    paths = common.require_input(inputs)
    template_text = _read_template(template)
    # tf-sample's records carry the id as "id" whatever --id-key read it from
    out = common.open_output(output, run.resume, "problems already complete", problem_size=n,
                             stdout=None if output else common.protect_stdout())
    writer = out.writer
    eng = make_engine(EngineConfig(model=model, engine=engine, dtype=dtype, max_model_len=max_model_len,
                                   tp=tp, gpu_memory_utilization=gpu_memory_utilization,
                                   batch_size=batch_size))
    cfg = SampleConfig(
        sampling=SamplingConfig(n=n, temperature=temperature, top_p=top_p, top_k=top_k,
                                max_tokens=max_tokens, stop=tuple(stop or ()), seed=seed),
        fields=FieldMap(problem_key, answer_key, run.id_key), system=system or None,
        template=template_text, chunk=chunk, keep_going=run.keep_going, model_name=model,
    )
    reader = JsonlReader(paths, keep_going=run.keep_going, step="sample")
    stats = SampleStats()
    problems = in_shard(reader, shard_spec, run.id_key)
    try:
        with console.Progress("problems", common.count_lines(paths), enabled=not run.quiet) as bar:
            _write_problems(lambda show: sample_problems(problems, eng, cfg, stats, reader.where,
                                                         skip=out.done_ids, on_chunk=show),
                            writer, bar, out.n_done)
    finally:
        writer.close()
    writer.commit()
    common.finish(stats)


def _write_problems(groups_of, writer, bar, done: int) -> None:  # type: ignore[no-untyped-def]
    """Write each problem's lines as ``groups_of(on_chunk)`` yields them; the bar moves by
    whole chunks: sample_problems calls ``on_chunk`` after each chunk, when this loop has
    written all of that chunk's problems (so a heartbeat line's rate and eta are per chunk)."""
    bar.count = written = done

    def show(s) -> None:  # type: ignore[no-untyped-def]
        bar.postfix = f"{s.samples} samples, {s.tokens} tokens, {s.tokens_per_s:.0f} tok/s"
        bar.advance(written - bar.count)

    for group in groups_of(show):
        writer.write_many(group)  # one problem: whole lines, flushed
        written += 1


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
