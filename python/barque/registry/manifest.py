"""Image manifests and indexes (Docker schema 2 and OCI), parsed strictly into records.

:func:`parse_manifest` is the only way bytes from a registry become an :class:`ImageManifest` or
an :class:`ImageIndex`. It refuses, with :class:`~barque.errors.InvalidManifestError`:

- bytes that are not UTF-8 JSON objects, or that repeat a key in any object (parsers that keep
  the first and the last duplicate would disagree about the content);
- ``schemaVersion`` other than 2 (Docker schema 1 is not supported);
- a document carrying both ``manifests`` and ``config``/``layers`` (CVE-2021-41190), or whose
  fields contradict its ``mediaType``;
- an unknown document ``mediaType``, an unknown config or layer media type;
- any digest not matching ``^sha256:[a-f0-9]{64}$`` (checked before a digest can name a file
  or a URL), and negative or non-integer sizes.

Foreign/non-distributable layer ``urls`` are kept for information but never fetched.
The caller verifies that the bytes hash to the digest it asked for (the client does).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from ..errors import InvalidManifestError
from .mediatypes import (
    ACCEPT_MANIFEST_TYPES,
    CONFIG_MEDIA_TYPES,
    INDEX_MEDIA_TYPES,
    MANIFEST_MEDIA_TYPES,
    MEDIA_TYPE_DOCKER_CONFIG,
    MEDIA_TYPE_DOCKER_LIST,
    MEDIA_TYPE_DOCKER_MANIFEST,
    MEDIA_TYPE_OCI_CONFIG,
    MEDIA_TYPE_OCI_INDEX,
    MEDIA_TYPE_OCI_MANIFEST,
)
from .platform import Platform

__all__ = [
    "ACCEPT_MANIFEST_TYPES",
    "CONFIG_MEDIA_TYPES",
    "DIGEST_RE",
    "INDEX_MEDIA_TYPES",
    "LAYER_MEDIA_TYPES",
    "MANIFEST_MEDIA_TYPES",
    "MEDIA_TYPE_DOCKER_CONFIG",
    "MEDIA_TYPE_DOCKER_LIST",
    "MEDIA_TYPE_DOCKER_MANIFEST",
    "MEDIA_TYPE_OCI_CONFIG",
    "MEDIA_TYPE_OCI_INDEX",
    "MEDIA_TYPE_OCI_MANIFEST",
    "Descriptor",
    "ImageIndex",
    "ImageManifest",
    "compression_of",
    "is_valid_digest",
    "parse_manifest",
    "validate_digest",
]

Compression = Literal["gzip", "zstd", "none"]

#: Layer media type -> compression of the blob.
LAYER_MEDIA_TYPES: Mapping[str, Compression] = {
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": "gzip",
    "application/vnd.docker.image.rootfs.diff.tar": "none",
    "application/vnd.oci.image.layer.v1.tar": "none",
    "application/vnd.oci.image.layer.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd": "zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar": "none",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": "zstd",
}

#: The only digest form accepted anywhere (full match, no trailing newline).
DIGEST_RE = re.compile(r"sha256:[a-f0-9]{64}")
_SCHEMA1_TYPES = frozenset({
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
})


def is_valid_digest(digest: object) -> bool:
    """True iff ``digest`` is a ``str`` of the form ``sha256:<64 lowercase hex>``."""
    return isinstance(digest, str) and DIGEST_RE.fullmatch(digest) is not None


def validate_digest(digest: object, what: str = "digest") -> str:
    """Return ``digest`` if valid (see :func:`is_valid_digest`), else raise InvalidManifestError."""
    if not is_valid_digest(digest):
        shown = digest if isinstance(digest, str) and len(digest) <= 100 else \
            f"{str(digest)[:100]}..."
        raise InvalidManifestError(f"invalid {what} {shown!r}: expected sha256:<64 hex digits>")
    assert isinstance(digest, str)
    return digest


def compression_of(media_type: str) -> Compression:
    """Compression of a layer blob of ``media_type``: ``"gzip"``, ``"zstd"`` or ``"none"``.

    Raises :class:`~barque.errors.InvalidManifestError` for a media type that is not a layer.
    """
    try:
        return LAYER_MEDIA_TYPES[media_type]
    except KeyError:
        raise InvalidManifestError(f"unsupported layer media type {media_type!r}") from None


class Descriptor(msgspec.Struct, frozen=True):
    """A content descriptor: what a manifest says about one blob or child manifest.

    ``digest`` is always valid (``sha256:`` + 64 hex) and ``size`` a non-negative int.
    """

    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    #: Foreign-layer URLs: informational only, never fetched.
    urls: tuple[str, ...] = ()
    annotations: Mapping[str, str] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        validate_digest(self.digest)
        if type(self.size) is not int or self.size < 0:
            raise InvalidManifestError(f"invalid size {self.size!r} for {self.digest}")

    def as_dict(self) -> dict[str, Any]:
        """The OCI JSON form (``mediaType``, ``digest``, ``size`` ...), for writing manifests."""
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest,
                               "size": self.size}
        if self.urls:
            out["urls"] = list(self.urls)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform is not None:
            p: dict[str, str] = {"architecture": self.platform.architecture,
                                 "os": self.platform.os}
            if self.platform.variant:
                p["variant"] = self.platform.variant
            out["platform"] = p
        return out


class ImageManifest(msgspec.Struct, frozen=True):
    """One image: its config descriptor and its layers, bottom first.

    ``raw`` is exactly the bytes received and ``digest`` their sha256 (the manifest's ID in the
    registry and what ``RepoDigests`` report).
    """

    config: Descriptor
    layers: tuple[Descriptor, ...]
    media_type: str
    raw: bytes
    digest: str
    annotations: Mapping[str, str] = msgspec.field(default_factory=dict)


class ImageIndex(msgspec.Struct, frozen=True):
    """A manifest list / OCI index: one entry per platform (and possibly attestations)."""

    manifests: tuple[Descriptor, ...]
    raw: bytes
    digest: str
    media_type: str = MEDIA_TYPE_OCI_INDEX
    annotations: Mapping[str, str] = msgspec.field(default_factory=dict)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise InvalidManifestError(f"invalid manifest: duplicate key {k!r}")
        out[k] = v
    return out


def load_json_object(raw: bytes, what: str) -> dict[str, Any]:
    """Decode strict UTF-8 JSON that must be an object with no duplicate keys."""
    try:
        text = raw.decode("utf-8")
        doc = json.loads(text, object_pairs_hook=_no_duplicates)
    except InvalidManifestError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise InvalidManifestError(f"invalid {what}: not JSON ({e.__class__.__name__})") from None
    if not isinstance(doc, dict):
        raise InvalidManifestError(f"invalid {what}: not a JSON object")
    return doc


def _str_map(value: object, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                              for k, v in value.items()):
        raise InvalidManifestError(f"invalid manifest: {what} must map strings to strings")
    return dict(value)


def _platform(value: object) -> Platform | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidManifestError("invalid manifest: platform must be an object")
    os_name, arch, variant = value.get("os"), value.get("architecture"), value.get("variant")
    if not isinstance(os_name, str) or not isinstance(arch, str) or \
            not (variant is None or isinstance(variant, str)):
        raise InvalidManifestError("invalid manifest: platform needs string os and architecture")
    return Platform(os_name, arch, variant or None)


def parse_descriptor(value: object, what: str) -> Descriptor:
    """Validate one descriptor object (``mediaType``, ``digest``, ``size`` ...)."""
    if not isinstance(value, dict):
        raise InvalidManifestError(f"invalid manifest: {what} is not an object")
    media_type = value.get("mediaType")
    if not isinstance(media_type, str) or not media_type:
        raise InvalidManifestError(f"invalid manifest: {what} has no mediaType")
    digest = validate_digest(value.get("digest"), f"{what} digest")
    size = value.get("size")
    if type(size) is not int or size < 0:
        raise InvalidManifestError(f"invalid manifest: {what} {digest} has invalid size {size!r}")
    urls = value.get("urls") or []
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        raise InvalidManifestError(f"invalid manifest: {what} urls must be a list of strings")
    return Descriptor(media_type, digest, size, _platform(value.get("platform")), tuple(urls),
                      _str_map(value.get("annotations"), f"{what} annotations"))


def parse_manifest(raw: bytes, digest: str, content_type: str | None = None
                   ) -> ImageManifest | ImageIndex:
    """Parse manifest bytes received from a registry (see the module docstring for refusals).

    ``digest`` must already be the sha256 of ``raw`` (the caller computed or verified it);
    ``content_type`` is the response's ``Content-Type``, used only when the document has no
    ``mediaType`` of its own, and must agree with it when both name a manifest type.
    """
    validate_digest(digest)
    doc = load_json_object(raw, "manifest")
    version = doc.get("schemaVersion")
    if type(version) is not int or version != 2:
        hint = " (Docker schema 1 images are not supported)" if version == 1 else ""
        raise InvalidManifestError(f"unsupported manifest schemaVersion {version!r}{hint}")
    has_index = "manifests" in doc
    has_image = "config" in doc or "layers" in doc
    if has_index and has_image:
        raise InvalidManifestError(
            "invalid manifest: ambiguous document has both 'manifests' and 'config'/'layers'")
    header = (content_type or "").split(";", 1)[0].strip().lower()
    known = MANIFEST_MEDIA_TYPES | INDEX_MEDIA_TYPES
    media_type = doc.get("mediaType")
    if media_type is not None:
        if not isinstance(media_type, str) or media_type not in known:
            schema1 = " (Docker schema 1 images are not supported)" \
                if media_type in _SCHEMA1_TYPES else ""
            raise InvalidManifestError(f"unsupported manifest media type {media_type!r}{schema1}")
        if header in known and header != media_type:
            raise InvalidManifestError(f"invalid manifest: Content-Type {header!r} contradicts "
                                       f"mediaType {media_type!r}")
    elif header in known:
        media_type = header
    else:
        media_type = MEDIA_TYPE_OCI_INDEX if has_index else MEDIA_TYPE_OCI_MANIFEST
    annotations = _str_map(doc.get("annotations"), "annotations")
    if media_type in INDEX_MEDIA_TYPES:
        if has_image or not isinstance(doc.get("manifests"), list):
            raise InvalidManifestError(f"invalid manifest: {media_type} needs a 'manifests' list")
        entries = tuple(parse_descriptor(m, "manifests entry") for m in doc["manifests"])
        return ImageIndex(entries, raw, digest, media_type, annotations)
    if has_index or not isinstance(doc.get("layers"), list) or "config" not in doc:
        raise InvalidManifestError(f"invalid manifest: {media_type} needs 'config' and 'layers'")
    config = parse_descriptor(doc["config"], "config")
    if config.media_type not in CONFIG_MEDIA_TYPES:
        raise InvalidManifestError(
            f"unsupported config media type {config.media_type!r} (not a container image)")
    layers = tuple(parse_descriptor(layer, "layer") for layer in doc["layers"])
    for layer in layers:
        if layer.media_type not in LAYER_MEDIA_TYPES:
            raise InvalidManifestError(
                f"unsupported layer media type {layer.media_type!r} for {layer.digest}")
    return ImageManifest(config, layers, media_type, raw, digest, annotations)
