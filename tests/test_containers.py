"""Running real containers through the CLI, as a Docker user would, and checking from inside."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from helpers import barque, cli

pytestmark = [
    pytest.mark.registry,
    pytest.mark.skipif(os.geteuid() != 0, reason="containers need root (namespaces, mounts)"),
]

#: Docker's 14 default capabilities as /proc/self/status prints them.
DOCKER_CAP_EFF = "00000000a80425fb"


@pytest.fixture(scope="module")
def store(tmp_path_factory, fixture_images):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("containers") / "root"
    barque(root, "pull", "-q", fixture_images["busybox"].ref)
    barque(root, "pull", "-q", fixture_images["layers"].ref)
    return root


@pytest.fixture
def busybox(fixture_images) -> str:  # type: ignore[no-untyped-def]
    return fixture_images["busybox"].ref


def _ps_json(root: Path) -> list[dict]:
    return [json.loads(line) for line in barque(root, "ps", "-a", "--format", "json").stdout.splitlines()]


def run(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return barque(root, "run", "--rm", "--network", "none", *args, check=check)


def test_image_entrypoint_and_cmd_run_as_its_user(store, fixture_images) -> None:
    out = barque(store, "run", "--rm", "--network", "none", fixture_images["layers"].ref)
    assert out.stdout == "hello world from /srv/app as 1000\n"
    assert out.stderr == ""


def test_exit_codes_follow_docker(store, busybox) -> None:
    assert run(store, busybox, "true").returncode == 0
    assert run(store, busybox, "sh", "-c", "exit 7", check=False).returncode == 7
    missing = run(store, busybox, "/no/such/binary", check=False)
    assert missing.returncode == 127 and "/no/such/binary" in missing.stderr
    assert missing.stderr.count("\n") == 1
    not_exec = run(store, busybox, "/etc/passwd", check=False)
    assert not_exec.returncode == 126 and "/etc/passwd" in not_exec.stderr
    bad_image = barque(store, "run", "--rm", "--network", "none", "127.0.0.1:1/no/image",
                       check=False)
    assert bad_image.returncode == 125


def test_isolation_seen_from_inside(store, busybox) -> None:
    script = ("echo pid=$$; hostname; cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' ';"
              "grep -E '^(CapInh|CapEff|CapAmb|Seccomp|NoNewPrivs):' /proc/self/status;"
              "ls /proc/self/fd | tr '\\n' ' '")
    out = run(store, "-h", "boxy", busybox, "sh", "-c", script).stdout.splitlines()
    assert out[0] == "pid=1"
    assert out[1] == "boxy"
    assert out[2] == "lo" and not out[3].startswith(("eth", "ens"))
    status = dict(line.split(":\t") for line in out if ":\t" in line)
    assert status["CapEff"] == DOCKER_CAP_EFF
    assert status["CapInh"] == status["CapAmb"] == "0000000000000000"
    assert status["Seccomp"] == "2"
    assert status["NoNewPrivs"] == "0"
    # only stdio (plus the fd ls itself opens for /proc/self/fd)
    assert out[-1].split() == ["0", "1", "2", "3"]


def test_no_new_privileges_and_host_network(store, busybox) -> None:
    nnp = run(store, "--security-opt", "no-new-privileges", busybox,
              "grep", "NoNewPrivs", "/proc/self/status").stdout
    assert nnp.split() == ["NoNewPrivs:", "1"]
    host_ifaces = {line.split(":")[0].strip() for line in Path("/proc/net/dev").read_text().splitlines()[2:]}
    out = barque(store, "run", "--rm", "--network", "host", busybox, "cat", "/proc/net/dev").stdout
    inside = {line.split(":")[0].strip() for line in out.splitlines()[2:]}
    assert inside == host_ifaces


def test_masked_and_read_only_proc_paths(store, busybox) -> None:
    out = run(store, busybox, "sh", "-c",
              "wc -c < /proc/keys; echo 1 > /proc/sys/kernel/domainname && echo wrote || echo refused")
    assert out.stdout.split() == ["0", "refused"]


def test_writes_never_reach_the_image(store, busybox) -> None:
    run(store, busybox, "sh", "-c", "rm /etc/passwd && echo gone > /bin/busybox-note")
    out = run(store, busybox, "sh", "-c", "head -1 /etc/passwd; ls /bin/busybox-note 2>&1; true")
    assert out.stdout.splitlines()[0].startswith("root:")
    assert "No such file" in out.stdout


def test_without_rm_the_container_is_kept_and_listed(store, busybox) -> None:
    out = barque(store, "run", "--network", "none", "--name", "kept", busybox, "sh", "-c", "exit 3",
                 check=False)
    assert out.returncode == 3
    listing = barque(store, "ps", "-a").stdout.splitlines()
    assert listing[0].split()[:2] == ["CONTAINER", "ID"]
    row = next(line for line in listing if line.endswith("kept"))
    assert "Exited (3)" in row
    kept = next(r for r in _ps_json(store) if r["Names"] == "kept")
    assert kept["State"] == "exited" and kept["Status"].startswith("Exited (3)")
    clash = barque(store, "run", "--network", "none", "--name", "kept", busybox, "true", check=False)
    assert clash.returncode == 125 and 'The container name "/kept" is already in use' in clash.stderr
    assert barque(store, "rm", "kept").stdout == "kept\n"
    assert "kept" not in barque(store, "ps", "-a").stdout


def test_rm_leaves_no_mounts_or_directories(store, busybox) -> None:
    before = set((store / "containers").iterdir())
    run(store, busybox, "true")
    assert set((store / "containers").iterdir()) == before
    assert str(store) not in Path("/proc/self/mountinfo").read_text()


def test_a_relative_root_works_from_any_directory(store, busybox) -> None:
    # Containers start with their bundle as the working directory, so a relative --root must
    # be made absolute before any path inside it is handed to the runtime.
    proc = subprocess.run([*cli(), "--root", store.name, "run", "--rm",
                           "--network", "none", busybox, "cat", "/etc/hostname"],
                          capture_output=True, text=True, timeout=120, cwd=store.parent)
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.strip()) == 12


def _barque_cgroups() -> set[Path]:
    return {d for d in Path("/sys/fs/cgroup").glob("*/barque/*") if d.is_dir()} | \
        {d for d in Path("/sys/fs/cgroup/barque").glob("*") if d.is_dir()}


def test_twenty_runs_at_once(store, busybox) -> None:
    cgroups_before = _barque_cgroups()
    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(lambda i: run(store, busybox, "sh", "-c", f"echo {i}", check=False),
                                range(20)))
    failures = [r.stderr for r in results if r.returncode != 0]
    assert failures == []
    assert sorted(int(r.stdout) for r in results) == list(range(20))
    assert barque(store, "ps", "-a", "-q").stdout == ""  # --rm removed every record
    assert str(store) not in Path("/proc/self/mountinfo").read_text()
    assert _barque_cgroups() <= cgroups_before  # and every cgroup


def test_container_killed_behind_our_back_shows_exited(store, busybox) -> None:
    proc = subprocess.Popen([*cli(), "--root", str(store), "run",
                             "--network", "none", "--name", "ghost", busybox, "sleep", "300"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    running = False
    while time.monotonic() < deadline and not running:
        running = any(r["Names"] == "ghost" and r["State"] == "running" for r in _ps_json(store))
        time.sleep(0.1)
    assert running, "the container never showed as running"
    assert "Up " in barque(store, "ps").stdout
    proc.send_signal(signal.SIGKILL)  # the CLI dies first, leaving the container's process
    proc.wait()
    subprocess.run(["pkill", "-KILL", "-f", "sleep 300"], check=False)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "Up " in barque(store, "ps", "-a").stdout:
        time.sleep(0.1)
    row = next(line for line in barque(store, "ps", "-a").stdout.splitlines() if "ghost" in line)
    assert "Exited" in row
    barque(store, "rm", "ghost")


def test_create_then_start_attached(store, busybox) -> None:
    cid = barque(store, "create", "--network", "none", "--name", "later", "-e", "GREETING=hi",
                 busybox, "sh", "-c", "echo $GREETING from $(hostname); exit 4").stdout.strip()
    assert len(cid) == 64 and set(cid) <= set("0123456789abcdef")
    row = next(r for r in _ps_json(store) if r["Names"] == "later")
    assert row["Status"] == "Created" and row["ID"] == cid[:12]
    started = barque(store, "start", "-a", "later", check=False)
    assert started.returncode == 4 and started.stdout == f"hi from {cid[:12]}\n"
    [doc] = json.loads(barque(store, "inspect", cid[:8]).stdout)
    assert doc["Id"] == cid and doc["Name"] == "/later" and doc["State"]["ExitCode"] == 4
    # Recorded as exited by the time start -a returns: rm works straight away, as in Docker.
    assert doc["State"]["Status"] == "exited"
    barque(store, "rm", cid[:12])


def _cgroup_dirs(cid: str) -> list[Path]:
    roots = [Path("/sys/fs/cgroup")] if Path("/sys/fs/cgroup/cgroup.controllers").exists() \
        else [p for p in Path("/sys/fs/cgroup").iterdir() if p.is_dir()]
    return [r / "barque" / cid for r in roots if (r / "barque" / cid).exists()]


def test_memory_limit_oom_kills_and_is_recorded(store, busybox) -> None:
    out = barque(store, "run", "--network", "none", "--name", "hog", "--memory", "16m", busybox,
                 "sh", "-c", "x=a; while true; do x=$x$x; done", check=False)
    assert out.returncode == 137
    [doc] = json.loads(barque(store, "inspect", "hog").stdout)
    assert doc["State"]["OOMKilled"] is True and doc["State"]["ExitCode"] == 137
    assert doc["HostConfig"]["Memory"] == 16 * 1024 * 1024
    assert _cgroup_dirs(doc["Id"]) == []  # released when it exited
    barque(store, "rm", "hog")
    fine = barque(store, "run", "--network", "none", "--name", "fine", "-m", "64m", busybox, "true")
    assert fine.returncode == 0
    [doc] = json.loads(barque(store, "inspect", "fine").stdout)
    assert doc["State"]["OOMKilled"] is False
    barque(store, "rm", "fine")


def test_pids_limit_stops_a_fork_bomb(store, busybox) -> None:
    start = time.monotonic()
    out = run(store, "--pids-limit", "20", busybox, "sh", "-c",
              "for i in $(seq 50); do sleep 1 & done; wait", check=False)
    assert time.monotonic() - start < 30
    assert "can't fork" in out.stderr or "Resource temporarily unavailable" in out.stderr


def test_cpus_sets_the_cfs_quota_and_rm_leaves_no_cgroup(store, busybox) -> None:
    proc = subprocess.Popen([*cli(), "--root", str(store), "run", "--rm",
                             "--network", "none", "--name", "slow", "--cpus", "0.5", "--memory",
                             "32m", "--pids-limit", "30", busybox, "sleep", "3"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    cid = ""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not cid:
        cid = next((r["ID"] for r in _ps_json(store) if r["Names"] == "slow"
                    and r["State"] == "running"), "")
        time.sleep(0.1)
    assert cid, "the container never showed as running"
    [doc] = json.loads(barque(store, "inspect", cid).stdout)
    cid = doc["Id"]
    assert doc["HostConfig"]["NanoCpus"] == 500_000_000 and doc["HostConfig"]["PidsLimit"] == 30
    dirs = {d.parent.parent.name: d for d in _cgroup_dirs(cid)}
    if Path("/sys/fs/cgroup/cgroup.controllers").exists():
        assert (dirs["cgroup"] / "cpu.max").read_text().split() == ["50000", "100000"]
        assert (dirs["cgroup"] / "pids.max").read_text().strip() == "30"
    else:
        cpu = next(d for name, d in dirs.items() if (d / "cpu.cfs_quota_us").exists())
        assert (cpu / "cpu.cfs_quota_us").read_text().strip() == "50000"
        assert (dirs["memory"] / "memory.limit_in_bytes").read_text().strip() == str(32 << 20)
        assert (dirs["pids"] / "pids.max").read_text().strip() == "30"
        procs = (dirs["memory"] / "cgroup.procs").read_text().split()
        assert len(procs) == 1  # the container's init joined it
    assert proc.wait(timeout=30) == 0
    assert _cgroup_dirs(cid) == []
    assert not any(r["Names"] == "slow" for r in _ps_json(store))


def test_bad_resource_options_are_refused(store, busybox) -> None:
    assert run(store, "--memory", "lots", busybox, "true", check=False).returncode == 125
    assert run(store, "--memory", "1m", busybox, "true", check=False).returncode == 125
    assert run(store, "--cpus", "99", busybox, "true", check=False).returncode == 125


def test_ps_filters_rename_and_prune(store, busybox, fixture_images) -> None:
    barque(store, "run", "--network", "none", "--name", "f-one", "-l", "tier=a", busybox, "true")
    barque(store, "run", "--network", "none", "--name", "f-two", "-l", "tier=b",
           fixture_images["layers"].ref, check=False)

    def names(*filters: str) -> set[str]:
        args = [a for f in filters for a in ("--filter", f)]
        return {r["Names"] for r in
                (json.loads(line) for line in
                 barque(store, "ps", "--format", "json", *args).stdout.splitlines())}

    assert {"f-one", "f-two"} <= names("status=exited")
    assert names("status=exited", "name=f-") == {"f-one", "f-two"}
    assert names("status=exited", "label=tier=a") == {"f-one"}
    assert names("status=exited", "label=tier", "name=two") == {"f-two"}
    assert names("status=exited", f"ancestor={busybox}", "name=f-") == {"f-one"}
    assert names("name=f-") == set()  # without a status filter only running ones show
    bad = barque(store, "ps", "--filter", "color=red", check=False)
    assert bad.returncode == 1 and "invalid filter 'color'" in bad.stderr

    barque(store, "rename", "f-one", "f-uno")
    assert names("status=exited", "name=f-") == {"f-uno", "f-two"}
    clash = barque(store, "rename", "f-uno", "f-two", check=False)
    assert clash.returncode == 1 and 'name "/f-two" is already in use' in clash.stderr

    out = barque(store, "container", "prune", "-f").stdout
    assert out.startswith("Deleted Containers:") and "Total reclaimed space:" in out
    assert barque(store, "ps", "-a", "-q").stdout == ""


def test_create_then_export_equals_dockers_rootfs(store, fixture_images, tmp_path) -> None:
    from helpers import ROOTFS_MANIFEST, SHARED

    cid = barque(store, "create", "--network", "none", fixture_images["layers"].ref).stdout.strip()
    out = tmp_path / "rootfs.tar"
    barque(store, "export", "-o", str(out), cid)
    listing = subprocess.run([sys.executable, str(ROOTFS_MANIFEST), "--tar", str(out)],
                             check=True, capture_output=True, text=True).stdout.splitlines()
    expected = (SHARED / "fixtures" / "images" / "layers-1.rootfs.txt").read_text().splitlines()
    assert listing == expected  # exactly, Docker's init-layer entries included
    piped = subprocess.run([*cli(), "--root", str(store), "export", cid],
                           check=True, capture_output=True).stdout
    assert piped[:512] == out.read_bytes()[:512] and len(piped) == out.stat().st_size
    barque(store, "rm", cid)


def test_signals_to_barque_run_reach_the_container(store, busybox) -> None:
    script = 'trap "echo got TERM; exit 5" TERM; echo ready; while true; do sleep 0.1; done'
    proc = subprocess.Popen([*cli(), "--root", str(store), "run", "--rm",
                             "--network", "none", busybox, "sh", "-c", script],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert out == "got TERM\n", err
    assert proc.returncode == 5


def test_export_shows_the_containers_own_changes(store, busybox, tmp_path) -> None:
    import tarfile

    cid = barque(store, "create", "--network", "none", busybox, "sh", "-c",
                 "rm /bin/ls; rm -r /home; mkdir /home; echo mine > /home/only; "
                 "mkdir /new; echo x > /new/f").stdout.strip()
    barque(store, "start", "-a", cid)
    barque(store, "export", "-o", str(tmp_path / "out.tar"), cid)
    with tarfile.open(tmp_path / "out.tar") as tar:
        names = set(tar.getnames())
        assert tar.extractfile("new/f").read() == b"x\n"
    assert "bin/ls" not in names and "bin/sh" in names
    # /home was replaced by an opaque directory: only the new file shows, not the image's.
    assert {n for n in names if n.startswith("home/")} == {"home/only"}
    barque(store, "rm", cid)


def test_only_a_discarded_upper_is_volatile(store, busybox) -> None:
    # --rm: the overlay skips syncing the store's filesystem when the container stops (its
    # upper is deleted anyway); a kept container's upper is synced as usual.
    def root_mount(*flags: str) -> str:
        out = barque(store, "run", *flags, "--network", "none", busybox, "cat",
                     "/proc/mounts").stdout
        return next(line for line in out.splitlines() if line.split()[1] == "/")

    assert "volatile" in root_mount("--rm")
    assert "volatile" not in root_mount("--name", "kept")
    barque(store, "rm", "kept")


def test_a_start_that_fails_early_does_not_sigpipe_the_caller(store, busybox) -> None:
    # The init may die (here: a working directory outside its rootfs) before the parent tells
    # it that it joined its cgroups; a library caller with SIGPIPE's default action must get
    # the start error, not be killed by the signal.
    probe = ("import signal, sys\n"
             "from barque.engine import Engine\n"
             "from barque.errors import ContainerStartError\n"
             "from barque.runtime.spec import RunOptions\n"
             "signal.signal(signal.SIGPIPE, signal.SIG_DFL)\n"
             "engine = Engine(root=sys.argv[1])\n"
             "for _ in range(5):\n"
             "    try:\n"
             "        engine.containers.run(sys.argv[2], ['true'], options=RunOptions(\n"
             "            network='none', workdir='/proc/self/fd/7'))\n"
             "    except ContainerStartError as e:\n"
             "        print(e.exit_code)\n")
    proc = subprocess.run([sys.executable, "-c", probe, str(store), busybox],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["125"] * 5
