"""Image archives and local images, through the CLI as a Docker user would: save (docker-archive
and OCI layout, checked with real skopeo), load (incl. the Docker 20.10 fixtures and hostile
archives), import, commit, diff and cp."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from helpers import SHARED, barque, cli, expected_listing, merged_listing

IMAGES = SHARED / "fixtures" / "images"
LAYERS_TAR = IMAGES / "layers-1.docker.tar"
BUSYBOX_TAR = IMAGES / "busybox-1.35.docker.tar"
LAYERS_ID = "sha256:979a4dfdb045c9a47e198ba6ec14ea4a54bf973341f696989051bd3631d6e88a"

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounts and containers need root")
needs_fixtures = pytest.mark.skipif(not LAYERS_TAR.is_file(), reason="shared fixtures missing")
pytestmark = [needs_fixtures]


def barque_bytes(root: Path, *args: str, stdin: bytes | None = None,
                 check: bool = True) -> subprocess.CompletedProcess[bytes]:
    """``barque`` with binary stdin/stdout (save to and load from a pipe)."""
    proc = subprocess.run([*cli(), "--root", str(root), *args],
                          input=stdin, capture_output=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"barque {' '.join(args)} exited {proc.returncode}: "
                             f"{proc.stderr.decode()}")
    return proc


def skopeo(*args: str) -> str:
    return subprocess.run(["skopeo", *args], check=True, capture_output=True, text=True).stdout


def lower_dirs(root: Path, image: str) -> list[Path]:
    from barque import Engine

    with Engine(root=root) as engine:
        img = engine.images.get(image)
        return [engine.store.snapshots.path(x.chain_id) for x in reversed(img.layers)]


def store_state(root: Path) -> dict[str, object]:
    """What a refused load must not change: images, tags, blobs, snapshots, scratch space."""
    return {
        # Every column but the relative age ("14 hours ago" may turn over between two looks).
        "images": [{k: v for k, v in json.loads(line).items() if k != "CreatedSince"}
                   for line in barque(root, "images", "-a", "--no-trunc", "--digests",
                                      "--format", "json").stdout.splitlines()],
        "blobs": sorted(os.listdir(root / "blobs" / "sha256")),
        "snapshots": sorted(os.listdir(root / "snapshots")),
        "tmp": sorted(os.listdir(root / "tmp")),
    }


# -- load ---------------------------------------------------------------------------------


@needs_root
@pytest.mark.parametrize("archive,tag,listing", [
    (LAYERS_TAR, "barque-fixtures/layers:1", "layers-1"),
    (BUSYBOX_TAR, "barque-fixtures/busybox:1.35", "busybox-1.35")])
def test_load_docker_20_10_archives_gives_dockers_rootfs(tmp_path, archive, tag, listing) -> None:
    root = tmp_path / "root"
    out = barque(root, "load", "-i", str(archive)).stdout
    assert out == f"Loaded image: {tag}\n"
    assert merged_listing(lower_dirs(root, tag)) == expected_listing(listing)
    # Layers are kept gzip-compressed for a later push: the manifest names those blobs.
    inspect = json.loads(barque(root, "inspect", tag).stdout)[0]
    from barque import Engine

    with Engine(root=root) as engine:
        img = engine.images.get(tag)
        manifest = json.loads(engine.store.content.read(img.manifest_digest))
        assert manifest["config"]["digest"] == inspect["Id"]
        for desc in manifest["layers"]:
            assert desc["mediaType"].endswith("tar.gzip")
            assert engine.store.content.path(desc["digest"]).read_bytes()[:2] == b"\x1f\x8b"


@needs_root
def test_loaded_image_runs(tmp_path) -> None:
    root = tmp_path / "root"
    barque(root, "load", "-i", str(BUSYBOX_TAR))
    barque_bytes(root, "load", stdin=LAYERS_TAR.read_bytes())  # stdin works too
    out = barque(root, "run", "--rm", "--network", "none", "barque-fixtures/layers:1").stdout
    assert out == "hello world from /srv/app as 1000\n"


def test_load_twice_is_idempotent(tmp_path) -> None:
    root = tmp_path / "root"
    barque(root, "load", "-i", str(LAYERS_TAR))
    before = store_state(root)
    assert barque(root, "load", "-i", str(LAYERS_TAR)).stdout == \
        "Loaded image: barque-fixtures/layers:1\n"
    assert store_state(root) == before


# -- save ---------------------------------------------------------------------------------


def test_save_docker_archive_is_read_by_skopeo(tmp_path) -> None:
    root = tmp_path / "root"
    barque(root, "load", "-i", str(LAYERS_TAR))
    target = tmp_path / "out.tar"
    barque(root, "save", "-o", str(target), "barque-fixtures/layers:1")
    raw_config = subprocess.run(["skopeo", "inspect", "--raw", "--config",
                                 f"docker-archive:{target}"], check=True,
                                capture_output=True).stdout
    import hashlib

    assert "sha256:" + hashlib.sha256(raw_config).hexdigest() == LAYERS_ID
    info = json.loads(skopeo("inspect", f"docker-archive:{target}"))
    # docker-archive layers are the uncompressed tars: their digests are the DiffIDs
    assert info["Layers"] == json.loads(raw_config)["rootfs"]["diff_ids"]
    with tarfile.open(target) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        repositories = json.load(tar.extractfile("repositories"))  # type: ignore[arg-type]
    assert manifest[0]["RepoTags"] == ["barque-fixtures/layers:1"]
    assert manifest[0]["Config"] == LAYERS_ID[7:] + ".json"
    assert list(repositories) == ["barque-fixtures/layers"]


def test_save_oci_archive_is_copied_by_skopeo(tmp_path) -> None:
    root = tmp_path / "root"
    barque(root, "load", "-i", str(LAYERS_TAR))
    data = barque_bytes(root, "save", "--format", "oci", "barque-fixtures/layers:1").stdout
    target = tmp_path / "out.oci.tar"
    target.write_bytes(data)
    raw_config = subprocess.run(["skopeo", "inspect", "--raw", "--config",
                                 f"oci-archive:{target}"], check=True,
                                capture_output=True).stdout
    import hashlib

    assert "sha256:" + hashlib.sha256(raw_config).hexdigest() == LAYERS_ID
    skopeo("copy", f"oci-archive:{target}", f"oci:{tmp_path / 'layout'}:copied")
    index = json.loads((tmp_path / "layout" / "index.json").read_text())
    assert len(index["manifests"]) == 1


def test_save_refuses_a_terminal_and_unknown_images(tmp_path) -> None:
    root = tmp_path / "root"
    barque(root, "load", "-i", str(BUSYBOX_TAR))
    proc = barque(root, "save", "-o", str(tmp_path / "x.tar"), "no/such:image", check=False)
    assert proc.returncode == 1 and proc.stderr.startswith("Error: ")
    assert len(proc.stderr.splitlines()) == 1
    assert not (tmp_path / "x.tar").exists()


@pytest.mark.parametrize("format", ["docker", "oci"])
def test_save_then_load_into_a_fresh_store_keeps_id_and_tags(tmp_path, format) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    barque(first, "load", "-i", str(LAYERS_TAR))
    barque(first, "tag", "barque-fixtures/layers:1", "example.com/mine/app:v2")
    archive = tmp_path / "both.tar"
    barque(first, "save", "--format", format, "-o", str(archive), "barque-fixtures/layers:1",
           "example.com/mine/app:v2")
    out = barque(second, "load", "-i", str(archive)).stdout.splitlines()
    assert sorted(out) == ["Loaded image: barque-fixtures/layers:1",
                           "Loaded image: example.com/mine/app:v2"]
    assert barque(second, "images", "-q", "--no-trunc").stdout.split() == [LAYERS_ID]
    inspect = json.loads(barque(second, "inspect", LAYERS_ID).stdout)[0]
    assert sorted(inspect["RepoTags"]) == ["barque-fixtures/layers:1", "example.com/mine/app:v2"]
    # saved by ID: no tag travels, Docker prints the ID
    barque(first, "save", "--format", format, "-o", str(archive), LAYERS_ID[7:19])
    third = tmp_path / "third"
    assert barque(third, "load", "-i", str(archive)).stdout == f"Loaded image ID: {LAYERS_ID}\n"


@pytest.mark.registry
@needs_root
def test_zstd_image_saves_as_both_formats(tmp_path, fixture_images) -> None:
    root, fresh = tmp_path / "root", tmp_path / "fresh"
    fx = fixture_images["layers-zstd"]
    barque(root, "pull", "-q", fx.ref)
    for format in ("docker", "oci"):
        archive = tmp_path / f"{format}.tar"
        barque(root, "save", "--format", format, "-o", str(archive), fx.ref)
        barque(fresh, "rmi", "-f", fx.ref, check=False)
        barque(fresh, "load", "-i", str(archive))
        assert merged_listing(lower_dirs(fresh, fx.ref)) == expected_listing("layers-1")
    # The OCI archive carried the zstd blobs byte for byte (the pulled manifest's digests).
    from barque import Engine

    with Engine(root=fresh) as engine:
        img = engine.images.get(fx.ref)
        assert [x.blob_digest for x in img.layers] == [x["digest"] for x in fx.manifest["layers"]]


# -- hostile archives -----------------------------------------------------------------------


def _rewrite(source: Path, target: Path, *, drop: str | None = None,
             replace: dict[str, bytes] | None = None, extra: dict[str, bytes] | None = None) -> None:
    """A copy of a docker archive with members dropped, replaced or added."""
    replace = replace or {}
    with tarfile.open(source) as src, tarfile.open(target, "w") as out:
        for member in src.getmembers():
            if member.name == drop:
                continue
            data = replace.get(member.name)
            if data is None and member.isfile():
                data = src.extractfile(member).read()  # type: ignore[union-attr]
            if data is not None:
                member.size = len(data)
                out.addfile(member, io.BytesIO(data))
            else:
                out.addfile(member)
        for name, data in (extra or {}).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))


def _layers_manifest() -> list[dict]:
    with tarfile.open(LAYERS_TAR) as tar:
        return json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]


def _hostile(kind: str, target: Path) -> None:
    manifest = _layers_manifest()
    top_layer = manifest[0]["Layers"][-1]
    if kind == "traversal":
        _rewrite(LAYERS_TAR, target, extra={"../../escaped": b"owned\n"})
    elif kind == "missing-layer":
        _rewrite(LAYERS_TAR, target, drop=top_layer)
    elif kind == "digest-mismatch":
        # a valid tar, but not the layer the config's diff_ids name
        other = io.BytesIO()
        with tarfile.open(fileobj=other, mode="w") as t:
            info = tarfile.TarInfo("srv/evil")
            info.size = 5
            t.addfile(info, io.BytesIO(b"evil\n"))
        _rewrite(LAYERS_TAR, target, replace={top_layer: other.getvalue()})
    elif kind == "truncated":
        data = LAYERS_TAR.read_bytes()
        target.write_bytes(data[: len(data) // 2 + 100])
    elif kind == "bad-manifest":
        manifest[0]["Layers"][-1] = "../../etc/passwd"
        _rewrite(LAYERS_TAR, target, replace={"manifest.json": json.dumps(manifest).encode()})


@pytest.mark.parametrize("kind,message", [
    ("traversal", "path traversal"),
    ("missing-layer", "not in the archive"),
    ("digest-mismatch", "config expects"),
    ("truncated", "truncated"),
    ("bad-manifest", "path traversal"),
])
def test_hostile_archive_is_refused_whole(tmp_path, kind, message) -> None:
    root = tmp_path / "root"
    barque(root, "load", "-i", str(BUSYBOX_TAR))  # shares the base layer with layers-1
    before = store_state(root)
    archive = tmp_path / f"{kind}.tar"
    _hostile(kind, archive)
    proc = barque(root, "load", "-i", str(archive), check=False)
    assert proc.returncode == 1
    assert proc.stderr.startswith("Error: ") and len(proc.stderr.splitlines()) == 1
    assert message in proc.stderr
    assert proc.stdout == ""
    assert store_state(root) == before
    assert not (tmp_path / "escaped").exists()


# -- import -------------------------------------------------------------------------------


def _busybox_rootfs(tmp_path: Path) -> Path:
    """The busybox fixture's one layer, as a gzip rootfs tarball (what `docker export` gives)."""
    import gzip

    with tarfile.open(BUSYBOX_TAR) as tar:
        name = json.load(tar.extractfile("manifest.json"))[0]["Layers"][0]  # type: ignore[arg-type]
        data = tar.extractfile(name).read()  # type: ignore[union-attr]
    target = tmp_path / "rootfs.tar.gz"
    target.write_bytes(gzip.compress(data))
    return target


@needs_root
def test_import_with_changes_then_run(tmp_path) -> None:
    root = tmp_path / "root"
    rootfs = _busybox_rootfs(tmp_path)
    out = barque(root, "import", "-m", "from a tarball",
                 "-c", 'CMD ["sh", "-c", "echo $GREETING in $(pwd) as $(id -u)"]',
                 "-c", 'ENV GREETING="hi there" OTHER=1', "-c", "WORKDIR /tmp",
                 "-c", "USER 1000", "-c", "EXPOSE 8080 53/udp", "-c", "LABEL tier=test",
                 "-c", "VOLUME /data", str(rootfs), "imported:1").stdout
    image_id = out.strip()
    assert image_id.startswith("sha256:") and len(image_id) == 71
    run = barque(root, "run", "--rm", "--network", "none", "imported:1").stdout
    assert run == "hi there in /tmp as 1000\n"
    attrs = json.loads(barque(root, "inspect", "imported:1").stdout)[0]
    assert attrs["Id"] == image_id and attrs["Comment"] == "from a tarball"
    assert attrs["Config"]["ExposedPorts"] == {"8080/tcp": {}, "53/udp": {}}
    assert attrs["Config"]["Labels"] == {"tier": "test"}
    assert attrs["Config"]["Volumes"] == {"/data": {}}
    merged = merged_listing(lower_dirs(root, "imported:1"))
    assert merged == expected_listing("busybox-1.35")
    # from stdin, untagged; shell-form ENTRYPOINT
    proc = barque_bytes(root, "import", "-c", "ENTRYPOINT echo entry", "-", stdin=rootfs.read_bytes())
    second = proc.stdout.decode().strip()
    assert barque(root, "run", "--rm", "--network", "none", second).stdout == "entry\n"


def test_import_refuses_bad_changes_and_hostile_tars(tmp_path) -> None:
    root = tmp_path / "root"
    barque(root, "load", "-i", str(BUSYBOX_TAR))
    before = store_state(root)
    rootfs = _busybox_rootfs(tmp_path)
    proc = barque(root, "import", "-c", "RUN rm -rf /", str(rootfs), check=False)
    assert proc.returncode == 1 and "not a valid change command" in proc.stderr
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tar:
        info = tarfile.TarInfo("../../outside")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"hi\n"))
    proc = barque(root, "import", str(evil), "evil:1", check=False)
    assert proc.returncode == 1 and proc.stderr.startswith("Error: ")
    assert len(proc.stderr.splitlines()) == 1
    assert store_state(root) == before


# -- commit and diff ------------------------------------------------------------------------


@needs_root
def test_commit_captures_deletions_changes_additions_and_opaque_dirs(tmp_path) -> None:
    root = tmp_path / "root"
    barque(root, "load", "-i", str(BUSYBOX_TAR))
    script = ("rm /bin/vi && rm -r /home && mkdir /home && echo fresh > /home/new"
              " && echo extra >> /etc/group && mkdir -p /added/sub && echo a > /added/sub/f"
              " && chmod 700 /root && rm -r /var")
    barque(root, "run", "--name", "work", "--network", "none", "barque-fixtures/busybox:1.35",
           "sh", "-c", script)
    diff = barque(root, "diff", "work").stdout.splitlines()
    assert "D /bin/vi" in diff and "C /bin" in diff
    assert "C /etc/group" in diff and "C /etc" in diff
    assert "A /added" in diff and "A /added/sub/f" in diff
    assert "C /home" in diff and "A /home/new" in diff
    assert "C /root" in diff and "D /var" in diff
    # what barque's init layer and the runtime's mount points put in the upper dir is no change
    assert not any(line.split()[1] in ("/.dockerenv", "/etc/mtab", "/etc/hosts", "/etc/hostname",
                                       "/etc/resolv.conf") for line in diff)
    image_id = barque(root, "commit", "-m", "edited", "-a", "tester", "-c", "CMD [\"ls\", \"/home\"]",
                      "work", "edited:1").stdout.strip()
    assert image_id.startswith("sha256:")
    out = barque(root, "run", "--rm", "--network", "none", "edited:1").stdout
    assert out == "new\n"  # the opaque /home hides the image's content
    check = ("ls /bin/vi; ls /var; cat /home/new; tail -n1 /etc/group; cat /added/sub/f;"
             " stat -c %a /root; ls /bin/sh")
    proc = barque(root, "run", "--rm", "--network", "none", "edited:1", "sh", "-c", check,
                  check=False)
    assert proc.stdout == "fresh\nextra\na\n700\n/bin/sh\n"
    assert "/bin/vi: No such file" in proc.stderr and "/var: No such file" in proc.stderr
    attrs = json.loads(barque(root, "inspect", "edited:1").stdout)[0]
    assert attrs["Comment"] == "edited" and attrs["Author"] == "tester"
    assert len(attrs["RootFS"]["Layers"]) == 2
    # A container of the committed image starts with no changes of its own.
    barque(root, "create", "--name", "fresh", "--network", "none", "edited:1")
    assert barque(root, "diff", "fresh").stdout == ""
    # The committed image saves and loads like any other.
    archive = tmp_path / "edited.tar"
    barque(root, "save", "-o", str(archive), "edited:1")
    assert barque(tmp_path / "other", "load", "-i", str(archive)).stdout == \
        "Loaded image: edited:1\n"


# -- cp -------------------------------------------------------------------------------------


@needs_root
def test_cp_in_and_out_of_stopped_and_running_containers_never_escapes(tmp_path) -> None:
    root = tmp_path / "root"
    barque(root, "load", "-i", str(BUSYBOX_TAR))
    barque(root, "run", "--name", "stopped", "--network", "none", "barque-fixtures/busybox:1.35",
           "sh", "-c", "ln -s /etc /escape && mkdir /data && echo inside > /data/f")
    out = tmp_path / "out"
    out.mkdir()
    barque(root, "cp", "stopped:/data", str(out))
    assert (out / "data" / "f").read_text() == "inside\n"
    # /escape -> /etc resolves to the container's /etc, never the host's
    barque(root, "cp", "stopped:/escape/passwd", str(out / "passwd"))
    assert (out / "passwd").read_bytes() != Path("/etc/passwd").read_bytes()
    assert (out / "passwd").read_text().startswith("root:x:0:0:root:/root:/bin/sh\n")
    planted = f"barque-cp-test-{os.getpid()}"
    (tmp_path / "host.txt").write_text("from host\n")
    barque(root, "cp", str(tmp_path / "host.txt"), f"stopped:/escape/{planted}")
    assert not Path("/etc", planted).exists()
    barque(root, "cp", str(tmp_path / "host.txt"), "stopped:/data/")
    barque(root, "cp", "stopped:/data/host.txt", str(out / "back.txt"))
    assert (out / "back.txt").read_text() == "from host\n"
    barque(root, "run", "-d", "--name", "live", "--network", "none",
           "barque-fixtures/busybox:1.35", "sleep", "60")
    try:
        barque(root, "cp", str(tmp_path / "host.txt"), "live:/tmp/copied")
        assert barque(root, "exec", "live", "cat", "/tmp/copied").stdout == "from host\n"
        barque(root, "exec", "live", "ln", "-s", "/etc", "/escape")
        barque(root, "cp", str(tmp_path / "host.txt"), f"live:/escape/{planted}")
        assert not Path("/etc", planted).exists()
        assert barque(root, "exec", "live", "cat", f"/etc/{planted}").stdout == "from host\n"
        barque(root, "cp", "live:/escape/group", str(out / "group"))
        assert (out / "group").read_text().startswith("root:x:0:")
    finally:
        barque(root, "rm", "-f", "live")


# -- compression of locally made layers ------------------------------------------------------

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def _layer_blobs(root: Path, image: str) -> list[tuple[str, str, bytes]]:
    """(media type, blob digest, first 4 bytes of the blob in the store) per layer."""
    from barque import Engine

    with Engine(root=root) as engine:
        img = engine.images.get(image)
        return [(x.media_type, x.blob_digest,
                 engine.store.content.path(x.blob_digest).read_bytes()[:4]) for x in img.layers]


def _push_and_check(root: Path, image: str, target: str, tmp_path: Path) -> dict:
    """Push ``image`` as ``target``; skopeo must see the stored manifest and blobs, and a
    fresh store must pull and run it. Returns the served manifest."""
    from registry_server import skopeo_inspect

    barque(root, "tag", image, target)
    out = barque(root, "push", target).stdout
    pushed_digest = out.splitlines()[-1].split(" digest: ")[1].split()[0]
    raw = skopeo_inspect(target, "--raw")
    import hashlib

    assert "sha256:" + hashlib.sha256(raw).hexdigest() == pushed_digest
    manifest = json.loads(raw)
    assert [x["digest"] for x in manifest["layers"]] == [d for _, d, _ in _layer_blobs(root, image)]
    fresh = tmp_path / f"fresh-{target.rsplit('/', 1)[-1].replace(':', '-')}"
    barque(fresh, "pull", "-q", target)
    assert json.loads(barque(fresh, "inspect", target).stdout)[0]["Id"] == \
        json.loads(barque(root, "inspect", image).stdout)[0]["Id"]
    assert [d for _, d, _ in _layer_blobs(fresh, target)] == \
        [d for _, d, _ in _layer_blobs(root, image)]
    return manifest


@pytest.mark.registry
@needs_root
def test_import_with_zstd_is_reproducible_runs_and_pushes(tmp_path, registry) -> None:
    root = tmp_path / "root"
    rootfs = _busybox_rootfs(tmp_path)
    barque(root, "import", "--compression", "zstd", "-c", 'CMD ["echo", "zstd works"]',
           str(rootfs), "imported:zstd")
    [(media_type, digest, head)] = _layer_blobs(root, "imported:zstd")
    assert media_type == "application/vnd.oci.image.layer.v1.tar+zstd" and head == ZSTD_MAGIC
    assert barque(root, "run", "--rm", "--network", "none", "imported:zstd").stdout == \
        "zstd works\n"
    # The same tarball again (another image: its config's time differs) -> the same layer blob.
    barque(root, "import", "--compression", "zstd", str(rootfs), "again:zstd")
    assert _layer_blobs(root, "again:zstd") == [(media_type, digest, head)]
    # gzip stays the default and is reproducible too.
    barque(root, "import", str(rootfs), "imported:gzip")
    barque(root, "import", str(rootfs), "again:gzip")
    [gzip_layer] = _layer_blobs(root, "imported:gzip")
    assert gzip_layer[2][:2] == b"\x1f\x8b" and gzip_layer[0].endswith(".tar.gzip")
    assert _layer_blobs(root, "again:gzip") == [gzip_layer]

    manifest = _push_and_check(root, "imported:zstd", registry.ref("local/zstd-import:1"),
                               tmp_path)
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert [x["mediaType"] for x in manifest["layers"]] == [media_type]
    fresh = tmp_path / "fresh-zstd-import-1"
    assert barque(fresh, "run", "--rm", "--network", "none",
                  registry.ref("local/zstd-import:1")).stdout == "zstd works\n"


@pytest.mark.registry
@needs_root
def test_commit_with_zstd_puts_one_zstd_layer_on_gzip_ones(tmp_path, registry) -> None:
    root = tmp_path / "root"
    barque(root, "load", "-i", str(BUSYBOX_TAR))
    barque(root, "run", "--name", "work", "--network", "none", "barque-fixtures/busybox:1.35",
           "sh", "-c", "echo committed > /note && rm /bin/vi")
    barque(root, "commit", "--compression", "zstd", "-c", 'CMD ["cat", "/note"]', "work",
           "committed:zstd")
    layers = _layer_blobs(root, "committed:zstd")
    base = _layer_blobs(root, "barque-fixtures/busybox:1.35")
    assert layers[:-1] == base  # the image's own layers are kept as they were (gzip)
    assert layers[-1][0].endswith("tar+zstd") and layers[-1][2] == ZSTD_MAGIC
    assert barque(root, "run", "--rm", "--network", "none", "committed:zstd").stdout == \
        "committed\n"

    target = registry.ref("local/zstd-commit:1")
    manifest = _push_and_check(root, "committed:zstd", target, tmp_path)
    # No Docker media type exists for zstd: the whole image is described the OCI way.
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert [x["mediaType"] for x in manifest["layers"]] == \
        ["application/vnd.oci.image.layer.v1.tar+gzip"] * len(base) + \
        ["application/vnd.oci.image.layer.v1.tar+zstd"]
    fresh = tmp_path / "fresh-zstd-commit-1"
    proc = barque(fresh, "run", "--rm", "--network", "none", target, "sh", "-c",
                  "cat /note; ls /bin/vi", check=False)
    assert proc.stdout == "committed\n" and "/bin/vi: No such file" in proc.stderr


def test_unknown_compression_is_refused_in_one_line(tmp_path) -> None:
    root = tmp_path / "root"
    barque(root, "load", "-i", str(BUSYBOX_TAR))
    before = store_state(root)
    rootfs = _busybox_rootfs(tmp_path)
    for args in (["import", "--compression", "lz4", str(rootfs), "x:1"],
                 ["commit", "--compression", "xz", "no-such-container", "x:2"]):
        proc = barque(root, *args, check=False)
        assert proc.returncode == 1 and proc.stdout == ""
        assert proc.stderr.startswith("Error: unsupported compression ")
        assert len(proc.stderr.splitlines()) == 1 and "gzip or zstd" in proc.stderr
    assert store_state(root) == before


# -- leftovers of killed operations -----------------------------------------------------------


def _staging(root: Path) -> set[str]:
    return {p.name for p in (root / "tmp").iterdir() if p.name.startswith(("load-", "import-"))}


def _start_load(root: Path, data: bytes) -> tuple[subprocess.Popen[bytes], str]:
    """A ``barque load`` from a pipe, fed the first half of ``data`` and left waiting for the
    rest; returns it and the staging directory it made."""
    import time

    before = _staging(root)
    proc = subprocess.Popen([*cli(), "--root", str(root), "load"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdin is not None
    proc.stdin.write(data[: len(data) // 2])
    proc.stdin.flush()
    deadline = time.monotonic() + 60
    while not (new := _staging(root) - before):
        assert proc.poll() is None and time.monotonic() < deadline, "load made no staging dir"
        time.sleep(0.05)
    [name] = new
    return proc, name


def test_prune_removes_a_killed_loads_staging_but_not_a_live_ones(tmp_path) -> None:
    root = tmp_path / "root"
    barque(root, "images")  # creates the store
    data = LAYERS_TAR.read_bytes()
    killed, killed_dir = _start_load(root, data)
    killed.kill()
    killed.wait()
    # one killed before it could even lock its directory (or by an older barque)
    (root / "tmp" / "import-unlocked").mkdir()
    (root / "tmp" / "import-unlocked" / "m0").write_bytes(b"partial")
    live, live_dir = _start_load(root, data)
    try:
        assert {killed_dir, live_dir, "import-unlocked"} <= _staging(root)
        barque(root, "image", "prune", "-f")
        assert _staging(root) == {live_dir}
        # the live load was not disturbed: it finishes and cleans up after itself
        out, err = live.communicate(data[len(data) // 2:], timeout=120)
        assert live.returncode == 0, err.decode()
        assert out == b"Loaded image: barque-fixtures/layers:1\n"
    finally:
        if live.poll() is None:
            live.kill()
            live.wait()
    assert _staging(root) == set()
    assert barque(root, "images", "-q", "--no-trunc").stdout.split() == [LAYERS_ID]
