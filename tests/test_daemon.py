"""``barque daemon`` driven by the real docker CLI over its Unix socket: the Engine API as the
docker CLI (28.2) speaks it, against a store the barque CLI loaded (attach and ``docker run``
in the foreground: tests/test_daemon_attach.py)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any
from pathlib import Path

import pytest
from barque import __version__
from daemon_helpers import (BUSYBOX, DAEMON_MARKS, DOCKER, Daemon, daemon_with_busybox,
                            start_daemon)
from helpers import barque

pytestmark = DAEMON_MARKS


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    yield from daemon_with_busybox(tmp_path_factory)


def test_version_and_info_show_barque(daemon: Daemon) -> None:
    out = daemon.docker("version").stdout
    assert f"Server: barque {__version__}" in out
    assert "API version:      1.47 (minimum version 1.24)" in out
    assert daemon.docker("version", "--format", "{{.Server.Version}}").stdout.strip() \
        == __version__
    info = daemon.docker("info", "--format", "{{json .}}").stdout
    document = json.loads(info)
    assert document["ServerVersion"] == __version__
    assert document["Images"] == len(barque(daemon.root, "images", "-q").stdout.split())
    assert document["OSType"] == "linux"


def test_images_lists_and_inspects_what_the_cli_loaded(daemon: Daemon) -> None:
    listed = daemon.docker("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}").stdout
    image_id = barque(daemon.root, "inspect", "--format", "{{.Id}}", BUSYBOX).stdout.strip()
    assert listed.split() == [BUSYBOX, image_id[7:19]]
    table = daemon.docker("images", "barque-fixtures/busybox").stdout.splitlines()
    assert [row.split()[:3] for row in table[1:]] == [
        ["barque-fixtures/busybox", "1.35", image_id[7:19]]]
    assert daemon.docker("images", "-q", "nothing/like-it").stdout == ""
    inspected = json.loads(daemon.docker("inspect", BUSYBOX).stdout)
    assert [i["Id"] for i in inspected] == [image_id]
    assert inspected[0]["RepoTags"] == [BUSYBOX]


def test_an_unknown_image_is_dockers_404(daemon: Daemon) -> None:
    proc = daemon.docker("image", "inspect", "nosuch:1", check=False)
    assert proc.returncode == 1
    assert proc.stderr == "Error response from daemon: No such image: nosuch:1\n"


def test_create_start_wait_logs_rm(daemon: Daemon) -> None:
    created = daemon.docker("create", "--name", "lifecycle", BUSYBOX, "sh", "-c",
                            "echo out; echo err >&2; exit 3")
    container_id = created.stdout.strip()
    assert len(container_id) == 64 and set(container_id) <= set("0123456789abcdef")
    assert "no bridge network yet" in created.stderr  # create's Warnings, printed
    assert "lifecycle created" in daemon.docker(
        "ps", "-a", "--format", "{{.Names}} {{.State}}").stdout.splitlines()
    assert daemon.docker("start", "lifecycle").stdout.strip() == "lifecycle"
    assert daemon.docker("wait", "lifecycle").stdout.strip() == "3"
    logs = daemon.docker("logs", "lifecycle")  # multiplexed frames, split by the CLI
    assert (logs.stdout, logs.stderr) == ("out\n", "err\n")
    assert daemon.docker("ps", "-a", "--filter", "status=exited", "--format",
                         "{{.Names}} {{.Status}}").stdout.startswith("lifecycle Exited (3) ")
    assert daemon.docker("inspect", "-f", "{{.State.ExitCode}} {{.Name}}",
                         "lifecycle").stdout.strip() == "3 /lifecycle"
    # The same store: the barque CLI sees what the daemon made.
    assert barque(daemon.root, "ps", "-a", "--format", "{{.ID}}").stdout.strip() \
        == container_id[:12]
    assert daemon.docker("rm", "lifecycle").stdout.strip() == "lifecycle"
    assert daemon.docker("ps", "-aq").stdout == ""
    gone = daemon.docker("rm", "lifecycle", check=False)
    assert gone.returncode == 1
    assert gone.stderr == "Error response from daemon: No such container: lifecycle\n"


def test_run_detached_while_other_clients_are_served(daemon: Daemon) -> None:
    container_id = daemon.docker("run", "-d", BUSYBOX, "sh", "-c",
                                 "echo hello; sleep 60").stdout.strip()
    try:
        assert container_id[:12] in daemon.docker("ps", "-q").stdout.split()
        deadline = time.monotonic() + 10
        while daemon.docker("logs", container_id).stdout != "hello\n":
            assert time.monotonic() < deadline, "no log line"
            time.sleep(0.1)
        # A client blocked in `wait` holds no other: ps answers meanwhile.
        waiter = subprocess.Popen(
            [str(DOCKER), "wait", container_id], stdout=subprocess.PIPE, text=True,
            env={**os.environ, "DOCKER_HOST": f"unix://{daemon.socket}",
                 "DOCKER_CONFIG": str(daemon.docker_config)})
        time.sleep(0.5)
        started = time.monotonic()
        assert container_id[:12] in daemon.docker("ps", "-q").stdout.split()
        assert time.monotonic() - started < 5
        assert waiter.poll() is None
        daemon.docker("kill", container_id)
        out, _ = waiter.communicate(timeout=30)
        assert out.strip() == "137"
        again = daemon.docker("kill", container_id, check=False)
        assert again.returncode == 1
        assert again.stderr.strip() == (f"Error response from daemon: Container "
                                        f"{container_id} is not running")
        assert daemon.docker("stop", container_id).stdout.strip() == container_id  # 304
    finally:
        daemon.docker("rm", "-f", container_id, check=False)


def test_clients_that_leave_mid_wait_leave_the_daemon_serving(daemon: Daemon) -> None:
    container_id = daemon.docker("run", "-d", BUSYBOX, "sleep", "60").stdout.strip()
    try:
        request = (f"POST /v1.47/containers/{container_id}/wait HTTP/1.1\r\nHost: d\r\n"
                   "Content-Length: 0\r\n\r\n").encode()
        for _ in range(100):  # more than the daemon's threads
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(10)
                s.connect(str(daemon.socket))
                s.sendall(request)
                assert s.recv(65536).startswith(b"HTTP/1.1 200 ")  # headers at once
        time.sleep(0.5)  # each left thread ends within its 0.25 s step
        started = time.monotonic()
        assert container_id[:12] in daemon.docker("ps", "-q").stdout.split()
        assert time.monotonic() - started < 5
        waiter = subprocess.Popen(
            [str(DOCKER), "wait", container_id], stdout=subprocess.PIPE, text=True,
            env={**os.environ, "DOCKER_HOST": f"unix://{daemon.socket}",
                 "DOCKER_CONFIG": str(daemon.docker_config)})
        daemon.docker("kill", container_id)
        out, _ = waiter.communicate(timeout=30)
        assert out.strip() == "137"
    finally:
        daemon.docker("rm", "-f", container_id, check=False)


def test_logs_follow_until_the_container_exits(daemon: Daemon) -> None:
    container_id = daemon.docker("run", "-d", BUSYBOX, "sh", "-c",
                                 "echo first; sleep 1; echo second >&2").stdout.strip()
    try:
        followed = daemon.docker("logs", "-f", "-t", container_id, timeout=30)
        assert followed.stdout.endswith(" first\n") and followed.stderr.endswith(" second\n")
        assert followed.stdout[:4].isdigit()  # -t: each line starts with its RFC 3339 time
        assert daemon.docker("logs", "--tail", "1", container_id).stderr == "second\n"
    finally:
        daemon.docker("rm", "-f", container_id, check=False)


def test_stop_ends_a_running_container(daemon: Daemon) -> None:
    container_id = daemon.docker("run", "-d", BUSYBOX, "sh", "-c",
                                 "trap 'exit 7' TERM; while true; do sleep 0.1; done"
                                 ).stdout.strip()
    try:
        daemon.docker("stop", "-t", "5", container_id)
        assert daemon.docker("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}",
                             container_id).stdout.strip() == "exited 7"
    finally:
        daemon.docker("rm", "-f", container_id, check=False)


def test_volume_commands(daemon: Daemon) -> None:
    assert daemon.docker("volume", "create", "--label", "k=v", "data").stdout.strip() == "data"
    assert "data" in daemon.docker("volume", "ls", "-q").stdout.split()
    inspected = json.loads(daemon.docker("volume", "inspect", "data").stdout)
    assert [(v["Name"], v["Driver"], v["Labels"]) for v in inspected] == [
        ("data", "local", {"k": "v"})]
    assert Path(inspected[0]["Mountpoint"]).is_dir()
    assert daemon.docker("volume", "rm", "data").stdout.strip() == "data"
    gone = daemon.docker("volume", "rm", "data", check=False)
    assert gone.returncode == 1
    assert "No such volume: data" in gone.stderr


def test_bad_requests_get_one_line_errors(daemon: Daemon) -> None:
    body = b'{"Image": "x", '
    status, headers, answer = daemon.request(
        b"POST /v1.47/containers/create HTTP/1.1\r\nHost: d\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    assert status == 400
    message = json.loads(answer)["message"]
    assert message.startswith("invalid JSON for ContainerCreate: ") and "\n" not in message
    status, _, answer = daemon.request(b"GET /v1.47/no/such/thing HTTP/1.1\r\nHost: d\r\n"
                                       b"Connection: close\r\n\r\n")
    assert (status, json.loads(answer)) == (404, {"message": "page not found"})
    status, _, answer = daemon.request(
        b"POST /v1.47/volumes/create HTTP/1.1\r\nHost: d\r\nContent-Length: 999999999\r\n"
        b"\r\n{")
    assert status == 413 and "request body too large" in json.loads(answer)["message"]
    status, _, answer = daemon.request(b"POST /v1.47/containers/x/exec HTTP/1.1\r\n"
                                       b"Host: d\r\nContent-Length: 2\r\n"
                                       b"Connection: close\r\n\r\n{}")
    assert status == 501
    assert json.loads(answer)["message"].startswith("exec is not served by barque's daemon")
    status, _, answer = daemon.request(b"POST /v1.47/containers/x/attach?stream=1 HTTP/1.1\r\n"
                                       b"Host: d\r\nConnection: close\r\n\r\n")
    assert (status, json.loads(answer)) == (404, {"message": "No such container: x"})
    status, headers, answer = daemon.request(b"HEAD /_ping HTTP/1.1\r\nHost: d\r\n"
                                             b"Connection: close\r\n\r\n")
    assert status == 200 and answer == b""
    assert (headers["api-version"], headers["ostype"], headers["builder-version"]) == (
        "1.47", "linux", "1")


def test_two_hundred_clients_at_once_are_all_answered(daemon: Daemon) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def ps(_: int) -> tuple[int, object]:
        status, _, body = daemon.request(b"GET /v1.47/containers/json?all=1 HTTP/1.1\r\n"
                                         b"Host: d\r\nConnection: close\r\n\r\n")
        return status, json.loads(body)

    with ThreadPoolExecutor(max_workers=200) as pool:
        answers = list(pool.map(ps, range(200)))
    assert answers == [(200, answers[0][1])] * 200


def test_sigterm_stops_the_daemon_and_removes_its_socket(tmp_path: Path) -> None:
    second = start_daemon(tmp_path / "root")
    assert oct(second.socket.stat().st_mode & 0o777) == "0o660"
    assert second.docker("ps", "-q").stdout == ""
    rival = barque(tmp_path / "root", "daemon", "-H", f"unix://{second.socket}", check=False,
                   timeout=60)
    assert rival.returncode == 1
    assert rival.stderr == f"Error: {second.socket}: another daemon is listening there\n"
    assert second.stop() == 0
    assert not second.socket.exists()
    second.remove_directory()


def test_pull_streams_dockers_progress(daemon: Daemon, fixture_images: dict[str, Any],
                                       registry: Any) -> None:
    fx = fixture_images["busybox"]
    pulled = daemon.docker("pull", fx.ref, timeout=120)
    lines = pulled.stdout.splitlines()
    assert lines[0] == f"{fx.tag}: Pulling from {fx.repository}"
    layer = fx.manifest["layers"][0]["digest"][7:19]
    assert f"{layer}: Pull complete" in lines or f"{layer}: Already exists" in lines
    assert f"Digest: {fx.digest}" in lines
    assert lines[-2] == f"Status: Downloaded newer image for {fx.ref}"
    assert lines[-1] == fx.ref
    assert fx.ref in daemon.docker("images", "--format", "{{.Repository}}:{{.Tag}}"
                                   ).stdout.split()
    missing = daemon.docker("pull", f"{registry.host}/fixtures/nothing-here:1", check=False)
    assert missing.returncode == 1
    assert missing.stderr.startswith("Error response from daemon: ")
    assert len(missing.stderr.splitlines()) == 1
    removed = daemon.docker("rmi", fx.ref).stdout.splitlines()
    assert removed[0] == f"Untagged: {fx.ref}"
    assert fx.ref not in daemon.docker("images", "--format", "{{.Repository}}:{{.Tag}}"
                                       ).stdout.split()
