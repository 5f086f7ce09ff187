"""Restart policies kept by ``barque daemon`` and live restore, through the real docker CLI:
on-failure's count, always's comeback and a stop that is final, the policies a starting
daemon applies, and containers that outlive the daemon and are driven by the next one."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from daemon_helpers import BUSYBOX, DAEMON_MARKS, Daemon, daemon_with_busybox, start_daemon
from helpers import barque

pytestmark = DAEMON_MARKS


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    yield from daemon_with_busybox(tmp_path_factory)


def state(daemon: Daemon, name: str) -> dict[str, Any]:
    document = json.loads(daemon.docker("inspect", name).stdout)[0]
    return {"RestartCount": document["RestartCount"], **document["State"]}


def eventually(daemon: Daemon, name: str, wanted: Callable[[dict[str, Any]], bool],
               timeout: float = 60) -> dict[str, Any]:
    """The container's state once ``wanted`` holds (polled, with a generous deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        current = state(daemon, name)
        if wanted(current):
            return current
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} never got there; last state {current}\n"
                                 + daemon.log.read_text()[-2000:])
        time.sleep(0.05)


def test_on_failure_restarts_up_to_its_maximum_then_stays_exited(daemon: Daemon) -> None:
    daemon.docker("run", "-d", "--name", "fails", "--restart", "on-failure:2", BUSYBOX,
                  "sh", "-c", "echo ran; exit 1")
    try:
        final = eventually(daemon, "fails", lambda s: s["RestartCount"] == 2
                           and s["Status"] == "exited")
        assert (final["ExitCode"], final["Restarting"], final["Running"]) == (1, False, False)
        assert daemon.docker("logs", "fails").stdout == "ran\n" * 3
        assert daemon.docker("inspect", "-f", "{{.HostConfig.RestartPolicy.Name}}:"
                             "{{.HostConfig.RestartPolicy.MaximumRetryCount}}",
                             "fails").stdout == "on-failure:2\n"
    finally:
        daemon.docker("rm", "-f", "fails", check=False)


def test_always_comes_back_until_docker_stop_which_is_final(daemon: Daemon) -> None:
    daemon.docker("run", "-d", "--name", "comeback", "--restart", "always", BUSYBOX,
                  "sh", "-c", "exit 3")
    try:
        seen = eventually(daemon, "comeback", lambda s: s["RestartCount"] >= 3)
        assert seen["Status"] in ("restarting", "running", "exited")
        daemon.docker("stop", "comeback")
        stopped = eventually(daemon, "comeback", lambda s: s["Status"] == "exited")
        assert not stopped["Restarting"]
        # Longer than the back-off reached so far (0.1+0.2+0.4+0.8 s): a restart still
        # pending or a late exit notice would show in this window.
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            assert state(daemon, "comeback")["RestartCount"] == stopped["RestartCount"]
            time.sleep(0.2)
        assert state(daemon, "comeback")["Status"] == "exited"
        # A user's start begins afresh, as Docker's does.
        daemon.docker("start", "comeback")
        assert eventually(daemon, "comeback", lambda s: s["RestartCount"] >= 1)
        daemon.docker("kill", "comeback", check=False)  # may be between runs: not running
        daemon.docker("stop", "comeback")
    finally:
        daemon.docker("rm", "-f", "comeback", check=False)


def test_a_restart_policy_with_rm_is_dockers_conflict(daemon: Daemon) -> None:
    proc = daemon.docker("run", "-d", "--rm", "--restart", "always", BUSYBOX, "true",
                         check=False)
    assert proc.returncode == 125
    assert "conflicting options: cannot specify both --restart and --rm" in proc.stderr
    status, _, body = daemon.request(
        b"POST /v1.47/containers/create HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
            len(payload := json.dumps({"Image": BUSYBOX, "HostConfig": {
                "AutoRemove": True, "RestartPolicy": {"Name": "always"}}}).encode()),
            payload))
    assert (status, json.loads(body)) == (
        400, {"message": "can't create 'AutoRemove' container with restart policy"})
    proc = daemon.docker("run", "-d", "--restart", "sometimes", BUSYBOX, "true", check=False)
    assert proc.returncode == 125
    assert "invalid restart policy: unknown policy 'sometimes'" in proc.stderr


def test_the_cli_records_the_policy_and_the_daemon_applies_it(daemon: Daemon) -> None:
    proc = barque(daemon.root, "run", "-d", "--network", "none", "--name", "from-cli",
                  "--restart", "on-failure:1", BUSYBOX, "sh", "-c", "exit 2")
    try:
        assert "WARNING" not in proc.stderr  # a daemon watches this store
        final = eventually(daemon, "from-cli", lambda s: s["RestartCount"] == 1
                           and s["Status"] == "exited")
        assert final["ExitCode"] == 2
    finally:
        daemon.docker("rm", "-f", "from-cli", check=False)


def test_a_starting_daemon_brings_back_always_but_not_unless_stopped_stopped_by_hand(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    generator = daemon_with_busybox(tmp_path_factory)
    first = next(generator)
    second = None
    try:
        for name, policy in [("always-one", "always"), ("unless-one", "unless-stopped")]:
            first.docker("run", "-d", "--name", name, "--restart", policy, BUSYBOX,
                         "sleep", "1000")
            first.docker("stop", "-t", "1", name)
        first.stop()
        # Without a daemon the CLI keeps the policy and says who will apply it.
        proc = barque(first.root, "create", "--network", "none", "--restart", "always",
                      "--name", "later", BUSYBOX, "true")
        assert "WARNING: no barque daemon watches this store" in proc.stderr
        second = start_daemon(first.root)
        back = eventually(second, "always-one", lambda s: s["Status"] == "running")
        assert back["RestartCount"] == 0  # a daemon's start is a fresh start, as Docker's
        assert state(second, "unless-one")["Status"] == "exited"
        assert state(second, "later")["Status"] == "created"
        second.docker("stop", "-t", "1", "always-one")
    finally:
        if second is not None:
            second.stop()
            second.remove_directory()
        with pytest.raises(StopIteration):
            next(generator)  # the fixture's teardown: removes what is left


def test_live_restore_containers_outlive_the_daemon_and_the_next_one_drives_them(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    generator = daemon_with_busybox(tmp_path_factory)
    first = next(generator)
    second = None
    try:
        first.docker("run", "-d", "--name", "survivor", BUSYBOX, "sh", "-c",
                     "echo before; while [ ! -e /go ]; do sleep 0.05; done; echo after")
        first.docker("run", "-d", "--name", "sleeper", BUSYBOX, "sleep", "1000")
        eventually(first, "survivor", lambda s: s["Status"] == "running")
        pids = {name: state(first, name)["Pid"] for name in ("survivor", "sleeper")}
        assert first.stop() == 0
        # Without a daemon, still running: their supervisors are their own processes.
        listed = barque(first.root, "ps", "--format", "{{.Names}} {{.Status}}").stdout
        assert sorted(line.split()[0] for line in listed.splitlines()) == ["sleeper",
                                                                           "survivor"]
        second = start_daemon(first.root)
        assert sorted(second.docker("ps", "--format", "{{.Names}}").stdout.split()) == [
            "sleeper", "survivor"]
        assert {name: state(second, name)["Pid"] for name in pids} == pids
        assert barque(second.root, "exec", "survivor", "touch", "/go").returncode == 0
        assert second.docker("logs", "-f", "survivor").stdout == "before\nafter\n"
        assert second.docker("wait", "survivor").stdout == "0\n"
        second.docker("stop", "-t", "1", "sleeper")
        assert state(second, "sleeper")["Status"] == "exited"
    finally:
        if second is not None:
            second.stop()
            second.remove_directory()
        with pytest.raises(StopIteration):
            next(generator)
