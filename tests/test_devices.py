"""The device cgroup: a container opens only Docker's default devices, whatever nodes it makes
or its image ships; ``--device`` and ``--privileged`` open more. Checked from inside real
containers, on this host's cgroup v1 devices controller and, where a cgroup2 hierarchy is
mounted, on cgroup v2 too (a mount namespace with the unified hierarchy at /sys/fs/cgroup is
what a pure v2 host looks like to barque).

Nothing here writes to a block device: those are only ever opened for reading, and the char
devices written to are /dev/null-like or have no effect when opened.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest

from helpers import BARQUE_RUNTIME as INSTALLED_RUNTIME
from helpers import PYTHON_CLI, barque, busybox_rootfs

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="containers and device nodes need root"),
]

EPERM = "Operation not permitted"
BARQUE_PY = PYTHON_CLI
BARQUE_RUNTIME = INSTALLED_RUNTIME if INSTALLED_RUNTIME.exists() else None


def _block_device() -> tuple[int, int]:
    """The major:minor of a block device this process may open for reading: the host's root
    disk, else an idle loop or zram device (an outer sandbox may deny the disk itself, and a
    test of the container's denial must not pass for that reason)."""
    dev = os.stat("/").st_dev
    candidates = [(os.major(dev), os.minor(dev))]
    for path in ("/dev/loop0", "/dev/zram0"):
        if os.path.exists(path):
            rdev = os.stat(path).st_rdev
            candidates.append((os.major(rdev), os.minor(rdev)))
    with tempfile.TemporaryDirectory() as tmp:
        for major, minor in candidates:
            node = f"{tmp}/{major}:{minor}"
            os.mknod(node, 0o600 | stat.S_IFBLK, os.makedev(major, minor))
            try:
                os.close(os.open(node, os.O_RDONLY | os.O_CLOEXEC))
            except OSError:
                continue
            return major, minor
    pytest.skip("no block device this host lets us open for reading")


def _cgroup2_mount() -> Path | None:
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        sep = fields.index("-")
        if fields[sep + 1] == "cgroup2":
            return Path(fields[4])
    return None


def _as_on_a_v2_host(argv: list[str]) -> list[str]:
    """``argv`` in a mount namespace whose /sys/fs/cgroup is the unified hierarchy."""
    if _cgroup2_mount() is None or shutil.which("unshare") is None:
        pytest.skip("no cgroup2 hierarchy mounted (or no unshare) to stand in for a v2 host")
    if Path("/sys/fs/cgroup/cgroup.controllers").exists():
        return argv  # already a pure v2 host
    return ["unshare", "-m", "--propagation", "private", "sh", "-c",
            'mount -t cgroup2 cgroup2 /sys/fs/cgroup && exec "$@"', "sh", *argv]


@pytest.fixture(scope="module")
def store(tmp_path_factory, fixture_images):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("devices") / "root"
    barque(root, "pull", "-q", fixture_images["busybox"].ref)
    return root


@pytest.fixture
def busybox(fixture_images) -> str:  # type: ignore[no-untyped-def]
    return fixture_images["busybox"].ref


def run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return barque(root, "run", "--rm", "--network", "none", *args, check=False)


@pytest.mark.registry
def test_a_block_device_made_in_a_default_container_cannot_be_opened(store, busybox) -> None:
    major, minor = _block_device()
    # CAP_MKNOD lets it make the node (Docker allows mknod of anything), not open it.
    out = run(store, busybox, "sh", "-c",
              f"mknod /tmp/disk b {major} {minor} && echo made; true < /tmp/disk && echo read")
    assert out.stdout.splitlines() == ["made"], out
    assert f"/tmp/disk: {EPERM}" in out.stderr, out


@pytest.mark.registry
def test_a_char_device_shipped_in_an_image_cannot_be_opened(store, tmp_path) -> None:
    # An image whose layer holds /kmsg, char 1:11: writes to it would reach the host's log.
    rootfs = busybox_rootfs(tmp_path / "rootfs")
    tar_path = tmp_path / "kmsg.tar"
    with tarfile.open(tar_path, "w") as tar:
        tar.add(rootfs, arcname=".")
        node = tarfile.TarInfo("kmsg")
        node.type, node.devmajor, node.devminor, node.mode = tarfile.CHRTYPE, 1, 11, 0o644
        tar.addfile(node, io.BytesIO(b""))
    barque(store, "import", str(tar_path), "devices/kmsg:1")
    out = run(store, "devices/kmsg:1", "sh", "-c",
              "stat -c '%F %t:%T' /kmsg; true > /kmsg && echo opened; true < /kmsg && echo read")
    assert out.stdout.splitlines() == ["character special file 1:b"], out
    assert out.stderr.count(EPERM) == 2, out


@pytest.mark.registry
def test_detached_and_exec_processes_are_restricted_too(store, busybox) -> None:
    # The supervisor's path (run -d) and exec each join the container's devices cgroup.
    major, minor = _block_device()
    script = f"mknod /tmp/disk b {major} {minor}; true < /tmp/disk && echo read"
    cid = barque(store, "run", "-d", "--network", "none", busybox, "sh", "-c",
                 script + "; exec sleep 60").stdout.strip()
    try:
        out = barque(store, "exec", cid, "sh", "-c", "true < /tmp/disk && echo read",
                     check=False)
        assert out.stdout == "" and f"/tmp/disk: {EPERM}" in out.stderr, out
        logs = barque(store, "logs", cid)
        assert logs.stdout == "" and f"/tmp/disk: {EPERM}" in logs.stderr, logs
    finally:
        barque(store, "rm", "-f", cid)


@pytest.mark.registry
def test_the_default_devices_work(store, busybox) -> None:
    out = run(store, busybox, "sh", "-c",
              "echo x > /dev/null && head -c 3 /dev/zero | wc -c && head -c 4 /dev/urandom "
              "| wc -c && head -c 2 /dev/random | wc -c && ! echo x > /dev/full 2>/dev/null "
              "&& true < /dev/ptmx && echo ptmx; true < /dev/tty")
    assert out.stdout.split() == ["3", "4", "2", "ptmx"], out
    # /dev/tty is allowed: without a terminal, the kernel says so (not EPERM).
    assert "No such device or address" in out.stderr and EPERM not in out.stderr, out


@pytest.mark.registry
def test_the_device_flag_makes_the_node_and_allows_it(store, busybox) -> None:
    if not Path("/dev/loop-control").exists():
        pytest.skip("no /dev/loop-control on this host")
    # Opening loop-control does nothing by itself: a harmless device to be let in.
    out = run(store, "--device", "/dev/loop-control", busybox, "sh", "-c",
              "stat -c '%F %t:%T' /dev/loop-control; true < /dev/loop-control && echo opened")
    assert out.stdout.splitlines() == ["character special file a:ed", "opened"], out
    # Renamed, read-only: reading is allowed, writing is not.
    out = run(store, "--device", "/dev/loop-control:/dev/lc:r", busybox, "sh", "-c",
              "true < /dev/lc && echo read; true > /dev/lc && echo wrote")
    assert out.stdout.splitlines() == ["read"] and EPERM in out.stderr, out
    # Without the flag the same node, made by hand, stays shut.
    out = run(store, busybox, "sh", "-c", "mknod /dev/lc c 10 237 && true < /dev/lc && echo read")
    assert out.stdout == "" and EPERM in out.stderr, out


@pytest.mark.registry
def test_device_flags_are_recorded_as_docker_does(store, busybox) -> None:
    cid = barque(store, "create", "--network", "none", "--device", "/dev/null:/dev/n:rw",
                 busybox).stdout.strip()
    info = json.loads(barque(store, "inspect", cid).stdout)[0]
    assert info["HostConfig"]["Devices"] == [
        {"PathOnHost": "/dev/null", "PathInContainer": "/dev/n", "CgroupPermissions": "rw"}]
    barque(store, "rm", cid)


@pytest.mark.registry
@pytest.mark.parametrize(("flag", "message"), [
    ("/dev/null:/dev/n:rx", 'invalid argument "/dev/null:/dev/n:rx" for "--device" flag: '
                            "bad mode specified: rx"),
    ("/dev/null:dev/n", "dev/n is not an absolute path"),
    ("/no/such/device", 'error gathering device information while adding custom device '
                        '"/no/such/device": no such file or directory'),
    ("/etc/hostname", 'adding custom device "/etc/hostname": not a device node'),
])
def test_a_bad_device_flag_is_one_error_line_and_creates_nothing(store, busybox, flag,
                                                                 message) -> None:
    before = barque(store, "ps", "-a", "-q").stdout
    out = run(store, "--device", flag, busybox, "true")
    assert out.returncode == 125 and message in out.stderr, out
    assert out.stderr.count("\n") == 1, out
    assert barque(store, "ps", "-a", "-q").stdout == before


@pytest.mark.registry
def test_privileged_allows_every_device(store, busybox) -> None:
    major, minor = _block_device()
    out = run(store, "--privileged", busybox, "sh", "-c",
              f"true < /dev/loop-control && echo control; mknod /tmp/disk b {major} {minor} && "
              "true < /tmp/disk && echo read")
    assert out.stdout.split() == ["control", "read"], out


@pytest.mark.registry
def test_a_default_container_on_cgroup_v2_gets_the_device_program(store, busybox) -> None:
    major, minor = _block_device()
    argv = _as_on_a_v2_host([str(BARQUE_PY), "--root", str(store), "run", "--rm",
                             "--network", "none", busybox, "sh", "-c",
                             "echo x > /dev/null && echo null; cat /proc/self/cgroup; "
                             f"mknod /tmp/disk b {major} {minor}; true < /tmp/disk"])
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "BARQUE_FORKSERVER": "off"})
    assert out.stdout.splitlines()[0] == "null", out
    assert f"/tmp/disk: {EPERM}" in out.stderr, out


# --- barque-runtime, on a bundle ------------------------------------------------------------

@pytest.fixture(scope="module")
def rootfs(tmp_path_factory) -> Path:
    return busybox_rootfs(tmp_path_factory.mktemp("runtime-busybox") / "rootfs")


def _bundle(tmp_path: Path, rootfs: Path, script: str) -> Path:
    """A bundle whose rules deny everything but /dev/null (barque-runtime adds runc's
    defaults, which do not include kmsg), with the host's /dev/kmsg bound in."""
    assert BARQUE_RUNTIME is not None
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    subprocess.run([str(BARQUE_RUNTIME), "spec", "--bundle", str(bundle)], check=True)
    config = json.loads((bundle / "config.json").read_text())
    config["root"] = {"path": str(rootfs), "readonly": True}
    config["process"].update(terminal=False, args=["sh", "-c", script])
    config["mounts"].append({"destination": "/dev/kmsg", "type": "bind",
                             "source": "/dev/kmsg", "options": ["bind", "ro"]})
    config["linux"]["resources"] = {"devices": [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]}
    (bundle / "config.json").write_text(json.dumps(config))
    return bundle


@pytest.mark.skipif(BARQUE_RUNTIME is None, reason="barque-runtime is not built (scripts/setup)")
@pytest.mark.parametrize("cgroup", ["host", "v2"])
def test_barque_runtime_enforces_the_bundles_device_rules(rootfs, tmp_path, cgroup) -> None:
    bundle = _bundle(tmp_path, rootfs, "echo x > /dev/null && echo null; head -c 1 /dev/kmsg")
    argv = [str(BARQUE_RUNTIME), "--root", str(tmp_path / "state"), "run", "--bundle",
            str(bundle), f"devices-{cgroup}"]
    if cgroup == "v2":
        argv = _as_on_a_v2_host(argv)
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert out.stdout == "null\n", out
    assert f"/dev/kmsg: {EPERM}" in out.stderr, out
