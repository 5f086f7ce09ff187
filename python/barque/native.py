"""The one door to ``barque._native``: imported lazily, its errors turned into barque's."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

from .errors import DigestMismatchError, InvalidLayerError

_native: ModuleType | None = None


def load() -> ModuleType:
    global _native
    if _native is None:
        from . import _native as module

        _native = module
    return _native


@contextmanager
def translated_errors(context: str = "") -> Iterator[None]:
    """Re-raise the native module's LayerError/DigestError as barque's exception leaves.

    OSError passes through unchanged: it already carries errno, message and path.
    """
    native = load()
    prefix = f"{context}: " if context else ""
    try:
        yield
    except native.LayerError as e:
        raise InvalidLayerError(f"{prefix}{e}") from e
    except native.DigestError as e:
        raise DigestMismatchError(f"{prefix}{e}") from e


@contextmanager
def container_errors() -> Iterator[None]:
    """Re-raise the native ContainerError as ContainerStartError, keeping Docker's exit code."""
    from .errors import ContainerStartError

    native = load()
    try:
        yield
    except native.ContainerError as e:
        raise ContainerStartError(str(e), getattr(e, "exit_code", 125)) from e
