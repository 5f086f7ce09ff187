"""``docker run`` in the foreground through barque's daemon: the attach (a hijacked
connection) before the start, output and exit codes, piped stdin, and ``-it`` on a real pty
(size, resize, detach keys, reattach), as a Docker user types them."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Iterator

import pytest
from daemon_helpers import BUSYBOX, DAEMON_MARKS, DOCKER, Daemon, daemon_with_busybox

pytestmark = DAEMON_MARKS


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    yield from daemon_with_busybox(tmp_path_factory)


class Terminal:
    """The docker CLI on a pty of its own, as a user's terminal runs it."""

    def __init__(self, daemon: Daemon, args: list[str], rows: int = 33, cols: int = 111
                 ) -> None:
        env = {**os.environ, "DOCKER_HOST": f"unix://{daemon.socket}",
               "DOCKER_CONFIG": str(daemon.docker_config), "TERM": "xterm"}
        pid, fd = pty.fork()
        if pid == 0:  # the child only sets its size and execs the docker CLI
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
            os.execve(str(DOCKER), [str(DOCKER), *args], env)
        self.pid, self.fd = pid, fd
        self.seen = b""

    def type(self, data: bytes) -> None:
        os.write(self.fd, data)

    def expect(self, token: bytes, timeout: float = 30, after: int = 0) -> bytes:
        """Read until ``token`` shows (past offset ``after`` of what was seen)."""
        deadline = time.monotonic() + timeout
        while token not in self.seen[after:]:
            left = deadline - time.monotonic()
            assert left > 0, f"{token!r} never came; the terminal showed {self.seen[-500:]!r}"
            ready, _, _ = select.select([self.fd], [], [], min(left, 0.5))
            if ready:
                try:
                    data = os.read(self.fd, 65536)
                except OSError:  # EIO: the CLI exited
                    data = b""
                assert data, f"the CLI ended before {token!r}: {self.seen[-500:]!r}"
                self.seen += data
        return self.seen

    def resize(self, rows: int, cols: int) -> None:
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        os.kill(self.pid, signal.SIGWINCH)

    def exit_code(self, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while True:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
            if time.monotonic() > deadline:
                os.kill(self.pid, signal.SIGKILL)
                raise AssertionError(f"the docker CLI did not exit: {self.seen[-500:]!r}")
            # Keep reading, so the CLI never blocks on a full pty.
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if ready:
                try:
                    self.seen += os.read(self.fd, 65536)
                except OSError:
                    pass


def test_run_in_the_foreground_prints_and_removes(daemon: Daemon) -> None:
    run = daemon.docker("run", "--rm", "--name", "fg-echo", BUSYBOX, "echo", "hello there")
    assert run.stdout == "hello there\n"
    assert daemon.docker("ps", "-aq", "--filter", "name=fg-echo").stdout == ""


def test_every_quick_run_keeps_its_output(daemon: Daemon) -> None:
    # The attach lands before the start: a command over before anyone could connect must
    # still be seen whole.
    for n in range(8):
        assert daemon.docker("run", "--rm", BUSYBOX, "echo", str(n)).stdout == f"{n}\n"


def test_exit_codes_and_streams_are_dockers(daemon: Daemon) -> None:
    run = daemon.docker("run", "--rm", BUSYBOX, "sh", "-c", "echo out; echo err >&2; exit 3",
                        check=False)
    assert (run.returncode, run.stdout) == (3, "out\n")
    assert "err\n" in run.stderr
    kept = daemon.docker("run", "--name", "fg-kept", BUSYBOX, "sh", "-c", "exit 5", check=False)
    assert kept.returncode == 5
    assert daemon.docker("inspect", "-f", "{{.State.ExitCode}}", "fg-kept").stdout == "5\n"
    daemon.docker("rm", "fg-kept")
    missing = daemon.docker("run", "--rm", BUSYBOX, "nonexistent", check=False)
    assert missing.returncode == 127
    assert 'exec: "nonexistent": executable file not found in $PATH' in missing.stderr
    not_executable = daemon.docker("run", "--rm", BUSYBOX, "/etc/passwd", check=False)
    assert not_executable.returncode == 126
    assert "permission denied" in not_executable.stderr


def test_piped_stdin_reaches_the_container_and_its_end_ends_it(daemon: Daemon) -> None:
    proc = subprocess.run(
        [str(DOCKER), "run", "-i", "--rm", BUSYBOX, "sh", "-c", "wc -l; echo done"],
        input="one\ntwo\nthree\n", capture_output=True, text=True, timeout=60,
        env={**os.environ, "DOCKER_HOST": f"unix://{daemon.socket}",
             "DOCKER_CONFIG": str(daemon.docker_config)})
    assert (proc.returncode, proc.stdout.split()) == (0, ["3", "done"]), proc.stderr


def test_run_it_on_a_terminal_sees_its_size_resizes_and_exits_with_the_shell(
        daemon: Daemon) -> None:
    term = Terminal(daemon, ["run", "-it", "--rm", BUSYBOX, "sh"], rows=33, cols=111)
    term.expect(b"# ")
    term.type(b"stty size\r")
    term.expect(b"33 111")
    term.resize(40, 120)
    deadline = time.monotonic() + 20
    while b"40 120" not in term.seen:  # the resize travels on its own request: ask again
        assert time.monotonic() < deadline, term.seen[-300:]
        mark = len(term.seen)
        term.type(b"stty size\r")
        term.expect(b"# ", after=mark)
    term.type(b"exit 7\r")
    assert term.exit_code() == 7


def test_detach_keys_leave_it_running_and_attach_comes_back(daemon: Daemon) -> None:
    term = Terminal(daemon, ["run", "-it", "--name", "fg-detach", BUSYBOX, "sh"])
    try:
        term.expect(b"# ")
        term.type(b"\x10\x11")  # ctrl-p ctrl-q
        assert term.exit_code() == 0
        assert daemon.docker("inspect", "-f", "{{.State.Status}}",
                             "fg-detach").stdout == "running\n"
        again = Terminal(daemon, ["attach", "fg-detach"])
        again.type(b"echo back-$((6*7))\r")
        again.expect(b"back-42")
        again.type(b"exit 4\r")
        assert again.exit_code() == 4
        assert daemon.docker("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}",
                             "fg-detach").stdout == "exited 4\n"
    finally:
        daemon.docker("rm", "-f", "fg-detach", check=False)


def test_two_terminals_share_a_named_volume(daemon: Daemon) -> None:
    # The seed's scenario: two `docker run -it --rm -v test_volume:/test` at once, one
    # writes, the other reads.
    daemon.docker("volume", "create", "test_volume")
    try:
        writer = Terminal(daemon, ["run", "-it", "--rm", "-v", "test_volume:/test", BUSYBOX,
                                   "sh"])
        reader = Terminal(daemon, ["run", "-it", "--rm", "-v", "test_volume:/test", BUSYBOX,
                                   "sh"])
        writer.expect(b"# ")
        reader.expect(b"# ")
        mark = len(writer.seen)
        writer.type(b"echo written-by-one > /test/note\r")
        writer.expect(b"# ", after=mark)
        deadline = time.monotonic() + 20
        while b"written-by-one\r\n" not in reader.seen:
            assert time.monotonic() < deadline, reader.seen[-300:]
            mark = len(reader.seen)
            reader.type(b"cat /test/note\r")
            reader.expect(b"# ", after=mark)
        writer.type(b"exit\r")
        reader.type(b"exit\r")
        assert (writer.exit_code(), reader.exit_code()) == (0, 0)
    finally:
        daemon.docker("volume", "rm", "test_volume", check=False)


def test_a_client_killed_mid_attach_leaves_the_container_and_daemon(daemon: Daemon) -> None:
    term = Terminal(daemon, ["run", "-i", "--name", "fg-killed", BUSYBOX, "sh", "-c",
                             "echo started; sleep 300"])
    try:
        term.expect(b"started")
        os.kill(term.pid, signal.SIGKILL)
        term.exit_code()
        assert daemon.docker("inspect", "-f", "{{.State.Status}}",
                             "fg-killed").stdout == "running\n"
        assert daemon.docker("run", "--rm", BUSYBOX, "echo", "still").stdout == "still\n"
    finally:
        daemon.docker("rm", "-f", "fg-killed", check=False)
