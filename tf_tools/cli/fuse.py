"""tf-fuse: problem summaries in, TrajFusion training samples (fused or RFT) out."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from tf_tools.cli import common

HELP = """Read problem summaries (tf-cluster's output) and write one training sample per kept
correct trajectory: `messages` (system = the prompt the teacher was sampled with, user = problem,
assistant = fused text),
`kind` (fused | rft), `k`, `segments` (character offsets of each incorrect / reflection /
correct piece) and `_tf.fuse`. Problems without a correct trajectory produce nothing.

Policies for k, the number of wrong attempts (e: error rate, D: e^entropy, m: clusters):
adaptive: min(k_max, m, round(gamma*e*D)); threshold: min(k_max, m) if e >= --min-error-rate
and D >= --min-modes, else 0; linear: min(k_max, m, round(gamma*e*k_max));
fixed: min(k_max, m); rft: 0 (plain rejection sampling).

Without --tokenizer, token counts (budget, summary) are an approximation: words plus
punctuation marks.

Examples:

\b
  tf-grade traj.jsonl | tf-cluster | tf-fuse > train.jsonl
  tf-fuse problems.jsonl --policy rft -o rft.jsonl
  tf-fuse problems.jsonl --tokenizer ./student-tokenizer --max-tokens 4096 --seed 1
  tf-fuse problems.jsonl --reflections my_prompts.txt --system "Please reason step by step."
  tf-fuse problems.jsonl -o train.jsonl --resume  # finish a killed run (redoes its last problem)
  tf-fuse --config fuse.toml problems.jsonl       # options from a file (TOML or YAML; flags win)
"""

app = typer.Typer(add_completion=False, rich_markup_mode=None)


class Policy(str, Enum):
    adaptive = "adaptive"
    threshold = "threshold"
    linear = "linear"
    fixed = "fixed"
    rft = "rft"


@app.command(help=HELP, no_args_is_help=False)
@common.tf_command("tf-fuse", "id_key", "resume", "keep_going", "shard")
def fuse(
    inputs: common.Inputs = None,
    output: common.Output = None,
    policy: Annotated[Policy, typer.Option("--policy", help="How many wrong attempts a sample gets.")] = Policy.adaptive,
    k_max: Annotated[int, typer.Option("--k-max", min=0, help="Most wrong attempts per sample (every policy).")] = 3,
    gamma: Annotated[float, typer.Option("--gamma", min=0.0, help="Scale of k (adaptive, linear).")] = 1.0,
    min_error_rate: Annotated[float, typer.Option("--min-error-rate", min=0.0, max=1.0, help="threshold: fuse only when the error rate is at least this.")] = 0.25,
    min_modes: Annotated[float, typer.Option("--min-modes", min=0.0, help="threshold: ... and the effective number of error modes e^H is at least this.")] = 1.0,
    max_correct: Annotated[int, typer.Option("--max-correct", min=1, help="Samples per problem: one per deduplicated correct trajectory, at most this many.")] = 4,
    reflections: Annotated[str | None, typer.Option("--reflections", metavar="FILE", help="Reflection prompts, one per line (# comments), instead of the built-in pool.")] = None,
    system: Annotated[str | None, typer.Option("--system", help="System message of every sample ('' for none). Default: the system prompt the teacher was sampled with (_tf.sample.system), or tf-sample's default when the trajectories carry none, so the student trains under the prompt tf-sample evaluates it with.")] = None,
    tokenizer: common.Tokenizer = None,
    max_tokens: Annotated[int | None, typer.Option("--max-tokens", min=1, help="Length budget of prompt + answer: drop wrong segments (smallest cluster first), then the sample.")] = None,
    problem_key: Annotated[str, typer.Option("--problem-key", help="Field with the problem text.")] = "problem",
    completion_key: common.CompletionKey = "completion",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the choices within clusters and of the reflection prompts.")] = 0,
    *,
    run: common.Run,
) -> None:
    from tf_tools import console
    from tf_tools.fusion import FuseConfig, FuseStats, fuse_records, load_counter
    from tf_tools.fusion.fuse import FROM_TRAJECTORIES
    from tf_tools.fusion.text import REFLECTIONS, load_reflections

    paths = common.require_input(inputs)
    if max_tokens is not None and tokenizer is None:
        console.warn("--max-tokens without --tokenizer: counting approximate tokens "
                     "(words and punctuation marks)")
    cfg = FuseConfig(
        policy=policy.value, gamma=gamma, k_max=k_max, min_error_rate=min_error_rate,
        min_modes=min_modes, max_correct=max_correct, seed=seed,
        reflections=load_reflections(reflections) if reflections else REFLECTIONS,
        reflections_source=reflections or "builtin",
        system=FROM_TRAJECTORIES if system is None else system,
        max_tokens=max_tokens, tokenizer=tokenizer, id_key=run.id_key, problem_key=problem_key,
        completion_key=completion_key, keep_going=run.keep_going,
    )
    counter = load_counter(tokenizer)
    reader, records = run.read(paths, "fuse")
    # a problem's samples are written together: a killed run's last one is redone
    out = common.open_output(output, run.resume, "problems already fused", id_key=run.id_key,
                             redo_last=True)
    stats = FuseStats()
    common.write_all(fuse_records(out.skip(records), cfg, stats, counter, reader.where),
                     out.writer, "samples", quiet=run.quiet)
    common.finish(stats)


def main() -> None:
    app(prog_name="tf-fuse")


if __name__ == "__main__":
    main()

