"""The store's own guarantees: layout and permissions, atomic blobs, concurrent writers."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
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
