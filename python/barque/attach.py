"""Attaching a terminal (or plain pipes) to a supervised container, as ``docker attach``.

The supervisor serves a unix socket (see :mod:`barque.runtime.supervisor` for the framing).
This side relays: our stdin to the container (with ``-i``), its stdout/stderr to ours, the
window size on start and on SIGWINCH, and the detach keys (ctrl-p ctrl-q) that leave the
container running. With a tty the caller's terminal is put in raw mode and always restored.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

from .runtime import supervisor as sv

#: Docker's default detach sequence: ctrl-p ctrl-q.
DETACH_KEYS = b"\x10\x11"


def window_size(fd: int) -> tuple[int, int] | None:
    """(rows, cols) of the terminal on ``fd``, or None if it is not one."""
    import fcntl
    import termios

    try:
        packed = fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
    except OSError:
        return None
    rows, cols = struct.unpack("HHHH", packed)[:2]
    return (rows, cols) if rows and cols else None


@contextlib.contextmanager
def raw_terminal(fd: int) -> Iterator[None]:
    """``fd``'s terminal in raw mode for the duration (a no-op if it is not a terminal)."""
    import termios
    import tty

    try:
        saved = termios.tcgetattr(fd)
    except termios.error:
        yield
        return
    tty.setraw(fd, termios.TCSANOW)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def connect(state_dir: Path, timeout: float = 10.0) -> socket.socket:
    """A connection to the supervisor's attach socket."""
    import time

    path = state_dir / "attach"
    deadline = time.monotonic() + timeout
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.connect(str(path))
            return sock
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


class Detached(Exception):
    """The user typed the detach keys."""


def relay(sock: socket.socket, *, stdin: bool, tty: bool, in_fd: int = 0, out_fd: int = 1,
          err_fd: int = 2, detach_keys: bytes = DETACH_KEYS) -> int | None:
    """Relay until the container exits (its exit code) or the user detaches (None)."""
    frames = sv.FrameReader()
    wake_r, wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
    previous = None
    if tty:
        size = window_size(in_fd) or window_size(out_fd)
        if size:
            _send(sock, sv.resize_frame(*size))
        # SIGWINCH only wakes the loop (a handler does little in Python anyway).
        previous = signal.signal(signal.SIGWINCH, lambda *_: os.write(wake_w, b"w"))
    matched = 0
    reading_stdin = stdin
    try:
        with raw_terminal(in_fd) if tty and stdin else contextlib.nullcontext():
            while True:
                watch: list[socket.socket | int] = [sock, wake_r]
                if reading_stdin:
                    watch.append(in_fd)
                try:
                    ready, _, _ = select.select(watch, [], [])
                except InterruptedError:
                    continue
                if wake_r in ready:
                    os.read(wake_r, 64)
                    size = window_size(in_fd) or window_size(out_fd)
                    if size:
                        _send(sock, sv.resize_frame(*size))
                if reading_stdin and in_fd in ready:
                    data = os.read(in_fd, 65536)
                    if not data:
                        reading_stdin = False
                        _send(sock, sv.encode(sv.STDIN))  # EOF for the container's stdin
                    else:
                        if tty and detach_keys:
                            data, matched, detach = scan_detach(data, matched, detach_keys)
                            if detach:
                                if data:
                                    _send(sock, sv.encode(sv.STDIN, data))
                                return None
                        if data:
                            _send(sock, sv.encode(sv.STDIN, data))
                if sock in ready:
                    try:
                        chunk = sock.recv(65536)
                    except ConnectionResetError:  # it closed with our frames unread
                        chunk = b""
                    if not chunk:
                        return None  # the supervisor went away without an exit frame
                    for kind, payload in frames.feed(chunk):
                        if kind == sv.EXIT:
                            code: int = struct.unpack(">i", payload)[0]
                            return code
                        _write_all(err_fd if kind == sv.STDERR else out_fd, payload)
    finally:
        if previous is not None:
            signal.signal(signal.SIGWINCH, previous)
        os.close(wake_r)
        os.close(wake_w)


def _send(sock: socket.socket, data: bytes) -> None:
    """To the supervisor; one that already closed the connection (its container exited
    right away) is not an error: its output and exit frame are still there to be read."""
    try:
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass


def scan_detach(data: bytes, matched: int, keys: bytes) -> tuple[bytes, int, bool]:
    """Hold back a prefix of the detach sequence; returns what to send, the new match
    length, and whether the whole sequence was typed. A partial match that breaks is sent."""
    out = bytearray()
    for b in data:
        if b == keys[matched]:
            matched += 1
            if matched == len(keys):
                return bytes(out), 0, True
            continue
        if matched:
            out += keys[:matched]
            matched = 0
            if b == keys[0]:
                matched = 1
                continue
        out.append(b)
    return bytes(out), matched, False


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except InterruptedError:
            continue
        except BrokenPipeError:
            return
        view = view[n:]


def relay_pty(master: int, *, stdin: bool, in_fd: int = 0, out_fd: int = 1) -> None:
    """Relay between this terminal and a pty's master until the pty's last slave closes
    (``exec -t``): our stdin to it with ``stdin``, its output to ours, our window size to it."""
    import fcntl
    import termios

    def resize(*_: object) -> None:
        size = window_size(in_fd) or window_size(out_fd)
        if size:
            fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", *size, 0, 0))

    resize()
    previous = signal.signal(signal.SIGWINCH, resize)
    reading_stdin = stdin
    try:
        with raw_terminal(in_fd) if stdin else contextlib.nullcontext():
            while True:
                watch = [master] + ([in_fd] if reading_stdin else [])
                try:
                    ready, _, _ = select.select(watch, [], [])
                except InterruptedError:
                    continue
                if reading_stdin and in_fd in ready:
                    data = os.read(in_fd, 65536)
                    if data:
                        _write_all(master, data)
                    else:
                        reading_stdin = False
                if master in ready:
                    try:
                        data = os.read(master, 65536)
                    except OSError:  # EIO: every slave closed, the process is gone
                        return
                    if not data:
                        return
                    _write_all(out_fd, data)
    finally:
        signal.signal(signal.SIGWINCH, previous)


class AttachSession:
    """A connection to a supervised container's attach socket (Docker's ``POST
    /containers/{id}/attach``), from :meth:`barque.containers.ContainerService.attach`.

    ``relay`` runs this terminal (or any fds) against it until the container exits or the user
    detaches; ``socket`` is the raw connection (8-byte framed messages, see
    :mod:`barque.runtime.supervisor`) for a caller that relays itself. Close it when done."""

    def __init__(self, sock: socket.socket, state_dir: Path) -> None:
        self.socket = sock
        self._state_dir = state_dir

    def relay(self, *, stdin: bool, tty: bool, in_fd: int = 0, out_fd: int = 1,
              err_fd: int = 2, detach_keys: bytes = DETACH_KEYS) -> int | None:
        """See :func:`relay`: the container's exit code, or None once detached."""
        return relay(self.socket, stdin=stdin, tty=tty, in_fd=in_fd, out_fd=out_fd,
                     err_fd=err_fd, detach_keys=detach_keys)

    def wait_supervisor_gone(self, timeout: float = 30.0) -> bool:
        """Wait until the container's supervisor has exited, its exit command (the record's
        cleanup, ``--rm``'s removal) done; False if it is still there after ``timeout``."""
        import time

        deadline = time.monotonic() + timeout
        while sv.shim_alive(self._state_dir):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def close(self) -> None:
        self.socket.close()

    def __enter__(self) -> AttachSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
