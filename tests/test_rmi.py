"""``rmi`` of an image that containers use, against real containers, with Docker's rules
(moby daemon/images/image_delete.go): a refusal changes nothing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from helpers import barque

pytestmark = [
    pytest.mark.registry,
    pytest.mark.skipif(os.geteuid() != 0, reason="containers need root (namespaces, mounts)"),
]


@pytest.fixture
def root(tmp_path, fixture_images) -> Path:  # type: ignore[no-untyped-def]
    root = tmp_path / "root"
    barque(root, "pull", "-q", fixture_images["busybox"].ref)
    return root


def _names(root: Path, image: str) -> tuple[list[str], list[str]]:
    attrs = json.loads(barque(root, "image", "inspect", image).stdout)[0]
    return attrs["RepoTags"], attrs["RepoDigests"]


def _image_id(root: Path, image: str) -> str:
    return json.loads(barque(root, "image", "inspect", image).stdout)[0]["Id"]


def test_last_tag_of_a_stopped_containers_image_is_refused_unchanged(root, fixture_images) -> None:
    ref = fixture_images["busybox"].ref
    image_id = _image_id(root, ref)
    cid = barque(root, "create", "--network", "none", ref, "true").stdout.strip()
    barque(root, "tag", ref, "mine/busybox:2")
    # One of several tags just goes, container or not (Docker untags it).
    assert barque(root, "rmi", "mine/busybox:2").stdout == "Untagged: mine/busybox:2\n"
    before = _names(root, image_id)

    refused = barque(root, "rmi", ref, check=False)
    assert refused.returncode == 1
    assert refused.stderr == (
        f'Error: conflict: unable to remove repository reference "{ref}" (must force) - '
        f"container {cid[:12]} is using its referenced image {image_id[7:19]}\n")
    assert refused.stdout == ""
    assert _names(root, image_id) == before  # the tag (and its digest) are still there


def test_rmi_by_id_names_the_running_container_and_cannot_be_forced(root, fixture_images) -> None:
    ref = fixture_images["busybox"].ref
    image_id = _image_id(root, ref)
    cid = barque(root, "run", "-d", "--network", "none", ref, "sleep", "600").stdout.strip()
    try:
        before = _names(root, image_id)
        for args in (["rmi", image_id[7:19]], ["rmi", "-f", image_id[7:19]]):
            refused = barque(root, *args, check=False)
            assert refused.returncode == 1
            assert refused.stderr == (
                f"Error: conflict: unable to delete {image_id[7:19]} (cannot be forced) - image "
                f"is being used by running container {cid[:12]}\n")
            assert _names(root, image_id) == before
        refused = barque(root, "rmi", ref, check=False)
        assert refused.returncode == 1 and "(must force)" in refused.stderr
        assert _names(root, image_id) == before
    finally:
        barque(root, "rm", "-f", cid)


def test_forced_rmi_of_a_used_image_keeps_it_for_the_container(root, fixture_images) -> None:
    ref = fixture_images["busybox"].ref
    image_id = _image_id(root, ref)
    cid = barque(root, "create", "--network", "none", ref, "true").stdout.strip()
    refused = barque(root, "rmi", image_id[7:19], check=False)
    assert refused.returncode == 1
    assert refused.stderr == (
        f"Error: conflict: unable to delete {image_id[7:19]} (must be forced) - image is being "
        f"used by stopped container {cid[:12]}\n")

    out = barque(root, "rmi", "-f", ref).stdout.splitlines()
    assert out[0] == f"Untagged: {ref}" and not any(o.startswith("Deleted") for o in out)
    assert _names(root, image_id) == ([], [])  # dangling, as Docker leaves it
    barque(root, "start", "-a", cid)  # the container still has its root filesystem
