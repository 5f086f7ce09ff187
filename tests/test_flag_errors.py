"""A command line barque cannot parse is one line on stderr and exit 125, as Docker's flag
errors are -- for every command, whether the launcher's fast path or typer parses it -- and
the no-bridge notice of run/create is said once per store."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from helpers import PYTHON_CLI, SHARED, barque, cli

BUSYBOX_TAR = SHARED / "fixtures" / "images" / "busybox-1.35.docker.tar"
CPUS = 'barque: invalid argument for "--cpus" flag: \'abc\' is not a valid float\n'


def _both_clis() -> list[list[str]]:
    """``barque`` as the tests run it (the native front end and its forkserver when they are
    installed) and ``barque-py``, the Python CLI alone."""
    return [cli(), [str(PYTHON_CLI)]]


def _run(command: list[str], root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*command, "--root", str(root), *args], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "COLUMNS": "80"})


@pytest.mark.parametrize("command", _both_clis(), ids=["barque", "barque-py"])
@pytest.mark.parametrize(("args", "stderr"), [
    (["run", "--cpus", "abc", "img"], CPUS),
    (["run", "--cpus=abc", "img", "true"], CPUS),           # the fast path's shape, too
    (["container", "create", "--cpus", "abc", "img"], CPUS),
    (["run", "--rm", "--foo", "img"], "barque: unknown flag: --foo\n"),
    (["create", "-Z", "img"], "barque: unknown shorthand flag: 'Z' in -Z\n"),
    (["run", "--pids-limit", "many", "img"],
     'barque: invalid argument for "--pids-limit" flag: \'many\' is not a valid integer\n'),
    (["run", "--name"], "barque: flag needs an argument: --name\n"),
    (["run"], "barque: missing argument 'IMAGE'\n"),
    (["exec", "--bogus", "c", "true"], "barque: unknown flag: --bogus\n"),
    (["exec", "-e"], "barque: flag needs an argument: 'e' in -e\n"),
    (["ps", "--foo"], "barque: unknown flag: --foo\n"),      # `docker ps --foo` exits 125 too
    (["images", "--bogus"], "barque: unknown flag: --bogus\n"),
])
def test_a_bad_command_line_is_one_line_and_125(tmp_path, command, args, stderr) -> None:
    proc = _run(command, tmp_path / "root", *args)
    assert (proc.returncode, proc.stdout, proc.stderr) == (125, "", stderr)
    assert not (tmp_path / "root" / "containers").exists() or \
        not os.listdir(tmp_path / "root" / "containers")


def test_help_and_commands_keep_their_exit_codes(tmp_path) -> None:
    assert _run(cli(), tmp_path, "run", "--help").returncode == 0
    assert _run(cli(), tmp_path, "--version").stdout == "barque version 0.1.0\n"
    missing = _run(cli(), tmp_path, "rmi", "nosuch")
    assert (missing.returncode, missing.stderr) == (1, "Error: No such image: nosuch:latest\n")


@pytest.mark.skipif(os.geteuid() != 0, reason="containers need root (namespaces, mounts)")
@pytest.mark.skipif(not BUSYBOX_TAR.is_file(), reason="shared fixtures missing")
def test_the_no_bridge_notice_is_said_once_per_store(tmp_path) -> None:
    notice = ("barque: no bridge network yet; the container gets --network none (pass "
              "--network host or none to silence this)\n")
    first, second = tmp_path / "first", tmp_path / "second"
    for root in (first, second):
        barque(root, "load", "-q", "-i", str(BUSYBOX_TAR))
    image = "barque-fixtures/busybox:1.35"
    assert barque(first, "run", "--rm", image, "true").stderr == notice
    assert barque(first, "run", "--rm", image, "true").stderr == ""
    assert barque(first, "create", image).stderr == ""
    # another store has not been told yet
    assert barque(second, "create", image).stderr == notice
    assert barque(second, "run", "--rm", image, "true").stderr == ""
