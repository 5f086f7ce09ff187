"""run/create, ps and pull declare their options once (barque.cli.flags): the launcher's fast
path and typer's app, both derived from that table, accept every option the same way and
hand the command the same values; ``--help`` lists every one of them; and an option barque
parses but does not apply yet is refused in one line, exit 125, instead of being ignored."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from barque.cli import flags, launcher
from barque.cli.flags import BOOL, REPEATABLE, Flag, PsArgs, PullArgs, RunArgs
from helpers import PYTHON_CLI, SHARED, barque, cli

BUSYBOX_TAR = SHARED / "fixtures" / "images" / "busybox-1.35.docker.tar"


def _sample(spec: Flag) -> str:
    """A value its converter reads, distinct per option."""
    if spec.convert is int:
        return "7"
    if spec.convert is float:
        return "0.5"
    return f"{spec.dest}-value"


def _spellings(spec: Flag) -> list[list[str]]:
    """Every way to write the option on a command line: each name, ``--long=V``, ``-sV``, a
    repeatable one twice, the negation of a switch."""
    if spec.kind == BOOL:
        lines = [[name] for name in spec.names]
        return lines + ([[spec.negation]] if spec.negation else [])
    value = _sample(spec)
    lines = [[spec.long, value], [f"{spec.long}={value}"]]
    if spec.short:
        lines += [[spec.short, value], [spec.short + value]]
    if spec.kind == REPEATABLE:
        lines.append([*lines[0], *(spec.short or spec.long, "second")])
    return lines


def _expected(spec: Flag, line: list[str]) -> Any:
    """The value ``line`` (one of :func:`_spellings`) gives the option's field."""
    if spec.kind == BOOL:
        return line != [spec.negation]
    value = spec.convert(_sample(spec))
    if spec.kind == REPEATABLE:
        return [value, "second"] if line[-1] == "second" else [value]
    return value


def _cases(args: type[flags.Options]) -> list[Any]:
    return [pytest.param(spec, line, id=" ".join(line)) for spec in flags.table(args)
            for line in _spellings(spec)]


class _Recorded:
    """Stands in for a command's implementation, which both parsers call: what it was
    given (the parsers under test are the real ones)."""

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> int:
        self.calls.append((args, kwargs))
        return 0


def _through_click(argv: list[str], monkeypatch: pytest.MonkeyPatch, module: str,
                   function: str) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Parse ``argv`` with typer's app (the click command the forkserver pre-builds) and
    return what it passed to ``module.function``."""
    import importlib

    from barque.cli.main import click_command

    recorded = _Recorded()
    monkeypatch.setattr(importlib.import_module(module), function, recorded)
    code = click_command().main(argv, standalone_mode=False)
    assert code in (0, None) and len(recorded.calls) == 1, (code, recorded.calls)
    return recorded.calls[0]


@pytest.mark.parametrize("args", [RunArgs, PsArgs, PullArgs])
def test_no_spelling_is_declared_twice(args) -> None:
    """(The launcher's tables would keep one of the two fields, click would warn.)"""
    spellings = [name for spec in flags.table(args) for name in spec.spellings]
    assert len(spellings) == len(set(spellings))
    # -h is help for ps and pull (the app's), --hostname for run/create (only --help there).
    assert "--help" not in spellings and ("-h" in spellings) == (args is RunArgs)


@pytest.mark.parametrize(("spec", "line"), _cases(RunArgs))
@pytest.mark.parametrize("kind", ["run", "create"])
def test_run_and_create_parse_every_option_alike(spec, line, kind, monkeypatch, tmp_path) -> None:
    argv = ["--root", str(tmp_path), kind, *line, "busybox", "sh", "-c", "true"]
    fast = launcher.parse_run(argv)
    assert fast is not None, "the fast path left a table option to typer"
    assert fast[0] == kind
    (typer_kind, typer_args), _ = _through_click(argv, monkeypatch, "barque.cli.run",
                                                 "run_or_create")
    assert (typer_kind, typer_args) == (kind, fast[1])
    assert getattr(fast[1], spec.dest) == _expected(spec, line)
    assert fast[1].image == "busybox" and fast[1].command == ["sh", "-c", "true"]


def test_every_run_option_on_one_command_line(monkeypatch, tmp_path) -> None:
    line = [word for spec in flags.table(RunArgs) for word in _spellings(spec)[0]]
    argv = ["run", *line, "img"]
    fast = launcher.parse_run(argv)
    assert fast is not None
    _, typer_args = _through_click(argv, monkeypatch, "barque.cli.run", "run_or_create")[0]
    assert typer_args == fast[1]
    for spec in flags.table(RunArgs):
        assert getattr(fast[1], spec.dest) == _expected(spec, _spellings(spec)[0]), spec


@pytest.mark.parametrize(("spec", "line"), _cases(PsArgs))
def test_ps_parses_every_option_alike(spec, line, monkeypatch) -> None:
    fast = launcher.parse_ps(["ps", *line])
    assert fast is not None
    _, typer_values = _through_click(["ps", *line], monkeypatch, "barque.cli.listing", "ps")
    assert PsArgs(**typer_values) == PsArgs(**fast[0])
    assert getattr(PsArgs(**fast[0]), spec.dest) == _expected(spec, line)


@pytest.mark.parametrize(("spec", "line"), _cases(PullArgs))
def test_pull_parses_every_option_alike(spec, line, monkeypatch) -> None:
    fast = launcher.parse_pull(["pull", *line, "busybox"])
    assert fast is not None
    (reference,), typer_values = _through_click(["pull", *line, "busybox"], monkeypatch,
                                                "barque.cli.pulling", "pull_image")
    values = dict(fast[0])
    assert values.pop("reference") == reference == "busybox"
    assert PullArgs(**typer_values) == PullArgs(**values)
    assert getattr(PullArgs(**values), spec.dest) == _expected(spec, line)


@pytest.mark.parametrize(("command", "args"), [("run", RunArgs), ("create", RunArgs),
                                               ("ps", PsArgs), ("pull", PullArgs)])
def test_help_lists_every_option_of_the_table(command, args) -> None:
    proc = subprocess.run([*cli(), command, "--help"], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "COLUMNS": "80"})
    assert proc.returncode == 0, proc.stderr
    options = proc.stdout.split("\nOptions:\n", 1)[1]
    for spec in flags.table(args):
        names = f"{spec.short}, {spec.long}" if spec.short else spec.long
        if spec.negation:
            names += f" / {spec.negation}"
        assert f"  {names} " in options or f"  {names}\n" in options, names
        assert spec.help.split()[0] in options


def _both_clis() -> list[list[str]]:
    return [cli(), [str(PYTHON_CLI)]]


@pytest.mark.parametrize("command", _both_clis(), ids=["barque", "barque-py"])
@pytest.mark.parametrize(("args", "flag"), [
    (["run", "-p", "8080:80", "img", "true"], "--publish"),
    (["create", "-itP", "img"], "--publish-all"),
    (["run", "--rm", "--stop-timeout=5", "img"], "--stop-timeout"),
    (["container", "run", "--dns", "1.1.1.1", "-c", "512", "img"], "--cpu-shares"),
    (["run", "--pull", "never", "img"], "--pull"),
])
def test_an_option_not_applied_yet_is_refused(tmp_path, command, args, flag) -> None:
    proc = subprocess.run([*command, "--root", str(tmp_path / "root"), *args],
                          capture_output=True, text=True, timeout=120)
    assert (proc.returncode, proc.stdout, proc.stderr) == (
        125, "", f"barque: {flag} is not supported yet\n")
    assert not (tmp_path / "root" / "containers").exists() or \
        not os.listdir(tmp_path / "root" / "containers")


def test_typer_refuses_the_same_options(tmp_path, capsys) -> None:
    """Through typer's app too (what a command line the fast path does not take reaches)."""
    from barque.cli.main import click_command

    code = click_command().main(["--root", str(tmp_path), "create", "--ipc", "host", "img"],
                                standalone_mode=False)
    assert code == 125
    assert capsys.readouterr().err == "barque: --ipc is not supported yet\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="containers need root (namespaces, mounts)")
@pytest.mark.skipif(not BUSYBOX_TAR.is_file(), reason="shared fixtures missing")
def test_an_option_at_its_default_is_no_request(tmp_path: Path) -> None:
    """``--restart no`` and ``--pull missing`` are what barque does: accepted, as Docker does."""
    barque(tmp_path, "load", "-q", "-i", str(BUSYBOX_TAR))
    image = "barque-fixtures/busybox:1.35"
    proc = barque(tmp_path, "run", "--rm", "--restart", "no", "--pull=missing",
                  "--network", "none", image, "echo", "ran")
    assert proc.stdout == "ran\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="containers need root (namespaces, mounts)")
@pytest.mark.skipif(not BUSYBOX_TAR.is_file(), reason="shared fixtures missing")
def test_dns_hosts_shm_ulimit_and_sysctl_flags_reach_the_container(tmp_path: Path) -> None:
    """The options the container model applies are no longer refused by the CLI: each one
    shows inside the container as it does under ``docker run``."""
    barque(tmp_path, "load", "-q", "-i", str(BUSYBOX_TAR))
    script = ("cat /etc/resolv.conf; grep db.internal /etc/hosts; df -k /dev/shm | tail -1; "
              "ulimit -n; cat /proc/sys/net/ipv4/ip_forward")
    proc = barque(tmp_path, "run", "--rm", "--network", "none", "--dns", "192.0.2.53",
                  "--dns-search", "corp.example", "--dns-option", "ndots:2",
                  "--add-host", "db.internal:192.0.2.7", "--shm-size", "8m",
                  "--ulimit", "nofile=512:512", "--sysctl", "net.ipv4.ip_forward=1",
                  "barque-fixtures/busybox:1.35", "sh", "-c", script)
    lines = proc.stdout.splitlines()
    assert "nameserver 192.0.2.53" in lines
    assert "search corp.example" in lines
    assert "options ndots:2" in lines
    assert any(line.split() == ["192.0.2.7", "db.internal"] for line in lines), lines
    shm = next(line for line in lines if line.endswith("/dev/shm"))
    assert shm.split()[1] == "8192", shm
    assert lines[-2:] == ["512", "1"]
