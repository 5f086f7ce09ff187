"""barque-init (rust/barque-init) as PID 1 of a busybox container, bind-mounted at /dev/init
the way ``--init`` does, run as ``/dev/init -- CMD...``.

Needs root and the static binary the installed wheel ships in ``barque/_bin/barque-init``
(scripts/setup installs it).
"""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from helpers import BIN, busybox_rootfs

from test_runtime_native import BASE_CONFIG, make_bundle, run

BINARY = BIN / "barque-init" if os.access(BIN / "barque-init", os.X_OK) else None

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="containers need root (namespaces, mounts)"),
    pytest.mark.skipif(BINARY is None, reason="barque-init is not built (run scripts/setup)"),
]


@pytest.fixture(scope="module")
def native():
    from barque import _native

    return _native


@pytest.fixture(scope="module")
def busybox(tmp_path_factory) -> Path:
    root = busybox_rootfs(tmp_path_factory.mktemp("busybox") / "rootfs")
    return root


def init_mounts() -> list[dict]:
    """The base mounts plus the binary bind-mounted read-only at /dev/init (inside the /dev
    tmpfs, so after it)."""
    mounts = copy.deepcopy(BASE_CONFIG["mounts"])
    at = next(i for i, m in enumerate(mounts) if m["destination"] == "/dev") + 1
    mounts.insert(at, {"destination": "/dev/init", "type": "bind", "source": str(BINARY),
                       "options": ["bind", "ro"]})
    return mounts


def init_bundle(tmp_path: Path, rootfs: Path, command: list[str]) -> Path:
    """A bundle running ``/dev/init -- command``."""
    return make_bundle(tmp_path, rootfs, ["/dev/init", "--", *command], mounts=init_mounts())


def sh(native, tmp_path, rootfs, script: str) -> tuple[int, str]:
    return run(native, init_bundle(tmp_path, rootfs, ["sh", "-c", script]))


def test_binary_is_static():
    out = subprocess.run(["file", "-L", str(BINARY)], capture_output=True, text=True).stdout
    assert "statically linked" in out or "static-pie linked" in out, out


def test_pid1_is_the_init_and_the_command_its_child(native, busybox, tmp_path):
    code, out = sh(native, tmp_path, busybox,
                   "readlink /proc/1/exe; echo $$; cut -d' ' -f4 /proc/$$/stat")
    assert code == 0, out
    exe, me, parent = out.split()
    assert exe == "/dev/init"
    assert me != "1" and parent == "1"


def test_exit_code_passes_through(native, busybox, tmp_path):
    assert sh(native, tmp_path, busybox, "exit 7") == (7, "")
    # Killed by a signal: 128 + the signal, as a shell reports it.
    code, _ = sh(native, tmp_path, busybox, "sleep 100 & sleep 100 & kill -TERM $$")
    assert code == 128 + signal.SIGTERM


def test_orphan_zombies_are_reaped(native, busybox, tmp_path):
    # The subshell exits at once, so its background sleep is re-parented to PID 1; when that
    # sleep exits, only PID 1 can reap it. Then list every process's state.
    script = ("(sleep 0.1 &); sleep 0.6; "
              "for f in /proc/[0-9]*/stat; do read -r pid comm state rest < $f && echo $pid $comm $state; done")
    code, out = sh(native, tmp_path, busybox, script)
    assert code == 0, out
    states = [line.split() for line in out.splitlines()]
    assert states, out
    assert not [s for s in states if s[2] == "Z"], out
    assert not [s for s in states if s[1] == "(sleep)"], out


def test_signals_from_the_host_reach_the_command(native, busybox, tmp_path):
    # Without an init, `sleep` as PID 1 would ignore SIGTERM (no handler).
    pid = native.spawn(str(init_bundle(tmp_path, busybox, ["sleep", "100"])))
    time.sleep(0.2)
    native.kill(pid, signal.SIGTERM)
    assert native.wait(pid) == 128 + signal.SIGTERM

    r, w = os.pipe()
    script = "trap 'echo got USR1; exit 5' USR1; echo ready; while :; do sleep 0.05; done"
    try:
        pid = native.spawn(str(init_bundle(tmp_path, busybox, ["sh", "-c", script])),
                           stdout_fd=w, stderr_fd=w)
    finally:
        os.close(w)
    with os.fdopen(r, "rb") as f:
        assert f.readline() == b"ready\n"
        native.kill(pid, signal.SIGUSR1)
        rest = f.read().decode()
    assert native.wait(pid) == 5
    assert rest == "got USR1\n"


def test_exec_failures(native, busybox, tmp_path):
    code, out = run(native, init_bundle(tmp_path, busybox, ["no-such-command"]))
    assert code == 127
    assert out == "barque-init: exec no-such-command: No such file or directory\n"

    code, out = run(native, init_bundle(tmp_path, busybox, ["/notexec"]))
    assert code == 126
    assert out.startswith("barque-init: exec /notexec: "), out

    code, out = run(native, make_bundle(tmp_path, busybox, ["/dev/init"], mounts=init_mounts()))
    assert code == 2 and out.startswith("barque-init: usage:"), out
