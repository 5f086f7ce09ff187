"""Shared pytest fixtures: real registries holding the shared fixture images.

Session-scoped (started once, shared by every test module; treat their content as read-only and
push your own repositories for anything destructive):

``registry`` -> :class:`registry_server.RegistryServer`
    Debian's ``docker-registry`` on ``127.0.0.1:<free port>``, anonymous, filesystem storage in a
    temporary directory, deletes enabled. ``.host`` (``127.0.0.1:PORT``), ``.url``
    (``http://127.0.0.1:PORT``), ``.ref("repo:tag")``, ``.root`` (storage dir), ``.log``.
    Skipped (with the reason) when ``docker-registry`` or ``skopeo`` is missing.

``fixture_images`` -> ``dict[str, FixtureImage]``
    The shared images (``$BARQUE_SHARED`` or ``../shared``, ``fixtures/images``) pushed into
    ``registry`` with real skopeo: ``"layers"`` (docker-archive, Docker schema 2,
    ``fixtures/layers:1``), ``"layers-zstd"`` (OCI, ``tar+zstd`` layers kept as they are,
    ``fixtures/layers-zstd:1``), ``"busybox"`` (OCI, ``fixtures/busybox:1.35``) and
    ``"multiarch"`` (OCI index with linux/amd64 and linux/arm64/v8, ``fixtures/multiarch:1``).
    Each ``FixtureImage`` has ``.ref`` (also its ``str()``), ``.repository``, ``.tag``, and
    skopeo's view for comparison: ``.raw`` (``inspect --raw``), ``.digest`` (``{{.Digest}}``),
    ``.configs`` (platform -> ``inspect --config --raw`` bytes), ``.config``, ``.manifest``.

``auth_registry`` -> :class:`registry_server.RegistryServer` with ``.username``/``.password``
    A second ``docker-registry`` requiring htpasswd (bcrypt) Basic auth, holding
    ``fixtures/busybox:1.35`` (pushed with ``--dest-creds``); ``auth_registry.image`` is its
    ``FixtureImage``. ``auth_registry.docker_config(dir, password=..., key=..., style=...)``
    writes a Docker ``config.json`` for it.

Function-scoped:

``settings`` -> :class:`barque.config.Settings`
    Settings isolated from the machine: root in ``tmp_path``, Docker config at a
    ``tmp_path`` file that does not exist (so no credentials are read from the machine).
    Derive variants with ``msgspec.structs.replace(settings, ...)``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from barque.config import Settings
from helpers import native_cli_used, start_forkserver, stop_forkserver
from registry_server import (
    DOCKER_REGISTRY,
    IMAGES,
    SKOPEO,
    FixtureImage,
    RegistryServer,
    htpasswd_line,
    push_fixture,
    start_registry,
)

AUTH_USER = "barque"
AUTH_PASSWORD = "s3cret-pass"


def _require_tools() -> None:
    missing = [t for t in (DOCKER_REGISTRY, SKOPEO) if not shutil.which(t)]
    if missing:
        pytest.skip(f"registry tests need {', '.join(missing)} (Debian packages docker-registry, "
                    "skopeo)")


def _require_images() -> None:
    if not IMAGES.is_dir():
        pytest.skip(f"shared fixture images not found at {IMAGES} (set BARQUE_SHARED)")


@pytest.fixture(scope="session", autouse=True)
def forkserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path | None]:
    """When tests run the native front end (helpers.native_cli_used), a forkserver of this
    checkout's code in a private directory, for the whole session, with
    ``BARQUE_FORKSERVER=require``: a command it did not run fails rather than passing
    unnoticed through the Python CLI."""
    if not native_cli_used():
        yield None
        return
    directory = tmp_path_factory.mktemp("forkserver")
    saved = {k: os.environ.get(k) for k in ("BARQUE_FORKSERVER_DIR", "BARQUE_FORKSERVER")}
    os.environ["BARQUE_FORKSERVER_DIR"] = str(directory)
    os.environ["BARQUE_FORKSERVER"] = "require"
    server = start_forkserver(directory)
    try:
        yield directory
    finally:
        server.kill()
        server.wait()
        stop_forkserver(directory)  # a successor started by a test
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """An anonymous docker-registry on 127.0.0.1 (see the module docstring)."""
    _require_tools()
    server = start_registry(tmp_path_factory.mktemp("registry"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def fixture_images(registry: RegistryServer) -> dict[str, FixtureImage]:
    """The shared images pushed into ``registry`` with skopeo, and skopeo's view of them."""
    _require_images()
    return {name: push_fixture(name, registry)
            for name in ("layers", "layers-zstd", "busybox", "multiarch")}


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """A docker-registry requiring Basic auth, holding ``fixtures/busybox:1.35``."""
    _require_tools()
    _require_images()
    if not shutil.which("htpasswd") and importlib.util.find_spec("bcrypt") is None:
        pytest.skip("auth_registry needs htpasswd (Debian apache2-utils) or python bcrypt")
    server = start_registry(tmp_path_factory.mktemp("auth-registry"),
                            htpasswd=htpasswd_line(AUTH_USER, AUTH_PASSWORD))
    server.username, server.password = AUTH_USER, AUTH_PASSWORD
    try:
        server.image = push_fixture("busybox", server)
        yield server
    finally:
        server.stop()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Engine settings that read nothing from the machine (no credentials, store in tmp)."""
    return Settings(root=tmp_path / "root", docker_config=tmp_path / "no-docker-config.json")
