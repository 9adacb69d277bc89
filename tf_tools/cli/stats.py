"""tf-stats: summarise the output of any tf-tools stage (a sink: it writes no records)."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from tf_tools.cli import common
from tf_tools.errors import UsageError

HELP = """Summarise any stage's output, telling the kind of record by its fields:
trajectories (tf-sample), graded trajectories (tf-grade: accuracy, verdicts, pass@k with the
unbiased estimator and maj@k for every k up to n, completion tokens), problem summaries
(tf-cluster: error-rate and entropy distributions, error modes per problem), training
samples (tf-fuse: fused vs RFT, the k distribution, the token multiplier) and training runs
(a tf-train run folder, its loss.jsonl, or its manifest on stdin: the loss curve).

Prints tables on stdout; --json prints one JSON object instead (every k, histograms,
curves); --plot DIR also draws PNG charts. Accuracy comes with the truncation rate (verdict
truncated: the length limit was hit) and the no-answer rate. maj@k: the expectation, over
all k-subsets of a problem's n samples, of "the majority answer is correct" (exact for
n <= 256, else 1000 seeded resamples), so maj@1 = pass@1; all correct answers count as one
answer, wrong ones are grouped by tf-grade's normal form; a t-way tie at the top counts
1/t; no_answer and truncated samples do not vote; ungradable samples are left out of n.

--compare A B: two graded evaluation files over the same problems, matched by id: the
accuracy of each, the difference B - A with a 95% percentile-bootstrap interval (10000
resamples of the problems, --seed), the exact two-sided McNemar p-value, and the problems
won (B right, A wrong), lost, both correct, both wrong. Several samples of a problem are
averaged per problem. Ids in one file only are an error unless --intersect.

A record that cannot be summarised stops with its file and line (exit 1); with --keep-going
it is counted as bad and left out (the first ones are listed with their error, in the
tables and under "bad" / "bad_records" in --json), the rest is summarised, and the exit
code is 3.

Examples:

\b
  tf-stats graded.jsonl
  tf-grade trajectories.jsonl | tf-stats --by level
  tf-stats --by source.model --json graded.jsonl | jq '.graded.groups[] | .pass_at_k["4"]'
  tf-stats problems.jsonl --plot plots/      # error rate and entropy per problem (Figure 1)
  tf-stats train.jsonl --tokenizer models/student   # token multiplier in the student's tokens
  tf-stats runs/rft runs/tf --plot plots/    # two training runs' loss curves
  tf-stats run/*.jsonl                       # every stage of a run, one section each
  tf-stats --compare eval.rft.jsonl eval.trajfusion.jsonl    # B - A, interval, McNemar p
  tf-stats --compare --json eval.rft.jsonl eval.trajfusion.jsonl | jq .mcnemar_p
  tf-stats --config stats.yaml graded.jsonl  # options from a file (TOML or YAML; flags win)
"""

app = typer.Typer(add_completion=False, rich_markup_mode=None)


@app.command(help=HELP, no_args_is_help=False)
@common.tf_command("tf-stats", "id_key", "keep_going")
def stats(
    inputs: Annotated[list[str] | None, typer.Argument(help="JSONL files of any stage (also .jsonl.gz, .jsonl.zst, .parquet), or tf-train run folders; '-' or none reads stdin.", show_default=False)] = None,
    by: Annotated[str | None, typer.Option("--by", metavar="FIELD", help="Group by the value of FIELD (a dotted path reaches into objects: source.model).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object (everything, machine-readable) instead of tables.")] = False,
    plot: Annotated[str | None, typer.Option("--plot", metavar="DIR", help="Also write PNG charts into DIR (needs matplotlib).")] = None,
    tokenizer: common.Tokenizer = None,
    tolerance: common.Tolerance = 1e-6,
    compare: Annotated[bool, typer.Option("--compare", help="Compare two graded evaluation files A B (the two inputs) problem by problem: accuracies, B - A with a bootstrap 95% interval, exact McNemar p, problems won/lost.")] = False,
    intersect: Annotated[bool, typer.Option("--intersect", help="With --compare: compare the problems both files have (and say how many were left out) instead of refusing files whose ids differ.")] = False,
    seed: Annotated[int, typer.Option("--seed", help="With --compare: seed of the bootstrap resamples.")] = 0,
    *,
    run: common.Run,
) -> None:
    if compare:
        _compare(inputs or [], run.id_key, intersect, seed, as_json, run.keep_going, by=by,
                 plot=plot, tokenizer=tokenizer)
        return
    if intersect:
        raise UsageError("--intersect applies to --compare only")
    from tf_tools import console
    from tf_tools.records import JsonlReader
    from tf_tools.stats import StatsConfig, resolve_inputs, summarize

    paths = resolve_inputs(common.require_input(inputs))
    cfg = StatsConfig(by=by, id_key=run.id_key, tolerance=tolerance, tokenizer=tokenizer,
                      keep_going=run.keep_going)
    reader = JsonlReader(paths, keep_going=run.keep_going, step="stats")
    report = summarize(reader, cfg, reader.where, lambda: reader.location()["file"])
    summary = report.to_dict()
    if report.failed:
        console.warn(f"{report.failed} records marked failed upstream (_tf.error) were left out")
    if by and report.runs:
        console.warn("--by does not apply to loss logs: they are shown per run")
    if plot:
        from tf_tools.stats.plots import write_plots

        for path in write_plots(report, plot):
            console.log.warning("wrote %s", path)
    if as_json:
        _print_json(summary)
    else:
        _print_tables(summary)
    _exit_if_bad(report.bad, report.bad_records)


def _exit_if_bad(n_bad: int, shown: list[dict[str, str]]) -> None:
    """--keep-going left records out: say which on stderr and exit 3 (STYLE.md)."""
    if not n_bad:
        return
    from tf_tools import console
    from tf_tools.errors import EXIT_PARTIAL

    for entry in shown:
        console.warn(f"{entry['where']}: {entry['error']} (left out)")
    if n_bad > len(shown):
        console.warn(f"... and {n_bad - len(shown)} more")
    console.warn(f"{n_bad} bad record{'' if n_bad == 1 else 's'} left out of the summary")
    raise typer.Exit(EXIT_PARTIAL)


def _compare(inputs: list[str], id_key: str, intersect: bool, seed: int, as_json: bool,
             keep_going: bool, **others: Any) -> None:
    from tf_tools.records import JsonlReader
    from tf_tools.stats.compare import CompareConfig, compare, labels_for, read_side

    if len(inputs) != 2 or inputs.count("-") > 1:
        raise UsageError(f"--compare takes two graded evaluation files, got {len(inputs)}",
                         hint="tf-stats --compare A.jsonl B.jsonl")
    unused = [f"--{k}" for k, v in others.items() if v]
    if unused:
        raise UsageError(f"{', '.join(unused)} does not apply to --compare")
    names = labels_for(*inputs)
    sides = []
    for path, name in zip(inputs, names, strict=True):
        reader = JsonlReader([path], keep_going=keep_going, step="stats")
        sides.append(read_side(reader, name, path, id_key, reader.where, keep_going))
    result = compare(sides[0], sides[1], CompareConfig(id_key=id_key, intersect=intersect, seed=seed))
    if as_json:
        _print_json(result)
    else:
        from tf_tools.stats.tables import compare_line, compare_tables

        _draw(compare_tables(result))
        sys.stdout.write(compare_line(result) + "\n")
    _exit_if_bad(sum(s.bad for s in sides), [e for s in sides for e in s.bad_records])


def _print_json(summary: dict[str, Any]) -> None:
    import orjson

    sys.stdout.buffer.write(orjson.dumps(summary, option=orjson.OPT_INDENT_2) + b"\n")
    sys.stdout.flush()


def _print_tables(summary: dict[str, Any]) -> None:
    from tf_tools.stats.tables import tables

    if not summary["records"]:
        sys.stdout.write("no records\n")
        return
    _draw(tables(summary))


def _draw(tables: list[Any]) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    out = Console(file=sys.stdout, width=None if sys.stdout.isatty() else 120)
    for t in tables:
        table = Table(title=t.title, caption=t.caption, box=box.SIMPLE_HEAD, title_justify="left",
                      title_style="bold", caption_justify="left", show_header=len(t.columns) > 2)
        for i, col in enumerate(t.columns):
            table.add_column(col, justify="left" if i in t.left else "right",
                             overflow="fold")
        for j, row in enumerate(t.rows):
            table.add_row(*row, end_section=t.total_row and j == len(t.rows) - 2)
        out.print(table)


def main() -> None:
    app(prog_name="tf-stats")


if __name__ == "__main__":
    main()
