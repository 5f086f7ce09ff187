"""Layers made on this machine (load, import, commit) and the images that record them.

A layer is written once as a gzip (or, when asked, zstd) blob into the store's scratch space
while both digests are computed in the same pass (DiffID over the tar, digest over the
compressed bytes); the blob is kept, so a later push sends the same bytes every time. The native
safe extractor then unpacks that blob into a snapshot, re-verifying the DiffID, so a hostile
tar is refused exactly as a pulled one would be. :func:`add_image` commits blobs, snapshots and
finally the image record, or leaves the store as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import msgspec

from .digest import chain_ids, sha256_digest, validate_digest
from .errors import DigestMismatchError, InvalidLayerError
from .overlay import MAX_LAYERS
from .store.metadata import LayerRecord, NewImage
from .store.snapshots import current_boot_id

if TYPE_CHECKING:
    from .engine import Engine
    from .registry.manifest import Compression

MEDIA_TYPE_DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MEDIA_TYPE_OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_TYPE_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MEDIA_TYPE_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MEDIA_TYPE_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_TYPE_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"

#: Docker's media types for each compression, and their OCI equivalents (same bytes).
DOCKER_LAYER_TYPES = {"gzip": MEDIA_TYPE_DOCKER_LAYER_GZIP,
                      "none": "application/vnd.docker.image.rootfs.diff.tar"}
OCI_LAYER_TYPES = {"gzip": MEDIA_TYPE_OCI_LAYER_GZIP, "none": "application/vnd.oci.image.layer.v1.tar",
                   "zstd": "application/vnd.oci.image.layer.v1.tar+zstd"}

_CHUNK = 1 << 20


class StagedLayer(msgspec.Struct):
    """A verified layer blob waiting to enter the store. ``path`` is a file in the store's
    scratch space (renamed into ``blobs/`` on commit), or None when the blob is stored already."""

    diff_id: str
    digest: str
    size: int
    media_type: str
    path: Path | None


class GzipLayerWriter:
    """A binary file to write an uncompressed layer tar into: it hashes the tar (DiffID) and
    writes it gzip-compressed (reproducible: no name, mtime 0) to a scratch file, hashing that
    too. ``tarfile`` can write straight into it."""

    def __init__(self, scratch: Path, level: int = 6) -> None:
        fd, name = tempfile.mkstemp(dir=scratch, prefix=".layer-", suffix=".gz")
        self.path = Path(name)
        self._file = os.fdopen(fd, "wb")
        self._tar_hash = hashlib.sha256()
        self._blob_hash = hashlib.sha256()
        self._size = 0
        # wbits 31: a gzip wrapper whose header zlib fills with mtime 0 and no file name.
        self._compressor = zlib.compressobj(level, zlib.DEFLATED, 31)

    def write(self, data: bytes) -> int:
        self._tar_hash.update(data)
        self._emit(self._compressor.compress(data))
        return len(data)

    def _emit(self, data: bytes) -> None:
        if data:
            self._blob_hash.update(data)
            self._size += len(data)
            self._file.write(data)

    def finish(self) -> StagedLayer:
        self._emit(self._compressor.flush())
        self._file.close()
        return StagedLayer("sha256:" + self._tar_hash.hexdigest(),
                           "sha256:" + self._blob_hash.hexdigest(), self._size,
                           MEDIA_TYPE_DOCKER_LAYER_GZIP, self.path)

    def abort(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)


class ZstdLayerWriter:
    """As :class:`GzipLayerWriter`, zstd-compressed by the native core (level 3, checksum;
    reproducible however ``tarfile`` chunks its writes). The media type is OCI's: Docker has
    none for zstd, so an image with such a layer gets an OCI manifest."""

    def __init__(self, scratch: Path) -> None:
        from . import _native

        fd, name = tempfile.mkstemp(dir=scratch, prefix=".layer-", suffix=".zst")
        os.close(fd)
        self.path = Path(name)
        try:
            self._native = _native.ZstdLayerWriter(name)
        except BaseException:
            self.path.unlink(missing_ok=True)
            raise

    def write(self, data: bytes) -> int:
        return self._native.write(bytes(data))

    def finish(self) -> StagedLayer:
        result = self._native.finish()
        return StagedLayer(result["diff_id"], result["digest"], result["size"],
                           OCI_LAYER_TYPES["zstd"], self.path)

    def abort(self) -> None:
        self._native.abort()
        self.path.unlink(missing_ok=True)


#: What ``--compression`` accepts for layers made here.
LAYER_COMPRESSIONS = ("gzip", "zstd")


def check_layer_compression(compression: str) -> str:
    """``compression`` if layers can be made with it, else InvalidArgumentError."""
    from .errors import InvalidArgumentError

    if compression not in LAYER_COMPRESSIONS:
        raise InvalidArgumentError(f"unsupported compression {compression!r}: use "
                                   + " or ".join(LAYER_COMPRESSIONS))
    return compression


def layer_writer(scratch: Path, compression: str = "gzip") -> GzipLayerWriter | ZstdLayerWriter:
    """A writer for a new layer blob compressed with ``compression`` (gzip or zstd)."""
    if check_layer_compression(compression) == "zstd":
        return ZstdLayerWriter(scratch)
    return GzipLayerWriter(scratch)


def compress_layer(source: IO[bytes], scratch: Path, compression: str = "gzip") -> StagedLayer:
    """Compress an uncompressed layer tar read from ``source`` into a staged blob."""
    writer = layer_writer(scratch, compression)
    try:
        while chunk := source.read(_CHUNK):
            writer.write(chunk)
        return writer.finish()
    except BaseException:
        writer.abort()
        raise


def sniff_compression(head: bytes) -> str:
    """``gzip``, ``zstd``, ``bzip2``, ``xz`` or ``none`` from a stream's first bytes."""
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return "zstd"
    if head.startswith(b"BZh"):
        return "bzip2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    return "none"


@contextmanager
def decompressed(source: IO[bytes], compression: str) -> Iterator[IO[bytes]]:
    """``source`` read through the decompressor for ``compression`` (zstd by the ``zstd``
    tool: Python has no zstd decoder here)."""
    import bz2
    import gzip
    import lzma

    if compression == "none":
        yield source
    elif compression == "gzip":
        with gzip.GzipFile(fileobj=source, mode="rb") as f:
            # A binary file in all but name: typeshed's GzipFile is no IO[bytes] subclass.
            yield f  # type: ignore[misc]
    elif compression == "bzip2":
        with bz2.BZ2File(source, "rb") as f:
            yield f
    elif compression == "xz":
        with lzma.LZMAFile(source, "rb") as f:
            yield f
    elif compression == "zstd":
        proc = subprocess.Popen(["zstd", "-dcq"], stdin=source, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
        stdout = proc.stdout
        assert stdout is not None  # stdout=PIPE
        try:
            yield stdout
        finally:
            stdout.close()
            if proc.wait() != 0:
                raise InvalidLayerError("zstd stream is corrupt")
    else:
        raise InvalidLayerError(f"unsupported compression {compression!r}")


def diff_id_of(path: Path, compression: str) -> str:
    """The DiffID (sha256 of the uncompressed tar) of a blob file."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as raw, decompressed(raw, compression) as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
    except (OSError, EOFError, zlib.error) as e:
        if isinstance(e, OSError) and e.errno is not None:
            raise
        raise InvalidLayerError(f"corrupt {compression} stream: {e}") from e
    return "sha256:" + digest.hexdigest()


def compression_of_media_type(media_type: str) -> Compression:
    from .registry.manifest import LAYER_MEDIA_TYPES

    try:
        return LAYER_MEDIA_TYPES[media_type]
    except KeyError:
        raise InvalidLayerError(f"unsupported layer media type {media_type!r}") from None


def make_manifest(config: bytes, layers: list[LayerRecord]) -> tuple[bytes, str]:
    """A Docker schema 2 manifest for a locally made image (what Docker pushes), or an OCI one
    when a layer has no Docker media type (zstd)."""
    compressions = [compression_of_media_type(layer.media_type) for layer in layers]
    docker = all(c in DOCKER_LAYER_TYPES for c in compressions)
    types = DOCKER_LAYER_TYPES if docker else OCI_LAYER_TYPES
    manifest_type = MEDIA_TYPE_DOCKER_MANIFEST if docker else MEDIA_TYPE_OCI_MANIFEST
    document = {
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": {"mediaType": MEDIA_TYPE_DOCKER_CONFIG if docker else MEDIA_TYPE_OCI_CONFIG,
                   "size": len(config), "digest": sha256_digest(config)},
        "layers": [{"mediaType": types[c], "size": layer.blob_size, "digest": layer.blob_digest}
                   for c, layer in zip(compressions, layers)],
    }
    return json.dumps(document, indent=3).encode(), manifest_type


def parse_config(data: bytes, where: str) -> dict[str, Any]:
    """An image config with a usable ``rootfs.diff_ids`` (validated digests)."""
    from .errors import InvalidManifestError

    try:
        config: dict[str, Any] = json.loads(data)  # a dict once the checks below pass
    except ValueError as e:
        raise InvalidManifestError(f"{where}: image config is not valid JSON: {e}") from e
    rootfs = config.get("rootfs") if isinstance(config, dict) else None
    if not isinstance(rootfs, dict) or not isinstance(rootfs.get("diff_ids"), list):
        raise InvalidManifestError(f"{where}: image config has no rootfs.diff_ids")
    for diff_id in rootfs["diff_ids"]:
        validate_digest(diff_id, f"{where}: diff_id")
    return config


class PendingImage(msgspec.Struct):
    """An image to record: ``base`` layers already in the store, then ``new`` staged ones."""

    config: bytes
    base: list[LayerRecord]
    new: list[StagedLayer]
    tags: list[str]
    manifest: bytes | None = None
    manifest_media_type: str = ""


def add_image(engine: Engine, config: bytes, base: list[LayerRecord], new: list[StagedLayer],
              *, tags: list[str], manifest: bytes | None = None,
              manifest_media_type: str = "") -> str:
    """Record one image; see :func:`add_images`. Returns its ID."""
    return add_images(engine, [PendingImage(config, base, new, tags, manifest,
                                            manifest_media_type)])[0]


def add_images(engine: Engine, images: list[PendingImage]) -> list[str]:
    """Record images whose new layers' DiffIDs the caller has checked: unpack those layers
    into snapshots with the safe extractor, move their blobs into place, store configs and
    manifests, and only then add the image records with their tags. Returns the image IDs.
    On any failure before the records, what this call added (snapshots, blobs) is removed
    again, so the store is as it was; staged files are left to the caller."""
    store = engine.store
    plans = []
    for image in images:
        cfg = parse_config(image.config, "image")
        diff_ids = cfg["rootfs"]["diff_ids"]
        if diff_ids != [x.diff_id for x in image.base] + [x.diff_id for x in image.new]:
            raise DigestMismatchError("image config rootfs.diff_ids do not match its layers")
        if len(diff_ids) > MAX_LAYERS:
            raise InvalidLayerError(f"image has {len(diff_ids)} layers; at most {MAX_LAYERS} "
                                    "can be mounted as one root filesystem")
        plans.append((image, cfg, chain_ids(diff_ids)))
    created_snapshots: list[str] = []
    created_blobs: list[str] = []
    boot = current_boot_id()
    with store.gc_lock(shared=True):
        try:
            records = []
            for image, cfg, chains in plans:
                layers = list(image.base)
                for layer, chain_id in zip(image.new, chains[len(image.base):]):
                    _commit_layer(engine, layer, chain_id, created_snapshots, created_blobs)
                    layers.append(LayerRecord(layer.diff_id, chain_id, layer.digest,
                                              layer.media_type, layer.size))
                manifest, media_type = image.manifest, image.manifest_media_type
                if manifest is None:
                    manifest, media_type = make_manifest(image.config, layers)
                image_id = sha256_digest(image.config)
                for digest, data in ((image_id, image.config), (sha256_digest(manifest), manifest)):
                    if not store.content.has(digest):
                        store.content.write(digest, data, sync=not boot)
                        created_blobs.append(digest)
                records.append(NewImage(
                    id=image_id, config=image.config, manifest_digest=sha256_digest(manifest),
                    manifest_media_type=media_type, manifest=manifest,
                    created=str(cfg.get("created") or ""),
                    size=sum(store.snapshots.size(c) for c in chains), layers=layers))
        except BaseException:
            in_use = store.metadata.chain_ids_in_use()
            for chain_id in created_snapshots:
                if chain_id not in in_use:
                    store.snapshots.remove(chain_id)
            blobs_in_use = store.metadata.blobs_in_use()
            for digest in created_blobs:
                if digest not in blobs_in_use:
                    store.content.delete(digest)
            raise
        # Records last: until here no image names any of it (a crash leaves garbage only).
        for record, (image, _, _) in zip(records, plans):
            store.metadata.add_image(record, tags=image.tags, digests=[], boot_id=boot)
    return [record.id for record in records]


def _commit_layer(engine: Engine, layer: StagedLayer, chain_id: str,
                  created_snapshots: list[str], created_blobs: list[str]) -> None:
    from . import _native
    from .native import translated_errors

    store = engine.store
    compression = compression_of_media_type(layer.media_type)
    with store.layer_lock(chain_id), store.blob_lock(layer.digest):
        blob = store.content.path(layer.digest)
        source = blob if store.content.has(layer.digest) else layer.path
        if source is None:
            raise InvalidLayerError(f"layer {layer.digest} is missing")
        if not store.snapshots.has(chain_id):
            staging = store.snapshots.prepare(chain_id)
            try:
                with translated_errors(f"layer {layer.diff_id}"):
                    result = _native.unpack_blob(
                        str(source), str(staging), compression=compression,
                        expected_diff_id=layer.diff_id, sync=False,
                        max_bytes=engine.settings.max_layer_bytes,
                        max_entries=engine.settings.max_layer_entries)
            except BaseException:
                store.snapshots.discard(chain_id)
                raise
            store.snapshots.commit(chain_id, layer.diff_id, result["unpacked_bytes"],
                                   durable=False)
            created_snapshots.append(chain_id)
        if not store.content.has(layer.digest):
            assert layer.path is not None
            os.rename(layer.path, blob)
            created_blobs.append(layer.digest)
