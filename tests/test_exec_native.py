"""barque._native.exec_process: one more process in a running container (docker exec).

Needs root; the container is a real one started with ``_native.spawn`` from the busybox
fixture, as in test_runtime_native.py.
"""

from __future__ import annotations

import copy
import errno
import json
import os
import time
from pathlib import Path

import pytest

from helpers import busybox_rootfs

from test_runtime_native import BASE_CONFIG, DOCKER_CAPEFF, SECCOMP, make_bundle, status_field

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root (namespaces, mounts)")


@pytest.fixture(scope="module")
def native():
    from barque import _native

    return _native


@pytest.fixture(scope="module")
def busybox(tmp_path_factory) -> Path:
    root = busybox_rootfs(tmp_path_factory.mktemp("busybox") / "rootfs")
    (root / "work").mkdir()
    return root


@pytest.fixture
def container(native, busybox, tmp_path):
    """A running `sleep 30` with Docker's capabilities, no_new_privs and a seccomp profile."""
    linux = copy.deepcopy(BASE_CONFIG["linux"]) | {"seccomp": SECCOMP}
    bundle = make_bundle(tmp_path, busybox, ["sleep", "30"], linux=linux, process__noNewPrivileges=True)
    pid = native.spawn(str(bundle), stdin_fd=0, stdout_fd=2, stderr_fd=2)
    yield pid, json.loads((bundle / "config.json").read_text())
    try:
        native.kill(pid, 9)
        native.wait(pid)
    except native.ContainerError:
        pass


def write_process(tmp_path: Path, config: dict, args: list[str], **changes) -> Path:
    process = copy.deepcopy(config["process"]) | {"args": args} | changes
    path = tmp_path / "process.json"
    path.write_text(json.dumps(process))
    return path


def write_seccomp(tmp_path: Path, config: dict) -> Path:
    path = tmp_path / "seccomp.json"
    path.write_text(json.dumps(config["linux"]["seccomp"]))
    return path


def run_exec(native, pid: int, process: Path, **kwargs) -> tuple[int, str]:
    r, w = os.pipe()
    try:
        child = native.exec_process(pid, str(process), stdin_fd=0, stdout_fd=w, stderr_fd=w, **kwargs)
    finally:
        os.close(w)
    with os.fdopen(r, "rb") as f:
        out = f.read().decode()
    return native.wait(child), out


def test_exec_sees_the_container(native, container, tmp_path):
    pid, config = container
    script = "echo $$; pwd; cat /proc/self/status; hostname; readlink /proc/1/exe; cat /proc/1/cmdline; echo; mkdir /x"
    process = write_process(tmp_path, config, ["sh", "-c", script], cwd="/work")
    code, out = run_exec(native, pid, process, seccomp_json=str(write_seccomp(tmp_path, config)))
    lines = out.splitlines()
    # mkdir is refused by the container's seccomp profile (EOPNOTSUPP), so sh exits 1.
    assert code == 1 and "not supported" in out.lower(), out
    assert 1 < int(lines[0]) < 100, out  # a small pid: inside the container's pid namespace
    assert lines[1] == "/work"
    assert "barque-test" in lines
    assert "/bin/busybox" in lines or "/bin/sleep" in lines, out
    assert "sleep\x0030\x00" in out, out  # PID 1 is the container's sleep
    assert status_field(out, "CapEff") == DOCKER_CAPEFF
    assert status_field(out, "CapBnd") == DOCKER_CAPEFF
    assert status_field(out, "Seccomp") == "2"
    assert status_field(out, "NoNewPrivs") == "1"
    # The container's own state, for comparison.
    status = Path(f"/proc/{pid}/status").read_text()
    assert status_field(status, "CapEff") == status_field(out, "CapEff")


def test_exec_without_no_new_privs_or_seccomp(native, container, tmp_path):
    pid, config = container
    process = write_process(tmp_path, config, ["sh", "-c", "grep -E '^(Seccomp|NoNewPrivs|Uid):' /proc/self/status"],
                            noNewPrivileges=False, user={"uid": 1000, "gid": 1000})
    code, out = run_exec(native, pid, process)
    assert code == 0, out
    assert status_field(out, "Seccomp") == "0"
    assert status_field(out, "NoNewPrivs") == "0"
    assert status_field(out, "Uid").split()[0] == "1000"


def test_only_stdio_reaches_the_exec(native, container, tmp_path):
    pid, config = container
    leaked = os.open("/", os.O_RDONLY)
    os.set_inheritable(leaked, True)
    try:
        code, out = run_exec(native, pid, write_process(tmp_path, config, ["ls", "/proc/self/fd"]))
    finally:
        os.close(leaked)
    assert code == 0, out
    assert {int(x) for x in out.split()} <= {0, 1, 2, 3}, out


def test_exec_errors(native, container, tmp_path):
    pid, config = container
    with pytest.raises(native.ContainerError) as e:
        run_exec(native, pid, write_process(tmp_path, config, ["no-such-binary"]))
    assert e.value.exit_code == 127
    assert str(e.value) == 'exec: "no-such-binary": executable file not found in $PATH'

    with pytest.raises(native.ContainerError) as e:
        run_exec(native, pid, write_process(tmp_path, config, ["/notexec"]))
    assert e.value.exit_code == 126 and e.value.path == "/notexec"

    with pytest.raises(native.ContainerError) as e:
        run_exec(native, pid, write_process(tmp_path, config, ["pwd"], cwd="/no/such/dir"))
    assert e.value.exit_code == 125 and e.value.path == "/no/such/dir"
    assert "working directory /no/such/dir" in str(e.value)

    # The container still runs after failed execs.
    assert run_exec(native, pid, write_process(tmp_path, config, ["true"]))[0] == 0


def test_exec_into_a_dead_container(native, busybox, tmp_path):
    bundle = make_bundle(tmp_path, busybox, ["true"])
    config = json.loads((bundle / "config.json").read_text())
    process = write_process(tmp_path, config, ["true"])
    # Exited but not yet reaped (a zombie: its namespaces are gone), then reaped (no process).
    pid = native.spawn(str(bundle))
    while Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z":
        time.sleep(0.01)
    for reaped in (False, True):
        with pytest.raises(native.ContainerError) as e:
            native.exec_process(pid, str(process))
        assert e.value.exit_code == 125
        assert str(e.value) == f"container process {pid} is not running"
        assert e.value.errno == errno.ESRCH
        if not reaped:
            assert native.wait(pid) == 0


def test_exec_with_the_hosts_network(native, busybox, tmp_path):
    """A namespace the container shares with us (--network host) is not joined."""
    linux = copy.deepcopy(BASE_CONFIG["linux"])
    linux["namespaces"] = [ns for ns in linux["namespaces"] if ns["type"] != "network"]
    bundle = make_bundle(tmp_path, busybox, ["sleep", "30"], linux=linux)
    pid = native.spawn(str(bundle))
    try:
        config = json.loads((bundle / "config.json").read_text())
        code, out = run_exec(native, pid, write_process(tmp_path, config, ["sh", "-c", "echo $$; cat /proc/net/dev"]))
    finally:
        native.kill(pid, 9)
        native.wait(pid)
    assert code == 0, out
    assert int(out.split()[0]) < 100, out
    host = {l.split(":")[0].strip() for l in Path("/proc/net/dev").read_text().splitlines() if ":" in l}
    ours = {l.split(":")[0].strip() for l in out.splitlines() if ":" in l}
    assert ours == host, out


def test_exec_with_a_terminal(native, container, tmp_path):
    """With ``terminal`` the process leads a new session whose controlling terminal is fd 0."""
    pid, config = container
    master, slave = os.openpty()
    rdev = os.fstat(slave).st_rdev
    # /proc/<pid>/stat's tty_nr encoding of the slave.
    tty_nr_expected = (os.minor(rdev) & 0xFF) | (os.major(rdev) << 8) | ((os.minor(rdev) & ~0xFF) << 12)
    try:
        process = write_process(tmp_path, config, ["sh", "-c", "cat /proc/self/stat; test -t 0 && echo TTY"])
        child = native.exec_process(pid, str(process), stdin_fd=slave, stdout_fd=slave, stderr_fd=slave,
                                    terminal=True)
        os.close(slave)
        slave = -1
        out = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: every slave descriptor is closed
                break
            if not chunk:
                break
            out += chunk
        assert native.wait(child) == 0
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    text = out.decode().replace("\r\n", "\n")
    stat = text.splitlines()[0]
    fields = stat.rsplit(") ", 1)[1].split()
    # cat's parent is the exec'd sh, which leads the session.
    parent, session, tty_nr = int(fields[1]), int(fields[3]), int(fields[4])
    assert session == parent, stat
    assert tty_nr == tty_nr_expected, stat  # the pty is its controlling terminal
    assert "TTY" in text.splitlines(), text
