"""``system df``, ``system prune`` and ``image prune`` on a real store with real containers and
volumes: partial downloads failed pulls left are counted and reclaimed, those a live pull is
writing are not."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from barque.store.locks import file_lock
from barque.store.paths import StorePaths
from helpers import barque, cli

pytestmark = pytest.mark.registry
needs_root = pytest.mark.skipif(os.geteuid() != 0,
                                reason="containers need root (namespaces, mounts)")

#: Digests no image has: stand-ins for the blobs of pulls that failed.
STALE = "sha256:" + "a" * 64
LIVE = "sha256:" + "b" * 64


@pytest.fixture
def root(tmp_path, fixture_images) -> Path:  # type: ignore[no-untyped-def]
    root = tmp_path / "root"
    barque(root, "pull", "-q", fixture_images["busybox"].ref)
    return root


def _partial(root: Path, digest: str, size: int) -> Path:
    path = StorePaths(root).partial(digest)
    path.write_bytes(os.urandom(size))
    return path


def _df(root: Path) -> dict[str, list[str]]:
    lines = barque(root, "system", "df").stdout.splitlines()
    assert lines[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    rows = {}
    for line in lines[1:]:
        kind = "Local Volumes" if line.startswith("Local Volumes") else \
            "Build Cache" if line.startswith("Build Cache") else line.split()[0]
        rows[kind] = line[len(kind):].split(None, 3)
    return rows


def test_image_prune_reclaims_stale_partials_but_not_a_live_pulls(root) -> None:
    stale = _partial(root, STALE, 3_000_000)
    live = _partial(root, LIVE, 1_000_000)
    # Held as the pull writing it holds it (the CLI below is another process).
    with file_lock(StorePaths(root).blob_lock(LIVE)):
        out = barque(root, "image", "prune", "-f").stdout
    assert out == "Total reclaimed space: 3MB\n"
    assert not stale.exists() and live.exists()
    assert len(barque(root, "images", "-q").stdout.split()) == 1  # tagged: not dangling


@needs_root
def test_system_df_counts_images_containers_volumes_and_partials(root, fixture_images) -> None:
    ref = fixture_images["busybox"].ref
    barque(root, "create", "--network", "none", "-v", "/data", ref, "true")
    barque(root, "volume", "create", "spare")
    (StorePaths(root).volume_data("spare") / "f").write_bytes(bytes(5000))
    _partial(root, STALE, 2_000_000)
    rows = _df(root)
    # The image a container uses is needed; the failed pull's partial is not.
    assert rows["Images"][:2] == ["1", "1"]
    assert rows["Images"][3].startswith("2MB (")
    size, reclaimable = rows["Containers"][2:]
    assert rows["Containers"][:2] == ["1", "0"]  # a stopped container's layer is reclaimable
    assert reclaimable == f"{size} (100%)" if size != "0B" else reclaimable == "0B"
    assert rows["Local Volumes"][:3] == ["2", "1", "5kB"]
    assert rows["Local Volumes"][3] == "5kB (100%)"
    assert rows["Build Cache"] == ["0", "0", "0B", "0B"]


@needs_root
def test_system_prune_asks_then_removes_what_is_unused(root, fixture_images) -> None:
    ref = fixture_images["busybox"].ref
    cid = barque(root, "create", "--network", "none", "-v", "/data", ref, "true").stdout.strip()
    stale = _partial(root, STALE, 1_000_000)

    asked = subprocess.run([*cli(), "--root", str(root), "system", "prune", "--volumes"],
                           input="n\n", capture_output=True, text=True, check=True)
    assert asked.stdout.startswith(
        "WARNING! This will remove:\n  - all stopped containers\n"
        "  - all anonymous volumes not used by at least one container\n"
        "  - all dangling images\n")
    assert "Are you sure you want to continue? [y/N]" in asked.stdout
    assert stale.exists() and cid in barque(root, "ps", "-aq", "--no-trunc").stdout

    out = barque(root, "system", "prune", "-f", "--volumes").stdout
    assert out.startswith(f"Deleted Containers:\n{cid}\n\nDeleted Volumes:\n")
    assert out.splitlines()[-1].startswith("Total reclaimed space: 1")  # 1MB and a bit
    assert not stale.exists()
    assert barque(root, "ps", "-aq").stdout == ""
    assert barque(root, "volume", "ls", "-q").stdout == ""
    image_id = barque(root, "images", "-q").stdout.split()
    assert len(image_id) == 1  # tagged: only -a takes it

    out = barque(root, "system", "prune", "-a", "-f").stdout
    assert out.startswith(f"Deleted Images:\nuntagged: {ref}\n")
    assert barque(root, "images", "-q").stdout == ""
