"""How much a directory tree holds, as ``docker system df`` and the prune commands count it."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["tree_size"]


def tree_size(path: Path | str) -> int:
    """The apparent size in bytes of every file under ``path`` (links not followed; files that
    vanish while it walks, as in a container still running, count as nothing). A missing
    ``path`` is 0."""
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total
