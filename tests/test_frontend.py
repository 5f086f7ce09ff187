"""The native ``barque`` front end and the forkserver behind it: a command run through them must
look, to its caller, exactly like the same command run by the Python CLI: same streams,
directory, environment, exit status and signals; and when the server cannot stand in for the
caller, the command still runs (in the Python CLI) or, with ``BARQUE_FORKSERVER=require``,
fails saying why. Real processes, a real server, real containers (as root)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from helpers import (
    NATIVE_CLI,
    PACKAGE,
    PYTHON_CLI,
    native_cli_installed,
    start_forkserver,
    stop_forkserver,
    wait_for_forkserver,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")
NET = ("--network", "none")


@pytest.fixture(scope="module", autouse=True)
def installed() -> None:
    if not native_cli_installed():
        pytest.fail(f"the native front end is not installed at {NATIVE_CLI}: run scripts/setup")


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> tuple[Path, dict[str, str]]:  # type: ignore[no-untyped-def]
    """A forkserver of this module's own, and the environment that requires it."""
    directory = tmp_path_factory.mktemp("frontend-server")
    proc = start_forkserver(directory)
    env = {**os.environ, "BARQUE_FORKSERVER_DIR": str(directory), "BARQUE_FORKSERVER": "require"}
    yield directory, env
    proc.kill()
    proc.wait()
    stop_forkserver(directory)


@pytest.fixture(scope="module")
def store(tmp_path_factory, fixture_images, server):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("frontend-store")
    _run(server, "--root", str(root), "pull", "-q", fixture_images["busybox"].ref)
    return root


@pytest.fixture
def busybox(fixture_images) -> str:  # type: ignore[no-untyped-def]
    return fixture_images["busybox"].ref


def _run(server, *args: str, env: dict[str, str] | None = None, **kwargs
         ) -> subprocess.CompletedProcess[str]:
    kwargs.setdefault("timeout", 120)
    return subprocess.run([str(NATIVE_CLI), *args], capture_output=True, text=True,
                          env={**server[1], **(env or {})}, **kwargs)


def _server_children(directory: Path) -> list[int]:
    pid = int((directory / "forkserver.lock").read_text())
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _command_of(directory: Path, stdin: int) -> int:
    """The server's child running the command whose stdin is our pipe ``stdin``."""
    ours = os.readlink(f"/proc/self/fd/{stdin}")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for child in _server_children(directory):
            try:
                if os.readlink(f"/proc/{child}/fd/0") == ours:
                    return child
            except OSError:
                pass
        time.sleep(0.05)
    raise AssertionError("the command never started in the server")


def test_a_command_gets_the_callers_streams_directory_environment_and_exit_code(
        server, store, busybox, tmp_path) -> None:
    (tmp_path / "vars.env").write_text("FROM_FILE=yes\n")
    proc = _run(server, "--root", str(store), "run", "--rm", "-i", *NET,
                "-e", "FROM_CALLER", "--env-file", "vars.env", busybox, "sh", "-c",
                'echo "out $FROM_CALLER $FROM_FILE"; echo err >&2; cat; exit 7',
                input="from stdin\n", cwd=tmp_path, env={"FROM_CALLER": "caller-value"})
    assert proc.stdout == "out caller-value yes\nfrom stdin\n"
    assert proc.stderr == "err\n"
    assert proc.returncode == 7


def test_errors_and_usage_read_as_the_python_clis(server, store) -> None:
    for args in (["run", "--rm", *NET, "no-such-image:here"], ["no-such-command"],
                 ["ps", "--bogus"]):
        served = _run(server, "--root", str(store), *args)
        direct = subprocess.run([str(PYTHON_CLI), "--root", str(store), *args],
                                capture_output=True, text=True, timeout=120)
        assert (served.returncode, served.stdout, served.stderr) == (
            direct.returncode, direct.stdout, direct.stderr)
        assert served.returncode in (2, 125) and served.stderr


def test_a_signal_to_the_front_end_reaches_the_container(server, store, busybox) -> None:
    proc = subprocess.Popen([str(NATIVE_CLI), "--root", str(store), "run", "--rm", *NET, busybox,
                             "sh", "-c", "trap 'echo got TERM; exit 3' TERM; echo ready; "
                             "while :; do sleep 0.1; done"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=server[1])
    try:
        assert proc.stdout.readline() == "ready\n"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert out == "got TERM\n", err
    assert proc.returncode == 3


def test_killing_the_front_end_kills_its_command(server, store) -> None:
    # `load` from a pipe that stays open blocks in the server's child until its caller dies.
    proc = subprocess.Popen([str(NATIVE_CLI), "--root", str(store), "load"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=server[1])
    command = _command_of(server[0], proc.stdin.fileno())
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 30
    while command in _server_children(server[0]):
        assert time.monotonic() < deadline, "the command outlived its caller"
        time.sleep(0.05)
    proc.stdin.close()


def test_a_command_killed_by_a_signal_kills_the_front_end_with_it(server, store) -> None:
    proc = subprocess.Popen([str(NATIVE_CLI), "--root", str(store), "load"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=server[1])
    os.kill(_command_of(server[0], proc.stdin.fileno()), signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def test_a_job_control_stop_stops_the_command_and_continuing_continues_it(server, store) -> None:
    proc = subprocess.Popen([str(NATIVE_CLI), "--root", str(store), "load"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=server[1])
    try:
        command = _command_of(server[0], proc.stdin.fileno())
        proc.send_signal(signal.SIGTSTP)  # ^Z at a shell
        _wait_state(command, "T")
        _wait_state(proc.pid, "T")
        proc.send_signal(signal.SIGCONT)  # `fg`
        _wait_state(command, "S")
    finally:
        proc.kill()
        proc.wait()


def _wait_state(pid: int, wanted: str) -> None:
    deadline = time.monotonic() + 30
    while _state(pid) != wanted:
        assert time.monotonic() < deadline, f"{pid} is {_state(pid)}, not {wanted}"
        time.sleep(0.02)


def test_a_wedged_server_is_named_and_an_interrupt_gives_up_without_running(
        server, store, busybox) -> None:
    deadline = time.monotonic() + 30
    while len(_server_children(server[0])) != 1:  # earlier commands still ending
        assert time.monotonic() < deadline
        time.sleep(0.05)
    spare = _server_children(server[0])[0]
    os.kill(spare, signal.SIGSTOP)  # it would take the next connection, and does not
    try:
        proc = subprocess.Popen([str(NATIVE_CLI), "--root", str(store), "create", "--name",
                                 "never-created", *NET, busybox],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**server[1], "BARQUE_FORKSERVER_PATIENCE": "0.2"})
        assert "waiting for the forkserver" in proc.stderr.readline()
        proc.send_signal(signal.SIGINT)
        # (wait, not communicate: the request still queued at the server holds our pipes)
        assert proc.wait(timeout=30) == 130
    finally:
        os.kill(spare, signal.SIGCONT)
    proc.communicate(timeout=30)
    time.sleep(1)  # the spare now takes the abandoned connection, and must not run it
    names = _run(server, "--root", str(store), "ps", "-a", "--format", "json").stdout
    assert "never-created" not in names


def test_twenty_commands_at_once(server, store, busybox) -> None:
    def one(i: int) -> subprocess.CompletedProcess[str]:
        return _run(server, "--root", str(store), "run", "--rm", *NET, busybox, "echo", str(i))

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(one, range(20)))
    assert [r.stdout for r in results] == [f"{i}\n" for i in range(20)]
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    assert _run(server, "--root", str(store), "ps", "-aq").stdout == ""
    # Their directories went to the trash, and each command started their deletion on its
    # way out (after answering its caller).
    deadline = time.monotonic() + 30
    while list((store / "trash").iterdir()):
        assert time.monotonic() < deadline, "the removed containers' files stayed behind"
        time.sleep(0.05)


def test_a_caller_in_another_mount_namespace_runs_the_command_itself(server, store) -> None:
    refused = subprocess.run(["unshare", "-m", str(NATIVE_CLI), "--version"], capture_output=True,
                             text=True, env=server[1], timeout=60)
    assert refused.returncode == 125
    assert "another mnt namespace" in refused.stderr
    direct = subprocess.run(["unshare", "-m", str(NATIVE_CLI), "--version"], capture_output=True,
                            text=True, env={**server[1], "BARQUE_FORKSERVER": "auto"}, timeout=60)
    assert direct.returncode == 0 and direct.stdout.startswith("barque version ")


def test_the_first_command_starts_a_server_and_a_code_change_replaces_it(tmp_path) -> None:
    directory = tmp_path / "fs"
    env = {**os.environ, "BARQUE_FORKSERVER_DIR": str(directory), "BARQUE_FORKSERVER": "auto"}
    module = PACKAGE / "humanize.py"  # the installed copy: the one the server imported
    stat = module.stat()
    try:
        first = subprocess.run([str(NATIVE_CLI), "--version"], capture_output=True, text=True,
                               env=env, timeout=60)
        assert first.returncode == 0 and first.stdout.startswith("barque version ")
        assert (directory.stat().st_mode & 0o777) == 0o700
        old = wait_for_forkserver(directory)
        required = {**env, "BARQUE_FORKSERVER": "require"}
        assert subprocess.run([str(NATIVE_CLI), "--version"], capture_output=True, text=True,
                              env=required, timeout=60).returncode == 0
        # barque's code changes under the server (an upgrade): it stops serving, the command
        # runs in the Python CLI, and the next server runs the new code.
        os.utime(module, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
        declined = subprocess.run([str(NATIVE_CLI), "--version"], capture_output=True,
                                  text=True, env=required, timeout=60)
        assert declined.returncode == 125 and "barque changed" in declined.stderr
        deadline = time.monotonic() + 30
        while (directory / "forkserver.sock").exists():
            assert time.monotonic() < deadline, "the old server kept its socket"
            time.sleep(0.05)
        again = subprocess.run([str(NATIVE_CLI), "--version"], capture_output=True, text=True,
                               env=env, timeout=60)
        assert again.returncode == 0 and again.stdout.startswith("barque version ")
        assert wait_for_forkserver(directory) != old
    finally:
        os.utime(module, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        stop_forkserver(directory)


def test_without_a_server_directory_it_runs_the_python_cli(tmp_path) -> None:
    open_dir = tmp_path / "open"
    open_dir.mkdir(mode=0o755)
    open_dir.chmod(0o755)  # others may enter: not a place to trust a socket from
    env = {**os.environ, "BARQUE_FORKSERVER_DIR": str(open_dir), "BARQUE_FORKSERVER": "auto"}
    proc = subprocess.run([str(NATIVE_CLI), "--version"], capture_output=True, text=True,
                          env=env, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("barque version ")
    assert not (open_dir / "forkserver.sock").exists()
    required = subprocess.run([str(NATIVE_CLI), "--version"], capture_output=True, text=True,
                              env={**env, "BARQUE_FORKSERVER": "require"}, timeout=60)
    assert required.returncode == 125 and "mode 0700" in required.stderr


def test_a_server_that_dies_leaves_no_child_behind(tmp_path) -> None:
    directory = tmp_path / "fs"
    directory.mkdir()
    server = start_forkserver(directory)
    try:
        deadline = time.monotonic() + 30
        while not _server_children(directory):
            assert time.monotonic() < deadline, "no spare child"
            time.sleep(0.05)
        spare = _server_children(directory)[0]
        server.kill()
        server.wait()
        deadline = time.monotonic() + 30
        while Path(f"/proc/{spare}").exists() and "Z" not in _state(spare):
            assert time.monotonic() < deadline, "the spare outlived its server"
            time.sleep(0.05)
    finally:
        server.kill()
        server.wait()


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"
