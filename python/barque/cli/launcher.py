"""The ``barque`` entry point. ``run`` and ``create`` -- the commands whose start-up time users
measure -- are parsed here by a small table-driven parser and executed without importing typer,
click or rich (about 100 ms of imports); anything this parser does not know, including
``--help`` and malformed values, goes to the full typer app, so the two never disagree on what
they both accept: :mod:`barque.cli.run` implements the command for both.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

#: Flags without a value: option -> RunArgs field (value True).
_BOOLEAN = {
    "--rm": "rm", "-d": "detach", "--detach": "detach", "-i": "interactive",
    "--interactive": "interactive", "-t": "tty", "--tty": "tty", "--read-only": "read_only",
    "--privileged": "privileged", "--init": "init",
}
#: Flags with a value: option -> (RunArgs field, repeatable, converter).
_VALUED = {
    "--name": ("name", False, str), "-e": ("env", True, str), "--env": ("env", True, str),
    "--env-file": ("env_file", True, str), "-w": ("workdir", False, str),
    "--workdir": ("workdir", False, str), "-u": ("user", False, str),
    "--user": ("user", False, str), "-h": ("hostname", False, str),
    "--hostname": ("hostname", False, str), "--entrypoint": ("entrypoint", False, str),
    "--network": ("network", False, str), "--cap-add": ("cap_add", True, str),
    "--cap-drop": ("cap_drop", True, str), "--security-opt": ("security_opt", True, str),
    "-l": ("label", True, str), "--label": ("label", True, str), "-m": ("memory", False, str),
    "--memory": ("memory", False, str), "--pids-limit": ("pids_limit", False, int),
    "--cpus": ("cpus", False, float), "--stop-signal": ("stop_signal", False, str),
    "--log-driver": ("log_driver", False, str), "--log-opt": ("log_opt", True, str),
    "-v": ("volume", True, str), "--volume": ("volume", True, str),
    "--mount": ("mount", True, str), "--tmpfs": ("tmpfs", True, str),
    "--volumes-from": ("volumes_from", True, str),
}


def parse_run(argv: list[str]):  # type: ignore[no-untyped-def]
    """``(kind, RunArgs, root, config)`` for a plain ``run``/``create`` command line, or None
    when the full parser must handle it."""
    from .run import RunArgs

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
    if i >= len(argv) or argv[i] not in ("run", "create"):
        return None
    kind = argv[i]
    i += 1
    values: dict = {}
    while i < len(argv):
        arg = argv[i]
        if arg == "--" or not arg.startswith("-") or arg == "-":
            break
        if arg in ("--sig-proxy", "--no-sig-proxy"):
            values["sig_proxy"] = arg == "--sig-proxy"
        elif arg in _BOOLEAN:
            values[_BOOLEAN[arg]] = True
        elif arg.startswith("--"):
            key, eq, value = arg.partition("=")
            if key not in _VALUED:
                return None
            if not eq:
                if i + 1 >= len(argv):
                    return None
                value = argv[i + 1]
                i += 1
            if not _store(values, key, value):
                return None
        else:  # short options: bundled booleans (-it), or one valued option (-e X, -eX)
            for at, letter in enumerate(arg[1:], start=1):
                flag = "-" + letter
                if flag in _BOOLEAN:
                    values[_BOOLEAN[flag]] = True
                    continue
                if flag not in _VALUED:
                    return None
                value = arg[at + 1:]
                if not value:
                    if i + 1 >= len(argv):
                        return None
                    value = argv[i + 1]
                    i += 1
                if not _store(values, flag, value):
                    return None
                break
        i += 1
    if i < len(argv) and argv[i] == "--":
        i += 1
    if i >= len(argv):
        return None
    return kind, RunArgs(image=argv[i], command=argv[i + 1:], **values), root, config


def _store(values: dict, flag: str, text: str) -> bool:
    name, repeatable, convert = _VALUED[flag]
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
    parsed = parse_run(sys.argv[1:])
    if parsed is None:
        from .main import main as full_main

        full_main()
        return
    from .context import Options
    from .errors import exit_code, report
    from .run import run_or_create

    kind, args, root, config = parsed
    root = root or os.environ.get("BARQUE_ROOT") or None
    Options.root = Path(root) if root else None
    Options.config = Path(config) if config else None
    try:
        code = run_or_create(kind, args)
    except KeyboardInterrupt:
        sys.stderr.write("\n")
        code = 130
    except Exception as e:  # noqa: BLE001 - mapped in one place: cli.errors
        code = exit_code(e, kind)
        if code is None:
            raise
        report(e)
    sys.stdout.flush()
    sys.exit(code)
