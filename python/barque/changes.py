"""A container's changes to its image: ``diff``, ``commit`` and ``cp``.

The changes are the overlay's upper dir, read against the image's layers (lower dirs, top
first) without mounting anything. Overlay whiteouts (char devices 0:0) are deletions and opaque
dirs (``trusted.overlay.opaque=y``) hide everything below them; ``commit`` turns both back into
OCI ``.wh.`` entries. What barque's init layer put in the upper dir (``/.dockerenv``,
``/etc/mtab``, and ``/etc`` to hold it) is no change unless the container altered it, as with
Docker, whose init layer is a layer of its own.

Lower dirs are looked up one component at a time with ``lstat`` below real directories only,
so a symlink in an image never sends a lookup out of its layer.
"""

from __future__ import annotations

import json
import os
import stat
import tarfile
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import InvalidArgumentError
from .records import record

if TYPE_CHECKING:
    from .containers import Container
    from .engine import Engine

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"


@record(frozen=True)
class Change:
    """``kind`` is ``A`` (added), ``C`` (changed) or ``D`` (deleted), as ``docker diff``."""

    kind: str
    path: str                 # absolute, inside the container
    source: Path | None       # the entry in the upper dir (None for a deletion)
    opaque: bool = False      # a directory that hides the lower layers' content


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(path: Path) -> bool:
    try:
        return os.getxattr(path, "trusted.overlay.opaque", follow_symlinks=False) == b"y"
    except OSError:
        return False


def lower_entry(lowers_top_first: list[Path], parts: list[str]) -> tuple[Path, os.stat_result] | None:
    """The entry at ``parts`` in the merged lower layers (path and lstat), or None."""
    for layer in lowers_top_first:
        current = layer
        for i, part in enumerate(parts):
            try:
                st = os.lstat(current / part)
            except (FileNotFoundError, NotADirectoryError):
                if i > 0 and _is_opaque(current):
                    return None  # an opaque dir of this layer hides the layers below
                break
            if _is_whiteout(st):
                return None
            if i == len(parts) - 1:
                return current / part, st
            if not stat.S_ISDIR(st.st_mode):
                return None  # a file or symlink here hides whatever lower layers hold
            current = current / part
    return None


def _lower_children(lowers_top_first: list[Path], parts: list[str]) -> list[str]:
    """Names in the merged lower directory at ``parts``."""
    names: set[str] = set()
    hidden: set[str] = set()
    for layer in lowers_top_first:
        current = layer
        ok = True
        for part in parts:
            current = current / part
            try:
                if not stat.S_ISDIR(os.lstat(current).st_mode):
                    ok = False
                    break
            except OSError:
                ok = False
                break
        if not ok:
            continue
        for entry in os.scandir(current):
            st = entry.stat(follow_symlinks=False)
            if entry.name in hidden or entry.name in names:
                continue
            if _is_whiteout(st):
                hidden.add(entry.name)
            else:
                names.add(entry.name)
        if _is_opaque(current):
            break
    return sorted(names)


def _is_init_entry(rel: str, st: os.stat_result, path: Path) -> bool:
    """An entry barque's init layer created and the container left as it was."""
    if rel == ".dockerenv":
        return stat.S_ISREG(st.st_mode) and st.st_size == 0
    if rel == "etc/mtab":
        return stat.S_ISLNK(st.st_mode) and os.readlink(path) == "/proc/mounts"
    if rel in _MOUNT_POINT_FILES:  # empty stubs the runtime bind-mounts the bundle's files on
        return stat.S_ISREG(st.st_mode) and st.st_size == 0
    if rel in _MOUNT_POINT_DIRS:  # created by the runtime when the image lacks them
        return stat.S_ISDIR(st.st_mode)
    return False


_MOUNT_POINT_FILES = frozenset({"etc/hostname", "etc/hosts", "etc/resolv.conf"})
_MOUNT_POINT_DIRS = frozenset({"proc", "sys", "dev"})


def upper_changes(upper: Path, lowers_top_first: list[Path]) -> list[Change]:
    """The container's changes, parents before children, in path order."""
    out: list[Change] = []
    _walk(upper, [], lowers_top_first, out)
    return out


def _walk(directory: Path, parts: list[str], lowers: list[Path], out: list[Change]) -> None:
    for name in sorted(os.listdir(directory)):
        path = directory / name
        child = parts + [name]
        rel = "/".join(child)
        st = os.lstat(path)
        lower = lower_entry(lowers, child)
        if _is_whiteout(st):
            if lower is not None:
                out.append(Change("D", "/" + rel, None))
            continue
        if lower is None:
            if _is_init_entry(rel, st, path):
                continue
            out.append(Change("A", "/" + rel, path))
            if stat.S_ISDIR(st.st_mode):
                _walk(path, child, [], out)  # nothing below exists in the image
            continue
        lower_st = lower[1]
        if not stat.S_ISDIR(st.st_mode):
            out.append(Change("C", "/" + rel, path))
            continue
        opaque = _is_opaque(path) and stat.S_ISDIR(lower_st.st_mode)
        below: list[Change] = []
        if opaque:
            present = set(os.listdir(path))
            below += [Change("D", f"/{rel}/{n}", None)
                      for n in _lower_children(lowers, child) if n not in present]
        _walk(path, child, [] if opaque else lowers, below)
        changed_meta = (not stat.S_ISDIR(lower_st.st_mode)
                        or stat.S_IMODE(st.st_mode) != stat.S_IMODE(lower_st.st_mode)
                        or (st.st_uid, st.st_gid) != (lower_st.st_uid, lower_st.st_gid))
        if below or opaque or changed_meta:
            out.append(Change("C", "/" + rel, path, opaque=opaque))
            out.extend(sorted(below, key=lambda c: c.path))


class ContainerChanges:
    """``diff`` and ``commit`` for one engine's containers."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def _layers(self, container: Container) -> tuple[Path, list[Path]]:
        store = self._engine.store
        image = self._engine.images.get(container.image_id)
        upper = store.paths.container(container.id) / "upper"
        return upper, [store.snapshots.path(x.chain_id) for x in reversed(image.layers)]

    def diff(self, name_or_id: str) -> list[Change]:
        container = self._engine.containers.get(name_or_id)
        upper, lowers = self._layers(container)
        return sorted(upper_changes(upper, lowers), key=lambda c: c.path)

    def commit(self, name_or_id: str, reference: str | None = None, *, message: str = "",
               author: str = "", changes: list[str] | None = None, pause: bool = True,
               compression: str = "gzip") -> str:
        """``docker commit``: the container's changes become a new layer (``compression``:
        gzip or zstd) on top of its image's layers, with a history entry; returns the new
        image ID."""
        from .archives import now_rfc3339
        from .config_changes import apply_changes
        from .layers import add_image, check_layer_compression, layer_writer
        from .reference import Reference

        check_layer_compression(compression)
        engine = self._engine
        container = engine.containers.get(name_or_id)
        image = engine.images.get(container.image_id)
        tags = []
        if reference:
            ref = Reference.parse(reference)
            if ref.digest:
                raise InvalidArgumentError(f"cannot commit to a digest reference {reference!r}")
            tags = [str(ref)]
        config: dict[str, Any] = json.loads(json.dumps(image.config))
        config["config"] = apply_changes(config.get("config") or {}, changes or [])
        upper, lowers = self._layers(container)
        paused = False
        with engine.store.staging("commit") as scratch:
            try:
                if pause and container.status == "running":
                    engine.containers.pause(container.id)  # a consistent snapshot of the upper dir
                    paused = True
                writer = layer_writer(scratch, compression)
                try:
                    with tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                        write_layer_tar(tar, upper_changes(upper, lowers))
                except BaseException:
                    writer.abort()
                    raise
                layer = writer.finish()
                if paused:
                    engine.containers.unpause(container.id)
                    paused = False
                created = now_rfc3339()
                cmd = (container.config.get("Config") or {}).get("Cmd") or []
                config.update({"created": created, "container": container.id})
                if author:
                    config["author"] = author
                if message:
                    config["comment"] = message
                else:
                    config.pop("comment", None)
                entry = {"created": created, "created_by": " ".join(cmd)}
                if author:
                    entry["author"] = author
                if message:
                    entry["comment"] = message
                config["history"] = list(config.get("history") or []) + [entry]
                config["rootfs"] = {"type": "layers",
                                    "diff_ids": [x.diff_id for x in image.layers] + [layer.diff_id]}
                data = json.dumps(config, separators=(",", ":")).encode()
                return add_image(engine, data, list(image.layers), [layer], tags=tags)
            finally:
                if paused:
                    engine.containers.unpause(container.id)


def write_layer_tar(tar: tarfile.TarFile, changes: list[Change]) -> None:
    """The OCI layer for ``changes`` (parents first): deletions as ``.wh.<name>``, opaque
    dirs followed by ``.wh..wh..opq``. File content is read without following symlinks."""
    for change in changes:
        rel = change.path.lstrip("/")
        if change.kind == "D":
            parent, _, name = rel.rpartition("/")
            _add_marker(tar, f"{parent}/{WHITEOUT_PREFIX}{name}" if parent else
                        WHITEOUT_PREFIX + name)
            continue
        assert change.source is not None
        info = tar.gettarinfo(str(change.source), arcname=rel)
        if info is None:  # a socket: not representable in a tar, as Docker skips it
            continue
        info.uname = info.gname = ""
        if info.isreg():
            fd = os.open(change.source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            with os.fdopen(fd, "rb") as f:
                tar.addfile(info, f)
        else:
            tar.addfile(info)
        if change.opaque:
            _add_marker(tar, f"{rel}/{OPAQUE_MARKER}")


def _add_marker(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.size = 0
    info.mode = 0o644
    tar.addfile(info)


# -- cp -------------------------------------------------------------------------------------

_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_IN_ROOT = 0x10
_SYS_OPENAT2 = 437  # the same number on every architecture (a generic syscall since 5.6)


def open_in_root(root_fd: int, path: str, flags: int) -> int:
    """openat2(2) with RESOLVE_IN_ROOT: ``path`` (absolute or not) and every symlink met on the
    way are resolved as if ``root_fd`` were ``/``, so nothing can lead out of the container."""
    import ctypes

    class OpenHow(ctypes.Structure):
        _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                    ("resolve", ctypes.c_uint64)]

    libc = ctypes.CDLL(None, use_errno=True)
    how = OpenHow(flags | os.O_CLOEXEC, 0, _RESOLVE_IN_ROOT | _RESOLVE_NO_MAGICLINKS)
    fd = libc.syscall(_SYS_OPENAT2, root_fd, path.encode(), ctypes.byref(how),
                      ctypes.sizeof(how))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)
    return int(fd)


class ContainerCopy:
    """``docker cp`` between the host and a container, stopped or running. A running
    container's root is ``/proc/<pid>/root``; a stopped one's is its overlay, mounted for the
    copy. Inside, every path is resolved with RESOLVE_IN_ROOT and every entry below it is
    opened relative to its parent's descriptor with O_NOFOLLOW: a symlink in the container
    never reaches a host file."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def copy_out(self, name_or_id: str, path: str, dest: Path) -> None:
        with self._root(name_or_id) as root_fd:
            parent, name = _split(path)
            parent_fd = open_in_root(root_fd, parent, os.O_PATH | os.O_DIRECTORY)
            try:
                if not name:
                    name = "."
                st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
                target = dest / (Path(path).name or "root") if dest.is_dir() else dest
                _copy_out(parent_fd, name, st, target)
            finally:
                os.close(parent_fd)

    def copy_in(self, source: Path, name_or_id: str, path: str) -> None:
        st = os.lstat(source)
        with self._root(name_or_id) as root_fd:
            try:
                existing = open_in_root(root_fd, path, os.O_PATH)
            except FileNotFoundError:
                existing = -1
            if existing >= 0 and stat.S_ISDIR(os.fstat(existing).st_mode):
                parent_fd, name = existing, source.name
            else:
                if existing >= 0:
                    os.close(existing)
                parent, name = _split(path)
                if not name:
                    raise InvalidArgumentError(f"invalid destination {path!r}")
                parent_fd = open_in_root(root_fd, parent, os.O_PATH | os.O_DIRECTORY)
            try:
                _copy_in(source, st, parent_fd, name)
            finally:
                os.close(parent_fd)

    def _root(self, name_or_id: str):  # type: ignore[no-untyped-def]
        import contextlib
        import subprocess

        engine = self._engine
        container = engine.containers.get(name_or_id)

        @contextlib.contextmanager
        def running() -> Any:
            fd = os.open(f"/proc/{container.pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                yield fd
            finally:
                os.close(fd)

        @contextlib.contextmanager
        def mounted() -> Any:
            store = engine.store
            bundle = store.paths.container(container.id)
            image = engine.images.get(container.image_id)
            lowers = [store.snapshots.path(x.chain_id) for x in reversed(image.layers)]
            rel = [os.path.relpath(p, store.paths.root) for p in lowers]
            with tempfile.TemporaryDirectory(dir=store.paths.tmp, prefix="cp-") as merged:
                options = (f"lowerdir={':'.join(rel)},upperdir="
                           f"{os.path.relpath(bundle / 'upper', store.paths.root)},workdir="
                           f"{os.path.relpath(bundle / 'work', store.paths.root)}")
                subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, merged],
                               check=True, cwd=store.paths.root, capture_output=True)
                try:
                    fd = os.open(merged, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
                    try:
                        yield fd
                    finally:
                        os.close(fd)
                finally:
                    subprocess.run(["umount", merged], check=False, capture_output=True)

        if container.status in ("running", "paused") and container.pid:
            return running()
        return mounted()


def _split(path: str) -> tuple[str, str]:
    import posixpath

    norm = posixpath.normpath("/" + path)
    return posixpath.dirname(norm), posixpath.basename(norm)


def _copy_out(parent_fd: int, name: str, st: os.stat_result, target: Path) -> None:
    import shutil

    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(name, dir_fd=parent_fd), target)
    elif stat.S_ISREG(st.st_mode):
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
        with os.fdopen(fd, "rb") as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        os.chmod(target, stat.S_IMODE(st.st_mode))
    elif stat.S_ISDIR(st.st_mode):
        target.mkdir(exist_ok=True)
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                     dir_fd=parent_fd)
        try:
            for child in sorted(os.listdir(fd)):
                _copy_out(fd, child, os.stat(child, dir_fd=fd, follow_symlinks=False),
                          target / child)
        finally:
            os.close(fd)
        os.chmod(target, stat.S_IMODE(st.st_mode))
    # devices, fifos and sockets are not copied out, as `docker cp` skips them


def _copy_in(source: Path, st: os.stat_result, parent_fd: int, name: str) -> None:
    import shutil

    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(source), name, dir_fd=parent_fd)
    elif stat.S_ISREG(st.st_mode):
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=parent_fd)
        with open(source, "rb") as src, os.fdopen(fd, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
            os.fchmod(dst.fileno(), stat.S_IMODE(st.st_mode))
            os.fchown(dst.fileno(), 0, 0)
    elif stat.S_ISDIR(st.st_mode):
        try:
            os.mkdir(name, 0o700, dir_fd=parent_fd)
        except FileExistsError:
            pass
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                     dir_fd=parent_fd)
        try:
            for child in sorted(os.listdir(source)):
                _copy_in(source / child, os.lstat(source / child), fd, child)
            os.fchmod(fd, stat.S_IMODE(st.st_mode))
            os.fchown(fd, 0, 0)
        finally:
            os.close(fd)
    else:
        raise InvalidArgumentError(f"{source}: only files, directories and symlinks can be copied")
