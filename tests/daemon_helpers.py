"""A ``barque daemon`` for tests: started on a private socket over a given store root, driven
with the real docker CLI or raw HTTP. Test modules share it through the ``daemon`` fixture
pattern below (each module its own daemon and store)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import SHARED, barque, cli

DOCKER = Path("/usr/local/bin/docker")
BUSYBOX_TAR = SHARED / "fixtures" / "images" / "busybox-1.35.docker.tar"
BUSYBOX = "barque-fixtures/busybox:1.35"

#: What every daemon test module marks itself with.
DAEMON_MARKS = [
    pytest.mark.root,
    pytest.mark.skipif(not DOCKER.exists(), reason=f"the docker CLI is not at {DOCKER}"),
    pytest.mark.skipif(os.geteuid() != 0, reason="containers need root"),
]


class Daemon:
    def __init__(self, root: Path, socket_path: Path, log: Path,
                 process: subprocess.Popen[bytes]) -> None:
        self.root, self.socket, self.log, self.process = root, socket_path, log, process
        self.docker_config = socket_path.parent / "docker-config"

    def docker(self, *args: str, check: bool = True, timeout: float = 60
               ) -> subprocess.CompletedProcess[str]:
        """The docker CLI against this daemon (and no config of the machine's)."""
        proc = subprocess.run(
            [str(DOCKER), *args], capture_output=True, text=True, timeout=timeout,
            env={**os.environ, "DOCKER_HOST": f"unix://{self.socket}",
                 "DOCKER_CONFIG": str(self.docker_config)})
        if check and proc.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} exited {proc.returncode}:\n"
                                 f"{proc.stdout}\n{proc.stderr}\ndaemon log:\n"
                                 f"{self.log.read_text()[-3000:]}")
        return proc

    def request(self, raw: bytes) -> tuple[int, dict[str, str], bytes]:
        """One raw HTTP request over the socket (``Connection: close``): status, headers,
        body."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(30)
            s.connect(str(self.socket))
            s.sendall(raw)
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":")
                                                         for line in lines[1:])}
        return int(lines[0].split()[1]), headers, body

    def remove_directory(self) -> None:
        """The socket's directory (with the log), once the daemon has stopped."""
        shutil.rmtree(self.socket.parent, ignore_errors=True)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError("the daemon did not stop on SIGTERM:\n"
                                 + self.log.read_text()[-3000:]) from None


def start_daemon(root: Path) -> Daemon:
    # A short directory: a Unix socket's path is limited to 107 bytes.
    directory = Path(tempfile.mkdtemp(prefix="barqued-", dir="/tmp"))
    path, log = directory / "barque.sock", directory / "daemon.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([*cli(), "--root", str(root), "daemon", "-H",
                                    f"unix://{path}"], stdin=subprocess.DEVNULL,
                                   stdout=out, stderr=out)
    deadline = time.monotonic() + 60
    while not path.exists():  # created atomically: it exists once it accepts clients
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"the daemon did not start:\n{log.read_text()}")
        time.sleep(0.05)
    return Daemon(root, path, log, process)


def daemon_with_busybox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A fixture's body: a daemon over a new store holding the busybox fixture image; on
    teardown it is stopped and every container it left is removed. Use as
    ``yield from daemon_with_busybox(tmp_path_factory)`` in a module-scoped fixture."""
    if not BUSYBOX_TAR.exists():
        pytest.skip(f"fixture image missing: {BUSYBOX_TAR}")
    root = tmp_path_factory.mktemp("daemon") / "root"
    barque(root, "load", "-i", str(BUSYBOX_TAR))
    running = start_daemon(root)
    try:
        yield running
    finally:
        running.stop()
        running.remove_directory()
        left = barque(root, "ps", "-aq", check=False).stdout.split()
        if left:
            barque(root, "rm", "-f", *left, check=False)
