"""Exception types and exit codes shared by every tf-tools command.

Core modules raise these; only ``tf_tools.cli`` turns them into messages and exit codes
(STYLE.md: 0 success, 1 could not finish, 2 usage, 3 finished with failed records, 130
interrupted).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3
EXIT_INTERRUPTED = 130


class TfError(Exception):
    """An expected failure: printed as one line (plus an optional hint), no traceback."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(TfError):
    """Bad flags, bad configuration, or no input on a terminal."""

    exit_code = EXIT_USAGE


class Interrupted(TfError):
    """Stopped on request (a signal) after saving what is needed to resume."""

    exit_code = EXIT_INTERRUPTED


class InputError(TfError):
    """A bad input line or record. ``where`` names the file and line when known."""

    def __init__(self, message: str, where: str | None = None, hint: str | None = None) -> None:
        super().__init__(f"{where}: {message}" if where else message, hint)
        self.where = where
        self.bare_message = message


class MissingDependency(TfError):
    """An optional dependency is not installed."""

    def __init__(self, what: str, extra: str) -> None:
        super().__init__(f"{what}", hint=f"pip install 'tf-tools[{extra}]'")
