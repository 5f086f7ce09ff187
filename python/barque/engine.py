"""The entry point of barque's Python API."""

from __future__ import annotations

import os
from functools import cached_property

from .config import Settings, load_settings

TYPE_CHECKING = False  # typing itself costs start-up time; checkers see the imports
if TYPE_CHECKING:
    from pathlib import Path

    from .containers import ContainerService
    from .images import ImageService
    from .registry.client import RegistryClient
    from .store import Store
    from .system import SystemService
    from .volumes import VolumeService


class Engine:
    """One barque store and the services over it.

    >>> engine = Engine(root="/var/lib/barque")
    >>> image = engine.images.pull("busybox")
    >>> [i.tags for i in engine.images.list()]

    Settings come from ``/etc/barque/config.toml`` (or ``config_file``), ``BARQUE_ROOT``, and
    the arguments, highest last. Several Engines, threads or processes may share one root.
    """

    def __init__(self, root: str | os.PathLike[str] | None = None, *,
                 config_file: str | os.PathLike[str] | None = None,
                 settings: Settings | None = None) -> None:
        from . import arguments

        arguments.optional_path(root, "root")
        arguments.optional_path(config_file, "config_file")
        arguments.optional_instance(settings, Settings, "settings", "a barque.config.Settings")
        self.settings = settings or load_settings(root=root, config_file=config_file)

    @property
    def root(self) -> Path:
        return self.settings.root

    @cached_property
    def store(self) -> Store:
        from .store import Store

        return Store(self.settings.root)

    @cached_property
    def registry(self) -> RegistryClient:
        from .registry.client import RegistryClient

        return RegistryClient(self.settings)

    @cached_property
    def images(self) -> ImageService:
        from .images import ImageService

        return ImageService(self)

    @cached_property
    def containers(self) -> ContainerService:
        from .containers import ContainerService

        return ContainerService(self)

    @cached_property
    def volumes(self) -> VolumeService:
        from .volumes import VolumeService

        return VolumeService(self)

    @cached_property
    def system(self) -> SystemService:
        from .system import SystemService

        return SystemService(self)

    def close(self) -> None:
        if "store" in self.__dict__:
            self.store.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
