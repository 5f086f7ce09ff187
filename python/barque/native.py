"""barque._native's errors turned into barque's.

The extension is imported inside the functions that use it (``from . import _native``), not at
the top of a module: most CLI commands and the forkserver's parent never load it, and the
checker still sees every call with the types of ``_native.pyi``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from .errors import DigestMismatchError, InvalidLayerError


@contextmanager
def translated_errors(context: str = "") -> Iterator[None]:
    """Re-raise the native module's LayerError/DigestError as barque's exception leaves.

    OSError passes through unchanged: it already carries errno, message and path.
    """
    from . import _native

    prefix = f"{context}: " if context else ""
    try:
        yield
    except _native.LayerError as e:
        raise InvalidLayerError(f"{prefix}{e}") from e
    except _native.DigestError as e:
        raise DigestMismatchError(f"{prefix}{e}") from e


@contextmanager
def container_errors() -> Iterator[None]:
    """Re-raise the native ContainerError as ContainerStartError, keeping Docker's exit code."""
    from . import _native
    from .errors import ContainerStartError

    try:
        yield
    except _native.ContainerError as e:
        # Set by the extension on every error it raises; 125 for one raised without it.
        raise ContainerStartError(str(e), getattr(e, "exit_code", 125)) from e
