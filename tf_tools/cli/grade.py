"""tf-grade: extract each trajectory's final answer and decide whether it is correct."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from tf_tools.cli import common
from tf_tools.errors import EXIT_ERROR

HELP = """Add `pred`, `verdict` (correct | incorrect | no_answer | truncated | ungradable),
`correct` and `_tf.grade` to every record, in input order.

Examples:

\b
  tf-grade trajectories.jsonl > graded.jsonl
  tf-sample -m MODEL < problems.jsonl | tf-grade --workers 8 | tf-cluster > problems.jsonl
  tf-grade --last-number --completion-key output --answer-key target runs.jsonl -o graded.jsonl
  tf-grade --check-gold problems.jsonl        # before spending GPU hours on a data set
  tf-grade --resume -o graded.jsonl big.jsonl # continue a killed run
  tf-grade --config grade.toml runs.jsonl     # options from a file (TOML or YAML; flags win)
"""

app = typer.Typer(add_completion=False, rich_markup_mode=None)


@app.command(help=HELP, no_args_is_help=False)
@common.tf_command("tf-grade", "id_key", "resume", "keep_going", "shard")
def grade(
    inputs: common.Inputs = None,
    output: common.Output = None,
    workers: common.Workers = 0,
    timeout: Annotated[float, typer.Option("--timeout", help="Hard limit in seconds per answer; the worker is killed after it and the record is ungradable.")] = 5.0,
    tolerance: common.Tolerance = 1e-6,
    last_number: Annotated[bool, typer.Option("--last-number", help="Fall back to the last number in the text (weak models rarely box).")] = False,
    last_math: Annotated[bool, typer.Option("--last-math", help="Fall back to the last $...$ / \\(...\\) / \\[...\\] in the text.")] = False,
    choices: Annotated[str | None, typer.Option("--choices", help="Grade as multiple choice with these letters, e.g. ABCD (automatic when the gold is a single letter A-E).")] = None,
    answer_key: Annotated[str, typer.Option("--answer-key", help="Field with the gold answer (string, GSM8K '... #### 42', a MATH solution with \\boxed, or a list).")] = "answer",
    completion_key: common.CompletionKey = "completion",
    pred_key: Annotated[str | None, typer.Option("--pred-key", help="Take the prediction from this field as-is instead of extracting it.")] = None,
    check_gold: Annotated[bool, typer.Option("--check-gold", help="Read problems and report every gold answer that does not parse, does not equal itself, or is ambiguous (several boxed answers, a range in words) (exit 1 if any).")] = False,
    memory_mb: common.WorkerMemory = 4096,
    *,
    run: common.Run,
) -> None:
    from tf_tools import console
    from tf_tools.grading.grader import GradeConfig, GradeStats, check_golds, grade_records
    from tf_tools.records import JsonlWriter

    paths = common.require_input(inputs)
    cfg = GradeConfig(
        completion_key=completion_key, answer_key=answer_key, pred_key=pred_key,
        id_key=run.id_key, last_number=last_number, last_math=last_math, choices=choices,
        tolerance=tolerance, workers=workers or (os.cpu_count() or 2), timeout=timeout,
        memory_mb=memory_mb, keep_going=run.keep_going,
    )
    reader, records = run.read(paths, "grade")
    if check_gold:
        n_bad = common.write_all(check_golds(records, cfg, reader.where), JsonlWriter(output),
                                 "bad golds", quiet=run.quiet)
        console.log.warning("checked the golds of %d records: %d cannot be graded against or are ambiguous", reader.n_read, n_bad)
        if n_bad:
            raise typer.Exit(EXIT_ERROR)
        return
    out = common.open_output(output, run.resume, "records already graded", id_key=run.id_key,
                             per_record=True)
    stats = GradeStats()
    common.write_all(grade_records(out.skip(records), cfg, stats, reader.where), out.writer,
                     "records", common.count_lines(paths), run.quiet, done=out.n_done)
    common.finish(stats)


def main() -> None:
    app(prog_name="tf-grade")


if __name__ == "__main__":
    main()
