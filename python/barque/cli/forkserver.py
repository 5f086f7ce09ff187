"""The forkserver: a warm, single-threaded barque process that runs CLI commands in fresh forks.

A CPython start and barque's imports cost 40-60 ms before a command does anything, more than
``runc run`` takes for a whole container. The native ``barque`` front end (``rust/barque-cli``)
therefore hands each command line to this server: over a Unix socket it sends its argv,
environment and umask, with its stdin, stdout, stderr and working directory as file
descriptors. The server forks; the child takes those descriptors as its own 0, 1 and 2,
becomes the caller in every way a command can see (directory, environment, umask, resource
limits) and runs :func:`barque.cli.launcher.main` with everything already imported. The server
reaps it and sends the exit status back; the front end forwards its signals to the child and
exits with that status, as if it had run the command itself.

This is the model of :mod:`multiprocessing`'s forkserver, not a daemon that owns state: the
server holds no store, database or engine (each command opens its own, as a direct run does),
stays single-threaded so that forking it is safe, and keeps nothing after a command ends.

Wire format (``SOCK_SEQPACKET``, one datagram each way and then the status):

- request: ``BRQ1`` then u32 counts and length-prefixed strings (argv without ``argv[0]``,
  then ``KEY=VALUE`` environment entries), then the u32 umask; four descriptors attached
  (stdin, stdout, stderr, an ``O_PATH`` descriptor of the working directory);
- ``S`` with the child's pidfd attached: the command runs (the front end signals the pidfd);
- ``F`` and a reason: not served; nothing ran, and the front end runs the command itself;
- ``X`` and an i32: the command exited with that code; ``K`` and an i32: a signal killed it.

If the front end disappears while its command runs (it was SIGKILLed), the child is killed
too, as it would have died with the front end had it been that process.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import gc
import os
import resource
import select
import selectors
import signal
import socket
import struct
import sys
import time
from pathlib import Path

from .. import procfs

SOCKET_NAME = "forkserver.sock"
#: Held by the serving server for as long as it accepts; clients spawn one only when it is free.
LOCK_NAME = "forkserver.lock"
LOG_NAME = "forkserver.log"
MAGIC = b"BRQ1"
#: Requests above this size (a huge environment) are not served; the front end runs directly.
MAX_REQUEST = 1 << 20
#: Exit after this long without a command (seconds); BARQUE_FORKSERVER_IDLE overrides it.
DEFAULT_IDLE_S = 600.0
_NAMESPACES = ("mnt", "pid", "net", "uts", "ipc", "user", "cgroup")
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
_RLIMITS = [(name, getattr(resource, name)) for name in dir(resource) if name.startswith("RLIMIT_")]
#: Set by the native front end when it runs ``barque-py`` itself: why the forkserver did not.
STATUS_VARIABLE = "BARQUE_FORKSERVER_STATUS"
#: The directory this process serves on; the forks that run commands inherit it.
_serving_directory: Path | None = None


def serving_directory() -> Path | None:
    """The forkserver's directory when this command runs in one of its forks, else None."""
    return _serving_directory


def why_not_served() -> str:
    """Why this command runs without the forkserver (for ``barque info``)."""
    reason = os.environ.get(STATUS_VARIABLE)
    if reason:
        return reason
    return "barque-py was run directly, not through the barque front end"


class Request:
    """One decoded command line and the caller's context."""

    def __init__(self, argv: list[str], env: dict[str, str], umask: int,
                 fds: list[int], peer_pid: int) -> None:
        self.argv = argv
        self.env = env
        self.umask = umask
        self.fds = fds  # stdin, stdout, stderr, cwd
        self.peer_pid = peer_pid


def decode(payload: bytes) -> tuple[list[str], dict[str, str], int]:
    """``(argv, env, umask)`` from a request datagram; ValueError when it is malformed."""
    if not payload.startswith(MAGIC):
        raise ValueError("not a barque request")
    at = len(MAGIC)

    def strings() -> list[str]:
        nonlocal at
        (count,) = struct.unpack_from("<I", payload, at)
        at += 4
        out = []
        for _ in range(count):
            (size,) = struct.unpack_from("<I", payload, at)
            at += 4
            if at + size > len(payload):
                raise ValueError("truncated request")
            out.append(os.fsdecode(payload[at:at + size]))
            at += size
        return out

    argv = strings()
    env = dict(entry.partition("=")[::2] for entry in strings())
    (umask,) = struct.unpack_from("<I", payload, at)
    return argv, env, umask & 0o777


def _code_stamp() -> dict[str, tuple[int, int]]:
    """(mtime, size) of every barque module this process loaded: a changed file means the
    server runs old code, and must hand over to a new one."""
    stamp = {}
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if path and getattr(module, "__name__", "").startswith("barque"):
            try:
                st = os.stat(path)
            except OSError:
                continue
            stamp[path] = (st.st_mtime_ns, st.st_size)
    return stamp


def _changed(stamp: dict[str, tuple[int, int]]) -> bool:
    for path, seen in stamp.items():
        try:
            st = os.stat(path)
        except OSError:
            return True
        if (st.st_mtime_ns, st.st_size) != seen:
            return True
    return False


def _preload() -> None:
    """Import every barque module (and with them typer, rich, sqlite3...) once, so no command
    pays for an import."""
    import importlib
    import pkgutil

    import barque

    for info in pkgutil.walk_packages(barque.__path__, "barque."):
        if info.name.endswith(".__main__"):
            continue  # running it would start the CLI
        importlib.import_module(info.name)
    from . import main

    main.click_command()
    # Per-process caches of host facts every `run` needs (the default seccomp profile, ~2 ms to
    # convert): filled here, inherited by every fork.
    from ..runtime import seccomp, spec

    spec.available_capabilities()
    seccomp.default_profile(spec.DEFAULT_CAPABILITIES)
    from .. import models

    models.warm()  # msgspec's codecs of the container model, built once
    # The sealed copy of barque-trampoline every container exec goes through (~0.25 ms to
    # make); without one a command's spawn reports why.
    from barque import _native

    with contextlib.suppress(_native.ContainerError):
        _native.prepare_exec_trampoline()


def serve(directory: Path, idle_s: float | None = None) -> int:
    """Serve command lines on ``directory/forkserver.sock`` until idle for ``idle_s`` seconds or
    until barque's code changes; returns at once (0) if another server holds the lock."""
    if idle_s is None:
        idle_s = float(os.environ.get("BARQUE_FORKSERVER_IDLE", DEFAULT_IDLE_S))
    st = os.lstat(directory)
    if st.st_uid != os.geteuid() or st.st_mode & 0o077:
        sys.stderr.write(f"barque forkserver: {directory} must be ours and mode 0700\n")
        return 1
    lock_fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return 0  # another server is up, or starting
    global _serving_directory
    _serving_directory = directory.absolute()
    os.chdir("/")  # hold no caller's directory (or its mount) busy for the server's life
    _preload()
    if procfs.thread_count() != 1:
        # Forking a threaded process can leave a lock held forever in the child.
        sys.stderr.write("barque forkserver: a thread started during the imports; not serving\n")
        return 1
    path = directory / SOCKET_NAME
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # a dead server's: the lock says none serves
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    listener.bind(str(path))
    listener.listen(128)
    os.ftruncate(lock_fd, 0)
    os.pwrite(lock_fd, f"{os.getpid()}\n".encode(), 0)  # who serves, for `kill` and tests
    stamp = _code_stamp()
    gc.freeze()  # the children then leave the server's objects' pages shared
    return _Server(listener, lock_fd, path, stamp, idle_s).loop()


class _Server:
    """The serving loop. One *spare* child, forked ahead of time, waits in ``accept``; when it
    takes a connection it hands the connection to the server (``A``) and runs the command, and
    the server forks the next spare at once. The fork's ~3 ms are thus paid between commands,
    not during one."""

    def __init__(self, listener: socket.socket, lock_fd: int, path: Path,
                 stamp: dict[str, tuple[int, int]], idle_s: float) -> None:
        self.listener: socket.socket | None = listener
        self.lock_fd = lock_fd
        self.path = path
        self.stamp = stamp
        self.idle_s = idle_s
        self.selector = selectors.DefaultSelector()
        self.spare: tuple[int, int, socket.socket] | None = None  # pid, pidfd, control
        # pidfd -> (pid, connection, control socket) of each command running
        self.running: dict[int, tuple[int, socket.socket, socket.socket]] = {}
        self.failed_spares = 0
        self.last = time.monotonic()

    def loop(self) -> int:
        while self.listener is not None or self.running:
            if self.listener is not None and self.spare is None:
                self.fork_spare()
                continue
            timeout = None
            if self.listener is not None and not self.running:
                timeout = max(0.0, self.last + self.idle_s - time.monotonic())
                if timeout == 0.0:
                    self.stop_accepting()
                    continue
            events = self.selector.select(timeout)
            if not events:
                continue
            # One event per select: handling it may close descriptors the others name.
            kind, pidfd = events[0][0].data
            if kind == "took":
                self.took()
            elif kind == "spare-died":
                self.spare_died()
            elif kind == "exit":
                self.reap(pidfd)
            else:  # "hangup": the front end's end of a running command
                self.hangup(pidfd)
        return 0

    def fork_spare(self) -> None:
        assert self.listener is not None
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        child = os.fork()
        if child == 0:
            _spare(self.listener, theirs, self.stamp)  # never returns
        theirs.close()
        pidfd = os.pidfd_open(child)
        self.spare = (child, pidfd, ours)
        self.selector.register(ours, selectors.EVENT_READ, ("took", pidfd))
        self.selector.register(pidfd, selectors.EVENT_READ, ("spare-died", pidfd))

    def took(self) -> None:
        """The spare took a connection: it is a command now, and the next spare is forked."""
        assert self.spare is not None
        child, pidfd, control = self.spare
        try:
            message, fds, _, _ = socket.recv_fds(control, 16, 1)
        except OSError:
            message, fds = b"", []
        if not fds:  # it closed the control socket without a connection: it died
            self.spare_died()
            return
        self.spare = None
        self.selector.unregister(control)  # kept: the child says "D" on it once it answered
        self.selector.modify(pidfd, selectors.EVENT_READ, ("exit", pidfd))
        conn = socket.socket(fileno=fds[0])
        self.running[pidfd] = (child, conn, control)
        self.selector.register(conn, selectors.EVENT_READ, ("hangup", pidfd))
        self.last = time.monotonic()
        self.failed_spares = 0
        if message == b"a":  # barque's files changed: the next command gets a new server
            self.stop_accepting()

    def spare_died(self) -> None:
        assert self.spare is not None
        child, pidfd, control = self.spare
        self.spare = None
        self.selector.unregister(control)
        self.selector.unregister(pidfd)
        control.close()
        os.close(pidfd)
        os.waitpid(child, 0)
        self.failed_spares += 1
        if self.failed_spares >= 5:
            sys.stderr.write("barque forkserver: spares keep dying; stopping\n")
            self.stop_accepting()

    def stop_accepting(self) -> None:
        """Stop taking commands, and let a new server take over the socket's name."""
        if self.spare is not None:
            child, pidfd, control = self.spare
            self.spare = None
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
            os.waitpid(child, 0)
            self.selector.unregister(control)
            self.selector.unregister(pidfd)
            control.close()
            os.close(pidfd)
        assert self.listener is not None
        # The lock is still ours, so no other server can have bound the name meanwhile.
        with contextlib.suppress(OSError):
            self.path.unlink()
        self.listener.close()
        self.listener = None
        os.close(self.lock_fd)  # a new server may start now

    def reap(self, pidfd: int) -> None:
        child, conn, control = self.running.pop(pidfd)
        self.selector.unregister(pidfd)
        with contextlib.suppress(KeyError, ValueError):  # not after a hangup
            self.selector.unregister(conn)
        os.close(pidfd)
        control.close()
        _, status = os.waitpid(child, 0)
        # A command that ended normally told its front end itself (before its process was torn
        # down); this is for one a signal killed, or that died before it could.
        if os.WIFSIGNALED(status):
            message = b"K" + struct.pack("<i", os.WTERMSIG(status))
        else:
            message = b"X" + struct.pack("<i", os.waitstatus_to_exitcode(status))
        with contextlib.suppress(OSError):
            conn.send(message)
        conn.close()
        self.last = time.monotonic()

    def hangup(self, pidfd: int) -> None:
        """The front end died with its command still running: the command dies too, as it
        would have as that process (the status then goes nowhere). Not once the command has
        answered ("D" on its control socket, sent before its status): the front end then
        left because it was done, and the child is only finishing in the background."""
        child, conn, control = self.running[pidfd]
        try:
            if conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT):
                return  # not a hangup (front ends send nothing more, but be sure)
        except BlockingIOError:
            return
        except OSError:
            pass
        self.selector.unregister(conn)
        try:
            answered = control.recv(1, socket.MSG_DONTWAIT) == b"D"
        except OSError:
            answered = False
        if not answered:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)


def _spare(listener: socket.socket, control: socket.socket, stamp: dict[str, tuple[int, int]]
           ) -> None:
    """In a fork: wait for one command line, hand its connection to the server, run it."""
    code = 125
    try:
        # Keep only the listener and the control socket: nothing of the server's, or of other
        # commands' callers, may stay open in this one.
        # (0, 1 and 2 stay: the server's /dev/null and log, until the caller's replace them.)
        keep = sorted((listener.fileno(), control.fileno()))
        os.closerange(3, keep[0])
        os.closerange(keep[0] + 1, keep[1])
        os.closerange(keep[1] + 1, 1 << 20)
        _own_pages(listener)
        while True:
            # The server never writes to the control socket: readable means it died, and a
            # spare must not outlive it holding the listening socket.
            ready, _, _ = select.select([listener, control], [], [])
            if control in ready:
                os._exit(0)
            try:
                conn, _ = listener.accept()
                break
            except (BlockingIOError, InterruptedError):
                continue  # another spare's (none today) or a client that gave up
        listener.close()
        payload, fds, flags, _ = socket.recv_fds(conn, MAX_REQUEST, 4)
        stale = _changed(stamp)
        socket.send_fds(control, [b"a" if stale else b"A"], [conn.fileno()])
        pid, uid, gid = _PEERCRED.unpack(
            conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size))
        reason = None
        if stale:
            reason = "barque changed since the forkserver started"
        elif uid != os.geteuid() or gid != os.getegid():
            reason = "the forkserver serves its own user and group only"
        elif flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC) or len(fds) != 4:
            reason = "a request this server cannot read"
        if reason is None:
            try:
                argv, env, umask = decode(payload)
            except (ValueError, struct.error) as e:
                reason = f"bad request: {e}"
        if reason is not None:
            _decline(conn, reason)
        code = _command(conn, control, Request(argv, env, umask, fds, pid))
    except BaseException:  # noqa: BLE001 - whatever happens, the child must not return
        with contextlib.suppress(BaseException):
            import traceback

            traceback.print_exc()
    os._exit(code)


def _decline(conn: socket.socket, reason: str) -> None:
    """Tell the caller to run the command itself, and exit (quietly if it is gone)."""
    with contextlib.suppress(OSError):
        conn.send(b"F" + reason.encode())
    os._exit(0)


def _own_pages(listener: socket.socket) -> None:
    """Copy the server's writable pages into this fork now, while it waits, rather than one
    page fault at a time while it runs a command: CPython writes reference counts all over
    the heap, and those faults were two thirds of a short command's time here. A command
    that arrives meanwhile is not kept waiting: the copying stops."""
    from barque import _native

    # At idle priority: this is work done ahead, and must not slow the command that just
    # started (or anything else) on a busy machine.
    with contextlib.suppress(OSError):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    with contextlib.suppress(OSError):
        _native.populate_writable_memory(listener.fileno())
    with contextlib.suppress(OSError):
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))


def _command(conn: socket.socket, control: socket.socket, request: Request) -> int:
    """Become the caller, run its command line, tell the caller the exit code."""
    stdin, stdout, stderr, cwd = request.fds
    for fd, target in ((stdin, 0), (stdout, 1), (stderr, 2)):
        os.dup2(fd, target)
    for fd in (stdin, stdout, stderr):
        os.close(fd)
    os.fchdir(cwd)
    os.close(cwd)
    reason = _match_caller(request.peer_pid)
    if reason:
        _decline(conn, reason)
    os.umask(request.umask)
    os.environ.clear()
    os.environ.update(request.env)
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    pidfd = os.pidfd_open(os.getpid())
    try:
        socket.send_fds(conn, [b"S"], [pidfd])
    except OSError:
        os._exit(0)  # the caller gave up waiting: the command must not run behind its back
    os.close(pidfd)
    _standard_streams()
    sys.argv = ["barque", *request.argv]
    code = _run()
    from . import launcher

    # Close every descriptor (the caller's streams, the store's files and their locks) before
    # the status goes out: the caller, and whoever reads its output, is done when it arrives,
    # while tearing this process down takes another few milliseconds.
    keep = sorted((conn.fileno(), control.fileno()))
    os.closerange(0, keep[0])
    os.closerange(keep[0] + 1, keep[1])
    os.closerange(keep[1] + 1, 1 << 20)
    with contextlib.suppress(OSError):
        control.send(b"D")  # first: the front end's exit must not read as a hangup
    with contextlib.suppress(OSError):
        conn.send(b"X" + struct.pack("<i", code))
    with contextlib.suppress(Exception):
        launcher.finish_in_background()  # the caller has its answer: not on its time
    return code


def _match_caller(peer: int) -> str | None:
    """Take the caller's resource limits; returns why this fork cannot stand in for the
    caller (other namespaces, root directory, or a hard limit above its own), or None."""
    try:
        for ns in _NAMESPACES:
            if os.stat(f"/proc/{peer}/ns/{ns}").st_ino != os.stat(f"/proc/self/ns/{ns}").st_ino:
                return f"the caller is in another {ns} namespace"
        theirs, ours = os.stat(f"/proc/{peer}/root"), os.stat("/")
        if (theirs.st_dev, theirs.st_ino) != (ours.st_dev, ours.st_ino):
            return "the caller has another root directory"
        for name, which in _RLIMITS:
            wanted = resource.prlimit(peer, which)
            if wanted != resource.getrlimit(which):
                try:
                    resource.setrlimit(which, wanted)
                except (OSError, ValueError):
                    return f"the caller's {name} is above the forkserver's hard limit"
    except OSError as e:
        return f"cannot compare with the caller: {e}"
    return None


def _standard_streams() -> None:
    """New sys.stdin/stdout/stderr over the caller's descriptors, buffered as CPython would
    have made them for this process (line-buffered on a terminal; stderr always)."""
    import io

    encoding = sys.stdout.encoding if sys.stdout else "utf-8"

    def text(fd: int, write: bool, errors: str, line: bool) -> io.TextIOWrapper:
        raw = io.FileIO(fd, "wb" if write else "rb", closefd=False)
        buffered = io.BufferedWriter(raw) if write else io.BufferedReader(raw)
        return io.TextIOWrapper(buffered, encoding=encoding, errors=errors,
                                line_buffering=line)

    # The __std*__ originals too, which code falls back to once sys.std* is replaced: typeshed
    # marks them Final because a process keeps its own, but this fork takes over another's.
    sys.stdin = sys.__stdin__ = text(0, False, "strict", False)  # type: ignore[misc]
    sys.stdout = sys.__stdout__ = text(1, True, "strict", os.isatty(1))  # type: ignore[misc]
    sys.stderr = sys.__stderr__ = text(2, True, "backslashreplace", True)  # type: ignore[misc]


def _run() -> int:
    from . import launcher

    try:
        code = launcher.command(sys.argv[1:])
    except SystemExit as e:
        if e.code is None:
            code = 0
        elif isinstance(e.code, int):
            code = e.code
        else:
            sys.stderr.write(f"{e.code}\n")
            code = 1
    except KeyboardInterrupt:
        code = 130
    except BaseException:  # noqa: BLE001 - an uncaught error prints its traceback, as python does
        import traceback

        traceback.print_exc()
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    return code


def main(argv: list[str]) -> int:
    """``barque-py __forkserver__ DIRECTORY``: what the front end starts."""
    if len(argv) != 1:
        sys.stderr.write("usage: barque-py __forkserver__ DIRECTORY\n")
        return 2
    try:
        return serve(Path(argv[0]))
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            return 0
        raise
