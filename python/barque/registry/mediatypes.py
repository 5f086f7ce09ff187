"""The media types of image manifests, indexes and configs (Docker schema 2 and OCI).

Their own module, below both :mod:`.manifest` (which parses the documents) and
:mod:`.platform` (which picks an index entry by them), so that neither imports the other.
"""

from __future__ import annotations

__all__ = [
    "ACCEPT_MANIFEST_TYPES",
    "CONFIG_MEDIA_TYPES",
    "INDEX_MEDIA_TYPES",
    "MANIFEST_MEDIA_TYPES",
    "MEDIA_TYPE_DOCKER_CONFIG",
    "MEDIA_TYPE_DOCKER_LIST",
    "MEDIA_TYPE_DOCKER_MANIFEST",
    "MEDIA_TYPE_OCI_CONFIG",
    "MEDIA_TYPE_OCI_INDEX",
    "MEDIA_TYPE_OCI_MANIFEST",
]

MEDIA_TYPE_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MEDIA_TYPE_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MEDIA_TYPE_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_TYPE_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_TYPE_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MEDIA_TYPE_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"

MANIFEST_MEDIA_TYPES = frozenset({MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_OCI_MANIFEST})
INDEX_MEDIA_TYPES = frozenset({MEDIA_TYPE_DOCKER_LIST, MEDIA_TYPE_OCI_INDEX})
CONFIG_MEDIA_TYPES = frozenset({MEDIA_TYPE_DOCKER_CONFIG, MEDIA_TYPE_OCI_CONFIG})
#: The ``Accept`` header value for manifest requests (indexes first, as Docker sends them).
ACCEPT_MANIFEST_TYPES = (f"{MEDIA_TYPE_OCI_INDEX}, {MEDIA_TYPE_DOCKER_LIST}, "
                         f"{MEDIA_TYPE_OCI_MANIFEST}, {MEDIA_TYPE_DOCKER_MANIFEST}")
