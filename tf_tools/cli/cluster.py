"""tf-cluster: per-problem error statistics and clusters of equivalent wrong answers."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from tf_tools.cli import common

HELP = """Read graded trajectories (tf-grade's output, grouped by id) and write one problem
summary per id: n, n_correct, error_rate, n_error_modes, entropy (nats), the correct
trajectories and the fusable wrong ones in clusters of equivalent answers, largest first.

no_answer and truncated samples count as wrong in error_rate but are never clustered;
ungradable samples are left out of n. Equal answers are found by a canonical key, then
fast comparisons against one answer per cluster, then math-verify in worker processes with
a hard timeout (a timeout counts as "different").

Examples:

\b
  tf-grade trajectories.jsonl | tf-cluster > problems.jsonl
  tf-cluster graded.jsonl -o problems.jsonl --workers 4
  jq -c . graded_shuffled.jsonl | tf-cluster --unsorted > problems.jsonl
  tf-cluster --config cluster.yaml graded.jsonl   # options from a file (TOML or YAML; flags win)
"""

app = typer.Typer(add_completion=False, rich_markup_mode=None)


@app.command(help=HELP, no_args_is_help=False)
@common.tf_command("tf-cluster", "id_key", "resume", "keep_going", "shard")
def cluster(
    inputs: common.Inputs = None,
    output: common.Output = None,
    unsorted: Annotated[bool, typer.Option("--unsorted", help="Input is not grouped by id: hold every record in memory until the input ends.")] = False,
    workers: common.Workers = 0,
    timeout: Annotated[float, typer.Option("--timeout", help="Hard limit in seconds per math-verify comparison; a pair that runs over counts as different.")] = 5.0,
    tolerance: common.Tolerance = 1e-6,
    no_math_verify: Annotated[bool, typer.Option("--no-math-verify", help="Only the fast paths: pairs they cannot decide count as different.")] = False,
    no_shortcuts: Annotated[bool, typer.Option("--no-shortcuts", help="Send every pair the fast paths cannot decide to math-verify (no telling answers apart by their value or form).")] = False,
    memory_mb: common.WorkerMemory = 4096,
    *,
    run: common.Run,
) -> None:
    from tf_tools import console
    from tf_tools.clustering import ClusterConfig, ClusterStats, cluster_records

    paths = common.require_input(inputs)
    cfg = ClusterConfig(id_key=run.id_key, unsorted=unsorted, tolerance=tolerance,
                        workers=workers or (os.cpu_count() or 2), timeout=timeout,
                        memory_mb=memory_mb, math_verify=not no_math_verify, shortcuts=not no_shortcuts,
                        keep_going=run.keep_going)
    if unsorted:
        console.warn("--unsorted: holding every record in memory until the input ends")
    reader, records = run.read(paths, "cluster")
    out = common.open_output(output, run.resume, "problems already summarised", id_key=run.id_key)
    stats = ClusterStats()
    common.write_all(cluster_records(out.skip(records), cfg, stats, reader.where), out.writer,
                     "problems", quiet=run.quiet, chunk=16)
    common.finish(stats)


def main() -> None:
    app(prog_name="tf-cluster")


if __name__ == "__main__":
    main()
