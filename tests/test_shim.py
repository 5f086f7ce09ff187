"""barque-shim end to end: a real container from a busybox bundle under the supervisor.

Needs root (the container needs namespaces and mounts) and the built binary
(``cargo build --release -p barque-shim``; ``$BARQUE_SHIM`` overrides the path).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import BIN

from test_runtime_native import make_bundle

ROOT = Path(__file__).resolve().parent.parent
SHIM = Path(os.environ.get("BARQUE_SHIM") or BIN / "barque-shim")

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="containers need root (namespaces, mounts)"),
    pytest.mark.skipif(not SHIM.is_file(), reason=f"{SHIM} not built "
                       "(scripts/setup installs it)"),
]

HEADER = struct.Struct(">B3xI")
STDIN, STDOUT, STDERR, RESIZE, EXIT = 0, 1, 2, 3, 4
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")


@pytest.fixture(scope="module")
def busybox(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("busybox") / "rootfs"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "mkimage.py"), "--busybox-rootfs",
                    str(root)], check=True, capture_output=True)
    return root


def start(tmp_path: Path, rootfs: Path, args: list[str], *shim_args: str, terminal=False,
          **changes) -> tuple[subprocess.CompletedProcess, dict, Path]:
    bundle = make_bundle(tmp_path, rootfs, args, **changes)
    if terminal:
        config = json.loads((bundle / "config.json").read_text())
        config["process"]["terminal"] = True
        (bundle / "config.json").write_text(json.dumps(config))
    state = tmp_path / "state"
    proc = subprocess.run([str(SHIM), "--bundle", str(bundle), "--state-dir", str(state),
                           *shim_args], stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=30)
    lines = proc.stdout.decode().splitlines()
    assert len(lines) == 1, proc
    return proc, json.loads(lines[0]), state


def wait_exit(state: Path, timeout: float = 15.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return json.loads((state / "exit.json").read_text())
        except (OSError, ValueError):
            time.sleep(0.05)
    raise AssertionError(f"no exit.json in {state}")


def wait_gone(pid: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(") ")[1].startswith("Z"):
                    return
        except OSError:
            return
        time.sleep(0.05)
    raise AssertionError(f"pid {pid} still running")


def connect(state: Path) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(15)
    s.connect(str(state / "attach"))
    return s


def frame(kind: int, payload: bytes = b"") -> bytes:
    return HEADER.pack(kind, len(payload)) + payload


_pending: dict[socket.socket, bytes] = {}


def read_frames(sock: socket.socket, until=None) -> list[tuple[int, bytes]]:
    """Frames until the exit frame and EOF (or until ``until(frames)`` is true); bytes read
    past that point are kept for the next call on the same socket."""
    buf, frames = _pending.pop(sock, b""), []
    while True:
        while len(buf) >= HEADER.size:
            kind, length = HEADER.unpack_from(buf)
            if len(buf) < HEADER.size + length:
                break
            frames.append((kind, buf[HEADER.size:HEADER.size + length]))
            buf = buf[HEADER.size + length:]
        if until is not None and until(frames):
            _pending[sock] = buf
            return frames
        chunk = sock.recv(65536)
        if not chunk:
            return frames
        buf += chunk


def output(frames, kind=STDOUT) -> bytes:
    return b"".join(p for k, p in frames if k == kind)


def exit_code(frames) -> int | None:
    codes = [struct.unpack(">i", p)[0] for k, p in frames if k == EXIT]
    return codes[-1] if codes else None


def test_logs_exit_record_and_pid_files(busybox, tmp_path):
    log = tmp_path / "ctr.log"
    proc, reply, state = start(tmp_path, busybox,
                               ["sh", "-c", "echo out; echo 'e\"rr' >&2; printf 'part\\377'; exit 3"],
                               "--log-path", str(log))
    assert proc.returncode == 0, proc
    assert set(reply) == {"pid", "shim_pid"}
    assert int((state / "shim.pid").read_text()) == reply["shim_pid"]
    record = wait_exit(state)
    assert record["exit_code"] == 3
    assert abs(record["finished_at"] - time.time()) < 60
    wait_gone(reply["shim_pid"])
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    by_stream = {s: [e["log"] for e in entries if e["stream"] == s] for s in ("stdout", "stderr")}
    assert by_stream == {"stdout": ["out\n", "part\ufffd"], "stderr": ['e"rr\n']}
    assert all(TIME.match(e["time"]) and set(e) == {"log", "stream", "time"} for e in entries)
    assert not (state / "attach").exists()


def test_attach_stdin_echo(busybox, tmp_path):
    proc, reply, state = start(tmp_path, busybox, ["cat"], "--stdin")
    assert proc.returncode == 0, proc
    with connect(state) as s:
        s.sendall(frame(STDIN, b"hello\n"))
        frames = read_frames(s, until=lambda f: b"hello\n" in output(f))
        # A second client sees the output from the moment it connects.
        with connect(state) as s2:
            time.sleep(0.2)
            s.sendall(frame(STDIN, b"again\n") + frame(STDIN))
            frames += read_frames(s)
            frames2 = read_frames(s2)
    assert output(frames) == b"hello\nagain\n"
    assert output(frames2) == b"again\n"
    assert exit_code(frames) == 0 and exit_code(frames2) == 0
    assert wait_exit(state)["exit_code"] == 0


def test_detached_client_leaves_the_container_running(busybox, tmp_path):
    proc, reply, state = start(tmp_path, busybox, ["cat"], "--stdin")
    with connect(state) as s:
        s.sendall(frame(STDIN, b"x\n"))
        read_frames(s, until=lambda f: b"x\n" in output(f))
    time.sleep(0.3)
    assert not (state / "exit.json").exists()
    with connect(state) as s:
        s.sendall(frame(STDIN))
        assert exit_code(read_frames(s)) == 0


def test_terminal_resize_and_session(busybox, tmp_path):
    # --tty-size is applied right after the spawn returns: the shell waits for input first.
    script = "tty; cat /proc/$$/stat; read a; stty size; read line; stty size; echo got:$line"
    proc, reply, state = start(tmp_path, busybox, ["sh", "-c", script], "--stdin",
                               "--tty-size", "24,80", "--log-path", str(tmp_path / "log"),
                               "--hold-output", terminal=True)
    assert proc.returncode == 0, proc
    with connect(state) as s:
        frames = read_frames(s, until=lambda f: b"(sh)" in output(f))
        s.sendall(frame(STDIN, b"go\n"))
        frames += read_frames(s, until=lambda f: b"24 80" in output(f))
        s.sendall(frame(RESIZE, struct.pack(">HH", 40, 100)) + frame(STDIN, b"yes\n"))
        frames += read_frames(s)
    assert exit_code(frames) == 0
    assert not [k for k, _ in frames if k == STDERR], "a terminal has one stream"
    log = [json.loads(l) for l in (tmp_path / "log").read_text().splitlines()]
    assert {e["stream"] for e in log} == {"stdout"}
    lines = "".join(e["log"] for e in log).replace("\r", "").splitlines()
    assert lines[0] == "/dev/pts/0"
    stat = next(l for l in lines if "(sh)" in l).split(") ")[1].split()
    # pid 1 leads its own session and has the pty (major 136) as controlling terminal.
    assert stat[3] == "1", stat
    assert int(stat[4]) >> 8 == 136, stat
    assert lines.index("24 80") < lines.index("40 100") < lines.index("got:yes"), lines


def test_hold_output_for_the_first_client(busybox, tmp_path):
    proc, reply, state = start(tmp_path, busybox, ["sh", "-c", "echo early; echo warn >&2; exit 7"],
                               "--hold-output")
    assert proc.returncode == 0, proc
    assert wait_exit(state)["exit_code"] == 7
    time.sleep(0.3)
    with connect(state) as s:
        frames = read_frames(s)
    assert output(frames) == b"early\n"
    assert output(frames, STDERR) == b"warn\n"
    assert frames[-1][0] == EXIT and exit_code(frames) == 7
    wait_gone(reply["shim_pid"])


def test_log_rotation(busybox, tmp_path):
    log = tmp_path / "ctr.log"
    proc, reply, state = start(tmp_path, busybox,
                               ["sh", "-c", "i=0; while [ $i -lt 300 ]; do i=$((i+1)); echo line $i; done"],
                               "--log-path", str(log), "--log-max-size", "2000", "--log-max-file", "3")
    assert proc.returncode == 0, proc
    wait_exit(state)
    wait_gone(reply["shim_pid"])
    files = [log.with_name(f"ctr.log.{n}") for n in (2, 1)] + [log]
    assert not log.with_name("ctr.log.3").exists()
    lines = []
    for f in files:
        assert 0 < f.stat().st_size <= 2000, f
        lines += [json.loads(l)["log"] for l in f.read_text().splitlines()]
    # The newest lines, contiguous across the three files, none split.
    numbers = [int(l.split()[1]) for l in lines]
    assert numbers == list(range(numbers[0], 301))
    assert numbers[0] > 1


def test_log_max_file_1_truncates(busybox, tmp_path):
    log = tmp_path / "ctr.log"
    proc, reply, state = start(tmp_path, busybox,
                               ["sh", "-c", "i=0; while [ $i -lt 100 ]; do i=$((i+1)); echo line $i; done"],
                               "--log-path", str(log), "--log-max-size", "1000")
    wait_exit(state)
    wait_gone(reply["shim_pid"])
    assert not log.with_name("ctr.log.1").exists()
    last = [json.loads(l)["log"] for l in log.read_text().splitlines()]
    assert last[-1] == "line 100\n" and log.stat().st_size <= 1000


def test_missing_binary_is_127(busybox, tmp_path):
    proc, reply, state = start(tmp_path, busybox, ["/no/such/binary"])
    assert proc.returncode == 1
    assert reply["exit_code"] == 127
    assert reply["errno"] == 2
    assert reply["path"] == "/no/such/binary"
    assert "/no/such/binary" in reply["error"]
    assert not (state / "attach").exists()


def test_bad_arguments(tmp_path):
    proc = subprocess.run([str(SHIM), "--bundle", str(tmp_path)], capture_output=True)
    assert proc.returncode == 1
    reply = json.loads(proc.stdout)
    assert reply["exit_code"] == 125 and "--state-dir" in reply["error"]


def test_exit_command_runs_after_the_record(busybox, tmp_path):
    marker = tmp_path / "marker"
    proc, reply, state = start(tmp_path, busybox, ["true"], "--exit-command", "/bin/sh",
                               "--exit-command-arg", "-c", "--exit-command-arg",
                               f"cat {tmp_path / 'state'}/exit.json > {marker}")
    wait_gone(reply["shim_pid"])
    assert json.loads(marker.read_text())["exit_code"] == 0


def test_idle_rss_and_kill(busybox, tmp_path):
    proc, reply, state = start(tmp_path, busybox, ["sleep", "30"], "--stdin",
                               "--log-path", str(tmp_path / "log"))
    assert proc.returncode == 0, proc
    time.sleep(0.5)
    # PSS, as the benchmark's target (case g) and containerd-shim's comparison use: RSS also
    # counts in full the file pages (libc, the binary) other processes share.
    rollup = Path(f"/proc/{reply['shim_pid']}/smaps_rollup").read_text()
    pss_kb = int(re.search(r"^Pss:\s+(\d+) kB", rollup, re.M).group(1))
    print(f"barque-shim idle PSS: {pss_kb} kB")
    assert pss_kb <= 2048, rollup
    # The container's pid is real and the shim reaps it whatever kills it.
    os.kill(reply["pid"], signal.SIGKILL)
    assert wait_exit(state)["exit_code"] == 128 + signal.SIGKILL
