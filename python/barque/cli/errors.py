"""Every error the CLI can print, mapped to one line on stderr and an exit code, in one place."""

from __future__ import annotations

import sys

from ..errors import BarqueError

#: Docker's CLI exits 1 for failed image commands; container commands (later) use 125/126/127.
ENGINE_ERROR = 1


def exit_code(error: BaseException) -> int | None:
    """The exit code for ``error``, or None if it is a bug that should show its traceback."""
    if isinstance(error, BarqueError):
        return ENGINE_ERROR
    if isinstance(error, OSError):
        return ENGINE_ERROR
    return None


def message(error: BaseException) -> str:
    if isinstance(error, OSError) and not isinstance(error, BarqueError) and error.strerror:
        where = f": {error.filename}" if error.filename else ""
        return f"{error.strerror}{where}"
    text = str(error) or type(error).__name__
    return " ".join(text.split())  # one line, whatever the message held


def report(error: BaseException) -> None:
    sys.stderr.write(f"Error: {message(error)}\n")
    sys.stderr.flush()
