"""Every error the CLI can print, mapped to one line on stderr and an exit code, in one place."""

from __future__ import annotations

import sys

from ..errors import BarqueError

#: Docker's CLI exits 1 for failed image commands; container commands (later) use 125/126/127.
ENGINE_ERROR = 1


#: Commands that follow `docker run`'s convention: 125 when the engine fails.
CONTAINER_COMMANDS = frozenset({"run", "create", "start"})


def exit_code(error: BaseException, command: str | None = None) -> int | None:
    """The exit code for ``error``, or None if it is a bug that should show its traceback."""
    from ..errors import ContainerStartError

    if isinstance(error, ContainerStartError):
        return error.exit_code
    if command in CONTAINER_COMMANDS and isinstance(error, (BarqueError, OSError)):
        return 125
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
