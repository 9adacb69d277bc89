"""tf-plan: problem summaries in, the problems that need another sampling round out."""

from __future__ import annotations

from typing import Annotated

import typer

from tf_tools.cli import common

HELP = """Read problem summaries (tf-cluster's output over every sample drawn so far) and write
each problem that needs more samples, with `_tf.plan` = {first_index, n, reason}: tf-sample
reads it and draws exactly those sample indices, so rounds add up to the samples of one run
with a larger -n. Nothing written: every problem is decided.

A problem is decided when its first --n-min samples are all correct (RFT material), when it
has --n-max samples (`too_hard` if none is correct), or when it has --max-correct distinct
correct solutions and the k tf-fuse would give it is settled (the same k across the error
rate's 95% interval, or the same as before the last round). Otherwise it gets as many new
samples as it has (doubling), up to --n-max. Give the same --policy, --k-max, --gamma and
--max-correct as tf-fuse. The loop: bin/tf-rounds (README "Sampling in rounds").

Examples:

\b
  tf-plan clusters.jsonl > plan.jsonl && tf-sample -m M plan.jsonl -o round2.jsonl
  tf-plan clusters.jsonl --n-min 4 --n-max 64 --max-correct 2 -o plan.jsonl
  tf-plan clusters.jsonl --all | jq -c '._tf.plan'     # every problem's decision
"""

app = typer.Typer(add_completion=False, rich_markup_mode=None)


@app.command(help=HELP, no_args_is_help=False)
@common.tf_command("tf-plan", "id_key", "keep_going")
def plan(
    inputs: common.Inputs = None,
    output: common.Output = None,
    n_min: Annotated[int, typer.Option("--n-min", min=1, help="Samples every problem gets; all of them correct: decided (RFT).")] = 4,
    n_max: Annotated[int, typer.Option("--n-max", min=1, help="Most samples per problem.")] = 32,
    max_correct: Annotated[int, typer.Option("--max-correct", min=1, help="Distinct correct solutions wanted (tf-fuse --max-correct).")] = 4,
    policy: Annotated[str, typer.Option("--policy", help="tf-fuse's k policy: adaptive, threshold, linear, fixed, rft.")] = "adaptive",
    k_max: Annotated[int, typer.Option("--k-max", min=0, help="tf-fuse --k-max.")] = 3,
    gamma: Annotated[float, typer.Option("--gamma", min=0.0, help="tf-fuse --gamma.")] = 1.0,
    min_error_rate: Annotated[float, typer.Option("--min-error-rate", min=0.0, max=1.0, help="tf-fuse --min-error-rate (threshold).")] = 0.25,
    min_modes: Annotated[float, typer.Option("--min-modes", min=0.0, help="tf-fuse --min-modes (threshold).")] = 1.0,
    stable: Annotated[str, typer.Option("--stable", help="When k counts as settled: k (the same k across the error rate's interval (--confidence), or as before the last round) or decision (the same k across the interval and the same k and k largest clusters as before the last round: stricter, more samples; bench/adaptive.py).")] = "k",
    confidence: Annotated[float, typer.Option("--confidence", min=0.0, max=0.999, help="Level of the error rate's interval in --stable (0: the observed rate alone; lower stops sooner and agrees less with a fixed n_max run; bench/adaptive.py --grid-confidence).")] = 0.95,
    round_no: Annotated[int | None, typer.Option("--round", help="Round number to record in _tf.plan.")] = None,
    all_problems: Annotated[bool, typer.Option("--all", help="Also write the decided problems (n = 0 and the reason).")] = False,
    *,
    run: common.Run,
) -> None:
    from tf_tools.errors import UsageError
    from tf_tools.fusion.policy import POLICIES
    from tf_tools.planning import PlanConfig, PlanStats, plan_records

    if policy not in POLICIES:
        raise UsageError(f"--policy must be one of {', '.join(POLICIES)}")
    if stable not in ("k", "decision"):
        raise UsageError("--stable must be k or decision")
    if n_max < n_min:
        raise UsageError("--n-max must be at least --n-min")
    cfg = PlanConfig(n_min=n_min, n_max=n_max, max_correct=max_correct, policy=policy,
                     k_max=k_max, gamma=gamma, min_error_rate=min_error_rate,
                     min_modes=min_modes, write_done=all_problems, id_key=run.id_key,
                     stable=stable, confidence=confidence)
    paths = common.require_input(inputs)
    _reader, records = run.read(paths, "plan")
    out = common.open_output(output, False, "problems already planned", id_key=run.id_key)
    stats = PlanStats()
    common.write_all(plan_records(records, cfg, stats, round_no), out.writer, "problems",
                     quiet=run.quiet)
    common.finish(stats)


def main() -> None:
    app(prog_name="tf-plan")


if __name__ == "__main__":
    main()
