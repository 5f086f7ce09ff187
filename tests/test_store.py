"""The store's own guarantees: layout and permissions, atomic blobs, concurrent writers."""

from __future__ import annotations

import hashlib
import multiprocessing
import stat
from pathlib import Path

import pytest

from barque.digest import chain_ids
from barque.errors import DigestMismatchError, InvalidManifestError
from barque.humanize import human_duration, human_size
from barque.store import Store
from barque.store.metadata import LayerRecord, Metadata, NewImage


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_root_is_private_even_if_it_existed(tmp_path: Path) -> None:
    root = tmp_path / "store"
    root.mkdir(mode=0o755)
    Store(root).close()
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    for sub in ("blobs/sha256", "ingest", "snapshots", "locks", "tmp", "metadata.db"):
        assert (root / sub).exists(), sub


def test_blob_write_verifies_and_is_idempotent(tmp_path: Path) -> None:
    store = Store(tmp_path)
    data = b'{"hello": "world"}'
    path = store.content.write(_digest(data), data)
    assert path.read_bytes() == data
    assert store.content.write(_digest(data), data) == path
    with pytest.raises(DigestMismatchError):
        store.content.write(_digest(b"other"), data)
    assert not store.content.has(_digest(b"other"))
    assert list(store.paths.tmp.iterdir()) == []  # no temp files left behind


def test_digest_must_be_well_formed_before_naming_a_file(tmp_path: Path) -> None:
    store = Store(tmp_path)
    for bad in ("sha256:../../etc/passwd", "sha512:" + "a" * 128, "sha256:" + "A" * 64, ""):
        with pytest.raises(InvalidManifestError):
            store.paths.blob(bad)


def test_corrupt_blob_on_disk_is_not_trusted(tmp_path: Path) -> None:
    store = Store(tmp_path)
    data = b"layer config"
    path = store.content.write(_digest(data), data)
    path.write_bytes(b"tampered")
    with pytest.raises(DigestMismatchError):
        store.content.read(_digest(data))


def test_chain_ids_follow_the_oci_definition() -> None:
    a, b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    expected = "sha256:" + hashlib.sha256(f"{a} {b}".encode()).hexdigest()
    assert chain_ids([a, b]) == [a, expected]


def _tag_many(db_path: str, prefix: str, image_id: str, count: int) -> None:
    meta = Metadata(Path(db_path))
    for i in range(count):
        meta.tag(f"docker.io/library/{prefix}:{i}", image_id)
    meta.close()


def test_concurrent_processes_never_lose_a_tag(tmp_path: Path) -> None:
    store = Store(tmp_path)
    image_id = _digest(b"config")
    layer = LayerRecord(_digest(b"d"), _digest(b"d"), _digest(b"b"), "application/x", 1)
    store.metadata.add_image(NewImage(image_id, b"{}", _digest(b"m"), "m", b"m", "", 0, [layer]),
                             tags=[], digests=[])
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_tag_many, args=(str(store.paths.database), f"p{n}", image_id, 40))
             for n in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    record = store.metadata.get_image(image_id)
    assert record is not None and len(record.repo_tags) == 160


@pytest.mark.parametrize("seconds,text", [
    (0.2, "Less than a second"), (1, "1 second"), (59, "59 seconds"), (60, "About a minute"),
    (3599, "59 minutes"), (3600, "About an hour"), (47 * 3600, "47 hours"),
    (3 * 86400, "3 days"), (15 * 86400, "2 weeks"), (90 * 86400, "3 months"),
    (800 * 86400, "2 years"),
])
def test_human_duration_matches_docker(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


@pytest.mark.parametrize("size,text", [
    (0, "0B"), (999, "999B"), (1000, "1kB"), (4261000, "4.26MB"), (1982256, "1.98MB"),
    (175_000_000, "175MB"),
])
def test_human_size_matches_docker(size: int, text: str) -> None:
    assert human_size(size) == text


def _pending_image(store: Store, boot_id: str) -> tuple[str, Path, str]:
    """An image with one snapshot and one blob, recorded as a pull leaves them: not durable."""
    chain = _digest(b"diff")
    snapshot = store.snapshots.prepare(chain)
    (snapshot / "file").write_text("data")
    store.metadata.add_snapshot(chain, chain, 4, durable=False, boot_id=boot_id)
    snapshot.rename(store.paths.snapshot(chain))
    blob = b"layer-bytes"
    store.content.write(_digest(blob), blob)
    image_id = _digest(b"config-" + boot_id.encode())
    layer = LayerRecord(chain, chain, _digest(blob), "application/vnd.oci.image.layer.v1.tar", 11)
    store.metadata.add_image(NewImage(image_id, b"{}", _digest(b"m"), "m", b"m", "", 4, [layer]),
                             tags=["docker.io/library/x:latest"], digests=[], boot_id=boot_id)
    return image_id, store.paths.snapshot(chain), _digest(blob)


def test_pulls_left_undurable_by_a_power_loss_are_forgotten(tmp_path: Path) -> None:
    store = Store(tmp_path)
    image_id, snapshot, blob = _pending_image(store, boot_id="a-boot-before-the-crash")
    assert not store.snapshots.has("sha256:" + snapshot.name)  # another boot's: untrusted
    store.close()
    reopened = Store(tmp_path)  # as the first command after the reboot would
    assert reopened.metadata.get_image(image_id) is None
    assert not snapshot.exists() and not reopened.content.has(blob)
    assert reopened.metadata.snapshot_ids() == []


def test_this_boots_pulls_are_trusted_then_made_durable(tmp_path: Path) -> None:
    import sqlite3
    import time

    from barque.store.snapshots import current_boot_id

    store = Store(tmp_path)
    image_id, snapshot, blob = _pending_image(store, boot_id=current_boot_id())
    chain = "sha256:" + snapshot.name
    assert store.snapshots.has(chain)
    store.close()
    store = Store(tmp_path)  # too recent to settle: still pending, still visible
    assert store.metadata.get_image(image_id) is not None
    durable = sqlite3.connect(store.paths.database).execute(
        "SELECT durable FROM images WHERE id = ?", (image_id,)).fetchone()[0]
    assert durable == 0
    store.settle(now=time.time() + Store.SETTLE_AFTER + 1)
    db = sqlite3.connect(store.paths.database)
    assert db.execute("SELECT durable FROM images WHERE id = ?", (image_id,)).fetchone()[0] == 1
    assert db.execute("SELECT durable FROM snapshots WHERE chain_id = ?", (chain,)).fetchone()[0] == 1
    assert store.snapshots.has(chain) and store.content.has(blob)


def test_gc_collects_only_ownerless_staging_dirs(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    tmp = store.paths.tmp
    other = tmp / "cp-merged"  # another command's scratch (maybe a mount point): not ours
    other.mkdir()
    with store.staging("commit") as live:
        (live / "layer").write_bytes(b"x")
        with store.staging("import") as finished:
            pass
        assert not finished.exists()  # an operation cleans up after itself
        store.collect_garbage()
        assert live.is_dir() and (live / "layer").exists()
    assert not live.exists()
    # A process killed mid-operation: its directory stays, its flock dies with it.
    proc = multiprocessing.get_context("fork").Process(target=_stage_and_die,
                                                       args=(tmp_path / "store",))
    proc.start()
    proc.join()
    [left] = [p for p in tmp.iterdir() if p.name.startswith("load-")]
    store.collect_garbage()
    assert not left.exists() and other.is_dir()
    store.close()


def _stage_and_die(root: Path) -> None:
    import os

    store = Store(root)
    with store.staging("load"):
        os._exit(0)  # no cleanup, as after SIGKILL


def test_opening_the_store_waits_for_no_writer_and_adds_missing_tables(tmp_path) -> None:
    import sqlite3
    import threading

    path = tmp_path / "meta.db"
    Metadata(path).close()
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # another barque process in the middle of a write
    opened = threading.Event()

    def open_store() -> None:
        Metadata(path).close()
        opened.set()

    threading.Thread(target=open_store, daemon=True).start()
    assert opened.wait(5), "opening the store waited for another process's write"
    writer.execute("DROP TABLE volumes")  # a store made before that table existed
    writer.execute("PRAGMA user_version = 0")
    writer.execute("COMMIT")
    writer.close()
    meta = Metadata(path)
    assert meta.volumes() == []
    meta.close()


def _tree(top: Path, files: int) -> Path:
    (top / "upper" / "etc").mkdir(parents=True)
    (top / "work" / "work").mkdir(parents=True)
    (top / "work" / "work").chmod(0)  # as overlayfs leaves it
    for i in range(files):
        (top / "upper" / "etc" / f"f{i}").write_text("x")
    (top / "upper" / "link").symlink_to("/etc")
    return top


def _wait_empty(trash: Path) -> None:
    import time

    deadline = time.monotonic() + 30
    while list(trash.iterdir()):
        assert time.monotonic() < deadline, "the background rm did not finish"
        time.sleep(0.05)


def test_discard_tree_takes_a_tree_away_at_once_and_deletes_it_later(tmp_path: Path) -> None:
    from barque.store import snapshots

    trash = tmp_path / "trash"
    snapshots.discard_tree(_tree(tmp_path / "ctr", files=60), trash)
    assert not (tmp_path / "ctr").exists()  # out of the store at once
    assert len(list(trash.iterdir())) == 1  # its rm waits for a batch, or the exit
    snapshots.flush_discarded()
    _wait_empty(trash)
    assert Path("/etc/passwd").exists()  # the symlink was removed, not followed


def test_a_full_batch_of_discarded_trees_goes_to_rm_at_once(tmp_path: Path) -> None:
    from barque.store import snapshots

    trash = tmp_path / "trash"
    snapshots.flush_discarded()  # what earlier tests in this process left pending
    for i in range(snapshots.DISCARD_BATCH):
        snapshots.discard_tree(_tree(tmp_path / f"ctr{i}", files=3), trash)
    assert snapshots._pending == []
    _wait_empty(trash)


def test_a_process_that_exits_deletes_what_it_discarded(tmp_path: Path) -> None:
    import subprocess
    import sys

    trash = tmp_path / "trash"
    _tree(tmp_path / "ctr", files=3)
    subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; "
                    "from barque.store.snapshots import discard_tree; "
                    "discard_tree(Path(sys.argv[1]), Path(sys.argv[2]))",
                    str(tmp_path / "ctr"), str(trash)], check=True)
    _wait_empty(trash)
