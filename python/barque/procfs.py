"""What barque reads from ``/proc`` about processes and the host, in one place.

A pid alone does not name a process for long: the kernel reuses it. barque records a process's
start time (``/proc/PID/stat``'s 22nd field, clock ticks since boot) next to its pid, and a
process "is still there" only while both match.
"""

from __future__ import annotations

import os
import time

__all__ = ["comm", "is_zombie", "memory_total", "start_time", "thread_count", "wait_exit",
           "wait_gone"]


def _stat_after_comm(pid: int) -> bytes | None:
    """``/proc/PID/stat`` from the state field on, None if the process is gone. The command
    name before it (field 2) may hold spaces and parentheses: split after the last ``)``."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    return data[data.rfind(b")") + 2:]


def start_time(pid: int) -> int:
    """The kernel's start time of ``pid`` (clock ticks since boot), 0 if it is gone."""
    rest = _stat_after_comm(pid)
    if rest is None:
        return 0
    fields = rest.split()
    return int(fields[19]) if len(fields) > 19 else 0


def is_zombie(pid: int) -> bool:
    """Whether ``pid`` has exited (a zombie waiting to be reaped, dead, or gone already)."""
    rest = _stat_after_comm(pid)
    return rest is None or rest[:1] in (b"Z", b"X")


def comm(pid: int) -> str | None:
    """The command name of ``pid`` (``/proc/PID/comm``, at most 15 bytes), None if it is gone."""
    try:
        with open(f"/proc/{pid}/comm", "rb") as f:
            return f.read().rstrip(b"\n").decode(errors="replace")
    except OSError:
        return None


def wait_gone(pid: int, pid_start: int, timeout: float | None = None) -> bool:
    """Wait (up to ``timeout`` seconds, forever if None) until the process ``pid`` started at
    ``pid_start`` -- any process, not only a child -- has exited; True if it has."""
    import select

    if start_time(pid) != pid_start or is_zombie(pid):
        return True
    try:
        fd = os.pidfd_open(pid)
    except OSError:  # ProcessLookupError included: gone already
        return True
    try:
        if start_time(pid) != pid_start:  # the pid was reused between the check and the open
            return True
        ready, _, _ = select.select([fd], [], [], timeout)
        return bool(ready)
    finally:
        os.close(fd)


def wait_exit(pid: int, pid_start: int) -> int:
    """The exit code of ``pid`` (a signal's number plus 128, as a shell reports it): reaped if
    it is this process's child; otherwise polled until it is gone, and 255, since another
    process's exit status is not ours to know."""
    try:
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else \
            128 + os.WTERMSIG(status)
    except ChildProcessError:
        while start_time(pid) == pid_start and not is_zombie(pid):
            time.sleep(0.05)
        return 255


def thread_count() -> int:
    """The threads of this process (``/proc/self/status``), 0 if unreadable."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Threads:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def memory_total() -> int:
    """The host's RAM in bytes (``/proc/meminfo``'s MemTotal, Docker's ``MemTotal``), 0 if
    unreadable."""
    try:
        with open("/proc/meminfo", "rb") as f:
            for line in f:
                if line.startswith(b"MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0
