"""barque.procfs against real processes: a pid plus its start time names one process, so a
reused pid is never taken for the process barque recorded."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from barque import procfs


def test_a_process_is_known_by_its_pid_and_start_time() -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        start = procfs.start_time(child.pid)
        assert start > 0 and procfs.start_time(child.pid) == start
        assert procfs.comm(child.pid) == "sleep"
        assert not procfs.is_zombie(child.pid)
        assert not procfs.wait_gone(child.pid, start, timeout=0.1)  # still running
        # the same pid with another start time is another process: gone, as far as we know
        assert procfs.wait_gone(child.pid, start + 1, timeout=None)
    finally:
        child.kill()
    assert procfs.wait_gone(child.pid, start, timeout=5)
    assert procfs.is_zombie(child.pid)  # exited, not reaped yet
    assert procfs.wait_exit(child.pid, start) == 128 + 9  # reaped here: a shell's SIGKILL code
    assert procfs.start_time(child.pid) == 0 and procfs.comm(child.pid) is None


def test_waiting_for_a_process_that_is_not_our_child() -> None:
    # A grandchild: its parent (the shell) exits at once, so only polling can see it go.
    out = subprocess.run(["sh", "-c", "sleep 0.3 >/dev/null 2>&1 & echo $!"],
                         capture_output=True, text=True, check=True)
    pid = int(out.stdout)
    start = procfs.start_time(pid)
    assert start > 0
    began = time.monotonic()
    assert not procfs.is_zombie(pid)
    assert procfs.wait_exit(pid, start) == 255  # its status belongs to its new parent
    assert 0.1 < time.monotonic() - began < 5
    assert procfs.is_zombie(pid) or procfs.start_time(pid) != start


def test_a_command_name_with_spaces_and_parentheses() -> None:
    # comm is field 2 of /proc/PID/stat and may contain ") (": the start time is still found.
    code = ("import sys, time; open('/proc/self/comm', 'w').write('a) (b c'); "
            "print('named', flush=True); time.sleep(30)")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None and child.stdout.readline() == b"named\n"
        assert procfs.comm(child.pid) == "a) (b c"
        # it started a moment ago: its start time (clock ticks since boot) is about the uptime
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        started = procfs.start_time(child.pid) / os.sysconf("SC_CLK_TCK")
        assert 0 <= uptime - started < 10
        assert not procfs.is_zombie(child.pid)
    finally:
        child.kill()
        child.wait()


def test_host_facts() -> None:
    with open("/proc/meminfo") as f:
        total_kib = int(next(line for line in f if line.startswith("MemTotal:")).split()[1])
    assert procfs.memory_total() == total_kib * 1024
    assert procfs.thread_count() >= 1
