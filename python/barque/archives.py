"""Image archives: ``save`` (docker-archive or OCI layout tar) and ``load`` (either).

``save`` streams: layers come from the content store's compressed blobs; a docker-archive
wants uncompressed tars, so each is decompressed into scratch space with its DiffID checked
before it is written (a tar header needs the size first). An OCI archive carries the blobs as
stored, byte for byte.

``load`` never trusts the archive. Every member is copied to scratch space (names checked:
no absolute paths, no ``..``, no devices; links only to other members) and hashed on the way;
then every image is checked completely (config digest, each layer's DiffID against the
config's ``rootfs.diff_ids``, OCI blob digests and sizes) before anything enters the store,
and :func:`barque.layers.add_images` adds snapshots and blobs before any image record. A
refused archive leaves the store as it was.

These are the implementation of :meth:`barque.images.ImageService.save`, ``load`` and
``import_``, which are the public API: each takes a ``progress`` (:class:`barque.progress.
Progress`) and a ``cancel`` event, checked between chunks, never while the store is half
changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import msgspec

from .digest import chain_ids, is_digest, sha256_digest
from .errors import DigestMismatchError, ImageNotFoundError, InvalidArchiveError
from .progress import NullProgress, check_cancelled
from .layers import (
    MEDIA_TYPE_DOCKER_LAYER_GZIP,
    MEDIA_TYPE_OCI_CONFIG,
    MEDIA_TYPE_OCI_MANIFEST,
    OCI_LAYER_TYPES,
    PendingImage,
    StagedLayer,
    add_images,
    check_layer_compression,
    compress_layer,
    compression_of_media_type,
    decompressed,
    diff_id_of,
    parse_config,
    sniff_compression,
)
from .reference import Reference

if TYPE_CHECKING:
    from .engine import Engine
    from .progress import Cancel, Progress
    from .store.metadata import ImageRecord

MEDIA_TYPE_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
_CHUNK = 1 << 20
#: Largest JSON document (manifest.json, index.json, a manifest or config) read into memory.
_MAX_DOCUMENT = 16 << 20
#: Seconds between two byte-count reports of one layer (a report per chunk would flood).
_REPORT_INTERVAL = 0.1


class _Watch:
    """One operation's progress and cancel event, with the throttled byte-count report its
    loops share."""

    def __init__(self, what: str, progress: Progress | None, cancel: Cancel | None) -> None:
        self.what = what
        self.progress: Progress = progress or NullProgress()
        self.cancel = cancel
        self._last = 0.0

    def check(self) -> None:
        check_cancelled(self.cancel, self.what)

    def bytes(self, layer_id: str, status: str, current: int, total: int | None) -> None:
        """A chunk done: stop here if cancelled, report now and then."""
        import time

        self.check()
        now = time.monotonic()
        if now - self._last >= _REPORT_INTERVAL or current == total:
            self._last = now
            self.progress.layer(layer_id, status, current, total)


class _WatchedReader:
    """A binary stream whose reads check the cancel event and report the bytes read."""

    def __init__(self, f: IO[bytes], watch: _Watch, layer_id: str, status: str,
                 total: int | None = None) -> None:
        self._f = f
        self._watch = watch
        self._layer_id = layer_id
        self._status = status
        self._total = total
        self.done = 0

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self.done += len(data)
        self._watch.bytes(self._layer_id, self._status, self.done, self._total)
        return data


# -- save ---------------------------------------------------------------------------------


def save(engine: Engine, names: list[str], out: IO[bytes], *, format: str = "docker",
         progress: Progress | None = None, cancel: Cancel | None = None) -> None:
    """Write the images ``names`` (IDs, tags or digest references) to ``out`` as a tar:
    ``docker`` (docker-archive, as ``docker save``) or ``oci`` (an OCI image layout). Images
    named by a tag carry that tag, as Docker does; named by ID they carry none. See
    :meth:`barque.images.ImageService.save`."""
    watch = _Watch("save", progress, cancel)
    if format not in ("docker", "oci"):
        raise InvalidArchiveError(f"unsupported archive format {format!r}: use docker or oci")
    if not names:
        raise InvalidArchiveError("save needs at least one image")
    images: dict[str, list[Reference]] = {}
    for name in names:
        image_id = engine.images.resolve_id(name)
        refs = images.setdefault(image_id, [])
        ref = _tag_of(name, image_id)
        if ref is not None and ref not in refs:
            refs.append(ref)
    records = []
    for image_id, refs in images.items():
        record = engine.store.metadata.get_image(image_id)
        if record is None:  # removed since it was resolved
            raise ImageNotFoundError(f"No such image: {image_id}")
        records.append((record, refs))
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        if format == "docker":
            _DockerArchiveWriter(engine, tar, watch).write(records)
        else:
            _OciArchiveWriter(engine, tar, watch).write(records)


def _tag_of(name: str, image_id: str) -> Reference | None:
    text = name.strip().removeprefix("sha256:")
    if text and all(c in "0123456789abcdef" for c in text) and image_id[7:].startswith(text):
        return None  # an ID: Docker saves it untagged
    ref = Reference.parse(name.strip())
    return ref if ref.tag and not ref.digest else None


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, _BytesReader(data))


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    tar.addfile(info)


class _BytesReader:
    def __init__(self, data: bytes) -> None:
        import io

        self._io = io.BytesIO(data)

    def read(self, n: int = -1) -> bytes:
        return self._io.read(n)


class _DockerArchiveWriter:
    """Docker 20.10's layout: ``<v1 id>/{VERSION,json,layer.tar}`` per layer, ``<hex>.json``
    per config, then ``manifest.json`` and ``repositories``."""

    def __init__(self, engine: Engine, tar: tarfile.TarFile, watch: _Watch) -> None:
        self.engine = engine
        self.tar = tar
        self.watch = watch
        self.written: set[str] = set()

    def write(self, images: list[tuple[ImageRecord, list[Reference]]]) -> None:
        manifest: list[dict[str, Any]] = []
        repositories: dict[str, dict[str, str]] = {}
        for record, refs in images:
            config = json.loads(record.config)
            parent = ""
            layer_names = []
            chains = chain_ids([layer.diff_id for layer in record.layers])
            for i, (layer, chain_id) in enumerate(zip(record.layers, chains)):
                # A stable v1 ID per (parent, chain), as Docker's v1.CreateID is.
                v1_id = hashlib.sha256(f"{parent} {chain_id}".encode()).hexdigest()
                top = i == len(record.layers) - 1
                if v1_id not in self.written:
                    self._write_layer(v1_id, parent, layer, config if top else None)
                    self.written.add(v1_id)
                layer_names.append(f"{v1_id}/layer.tar")
                parent = v1_id
            config_name = f"{record.id[7:]}.json"
            if config_name not in self.written:
                _add_bytes(self.tar, config_name, record.config)
                self.written.add(config_name)
            manifest.append({"Config": config_name,
                             "RepoTags": [ref.familiar for ref in refs] or None,
                             "Layers": layer_names})
            for ref in refs:
                repositories.setdefault(ref.familiar_name, {})[ref.tag or "latest"] = parent
        _add_bytes(self.tar, "manifest.json", json.dumps(manifest, separators=(",", ":")).encode())
        if repositories:
            _add_bytes(self.tar, "repositories",
                       json.dumps(repositories, separators=(",", ":")).encode() + b"\n")

    def _write_layer(self, v1_id: str, parent: str, layer: Any,
                     config: dict[str, Any] | None) -> None:
        v1: dict[str, Any] = {"id": v1_id}
        if parent:
            v1["parent"] = parent
        if config is not None:  # the top layer's json carries the image config, as Docker's
            v1.update({k: v for k, v in config.items() if k not in ("rootfs", "history", "id")})
        else:
            v1.update({"created": "1970-01-01T00:00:00Z", "container_config": {}, "os": "linux"})
        _add_dir(self.tar, f"{v1_id}/")
        _add_bytes(self.tar, f"{v1_id}/VERSION", b"1.0")
        _add_bytes(self.tar, f"{v1_id}/json", json.dumps(v1, separators=(",", ":")).encode())
        with self._uncompressed(layer) as (f, size):
            info = tarfile.TarInfo(f"{v1_id}/layer.tar")
            info.size = size
            info.mode = 0o644
            self.tar.addfile(info, _WatchedReader(f, self.watch, layer.diff_id[7:19],
                                                  "Saving layer", size))
        self.watch.progress.layer(layer.diff_id[7:19], "Layer saved")

    @contextmanager
    def _uncompressed(self, layer: Any) -> Iterator[tuple[IO[bytes], int]]:
        """The layer's tar in a scratch file, checked against its DiffID."""
        store = self.engine.store
        compression = compression_of_media_type(layer.media_type)
        with tempfile.TemporaryFile(dir=store.paths.tmp) as scratch:
            digest = hashlib.sha256()
            with open(store.content.path(layer.blob_digest), "rb") as raw, \
                    decompressed(raw, compression) as f:
                while chunk := f.read(_CHUNK):
                    self.watch.check()
                    digest.update(chunk)
                    scratch.write(chunk)
            actual = "sha256:" + digest.hexdigest()
            if actual != layer.diff_id:
                raise DigestMismatchError(f"layer {layer.blob_digest} in the store unpacks to "
                                          f"{actual}, not its DiffID {layer.diff_id}")
            size = scratch.tell()
            scratch.seek(0)
            yield scratch, size


class _OciArchiveWriter:
    """An OCI image layout: ``oci-layout``, ``blobs/sha256/*`` (layers as stored), and
    ``index.json`` with one entry per tag (``io.containerd.image.name`` holds the full name,
    ``org.opencontainers.image.ref.name`` the tag, as Docker 25 writes them)."""

    def __init__(self, engine: Engine, tar: tarfile.TarFile, watch: _Watch) -> None:
        self.engine = engine
        self.tar = tar
        self.watch = watch
        self.written: set[str] = set()

    def write(self, images: list[tuple[ImageRecord, list[Reference]]]) -> None:
        _add_bytes(self.tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        _add_dir(self.tar, "blobs/")
        _add_dir(self.tar, "blobs/sha256/")
        entries = []
        for record, refs in images:
            for layer in record.layers:
                self._blob_from_store(layer.blob_digest)
            self._blob(record.id, record.config)
            manifest = self._manifest(record)
            digest = self._blob(sha256_digest(manifest), manifest)
            descriptor = {"mediaType": MEDIA_TYPE_OCI_MANIFEST, "digest": digest,
                          "size": len(manifest)}
            for ref in refs:
                entries.append({**descriptor, "annotations": {
                    "io.containerd.image.name": str(ref),
                    "org.opencontainers.image.ref.name": ref.tag or "latest"}})
            if not refs:
                entries.append(descriptor)
        index = {"schemaVersion": 2, "mediaType": MEDIA_TYPE_OCI_INDEX, "manifests": entries}
        _add_bytes(self.tar, "index.json", json.dumps(index, separators=(",", ":")).encode())

    def _manifest(self, record: ImageRecord) -> bytes:
        """The stored manifest when it is OCI already (its digest is kept), else the same
        image described with OCI media types (the blobs are the same bytes)."""
        if record.manifest_media_type == MEDIA_TYPE_OCI_MANIFEST:
            return record.manifest
        document = {
            "schemaVersion": 2,
            "mediaType": MEDIA_TYPE_OCI_MANIFEST,
            "config": {"mediaType": MEDIA_TYPE_OCI_CONFIG, "digest": record.id,
                       "size": len(record.config)},
            "layers": [{"mediaType": OCI_LAYER_TYPES[compression_of_media_type(x.media_type)],
                        "digest": x.blob_digest, "size": x.blob_size} for x in record.layers],
        }
        return json.dumps(document, separators=(",", ":")).encode()

    def _blob(self, digest: str, data: bytes) -> str:
        if digest not in self.written:
            _add_bytes(self.tar, f"blobs/sha256/{digest[7:]}", data)
            self.written.add(digest)
        return digest

    def _blob_from_store(self, digest: str) -> None:
        if digest in self.written:
            return
        path = self.engine.store.content.path(digest)
        with open(path, "rb") as f:
            info = tarfile.TarInfo(f"blobs/sha256/{digest[7:]}")
            info.size = os.fstat(f.fileno()).st_size
            info.mode = 0o644
            hashing = _HashingReader(_WatchedReader(f, self.watch, digest[7:19], "Saving layer",
                                                    info.size))
            self.tar.addfile(info, hashing)
        if hashing.digest() != digest:
            raise DigestMismatchError(f"blob {digest} in the store is corrupt")
        self.watch.progress.layer(digest[7:19], "Layer saved")
        self.written.add(digest)


class _HashingReader:
    def __init__(self, f: IO[bytes] | _WatchedReader) -> None:
        self._f = f
        self._hash = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self._hash.update(data)
        return data

    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()


# -- load ---------------------------------------------------------------------------------


class _Member(msgspec.Struct):
    path: Path
    digest: str
    size: int


class _StagedArchive(msgspec.Struct):
    """The archive's regular files copied to scratch space, by normalised name."""

    members: dict[str, _Member] = msgspec.field(default_factory=dict)
    links: dict[str, str] = msgspec.field(default_factory=dict)

    def find(self, name: str) -> _Member | None:
        key = _normalise(name)
        for _ in range(16):  # links to links, bounded
            if key in self.members:
                return self.members[key]
            if key not in self.links:
                return None
            key = self.links[key]
        return None

    def read(self, name: str, what: str) -> bytes:
        member = self.find(name)
        if member is None:
            raise InvalidArchiveError(f"{what} {name!r} is not in the archive")
        if member.size > _MAX_DOCUMENT:
            raise InvalidArchiveError(f"{what} {name!r} is too large ({member.size} bytes)")
        return member.path.read_bytes()


def _normalise(name: str) -> str:
    """A member name made canonical, or InvalidArchiveError if it could leave the archive."""
    if name.startswith("/") or "\x00" in name:
        raise InvalidArchiveError(f"archive entry {name!r} is an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidArchiveError(f"archive entry {name!r} leaves the archive (path traversal)")
    if not parts:
        return "."
    return "/".join(parts)


def _stage(source: IO[bytes], scratch: Path, watch: _Watch) -> _StagedArchive:
    staged = _StagedArchive()
    try:
        with tarfile.open(fileobj=source, mode="r|*") as tar:
            for n, member in enumerate(tar):
                name = _normalise(member.name)
                if name in staged.members or name in staged.links:
                    raise InvalidArchiveError(f"archive entry {name!r} appears twice")
                if member.isdir():
                    continue
                if member.isreg():
                    path = scratch / f"m{n}"
                    digest = hashlib.sha256()
                    reader = tar.extractfile(member)
                    assert reader is not None
                    # Docker's load reports per layer: a member is a layer or a document.
                    shown = (name.split("/")[-2] if name.endswith("/layer.tar") else
                             posixpath.basename(name))[:12]
                    done = 0
                    with open(path, "wb") as out:
                        while chunk := reader.read(_CHUNK):
                            digest.update(chunk)
                            out.write(chunk)
                            done += len(chunk)
                            watch.bytes(shown, "Loading layer", done, member.size)
                    staged.members[name] = _Member(path, "sha256:" + digest.hexdigest(),
                                                   member.size)
                elif member.issym():
                    if member.linkname.startswith("/"):
                        raise InvalidArchiveError(
                            f"archive entry {name!r} links outside the archive")
                    staged.links[name] = _normalise(
                        posixpath.join(posixpath.dirname(name), member.linkname))
                elif member.islnk():
                    staged.links[name] = _normalise(member.linkname)
                else:
                    raise InvalidArchiveError(
                        f"archive entry {name!r} is a device, fifo or other special file")
    except (tarfile.TarError, EOFError, zlib.error) as e:
        raise InvalidArchiveError(f"archive is truncated or corrupt: {e}") from e
    if not staged.members:
        raise InvalidArchiveError("archive is empty")
    return staged


def load(engine: Engine, source: IO[bytes], *, progress: Progress | None = None,
         cancel: Cancel | None = None) -> list[str]:
    """Load a docker-archive or OCI layout tar read from ``source`` into the store; returns
    Docker's report lines (``Loaded image: REF`` per tag, ``Loaded image ID: ID`` for an
    untagged image). All or nothing: a bad archive raises and leaves the store unchanged.
    See :meth:`barque.images.ImageService.load`."""
    # Fail before reading anything if the native core is missing.
    from . import _native

    watch = _Watch("load", progress, cancel)
    with engine.store.staging("load") as scratch:
        staged = _stage(source, scratch, watch)
        if staged.find("manifest.json") is not None:
            pending = _plan_docker_archive(staged, scratch)
        elif staged.find("index.json") is not None:
            pending = _plan_oci_archive(staged)
        else:
            raise InvalidArchiveError(
                "archive has neither manifest.json (docker-archive) nor index.json (OCI layout)")
        watch.check()  # the last point where nothing has entered the store
        image_ids = add_images(engine, pending)
    lines = []
    for image_id, image in zip(image_ids, pending):
        if image.tags:
            lines += [f"Loaded image: {Reference.parse(t).familiar}" for t in image.tags]
        else:
            lines.append(f"Loaded image ID: {image_id}")
    lines = list(dict.fromkeys(lines))
    for line in lines:
        watch.progress.message(line)
    return lines


def _tags(values: Any, where: str) -> list[str]:
    from .errors import InvalidReferenceError

    if values is None:
        return []
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise InvalidArchiveError(f"{where}: RepoTags is not a list of names")
    out = []
    for value in values:
        try:
            ref = Reference.parse(value)
        except InvalidReferenceError as e:
            raise InvalidArchiveError(f"{where}: invalid tag {value!r}: {e}") from e
        if ref.digest or not ref.tag:
            raise InvalidArchiveError(f"{where}: {value!r} is not a tag")
        out.append(str(ref))
    return out


def _plan_docker_archive(staged: _StagedArchive, scratch: Path) -> list[PendingImage]:
    try:
        manifest = json.loads(staged.read("manifest.json", "manifest"))
    except ValueError as e:
        raise InvalidArchiveError(f"manifest.json is not valid JSON: {e}") from e
    if not isinstance(manifest, list) or not manifest or not all(
            isinstance(e, dict) for e in manifest):
        raise InvalidArchiveError("manifest.json is not a list of images")
    gzipped: dict[str, StagedLayer] = {}  # by member: a layer shared by two images
    pending = []
    for entry in manifest:
        config_name = entry.get("Config")
        layer_names = entry.get("Layers")
        if not isinstance(config_name, str) or not isinstance(layer_names, list) or not all(
                isinstance(n, str) for n in layer_names):
            raise InvalidArchiveError("manifest.json: an entry lacks Config or Layers")
        config = staged.read(config_name, "config")
        image_id = sha256_digest(config)
        named = _digest_in_name(config_name)
        if named and named != image_id:
            raise DigestMismatchError(f"config {config_name} hashes to {image_id}")
        diff_ids = parse_config(config, config_name)["rootfs"]["diff_ids"]
        if len(diff_ids) != len(layer_names):
            raise InvalidArchiveError(
                f"manifest.json lists {len(layer_names)} layers for {config_name}, its config "
                f"{len(diff_ids)} diff_ids")
        layers = []
        for name, diff_id in zip(layer_names, diff_ids):
            member = staged.find(name)
            if member is None:
                raise InvalidArchiveError(f"manifest.json names layer {name!r}, which is not "
                                          "in the archive")
            key = str(member.path)
            if key not in gzipped:
                gzipped[key] = _docker_layer(member, name, diff_id, scratch)
            layer = gzipped[key]
            if layer.diff_id != diff_id:
                raise DigestMismatchError(f"layer {name}: content is {layer.diff_id}, the config "
                                          f"expects {diff_id}")
            layers.append(layer)
        pending.append(PendingImage(config, [], layers, _tags(entry.get("RepoTags"),
                                                              "manifest.json")))
    return pending


def _digest_in_name(name: str) -> str | None:
    """The digest a member's name promises: ``<hex>.json`` or ``blobs/sha256/<hex>``."""
    base = posixpath.basename(name).removesuffix(".json")
    candidate = "sha256:" + base
    return candidate if is_digest(candidate) else None


def _docker_layer(member: _Member, name: str, diff_id: str, scratch: Path) -> StagedLayer:
    """A docker-archive layer checked against ``diff_id``; an uncompressed one (what Docker
    writes) is gzip-compressed for the store, so a later push has a compressed blob."""
    with open(member.path, "rb") as f:
        compression = sniff_compression(f.read(8))
    if compression == "none":
        if member.digest != diff_id:
            raise DigestMismatchError(f"layer {name}: content hashes to {member.digest}, the "
                                      f"config expects {diff_id}")
        with open(member.path, "rb") as f:
            return compress_layer(f, scratch, "gzip")
    if compression not in ("gzip", "zstd"):
        raise InvalidArchiveError(f"layer {name}: unsupported compression {compression}")
    actual = diff_id_of(member.path, compression)
    media_type = MEDIA_TYPE_DOCKER_LAYER_GZIP if compression == "gzip" else OCI_LAYER_TYPES["zstd"]
    return StagedLayer(actual, member.digest, member.size, media_type, member.path)


def _plan_oci_archive(staged: _StagedArchive) -> list[PendingImage]:
    def blob(descriptor: Any, what: str) -> _Member:
        if not isinstance(descriptor, dict) or not is_digest(descriptor.get("digest")):
            raise InvalidArchiveError(f"{what}: invalid descriptor")
        digest = descriptor["digest"]
        member = staged.find(f"blobs/sha256/{digest[7:]}")
        if member is None:
            raise InvalidArchiveError(f"{what} {digest} is not in the archive")
        if member.digest != digest:
            raise DigestMismatchError(f"{what} {digest}: content hashes to {member.digest}")
        if descriptor.get("size") != member.size:
            raise DigestMismatchError(f"{what} {digest}: size {member.size}, descriptor says "
                                      f"{descriptor.get('size')}")
        return member

    def document(member: _Member, what: str) -> dict[str, Any]:
        if member.size > _MAX_DOCUMENT:
            raise InvalidArchiveError(f"{what} is too large")
        try:
            value = json.loads(member.path.read_bytes())
        except ValueError as e:
            raise InvalidArchiveError(f"{what} is not valid JSON: {e}") from e
        if not isinstance(value, dict):
            raise InvalidArchiveError(f"{what} is not a JSON object")
        return value

    index_member = staged.find("index.json")
    assert index_member is not None  # how load() chose this format
    index = document(index_member, "index.json")
    by_manifest: dict[str, PendingImage] = {}
    layer_cache: dict[str, StagedLayer] = {}
    descriptors = index.get("manifests")
    if not isinstance(descriptors, list) or not descriptors:
        raise InvalidArchiveError("index.json lists no manifests")
    for descriptor in descriptors:
        member = blob(descriptor, "manifest")
        manifest = document(member, f"manifest {member.digest}")
        media_type = manifest.get("mediaType") or descriptor.get("mediaType")
        if media_type in (MEDIA_TYPE_OCI_INDEX,
                          "application/vnd.docker.distribution.manifest.list.v2+json"):
            descriptor, member, manifest = _pick_platform(manifest, blob, document)
            media_type = manifest.get("mediaType") or descriptor.get("mediaType")
        if member.digest not in by_manifest:
            by_manifest[member.digest] = _oci_image(manifest, member, media_type, blob,
                                                    layer_cache)
        tag = _oci_tag(descriptor.get("annotations") or {})
        if tag and tag not in by_manifest[member.digest].tags:
            by_manifest[member.digest].tags.append(tag)
    return list(by_manifest.values())


def _pick_platform(index: dict[str, Any], blob: Any, document: Any) -> tuple[Any, Any, Any]:
    from .registry.platform import Platform, host_platform

    host = host_platform()
    for descriptor in index.get("manifests") or []:
        platform = descriptor.get("platform") if isinstance(descriptor, dict) else None
        if not isinstance(platform, dict):
            continue
        candidate = Platform(str(platform.get("os", "")), str(platform.get("architecture", "")),
                             platform.get("variant"))
        if host.matches(candidate):
            member = blob(descriptor, "manifest")
            return descriptor, member, document(member, f"manifest {member.digest}")
    raise InvalidArchiveError(f"the archive's image index has no manifest for {host}")


def _oci_image(manifest: dict[str, Any], member: _Member, media_type: str, blob: Any,
               layer_cache: dict[str, StagedLayer]) -> PendingImage:
    from .registry.manifest import MANIFEST_MEDIA_TYPES

    if media_type not in MANIFEST_MEDIA_TYPES:
        raise InvalidArchiveError(f"manifest {member.digest}: unsupported type {media_type!r}")
    config_member = blob(manifest.get("config"), "config")
    config = config_member.path.read_bytes()
    diff_ids = parse_config(config, f"config {config_member.digest}")["rootfs"]["diff_ids"]
    descriptors = manifest.get("layers")
    if not isinstance(descriptors, list) or len(descriptors) != len(diff_ids):
        raise InvalidArchiveError(f"manifest {member.digest}: its layers do not match the "
                                  "config's diff_ids")
    layers = []
    for descriptor, diff_id in zip(descriptors, diff_ids):
        layer_member = blob(descriptor, "layer")
        layer_type = str(descriptor.get("mediaType", ""))
        if layer_member.digest not in layer_cache:
            actual = diff_id_of(layer_member.path, compression_of_media_type(layer_type))
            layer_cache[layer_member.digest] = StagedLayer(
                actual, layer_member.digest, layer_member.size, layer_type, layer_member.path)
        layer = layer_cache[layer_member.digest]
        if layer.diff_id != diff_id:
            raise DigestMismatchError(f"layer {layer_member.digest}: content is {layer.diff_id}, "
                                      f"the config expects {diff_id}")
        layers.append(layer)
    return PendingImage(config, [], layers, [], member.path.read_bytes(), media_type)


def _oci_tag(annotations: dict[str, Any]) -> str | None:
    """The full name Docker and containerd write, else a ref.name that is a full reference
    (a bare tag such as ``1`` names no repository: the image loads untagged)."""
    from .errors import InvalidReferenceError

    for key in ("io.containerd.image.name", "org.opencontainers.image.ref.name"):
        value = annotations.get(key)
        if not isinstance(value, str) or not value:
            continue
        if key == "org.opencontainers.image.ref.name" and not ("/" in value or ":" in value):
            continue
        try:
            ref = Reference.parse(value)
        except InvalidReferenceError:
            continue
        if ref.tag and not ref.digest:
            return str(ref)
    return None


# -- import -------------------------------------------------------------------------------


def now_rfc3339() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def import_rootfs(engine: Engine, source: IO[bytes], *, source_name: str,
                  reference: str | None = None, changes: list[str] | None = None,
                  message: str = "", compression: str = "gzip",
                  progress: Progress | None = None, cancel: Cancel | None = None) -> str:
    """``docker import``: a one-layer image from a root filesystem tar (plain, gzip, bzip2,
    xz or zstd) read from ``source``; returns the image ID. The tar goes through the same
    safe extractor as a pulled layer; the layer is stored ``compression``-compressed (gzip or
    zstd), whatever the tarball's own compression was. See
    :meth:`barque.images.ImageService.import_`."""
    watch = _Watch("import", progress, cancel)
    import io

    from .config_changes import apply_changes
    from .layers import add_image
    from .registry.platform import host_platform

    tags = []
    if reference:
        ref = Reference.parse(reference)
        if ref.digest:
            raise InvalidArchiveError(f"cannot import to a digest reference {reference!r}")
        tags = [str(ref)]
    check_layer_compression(compression)  # bad arguments fail before any reading
    image_config = apply_changes({}, changes or [])
    # Sniffing needs peek(): a stream without it gets a buffer (BufferedReader only needs its
    # readinto, which typeshed cannot express for an IO[bytes]).
    reader = source if hasattr(source, "peek") else \
        io.BufferedReader(source)  # type: ignore[type-var]
    source_compression = sniff_compression(reader.peek(8)[:8])
    with engine.store.staging("import") as scratch:
        try:
            with decompressed(reader, source_compression) as f:
                watched = _WatchedReader(f, watch, "rootfs", "Importing")
                # read() is all compress_layer uses; its signature asks for a whole IO[bytes].
                layer = compress_layer(watched, scratch, compression)  # type: ignore[arg-type]
        except (EOFError, zlib.error, ValueError) as e:
            raise InvalidArchiveError(
                f"{source_name}: corrupt {source_compression} stream: {e}") from e
        created = now_rfc3339()
        platform = host_platform()
        config: dict[str, Any] = {
            "architecture": platform.architecture,
            "comment": message,
            "config": image_config,
            "created": created,
            "history": [{"created": created,
                         "comment": message or f"Imported from {source_name}"}],
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
        }
        if platform.variant:
            config["variant"] = platform.variant
        data = json.dumps(config, separators=(",", ":")).encode()
        watch.check()  # the last point where nothing has entered the store
        image_id = add_image(engine, data, [], [layer], tags=tags)
    watch.progress.layer(layer.diff_id[7:19], "Imported")
    return image_id
