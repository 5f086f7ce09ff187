"""Images and volumes in Docker's shapes: ``GET /images/{name}/json`` and
``GET /volumes/{name}`` (API v1.47), field order as ``docker inspect`` prints them.

An image's ``Config`` is what its config blob holds: every field is ``omitempty`` here, so an
image shows exactly the keys its own JSON has, as Docker does.
"""

from typing import Any

import msgspec
from msgspec import UNSET, UnsetType, field

from .container import DriverData, HealthConfig

__all__ = ["ImageConfig", "RootFS", "ImageMetadata", "ImageInspect", "Volume",
           "VolumeUsageData"]


class ImageConfig(msgspec.Struct, rename="pascal"):
    """The ``config`` of an image config blob (Docker's casing, which OCI's follows)."""

    hostname: str | UnsetType = UNSET
    domainname: str | UnsetType = UNSET
    user: str | UnsetType = UNSET
    attach_stdin: bool | UnsetType = UNSET
    attach_stdout: bool | UnsetType = UNSET
    attach_stderr: bool | UnsetType = UNSET
    exposed_ports: dict[str, dict[str, Any]] | None | UnsetType = UNSET
    tty: bool | UnsetType = UNSET
    open_stdin: bool | UnsetType = UNSET
    stdin_once: bool | UnsetType = UNSET
    env: list[str] | None | UnsetType = UNSET
    cmd: list[str] | None | UnsetType = UNSET
    healthcheck: HealthConfig | None | UnsetType = UNSET
    args_escaped: bool | UnsetType = UNSET
    image: str | UnsetType = UNSET
    volumes: dict[str, dict[str, Any]] | None | UnsetType = UNSET
    working_dir: str | UnsetType = UNSET
    entrypoint: list[str] | None | UnsetType = UNSET
    network_disabled: bool | UnsetType = UNSET
    mac_address: str | UnsetType = UNSET
    on_build: list[str] | None | UnsetType = UNSET
    labels: dict[str, str] | None | UnsetType = UNSET
    stop_signal: str | UnsetType = UNSET
    stop_timeout: int | None | UnsetType = UNSET
    shell: list[str] | None | UnsetType = UNSET


class RootFS(msgspec.Struct, rename="pascal"):
    type: str = "layers"
    layers: list[str] = field(default_factory=list)


class ImageMetadata(msgspec.Struct, rename="pascal"):
    last_tag_time: str = "0001-01-01T00:00:00Z"


class ImageInspect(msgspec.Struct, rename="pascal"):
    """``docker image inspect``'s document."""

    id: str = ""
    repo_tags: list[str] = field(default_factory=list)
    repo_digests: list[str] = field(default_factory=list)
    parent: str = ""
    comment: str = ""
    created: str = ""
    docker_version: str = ""
    author: str = ""
    config: ImageConfig = field(default_factory=ImageConfig)
    architecture: str = ""
    variant: str | UnsetType = UNSET
    os: str = ""
    os_version: str | UnsetType = UNSET
    size: int = 0
    graph_driver: DriverData | UnsetType = UNSET
    root_fs: RootFS = field(default_factory=RootFS, name="RootFS")
    metadata: ImageMetadata = field(default_factory=ImageMetadata)


class VolumeUsageData(msgspec.Struct, rename="pascal"):
    size: int = -1
    ref_count: int = -1


class Volume(msgspec.Struct, rename="pascal"):
    """``docker volume inspect``'s document (its keys in Docker's alphabetical order)."""

    created_at: str = ""
    driver: str = "local"
    labels: dict[str, str] | None = None
    mountpoint: str = ""
    name: str = ""
    options: dict[str, str] | None = None
    scope: str = "local"
    status: dict[str, Any] | UnsetType = UNSET
    usage_data: VolumeUsageData | None | UnsetType = UNSET
