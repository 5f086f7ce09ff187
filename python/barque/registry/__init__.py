"""The registry side of barque: an OCI Distribution v2 client.

Modules: :mod:`.client` (:class:`RegistryClient`, :class:`BlobStream`), :mod:`.manifest`
(descriptors, manifests, indexes, media types), :mod:`.platform` (platform parsing and
selection), :mod:`.auth` (challenges, Docker credentials, tokens), :mod:`.push` (uploads,
mounts, manifest PUT), :mod:`.login` (checking and saving logins), :mod:`.search` (catalog,
tags, Docker Hub search).

Names are re-exported lazily so that ``import barque.registry`` stays cheap: urllib3 is only
imported when the client itself is first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import BlobStream, RegistryClient
    from .manifest import Descriptor, ImageIndex, ImageManifest, compression_of
    from .platform import Platform, host_platform

__all__ = [
    "BlobStream", "Descriptor", "ImageIndex", "ImageManifest", "Platform", "RegistryClient",
    "compression_of", "host_platform",
]

_WHERE = {
    "BlobStream": ".client", "RegistryClient": ".client",
    "Descriptor": ".manifest", "ImageIndex": ".manifest", "ImageManifest": ".manifest",
    "compression_of": ".manifest",
    "Platform": ".platform", "host_platform": ".platform",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
