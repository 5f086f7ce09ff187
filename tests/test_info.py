"""``barque info``, and the forkserver's fast path from its default location.

After ordinary use (a detached container's live state under ``/run/barque``), a command of the
native front end must still be served by the forkserver in its default directory, and
``barque info`` must say whether this command took the fast path and, when not, why. The
default location is tested in a mount namespace of its own whose ``/run`` is an empty tmpfs,
so neither the host's ``/run/barque`` nor the session's forkserver is touched. Real processes,
a real server, a real container (as root)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import (
    NATIVE_CLI,
    PYTHON_CLI,
    native_cli_installed,
    start_forkserver,
    stop_forkserver,
    wait_for_forkserver,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="namespaces and containers need root")


@pytest.fixture(scope="module", autouse=True)
def installed() -> None:
    if not native_cli_installed():
        pytest.fail(f"the native front end is not installed at {NATIVE_CLI}: run scripts/setup")


def _env(**changes: str) -> dict[str, str]:
    """This session's environment without its forkserver directory (the default applies)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("BARQUE_FORKSERVER_DIR", "BARQUE_FORKSERVER", "BARQUE_FORKSERVER_STATUS")}
    return {**env, **changes}


def _info(root: Path, env: dict[str, str], *args: str, cli: Path = NATIVE_CLI
          ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(cli), "--root", str(root), "info", *args], capture_output=True,
                          text=True, env=env, timeout=120)


def _fast_path_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, proc.stderr
    lines = [line.strip() for line in proc.stdout.splitlines() if "Fast path:" in line]
    assert len(lines) == 1, proc.stdout
    return " ".join(lines[0].split())


@pytest.fixture
def private_run() -> Iterator[int]:
    """A process holding a mount namespace whose /run is an empty tmpfs of mode 0755, as a
    booted host's: whatever barque makes there starts from nothing."""
    holder = subprocess.Popen(
        ["unshare", "-m", "--propagation", "private", "sh", "-c",
         "mount -t tmpfs -o mode=0755 barque-test-run /run && echo ready && exec sleep 3600"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "ready\n"
        yield holder.pid
    finally:
        holder.kill()
        holder.wait()


def _in_namespace(holder: int, *argv: str, env: dict[str, str]
                  ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["nsenter", f"--mount=/proc/{holder}/ns/mnt", "--", *argv],
                          capture_output=True, text=True, env=env, timeout=120)


def test_after_a_containers_state_made_run_barque_the_default_forkserver_serves(
        private_run, tmp_path, fixture_images) -> None:  # type: ignore[no-untyped-def]
    holder, root = private_run, tmp_path / "store"
    seen_run = Path(f"/proc/{holder}/root/run")  # the namespace's /run, seen from here
    barque = str(NATIVE_CLI)
    # A short idle time: a server left behind by a failed test goes by itself.
    off = _env(BARQUE_FORKSERVER="off", BARQUE_FORKSERVER_IDLE="120")
    auto = {**off, "BARQUE_FORKSERVER": "auto"}
    require = {**off, "BARQUE_FORKSERVER": "require"}
    image = fixture_images["busybox"].ref
    servers: list[Path] = []
    container = ""
    try:
        pulled = _in_namespace(holder, barque, "--root", str(root), "pull", "-q", image, env=off)
        assert pulled.returncode == 0, pulled.stderr
        # Ordinary use first: a detached container, whose live state creates /run/barque.
        started = _in_namespace(holder, barque, "--root", str(root), "run", "-d",
                                "--network", "none", image, "sleep", "300", env=off)
        assert started.returncode == 0, started.stderr
        container = started.stdout.strip()
        assert (seen_run / "barque").stat().st_mode & 0o777 == 0o700
        assert all(d.stat().st_mode & 0o777 == 0o700 for d in (seen_run / "barque").iterdir())

        first = _in_namespace(holder, barque, "--root", str(root), "info", env=auto)
        assert "not in use: no forkserver was running in /run/barque/forkserver/" \
            in _fast_path_line(first)
        servers = list((seen_run / "barque" / "forkserver").iterdir())
        assert len(servers) == 1 and servers[0].stat().st_mode & 0o777 == 0o700
        wait_for_forkserver(servers[0])

        served = _in_namespace(holder, barque, "--root", str(root), "info", env=require)
        assert _fast_path_line(served) == \
            f"Fast path: forkserver in use (dir /run/barque/forkserver/{servers[0].name})"
        listed = _in_namespace(holder, barque, "--root", str(root), "ps", "-q", env=require)
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.split() == [container[:12]]

        # /run/barque as older barques left it, root's 0755: still trusted on the way.
        (seen_run / "barque").chmod(0o755)
        again = _in_namespace(holder, barque, "--root", str(root), "ps", "-q", env=require)
        assert again.returncode == 0, again.stderr
    finally:
        if container:
            _in_namespace(holder, barque, "--root", str(root), "rm", "-f", container, env=off)
        for server in servers:
            stop_forkserver(server)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "store"


def test_info_says_the_forkserver_serves_it(tmp_path, store) -> None:
    directory = tmp_path / "fs"
    directory.mkdir()
    server = start_forkserver(directory)
    try:
        env = _env(BARQUE_FORKSERVER_DIR=str(directory), BARQUE_FORKSERVER="require")
        proc = _info(store, env)
        assert _fast_path_line(proc) == f"Fast path: forkserver in use (dir {directory})"
        assert "Storage Driver: overlay" in proc.stdout
        assert f"Barque Root Dir: {store}" in proc.stdout
        as_json = _info(store, env, "--format", "json")
        assert as_json.returncode == 0, as_json.stderr
        client = json.loads(as_json.stdout)["ClientInfo"]
        assert client["FastPath"] == {"InUse": True, "Directory": str(directory), "Reason": None}
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait()


def test_info_says_why_the_forkserver_is_off(store) -> None:
    proc = _info(store, _env(BARQUE_FORKSERVER="off"))
    assert _fast_path_line(proc) == "Fast path: not in use: BARQUE_FORKSERVER=off"
    direct = _info(store, _env(), cli=PYTHON_CLI)
    assert _fast_path_line(direct) == \
        "Fast path: not in use: barque-py was run directly, not through the barque front end"


def test_an_unsafe_forkserver_directory_is_named_by_info_and_on_stderr(tmp_path, store) -> None:
    open_leaf = tmp_path / "open"
    open_leaf.mkdir()
    open_leaf.chmod(0o755)  # others may enter: not a place to trust a socket from
    proc = _info(store, _env(BARQUE_FORKSERVER_DIR=str(open_leaf), BARQUE_FORKSERVER="auto"))
    assert _fast_path_line(proc) == ("Fast path: not in use: "
                                     f"{open_leaf} is not a directory of this user's with mode 0700")
    assert "warning: not using the forkserver" in proc.stderr
    assert not (open_leaf / "forkserver.sock").exists()

    # A private directory below one that others may write: they could swap it for theirs.
    writable = tmp_path / "writable"
    writable.mkdir()
    writable.chmod(0o777)
    leaf = writable / "fs"
    proc = _info(store, _env(BARQUE_FORKSERVER_DIR=str(leaf), BARQUE_FORKSERVER="auto"))
    line = _fast_path_line(proc)
    assert line.startswith(f"Fast path: not in use: {writable} (owner uid 0, mode 0777)"), line
    assert "can be changed by other users" in line
    assert not (leaf / "forkserver.sock").exists()
