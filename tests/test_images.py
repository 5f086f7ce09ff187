"""Managing local images through the CLI, as a Docker user would: images, tag, rmi, inspect,
history, prune, and short IDs."""

from __future__ import annotations

import json
import os

import pytest

from helpers import barque, expected_listing, merged_listing

pytestmark = pytest.mark.registry


@pytest.fixture
def root(tmp_path, fixture_images):  # type: ignore[no-untyped-def]
    root = tmp_path / "root"
    barque(root, "pull", "-q", fixture_images["layers"].ref)
    barque(root, "pull", "-q", fixture_images["busybox"].ref)
    return root


def _ids(fx) -> str:  # type: ignore[no-untyped-def]
    return fx.manifest["config"]["digest"]


def test_images_lists_docker_columns(root, fixture_images, registry) -> None:
    lines = barque(root, "images").stdout.splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    rows = {tuple(line.split()[:3]) for line in lines[1:]}
    for name in ("layers", "busybox"):
        fx = fixture_images[name]
        assert (f"{registry.host}/{fx.repository}", fx.tag, _ids(fx)[7:19]) in rows
    quiet = barque(root, "images", "-q").stdout.split()
    assert sorted(quiet) == sorted(_ids(fixture_images[n])[7:19] for n in ("layers", "busybox"))
    as_json = [json.loads(line) for line in barque(root, "images", "--format", "json").stdout.splitlines()]
    assert {r["ID"] for r in as_json} == {_ids(fixture_images[n])[7:19] for n in ("layers", "busybox")}
    assert all(r["Size"].endswith("B") for r in as_json)
    digests = barque(root, "images", "--digests").stdout
    assert fixture_images["layers"].digest in digests


def test_tag_then_rmi_untags_before_deleting(root, fixture_images) -> None:
    fx = fixture_images["layers"]
    barque(root, "tag", fx.ref, "mine/layers:v1")
    listing = barque(root, "images", "mine/layers").stdout.splitlines()
    assert len(listing) == 2 and listing[1].split()[:3] == ["mine/layers", "v1", _ids(fx)[7:19]]
    out = barque(root, "rmi", "mine/layers:v1").stdout
    assert out == "Untagged: mine/layers:v1\n"
    assert barque(root, "images", "-q").stdout.count(_ids(fx)[7:19]) == 1


def test_rmi_keeps_layers_another_image_uses(root, fixture_images) -> None:
    busybox, layers = fixture_images["busybox"], fixture_images["layers"]
    out = barque(root, "rmi", busybox.ref).stdout.splitlines()
    assert out[0] == f"Untagged: {busybox.ref}"
    assert f"Deleted: {_ids(busybox)}" in out
    # layers-1 is built FROM busybox: the shared base layer must survive
    from barque import Engine

    with Engine(root=root) as engine:
        image = engine.images.get(layers.ref)
        lowers = [engine.store.snapshots.path(layer.chain_id) for layer in reversed(image.layers)]
        assert all(p.is_dir() for p in lowers)
        if os.geteuid() == 0:
            assert merged_listing(lowers) == expected_listing("layers-1")
    out = barque(root, "rmi", layers.ref).stdout.splitlines()
    assert f"Deleted: {_ids(layers)}" in out
    assert barque(root, "images", "-q").stdout == ""
    assert list((root / "snapshots").iterdir()) == []
    assert list((root / "blobs" / "sha256").iterdir()) == []


def test_rmi_by_id_with_several_repositories_needs_force(root, fixture_images) -> None:
    fx = fixture_images["busybox"]
    barque(root, "tag", fx.ref, "other/busybox:x")
    short = _ids(fx)[7:19]
    refused = barque(root, "rmi", short, check=False)
    assert refused.returncode == 1 and "must be forced" in refused.stderr
    assert short in barque(root, "images", "-q").stdout
    out = barque(root, "rmi", "-f", short[:6]).stdout
    assert "Untagged: other/busybox:x" in out and f"Deleted: {_ids(fx)}" in out


def test_inspect_is_docker_shaped(root, fixture_images, registry) -> None:
    fx = fixture_images["layers"]
    [doc] = json.loads(barque(root, "image", "inspect", fx.ref).stdout)
    config = json.loads(fx.config)
    assert doc["Id"] == _ids(fx)
    assert doc["RepoTags"] == [fx.ref]
    assert doc["RepoDigests"] == [f"{registry.host}/{fx.repository}@{fx.digest}"]
    assert doc["Created"] == config["created"]
    assert doc["Config"] == config["config"]
    assert doc["Config"]["User"] == "1000:1000"
    assert doc["Architecture"] == "amd64" and doc["Os"] == "linux"
    assert doc["RootFS"] == {"Type": "layers", "Layers": config["rootfs"]["diff_ids"]}
    assert doc["Size"] > 1_900_000
    # the same through a short ID and the top-level command
    [same] = json.loads(barque(root, "inspect", _ids(fx)[7:15]).stdout)
    assert same == doc


def test_history_lists_the_build_steps(root, fixture_images) -> None:
    fx = fixture_images["layers"]
    config = json.loads(fx.config)
    lines = barque(root, "history", fx.ref).stdout.splitlines()
    assert lines[0].split()[:2] == ["IMAGE", "CREATED"]
    assert len(lines) - 1 == len(config["history"])
    assert lines[1].startswith(_ids(fx)[7:19])
    assert all(line.startswith("<missing>") for line in lines[2:])
    full = barque(root, "history", "--no-trunc", fx.ref).stdout
    assert "WORKDIR /srv/app" in full


def test_missing_and_ambiguous_names_fail_cleanly(root) -> None:
    missing = barque(root, "inspect", "nothing:here", check=False)
    assert missing.returncode == 1 and "No such image: nothing:here" in missing.stderr
    assert json.loads(missing.stdout) == []
    gone = barque(root, "rmi", "nothing", check=False)
    assert gone.returncode == 1 and "No such image" in gone.stderr


def test_prune_removes_dangling_images_only(root, fixture_images) -> None:
    layers, busybox = fixture_images["layers"], fixture_images["busybox"]
    out = barque(root, "image", "prune", "-f").stdout
    assert "Total reclaimed space: 0B" in out
    # make the layers image dangling by moving its only tag away
    barque(root, "tag", busybox.ref, layers.ref)
    lines = barque(root, "images").stdout.splitlines()
    assert any(line.split()[:2] == [f"{layers.ref.rsplit(':', 1)[0]}", "<none>"] or
               line.split()[:2] == ["<none>", "<none>"] for line in lines[1:])
    out = barque(root, "image", "prune", "-f").stdout
    assert f"deleted: {_ids(layers)}" in out
    assert "Total reclaimed space: 0B" not in out
    assert barque(root, "images", "-q").stdout.split() == [_ids(busybox)[7:19]]


def test_digest_references_find_and_untag(root, fixture_images, registry) -> None:
    fx = fixture_images["busybox"]
    by_digest = f"{registry.host}/{fx.repository}@{fx.digest}"
    [doc] = json.loads(barque(root, "inspect", by_digest).stdout)
    assert doc["Id"] == _ids(fx)
    assert barque(root, "rmi", by_digest).stdout == f"Untagged: {by_digest}\n"
    [doc] = json.loads(barque(root, "inspect", fx.ref).stdout)
    assert doc["RepoDigests"] == [] and doc["RepoTags"] == [fx.ref]
