"""The service API the CLI (and the Engine API daemon to come) calls: each operation one method
of ``engine.images`` or ``engine.containers``, reporting progress through a callback and
cancellable through an event, exercised against real containers."""

from __future__ import annotations

import http.server
import io
import os
import tarfile
import threading
import time
from pathlib import Path

import pytest

import barque
from barque.errors import (
    ConflictError,
    ContainerPathNotFoundError,
    ImageNotFoundError,
    OperationCancelledError,
)
from barque.runtime.spec import RunOptions
from helpers import SHARED, busybox_rootfs

BUSYBOX_TAR = SHARED / "fixtures" / "images" / "busybox-1.35.docker.tar"
IMAGE = "barque-fixtures/busybox:1.35"

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")
pytestmark = pytest.mark.skipif(not BUSYBOX_TAR.is_file(), reason="shared fixtures missing")


class Recorder:
    """A Progress that keeps what it hears and sets ``cancel`` at the first report with
    ``cancel_on`` as its status."""

    def __init__(self, cancel_on: str | None = None) -> None:
        self.messages: list[str] = []
        self.layers: list[tuple[str, str, int | None, int | None]] = []
        self.cancel = threading.Event()
        self.cancel_on = cancel_on

    def message(self, text: str) -> None:
        self.messages.append(text)

    def layer(self, layer_id: str, status: str, current: int | None = None,
              total: int | None = None) -> None:
        self.layers.append((layer_id, status, current, total))
        if status == self.cancel_on:
            self.cancel.set()

    def statuses(self) -> set[str]:
        return {status for _, status, _, _ in self.layers}


def store_state(engine: barque.Engine) -> dict[str, object]:
    """What a cancelled call must leave as it found it."""
    root = engine.root
    return {"images": sorted((i.id, tuple(i.tags)) for i in engine.images.list()),
            "blobs": sorted(os.listdir(root / "blobs" / "sha256")),
            "snapshots": sorted(os.listdir(root / "snapshots")),
            "tmp": sorted(os.listdir(root / "tmp"))}


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    with barque.Engine(root=tmp_path_factory.mktemp("api") / "root") as eng:
        with open(BUSYBOX_TAR, "rb") as f:
            assert eng.images.load(f) == [f"Loaded image: {IMAGE}"]
        yield eng


@pytest.fixture
def fresh(tmp_path: Path):  # type: ignore[no-untyped-def]
    with barque.Engine(root=tmp_path / "root") as eng:
        yield eng


def _detached(engine: barque.Engine, *command: str, **options: object) -> barque.Container:
    return engine.containers.run(IMAGE, list(command), options=RunOptions(
        network="none", **options), detach=True)  # type: ignore[arg-type]


# -- images: save, load, import --------------------------------------------------------------


def test_save_then_load_reports_layers_and_lines(engine, fresh) -> None:
    saving = Recorder()
    archive = io.BytesIO()
    engine.images.save([IMAGE], archive, progress=saving)
    image = engine.images.get(IMAGE)
    assert {layer_id for layer_id, status, _, _ in saving.layers if status == "Layer saved"} \
        == {layer.diff_id[7:19] for layer in image.layers}
    loading = Recorder()
    archive.seek(0)
    assert fresh.images.load(archive, progress=loading) == [f"Loaded image: {IMAGE}"]
    assert loading.messages == [f"Loaded image: {IMAGE}"]
    assert "Loading layer" in loading.statuses()
    assert fresh.images.inspect(IMAGE)["Id"] == image.id
    assert fresh.images.history(IMAGE)[0]["Id"] == image.id


def test_a_cancelled_load_leaves_nothing_behind(fresh) -> None:
    before = store_state(fresh)
    recorder = Recorder(cancel_on="Loading layer")
    with open(BUSYBOX_TAR, "rb") as f, pytest.raises(OperationCancelledError, match="load"):
        fresh.images.load(f, progress=recorder, cancel=recorder.cancel)
    assert store_state(fresh) == before
    with pytest.raises(ImageNotFoundError):
        fresh.images.get(IMAGE)
    with open(BUSYBOX_TAR, "rb") as f:  # and the next load is unaffected
        assert fresh.images.load(f) == [f"Loaded image: {IMAGE}"]


def test_a_cancelled_save_stops_writing(engine) -> None:
    recorder = Recorder(cancel_on="Saving layer")
    out = io.BytesIO()
    with pytest.raises(OperationCancelledError, match="save"):
        engine.images.save([IMAGE], out, progress=recorder, cancel=recorder.cancel)
    assert "Layer saved" not in recorder.statuses()


def _rootfs_tar(tmp_path: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(busybox_rootfs(tmp_path / "rootfs"), arcname=".")
    return buffer.getvalue()


def test_import_from_a_stream_and_from_a_url(fresh, tmp_path) -> None:
    data = _rootfs_tar(tmp_path)
    recorder = Recorder()
    from_stream = fresh.images.import_(io.BytesIO(data), "imported:stream", message="hi",
                                       progress=recorder)
    assert fresh.images.inspect("imported:stream")["Comment"] == "hi"
    assert {"Importing", "Imported"} <= recorder.statuses()

    class Tarball(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self.send_response(200 if self.path == "/rootfs.tar" else 404)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Tarball)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/rootfs.tar"
        from_url = fresh.images.import_(url, "imported:url")
        history = fresh.images.history("imported:url")
        assert history[0]["Comment"] == f"Imported from {url}"
        # The same tar: the same layer, whichever way it came.
        assert fresh.images.get(from_url).layers[0].diff_id == \
            fresh.images.get(from_stream).layers[0].diff_id
        from barque.errors import RegistryError

        with pytest.raises(RegistryError, match="HTTP 404"):
            fresh.images.import_(url + ".missing")
    finally:
        server.shutdown()


def test_a_cancelled_import_leaves_nothing_behind(fresh, tmp_path) -> None:
    data = _rootfs_tar(tmp_path)
    before = store_state(fresh)
    recorder = Recorder(cancel_on="Importing")
    with pytest.raises(OperationCancelledError, match="import"):
        fresh.images.import_(io.BytesIO(data), "never:there", progress=recorder,
                             cancel=recorder.cancel)
    assert store_state(fresh) == before


# -- containers: commit, diff, archives -------------------------------------------------------


@needs_root
def test_commit_and_diff_and_a_cancelled_commit(engine) -> None:
    container = engine.containers.create(IMAGE, ["sh", "-c", "echo new > /added && rm /bin/ls"],
                                         options=RunOptions(network="none"))
    with container:
        engine.containers.start(container.id)
        assert engine.containers.wait(container.id) == 0
        changes = {(c.kind, c.path) for c in engine.containers.diff(container.id)}
        assert {("A", "/added"), ("D", "/bin/ls"), ("C", "/bin")} <= changes

        before = store_state(engine)
        recorder = Recorder(cancel_on="Writing layer")
        with pytest.raises(OperationCancelledError, match="commit"):
            engine.containers.commit(container.id, "committed", "cancelled",
                                     progress=recorder, cancel=recorder.cancel)
        assert store_state(engine) == before

        recorder = Recorder()
        image_id = engine.containers.commit(container.id, "committed", "1", message="m",
                                            author="me", changes=['CMD ["cat", "/added"]'],
                                            progress=recorder)
        assert {"Writing layer", "Committed"} <= recorder.statuses()
        attrs = engine.images.inspect("committed:1")
        assert (attrs["Id"], attrs["Comment"], attrs["Author"]) == (image_id, "m", "me")
        assert attrs["Config"]["Cmd"] == ["cat", "/added"]
        assert len(attrs["RootFS"]["Layers"]) == len(engine.images.get(IMAGE).layers) + 1
    engine.images.remove("committed:1")


def _tar_of(directory: str, files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(directory)
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(info)
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(content), 0o640, 1_000_000_000
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


@needs_root
@pytest.mark.parametrize("running", [True, False], ids=["running", "stopped"])
def test_put_and_get_archive(engine, running) -> None:
    container = _detached(engine, "sleep", "1000") if running else \
        engine.containers.create(IMAGE, ["true"], options=RunOptions(network="none"))
    with container:
        engine.containers.put_archive(container.id, "/tmp", io.BytesIO(_tar_of(
            "dir", {"dir/file": b"payload"})))
        stream, stat = engine.containers.get_archive(container.id, "/tmp/dir")
        with stream:
            data = stream.read()
        assert (stat.name, stat.mode & 0o777, bool(stat.mode & (1 << 31))) == \
            ("dir", 0o755, True)
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            member = tar.getmember("dir/file")
            assert (member.mode, member.mtime) == (0o640, 1_000_000_000)
            reader = tar.extractfile(member)
            assert reader is not None and reader.read() == b"payload"
        stream, stat = engine.containers.get_archive(container.id, "/tmp/dir/file")
        with stream:
            assert len(b"".join(stream)) % 10240 == 0  # whole tar records, as tarfile writes
        assert (stat.size, stat.mode, stat.docker["name"]) == (7, 0o640, "file")
        with pytest.raises(ContainerPathNotFoundError):
            engine.containers.get_archive(container.id, "/no/such/path")


# -- containers: stats, attach, exec -t -------------------------------------------------------


@needs_root
def test_stats_of_a_running_container(engine) -> None:
    container = _detached(engine, "sh", "-c", "sleep 1000 & exec sleep 1001",
                          memory="64m", pids_limit=50)
    with container:
        deadline = time.monotonic() + 10
        stats = engine.containers.stats(container.id, interval=0.2)
        while stats["pids_stats"]["current"] < 2 and time.monotonic() < deadline:
            stats = engine.containers.stats(container.id, interval=0.2)
        assert stats["pids_stats"] == {"current": 2, "limit": 50}
        assert stats["memory_stats"]["usage"] > 0
        assert stats["memory_stats"]["limit"] == 64 << 20
        assert stats["cpu_stats"]["system_cpu_usage"] > stats["precpu_stats"][
            "system_cpu_usage"] > 0
        assert (stats["id"], stats["name"]) == (container.id, "/" + container.name)
        assert stats["read"] > stats["preread"]
        readings = engine.containers.stats(container.id, stream=True, interval=0)
        first, second = next(readings), next(readings)
        assert second["preread"] == first["read"]
        engine.containers.kill(container.id)
        engine.containers.wait(container.id)
        stopped = engine.containers.stats(container.id)
        assert stopped["memory_stats"] == {} and stopped["pids_stats"] == {}
        assert list(readings) == []


@needs_root
def test_attach_relays_stdin_and_output_and_returns_the_exit_code(engine) -> None:
    from barque.containers import CreateOptions

    container = engine.containers.create(
        IMAGE, ["sh", "-c", "echo ready; read line; echo got $line; exit 3"],
        options=RunOptions(network="none"), create=CreateOptions(open_stdin=True))
    with container:
        stdin_r, stdin_w = os.pipe()
        out_r, out_w = os.pipe()
        os.write(stdin_w, b"hello\n")
        os.close(stdin_w)
        with engine.containers.start_attached(container.id) as session:
            code = session.relay(stdin=True, tty=False, in_fd=stdin_r, out_fd=out_w,
                                 err_fd=out_w)
        os.close(out_w)
        with os.fdopen(out_r, "rb") as f:
            assert f.read() == b"ready\ngot hello\n"
        os.close(stdin_r)
        assert code == 3
        engine.containers.wait(container.id)
        with pytest.raises(ConflictError, match="stopped container"):
            engine.containers.attach(container.id)


@needs_root
def test_exec_with_a_tty_relays_its_own_pty(engine) -> None:
    import pty

    container = _detached(engine, "sleep", "1000")
    with container:
        master, slave = pty.openpty()
        try:
            code = engine.containers.exec(container.id, ["sh", "-c", "tty; exit 4"], tty=True,
                                          stdout=slave)
            os.close(slave)
            output = b""
            while True:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the slave side is closed and drained
                    break
                if not chunk:
                    break
                output += chunk
        finally:
            os.close(master)
        assert code == 4
        assert output.strip().startswith(b"/dev/pts/")


# -- registry: pull cancelled, search ---------------------------------------------------------


@pytest.mark.registry
def test_a_cancelled_pull_records_no_image_and_the_next_pull_works(settings, fixture_images,
                                                                   registry) -> None:
    fx = fixture_images["layers"]
    with barque.Engine(settings=settings) as eng:
        recorder = Recorder(cancel_on="Pulling fs layer")
        with pytest.raises(OperationCancelledError, match="pull"):
            eng.images.pull(fx.ref, progress=recorder, cancel=recorder.cancel)
        assert eng.images.list() == []
        assert eng.images.pull(fx.ref).tags == [fx.ref]
        found = [r.name for r in eng.images.search(f"{registry.host}/fixtures/lay")]
        assert f"{registry.host}/{fx.repository}" in found or fx.repository in found
        assert fx.tag in eng.images.list_tags(f"{registry.host}/{fx.repository}")


@pytest.mark.registry
def test_a_push_cancelled_before_the_manifest_tags_nothing(settings, fixture_images,
                                                           registry) -> None:
    fx = fixture_images["layers"]
    target = registry.ref("api/cancelled-push:1")
    with barque.Engine(settings=settings) as eng:
        eng.images.pull(fx.ref)
        eng.images.tag(fx.ref, target)
        recorder = Recorder(cancel_on="Preparing")
        with pytest.raises(OperationCancelledError, match="push"):
            eng.images.push(target, progress=recorder, cancel=recorder.cancel)
        from registry_server import skopeo_inspect

        with pytest.raises(RuntimeError, match="failed"):
            skopeo_inspect(target, "--raw")  # no manifest went, so no tag
        assert eng.images.push(target).digest == fx.digest  # and the next push works
        assert skopeo_inspect(target, "--raw") == fx.raw


@needs_root
def test_stats_no_stream_prints_dockers_columns(engine) -> None:
    from helpers import barque as barque_cli

    container = _detached(engine, "sleep", "1000", memory="32m")
    with container:
        out = barque_cli(engine.root, "stats", "--no-stream", container.name).stdout
        header, row = out.splitlines()
        # Docker's tabwriter columns: each cell padded to its column's width plus 3.
        assert [cell.strip() for cell in header.split("   ") if cell.strip()] == [
            "CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O",
            "BLOCK I/O", "PIDS"]
        starts = [header.index(title) for title in ("NAME", "MEM USAGE / LIMIT", "PIDS")]
        assert row[:12] == container.short_id
        assert row[starts[0]:].startswith(container.name + " ")
        usage = row[starts[1]:].split("   ")[0]
        assert usage.endswith(" / 32MiB") and not usage.startswith("0B")
        assert row[starts[2]:] == "1"
