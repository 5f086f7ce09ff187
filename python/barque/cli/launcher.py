"""The ``barque`` entry point. ``run``, ``create``, ``ps`` and ``pull`` -- the commands whose
start-up time users measure -- are parsed here by a small table-driven parser and executed
without importing typer, click or rich (about 100 ms of imports); anything this parser does
not know, including ``--help`` and malformed values, goes to the full typer app. Both parsers
read their options from the one declaration in :mod:`barque.cli.flags`, so they never disagree
on what they both accept, and :mod:`barque.cli.run` implements the command for both.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

TYPE_CHECKING = False  # typing itself costs start-up time; checkers see the imports
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from .flags import RunArgs

    #: A switch: (field, the value it sets).
    Switch = tuple[str, bool]
    #: An option with a value: (field, repeatable, converter of its text).
    Valued = tuple[str, bool, Callable[[str], Any]]

#: Each command's options by spelling, built from its :mod:`barque.cli.flags` class when first
#: parsed (the forkserver parses many command lines per process).
_tables: dict[type, tuple[dict[str, Switch], dict[str, Valued]]] = {}


def _options_of(args: type) -> tuple[dict[str, Switch], dict[str, Valued]]:
    """The switches and valued options of the command whose options class is ``args``."""
    tables = _tables.get(args)
    if tables is None:
        from .flags import BOOL, REPEATABLE, table

        switches: dict[str, Switch] = {}
        valued: dict[str, Valued] = {}
        for spec in table(args):
            for name in spec.names:
                if spec.kind == BOOL:
                    switches[name] = (spec.dest, True)
                else:
                    valued[name] = (spec.dest, spec.kind == REPEATABLE, spec.convert)
            if spec.negation is not None:
                switches[spec.negation] = (spec.dest, False)
        tables = _tables[args] = (switches, valued)
    return tables


def _global_options(argv: list[str]) -> tuple[str | None, str | None, int] | None:
    """``--root``/``--config`` before the command: (root, config, index of the command)."""
    root = config = None
    i = 0
    while i < len(argv) and argv[i].startswith("--") and argv[i].split("=")[0] in (
            "--root", "--config"):
        key, eq, value = argv[i].partition("=")
        if not eq:
            if i + 1 >= len(argv):
                return None
            value = argv[i + 1]
            i += 1
        if key == "--root":
            root = value
        else:
            config = value
        i += 1
    if argv[i:i + 1] == ["container"]:
        i += 1
    return root, config, i


def _options(argv: list[str], i: int, args: type) -> tuple[dict[str, Any], int] | None:
    """The options of ``args``'s command from ``argv[i]`` up to the first operand: (values,
    index of the operand), or None for anything its table does not know (the full parser
    then handles it)."""
    switches, valued = _options_of(args)
    values: dict[str, Any] = {}
    while i < len(argv):
        arg = argv[i]
        if arg == "--" or not arg.startswith("-") or arg == "-":
            break
        if arg in switches:
            name, fixed = switches[arg]
            values[name] = fixed
        elif arg.startswith("--"):
            key, eq, value = arg.partition("=")
            if key not in valued:
                return None
            if not eq:
                if i + 1 >= len(argv):
                    return None
                value = argv[i + 1]
                i += 1
            if not _store(values, valued[key], value):
                return None
        else:  # short options: bundled switches (-it), or one valued option (-e X, -eX)
            for at, letter in enumerate(arg[1:], start=1):
                flag = "-" + letter
                if flag in switches:
                    name, fixed = switches[flag]
                    values[name] = fixed
                    continue
                if flag not in valued:
                    return None
                value = arg[at + 1:]
                if not value:
                    if i + 1 >= len(argv):
                        return None
                    value = argv[i + 1]
                    i += 1
                if not _store(values, valued[flag], value):
                    return None
                break
        i += 1
    return values, i


def parse_run(argv: list[str]) -> tuple[str, RunArgs, str | None, str | None] | None:
    """``(kind, RunArgs, root, config)`` for a plain ``run``/``create`` command line, or None
    when the full parser must handle it."""
    found = _global_options(argv)
    if found is None:
        return None
    root, config, i = found
    if i >= len(argv) or argv[i] not in ("run", "create"):
        return None
    from .flags import RunArgs

    kind = argv[i]
    parsed = _options(argv, i + 1, RunArgs)
    if parsed is None:
        return None
    values, i = parsed
    if i < len(argv) and argv[i] == "--":
        i += 1
    if i >= len(argv):
        return None
    return kind, RunArgs(image=argv[i], command=argv[i + 1:], **values), root, config


def parse_ps(argv: list[str]) -> tuple[dict[str, Any], str | None, str | None] | None:
    """``(values, root, config)`` for a ``ps``/``container ls`` command line, or None."""
    found = _global_options(argv)
    if found is None:
        return None
    root, config, i = found
    if i >= len(argv) or argv[i] not in ("ps", "ls") or (argv[i] == "ls" and argv[i - 1:i] !=
                                                         ["container"]):
        return None
    from .flags import PsArgs

    parsed = _options(argv, i + 1, PsArgs)
    if parsed is None or parsed[1] != len(argv):  # operands: not ps's
        return None
    return parsed[0], root, config


def parse_pull(argv: list[str]) -> tuple[dict[str, Any], str | None, str | None] | None:
    """``(values, root, config)`` for a ``pull``/``image pull`` command line with its options
    before the one reference, or None (options after it, no reference...: typer's)."""
    found = _global_options(argv)
    if found is None:
        return None
    root, config, i = found
    if argv[i:i + 2] == ["image", "pull"]:
        i += 1
    elif argv[i:i + 1] != ["pull"]:
        return None
    from .flags import PullArgs

    parsed = _options(argv, i + 1, PullArgs)
    if parsed is None:
        return None
    values, i = parsed
    if i != len(argv) - 1 or argv[i] == "--":
        return None
    return {**values, "reference": argv[i]}, root, config


def _store(values: dict[str, Any], option: Valued, text: str) -> bool:
    name, repeatable, convert = option
    try:
        value = convert(text)
    except ValueError:
        return False  # the full parser words the error
    if repeatable:
        values.setdefault(name, []).append(value)
    else:
        values[name] = value
    return True


def main() -> None:
    if sys.argv[0].endswith("barque-py"):  # the native front end's fallback: still `barque`
        sys.argv[0] = "barque"
    argv = sys.argv[1:]
    if argv[:1] == ["__forkserver__"]:  # started by the native front end, not by users
        from .forkserver import main as serve

        sys.exit(serve(argv[1:]))
    code = command(argv)
    # Leave without the interpreter's teardown and without closing the store's database,
    # whose last connection would checkpoint the SQLite WAL (two fdatasyncs and an unlink) on
    # every command: the WAL is durable as it is, and checkpoints run as it grows.
    sys.stdout.flush()
    sys.stderr.flush()
    finish_in_background()
    os._exit(code)


def finish_in_background() -> None:
    """What a command leaves to do after its answer (``os._exit`` skips atexit): start the
    deletion of the trees it discarded."""
    snapshots = sys.modules.get("barque.store.snapshots")
    if snapshots is not None:
        snapshots.flush_discarded()


def command(argv: list[str]) -> int:
    """Run one command line; returns its exit code (typer's commands raise SystemExit)."""
    run = parse_run(argv)
    ps = None if run is not None else parse_ps(argv)
    pull = None if run is not None or ps is not None else parse_pull(argv)
    if run is None and ps is None and pull is None:
        from .main import main as full_main

        full_main()
        return 0
    from .context import Options
    from .errors import exit_code, report

    if run is not None:
        command, root, config = run[0], run[2], run[3]
    elif ps is not None:
        command, root, config = "ps", ps[1], ps[2]
    else:
        assert pull is not None  # one of the three matched
        command, root, config = "pull", pull[1], pull[2]
    root = root or os.environ.get("BARQUE_ROOT") or None
    Options.root = Path(root) if root else None
    Options.config = Path(config) if config else None
    try:
        if run is not None:
            from .run import run_or_create

            code = run_or_create(run[0], run[1])
        elif ps is not None:
            from .listing import ps as list_containers

            list_containers(**ps[0])
            code = 0
        else:
            from .pulling import pull_image

            assert pull is not None
            pull_image(**pull[0])
            code = 0
    except KeyboardInterrupt:
        sys.stderr.write("\n")
        code = 130
    except Exception as e:  # noqa: BLE001 - mapped in one place: cli.errors
        mapped = exit_code(e, command)
        if mapped is None:
            raise
        code = mapped
        report(e)
    return code
