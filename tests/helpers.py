"""Shared helpers for tests: run the CLI as a user would, and list a merged rootfs."""

from __future__ import annotations

import fcntl
import importlib.util
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import sysconfig
import tempfile
import termios
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BARQUE_SHARED", REPO.parent / "shared"))
ROOTFS_MANIFEST = SHARED / "tools" / "rootfs-manifest"


#: The installed package (scripts/setup pip-installs the wheel into the venv): tests run the
#: executables users get, from where the wheel puts them, not files of the checkout.
_SPEC = importlib.util.find_spec("barque")  # found, not imported
PACKAGE = Path(_SPEC.origin).parent if _SPEC and _SPEC.origin else REPO / "python" / "barque"
#: barque-shim, barque-init, barque-trampoline.
BIN = PACKAGE / "_bin"
#: What the wheel puts on PATH: barque (the native front end), barque-py, barque-runtime.
SCRIPTS = Path(sysconfig.get_path("scripts"))
BARQUE_RUNTIME = SCRIPTS / "barque-runtime"

#: The native front end, the venv's ``barque``.
NATIVE_CLI = Path(sys.executable).parent / "barque"
PYTHON_CLI = Path(sys.executable).parent / "barque-py"


def native_cli_installed() -> bool:
    try:
        with open(NATIVE_CLI, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def native_cli_used() -> bool:
    """Whether tests run the CLI as users do, through the native front end and the
    forkserver: when it is installed, unless ``BARQUE_TEST_CLI=python``."""
    return os.environ.get("BARQUE_TEST_CLI") != "python" and native_cli_installed()


def cli() -> list[str]:
    """The command that is ``barque`` in these tests (see :func:`native_cli_used`); the
    Python CLI is ``python -m barque``. conftest starts the forkserver and sets
    ``BARQUE_FORKSERVER=require``, so a command the server did not run fails loudly."""
    if native_cli_used():
        return [str(NATIVE_CLI)]
    return [sys.executable, "-m", "barque"]


def start_forkserver(directory: Path, timeout: float = 60) -> subprocess.Popen[bytes]:
    """A forkserver on ``directory`` (mode 0700), as the front end would start one; returns
    once it accepts commands."""
    directory.chmod(0o700)
    log = open(directory / "forkserver.log", "ab")  # noqa: SIM115 - the server's for its life
    proc = subprocess.Popen([str(PYTHON_CLI), "__forkserver__", str(directory)],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                            start_new_session=True,
                            env={**os.environ, "BARQUE_FORKSERVER_IDLE": "86400"})
    log.close()
    wait_for_forkserver(directory, timeout)
    return proc


def wait_for_forkserver(directory: Path, timeout: float = 60) -> int:
    """The pid of the server listening on ``directory`` once it listens."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (directory / "forkserver.sock").exists():
            text = (directory / "forkserver.lock").read_text().strip()
            if text:
                return int(text)
        time.sleep(0.05)
    log = directory / "forkserver.log"
    raise AssertionError(f"no forkserver on {directory}: "
                         f"{log.read_text()[-2000:] if log.exists() else 'no log'}")


def stop_forkserver(directory: Path) -> None:
    """Kill the server named by ``directory``'s lock file, if any."""
    try:
        pid = int((directory / "forkserver.lock").read_text().strip() or 0)
    except (OSError, ValueError):
        return
    if pid:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def barque(root: Path, *args: str, check: bool = True, timeout: float = 300,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``barque --root ROOT ARGS`` (see :func:`cli`) and return the finished process."""
    proc = subprocess.run([*cli(), "--root", str(root), *args],
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"barque {' '.join(args)} exited {proc.returncode}:\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc


def busybox_rootfs(path: Path) -> Path:
    """A busybox root filesystem from the host's busybox-static (scripts/mkimage.py), plus a
    non-executable file the runtime tests exec to get 126."""
    subprocess.run([sys.executable, str(REPO / "scripts" / "mkimage.py"), "--busybox-rootfs",
                    str(path)], check=True, capture_output=True)
    (path / "notexec").write_text("just text\n")
    (path / "notexec").chmod(0o644)
    return path


def merged_listing(lower_dirs_top_first: list[Path]) -> list[str]:
    """Mount the layers as a read-only overlay (as a container's rootfs would be) and list it
    with the shared ``rootfs-manifest`` tool. Needs root."""
    with tempfile.TemporaryDirectory() as tmp:
        merged = Path(tmp) / "merged"
        merged.mkdir()
        lower = ":".join(str(p) for p in lower_dirs_top_first)
        if len(lower_dirs_top_first) == 1:  # overlay wants two lowers without an upper
            empty = Path(tmp) / "empty"
            empty.mkdir()
            lower += f":{empty}"
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={lower}",
                        str(merged)], check=True)
        try:
            out = subprocess.run([sys.executable, str(ROOTFS_MANIFEST), str(merged)],
                                 check=True, capture_output=True, text=True).stdout
        finally:
            subprocess.run(["umount", str(merged)], check=True)
    return sorted(out.splitlines())  # the tool walks a dir tree in walk order, not sorted


#: Entries Docker's container init layer adds, which are in the fixtures' listings (made from
#: `docker export`) but not in the image: /.dockerenv (shown as /dockerenv: the tool strips the
#: dot with "./") and the /etc/mtab symlink.
DOCKER_INIT_LAYER = ("/dockerenv ", "/etc/mtab ")


def expected_listing(name: str, *, image_only: bool = True) -> list[str]:
    """The fixture listing of Docker's container rootfs; ``image_only`` drops what Docker's
    init layer added, leaving what the image's layers alone produce."""
    lines = (SHARED / "fixtures" / "images" / f"{name}.rootfs.txt").read_text().splitlines()
    if image_only:
        lines = [line for line in lines if not line.startswith(DOCKER_INIT_LAYER)]
    return sorted(lines)


def set_window_size(fd: int, rows: int, cols: int) -> None:
    """Give the pty ``fd`` a window size (the kernel tells its foreground group by SIGWINCH)."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class Terminal:
    """``barque --root ROOT ARGS`` on the slave side of a real pty of a given size, as a user
    at a terminal runs it."""

    def __init__(self, root: Path, *args: str, rows: int = 33, cols: int = 101,
                 command: list[str] | None = None, env: dict[str, str] | None = None) -> None:
        """``command``: the barque to run (default :func:`cli`), ``env`` its environment
        (default this process's)."""
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: exec at once
            program = command or cli()
            argv = [*program, "--root", str(root), *args]
            os.execve(program[0], argv, os.environ if env is None else env)
        set_window_size(self.fd, rows, cols)
        self.seen = b""

    def read_until(self, pattern: bytes, timeout: float = 20.0) -> bytes:
        deadline = time.monotonic() + timeout
        while pattern not in self.seen:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {pattern!r} in {self.seen[-500:]!r}")
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"EOF before {pattern!r}: {self.seen[-500:]!r}")
                self.seen += chunk
        return self.seen

    def write(self, data: bytes) -> None:
        os.write(self.fd, data)

    def command(self, line: str, marker: str) -> str:
        """Type ``line`` and return what it printed before ``echo marker``'s output."""
        start = len(self.seen)
        os.write(self.fd, f"{line}; echo {marker}\r".encode())
        # The typed line is echoed (twice if it came before the shell's line editor took the
        # terminal: once by the pty, once by the editor), ending in "echo MARKER"; the
        # output ends with MARKER on its own line.
        self.read_until(f"\r\n{marker}\r\n".encode())
        out = self.seen[start:].decode(errors="replace")
        end = out.rindex(f"\r\n{marker}\r\n") + 2  # past the output's last line break
        echoed = f"echo {marker}\r\n"
        return out[out.rindex(echoed, 0, end) + len(echoed):end]

    def resize(self, rows: int, cols: int) -> None:
        set_window_size(self.fd, rows, cols)

    def exit_code(self, timeout: float = 20.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                ready, _, _ = select.select([self.fd], [], [], 0.05)
                if ready:
                    self.seen += os.read(self.fd, 4096)
            except OSError:
                pass
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
        os.kill(self.pid, signal.SIGKILL)
        raise AssertionError(f"barque did not exit: {self.seen[-500:]!r}")
