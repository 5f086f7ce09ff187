"""Every error the CLI can print, mapped to one line on stderr and an exit code, in one place."""

from __future__ import annotations

import sys

from ..errors import BarqueError

TYPE_CHECKING = False  # typing itself costs start-up time; checkers see the imports
if TYPE_CHECKING:
    import click

#: Docker's CLI exits 1 for failed image commands; container commands (later) use 125/126/127.
ENGINE_ERROR = 1


#: Commands that follow `docker run`'s convention: 125 when the engine fails.
CONTAINER_COMMANDS = frozenset({"run", "create", "start"})


#: A command line that cannot be parsed (an unknown flag, a bad flag value, a missing
#: argument), for every command: Docker's CLI exits 125 for its own flag errors, `docker ps
#: --foo` as `docker run --foo`.
USAGE_ERROR = 125


def usage_message(error: click.UsageError) -> str:
    """One line for a click usage error, in Docker's words where Docker has them (``unknown
    flag: --foo``; ``invalid argument for "--cpus" flag: ...``), without click's usage block
    and "Did you mean" hints."""
    import click

    if isinstance(error, click.NoSuchOption):
        name = error.option_name
        return (f"unknown flag: {name}" if name.startswith("--")
                else f"unknown shorthand flag: {name[1:]!r} in {name}")
    if isinstance(error, click.BadOptionUsage) and error.option_name and \
            "requires an argument" in error.message:
        name = error.option_name
        return (f"flag needs an argument: {name}" if name.startswith("--")
                else f"flag needs an argument: {name[1:]!r} in {name}")
    if isinstance(error, click.BadParameter) and not isinstance(error, click.MissingParameter):
        flag = None
        if isinstance(error.param, click.Option):
            flag = max(error.param.opts, key=len)
        elif error.param is None and isinstance(error.param_hint, str):
            flag = error.param_hint
        if flag and flag.startswith("-"):
            return f'invalid argument for "{flag}" flag: {_sentence(error.message)}'
    return _sentence(error.format_message())


def _sentence(text: str) -> str:
    """click's messages as Docker writes its own: one line, lower case, no final period."""
    text = " ".join(text.split()).rstrip(".")
    return text[:1].lower() + text[1:]


def report_usage(error: click.UsageError) -> None:
    sys.stderr.write(f"barque: {usage_message(error)}\n")
    sys.stderr.flush()


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
    from ..errors import TemplateError

    # The docker CLI prints its template errors bare ("template parsing error: ...").
    prefix = "" if isinstance(error, TemplateError) else "Error: "
    sys.stderr.write(f"{prefix}{message(error)}\n")
    sys.stderr.flush()
