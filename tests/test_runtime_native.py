"""barque._native.spawn/wait/kill against real namespaces, with a busybox rootfs.

Needs root (namespaces, mounts, pivot_root). One test runs the same bundle through ``runc run``
to check that barque reads the OCI spec the way runc does.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import busybox_rootfs

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root (namespaces, mounts)")


DOCKER_CAPS = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
]
DOCKER_CAPEFF = "00000000a80425fb"

MASKED = ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
          "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
          "/sys/firmware", "/sys/devices/virtual/powercap"]
READONLY = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]

# A small profile: everything allowed but mkdir, which fails with EOPNOTSUPP (95).
SECCOMP = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 95}],
}

BASE_CONFIG = {
    "ociVersion": "1.0.2-dev",
    "process": {
        "terminal": False,
        "user": {"uid": 0, "gid": 0},
        "args": ["sh"],
        "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
        "cwd": "/",
        "capabilities": {k: DOCKER_CAPS for k in ("bounding", "effective", "permitted")},
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": False,
    },
    "root": {"path": "rootfs", "readonly": False},
    "hostname": "barque-test",
    "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]},
    ],
    "linux": {
        "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
        "maskedPaths": MASKED,
        "readonlyPaths": READONLY,
    },
}


@pytest.fixture(scope="module")
def native():
    from barque import _native

    return _native


@pytest.fixture(scope="module")
def busybox(tmp_path_factory) -> Path:
    root = busybox_rootfs(tmp_path_factory.mktemp("busybox") / "rootfs")
    return root


def make_bundle(tmp_path: Path, rootfs: Path | None, args: list[str], **changes) -> Path:
    """A bundle in tmp_path/bundle whose rootfs is a symlink-free path to ``rootfs``."""
    bundle = tmp_path / "bundle"
    bundle.mkdir(exist_ok=True)
    config = copy.deepcopy(BASE_CONFIG)
    config["process"]["args"] = args
    if rootfs is not None:
        config["root"]["path"] = str(rootfs)
    for key, value in changes.items():
        section, _, name = key.partition("__")
        if name:
            if value is None:
                config[section].pop(name, None)
            else:
                config[section][name] = value
        else:
            config[section] = value
    (bundle / "config.json").write_text(json.dumps(config, indent=1))
    return bundle


def run(native, bundle: Path, **kwargs) -> tuple[int, str]:
    """Spawn with stdout and stderr on one pipe; return (exit status, output)."""
    r, w = os.pipe()
    try:
        pid = native.spawn(str(bundle), stdin_fd=0, stdout_fd=w, stderr_fd=w, **kwargs)
    finally:
        os.close(w)
    with os.fdopen(r, "rb") as f:
        out = f.read().decode()
    return native.wait(pid), out


def sh(native, tmp_path, rootfs, script: str, **changes) -> tuple[int, str]:
    return run(native, make_bundle(tmp_path, rootfs, ["sh", "-c", script], **changes))


def status_field(out: str, field: str) -> str:
    for line in out.splitlines():
        if line.startswith(field + ":"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"{field} not in {out!r}")


def test_pid1_hostname_and_network(native, busybox, tmp_path):
    code, out = sh(native, tmp_path, busybox, "echo $$; hostname; cat /proc/net/dev")
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0] == "1"
    assert lines[1] == "barque-test"
    interfaces = [l.split(":")[0].strip() for l in lines[2:] if ":" in l]
    assert interfaces == ["lo"]


def test_capabilities_nnp_and_seccomp(native, busybox, tmp_path):
    code, out = sh(native, tmp_path, busybox, "cat /proc/self/status")
    assert code == 0, out
    assert status_field(out, "CapEff") == DOCKER_CAPEFF
    assert status_field(out, "CapPrm") == DOCKER_CAPEFF
    assert status_field(out, "CapBnd") == DOCKER_CAPEFF
    assert status_field(out, "CapInh") == "0000000000000000"
    assert status_field(out, "CapAmb") == "0000000000000000"
    assert status_field(out, "NoNewPrivs") == "0"
    assert status_field(out, "Seccomp") == "0"

    linux = copy.deepcopy(BASE_CONFIG["linux"]) | {"seccomp": SECCOMP}
    code, out = sh(native, tmp_path, busybox, "grep -E 'Seccomp|NoNewPrivs' /proc/self/status; mkdir /x",
                   process__noNewPrivileges=True, linux=linux)
    assert status_field(out, "Seccomp") == "2"
    assert status_field(out, "NoNewPrivs") == "1"
    assert code == 1 and "not supported" in out.lower(), out

    # Without no_new_privs the filter is loaded while the init still has CAP_SYS_ADMIN.
    code, out = sh(native, tmp_path, busybox, "grep Seccomp: /proc/self/status", linux=linux)
    assert code == 0 and status_field(out, "Seccomp") == "2", out


def test_masked_and_readonly_paths(native, busybox, tmp_path):
    # /proc/kcore is absent on some kernels (this VM's): check every masked file that exists.
    files = [p for p in ("/proc/kcore", "/proc/keys", "/proc/timer_list") if os.path.exists(p)]
    script = "".join(f"echo {p} $(wc -c < {p}); " for p in files)
    script += ("echo x > /proc/sys/kernel/domainname && echo WROTE; "
               "echo y > /sys/kernel/uevent_helper || echo SYS-RO; echo firmware $(ls -A /sys/firmware | wc -l)")
    code, out = sh(native, tmp_path, busybox, script)
    sizes = dict(line.split() for line in out.splitlines() if line.startswith("/proc/"))
    assert sizes == {p: "0" for p in files}, out
    assert Path("/proc/timer_list").read_bytes(), "the host's file is not empty"
    assert "WROTE" not in out
    assert "can't create /proc/sys/kernel/domainname: Read-only file system" in out
    assert "SYS-RO" in out
    assert "firmware 0" in out  # a directory masked by an empty read-only tmpfs


def test_exit_codes(native, busybox, tmp_path):
    assert sh(native, tmp_path, busybox, "exit 7")[0] == 7

    with pytest.raises(native.ContainerError) as e:
        run(native, make_bundle(tmp_path, busybox, ["no-such-binary"]))
    assert e.value.exit_code == 127
    assert "no-such-binary" in str(e.value) and "not found" in str(e.value)

    with pytest.raises(native.ContainerError) as e:
        run(native, make_bundle(tmp_path, busybox, ["/bin/nope"]))
    assert e.value.exit_code == 127 and e.value.path == "/bin/nope"

    with pytest.raises(native.ContainerError) as e:
        run(native, make_bundle(tmp_path, busybox, ["/notexec"]))
    assert e.value.exit_code == 126
    assert "permission denied" in str(e.value) and "/notexec" in str(e.value)


def _dumpable() -> int:
    import ctypes

    return ctypes.CDLL(None, use_errno=True).prctl(3, 0, 0, 0, 0)  # PR_GET_DUMPABLE


def test_starting_containers_leaves_the_callers_memory_and_threads_alone(native, busybox,
                                                                       tmp_path):
    # The init starts in the caller's memory (as posix_spawn does) and makes it non-dumpable
    # while barque code runs in it: the caller must get its own state back, whether the init
    # execs or fails, while its other threads keep allocating.
    import threading

    assert _dumpable() == 1
    stop = threading.Event()
    churn: list[int] = []

    def allocate() -> None:
        while not stop.is_set():
            churn.append(len([str(i) * 3 for i in range(2000)]))
            del churn[:-1]

    worker = threading.Thread(target=allocate)
    worker.start()
    try:
        bundle = make_bundle(tmp_path, busybox, ["sh", "-c", "echo $$"])
        for _ in range(30):
            assert run(native, bundle) == (0, "1\n")
        with pytest.raises(native.ContainerError):
            run(native, make_bundle(tmp_path, busybox, ["no-such-binary"]))
    finally:
        stop.set()
        worker.join()
    assert _dumpable() == 1
    assert churn == [2000]


def test_only_stdio_fds_reach_the_container(native, busybox, tmp_path):
    leaked = os.open("/", os.O_RDONLY)  # inheritable descriptors stay in the caller
    os.set_inheritable(leaked, True)
    try:
        code, out = sh(native, tmp_path, busybox, "ls /proc/self/fd")
    finally:
        os.close(leaked)
    assert code == 0, out
    fds = {int(x) for x in out.split()}
    # 3 is ls's own handle on /proc/self/fd.
    assert fds <= {0, 1, 2, 3}, out


def test_dev(native, busybox, tmp_path):
    code, out = sh(native, tmp_path, busybox,
                   "for d in null zero full random urandom tty; do test -c /dev/$d || echo MISSING $d; done; "
                   "echo hi > /dev/null; head -c 4 /dev/zero | wc -c; test -d /dev/pts && test -d /dev/shm "
                   "&& test -d /dev/mqueue && echo DIRS; readlink /dev/ptmx")
    assert code == 0, out
    assert "MISSING" not in out
    assert "4" in out.split() and "DIRS" in out and "pts/ptmx" in out


def test_cwd(native, busybox, tmp_path):
    code, out = sh(native, tmp_path, busybox, "pwd", process__cwd="/made/for/you")
    assert (code, out.strip()) == (0, "/made/for/you")
    assert (busybox / "made" / "for" / "you").is_dir()

    # CVE-2024-21626: a leaked fd as the working directory.
    with pytest.raises(native.ContainerError) as e:
        sh(native, tmp_path, busybox, "pwd", process__cwd="/proc/self/fd/7")
    assert e.value.exit_code == 125
    assert "working directory /proc/self/fd/7" in str(e.value)


def test_symlinked_proc_does_not_redirect_the_mount(native, busybox, tmp_path):
    rootfs = tmp_path / "rootfs"
    shutil.copytree(busybox, rootfs, symlinks=True)
    host_target = tmp_path / "host-decoy"
    host_target.mkdir()
    # /proc -> an absolute host path; the same path also exists inside the rootfs.
    inside = rootfs / str(host_target).lstrip("/")
    inside.mkdir(parents=True)
    shutil.rmtree(rootfs / "proc", ignore_errors=True)
    (rootfs / "proc").symlink_to(host_target)
    code, out = sh(native, tmp_path, rootfs, "head -1 /proc/self/status")
    assert code == 0, out
    assert out.startswith("Name:"), out  # proc was mounted inside the rootfs, where the link leads
    assert list(host_target.iterdir()) == []


def test_overlay_rootfs(native, busybox, tmp_path):
    lower2 = tmp_path / "lower-top"
    (lower2 / "etc").mkdir(parents=True)
    (lower2 / "etc" / "motd").write_text("from the top layer\n")
    upper, work = tmp_path / "upper", tmp_path / "work"
    upper.mkdir()
    work.mkdir()
    before = sorted(p.name for p in busybox.iterdir())
    annotations = {
        "org.barque.overlay.lower": f"{lower2}:{busybox}",
        "org.barque.overlay.upper": str(upper),
        "org.barque.overlay.work": str(work),
    }
    bundle = make_bundle(tmp_path, None, ["sh", "-c", "cat /etc/motd; echo new > /created; echo changed > /etc/motd; rm /notexec"],
                         annotations=annotations, root={"path": "rootfs"})
    code, out = run(native, bundle)
    assert code == 0, out
    assert out == "from the top layer\n"
    assert (upper / "created").read_text() == "new\n"
    assert (upper / "etc" / "motd").read_text() == "changed\n"
    assert (lower2 / "etc" / "motd").read_text() == "from the top layer\n"
    assert (busybox / "notexec").exists()
    assert not (busybox / "created").exists()
    assert sorted(p.name for p in busybox.iterdir()) == before
    assert not os.path.ismount(bundle / "rootfs")  # mounted in the container's namespace only


def test_many_lower_dirs(native, busybox, tmp_path):
    """More lower dirs than fit in one page of mount options (lowerdir+ one at a time)."""
    lowers = []
    for i in range(120):
        d = tmp_path / "layers" / f"layer-with-a-long-name-to-fill-the-page-{i:04d}"
        d.mkdir(parents=True)
        (d / f"f{i}").write_text(str(i))
        lowers.append(str(d))
    upper, work = tmp_path / "upper", tmp_path / "work"
    upper.mkdir()
    work.mkdir()
    assert len(":".join(lowers)) > 4096
    annotations = {"org.barque.overlay.lower": ":".join(lowers + [str(busybox)]),
                   "org.barque.overlay.upper": str(upper), "org.barque.overlay.work": str(work)}
    bundle = make_bundle(tmp_path, None, ["sh", "-c", "cat /f0; echo; cat /f119; echo; ls / | grep -c '^f'"],
                         annotations=annotations, root={"path": "rootfs"})
    code, out = run(native, bundle)
    assert code == 0, out
    assert out.split() == ["0", "119", "120"]


def test_spec_errors_are_container_errors(native, busybox, tmp_path):
    bundle = make_bundle(tmp_path, busybox, ["sh"], linux={"namespaces": [{"type": "user"}, {"type": "mount"}]})
    with pytest.raises(native.ContainerError) as e:
        run(native, bundle)
    assert e.value.exit_code == 125 and "user namespace" in str(e.value)
    with pytest.raises(native.ContainerError) as e:
        native.spawn(str(tmp_path / "nowhere"))
    assert e.value.exit_code == 125 and "config.json" in str(e.value)


def test_kill_and_pid_file(native, busybox, tmp_path):
    bundle = make_bundle(tmp_path, busybox, ["sh", "-c", "trap 'exit 3' TERM; while :; do sleep 0.05; done"])
    pid_file = tmp_path / "pid"
    pid = native.spawn(str(bundle), stdin_fd=0, stdout_fd=1, stderr_fd=2, pid_file=str(pid_file))
    assert int(pid_file.read_text()) == pid
    import time

    time.sleep(0.3)
    native.kill(pid, 15)
    assert native.wait(pid) == 3
    with pytest.raises(native.ContainerError):
        native.wait(pid)

    # The init ignores signals it has no handler for, except SIGKILL from outside its namespace.
    pid = native.spawn(str(make_bundle(tmp_path, busybox, ["sleep", "30"])))
    native.kill(pid, 9)
    assert native.wait(pid) == 128 + 9


@pytest.mark.skipif(shutil.which("runc") is None, reason="runc is not installed")
def test_same_bundle_under_runc(native, busybox, tmp_path):
    linux = copy.deepcopy(BASE_CONFIG["linux"]) | {"seccomp": SECCOMP}
    script = "hostname; grep -E '^(CapEff|Seccomp|NoNewPrivs):' /proc/self/status; echo $$; cat /proc/net/dev | grep -c :"
    bundle = make_bundle(tmp_path, busybox, ["sh", "-c", script], linux=linux, process__noNewPrivileges=True)
    code, ours = run(native, bundle)
    assert code == 0, ours
    state = tmp_path / "runc-state"
    proc = subprocess.run(["runc", "--root", str(state), "run", "--bundle", str(bundle), f"barque-test-{os.getpid()}"],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    if proc.returncode != 0 and "cgroup" in proc.stderr:
        pytest.skip(f"runc cannot run here: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    assert ours == proc.stdout


def test_user_and_groups(native, busybox, tmp_path):
    code, out = sh(native, tmp_path, busybox, "id -u; id -g; id -G; grep -E '^(CapEff|Groups):' /proc/self/status",
                   process__user={"uid": 1000, "gid": 1001, "additionalGids": [5, 20]})
    assert code == 0, out
    lines = out.splitlines()
    assert lines[:2] == ["1000", "1001"]
    assert set(lines[2].split()) == {"1001", "5", "20"}
    # execve as a non-root uid without file capabilities or ambient caps drops them all (as runc).
    assert status_field(out, "CapEff") == "0000000000000000"
    assert status_field(out, "Groups").split() == ["5", "20"]


def test_loopback_is_up_in_a_new_network_namespace(native, busybox, tmp_path):
    # As Docker with --network none: lo is up, so 127.0.0.1 is reachable inside the container.
    code, out = sh(native, tmp_path, busybox,
                   "cat /sys/class/net/lo/flags; cat /sys/class/net/lo/operstate; "
                   "ping -c1 -W1 127.0.0.1 >/dev/null && echo PING-OK; "
                   "nc -l -p 7777 -e echo hi & sleep 0.3; nc -w1 127.0.0.1 7777 </dev/null; kill $! 2>/dev/null; true")
    assert code == 0, out
    lines = out.splitlines()
    assert int(lines[0], 16) & 0x1, out  # IFF_UP
    assert lines[1] != "down", out
    assert "PING-OK" in lines, out
    assert lines[-1] == "hi", out


def read_pty(master: int) -> str:
    """Everything the container writes to its terminal, until it hangs up (EIO)."""
    out = b""
    try:
        while True:
            chunk = os.read(master, 65536)
            if not chunk:
                break
            out += chunk
    except OSError:
        pass
    finally:
        os.close(master)
    return out.decode().replace("\r", "")


def test_terminal_is_the_controlling_tty(native, busybox, tmp_path):
    import fcntl
    import struct
    import termios

    script = ("tty; stty size; cat /proc/$$/stat; stat -c %t:%T /dev/console /dev/pts/0; "
              "readlink /proc/$$/fd/0")
    bundle = make_bundle(tmp_path, busybox, ["sh", "-c", script], process__terminal=True)
    with pytest.raises(native.ContainerError, match="terminal"):
        native.spawn(str(bundle))
    pid, master = native.spawn_terminal(str(bundle))
    # Set before the shell reads it? Not guaranteed: only check it when the race is won.
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
    out = read_pty(master)
    assert native.wait(pid) == 0, out
    lines = out.splitlines()
    assert lines[0] == "/dev/pts/0", out
    assert lines[1] in ("33 101", "0 0"), out
    stat = lines[2].split(") ")[1].split()
    assert stat[3] == "1", "the shell leads its own session"
    assert int(stat[4]) >> 8 == 136, "and the pty is its controlling terminal"
    assert lines[3] == lines[4], "/dev/console is the pty"
    assert lines[5] == "/dev/pts/0"


def test_terminal_for_a_user_and_without_devpts(native, busybox, tmp_path):
    bundle = make_bundle(tmp_path, busybox, ["sh", "-c", "stat -c %u /dev/pts/0; id -u"],
                         process__terminal=True, process__user={"uid": 1000, "gid": 1000})
    pid, master = native.spawn_terminal(str(bundle))
    out = read_pty(master)
    assert native.wait(pid) == 0, out
    assert out.split() == ["1000", "1000"]
    # A spec that leaves out the devpts mount gets barque's default one; without /dev as a
    # tmpfs there is no container ptmx, and the failure names it.
    mounts = [m for m in BASE_CONFIG["mounts"] if m["destination"] not in ("/dev", "/dev/pts")]
    bundle = make_bundle(tmp_path, busybox, ["true"], process__terminal=True, mounts=mounts)
    try:
        pid, master = native.spawn_terminal(str(bundle))
    except native.ContainerError as e:
        assert e.exit_code == 125
        assert "ptmx" in str(e) or "console" in str(e), e
    else:
        os.close(master)
        assert native.wait(pid) == 0


def test_spawn_terminal_needs_a_terminal_spec(native, busybox, tmp_path):
    bundle = make_bundle(tmp_path, busybox, ["true"])
    with pytest.raises(native.ContainerError) as err:
        native.spawn_terminal(str(bundle))
    assert err.value.exit_code == 125
