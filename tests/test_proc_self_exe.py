"""CVE-2019-5736 and its kin: an image whose command is a link to ``/proc/self/exe``.

The process that execs into a container is a clone of a host program (the Python interpreter
for ``barque run``/``exec``, ``barque-shim`` for ``run -d``/``start``, ``barque-runtime``), so
without care the kernel runs that host program inside the container, where the image's
``LD_PRELOAD`` gets an fd to it, to be written once nothing runs it any more. barque execs the
command through a static trampoline run from a sealed memfd: the link reruns only the
trampoline, which refuses (127), and no host binary ever runs in the container.

The image carries what a real attack needs: the host's dynamic loader and libraries (so the host
programs *could* start in there) and a preload library, compiled here, that reports to a bind
mount what it could do: that it ran (and as what), whether ``/proc/self/exe`` opened for
writing, and whether it still did once the host program had exited. It never writes a byte.
The binaries attacked are copies where barque lets us (``barque-runtime``, and ``barque-shim``
through ``BARQUE_LIBEXEC``); the interpreter is the real one (hash checked, never written).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from helpers import BIN, barque, busybox_rootfs

from test_oci_runtime import BARQUE_RUNTIME, Runtime, bundle, json_list

ROOT = Path(__file__).resolve().parent.parent
GCC = shutil.which("gcc")

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="containers need root (namespaces, mounts)"),
    pytest.mark.skipif(GCC is None, reason="gcc is needed to build the preload library"),
    pytest.mark.skipif(BARQUE_RUNTIME is None, reason="the native helpers are not built (scripts/setup)"),
]

#: The attacker's library. Only inside the container does /out exist, so on the host (nothing
#: there preloads it anyway) it does nothing. It execs busybox's sh with an O_PATH fd on the
#: host program kept open, so that this process stops running that program, and polls whether
#: the program opens for writing once its host process is gone (`>>` opens, writes nothing).
ATTACK_C = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

__attribute__((constructor)) static void attack(void) {
    int out = open("/out/report", O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (out < 0)
        return;
    char exe[4096] = "";
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = 0;
    dprintf(out, "ran %s\n", exe);
    int w = open("/proc/self/exe", O_WRONLY | O_CLOEXEC);
    if (w >= 0) {
        dprintf(out, "opened-for-write\n");
        close(w);
    } else {
        dprintf(out, "open-for-write-failed %s\n", strerror(errno));
    }
    int keep = open("/proc/self/exe", O_PATH);
    char held[64];
    snprintf(held, sizeof held, "/proc/self/fd/%d", keep);
    unsetenv("LD_PRELOAD");
    execl("/bin/sh", "sh", "-c",
          "i=0; while [ $i -lt 50 ]; do"
          "  if (: >>\"$0\") 2>/dev/null; then echo late-open-for-write >>/out/report; exit 0; fi;"
          "  i=$((i+1)); sleep 0.1; done; echo late-open-failed >>/out/report",
          held, (char *)0);
}
"""


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def host_libraries(*binaries: Path) -> set[Path]:
    """The dynamic loader and libraries the binaries need (``ldd``), as absolute paths."""
    found: set[Path] = set()
    for binary in binaries:
        out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True).stdout
        for line in out.splitlines():
            for word in line.split():
                if word.startswith("/"):
                    found.add(Path(word))
    return found


def copy_into(rootfs: Path, path: Path) -> None:
    target = rootfs / path.relative_to("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(path.resolve(), target)


@pytest.fixture(scope="module")
def helpers_copy(tmp_path_factory) -> Path:
    """Copies of barque's helpers in a directory of their own (``BARQUE_LIBEXEC``)."""
    d = tmp_path_factory.mktemp("libexec")
    installed = {"barque-runtime": BARQUE_RUNTIME}  # on PATH; the others in the package
    for name in ("barque-runtime", "barque-shim", "barque-init", "barque-trampoline"):
        source = installed.get(name) or BIN / name
        if source.exists():
            shutil.copy2(source, d / name)
    return d


@pytest.fixture(scope="module")
def attack_rootfs(tmp_path_factory, helpers_copy) -> Path:
    """busybox, the host's loader and libraries, the preload library, /pwn -> /proc/self/exe."""
    rootfs = busybox_rootfs(tmp_path_factory.mktemp("attack") / "rootfs")
    src = rootfs.parent / "attack.c"
    src.write_text(ATTACK_C)
    subprocess.run([GCC, "-shared", "-fPIC", "-O1", "-o", str(rootfs / "attack.so"), str(src)],
                   check=True, capture_output=True)
    interpreter = Path(os.path.realpath(sys.executable))
    for lib in host_libraries(interpreter, helpers_copy / "barque-runtime", helpers_copy / "barque-shim"):
        copy_into(rootfs, lib)
    (rootfs / "pwn").symlink_to("/proc/self/exe")
    (rootfs / "out").mkdir()
    return rootfs


@pytest.fixture
def out(tmp_path) -> Path:
    d = tmp_path / "out"
    d.mkdir()
    return d


def report(out: Path) -> str:
    path = out / "report"
    return path.read_text() if path.exists() else ""


def assert_refused(out: Path, hashes: dict[Path, str]) -> None:
    """No host program ran in the container, none opened for writing, none changed."""
    text = report(out)
    assert "ran " not in text, f"a host binary ran inside the container:\n{text}"
    assert "opened-for-write" not in text and "late-open-for-write" not in text, text
    for path, digest in hashes.items():
        assert sha256(path) == digest, f"{path} changed"


# ---- barque-runtime, a copy of it run from a temporary directory


@pytest.fixture
def runtime_copy(tmp_path, helpers_copy, monkeypatch):
    monkeypatch.setenv("BARQUE_LIBEXEC", str(helpers_copy))
    rt = Runtime(str(helpers_copy / "barque-runtime"), tmp_path / "runtime-root")
    yield rt
    for cid in json_list(rt):
        rt("delete", "--force", cid, check=False)


def attack_bundle(tmp_path: Path, rootfs: Path, out: Path, args: list[str], name: str = "bundle") -> Path:
    b = bundle(tmp_path, rootfs, args, name)
    config = json.loads((b / "config.json").read_text())
    config["process"]["env"].append("LD_PRELOAD=/attack.so")
    config["mounts"].append({"destination": "/out", "type": "bind", "source": str(out),
                             "options": ["rbind", "rw"]})
    (b / "config.json").write_text(json.dumps(config))
    return b


def wait_stopped(rt: Runtime, cid: str) -> None:
    deadline = time.monotonic() + 60
    while rt.state(cid)["status"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.05)


def test_runtime_run_reruns_only_the_refusing_trampoline(runtime_copy, attack_rootfs, out, tmp_path):
    binary = Path(runtime_copy.binary)
    hashes = {binary: sha256(binary)}
    b = attack_bundle(tmp_path, attack_rootfs, out, ["/pwn", "run", "x"])
    r = runtime_copy("run", "--bundle", str(b), "fg", check=False, timeout=120)
    assert r.returncode == 127, r
    assert "barque-trampoline: not started by barque; refusing to run" in r.stderr, r.stderr
    assert_refused(out, hashes)


def test_runtime_run_detached_leaves_nothing_to_write(runtime_copy, attack_rootfs, out, tmp_path):
    """The runtime exits at once: the late open is the one that would have succeeded."""
    binary = Path(runtime_copy.binary)
    hashes = {binary: sha256(binary)}
    b = attack_bundle(tmp_path, attack_rootfs, out, ["/pwn"])
    runtime_copy.detached("run", "-d", "--bundle", str(b), "bg")
    wait_stopped(runtime_copy, "bg")
    assert runtime_copy.state("bg")["status"] == "stopped"
    assert_refused(out, hashes)


def test_runtime_create_then_start(runtime_copy, attack_rootfs, out, tmp_path):
    """The init waits for `start` in the runtime's clone; the exec after it is the trampoline's."""
    binary = Path(runtime_copy.binary)
    hashes = {binary: sha256(binary)}
    b = attack_bundle(tmp_path, attack_rootfs, out, ["/pwn"])
    runtime_copy.detached("create", "--bundle", str(b), "cs")
    runtime_copy("start", "cs")
    wait_stopped(runtime_copy, "cs")
    assert runtime_copy.state("cs")["status"] == "stopped"
    assert_refused(out, hashes)


def test_runtime_exec_of_proc_self_exe(runtime_copy, attack_rootfs, out, tmp_path):
    binary = Path(runtime_copy.binary)
    hashes = {binary: sha256(binary)}
    b = attack_bundle(tmp_path, attack_rootfs, out, ["sleep", "300"])
    runtime_copy.detached("run", "-d", "--bundle", str(b), "ex")
    process = dict(json.loads((b / "config.json").read_text())["process"], args=["/pwn"])
    (tmp_path / "p.json").write_text(json.dumps(process))
    r = runtime_copy("exec", "--process", str(tmp_path / "p.json"), "ex", check=False, timeout=120)
    assert r.returncode == 127, r
    assert "refusing to run" in r.stderr, r.stderr
    assert_refused(out, hashes)
    # An ordinary exec still works, and its exec errors are reported as before (runc's 1).
    r = runtime_copy("exec", "ex", "sh", "-c", "echo fine", check=False)
    assert (r.returncode, r.stdout) == (0, "fine\n"), r
    r = runtime_copy("exec", "ex", "no-such-binary", check=False)
    assert r.returncode == 1, r
    assert r.stderr == 'barque-runtime: exec: "no-such-binary": executable file not found in $PATH\n'
    r = runtime_copy("exec", "ex", "/etc/passwd", check=False)
    assert r.returncode == 1 and r.stderr == "barque-runtime: exec /etc/passwd: permission denied\n", r


# ---- barque itself: the interpreter (run, exec) and barque-shim (run -d, start)


@pytest.fixture(scope="module")
def store(tmp_path_factory, attack_rootfs, helpers_copy):
    root = tmp_path_factory.mktemp("store")
    archive = root.parent / "attack.tar"
    with tarfile.open(archive, "w") as tar:
        for entry in sorted(attack_rootfs.iterdir()):
            tar.add(entry, arcname=entry.name)
    barque(root, "import", "-c", 'CMD ["/pwn"]', "-c", "ENV LD_PRELOAD=/attack.so",
           str(archive), "attack:1", env={"BARQUE_LIBEXEC": str(helpers_copy)})
    return root


@pytest.fixture
def cli(store, helpers_copy):
    def run(*args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        return barque(store, *args, check=check, timeout=120, env={"BARQUE_LIBEXEC": str(helpers_copy)})
    return run


def interpreter_hashes() -> dict[Path, str]:
    python = Path(os.path.realpath(sys.executable))
    return {python: sha256(python)}


def test_run_in_the_foreground(cli, out):
    hashes = interpreter_hashes()
    r = cli("run", "--rm", "-v", f"{out}:/out", "attack:1")
    assert r.returncode == 127, r
    assert "refusing to run" in r.stderr, r.stderr
    assert_refused(out, hashes)


def test_run_detached_and_start_under_the_shim(cli, out, helpers_copy):
    hashes = {**interpreter_hashes(), helpers_copy / "barque-shim": sha256(helpers_copy / "barque-shim")}
    cid = cli("run", "-d", "-v", f"{out}:/out", "attack:1", check=True).stdout.strip()
    assert cli("wait", cid).stdout.strip() == "127"
    assert "refusing to run" in cli("logs", cid).stderr
    assert_refused(out, hashes)
    r = cli("start", "-a", cid)
    assert r.returncode == 127, r
    assert_refused(out, hashes)
    cli("rm", "-f", cid)


def test_exec_of_proc_self_exe(cli, out):
    hashes = interpreter_hashes()
    cid = cli("run", "-d", "-v", f"{out}:/out", "attack:1", "sleep", "300", check=True).stdout.strip()
    try:
        r = cli("exec", cid, "/pwn")
        assert r.returncode == 127, r
        assert "refusing to run" in r.stderr, r.stderr
        assert_refused(out, hashes)
        # The trampoline passes the command's argv[0], environment and exit status through.
        r = cli("exec", "-e", "GREETING=hi", cid, "sh", "-c", 'echo "$0 $GREETING"; exit 3')
        assert (r.returncode, r.stdout) == (3, "sh hi\n"), r
    finally:
        cli("rm", "-f", cid)


def test_run_with_init(cli, out, helpers_copy):
    """Under --init the link names /dev/init, a read-only bind of the host's barque-init, which
    is static and runs no preload: it only prints its usage."""
    init = helpers_copy / "barque-init"
    hashes = {**interpreter_hashes(), init: sha256(init)}
    r = cli("run", "--rm", "--init", "-v", f"{out}:/out", "attack:1")
    assert r.returncode == 2 and "usage: barque-init" in r.stderr, r
    assert_refused(out, hashes)
