"""An overlay's whole view of image layers, computed from the layer directories without
mounting: ``export`` streams it as a tar, volume copy-up copies a subtree of it. The rules are
:mod:`barque.overlay`'s; symlinks are never followed.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

from .overlay import is_opaque, is_whiteout


def merged_tree(layers_top_first: list[Path], rel: str = "") -> Iterator[tuple[str, Path]]:
    """What the overlay shows under ``rel`` (``""``: the root), depth first, sorted: (path
    relative to the root, the file in the layer that provides it)."""
    owners: dict[str, list[Path]] = {}
    hidden: set[str] = set()
    for i, layer in enumerate(layers_top_first):
        directory = layer / rel if rel else layer
        try:
            names = os.listdir(directory)
        except (FileNotFoundError, NotADirectoryError):
            continue
        for name in names:
            if name in owners or name in hidden:
                continue
            st = os.lstat(directory / name)
            if is_whiteout(st):
                hidden.add(name)
            elif stat.S_ISDIR(st.st_mode):
                owners[name] = [layer, *_merged_below(layers_top_first[i + 1:],
                                                      f"{rel}/{name}" if rel else name,
                                                      directory / name)]
            else:
                owners[name] = [layer]
        if rel and is_opaque(directory):
            break
    for name in sorted(owners):
        child = f"{rel}/{name}" if rel else name
        top = owners[name][0] / child
        yield child, top
        if stat.S_ISDIR(os.lstat(top).st_mode):
            yield from merged_tree(owners[name], child)


def _merged_below(lowers: list[Path], rel: str, top_dir: Path) -> list[Path]:
    """The lower layers whose directory at ``rel`` merges into the one above."""
    below: list[Path] = []
    if is_opaque(top_dir):
        return below
    for lower in lowers:
        try:
            if not stat.S_ISDIR(os.lstat(lower / rel).st_mode):
                break  # a file (or whiteout) here hides everything further down
        except FileNotFoundError:
            continue
        below.append(lower)
        if is_opaque(lower / rel):
            break
    return below


def copy_merged(layers_top_first: list[Path], rel: str, dest: Path) -> None:
    """Copy what the overlay shows under the directory ``rel`` into the existing directory
    ``dest``, as ``cp -a`` would: types, owners, modes (setuid included), times, xattrs
    (overlay's own excepted) and hard links; ``dest`` takes the owner and mode of ``rel``.
    Nothing is read through a symlink, and nothing is written outside ``dest``."""
    links: dict[tuple[int, int], Path] = {}
    directories: list[tuple[Path, os.stat_result]] = []
    for path, source in merged_tree(layers_top_first, rel):
        target = dest / os.path.relpath(path, rel)
        st = os.lstat(source)
        mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISDIR(st.st_mode):
            target.mkdir(mode=0o700)
            directories.append((target, st))  # modes and times once their content is in
            os.chown(target, st.st_uid, st.st_gid)
            _copy_xattrs(source, target)
            continue
        if st.st_nlink > 1 and (st.st_dev, st.st_ino) in links:
            os.link(links[(st.st_dev, st.st_ino)], target)
            continue
        if stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(source), target)
        elif stat.S_ISREG(st.st_mode):
            _copy_file(source, target)
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) or stat.S_ISFIFO(st.st_mode) \
                or stat.S_ISSOCK(st.st_mode):
            os.mknod(target, st.st_mode, st.st_rdev)
        else:
            continue
        # chown first: it clears setuid bits and file capabilities (security.capability).
        os.chown(target, st.st_uid, st.st_gid, follow_symlinks=False)
        if not stat.S_ISLNK(st.st_mode):
            os.chmod(target, mode)
        _copy_xattrs(source, target)
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
        if st.st_nlink > 1:
            links[(st.st_dev, st.st_ino)] = target
    for target, st in reversed(directories):
        os.chmod(target, stat.S_IMODE(st.st_mode))
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    top = _top_source(layers_top_first, rel)
    if top is not None:
        st = os.lstat(top)
        os.chown(dest, st.st_uid, st.st_gid)
        os.chmod(dest, stat.S_IMODE(st.st_mode))


def _top_source(layers_top_first: list[Path], rel: str) -> Path | None:
    for layer in layers_top_first:
        path = layer / rel
        try:
            if stat.S_ISDIR(os.lstat(path).st_mode):
                return path
        except FileNotFoundError:
            continue
        return None
    return None


def _copy_file(source: Path, target: Path) -> None:
    fd_in = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        fd_out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o600)
        try:
            size = os.fstat(fd_in).st_size
            offset = 0
            while offset < size:
                sent = os.copy_file_range(fd_in, fd_out, size - offset)
                if sent == 0:
                    break
                offset += sent
        finally:
            os.close(fd_out)
    finally:
        os.close(fd_in)


def _copy_xattrs(source: Path, target: Path) -> None:
    try:
        names = os.listxattr(source, follow_symlinks=False)
    except OSError:
        return
    for name in names:
        if name.startswith("trusted.overlay."):
            continue
        try:
            os.setxattr(target, name, os.getxattr(source, name, follow_symlinks=False),
                        follow_symlinks=False)
        except OSError:
            pass  # e.g. user.* on a symlink: not supported, as cp -a leaves it
