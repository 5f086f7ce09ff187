"""barque: a container engine with a Rust core. Start with :class:`barque.Engine`.

Imports are lazy so that ``import barque`` (and the CLI's start-up) costs almost nothing.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing itself costs start-up time; checkers see the imports
if TYPE_CHECKING:
    from typing import Any

__version__ = "0.1.0"
__all__ = ["Engine", "Image", "errors", "__version__"]

if TYPE_CHECKING:
    from . import errors
    from .engine import Engine
    from .images import Image


def __getattr__(name: str) -> Any:
    if name == "Engine":
        from .engine import Engine

        return Engine
    if name == "Image":
        from .images import Image

        return Image
    if name == "errors":
        # Not `from . import errors`: that looks the name up on this package first, which
        # lands back here before the submodule is imported, and so on forever.
        import importlib

        return importlib.import_module(".errors", __name__)
    raise AttributeError(f"module 'barque' has no attribute {name!r}")
