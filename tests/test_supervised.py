"""Detached and attached containers under their supervisor (barque-shim), through the CLI as
a Docker user would drive them: -d, logs, stop/restart/pause/top, --init, -it on a real pty."""

from __future__ import annotations

import json
import os
import pty
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from helpers import BIN, Terminal, barque, cli

pytestmark = [
    pytest.mark.registry,
    pytest.mark.skipif(os.geteuid() != 0, reason="containers need root (namespaces, mounts)"),
]


def _need(binary: str) -> None:
    if not (BIN / binary).exists() and not os.environ.get("BARQUE_LIBEXEC"):
        pytest.fail(f"{binary} is not in {BIN}: run scripts/setup")


@pytest.fixture(scope="module")
def store(tmp_path_factory, fixture_images):  # type: ignore[no-untyped-def]
    _need("barque-shim")
    root = tmp_path_factory.mktemp("supervised") / "root"
    barque(root, "pull", "-q", fixture_images["busybox"].ref)
    return root


@pytest.fixture
def busybox(fixture_images) -> str:  # type: ignore[no-untyped-def]
    return fixture_images["busybox"].ref


def _inspect(root: Path, name: str) -> dict:
    return json.loads(barque(root, "inspect", name).stdout)[0]


def _until(predicate, timeout: float = 10.0, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _status(root: Path, name: str) -> str:
    for line in barque(root, "ps", "-a", "--format", "json").stdout.splitlines():
        row = json.loads(line)
        if row["Names"] == name:
            return row["Status"]
    return ""


def test_detached_logs_follow_stop_and_rm(store, busybox) -> None:
    script = "i=0; while true; do echo line $i; echo err $i >&2; i=$((i+1)); sleep 0.1; done"
    out = barque(store, "run", "-d", "--network", "none", "--name", "talker", busybox,
                 "sh", "-c", script)
    cid = out.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", cid), out.stdout
    assert _status(store, "talker").startswith("Up ")
    _until(lambda: "line 3\n" in barque(store, "logs", "talker").stdout, what="4 lines")
    logs = barque(store, "logs", "talker")
    assert logs.stdout.startswith("line 0\nline 1\n") and "line" not in logs.stderr
    assert logs.stderr.startswith("err 0\nerr 1\n") and "err" not in logs.stdout
    tail = barque(store, "logs", "--tail", "1", "talker")
    assert len((tail.stdout + tail.stderr).splitlines()) == 1
    stamped = barque(store, "logs", "-t", "--tail", "2", "talker").stdout.splitlines()
    assert stamped and all(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z (line|err) \d+$", s)
                           for s in stamped)
    assert barque(store, "logs", "--since", "2099-01-01", "talker").stdout == ""

    follower = subprocess.Popen(
        [*cli(), "--root", str(store), "logs", "-f", "talker"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        time.sleep(0.5)
        before = len(barque(store, "logs", "talker").stdout.splitlines())
        barque(store, "stop", "-t", "1", "talker")
        followed, _ = follower.communicate(timeout=20)  # -f ends when the container stops
    finally:
        follower.kill()
    assert len(followed.splitlines()) >= before
    state = _inspect(store, "talker")["State"]
    # sh as PID 1 ignores SIGTERM: stopped by the SIGKILL after the grace period.
    assert state["Status"] == "exited" and state["ExitCode"] == 137
    assert _status(store, "talker").startswith("Exited (137)")
    barque(store, "rm", "talker")
    assert not (store / "containers" / cid).exists()
    assert barque(store, "logs", "talker", check=False).returncode == 1


def test_detached_exit_code_wait_and_rm(store, busybox) -> None:
    barque(store, "run", "-d", "--network", "none", "--name", "quitter", busybox,
           "sh", "-c", "echo bye; exit 3")
    assert barque(store, "wait", "quitter").stdout == "3\n"
    assert barque(store, "logs", "quitter").stdout == "bye\n"
    state = _inspect(store, "quitter")["State"]
    assert (state["Status"], state["ExitCode"], state["Running"]) == ("exited", 3, False)
    assert state["FinishedAt"] > state["StartedAt"]
    barque(store, "rm", "quitter")

    barque(store, "run", "-d", "--rm", "--network", "none", "--name", "gone", busybox, "true")
    _until(lambda: _status(store, "gone") == "", what="--rm to remove the container")


def test_log_rotation(store, busybox) -> None:
    cid = barque(store, "run", "-d", "--network", "none", "--log-opt", "max-size=1k",
                 "--log-opt", "max-file=2", busybox, "sh", "-c",
                 "i=0; while [ $i -lt 300 ]; do echo message number $i; i=$((i+1)); done"
                 ).stdout.strip()
    assert barque(store, "wait", cid).stdout == "0\n"
    log = store / "containers" / cid / f"{cid}-json.log"
    files = sorted(p.name for p in log.parent.iterdir() if p.name.startswith(log.name))
    assert files == [log.name, log.name + ".1"]
    for name in files:
        assert (log.parent / name).stat().st_size <= 1024
        for line in (log.parent / name).read_text().splitlines():
            entry = json.loads(line)
            assert entry["stream"] == "stdout" and entry["log"].startswith("message number")
    shown = barque(store, "logs", cid).stdout.splitlines()
    assert shown[-1] == "message number 299"
    numbers = [int(s.split()[-1]) for s in shown]
    assert numbers == list(range(numbers[0], 300))
    assert barque(store, "run", "--network", "none", "--log-opt", "bogus=1", busybox, "true",
                  check=False).returncode == 125
    barque(store, "rm", cid)


def test_pause_unpause_top_restart(store, busybox) -> None:
    barque(store, "run", "-d", "--network", "none", "--name", "ticker", busybox, "sh", "-c",
           "while true; do echo tick; sleep 0.05; done")
    titles, *rows = barque(store, "top", "ticker").stdout.splitlines()
    assert titles.split()[:2] == ["UID", "PID"] and titles.split()[-1] == "CMD"
    assert any("while true" in r for r in rows)
    first_pid = _inspect(store, "ticker")["State"]["Pid"]

    barque(store, "pause", "ticker")
    assert _status(store, "ticker").endswith("(Paused)")
    assert _inspect(store, "ticker")["State"]["Paused"] is True
    frozen = len(barque(store, "logs", "ticker").stdout.splitlines())
    time.sleep(0.5)
    assert len(barque(store, "logs", "ticker").stdout.splitlines()) <= frozen + 1
    assert barque(store, "pause", "ticker", check=False).returncode == 1
    barque(store, "unpause", "ticker")
    _until(lambda: len(barque(store, "logs", "ticker").stdout.splitlines()) > frozen + 3,
           what="ticks after unpause")

    barque(store, "restart", "-t", "1", "ticker")
    state = _inspect(store, "ticker")["State"]
    assert state["Running"] and state["Pid"] != first_pid
    barque(store, "pause", "ticker")
    barque(store, "rm", "-f", "ticker")  # a paused container is still removed
    assert _status(store, "ticker") == ""


def test_restart_keeps_an_rm_container_which_a_later_stop_removes(store, busybox) -> None:
    # As Docker: the restart's stop does not trigger --rm (its supervisor's cleanup sees the
    # restart), the volatile overlay's work dir can be mounted again, and --rm still holds for
    # the restarted container.
    barque(store, "run", "-d", "--rm", "--network", "none", "--name", "phoenix", busybox,
           "sleep", "100")
    first_pid = _inspect(store, "phoenix")["State"]["Pid"]
    for _ in range(3):
        barque(store, "restart", "-t", "0", "phoenix")
    time.sleep(1)  # the old supervisors' exit commands have run by now
    state = _inspect(store, "phoenix")["State"]
    assert state["Running"] and state["Pid"] != first_pid
    assert not list((store / "containers").glob("*/restarting"))
    barque(store, "stop", "-t", "0", "phoenix")
    _until(lambda: _status(store, "phoenix") == "", what="the --rm container removed")


def test_stop_signal(store, busybox) -> None:
    barque(store, "run", "-d", "--network", "none", "--name", "polite", "--stop-signal", "USR1",
           busybox, "sh", "-c", "trap 'echo got usr1; exit 5' USR1; "
           "while true; do sleep 0.05; done")
    assert _inspect(store, "polite")["Config"]["StopSignal"] == "USR1"
    time.sleep(0.3)
    barque(store, "stop", "polite")
    state = _inspect(store, "polite")["State"]
    assert state["ExitCode"] == 5
    assert "got usr1" in barque(store, "logs", "polite").stdout
    barque(store, "rm", "polite")


def test_killed_behind_our_back(store, busybox) -> None:
    cid = barque(store, "run", "-d", "--network", "none", busybox, "sleep", "100").stdout.strip()
    os.kill(_inspect(store, cid)["State"]["Pid"], signal.SIGKILL)
    _until(lambda: _status_by_id(store, cid).startswith("Exited (137)"), what="exited (137)")
    barque(store, "rm", cid)

    # Supervisor and container both killed: the books still show it exited, not running.
    cid = barque(store, "run", "-d", "--network", "none", busybox, "sleep", "100").stdout.strip()
    pid = _inspect(store, cid)["State"]["Pid"]
    shim = int((_run_state(store, cid) / "shim.pid").read_text())
    os.kill(shim, signal.SIGKILL)
    os.kill(pid, signal.SIGKILL)
    _until(lambda: not Path(f"/proc/{pid}").exists(), what="the container process to go")
    state = _inspect(store, cid)["State"]
    assert state["Status"] == "exited" and not state["Running"]
    barque(store, "rm", cid)


def _status_by_id(root: Path, cid: str) -> str:
    for line in barque(root, "ps", "-a", "--no-trunc", "--format", "json").stdout.splitlines():
        row = json.loads(line)
        if row["ID"] == cid:
            return row["Status"]
    return ""


def _run_state(root: Path, cid: str) -> Path:
    from barque.store.paths import StorePaths

    return StorePaths(root).run_state(cid)


def test_init_is_pid_1_and_passes_exit_codes(store, busybox) -> None:
    _need("barque-init")
    out = barque(store, "run", "--rm", "--network", "none", "--init", busybox, "sh", "-c",
                 "tr '\\0' ' ' < /proc/1/cmdline; echo; echo $$")
    cmdline, pid = out.stdout.splitlines()
    assert cmdline.startswith("/dev/init -- sh -c") and pid != "1"
    assert barque(store, "run", "--rm", "--network", "none", "--init", busybox,
                  "sh", "-c", "exit 7", check=False).returncode == 7
    # SIGTERM to a container under --init reaches the command (sh as PID 1 would ignore it).
    barque(store, "run", "-d", "--network", "none", "--init", "--name", "inited", busybox,
           "sleep", "100")
    started = time.monotonic()
    barque(store, "stop", "-t", "20", "inited")
    assert time.monotonic() - started < 10
    assert _inspect(store, "inited")["State"]["ExitCode"] == 143
    barque(store, "rm", "inited")


def test_it_runs_a_shell_on_a_real_terminal(store, busybox) -> None:
    term = Terminal(store, "run", "-it", "--rm", "--network", "none", busybox, "sh")
    term.read_until(b"# ")
    term.write(b"stty size; tty; echo $((6*7))\r")
    seen = term.read_until(b"42")
    assert b"33 101" in seen and b"/dev/pts/0" in seen
    term.write(b"exit 3\r")
    assert term.exit_code() == 3
    # --rm: gone once the command has returned
    assert barque(store, "ps", "-a", "-q").stdout == ""
    # The size is there before the program's first instruction, not sent after it started.
    term = Terminal(store, "run", "-t", "--rm", "--network", "none", busybox, "stty", "size",
                     rows=44, cols=55)
    term.read_until(b"44 55")
    assert term.exit_code() == 0


def test_it_without_a_terminal_is_refused(store, busybox) -> None:
    before = barque(store, "ps", "-a", "-q").stdout
    proc = subprocess.run([*cli(), "--root", str(store), "run", "-it",
                           "--network", "none", busybox, "sh"], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 125 and proc.stderr == "Error: the input device is not a TTY\n"
    assert barque(store, "ps", "-a", "-q").stdout == before  # nothing created


def test_it_detach_keys_leave_it_running(store, busybox) -> None:
    term = Terminal(store, "run", "-it", "--name", "lingerer", "--network", "none", busybox,
                     "sh")
    term.read_until(b"# ")
    term.write(b"echo still-here > /tmp/mark\r")
    term.read_until(b"# ", timeout=5)
    term.write(b"\x10\x11")
    assert term.exit_code() == 0
    assert _status(store, "lingerer").startswith("Up ")
    assert "still-here" in barque(store, "logs", "lingerer").stdout  # the tty's echo, logged
    barque(store, "rm", "-f", "lingerer")


def test_python_api_detached_context_manager(store, busybox) -> None:
    from barque.containers import CreateOptions
    from barque.engine import Engine
    from barque.runtime.spec import RunOptions

    engine = Engine(root=store)
    with engine.containers.run(busybox, ["sh", "-c", "echo api; echo oops >&2; exit 4"],
                               options=RunOptions(network="none"), detach=True,
                               create=CreateOptions(name="api")) as container:
        assert container.wait() == 4
        assert container.logs() == b"api\noops\n"
        assert container.logs(stderr=False) == b"api\n"
        assert container.reload().status == "exited"
    assert all(c.name != "api" for c in engine.containers.list(all=True))


def test_exec_joins_the_running_container(store, busybox) -> None:
    barque(store, "run", "-d", "--network", "none", "--name", "host1", "-h", "inside",
           "-e", "COLOR=red", busybox, "sleep", "100")
    out = barque(store, "exec", "-e", "SHAPE=round", "-w", "/tmp", "host1", "sh", "-c",
                 "echo $COLOR $SHAPE; hostname; pwd; cat /proc/1/cmdline | tr '\\0' ' '; echo;"
                 "grep -E '^(CapEff|Seccomp):' /proc/self/status").stdout.splitlines()
    assert out[:4] == ["red round", "inside", "/tmp", "sleep 100 "]
    status = dict(line.split(":\t") for line in out[4:])
    assert status == {"CapEff": "00000000a80425fb", "Seccomp": "2"}
    assert barque(store, "exec", "-u", "nobody", "host1", "id", "-u").stdout == "65534\n"
    assert barque(store, "exec", "host1", "sh", "-c", "exit 9", check=False).returncode == 9
    missing = barque(store, "exec", "host1", "/no/such", check=False)
    assert missing.returncode == 127 and "/no/such" in missing.stderr
    fed = subprocess.run([*cli(), "--root", str(store), "exec", "-i",
                          "host1", "cat"], input="piped\n", capture_output=True, text=True,
                         timeout=30)
    assert fed.stdout == "piped\n"
    term = Terminal(store, "exec", "-it", "host1", "sh", rows=21, cols=77)
    term.read_until(b"# ")
    term.write(b"stty size; tty\r")
    term.read_until(b"21 77")
    term.write(b"exit 4\r")
    assert term.exit_code() == 4
    barque(store, "exec", "-d", "host1", "sh", "-c", "echo detached > /tmp/d")
    _until(lambda: barque(store, "exec", "host1", "cat", "/tmp/d", check=False).stdout
           == "detached\n", what="the detached exec")
    barque(store, "stop", "-t", "0", "host1")
    stopped = barque(store, "exec", "host1", "true", check=False)
    assert stopped.returncode == 1 and "is not running" in stopped.stderr
    barque(store, "rm", "host1")


def test_a_container_gone_before_its_start_is_booked_shows_as_exited(store, busybox) -> None:
    # `true` may exit before `run -d` records its process start time: the books must still
    # come out as exited, never as a ghost that is "Up" forever.
    ids = [barque(store, "run", "-d", "--network", "none", busybox, "true").stdout.strip()
           for _ in range(5)]
    for cid in ids:
        _until(lambda: _status_by_id(store, cid).startswith("Exited (0)"),
               what=f"{cid[:12]} to show as exited")
        barque(store, "rm", cid)


def test_a_command_that_cannot_start_is_recorded_as_docker_does(store, busybox) -> None:
    # Docker: run -d prints the start error and exits 127 (126), prints no ID, and the
    # container stays Created with State.Error and that ExitCode; never "Exited ... 56 years
    # ago" from an unset FinishedAt.
    cases = (("nope-d", ["nope"], 127, 'exec: "nope": executable file not found in $PATH'),
             ("notexec-d", ["/etc/passwd"], 126, "exec /etc/passwd: permission denied"))
    for name, command, code, error in cases:
        proc = barque(store, "run", "-d", "--network", "none", "--name", name, busybox,
                      *command, check=False)
        assert (proc.returncode, proc.stdout) == (code, "")
        assert proc.stderr.splitlines() == [f"Error: {error}"]
        state = _inspect(store, name)["State"]
        assert (state["Status"], state["Running"], state["ExitCode"], state["Error"]) == \
            ("created", False, code, error)
        assert state["StartedAt"] == state["FinishedAt"] == "0001-01-01T00:00:00Z"
        assert _status(store, name) == "Created"
        again = barque(store, "start", name, check=False)
        assert again.returncode == code and error in again.stderr
        assert _inspect(store, name)["State"]["Status"] == "created"
        barque(store, "rm", name)

    term = Terminal(store, "run", "-it", "--network", "none", "--name", "nope-it", busybox,
                     "nope")
    assert term.exit_code() == 127
    assert b'exec: "nope": executable file not found' in term.seen
    state = _inspect(store, "nope-it")["State"]
    assert (state["Status"], state["ExitCode"]) == ("created", 127)
    barque(store, "rm", "nope-it")
