"""Shared helpers for tests: run the CLI as a user would, and list a merged rootfs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BARQUE_SHARED", REPO.parent / "shared"))
ROOTFS_MANIFEST = SHARED / "tools" / "rootfs-manifest"


#: The native front end scripts/setup installs as the venv's ``barque``.
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
