"""The one place that logs, shows progress and prints to stderr.

stdout is reserved for records. Progress is a rich bar when stderr is a terminal and a
heartbeat line every ``heartbeat_s`` seconds otherwise (SLURM logs), e.g.
``tf-grade: 12000/50000 records, 41 rec/s, eta 15m``.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from types import TracebackType
from typing import Any

log = logging.getLogger("tf_tools")

_PROG = "tf-tools"


def setup(prog: str, verbosity: int = 0, quiet: bool = False) -> None:
    """Configure logging once, in a command's ``main()``: -v info, -vv debug, -q errors only."""
    global _PROG
    _PROG = prog
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[
        min(verbosity, 2)
    ]
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{prog}: %(message)s"))
    root = logging.getLogger("tf_tools")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def prog() -> str:
    return _PROG


def error(message: str, hint: str | None = None) -> None:
    """``tf-grade: error: ...`` and, when there is one, ``hint: ...`` on stderr."""
    print(f"{_PROG}: error: {message}", file=sys.stderr)
    if hint:
        print(f"hint: {hint}", file=sys.stderr)


def warn(message: str) -> None:
    log.warning("warning: %s", message)


def info(message: str) -> None:
    log.info("%s", message)


def _fmt_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


class Progress:
    """Counts processed items; shows a rich bar on a terminal, heartbeat lines otherwise.

    Usage: ``with Progress("records", total=None) as p: ... p.advance(n)``.
    Disabled (silent) when ``enabled`` is false, e.g. under ``-q``.
    """

    def __init__(
        self,
        unit: str = "records",
        total: int | None = None,
        enabled: bool = True,
        heartbeat_s: float | None = None,
    ) -> None:
        self.unit = unit
        self.total = total
        self.count = 0
        self.enabled = enabled and logging.getLogger("tf_tools").level <= logging.WARNING
        env = os.environ.get("TF_HEARTBEAT_S")
        self.heartbeat_s = heartbeat_s if heartbeat_s is not None else float(env or 30.0)
        self._start = time.monotonic()
        self._last = self._start
        self._bar: Any = None
        self._task: Any = None
        self.postfix = ""

    def __enter__(self) -> Progress:
        if self.enabled and sys.stderr.isatty():
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn(f"{_PROG}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn(self.unit),
                TextColumn("{task.fields[postfix]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                transient=True,
                redirect_stdout=False,
            )
            self._bar.start()
            self._task = self._bar.add_task(self.unit, total=self.total, postfix="")
        return self

    def advance(self, n: int = 1) -> None:
        self.count += n
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(self._task, advance=n, postfix=self.postfix)
            return
        now = time.monotonic()
        if now - self._last >= self.heartbeat_s:
            self._last = now
            print(self.line(now), file=sys.stderr, flush=True)

    def line(self, now: float | None = None) -> str:
        now = time.monotonic() if now is None else now
        elapsed = max(now - self._start, 1e-9)
        rate = self.count / elapsed
        done = f"{self.count}/{self.total}" if self.total else f"{self.count}"
        eta = ""
        if self.total and rate > 0:
            eta = f", eta {_fmt_duration((self.total - self.count) / rate)}"
        extra = f", {self.postfix}" if self.postfix else ""
        return f"{_PROG}: {done} {self.unit}, {rate:.1f} {self.unit}/s{extra}{eta}"

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.stop()
