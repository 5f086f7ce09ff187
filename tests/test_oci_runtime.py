"""barque-runtime (runc's command line on barque-container) against runc on the same busybox bundle.

Needs root (namespaces, mounts, cgroups) and runc; builds nothing: barque-runtime is the one
the installed wheel put on PATH (the venv's bin, scripts/setup).
"""

from __future__ import annotations

import array
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from helpers import BARQUE_RUNTIME as INSTALLED_RUNTIME

ROOT = Path(__file__).resolve().parent.parent
BARQUE_RUNTIME = INSTALLED_RUNTIME if INSTALLED_RUNTIME.exists() else None
RUNC = shutil.which("runc")

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="containers need root (namespaces, mounts, cgroups)"),
    pytest.mark.skipif(BARQUE_RUNTIME is None, reason="barque-runtime is not built (scripts/setup)"),
]

CHECKER = r"""
echo "id: $(id)"
grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|Seccomp|NoNewPrivs):' /proc/self/status
echo "hostname: $(hostname)"
echo "cwd: $(pwd)"
env | grep -v '^HOME=' | sort | sed 's/^/env: /'
echo "nofile: $(ulimit -n)"
echo "fds: $(ls /proc/self/fd | tr '\n' ' ')"
echo "pid: $$"
awk '{print "mount:", $2, $3, ($4 ~ /^ro/ ? "ro" : "rw")}' /proc/self/mounts | sort
"""

#: Paths masked with a bind of /dev/null or an empty tmpfs: the source filesystem differs
#: between runtimes (runc binds the container's /dev/null, a tmpfs; barque the host's).
MASKED = ("/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
          "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi")


_SPEC_CACHE: list[str] = []


def _spec_text() -> str:
    if not _SPEC_CACHE:
        import tempfile
        with tempfile.TemporaryDirectory() as d:
            subprocess.run([str(BARQUE_RUNTIME), "spec", "--bundle", d], check=True)
            _SPEC_CACHE.append((Path(d) / "config.json").read_text())
    return _SPEC_CACHE[0]


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("busybox") / "rootfs"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "mkimage.py"), "--busybox-rootfs", str(root)],
                   check=True, capture_output=True)
    return root


def bundle(tmp_path: Path, rootfs: Path, args: list[str], name: str = "bundle", **edit) -> Path:
    b = tmp_path / name
    b.mkdir(exist_ok=True)
    config = json.loads(_spec_text())
    config["root"] = {"path": str(rootfs), "readonly": True}
    config["process"]["terminal"] = False
    config["process"]["args"] = args
    for key, value in edit.items():
        section, _, field = key.partition("__")
        if field:
            config[section][field] = value
        else:
            config[section] = value
    (b / "config.json").write_text(json.dumps(config))
    return b


class Runtime:
    def __init__(self, binary: str, root: Path) -> None:
        self.binary, self.root = binary, root

    def __call__(self, *args: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        kw.setdefault("timeout", 30)
        r = subprocess.run([self.binary, "--root", str(self.root), *args], **kw)
        if check and r.returncode != 0:
            raise AssertionError(f"{self.binary} {args}: {r.returncode} {r.stdout} {r.stderr}")
        return r

    def detached(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """create / run -d: the container keeps the stdio it inherits, so no pipes here."""
        err_path = self.root.parent / "runtime-stderr"
        with open(self.root.parent / "container-output", "ab") as out, open(err_path, "wb") as err:
            r = self(*args, check=False, capture_output=False, stdout=out, stderr=err)
        r.stderr = err_path.read_text()
        if check and r.returncode != 0:
            raise AssertionError(f"{self.binary} {args}: {r.returncode} {r.stderr}")
        return r

    def state(self, cid: str) -> dict:
        return json.loads(self("state", cid).stdout)


@pytest.fixture
def barque(tmp_path):
    rt = Runtime(str(BARQUE_RUNTIME), tmp_path / "barque-root")
    yield rt
    for cid in json_list(rt):
        rt("delete", "--force", cid, check=False)


@pytest.fixture
def runc(tmp_path):
    if RUNC is None:
        pytest.skip("runc is not installed (scripts/setup installs Debian's)")
    rt = Runtime(RUNC, tmp_path / "runc-root")
    yield rt
    for cid in json_list(rt):
        rt("delete", "--force", cid, check=False)


def json_list(rt: Runtime) -> list[str]:
    r = rt("list", "--format", "json", check=False)
    return [c["id"] for c in json.loads(r.stdout or "null") or []]


def normalise(out: str) -> list[str]:
    lines = []
    for line in out.splitlines():
        if line.startswith("mount:"):
            _, point, fstype, mode = line.split()
            if point in MASKED:
                fstype = "masked"
            line = f"mount: {point} {fstype} {mode}"
        lines.append(line)
    return sorted(lines)


def test_same_bundle_same_view_as_runc(barque, runc, rootfs, tmp_path):
    b = bundle(tmp_path, rootfs, ["sh", "-c", CHECKER])
    ours = barque("run", "--bundle", str(b), "cmp-b")
    theirs = runc("run", "--bundle", str(b), "cmp-r")
    assert "CapEff:" in ours.stdout and "mount: /proc proc" in ours.stdout, ours.stdout
    assert normalise(ours.stdout) == normalise(theirs.stdout)
    # What the checker saw, spelled out for the parts that matter most.
    assert "fds: 0 1 2 3 " in ours.stdout  # 3 is ls's own directory
    assert "NoNewPrivs:\t1" in ours.stdout and "pid: 1" in ours.stdout


def test_lifecycle_create_start_state_delete(barque, rootfs, tmp_path):
    b = bundle(tmp_path, rootfs, ["sh", "-c", "echo started > /dev/shm/x; sleep 1; echo done"])
    pid_file = tmp_path / "pid"
    barque.detached("create", "--bundle", str(b), "--pid-file", str(pid_file), "life")
    s = barque.state("life")
    assert s["status"] == "created" and s["id"] == "life" and s["bundle"] == str(b)
    assert s["pid"] == int(pid_file.read_text())
    # The init is blocked before exec: it is still barque-runtime's image, not sh.
    assert "sh" not in Path(f"/proc/{s['pid']}/comm").read_text()
    assert barque("start", "life", check=False).returncode == 0
    assert barque.state("life")["status"] == "running"
    assert barque("start", "life", check=False).returncode == 1  # only created containers start
    assert barque("delete", "life", check=False).returncode == 1  # running: needs --force
    deadline = time.monotonic() + 10
    while barque.state("life")["status"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.05)
    s = barque.state("life")
    assert s["status"] == "stopped" and s["pid"] == 0
    table = barque("list").stdout.splitlines()
    assert table[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    assert table[1].split()[:3] == ["life", "0", "stopped"]
    barque("delete", "life")
    assert barque("state", "life", check=False).returncode == 1
    assert json_list(barque) == []


def test_created_container_can_be_deleted_and_its_cgroup_goes(barque, rootfs, tmp_path):
    b = bundle(tmp_path, rootfs, ["true"], linux__cgroupsPath="/barque-runtime-test/del",
               linux__resources={"pids": {"limit": 17}, "memory": {"limit": 64 << 20},
                                 "devices": [{"allow": False, "access": "rwm"}]})
    barque.detached("create", "--bundle", str(b), "del")
    pids = Path("/sys/fs/cgroup/pids/barque-runtime-test/del")
    if not pids.exists():
        pids = Path("/sys/fs/cgroup/barque-runtime-test/del")  # cgroup v2
    assert (pids / "pids.max").read_text().strip() == "17"
    assert str(barque.state("del")["pid"]) in (pids / "cgroup.procs").read_text().split()
    barque("delete", "del")
    assert not pids.exists()
    for parent in Path("/sys/fs/cgroup").glob("*/barque-runtime-test"):
        parent.rmdir()


def test_limits_apply_inside(barque, rootfs, tmp_path):
    b = bundle(tmp_path, rootfs, ["sh", "-c", "for i in 1 2 3 4 5 6; do sleep 5 & done; wait; echo ok"],
               linux__resources={"pids": {"limit": 4}})
    r = barque("run", "--bundle", str(b), "lim", check=False)
    assert "can't fork" in r.stderr or "Resource temporarily unavailable" in r.stderr, r


def test_kill_run_detached_and_exit_codes(barque, rootfs, tmp_path):
    b = bundle(tmp_path, rootfs, ["sh", "-c", "trap 'exit 42' TERM; while :; do sleep 0.1; done"])
    barque.detached("run", "-d", "--bundle", str(b), "bg")
    assert barque.state("bg")["status"] == "running"
    barque("kill", "bg", "TERM")
    deadline = time.monotonic() + 10
    while barque.state("bg")["status"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert barque.state("bg")["status"] == "stopped"
    assert barque("kill", "bg", "KILL", check=False).returncode == 1  # not running
    assert barque("kill", "bg", "SIGNOPE", check=False).returncode == 1
    barque("delete", "bg")

    assert barque("run", "-b", str(bundle(tmp_path, rootfs, ["sh", "-c", "exit 7"], "b7")), "e7",
                  check=False).returncode == 7
    r = barque("run", "-b", str(bundle(tmp_path, rootfs, ["no-such-binary"], "b127")), "e127", check=False)
    assert r.returncode != 0 and "no-such-binary" in r.stderr and "not found" in r.stderr
    assert json_list(barque) == []  # a failed create leaves no record behind


def test_exec_into_running_container(barque, rootfs, tmp_path):
    b = bundle(tmp_path, rootfs, ["sleep", "30"], hostname="exectest")
    barque.detached("run", "-d", "--bundle", str(b), "ex")
    r = barque("exec", "-e", "GREETING=hi", "ex", "sh", "-c", "hostname; echo $GREETING; ps -o pid,comm; exit 5",
               check=False)
    assert r.returncode == 5
    lines = r.stdout.splitlines()
    assert lines[:2] == ["exectest", "hi"]
    assert any(l.split() == ["1", "sleep"] for l in lines), r.stdout
    process = dict(json.loads((b / "config.json").read_text())["process"], args=["cat", "/proc/self/status"])
    (tmp_path / "p.json").write_text(json.dumps(process))
    r = barque("exec", "--process", str(tmp_path / "p.json"), "ex")
    assert "NoNewPrivs:\t1" in r.stdout and "Seccomp:" in r.stdout


class Leak:
    """An fd the caller leaks (no CLOEXEC) into the runtime."""

    def __enter__(self):
        self.fd = os.open("/etc/hostname", os.O_RDONLY)
        os.set_inheritable(self.fd, True)
        return self.fd

    def __exit__(self, *exc):
        os.close(self.fd)


def test_init_sees_only_stdio_even_with_a_leaked_fd(barque, rootfs, tmp_path):
    # ls is the init itself (no shell whose pipes could show up); 3 is its own directory fd,
    # which would be 4 if anything had leaked into the container.
    b = bundle(tmp_path, rootfs, ["ls", "/proc/self/fd"])
    with Leak() as fd:
        r = barque("run", "--bundle", str(b), "leak", pass_fds=(fd,))
    assert r.stdout.split() == ["0", "1", "2", "3"]


def test_cwd_outside_the_rootfs_is_refused(barque, rootfs, tmp_path):
    link = rootfs / "escape"
    link.symlink_to("/../../../../tmp")
    try:
        b = bundle(tmp_path, rootfs, ["pwd"], process__cwd="/escape/x")
        r = barque("run", "--bundle", str(b), "cwd", check=False)
        assert r.returncode == 1 and "working directory" in r.stderr, r.stderr
        assert json_list(barque) == []
    finally:
        link.unlink()


@pytest.mark.parametrize("field,edit", [
    ("hooks.startContainer", {"hooks": {"startContainer": [{"path": "/bin/true"}]}}),
    ("linux.uidMappings", {"linux__uidMappings": [{"containerID": 0, "hostID": 100000, "size": 1}]}),
    ("process.apparmorProfile", {"process__apparmorProfile": "docker-default"}),
    ("linux.resources.blockIO", {"linux__resources": {"blockIO": {"weight": 100}}}),
    ("cgroup mount on /sys/fs/cgroup", {"mounts": [{"destination": "/sys/fs/cgroup", "type": "cgroup",
                                                    "source": "cgroup"}]}),
])
def test_unsupported_fields_are_refused_by_name(barque, rootfs, tmp_path, field, edit):
    b = bundle(tmp_path, rootfs, ["true"], **edit)
    r = barque.detached("create", "--bundle", str(b), "unsup", check=False)
    assert r.returncode == 1 and field in r.stderr and "not supported" in r.stderr, r.stderr
    assert json_list(barque) == []


def test_hooks_get_the_state_and_run_at_their_steps(barque, rootfs, tmp_path):
    log = tmp_path / "hooks.log"

    def hook(name: str) -> dict:
        # Each hook appends its name, the status and pid it was given, and its env.
        script = (f"read -r state; echo \"{name} $(echo \"$state\" | tr -d ' ' | grep -o '\"status\":\"[a-z]*\"')"
                  f" $HOOKVAR\" >> {log}")
        return {"path": "/bin/sh", "args": ["sh", "-c", script], "env": ["HOOKVAR=set"], "timeout": 5}

    hooks = {k: [hook(k)] for k in ("prestart", "createRuntime", "poststart", "poststop")}
    b = bundle(tmp_path, rootfs, ["sleep", "30"], hooks=hooks)
    barque.detached("create", "--bundle", str(b), "hk")
    assert log.read_text().splitlines() == ['prestart "status":"created" set', 'createRuntime "status":"created" set']
    barque("start", "hk")
    assert log.read_text().splitlines()[2] == 'poststart "status":"running" set'
    barque("delete", "--force", "hk")
    assert log.read_text().splitlines()[3] == 'poststop "status":"stopped" set'

    # A failing createRuntime hook stops the create and leaves nothing behind.
    failing = {"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "echo no network >&2; exit 1"]}]}
    b = bundle(tmp_path, rootfs, ["true"], "bad-hook", hooks=failing)
    r = barque.detached("create", "--bundle", str(b), "hk2", check=False)
    assert r.returncode == 1 and "createRuntime hook /bin/sh failed" in r.stderr and "no network" in r.stderr
    assert json_list(barque) == []

    # `run` runs the create hooks before the process starts.
    pre = {"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", f"echo from-hook > {rootfs}/hook-was-here"]}]}
    b = bundle(tmp_path, rootfs, ["cat", "/hook-was-here"], "run-hook", hooks=pre,
               root={"path": str(rootfs), "readonly": True})
    try:
        assert barque("run", "--bundle", str(b), "hk3").stdout == "from-hook\n"
    finally:
        (rootfs / "hook-was-here").unlink(missing_ok=True)


def receive_fd(server: socket.socket, out: list) -> None:
    conn, _ = server.accept()
    with conn:
        fds = array.array("i")
        msg, anc, _, _ = conn.recvmsg(64, socket.CMSG_SPACE(fds.itemsize))
        for level, kind, data in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
        out.extend(fds)


def test_console_socket_receives_the_pty(barque, rootfs, tmp_path):
    b = bundle(tmp_path, rootfs, ["sh", "-c", "stty size; tty; read x; echo got $x"],
               process__terminal=True, process__consoleSize={"height": 31, "width": 97})
    path = str(tmp_path / "console.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    got: list[int] = []
    t = threading.Thread(target=receive_fd, args=(server, got))
    t.start()
    barque.detached("create", "--bundle", str(b), "--console-socket", path, "tty")
    t.join(10)
    server.close()
    assert len(got) == 1
    master = got[0]
    barque("start", "tty")
    os.write(master, b"hello\n")
    out = b""
    deadline = time.monotonic() + 10
    while b"got hello" not in out and time.monotonic() < deadline:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    text = out.decode(errors="replace")
    assert "31 97" in text and "/dev/pts/" in text and "got hello" in text, text


def test_exec_tty_through_the_console_socket(barque, rootfs, tmp_path):
    b = bundle(tmp_path, rootfs, ["sleep", "30"], process__consoleSize={"height": 25, "width": 81})
    barque.detached("run", "-d", "--bundle", str(b), "ext")
    path = str(tmp_path / "exec.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    got: list[int] = []
    t = threading.Thread(target=receive_fd, args=(server, got))
    t.start()
    r = barque("exec", "-t", "--console-socket", path, "ext", "sh", "-c", "[ -t 0 ] && stty size; exit 3",
               check=False)
    t.join(10)
    server.close()
    assert r.returncode == 3 and len(got) == 1, r
    out = b""
    while True:
        try:
            chunk = os.read(got[0], 4096)
        except OSError:  # EIO: the slave side is closed
            break
        if not chunk:
            break
        out += chunk
    os.close(got[0])
    assert out == b"25 81\r\n"


def test_features_and_spec(barque, tmp_path):
    f = json.loads(barque("features").stdout)
    assert f["ociVersionMin"] == "1.0.0" and "mount" in f["linux"]["namespaces"]
    assert f["linux"]["seccomp"]["enabled"] is True
    barque("spec", "--bundle", str(tmp_path))
    spec = json.loads((tmp_path / "config.json").read_text())
    assert spec["process"]["args"] == ["sh"] and spec["root"]["path"] == "rootfs"
    assert barque("spec", "--bundle", str(tmp_path), check=False).returncode == 1  # never overwrites


def test_help_starts_fast():
    times = []
    for _ in range(5):
        t = time.perf_counter()
        subprocess.run([str(BARQUE_RUNTIME), "--help"], check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    assert sorted(times)[2] < 0.05, times


def test_containerds_command_lines_in_runcs_single_dash_spelling(barque, rootfs, tmp_path):
    """The shim's calls (global --log/--log-format json, create --bundle --pid-file, exec
    --process --detach --pid-file), spelled the urfave/cli way that runc also accepts."""
    b = bundle(tmp_path, rootfs, ["sleep", "30"])
    log = tmp_path / "log.json"
    barque.detached("-log", str(log), "-log-format", "json",
                    "create", "-bundle", str(b), "-pid-file", str(tmp_path / "init.pid"), "shim")
    assert barque.state("shim")["pid"] == int((tmp_path / "init.pid").read_text())
    barque("start", "shim")
    process = dict(json.loads((b / "config.json").read_text())["process"], args=["sleep", "30"])
    (tmp_path / "p.json").write_text(json.dumps(process))
    barque.detached("-log", str(log), "-log-format=json", "exec", "-process", str(tmp_path / "p.json"),
                    "-detach", "-pid-file", str(tmp_path / "exec.pid"), "shim")
    exec_pid = int((tmp_path / "exec.pid").read_text())
    assert Path(f"/proc/{exec_pid}/comm").read_text().strip() == "sleep"
    barque("kill", "-all", "shim", "KILL")
    barque("delete", "-force", "shim")
    assert json_list(barque) == []


@pytest.mark.parametrize("args, message", [
    ([], "no command given (try --help)"),
    (["frobnicate"], 'unknown command "frobnicate" (try --help)'),
    (["--frob", "list"], 'unknown option "--frob" for barque-runtime'),
    (["start"], "start requires a container id"),
    (["start", "a", "b"], 'start: unexpected argument "b"'),
    (["create", "-frob", "c"], 'unknown option "-frob" for create'),
    (["create", "--bundle"], "--bundle needs a value"),
    (["list", "--format", "xml"], '--format: invalid value "xml"'),
    (["--debug=maybe", "list"], '--debug: invalid value "maybe"'),
    (["--systemd-cgroup", "list"], "--systemd-cgroup is not supported by barque-runtime"),
    (["create", "--no-pivot", "c"], "--no-pivot is not supported by barque-runtime"),
    (["exec", "c"], 'exec: invalid value "a command or --process is required"'),
])
def test_bad_usage_is_one_line_and_exit_status_1(barque, args, message):
    r = barque(*args, check=False)
    assert (r.returncode, r.stdout, r.stderr) == (1, "", f"barque-runtime: {message}\n")


def test_help_and_version():
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(BARQUE_RUNTIME), *args], capture_output=True, text=True, check=True)
    version = run("--version").stdout
    assert re.fullmatch(r"barque-runtime version \d+\.\d+\.\d+\nspec: 1\.\d+\.\d+\n", version), version
    assert run("-v").stdout == run("-version").stdout == version
    text = run("--help").stdout
    assert text.startswith("barque-runtime: an OCI runtime with runc's command line")
    assert "usage: barque-runtime [global options] command [command options] [arguments...]" in text
    assert "--log-format text|json" in text
    for spelling in (["-h"], ["help"], ["create", "--help"], ["help", "exec"]):
        assert run(*spelling).stdout == text, spelling
