"""The daemon's image endpoints driven by the real docker CLI 28 (and raw HTTP where the CLI
hides the answer), against real docker-registry servers fed by skopeo: tag, history, save
and load, push and pull back elsewhere, search, import, commit, login with X-Registry-Auth,
prune, and Docker's errors for bad input."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from barque.api.http import MAX_BODY
from daemon_helpers import BUSYBOX, DAEMON_MARKS, Daemon, daemon_with_busybox, start_daemon
from helpers import barque

pytestmark = [*DAEMON_MARKS, pytest.mark.registry]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    yield from daemon_with_busybox(tmp_path_factory)


@pytest.fixture(scope="module")
def other(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A second daemon over an empty store: where a saved or pushed image arrives."""
    running = start_daemon(tmp_path_factory.mktemp("other") / "root")
    try:
        yield running
    finally:
        running.stop()
        running.remove_directory()


def _image_id(daemon: Daemon, name: str) -> str:
    return daemon.docker("image", "inspect", "--format", "{{.Id}}", name).stdout.strip()


def _names(daemon: Daemon) -> set[str]:
    return set(daemon.docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split())


def _names_filtered(daemon: Daemon, condition: str) -> set[str]:
    return set(daemon.docker("images", "--filter", condition, "--format",
                             "{{.Repository}}:{{.Tag}}").stdout.split())


def _failure(proc: subprocess.CompletedProcess[str]) -> str:
    """The docker CLI's one error line for a refused request."""
    assert proc.returncode != 0, proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def _docker_with_input(daemon: Daemon, *args: str, stdin: bytes = b""
                       ) -> subprocess.CompletedProcess[bytes]:
    """The docker CLI reading ``stdin`` (an import's tarball, a password; empty, so a
    refused pull's login prompt ends at once)."""
    return subprocess.run(["/usr/local/bin/docker", *args], input=stdin, capture_output=True,
                          timeout=120, env={"DOCKER_HOST": f"unix://{daemon.socket}",
                                            "DOCKER_CONFIG": str(daemon.docker_config)})


def _rootfs_tar(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    return path


def _busybox_rootfs(daemon: Daemon, tmp_path: Path, files: dict[str, bytes]) -> Path:
    """busybox's root filesystem (exported from a container) plus ``files``: something an
    imported image can run."""
    container = daemon.docker("create", BUSYBOX, "true").stdout.strip()
    try:
        exported = tmp_path / "rootfs.tar"
        barque(daemon.root, "export", "-o", str(exported), container)
    finally:
        daemon.docker("rm", container)
    with tarfile.open(exported, "a") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return exported


def test_tag_inspect_history_and_rmi(daemon: Daemon) -> None:
    busybox_id = _image_id(daemon, BUSYBOX)
    daemon.docker("tag", BUSYBOX, "mine/bb:v1")
    try:
        assert "mine/bb:v1" in _names(daemon)
        assert _image_id(daemon, "mine/bb:v1") == busybox_id
        rows = daemon.docker("history", "--no-trunc", "--format",
                             "{{.ID}}\t{{.CreatedBy}}\t{{.Size}}", "mine/bb:v1").stdout
        rows_list = rows.splitlines()
        assert rows_list[0].split("\t")[0] == busybox_id  # the newest entry is the image
        history = barque(daemon.root, "history", "--no-trunc", "--format",
                         "{{.CreatedBy}}", BUSYBOX).stdout.splitlines()
        assert [row.split("\t")[1] for row in rows_list] == history
    finally:
        removed = daemon.docker("rmi", "mine/bb:v1").stdout
    assert removed == "Untagged: mine/bb:v1\n"
    assert _image_id(daemon, BUSYBOX) == busybox_id  # its other tag keeps it


def test_tag_refusals_are_dockers(daemon: Daemon) -> None:
    assert _failure(daemon.docker("tag", "nope:1", "x:1", check=False)) == \
        "Error response from daemon: No such image: nope:1"
    # The CLI checks the name itself; the daemon refuses it too, for other clients.
    status, _, body = daemon.request(
        b"POST /v1.47/images/" + BUSYBOX.encode() + b"/tag?repo=Not-Lower&tag=x HTTP/1.1\r\n"
        b"Host: d\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
    assert status == 400
    assert json.loads(body)["message"] == ("invalid reference format: repository name "
                                           "(library/Not-Lower) must be lowercase")
    status, _, body = daemon.request(
        b"GET /v1.47/images/nope:1/history HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
    assert (status, json.loads(body)["message"]) == (404, "No such image: nope:1")


def test_save_and_load_round_trip_keep_the_id(daemon: Daemon, other: Daemon,
                                              tmp_path: Path) -> None:
    busybox_id = _image_id(daemon, BUSYBOX)
    archive = tmp_path / "busybox.tar"
    daemon.docker("save", "-o", str(archive), BUSYBOX)
    with tarfile.open(archive) as tar:
        assert "manifest.json" in tar.getnames()
    loaded = other.docker("load", "-i", str(archive))
    assert loaded.stdout == f"Loaded image: {BUSYBOX}\n"
    try:
        assert _image_id(other, BUSYBOX) == busybox_id
        # By ID, with several names (GET /images/get?names=...), to stdout.
        with open(tmp_path / "two.tar", "wb") as out:
            subprocess.run(["/usr/local/bin/docker", "save", busybox_id, BUSYBOX], stdout=out,
                           check=True, env={"DOCKER_HOST": f"unix://{daemon.socket}",
                                            "DOCKER_CONFIG": str(daemon.docker_config)})
        assert other.docker("load", "-q", "-i", str(tmp_path / "two.tar")).stdout == \
            f"Loaded image: {BUSYBOX}\n"
    finally:
        other.docker("rmi", BUSYBOX)
    missing = daemon.docker("save", "-o", str(tmp_path / "none.tar"), "nope:1", check=False)
    assert _failure(missing) == "Error response from daemon: No such image: nope:1"


def test_an_archive_larger_than_a_json_body_loads(daemon: Daemon, tmp_path: Path) -> None:
    """The server bounds JSON bodies at 16 MiB; a load's tarball streams past that."""
    rootfs = _rootfs_tar(tmp_path / "big.tar", {"noise": os.urandom(18 << 20)})
    image_id = daemon.docker("import", str(rootfs), "mine/big:1").stdout.strip()
    archive = tmp_path / "saved.tar"
    try:
        daemon.docker("save", "-o", str(archive), "mine/big:1")
        assert archive.stat().st_size > MAX_BODY
        daemon.docker("rmi", "mine/big:1")
        assert daemon.docker("load", "-i", str(archive)).stdout == "Loaded image: mine/big:1\n"
        assert _image_id(daemon, "mine/big:1") == image_id
    finally:
        daemon.docker("rmi", "mine/big:1", check=False)


def test_a_truncated_load_is_refused_and_loads_nothing(daemon: Daemon, other: Daemon,
                                                       tmp_path: Path) -> None:
    archive = tmp_path / "busybox.tar"
    daemon.docker("save", "-o", str(archive), BUSYBOX)
    data = archive.read_bytes()
    cut = tmp_path / "cut.tar"
    cut.write_bytes(data[:len(data) * 2 // 3])
    before = _names(other)
    line = _failure(other.docker("load", "-i", str(cut), check=False))
    assert line == ("Error response from daemon: archive is truncated or corrupt: unexpected "
                    "end of data")
    assert _names(other) == before
    scratch = other.root / "tmp"
    assert (list(scratch.iterdir()) if scratch.is_dir() else []) == []


def test_push_then_pull_back_on_another_daemon(daemon: Daemon, other: Daemon,
                                               registry) -> None:
    target = registry.ref("daemon/pushed:1")
    daemon.docker("tag", BUSYBOX, target)
    try:
        pushed = daemon.docker("push", target).stdout
        lines = pushed.splitlines()
        assert lines[0] == f"The push refers to repository [{target.rpartition(':')[0]}]"
        digest_line = lines[-1]
        assert digest_line.startswith("1: digest: sha256:") and " size: " in digest_line
        digest = digest_line.split()[2]
        # The raw stream ends as dockerd's does: the status line, then the aux object.
        status, _, body = daemon.request(
            b"POST /v1.47/images/" + target.rpartition(":")[0].encode() + b"/push?tag=1 "
            b"HTTP/1.1\r\nHost: d\r\nX-Registry-Auth: e30=\r\nConnection: close\r\n"
            b"Content-Length: 0\r\n\r\n")
        assert status == 200
        messages = [json.loads(line) for line in _dechunk(body).splitlines() if line]
        assert messages[-1]["aux"] == {"Tag": "1", "Digest": digest,
                                       "Size": int(digest_line.rpartition(" ")[2])}
        assert all(m.get("status") != "Pushed" for m in messages)  # a second push sends none
        other.docker("pull", target)
        try:
            assert _image_id(other, target) == _image_id(daemon, BUSYBOX)
            repo_digests = other.docker("image", "inspect", "--format",
                                        "{{json .RepoDigests}}", target).stdout
            assert digest in repo_digests
        finally:
            other.docker("rmi", target)
    finally:
        daemon.docker("rmi", target)


def test_push_all_tags_of_a_repository(daemon: Daemon, registry) -> None:
    repository = registry.ref("daemon/all-tags")
    for tag in ("a", "b"):
        daemon.docker("tag", BUSYBOX, f"{repository}:{tag}")
    try:
        lines = daemon.docker("push", "--all-tags", repository).stdout.splitlines()
        digests = [line for line in lines if ": digest: sha256:" in line]
        assert [line.partition(":")[0] for line in digests] == ["a", "b"]
    finally:
        daemon.docker("rmi", f"{repository}:a", f"{repository}:b")
    missing = daemon.docker("push", "--all-tags", repository, check=False)
    assert _failure(missing) == ("Error response from daemon: An image does not exist locally "
                                 f"with the tag: {repository}")


def _dechunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2:]
    return out


def test_a_refused_push_ends_its_stream_with_the_error(daemon: Daemon, auth_registry) -> None:
    target = auth_registry.ref("daemon/refused:1")
    daemon.docker("tag", BUSYBOX, target)
    try:
        proc = daemon.docker("push", target, check=False)
        assert proc.returncode == 1
        assert proc.stdout.startswith("The push refers to repository ")
        assert "unauthorized" in proc.stderr and proc.stderr.count("\n") == 1
        daemon.docker("tag", BUSYBOX, "127.0.0.1:1/daemon/nowhere:1")
        proc = daemon.docker("push", "127.0.0.1:1/daemon/nowhere:1", check=False)
        assert proc.returncode == 1
        assert proc.stdout.startswith("The push refers to repository [127.0.0.1:1/daemon/")
        assert proc.stderr == "cannot connect to registry 127.0.0.1:1: connection refused\n"
        missing = daemon.docker("push", auth_registry.ref("daemon/absent:1"), check=False)
        assert _failure(missing) == ("Error response from daemon: An image does not exist "
                                     f"locally with the tag: {auth_registry.ref('daemon/absent')}")
    finally:
        daemon.docker("rmi", target)
        daemon.docker("rmi", "127.0.0.1:1/daemon/nowhere:1", check=False)


def test_search_a_private_registry(daemon: Daemon, registry, fixture_images) -> None:
    found = daemon.docker("search", "--format", "{{.Name}}", f"{registry.host}/busybox").stdout
    assert f"{registry.host}/fixtures/busybox" in found.split()
    status, _, body = daemon.request(
        b"GET /v1.47/images/search?term=x&limit=500 HTTP/1.1\r\nHost: d\r\n"
        b"Connection: close\r\n\r\n")
    assert (status, json.loads(body)["message"]) == (400,
                                                     "limit 500 is outside the range of [1, 100]")


def test_import_runs_with_its_changes(daemon: Daemon, tmp_path: Path) -> None:
    rootfs = _busybox_rootfs(daemon, tmp_path, {"hello.txt": b"imported\n"})
    out = daemon.docker("import", "--change", 'CMD ["cat", "/hello.txt"]', "-m", "from a test",
                        str(rootfs), "mine/imported:1").stdout
    image_id = out.strip()
    try:
        assert image_id.startswith("sha256:") and image_id == _image_id(daemon,
                                                                        "mine/imported:1")
        ran = barque(daemon.root, "run", "--rm", "mine/imported:1")
        assert ran.stdout == "imported\n"
        comment = daemon.docker("history", "--format", "{{.Comment}}", "mine/imported:1")
        assert comment.stdout == "from a test\n"
        # From stdin (fromSrc=-), untagged.
        piped = _docker_with_input(daemon, "import", "-", stdin=rootfs.read_bytes())
        assert piped.returncode == 0, piped.stderr
        untagged = piped.stdout.decode().strip()
        assert untagged.startswith("sha256:") and untagged != image_id
        daemon.docker("rmi", untagged)
    finally:
        daemon.docker("rmi", "mine/imported:1")
    bad = daemon.docker("import", "--change", "RUN true", str(rootfs), "mine/bad:1",
                        check=False)
    assert _failure(bad).startswith("Error response from daemon: 'RUN' is not a valid change")


def test_commit_keeps_the_containers_change(daemon: Daemon) -> None:
    container = daemon.docker("run", "-d", BUSYBOX, "sh", "-c",
                              "echo committed > /marker").stdout.strip()
    try:
        assert daemon.docker("wait", container).stdout == "0\n"
        out = daemon.docker("commit", "-c", 'CMD ["cat", "/marker"]', "-m", "a commit",
                            "-a", "tester", container, "mine/committed:1").stdout.strip()
        assert out.startswith("sha256:") and out == _image_id(daemon, "mine/committed:1")
        assert barque(daemon.root, "run", "--rm", "mine/committed:1").stdout == "committed\n"
        author = daemon.docker("image", "inspect", "--format", "{{.Author}}",
                               "mine/committed:1").stdout
        assert author == "tester\n"
    finally:
        daemon.docker("rm", container)
        daemon.docker("rmi", "mine/committed:1", check=False)
    gone = daemon.docker("commit", container, "mine/never:1", check=False)
    assert _failure(gone) == f"Error response from daemon: No such container: {container}"


def test_commit_merges_a_config_body(daemon: Daemon) -> None:
    container = daemon.docker("create", BUSYBOX, "true").stdout.strip()
    config = json.dumps({"Env": ["GREETING=hello there"], "Labels": {"made": "by test"},
                         "Cmd": ["sh", "-c", "echo $GREETING"]}).encode()
    try:
        status, _, body = daemon.request(
            b"POST /v1.47/commit?container=" + container.encode() + b"&repo=mine/conf&tag=2 "
            b"HTTP/1.1\r\nHost: d\r\nConnection: close\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(config), config))
        assert status == 201, body
        assert json.loads(body)["Id"] == _image_id(daemon, "mine/conf:2")
        assert barque(daemon.root, "run", "--rm", "mine/conf:2").stdout == "hello there\n"
        labels = daemon.docker("image", "inspect", "--format", "{{json .Config.Labels}}",
                               "mine/conf:2").stdout
        assert json.loads(labels) == {"made": "by test"}
        daemon.docker("rmi", "mine/conf:2")
        refused = json.dumps({"Healthcheck": {"Test": ["NONE"]}}).encode()
        status, _, body = daemon.request(
            b"POST /v1.47/commit?container=" + container.encode() + b" HTTP/1.1\r\n"
            b"Host: d\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
            % (len(refused), refused))
        assert status == 400 and "'Healthcheck' is not supported" in json.loads(body)["message"]
    finally:
        daemon.docker("rm", container)


def test_login_then_pull_with_the_clients_credentials(daemon: Daemon, auth_registry) -> None:
    host, user, password = auth_registry.host, auth_registry.username, auth_registry.password
    image = auth_registry.image.ref
    # Refused as dockerd does, a 401 (on which the CLI would prompt for a login).
    status, message = _pull_status(daemon, image)
    assert status == 401 and message.startswith("unauthorized: "), message
    bad = _docker_with_input(daemon, "login", "-u", user, "--password-stdin", host,
                             stdin=b"not-the-password\n")
    assert bad.returncode == 1
    assert f'Error response from daemon: Get "http://{host}/v2/": unauthorized: '.encode() \
        in bad.stderr
    good = _docker_with_input(daemon, "login", "-u", user, "--password-stdin", host,
                              stdin=password.encode() + b"\n")
    assert good.returncode == 0, good.stderr
    assert good.stdout.rstrip().endswith(b"Login Succeeded")
    try:
        daemon.docker("pull", image)  # the CLI sends its login as X-Registry-Auth
        pushed = auth_registry.ref("daemon/pushed-with-login:1")
        daemon.docker("tag", BUSYBOX, pushed)
        try:
            assert " digest: sha256:" in daemon.docker("push", pushed).stdout
        finally:
            daemon.docker("rmi", pushed)
        digests = daemon.docker("image", "inspect", "--format", "{{json .RepoDigests}}",
                                image).stdout
        assert json.loads(digests) == [f"{image.rpartition(':')[0]}@"
                                       f"{auth_registry.image.digest}"]
    finally:
        daemon.docker("logout", host)
        daemon.docker("rmi", image)
    # The credentials served that request only: nothing of them in the store or the log.
    secret = password.encode()
    assert secret not in daemon.log.read_bytes()
    for path in daemon.root.rglob("*"):
        if path.is_file() and not path.is_symlink() and path.stat().st_size < 1 << 20:
            assert secret not in path.read_bytes(), path
    assert _pull_status(daemon, image)[0] == 401
    # Raw /auth: a server given as a URL (as the CLI names Docker Hub) is its host.
    for secret, expected in ((password, 200), ("wrong", 401)):
        login = json.dumps({"username": user, "password": secret,
                            "serveraddress": f"http://{host}/v1/"}).encode()
        status, _, body = daemon.request(
            b"POST /v1.47/auth HTTP/1.1\r\nHost: d\r\nConnection: close\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (len(login), login))
        assert status == expected, body
        if status == 200:
            assert json.loads(body) == {"IdentityToken": "", "Status": "Login Succeeded"}
    wrong = json.dumps({"username": user, "password": "wrong", "serveraddress": host})
    assert _pull_status(daemon, image, wrong.encode())[0] == 401
    status, message = _pull_status(daemon, image, b"not json")
    assert (status, message) == (400, "invalid X-Registry-Auth header: not base64url JSON")


def _pull_status(daemon: Daemon, image: str, auth: bytes | None = None) -> tuple[int, str]:
    """A raw pull's status and error message (the docker CLI prompts on a 401)."""
    header = b""
    if auth is not None:
        header = b"X-Registry-Auth: " + base64.urlsafe_b64encode(auth) + b"\r\n"
    status, _, body = daemon.request(
        b"POST /v1.47/images/create?fromImage=" + image.encode() + b" HTTP/1.1\r\nHost: d\r\n"
        + header + b"Connection: close\r\nContent-Length: 0\r\n\r\n")
    return status, json.loads(body)["message"] if status != 200 else ""


def test_prune_removes_dangling_images_and_honours_labels(daemon: Daemon,
                                                          tmp_path: Path) -> None:
    rootfs = _rootfs_tar(tmp_path / "tiny.tar", {"file": b"x" * 1000})
    dangling = daemon.docker("import", str(rootfs)).stdout.strip()
    labelled = daemon.docker("import", "--change", "LABEL prune=me", str(rootfs),
                             "mine/labelled:1").stdout.strip()
    kept = daemon.docker("import", str(rootfs), "mine/kept:1").stdout.strip()
    try:
        since = _names_filtered(daemon, f"since={BUSYBOX}")
        assert {"mine/labelled:1", "mine/kept:1"} <= since and BUSYBOX not in since
        before = _names_filtered(daemon, "before=mine/labelled:1")
        assert BUSYBOX in before and "mine/labelled:1" not in before
        pruned = daemon.docker("image", "prune", "-f").stdout
        assert f"deleted: {dangling}" in pruned and "Total reclaimed space:" in pruned
        assert labelled not in pruned and kept not in pruned
        pruned = daemon.docker("image", "prune", "-a", "-f", "--filter", "label=prune=me").stdout
        assert "untagged: mine/labelled:1" in pruned and f"deleted: {labelled}" in pruned
        names = _names(daemon)
        assert "mine/kept:1" in names and BUSYBOX in names and "mine/labelled:1" not in names
        assert daemon.docker("image", "prune", "-f").stdout == "Total reclaimed space: 0B\n"
        refused = daemon.docker("image", "prune", "-f", "--filter", "colour=red", check=False)
        assert _failure(refused) == "Error response from daemon: invalid filter 'colour'"
    finally:
        daemon.docker("rmi", "mine/kept:1")
