"""Docker Engine API objects as typed structs: the one description of a container (its
``Config``, ``HostConfig`` and ``NetworkingConfig``, as ``POST /containers/create`` receives
them), what ``inspect`` shows of it; images and volumes are in :mod:`barque.models.image`.

Field names are Docker's JSON names exactly (API v1.47, Docker 27): a struct's Python
attributes are snake_case, encoded in PascalCase, with an explicit name where Docker's casing
is not plain Pascal (``UTSMode``, ``IOMaximumBandwidth``, ``SandboxID``...). A field Docker
marks ``omitempty`` defaults to :data:`UNSET` and is left out of the encoding until set, so an
encoded object has exactly the keys Docker prints.

:func:`decode` and :func:`encode` are the one way in and out: a document that does not fit
raises :class:`~barque.errors.InvalidArgumentError` with one line naming the JSON path
(``Expected `int`, got `str` - at `$.HostConfig.Memory```).
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from ..errors import InvalidArgumentError
from .container import (
    UNSET,
    BindOptions,
    ContainerConfig,
    ContainerCreate,
    ContainerInspect,
    ContainerState,
    DeviceMapping,
    DeviceRequest,
    DriverData,
    EndpointSettings,
    HealthConfig,
    HostConfig,
    LogConfig,
    Mount,
    MountPoint,
    NetworkingConfig,
    NetworkSettings,
    PortBinding,
    RestartPolicy,
    StoredContainer,
    ThrottleDevice,
    TmpfsOptions,
    Ulimit,
    UnsetType,
    VolumeOptions,
    WeightDevice,
)

# Images and volumes: barque.models.image (ImageInspect, Volume...), imported where used, so
# that a `run` does not pay for their classes.

__all__ = [
    "UNSET", "UnsetType", "BindOptions", "ContainerConfig", "ContainerCreate",
    "ContainerInspect", "ContainerState", "DeviceMapping", "DeviceRequest", "DriverData",
    "EndpointSettings", "HealthConfig", "HostConfig", "LogConfig", "Mount", "MountPoint",
    "NetworkingConfig", "NetworkSettings", "PortBinding", "RestartPolicy", "StoredContainer",
    "ThrottleDevice", "TmpfsOptions", "Ulimit", "VolumeOptions", "WeightDevice",
    "decode", "encode", "to_builtins", "convert", "warm",
]

T = TypeVar("T")


def decode(data: bytes | str, type: type[T]) -> T:
    """``data`` (JSON) as a ``type``; a document that does not fit is one
    InvalidArgumentError naming where (msgspec's ``... - at `$.HostConfig.Memory```)."""
    try:
        return msgspec.json.decode(data, type=type)
    except msgspec.ValidationError as e:
        raise InvalidArgumentError(f"invalid {type.__name__}: {e}") from None
    except msgspec.DecodeError as e:
        raise InvalidArgumentError(f"invalid JSON for {type.__name__}: {e}") from None


def convert(value: Any, type: type[T]) -> T:
    """Built-in data (a dict from ``json.loads``, docker-py's keyword arguments) as a
    ``type``, with :func:`decode`'s errors."""
    try:
        return msgspec.convert(value, type=type)
    except msgspec.ValidationError as e:
        raise InvalidArgumentError(f"invalid {type.__name__}: {e}") from None


def encode(obj: Any) -> bytes:
    """``obj`` as compact JSON, fields in Docker's order, UNSET fields left out."""
    return msgspec.json.encode(obj)


def to_builtins(obj: Any) -> Any:
    """``obj`` as dicts and lists (what ``json.dumps`` and the Go template engine take)."""
    return msgspec.to_builtins(obj)


def warm() -> None:
    """Build msgspec's per-type codecs now (~6 ms, once per process) rather than in the first
    ``run``: the forkserver calls this before it forks any command."""
    body = convert({"Image": "", "HostConfig": {}}, ContainerCreate)
    stored = StoredContainer(config=body.config(), host_config=body.host_config,
                             mounts=convert([{}], list[MountPoint]))
    decode(encode(stored), StoredContainer)
    to_builtins(ContainerInspect())
