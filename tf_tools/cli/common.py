"""What every tf-* command shares: its options, spelled once; the error/exit-code wrapper;
``open_output`` (-o and --resume, from ``output.py``); ``finish`` (the summary on stderr and the exit code).

A command function reads as options -> config -> one core call -> ``finish``: it holds no
loop over records and no resume logic of its own.

STYLE.md exit codes: 0 success (also when downstream closed the pipe), 1 could not finish,
2 usage, 3 finished but some records failed (--keep-going), 130 interrupted.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Protocol

import typer
from typer.core import TyperOption

from tf_tools import console
from tf_tools.cli.output import Destination, open_output  # noqa: F401 - every command's -o
from tf_tools.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_PARTIAL, TfError, UsageError
from tf_tools.records import PipeClosed

if TYPE_CHECKING:
    from tf_tools.schema import Record

Inputs = Annotated[
    list[str] | None,
    typer.Argument(help="Input JSONL files (also .jsonl.gz, .jsonl.zst, .parquet); '-' or none reads stdin.", show_default=False),
]
Output = Annotated[
    str | None,
    typer.Option("-o", "--output", help="Write to FILE atomically (via FILE.tmp) instead of stdout; FILE.gz or FILE.zst: compressed."),
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



def _load_config(ctx: typer.Context, param: typer.CallbackParam, path: str | None) -> str | None:
    """``--config FILE`` (eager: read before every other option): the file's keys become the
    command's defaults (click's ``default_map``), so a flag on the command line still wins.
    A bad file is a usage error (exit 2) before anything else happens."""
    if path is not None:
        try:
            defaults = config_defaults(ctx, path)
        except UsageError as exc:
            console.setup(ctx.find_root().info_name or "tf-tools")
            console.error(exc.message, exc.hint)
            raise typer.Exit(exc.exit_code) from None
        ctx.default_map = {**(ctx.default_map or {}), **defaults}
    return path


Config = Annotated[
    str | None,
    typer.Option("--config", metavar="FILE", is_eager=True, callback=_load_config,
                 help="Read options from a TOML or YAML file (keys: long option names, e.g. max-tokens = 512); options given on the command line win."),
]


@dataclass(frozen=True)
class Run:
    """The options every command shares, as this run got them (a command that does not take
    one of them sees its default here)."""

    verbose: int = 0
    quiet: bool = False
    id_key: str = "id"
    resume: bool = False
    keep_going: bool = False
    shard: str | None = None

    def read(self, paths: list[str], step: str) -> tuple[Any, Iterator[Record]]:
        """The input's reader (it says where a record came from) and the records of this
        run's ``--shard``, read with its ``--keep-going``."""
        from tf_tools.records import JsonlReader, in_shard, parse_shard

        reader = JsonlReader(paths, keep_going=self.keep_going, step=step)
        return reader, in_shard(reader, parse_shard(self.shard), self.id_key)


# name -> option, in --help order after the command's own options; the defaults are Run's
_RUN_OPTIONS: dict[str, Any] = {
    "id_key": IdKey, "resume": Resume, "keep_going": KeepGoing, "shard": Shard,
    "config": Config, "verbose": Verbose, "quiet": Quiet,
}
_EVERY_COMMAND = ("config", "verbose", "quiet")


def tf_command(prog: str, *shared: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Give a command function the shared options ``shared`` (of ``id_key``, ``resume``,
    ``keep_going``, ``shard``) plus ``--config``, ``-v`` and ``-q``, which every command has,
    and run its body inside :func:`command`. The function declares only its own options and
    takes the shared ones as ``run: Run``.

    typer builds the command line from the returned function's signature: the function's
    own parameters (``run`` left out), then the shared options in one fixed order."""
    unknown = set(shared) - set(_RUN_OPTIONS)
    assert not unknown, f"not a shared option: {unknown}"
    names = [n for n in _RUN_OPTIONS if n in shared or n in _EVERY_COMMAND]

    def decorate(func: Callable[..., None]) -> Callable[..., None]:
        own = [p for p in inspect.signature(func, eval_str=True).parameters.values() if p.name != "run"]
        added = [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                   default=getattr(Run, n, None), annotation=_RUN_OPTIONS[n])
                 for n in names]

        @functools.wraps(func)
        def wrapper(**kwargs: Any) -> None:
            kwargs.pop("config", None)  # already applied: its callback set the defaults
            run = Run(**{n: kwargs.pop(n) for n in names if n != "config"})
            with command(prog, run.verbose, run.quiet):
                func(**kwargs, run=run)

        params = own + added
        wrapper.__signature__ = inspect.Signature(params, return_annotation=None)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        return wrapper

    return decorate


# options that several commands share, with one meaning and one spelling
Model = Annotated[str, typer.Option("-m", "--model", help="Local model folder (or hub id where a hub is reachable).")]
CompletionKey = Annotated[str, typer.Option("--completion-key", help="Field with the model output (of each trajectory).")]
Workers = Annotated[int, typer.Option("--workers", "-j", help="math-verify worker processes (default: CPU cores).")]
WorkerMemory = Annotated[int, typer.Option("--worker-memory", help="Address-space cap per worker in MiB (0: none).")]
Tolerance = Annotated[float, typer.Option("--tolerance", help="Relative tolerance for answers written as decimals.")]
Tokenizer = Annotated[str | None, typer.Option("--tokenizer", metavar="PATH", help="The student's tokenizer (a local folder or .gguf file) to count tokens with, instead of tf-fuse's approximation (words and punctuation marks).")]


def read_config_file(path: str) -> dict[str, Any]:
    """The top-level table of a TOML (``.toml``) or YAML (any other name) file."""
    try:
        with open(path, "rb") as f:
            data = _parse_toml(f, path) if path.endswith(".toml") else _parse_yaml(f, path)
    except OSError as exc:
        raise UsageError(f"cannot read --config {path}: {exc.strerror}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"--config {path} must hold a table of options, not a {type(data).__name__}")
    return data


def _parse_toml(f: Any, path: str) -> Any:
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib
    try:
        return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"--config {path} is not valid TOML: {exc}") from None


def _parse_yaml(f: Any, path: str) -> Any:
    try:
        import yaml
    except ImportError:
        raise UsageError(f"--config {path}: reading YAML needs PyYAML",
                         hint="pip install pyyaml, or write the file as TOML (FILE.toml)") from None
    try:
        return yaml.safe_load(f)
    except yaml.YAMLError as exc:
        raise UsageError(f"--config {path} is not valid YAML: {exc}") from None


def config_defaults(ctx: typer.Context, path: str) -> dict[str, Any]:
    """The options a config file sets, as defaults by parameter name (what click's
    ``default_map`` takes). Keys are long option names with dashes or underscores
    (``max-tokens``, ``max_tokens``); the negative form of an on/off flag (``no-packing``)
    sets its positive one. An unknown key or a value the option does not take is an error
    naming the file and the key."""
    names: dict[str, tuple[TyperOption, bool]] = {}
    for param in ctx.command.params:
        if not isinstance(param, TyperOption) or param.name in ("config", "help"):
            continue
        longs = [o[2:] for o in param.opts if o.startswith("--")]
        for name in longs or [str(param.name)]:  # an option with only a short form: its name (n)
            names[name] = (param, True)
        names.update({o[2:]: (param, False) for o in param.secondary_opts if o.startswith("--")})
    defaults: dict[str, Any] = {}
    for key, value in read_config_file(path).items():
        found = names.get(str(key).replace("_", "-"))
        if found is None:
            raise UsageError(f"unknown key {key!r} in --config {path}",
                             hint="keys are the long option names that --help lists, with dashes "
                                  "or underscores (max-tokens or max_tokens)")
        param, positive = found
        if not positive:
            if not isinstance(value, bool):
                raise UsageError(f"{key!r} in --config {path} must be true or false, got {value!r}")
            value = not value
        try:
            param.process_value(ctx, value)  # the value as the option would take it
        except typer.BadParameter as exc:
            raise UsageError(f"{key!r} in --config {path}: {exc.message}") from None
        defaults[str(param.name)] = value
    return defaults


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


@contextlib.contextmanager
def sigterm_as_interrupt(enabled: bool = True) -> Iterator[None]:
    """SIGTERM (``scancel``, a time limit) as Ctrl-C inside the block: the command stops
    cleanly with what it finished written, and exits 130 (``--resume`` goes on)."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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
    """Total lines of regular input files (for an ETA), rows of Parquet files; None for
    stdin, pipes and compressed files (counting would decompress them twice)."""
    from tf_tools.records import formats

    total = 0
    for p in paths:
        if p == "-" or not os.path.isfile(p) or formats.codec_of(p):
            return None
        if formats.is_parquet(p):
            rows = formats.parquet_rows_count(p)
            if rows is None:
                return None
            total += rows
            continue
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                total += chunk.count(b"\n")
    return total


class RunStats(Protocol):
    """What a core counts in a run (GradeStats, ClusterStats, FuseStats, SampleStats)."""

    failed: int

    def summary_lines(self) -> list[str]: ...


def finish(stats: RunStats) -> None:
    """The end of a command: its summary on stderr (not under -q), then exit 3 when some
    records were passed on marked as failed (STYLE.md)."""
    for line in stats.summary_lines():
        console.log.warning("%s", line)
    exit_if_failed(stats.failed)


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
