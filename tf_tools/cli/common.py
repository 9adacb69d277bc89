"""Options every tf-* command spells the same way, and the error/exit-code wrapper.

STYLE.md exit codes: 0 success (also when downstream closed the pipe), 1 could not finish,
2 usage, 3 finished but some records failed (--keep-going), 130 interrupted.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Annotated, Any

import typer

from tf_tools import console
from tf_tools.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_PARTIAL, TfError, UsageError
from tf_tools.records import PipeClosed

Inputs = Annotated[
    list[str] | None,
    typer.Argument(help="Input JSONL files; '-' or none reads stdin.", show_default=False),
]
Output = Annotated[
    str | None,
    typer.Option("-o", "--output", help="Write to FILE atomically (via FILE.tmp) instead of stdout."),
]
Resume = Annotated[
    bool,
    typer.Option("--resume", help="Keep the complete records already in -o FILE (or FILE.tmp of a killed run) and do only the rest."),
]
KeepGoing = Annotated[
    bool,
    typer.Option("--keep-going", help="Pass bad records on marked as failed (_tf.error) and exit 3 at the end instead of stopping."),
]
Shard = Annotated[
    str | None,
    typer.Option("--shard", metavar="I/N|slurm", help="Only shard I of N (by a stable hash of the id); 'slurm': this SLURM array task's shard (SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN of SLURM_ARRAY_TASK_COUNT). Default: all the input, also inside an array job."),
]
IdKey = Annotated[str, typer.Option("--id-key", help="Field that holds the problem id.")]
Verbose = Annotated[int, typer.Option("-v", "--verbose", count=True, help="-v info, -vv debug (and tracebacks).")]
Quiet = Annotated[bool, typer.Option("-q", "--quiet", help="Errors only: no progress, no summary.")]


def require_input(paths: list[str] | None) -> list[str]:
    """Inputs, or stdin; a terminal on stdin with no file is a usage error, not a hang."""
    if not paths or paths == ["-"]:
        if sys.stdin is not None and sys.stdin.isatty():
            raise UsageError("no input: give a JSONL file or pipe records into stdin",
                             hint=f"{console.prog()} FILE.jsonl   or   ... | {console.prog()}")
        return ["-"]
    return paths


@contextlib.contextmanager
def command(prog: str, verbose: int = 0, quiet: bool = False) -> Iterator[None]:
    """Run a command body: known errors become one line + exit code; a closed pipe exits 0."""
    console.setup(prog, verbose, quiet)
    try:
        yield
    except PipeClosed:
        _silence_stdout()
        raise typer.Exit(EXIT_OK) from None
    except BrokenPipeError:
        _silence_stdout()
        raise typer.Exit(EXIT_OK) from None
    except TfError as exc:
        console.error(exc.message, exc.hint)
        if verbose >= 2:
            raise
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        console.error("interrupted")
        raise typer.Exit(EXIT_INTERRUPTED) from None


def _silence_stdout() -> None:
    # the reader is gone: point stdout at /dev/null so the interpreter's final flush
    # does not print "Exception ignored ... BrokenPipeError"
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def protect_stdout() -> Any:
    """Keep stdout for records only: libraries that print (vLLM logs to stdout, C++
    backends print) write to stderr from here on; records go through the returned stream."""
    try:
        if sys.stdout.fileno() != 1:
            return None
    except (AttributeError, ValueError, OSError):
        return None  # stdout is not a file descriptor (a test runner captures it)
    sys.stdout.flush()
    records = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    return records


def count_lines(paths: list[str]) -> int | None:
    """Total lines of regular input files (for an ETA); None for stdin or pipes."""
    total = 0
    for p in paths:
        if p == "-" or not os.path.isfile(p):
            return None
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                total += chunk.count(b"\n")
    return total


def write_all(records: Any, writer: Any, unit: str = "records", total: int | None = None,
              quiet: bool = False, done: int = 0, chunk: int = 256) -> int:
    """Stream records into ``writer`` with progress; commit on success, keep ``.tmp`` on failure."""
    from tf_tools.records import pump

    try:
        with console.Progress(unit, total, enabled=not quiet) as bar:
            bar.count = done
            n = pump(records, writer, bar, chunk)
    finally:
        writer.close()
    writer.commit()
    return n


def exit_if_failed(n_failed: int) -> None:
    """Exit 3 when some records were passed on marked as failed (STYLE.md)."""
    if n_failed:
        console.log.warning("%d records failed (marked with _tf.error)", n_failed)
        raise typer.Exit(EXIT_PARTIAL)
