"""overlayfs's lookup rules, applied to layer directories without mounting them.

An image's unpacked layers are an overlay's lower dirs, listed top first. A path resolves one
component at a time, top layer first, as the kernel does:

- the first layer holding a component wins; a whiteout there (a 0:0 character device, what
  an OCI ``.wh.NAME`` entry becomes) hides it in every layer below;
- a directory merges with the directories at the same path below it, until a layer marks its
  directory opaque (``trusted.overlay.opaque=y``, from ``.wh..wh..opq``) or holds something
  other than a directory there: both hide everything further down;
- a symlink is never followed (:func:`resolve` follows one inside the image, never out).

Reading never mounts: no page-sized option string to overflow with many layers, nothing left
mounted if the process dies, no privilege needed. ``merged.py`` walks whole trees with these
rules, ``changes.py`` reads a container's upper dir against them, ``containers.py`` reads the
image's ``/etc`` files and ``volumes.py`` finds what a volume's mount point holds.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

__all__ = ["MAX_LAYERS", "OPAQUE_XATTR", "children", "entry_kind", "exists", "is_opaque",
           "is_whiteout", "lookup", "merged_dirs", "read_file", "resolve"]

#: Docker's overlay2 limit: more lower dirs than this cannot be mounted as one rootfs.
MAX_LAYERS = 125
OPAQUE_XATTR = "trusted.overlay.opaque"
#: Symlinks :func:`resolve` follows before giving up, as the kernel's MAXSYMLINKS.
_MAX_SYMLINKS = 40


def is_whiteout(st: os.stat_result) -> bool:
    """Whether an entry is overlayfs's whiteout: a character device 0:0."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque(directory: str | Path) -> bool:
    """Whether a layer's directory hides the directories at its path in the layers below."""
    try:
        return os.getxattr(directory, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _parts(path: str | Sequence[str]) -> list[str]:
    if isinstance(path, str):
        return [part for part in path.split("/") if part]
    return list(path)


def lookup(layers_top_first: Sequence[Path], path: str | Sequence[str]
           ) -> tuple[Path, os.stat_result] | None:
    """The entry the overlay shows at ``path`` (relative or absolute, or its components): the
    file in the layer that provides it and its ``lstat``; None when absent or whited out."""
    found = _find(layers_top_first, _parts(path))
    return None if found is None else (Path(found[0]), found[1])


def _find(layers_top_first: Sequence[Path], parts: list[str]
          ) -> tuple[str, os.stat_result] | None:
    if not parts:
        return (os.fspath(layers_top_first[0]), os.lstat(layers_top_first[0])) \
            if layers_top_first else None
    last = len(parts) - 1
    for layer in layers_top_first:
        # Plain strings: a container's start looks up /etc/passwd and /etc/group through
        # every layer, and joining Paths cost more than the lstat calls.
        current = os.fspath(layer)
        for i, part in enumerate(parts):
            candidate = f"{current}/{part}"
            try:
                st = os.lstat(candidate)
            except OSError:
                # Absent from this layer: the layers below show it, unless a directory this
                # lookup passed through here is opaque.
                if i and _opaque_on_the_way(layer, parts[:i]):
                    return None
                break
            if is_whiteout(st):
                return None
            if i == last:
                return candidate, st
            if not stat.S_ISDIR(st.st_mode):
                return None  # a file or symlink here hides whatever the lower layers hold
            current = candidate
    return None


def _opaque_on_the_way(layer: Path, directories: list[str]) -> bool:
    current = os.fspath(layer)
    for part in directories:
        current = f"{current}/{part}"
        if is_opaque(current):
            return True
    return False


def read_file(layers_top_first: Sequence[Path], path: str | Sequence[str],
              limit: int = 1 << 20) -> bytes | None:
    """A regular file's content as the overlay shows it (None if it is absent, not a regular
    file, or larger than ``limit`` bytes). Nothing is read through a symlink."""
    found = _find(layers_top_first, _parts(path))
    if found is None:
        return None
    source, st = found
    if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
        return None
    fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, st.st_size + 1):  # one read, unless the kernel splits it
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks)


def exists(layers_top_first: Sequence[Path], path: str | Sequence[str]) -> bool:
    """Whether the overlay shows anything (a symlink counts, dangling or not) at ``path``."""
    return _find(layers_top_first, _parts(path)) is not None


def merged_dirs(layers_top_first: Sequence[Path], path: str | Sequence[str]) -> list[Path]:
    """The layers' directories that merge into the overlay's directory at ``path``, top first
    (empty when the overlay has no directory there)."""
    parts = _parts(path)
    out: list[Path] = []
    for layer in layers_top_first:
        current = layer
        for i, part in enumerate(parts):
            try:
                st = os.lstat(current / part)
            except OSError:
                if _opaque_on_the_way(layer, parts[:i]):
                    return out
                break
            if is_whiteout(st) or not stat.S_ISDIR(st.st_mode):
                return out
            current = current / part
        else:  # every component, the last included, is a directory of this layer
            out.append(current)
            if _opaque_on_the_way(layer, parts):
                return out  # this directory, or one it is in, hides the layers below
    return out


def children(layers_top_first: Sequence[Path], path: str | Sequence[str]) -> list[str]:
    """The names in the overlay's directory at ``path``, sorted (whiteouts hide a name of the
    layers below; an opaque directory hides all of theirs)."""
    names: set[str] = set()
    hidden: set[str] = set()
    for directory in merged_dirs(layers_top_first, path):
        for entry in os.scandir(directory):
            if entry.name in names or entry.name in hidden:
                continue
            if is_whiteout(entry.stat(follow_symlinks=False)):
                hidden.add(entry.name)
            else:
                names.add(entry.name)
    return sorted(names)


def resolve(layers_top_first: Sequence[Path], path: str) -> str | None:
    """``path`` in the image with its symlinks followed inside the image (an absolute link
    restarts at the image's root, ``..`` stops there), as a path relative to the root; None
    when it does not exist. Never looks outside the layers."""
    todo = [p for p in path.split("/") if p]
    done: list[str] = []
    hops = 0
    while todo:
        part = todo.pop(0)
        if part == ".":
            continue
        if part == "..":
            if done:
                done.pop()
            continue
        found = lookup(layers_top_first, [*done, part])
        if found is None:
            return None
        source, st = found
        if stat.S_ISLNK(st.st_mode):
            hops += 1
            if hops > _MAX_SYMLINKS:
                return None
            link = os.readlink(source)
            if link.startswith("/"):
                done = []
            todo = [p for p in link.split("/") if p] + todo
            continue
        if todo and not stat.S_ISDIR(st.st_mode):
            return None
        done.append(part)
    return "/".join(done)


def entry_kind(layers_top_first: Sequence[Path], path: str) -> str:
    """``dir``, ``file`` (anything else that exists) or ``missing``: what a mount on ``path``
    would land on in the image, symlinks resolved inside the image."""
    resolved = resolve(layers_top_first, path)
    if resolved is None:
        return "missing"
    if resolved == "":
        return "dir"
    found = lookup(layers_top_first, resolved)
    if found is None:
        return "missing"
    return "dir" if stat.S_ISDIR(found[1].st_mode) else "file"
