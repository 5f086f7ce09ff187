"""Pulling real images from a real docker-registry (fed by skopeo) into a real store."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import random
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from barque import Engine
from barque.errors import (
    DigestMismatchError,
    InvalidManifestError,
    InvalidLayerError,
    PlatformNotFoundError,
)
from helpers import REPO, barque, cli, expected_listing, merged_listing
from registry_server import push_fixture, skopeo_copy, start_registry
from throttle_proxy import ThrottleProxy

pytestmark = pytest.mark.registry
needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="mounting an overlay to compare the merged rootfs needs root")

sys.path.insert(0, str(REPO / "scripts"))
import mkimage  # noqa: E402


@pytest.fixture
def engine(settings):  # type: ignore[no-untyped-def]
    with Engine(settings=settings) as e:
        yield e


def _lower_dirs(engine: Engine, image) -> list[Path]:  # type: ignore[no-untyped-def]
    return [engine.store.snapshots.path(layer.chain_id) for layer in reversed(image.layers)]


def test_pulled_image_matches_what_skopeo_reports(engine, fixture_images, registry) -> None:
    fx = fixture_images["layers"]
    image = engine.images.pull(fx.ref)
    config = json.loads(fx.config)
    assert image.id == fx.manifest["config"]["digest"]
    assert image.config == config
    assert image.tags == [fx.ref]
    assert image.digests == [f"{registry.host}/{fx.repository}@{fx.digest}"]
    assert image.attrs["RootFS"]["Layers"] == config["rootfs"]["diff_ids"]
    assert image.attrs["Config"]["Entrypoint"] == ["/bin/sh", "-c"]
    # the blobs are stored under their digests and nothing is left in ingest
    for layer in fx.manifest["layers"]:
        assert engine.store.content.has(layer["digest"])
    assert list(engine.store.paths.ingest.iterdir()) == []


@needs_root
@pytest.mark.parametrize("name,listing", [
    ("layers", "layers-1"), ("layers-zstd", "layers-1"), ("busybox", "busybox-1.35")])
def test_merged_layers_equal_dockers_rootfs(engine, fixture_images, name, listing) -> None:
    image = engine.images.pull(fixture_images[name].ref)
    assert merged_listing(_lower_dirs(engine, image)) == expected_listing(listing)


def test_zstd_and_gzip_images_share_diff_ids(engine, fixture_images) -> None:
    gz = engine.images.pull(fixture_images["layers"].ref)
    zst = engine.images.pull(fixture_images["layers-zstd"].ref)
    assert [layer.media_type for layer in zst.layers][-1].endswith("+zstd")
    assert [layer.diff_id for layer in gz.layers] == [layer.diff_id for layer in zst.layers]


def test_multiarch_pulls_each_platform(engine, fixture_images, registry) -> None:
    fx = fixture_images["multiarch"]
    arm = engine.images.pull(fx.ref, platform="linux/arm64/v8")
    assert arm.config["architecture"] == "arm64"
    assert arm.config["config"]["Labels"]["fixture.platform"] == "linux/arm64/v8"
    assert arm.config == json.loads(fx.configs["linux/arm64/v8"])
    amd = engine.images.pull(fx.ref, platform="linux/amd64")
    assert amd.config == json.loads(fx.configs["linux/amd64"])
    assert amd.id != arm.id
    # Docker records the index digest as the repo digest; the tag moved to the last pull
    assert amd.digests == [f"{registry.host}/{fx.repository}@{fx.digest}"]
    assert engine.images.get(fx.ref).id == amd.id
    with pytest.raises(PlatformNotFoundError):
        engine.images.pull(fx.ref, platform="linux/s390x")


def test_cli_pull_shows_progress_then_the_reference(tmp_path, fixture_images) -> None:
    fx = fixture_images["busybox"]
    out = barque(tmp_path / "root", "pull", fx.ref).stdout.splitlines()
    assert out[0] == f"{fx.tag}: Pulling from {fx.repository}"
    layer = fx.manifest["layers"][0]["digest"][7:19]
    assert f"{layer}: Pull complete" in out
    assert f"Digest: {fx.digest}" in out
    assert out[-1] == fx.ref
    again = barque(tmp_path / "root", "pull", fx.ref).stdout.splitlines()
    assert f"{layer}: Already exists" in again
    assert f"Status: Image is up to date for {fx.ref}" in again
    quiet = barque(tmp_path / "root", "pull", "-q", fx.ref).stdout
    assert quiet == fx.ref + "\n"


def test_cli_errors_are_one_line_with_exit_1(tmp_path, registry) -> None:
    root = tmp_path / "root"
    bad = barque(root, "pull", "Foo:bar", check=False)
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.count("\n") == 1 and "invalid reference format" in bad.stderr
    missing = barque(root, "pull", registry.ref("fixtures/nothing:here"), check=False)
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1
    assert "manifest unknown" in missing.stderr
    down = barque(root, "pull", "127.0.0.1:1/x/y:z", check=False)
    assert down.returncode == 1 and down.stderr.count("\n") == 1 and "127.0.0.1:1" in down.stderr


def _layout_with_raw_layer(tmp_path: Path, layer_tar: bytes) -> Path:
    """An OCI layout whose single layer is exactly ``layer_tar`` gzipped (crafted content)."""
    layout = tmp_path / "layout"
    (layout / "blobs" / "sha256").mkdir(parents=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    blob = gzip.compress(layer_tar, mtime=0)
    layer_digest, layer_size = mkimage._write_blob(layout, blob)
    diff_id = "sha256:" + hashlib.sha256(layer_tar).hexdigest()
    config = {"architecture": "amd64", "os": "linux", "config": {},
              "rootfs": {"type": "layers", "diff_ids": [diff_id]}}
    config_digest, config_size = mkimage._write_blob(layout, json.dumps(config).encode())
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": config_digest, "size": config_size},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                            "digest": layer_digest, "size": layer_size}]}
    digest, size = mkimage._write_blob(layout, json.dumps(manifest).encode())
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": manifest["mediaType"], "digest": digest, "size": size,
        "annotations": {"org.opencontainers.image.ref.name": "1"}}]}))
    return layout


def test_hostile_layer_from_a_registry_is_refused(engine, registry, tmp_path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("../escaped")
        data = b"owned\n"
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    layout = _layout_with_raw_layer(tmp_path, buf.getvalue())
    ref = registry.ref("hostile/escape:1")
    skopeo_copy(f"oci:{layout}:1", ref)
    with pytest.raises(InvalidLayerError, match=r"\.\./escaped"):
        engine.images.pull(ref)
    assert engine.images.list() == []
    assert not (engine.store.paths.snapshots.parent / "escaped").exists()
    assert not (engine.store.paths.snapshots / "escaped").exists()
    assert [p for p in engine.store.paths.snapshots.iterdir()] == []


def test_registry_serving_a_wrong_blob_is_caught(settings, tmp_path) -> None:
    # A registry of our own, tampered on disk: the real server then serves bytes that do not
    # hash to the digest it names.
    server = start_registry(tmp_path / "reg")
    try:
        fx = push_fixture("busybox", server)
        layer = fx.manifest["layers"][0]["digest"][7:]
        data = server.root / "docker/registry/v2/blobs/sha256" / layer[:2] / layer / "data"
        original = data.read_bytes()
        data.write_bytes(original[:100] + bytes(256) + original[356:])
        with Engine(settings=settings) as engine:
            with pytest.raises(DigestMismatchError, match=layer):
                engine.images.pull(fx.ref)
            assert engine.images.list() == []
            assert not engine.store.content.has("sha256:" + layer)
            assert list(engine.store.paths.ingest.glob("*.partial")) == []
    finally:
        server.stop()


@pytest.fixture(scope="module")
def big_image(registry, tmp_path_factory):  # type: ignore[no-untyped-def]
    """An image with one 48 MiB incompressible layer, so a throttled pull can be cut midway."""
    work = tmp_path_factory.mktemp("big")
    rootfs = work / "rootfs"
    rootfs.mkdir()
    payload = random.Random(7).randbytes(48 << 20)
    (rootfs / "payload.bin").write_bytes(payload)
    mkimage.build(work / "layout", [rootfs], "1", ["true"], level=1)
    ref = registry.ref("big/random:1")
    skopeo_copy(f"oci:{work / 'layout'}:1", ref)
    return ref, hashlib.sha256(payload).hexdigest()


def _spawn_pull(root: Path, ref: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*cli(), "--root", str(root), "pull", ref],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_killed_pull_leaves_no_image_and_resumes(big_image, registry, tmp_path) -> None:
    ref, payload_sha = big_image
    root = tmp_path / "root"
    with ThrottleProxy(registry.host, bytes_per_second=8 << 20) as proxy:
        via_proxy = ref.replace(registry.host, proxy.host)
        proc = _spawn_pull(root, via_proxy)
        deadline = time.monotonic() + 60
        partial = None
        while time.monotonic() < deadline:
            partials = list((root / "ingest").glob("*.partial")) if (root / "ingest").exists() else []
            if partials and partials[0].stat().st_size > 8 << 20:
                partial = partials[0]
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert partial is not None, "the pull never got going"
        kept = partial.stat().st_size
        assert barque(root, "images", "-q").stdout == ""  # no half image is visible
        assert 0 < kept < (48 << 20)

        proxy.bytes_per_second = 0
        proxy.requests.clear()
        out = barque(root, "pull", via_proxy).stdout
        assert "Resuming" in out
        ranges = [r for r in proxy.ranges() if r]
        assert ranges and int(ranges[0].removeprefix("bytes=").rstrip("-")) >= kept
    with Engine(root=root) as engine:
        image = engine.images.get(via_proxy)
        payload = engine.store.snapshots.path(image.layers[0].chain_id) / "payload.bin"
        assert hashlib.sha256(payload.read_bytes()).hexdigest() == payload_sha
        assert list(engine.store.paths.ingest.glob("*.partial")) == []


def test_two_pulls_at_once_store_each_blob_once(fixture_images, tmp_path) -> None:
    fx = fixture_images["layers"]
    root = tmp_path / "root"
    procs = [_spawn_pull(root, fx.ref) for _ in range(2)]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-600:]
    layers = [layer["digest"] for layer in fx.manifest["layers"]]
    config = fx.manifest["config"]["digest"]
    blobs = sorted("sha256:" + p.name for p in (root / "blobs" / "sha256").iterdir())
    assert blobs == sorted(set(layers) | {config, fx.digest})
    snapshots = [p for p in (root / "snapshots").iterdir()]
    assert len(snapshots) == len(layers)
    assert barque(root, "images", "-q").stdout.splitlines() == [config[7:19]]


def test_pull_with_docker_login_credentials(auth_registry, tmp_path) -> None:
    ref = auth_registry.image.ref
    root = tmp_path / "root"
    anonymous = barque(root, "pull", ref, check=False,
                       env={"DOCKER_CONFIG": str(tmp_path / "nobody")})
    assert anonymous.returncode == 1 and "unauthorized" in anonymous.stderr.lower()
    wrong = auth_registry.docker_config(tmp_path / "wrong", password="nope")
    refused = barque(root, "pull", ref, check=False, env={"DOCKER_CONFIG": str(wrong.parent)})
    assert refused.returncode == 1 and "unauthorized" in refused.stderr.lower()
    assert barque(root, "images", "-q").stdout == ""
    good = auth_registry.docker_config(tmp_path / "good")
    barque(root, "pull", "-q", ref, env={"DOCKER_CONFIG": str(good.parent)})
    assert barque(root, "images", "-q").stdout.strip() == \
        auth_registry.image.manifest["config"]["digest"][7:19]


def test_image_with_more_layers_than_overlay_can_mount_is_refused(engine, registry, tmp_path) -> None:
    from barque.images import MAX_LAYERS

    dirs = []
    for i in range(MAX_LAYERS + 1):
        d = tmp_path / f"l{i}"
        d.mkdir()
        (d / f"f{i}").write_text(str(i))
        dirs.append(d)
    mkimage.build(tmp_path / "layout", dirs, "1", ["true"], level=1)
    ref = registry.ref("many/layers:1")
    skopeo_copy(f"oci:{tmp_path / 'layout'}:1", ref)
    with pytest.raises(InvalidManifestError, match=f"{MAX_LAYERS + 1} layers"):
        engine.images.pull(ref)
    assert list(engine.store.paths.blobs.iterdir()) == []  # refused before downloading


@needs_root
def test_full_disk_fails_cleanly_and_keeps_the_store_usable(fixture_images, tmp_path) -> None:
    root = tmp_path / "small"
    root.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(root)], check=True)
    try:
        full = barque(root, "pull", fixture_images["layers"].ref, check=False)
        assert full.returncode == 1
        assert full.stderr.count("\n") == 1, full.stderr
        assert "No space left on device" in full.stderr or "disk is full" in full.stderr
        assert barque(root, "images", "-q").stdout == ""
        subprocess.run(["mount", "-o", "remount,size=64m", str(root)], check=True)
        barque(root, "pull", "-q", fixture_images["layers"].ref)
        assert len(barque(root, "images", "-q").stdout.split()) == 1
    finally:
        subprocess.run(["umount", "-l", str(root)], check=False)
