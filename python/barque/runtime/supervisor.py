"""The per-container supervisor, ``barque-shim`` (Rust, in ``rust/barque-shim``).

A detached (or attached through a socket) container is started by its own small supervising
process, as conmon does for Podman: it holds the container's stdio (a pty or pipes), writes
Docker's json-file log, serves attach clients, reaps the container and records its exit in
``exit.json``, then runs an exit command (``barque container cleanup ID``) that settles the
books and honours ``--rm``. It survives the CLI that started it.

This module finds the native helper binaries, starts a shim and reads what it leaves behind.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import msgspec

from .. import procfs
from ..errors import ContainerStartError, StoreError

#: Attach-socket frame types (both directions share one 8-byte header: type, 3 zero bytes,
#: big-endian u32 length).
STDIN, STDOUT, STDERR, RESIZE, EXIT = 0, 1, 2, 3, 4
HEADER = struct.Struct(">B3xI")


def helper_binary(name: str) -> Path:
    """A native helper (``barque-shim``, ``barque-init``): ``$BARQUE_LIBEXEC/<name>``, the
    package's ``_bin/`` (where the wheel installs them), or ``$PATH``."""
    import shutil

    candidates = []
    if os.environ.get("BARQUE_LIBEXEC"):
        candidates.append(Path(os.environ["BARQUE_LIBEXEC"]) / name)
    candidates.append(Path(__file__).resolve().parent.parent / "_bin" / name)
    found = shutil.which(name)
    if found:
        candidates.append(Path(found))
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    raise StoreError(f"{name} not found: reinstall barque (the wheel ships it in barque/_bin), "
                     "or set BARQUE_LIBEXEC")


class ShimOptions(msgspec.Struct):
    bundle: Path
    state_dir: Path
    log_path: Path | None = None
    log_max_size: int | None = None
    log_max_file: int | None = None
    stdin: bool = False
    hold_output: bool = False
    tty_size: tuple[int, int] | None = None
    cgroup_procs: list[str] = msgspec.field(default_factory=list)
    seccomp_cache: Path | None = None
    exit_command: list[str] = msgspec.field(default_factory=list)

    def argv(self, shim: Path) -> list[str]:
        args = [str(shim), "--bundle", str(self.bundle), "--state-dir", str(self.state_dir)]
        if self.log_path is not None:
            args += ["--log-path", str(self.log_path)]
            if self.log_max_size:
                args += ["--log-max-size", str(self.log_max_size)]
            if self.log_max_file:
                args += ["--log-max-file", str(self.log_max_file)]
        if self.stdin:
            args.append("--stdin")
        if self.hold_output:
            args.append("--hold-output")
        if self.tty_size:
            args += ["--tty-size", f"{self.tty_size[0]},{self.tty_size[1]}"]
        for procs in self.cgroup_procs:
            args += ["--cgroup-procs", procs]
        if self.seccomp_cache is not None:
            args += ["--seccomp-cache", str(self.seccomp_cache)]
        if self.exit_command:
            args += ["--exit-command", self.exit_command[0]]
            for arg in self.exit_command[1:]:
                args += ["--exit-command-arg", arg]
        return args


class Started(msgspec.Struct, frozen=True):
    pid: int
    shim_pid: int


def _make_private_dirs(state_dir: Path) -> None:
    """``state_dir`` and whichever of its parents are missing (``/run/barque``, the store's
    directory under it), each mode 0700: live state is root's business, and ``mkdir -p``
    would make the parents 0755, which the forkserver's front end once refused to trust
    beside it (its own directory is now ``/run/barque/forkserver``)."""
    missing = []
    directory = state_dir
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:
            pass  # another container's start made it meanwhile


def start(options: ShimOptions) -> Started:
    """Start a supervised container. Returns once the container's process has exec'd (or
    raises :class:`ContainerStartError` with Docker's exit code when it could not)."""
    _make_private_dirs(options.state_dir)
    for stale in ("exit.json", "attach", "shim.pid"):
        try:
            (options.state_dir / stale).unlink()
        except FileNotFoundError:
            pass
    import subprocess

    proc = subprocess.run(options.argv(helper_binary("barque-shim")), stdin=subprocess.DEVNULL,
                          capture_output=True, check=False)
    line = proc.stdout.decode(errors="replace").strip().splitlines()
    try:
        reply = json.loads(line[-1]) if line else {}
    except ValueError:
        reply = {}
    if "pid" in reply and proc.returncode == 0:
        return Started(pid=int(reply["pid"]), shim_pid=int(reply.get("shim_pid") or 0))
    message = reply.get("error") or proc.stderr.decode(errors="replace").strip() or \
        f"barque-shim exited with status {proc.returncode}"
    raise ContainerStartError(message, exit_code=int(reply.get("exit_code") or 125))


class ExitRecord(msgspec.Struct, frozen=True):
    exit_code: int
    finished_at: float


def read_exit(state_dir: Path) -> ExitRecord | None:
    """What the shim recorded when the container exited, if it has."""
    try:
        data = json.loads((state_dir / "exit.json").read_bytes())
        return ExitRecord(int(data["exit_code"]), float(data["finished_at"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def shim_alive(state_dir: Path) -> bool:
    """Whether the supervisor of ``state_dir`` still runs (its pid names a barque-shim)."""
    return shim_pid(state_dir) is not None


def shim_pid(state_dir: Path) -> int | None:
    """The pid of the supervisor of ``state_dir`` while it runs, else None."""
    try:
        pid = int((state_dir / "shim.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if (procfs.comm(pid) or "").startswith("barque-shim") else None


def encode(frame_type: int, payload: bytes = b"") -> bytes:
    return HEADER.pack(frame_type, len(payload)) + payload


def resize_frame(rows: int, cols: int) -> bytes:
    return encode(RESIZE, struct.pack(">HH", rows, cols))


class FrameReader:
    """Splits a byte stream into ``(type, payload)`` frames."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buf += data
        frames = []
        while len(self._buf) >= HEADER.size:
            kind, length = HEADER.unpack_from(self._buf)
            if len(self._buf) < HEADER.size + length:
                break
            frames.append((kind, bytes(self._buf[HEADER.size:HEADER.size + length])))
            del self._buf[:HEADER.size + length]
        return frames
