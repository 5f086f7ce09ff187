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

import errno
import json
import os
import posixpath
import stat
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from . import overlay
from .errors import ContainerPathNotFoundError, InvalidArchiveError, InvalidArgumentError

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractContextManager

    from .containers import Container
    from .engine import Engine
    from .progress import Cancel, Progress

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"


class Change(msgspec.Struct, frozen=True):
    """``kind`` is ``A`` (added), ``C`` (changed) or ``D`` (deleted), as ``docker diff``."""

    kind: str
    path: str                 # absolute, inside the container
    source: Path | None       # the entry in the upper dir (None for a deletion)
    opaque: bool = False      # a directory that hides the lower layers' content


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
        lower = overlay.lookup(lowers, child)
        if overlay.is_whiteout(st):
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
        opaque = overlay.is_opaque(path) and stat.S_ISDIR(lower_st.st_mode)
        below: list[Change] = []
        if opaque:
            present = set(os.listdir(path))
            below += [Change("D", f"/{rel}/{n}", None)
                      for n in overlay.children(lowers, child) if n not in present]
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
               compression: str = "gzip", progress: Progress | None = None,
               cancel: Cancel | None = None) -> str:
        """``docker commit``: the container's changes become a new layer (``compression``:
        gzip or zstd) on top of its image's layers, with a history entry; returns the new
        image ID. See :meth:`barque.containers.ContainerService.commit`."""
        from .archives import now_rfc3339
        from .config_changes import apply_changes
        from .layers import add_image, check_layer_compression, layer_writer
        from .progress import NullProgress, check_cancelled
        from .reference import Reference

        report = progress or NullProgress()

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
                    # A stream ("w|") only writes to its fileobj; typeshed asks every mode's
                    # fileobj for read, seek, tell and close too.
                    with tarfile.open(fileobj=writer, mode="w|",  # type: ignore[call-overload]
                                      format=tarfile.PAX_FORMAT) as tar:
                        found = upper_changes(upper, lowers)

                        def entry_written(done: int) -> None:
                            check_cancelled(cancel, "commit")
                            report.layer("changes", "Writing layer", done, len(found))

                        write_layer_tar(tar, found, entry_written)
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
                check_cancelled(cancel, "commit")  # the last point where nothing is stored
                image_id = add_image(engine, data, list(image.layers), [layer], tags=tags)
                report.layer(layer.diff_id[7:19], "Committed")
                return image_id
            finally:
                if paused:
                    engine.containers.unpause(container.id)


def write_layer_tar(tar: tarfile.TarFile, changes: list[Change],
                    entry_written: Callable[[int], None] | None = None) -> None:
    """The OCI layer for ``changes`` (parents first): deletions as ``.wh.<name>``, opaque
    dirs followed by ``.wh..wh..opq``. File content is read without following symlinks.
    ``entry_written`` is told how many changes are written so far, before each one and at
    the end (it may raise to stop the layer there)."""
    for done, change in enumerate(changes):
        if entry_written is not None:
            entry_written(done)
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
    if entry_written is not None:
        entry_written(len(changes))


def _add_marker(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.size = 0
    info.mode = 0o644
    tar.addfile(info)


# -- cp -------------------------------------------------------------------------------------

_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_IN_ROOT = 0x10
_SYS_OPENAT2 = 437  # the same number on every architecture (a generic syscall since 5.6)
_MAX_LINK_HOPS = 40  # the kernel's own limit (ELOOP) for a path's symlinks


_OPENAT2: tuple[Any, Any] | None = None


def _openat2() -> tuple[Any, Any]:
    """libc and openat2's ``struct open_how``, made once: ctypes' class creation costs more
    than the syscall, and cp opens one path per entry it writes."""
    import ctypes

    global _OPENAT2
    if _OPENAT2 is None:
        class OpenHow(ctypes.Structure):
            _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                        ("resolve", ctypes.c_uint64)]

        _OPENAT2 = (ctypes.CDLL(None, use_errno=True), OpenHow)
    return _OPENAT2


def open_in_root(root_fd: int, path: str, flags: int) -> int:
    """openat2(2) with RESOLVE_IN_ROOT: ``path`` (absolute or not) and every symlink met on the
    way are resolved as if ``root_fd`` were ``/``, so nothing can lead out of the container."""
    import ctypes

    libc, open_how = _openat2()
    how = open_how(flags | os.O_CLOEXEC, 0, _RESOLVE_IN_ROOT | _RESOLVE_NO_MAGICLINKS)
    fd = libc.syscall(_SYS_OPENAT2, root_fd, path.encode(), ctypes.byref(how),
                      ctypes.sizeof(how))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)
    return int(fd)


#: One entry of a copy: its tar header (name relative to the copy, mode, owner, mtime, type)
#: and, for a regular file, its content. Trees are read into entries and entries written
#: into trees or tar streams, so every direction of ``cp`` keeps the same metadata.
Entry = tuple[tarfile.TarInfo, Any]


class ContainerCopy:
    """``docker cp`` between the host and a container, stopped or running, or a tar stream
    (``-``) and a container. A running container's root is ``/proc/<pid>/root``; a stopped
    one's is its overlay, mounted for the copy. Inside, every path is resolved with
    RESOLVE_IN_ROOT and every entry below it is opened relative to its parent's descriptor
    with O_NOFOLLOW: a symlink in the container never reaches a host file, and a symlink in
    the host directory a copy lands in never leads out of it.

    Modes and mtimes are kept. Owners as Docker's: what lands in a container belongs to its
    root and what lands on the host to the caller, unless ``archive`` (``-a``) keeps the
    source's uid/gid. ``follow_link`` (``-L``) copies what a symlink SRC points to (under the
    link's name) instead of the link."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def copy_out(self, name_or_id: str, path: str, dest: Path, *, archive: bool = False,
                 follow_link: bool = False) -> None:
        """``docker cp CONTAINER:PATH DEST``: into DEST if it is a directory (PATH's contents
        for ``PATH/.``), else as DEST."""
        contents = path == "." or path.endswith("/.")
        if dest.is_dir():
            into, arcname = dest, "." if contents else (posixpath.basename(
                posixpath.normpath("/" + path)) or "root")
        else:
            into, arcname = dest.parent, dest.name
        with self._root(name_or_id) as root_fd:
            entries = self._read(root_fd, name_or_id, path, arcname, follow_link)
            dest_fd = os.open(into, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                _extract(entries, dest_fd, ".",
                         None if archive else (os.geteuid(), os.getegid()))
            finally:
                os.close(dest_fd)

    def copy_out_tar(self, name_or_id: str, path: str, out: Any, *,
                     follow_link: bool = False) -> None:
        """``docker cp CONTAINER:PATH -``: a tar stream of PATH (named by its last component;
        owners as in the container) written to ``out``."""
        stream, _ = self.archive(name_or_id, path, follow_link=follow_link)
        with stream:
            for chunk in stream:
                out.write(chunk)

    def archive(self, name_or_id: str, path: str, *,
                follow_link: bool = False) -> tuple[TarStream, PathStat]:
        """Docker's ``GET /containers/{id}/archive``: PATH as a tar stream (named by its last
        component, ``.`` for ``DIR/.``; owners as in the container) and PATH's stat. A missing
        PATH raises ContainerPathNotFoundError here; the stream reads the container while it
        is read (a stopped container's overlay stays mounted until the stream is closed)."""
        import contextlib

        norm = posixpath.normpath("/" + path)
        arcname = "." if path == "." or path.endswith("/.") or norm == "/" else \
            posixpath.basename(norm)
        held = contextlib.ExitStack()
        try:
            root_fd = held.enter_context(self._root(name_or_id))
            try:
                parent_fd, name, st = _locate(root_fd, path, follow_link)
            except (FileNotFoundError, NotADirectoryError):
                raise ContainerPathNotFoundError(
                    f"Could not find the file {path} in container {name_or_id}") from None
            held.callback(os.close, parent_fd)
            link = os.readlink(name, dir_fd=parent_fd) if stat.S_ISLNK(st.st_mode) else ""
            found = PathStat(name=posixpath.basename(norm) or "/", size=st.st_size,
                             mode=go_file_mode(st.st_mode), mtime=st.st_mtime, link_target=link)
            chunks = _tar_chunks(_tree_entries(parent_fd, name, st, arcname))
        except BaseException:
            held.close()
            raise
        return TarStream(chunks, held.close), found

    def copy_in(self, source: Path, name_or_id: str, path: str, *, archive: bool = False,
                follow_link: bool = False) -> None:
        """``docker cp SRC CONTAINER:PATH``: into PATH if it is a directory, else as PATH."""
        st = os.stat(source) if follow_link else os.lstat(source)
        real = Path(os.path.realpath(source)) if follow_link else source
        with self._root(name_or_id) as root_fd:
            if _is_directory(root_fd, path):
                base, arcname = path, source.name
            else:
                base, arcname = _split(path)
                if not arcname:
                    raise InvalidArgumentError(f"invalid destination {path!r}")
            parent_fd = os.open(real.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                _extract(_tree_entries(parent_fd, real.name, st, arcname), root_fd, base,
                         None if archive else (0, 0))
            finally:
                os.close(parent_fd)

    def copy_in_tar(self, source: Any, name_or_id: str, path: str, *,
                    archive: bool = False) -> None:
        """``docker cp - CONTAINER:DIR``: extract the tar stream ``source`` (plain or
        compressed) into DIR, which must be a directory."""
        with self._root(name_or_id) as root_fd:
            if not _is_directory(root_fd, path):
                if not _exists(root_fd, path):
                    raise ContainerPathNotFoundError(
                        f"Could not find the file {path} in container {name_or_id}")
                raise InvalidArgumentError(
                    f'destination "{name_or_id}:{path}" must be a directory')
            try:
                with tarfile.open(fileobj=source, mode="r|*") as tar:
                    _extract(((m, tar.extractfile(m) if m.isreg() else None) for m in tar),
                             root_fd, path, None if archive else (0, 0))
            except tarfile.TarError as e:
                raise InvalidArchiveError(f"the input is not a valid tar archive: {e}") from e

    def _read(self, root_fd: int, name_or_id: str, path: str, arcname: str,
              follow_link: bool) -> Iterator[Entry]:
        """The entries of ``path`` in the container (see :func:`_tree_entries`). A missing
        path fails here, before anything is written."""
        try:
            parent_fd, name, st = _locate(root_fd, path, follow_link)
        except (FileNotFoundError, NotADirectoryError):
            raise ContainerPathNotFoundError(
                f"Could not find the file {path} in container {name_or_id}") from None

        def entries() -> Iterator[Entry]:
            try:
                yield from _tree_entries(parent_fd, name, st, arcname)
            finally:
                os.close(parent_fd)

        return entries()

    def _root(self, name_or_id: str) -> AbstractContextManager[int]:
        import contextlib
        import subprocess

        engine = self._engine
        container = engine.containers.get(name_or_id)

        @contextlib.contextmanager
        def running() -> Iterator[int]:
            fd = os.open(f"/proc/{container.pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                yield fd
            finally:
                os.close(fd)

        @contextlib.contextmanager
        def mounted() -> Iterator[int]:
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


class PathStat(msgspec.Struct, frozen=True):
    """What Docker's ``X-Docker-Container-Path-Stat`` header says of an archive's PATH:
    ``mode`` is Go's ``os.FileMode`` (permission bits, ``1 << 31`` a directory, ``1 << 27`` a
    symlink...), as Docker sends it; ``mtime`` seconds since the epoch."""

    name: str
    size: int
    mode: int
    mtime: float
    link_target: str = ""

    @property
    def docker(self) -> dict[str, Any]:
        """The header's JSON document, Docker's keys."""
        from datetime import datetime, timezone

        mtime = datetime.fromtimestamp(self.mtime, timezone.utc).isoformat()
        return {"name": self.name, "size": self.size, "mode": self.mode,
                "mtime": mtime.replace("+00:00", "Z"), "linkTarget": self.link_target}


#: Go's os.FileMode type bits (io/fs), which Docker's path stat carries.
_GO_MODE_BITS = ((stat.S_IFDIR, 1 << 31), (stat.S_IFLNK, 1 << 27), (stat.S_IFBLK, 1 << 26),
                 (stat.S_IFIFO, 1 << 25), (stat.S_IFSOCK, 1 << 24))


def go_file_mode(mode: int) -> int:
    """A ``st_mode`` as Go's os.FileMode: what Docker's API reports for a path."""
    kind = stat.S_IFMT(mode)
    out = mode & 0o777
    for posix, go in _GO_MODE_BITS:
        if kind == posix:
            out |= go
    if kind == stat.S_IFCHR:
        out |= (1 << 26) | (1 << 21)  # ModeDevice | ModeCharDevice
    for posix, go in ((stat.S_ISUID, 1 << 23), (stat.S_ISGID, 1 << 22), (stat.S_ISVTX, 1 << 20)):
        if mode & posix:
            out |= go
    return out


class TarStream:
    """A tar archive produced while it is read: iterate over its chunks, or ``read(n)`` it
    as a binary file. Close it (or use it as a context manager) to release what it reads
    from, even when it is not read to the end."""

    def __init__(self, chunks: Iterator[bytes], release: Callable[[], None]) -> None:
        self._chunks = chunks
        self._release: Callable[[], None] | None = release
        self._pending = b""

    def __iter__(self) -> Iterator[bytes]:
        if self._pending:
            pending, self._pending = self._pending, b""
            yield pending
        yield from self._chunks

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            return b"".join(self)
        while len(self._pending) < n:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._pending += chunk
        out, self._pending = self._pending[:n], self._pending[n:]
        return out

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()  # a generator's finally blocks run now, not at collection
        if self._release is not None:
            release, self._release = self._release, None
            release()

    def __enter__(self) -> TarStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _tar_chunks(entries: Iterator[Entry]) -> Iterator[bytes]:
    """``entries`` as the bytes ``tarfile``'s ``w|`` PAX stream writes for them (headers,
    content padded to 512-byte blocks, two end blocks, padding to a 10240-byte record), one
    piece at a time, so an archive of any size streams in bounded memory."""
    offset = 0
    for info, content in entries:
        header = info.tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape")
        yield header
        offset += len(header)
        if info.isreg() and content is not None:
            remaining = info.size
            while remaining:
                chunk = content.read(min(remaining, 1 << 20))
                if not chunk:  # the file shrank while it was read: the header promised more
                    raise OSError(errno.EIO, f"{info.name}: unexpected end of data")
                yield chunk
                remaining -= len(chunk)
            padding = -info.size % tarfile.BLOCKSIZE
            if padding:
                yield tarfile.NUL * padding
            offset += info.size + padding
    end = 2 * tarfile.BLOCKSIZE
    yield tarfile.NUL * (end + (-(offset + end) % tarfile.RECORDSIZE))


def _is_directory(root_fd: int, path: str) -> bool:
    """Whether ``path`` (a symlink followed, in the root) is a directory; False if missing."""
    try:
        fd = open_in_root(root_fd, path, os.O_PATH)
    except (FileNotFoundError, NotADirectoryError):
        return False
    try:
        return stat.S_ISDIR(os.fstat(fd).st_mode)
    finally:
        os.close(fd)


def _exists(root_fd: int, path: str) -> bool:
    try:
        os.close(open_in_root(root_fd, path, os.O_PATH | os.O_NOFOLLOW))
    except (FileNotFoundError, NotADirectoryError):
        return False
    return True


def _split(path: str) -> tuple[str, str]:
    norm = posixpath.normpath("/" + path)
    return posixpath.dirname(norm), posixpath.basename(norm)


def _locate(root_fd: int, path: str, follow_link: bool) -> tuple[int, str, os.stat_result]:
    """``path`` in the root: (its parent's descriptor, its name, its lstat). With
    ``follow_link``, a symlink at the end is followed -- inside the root -- until something
    else is found."""
    current = path
    for _ in range(_MAX_LINK_HOPS):
        parent, name = _split(current)
        parent_fd = open_in_root(root_fd, parent, os.O_PATH | os.O_DIRECTORY)
        try:
            name = name or "."
            st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
            if not (follow_link and stat.S_ISLNK(st.st_mode)):
                return parent_fd, name, st
            # An absolute target replaces the path; a relative one is read from the link's dir.
            current = posixpath.join(parent, os.readlink(name, dir_fd=parent_fd))
        except BaseException:
            os.close(parent_fd)
            raise
        os.close(parent_fd)
    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)


def _header(arcname: str, st: os.stat_result, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(arcname)
    info.type = kind
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.mtime = st.st_mtime
    return info


def _tree_entries(parent_fd: int, name: str, st: os.stat_result,
                  arcname: str) -> Iterator[Entry]:
    """The entries of the tree at ``name`` in ``parent_fd``, parents first, named from
    ``arcname``; every entry opened below its parent with O_NOFOLLOW. Devices, fifos and
    sockets are left out, as ``docker cp`` leaves them."""
    if stat.S_ISLNK(st.st_mode):
        info = _header(arcname, st, tarfile.SYMTYPE)
        info.linkname = os.readlink(name, dir_fd=parent_fd)
        yield info, None
    elif stat.S_ISREG(st.st_mode):
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
        with os.fdopen(fd, "rb") as f:
            info = _header(arcname, os.fstat(fd), tarfile.REGTYPE)
            info.size = os.fstat(fd).st_size
            yield info, f
    elif stat.S_ISDIR(st.st_mode):
        yield _header(arcname, st, tarfile.DIRTYPE), None
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                     dir_fd=parent_fd)
        try:
            for child in sorted(os.listdir(fd)):
                yield from _tree_entries(fd, child, os.stat(child, dir_fd=fd,
                                                            follow_symlinks=False),
                                         f"{arcname}/{child}")
        finally:
            os.close(fd)


def _member_path(base: str, name: str) -> str | None:
    """Where an entry named ``name`` goes below ``base``; None for the base itself. A name
    climbing out with ``..`` is refused, as Docker refuses it."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidArchiveError(f"{name}: the entry's path leads outside the destination")
    return posixpath.join(base, *parts) if parts else None


def _extract(entries: Iterator[Entry], root_fd: int, base: str,
             owner: tuple[int, int] | None) -> None:
    """Write ``entries`` below ``base``, resolved in ``root_fd`` as in a root. ``owner``:
    the uid/gid every entry gets, or None to keep each entry's. A directory's mode, owner and
    mtime are set once its content is written (writing it changes its mtime)."""
    directories: list[tuple[str, tarfile.TarInfo]] = []
    for info, content in entries:
        target = _member_path(base, info.name)
        if target is None:
            continue  # the destination itself ("./"): left as it is
        parent, name = posixpath.split(target)
        parent_fd = open_in_root(root_fd, parent or ".", os.O_PATH | os.O_DIRECTORY)
        try:
            _extract_one(info, content, root_fd, base, parent_fd, name, target, owner)
        finally:
            os.close(parent_fd)
        if info.isdir():
            directories.append((target, info))
    for target, info in reversed(directories):
        parent, name = posixpath.split(target)
        parent_fd = open_in_root(root_fd, parent or ".", os.O_PATH | os.O_DIRECTORY)
        try:
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                         dir_fd=parent_fd)
        finally:
            os.close(parent_fd)
        try:
            _set_metadata(fd, info, owner)
        finally:
            os.close(fd)


def _extract_one(info: tarfile.TarInfo, content: Any, root_fd: int, base: str,
                 parent_fd: int, name: str, target: str, owner: tuple[int, int] | None) -> None:
    import shutil

    try:
        existing: os.stat_result | None = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    except FileNotFoundError:
        existing = None
    if existing is not None and stat.S_ISDIR(existing.st_mode) != info.isdir():
        # Docker's rule too: a copy never replaces a directory by a file or the reverse.
        raise InvalidArgumentError(
            f"cannot overwrite non-directory {target} with directory" if info.isdir() else
            f"cannot overwrite directory {target} with non-directory")
    if info.isdir():
        if existing is None:
            os.mkdir(name, 0o700, dir_fd=parent_fd)  # opened up once its content is in
        return
    if existing is not None:
        os.unlink(name, dir_fd=parent_fd)
    if info.isreg():
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=parent_fd)
        with os.fdopen(fd, "wb") as dst:
            shutil.copyfileobj(content, dst, 1 << 20)
            dst.flush()
            _set_metadata(fd, info, owner)
        return
    if info.issym():
        os.symlink(info.linkname, name, dir_fd=parent_fd)
    elif info.islnk():
        link = _member_path(base, info.linkname)
        if link is None:
            raise InvalidArchiveError(f"{info.name}: a hard link to the destination itself")
        link_parent, link_name = posixpath.split(link)
        link_fd = open_in_root(root_fd, link_parent or ".", os.O_PATH | os.O_DIRECTORY)
        try:
            os.link(link_name, name, src_dir_fd=link_fd, dst_dir_fd=parent_fd,
                    follow_symlinks=False)
        finally:
            os.close(link_fd)
        return  # the same inode as its target: nothing of its own to set
    elif info.isfifo():
        os.mkfifo(name, 0o600, dir_fd=parent_fd)
    elif info.ischr() or info.isblk():
        kind = stat.S_IFCHR if info.ischr() else stat.S_IFBLK
        os.mknod(name, kind | 0o600, os.makedev(info.devmajor, info.devminor),
                 dir_fd=parent_fd)
    else:
        return  # nothing else a tar holds is a file
    uid, gid = owner or (info.uid, info.gid)
    os.chown(name, uid, gid, dir_fd=parent_fd, follow_symlinks=False)
    if not info.issym():  # a symlink's mode means nothing on Linux
        os.chmod(name, info.mode, dir_fd=parent_fd)
    os.utime(name, (info.mtime, info.mtime), dir_fd=parent_fd, follow_symlinks=False)


def _set_metadata(fd: int, info: tarfile.TarInfo, owner: tuple[int, int] | None) -> None:
    uid, gid = owner or (info.uid, info.gid)
    os.fchown(fd, uid, gid)
    os.fchmod(fd, info.mode)  # after the chown, which clears setuid and setgid bits
    os.utime(fd, (info.mtime, info.mtime))
