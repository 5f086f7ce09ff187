"""Engine settings: defaults, overridden by ``/etc/barque/config.toml``, then by arguments.

Example ``/etc/barque/config.toml``::

    root = "/var/lib/barque"
    max_concurrent_downloads = 3
    max_concurrent_uploads = 3
    upload_chunk_bytes = 16777216     # pushed blobs above this go in PATCH chunks of it
    insecure_registries = ["registry.internal:5000"]
    connect_timeout = 30              # seconds to connect to a registry
    read_timeout = 60                 # seconds without a byte before a download is given up
    low_speed_limit = 1024            # bytes/s; a blob slower than this on average over
    low_speed_time = 30               #   this many seconds is given up (curl's --speed-*)
    download_retries = 3              # attempts per request or blob
    download_retry_backoff = 0.5      # seconds before the 2nd attempt, doubled each time

    [registry_mirrors]
    "docker.io" = ["https://mirror.example.com"]

    [limits]
    max_layer_bytes = 68719476736
    max_layer_entries = 2000000
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

TYPE_CHECKING = False  # typing itself costs start-up time (~2.5 ms); checkers see the imports
if TYPE_CHECKING:
    from typing import Any

DEFAULT_ROOT = Path("/var/lib/barque")
DEFAULT_CONFIG_FILE = Path("/etc/barque/config.toml")


class Settings(msgspec.Struct, frozen=True):
    """Everything an :class:`~barque.Engine` is configured with."""

    root: Path = DEFAULT_ROOT
    #: Blobs fetched at once during a pull (Docker's default is 3).
    max_concurrent_downloads: int = 3
    #: Registries (``host`` or ``host:port``) reached over plain HTTP; 127.0.0.0/8 always is.
    insecure_registries: tuple[str, ...] = ()
    #: Registry host -> mirror base URLs, tried in order before the registry itself.
    registry_mirrors: dict[str, tuple[str, ...]] = msgspec.field(default_factory=dict)
    #: Docker's client config, read for ``auths`` credentials.
    docker_config: Path = msgspec.field(default_factory=lambda: _docker_config_path())
    #: Tar-bomb guards for one layer: bytes of tar stream, number of entries.
    max_layer_bytes: int = 64 << 30
    max_layer_entries: int = 2_000_000
    #: Size caps for JSON documents fetched from a registry.
    max_manifest_bytes: int = 4 << 20
    max_config_bytes: int = 8 << 20
    #: Attempts per blob (and per registry request) before a pull gives up; a blob's
    #: next attempt resumes where the last one stopped (``Range``) when the registry can.
    download_retries: int = 3
    #: Seconds before the second attempt; each further one waits twice as long.
    download_retry_backoff: float = 0.5
    #: Seconds to establish a connection to a registry.
    connect_timeout: float = 30.0
    #: Seconds a response may go without sending a byte (a stalled download).
    read_timeout: float = 60.0
    #: A blob arriving slower than ``low_speed_limit`` bytes/s on average over any
    #: ``low_speed_time`` seconds is given up (and retried): a registry trickling a byte
    #: every few seconds never trips ``read_timeout``. 0 turns the rule off.
    low_speed_limit: int = 1024
    low_speed_time: float = 30.0
    #: Blobs sent at once during a push.
    max_concurrent_uploads: int = 3
    #: A pushed blob up to this size goes in one PUT, a larger one in PATCH chunks of it.
    upload_chunk_bytes: int = 16 << 20


def _docker_config_path() -> Path:
    base = os.environ.get("DOCKER_CONFIG")
    if base:
        return Path(base) / "config.json"
    return Path.home() / ".docker" / "config.json"


def load_settings(root: str | os.PathLike[str] | None = None,
                  config_file: str | os.PathLike[str] | None = None) -> Settings:
    """Build settings from the config file (if present), ``BARQUE_ROOT`` and ``root``.

    Precedence, highest first: the ``root`` argument, ``BARQUE_ROOT``, the file, the default.
    A config file named explicitly must exist; the default one may be absent.
    """
    path = Path(config_file) if config_file else Path(
        os.environ.get("BARQUE_CONFIG", DEFAULT_CONFIG_FILE))
    values: dict[str, Any] = {}
    if path.exists() or config_file:
        values = _read_toml(path)
    limits = values.pop("limits", {}) or {}
    mirrors = values.pop("registry_mirrors", {}) or {}
    kwargs: dict[str, Any] = {}
    for key in ("max_concurrent_downloads", "download_retries", "max_manifest_bytes",
                "max_config_bytes", "max_concurrent_uploads", "upload_chunk_bytes"):
        if key in values:
            kwargs[key] = int(values[key])
    for key in ("connect_timeout", "read_timeout", "low_speed_time", "download_retry_backoff"):
        if key in values:
            kwargs[key] = float(values[key])
    if "low_speed_limit" in values:
        kwargs["low_speed_limit"] = int(values["low_speed_limit"])
    _check_download_limits(path, kwargs)
    for key in ("max_layer_bytes", "max_layer_entries"):
        if key in limits:
            kwargs[key] = int(limits[key])
    if "insecure_registries" in values:
        kwargs["insecure_registries"] = tuple(str(r) for r in values["insecure_registries"])
    if mirrors:
        kwargs["registry_mirrors"] = {str(k): tuple(str(u) for u in v) for k, v in mirrors.items()}
    if "docker_config" in values:
        kwargs["docker_config"] = Path(values["docker_config"])
    chosen_root = root or os.environ.get("BARQUE_ROOT") or values.get("root")
    if chosen_root:
        # Absolute, because containers start with their bundle as the working directory.
        kwargs["root"] = Path(os.path.abspath(chosen_root))
    return Settings(**kwargs)


def _check_download_limits(path: Path, values: dict[str, Any]) -> None:
    """A zero timeout would fail every pull at once, a negative one crash deep in urllib3:
    say which key of the file is wrong instead."""
    from .errors import BarqueError

    rules = {"connect_timeout": 0, "read_timeout": 0, "low_speed_time": 0,
             "download_retries": 0, "download_retry_backoff": None, "low_speed_limit": None}
    for key, floor in rules.items():
        if key not in values:
            continue
        if floor is not None and values[key] <= floor:
            raise BarqueError(f"invalid config file {path}: {key} must be positive")
        if values[key] < 0:
            raise BarqueError(f"invalid config file {path}: {key} must not be negative")


def _read_toml(path: Path) -> dict[str, Any]:
    import tomllib

    from .errors import BarqueError

    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise BarqueError(f"cannot read config file {path}: {e.strerror}") from e
    except tomllib.TOMLDecodeError as e:
        raise BarqueError(f"invalid config file {path}: {e}") from e
