"""Content-addressed blobs (layers, configs, manifests) under ``blobs/sha256``.

Contract: a blob file exists only with verified content (written to ``tmp/`` or ``ingest/``,
hashed, fsync'd, renamed into place). Writes are idempotent: writing a blob that exists is a
no-op. Blobs are immutable; deletion is the garbage collector's job (under the GC lock).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from ..digest import sha256_digest, validate_digest
from ..errors import DigestMismatchError
from .locks import try_file_lock
from .paths import StorePaths

_HEX = frozenset("0123456789abcdef")


class ContentStore:
    def __init__(self, paths: StorePaths) -> None:
        self._paths = paths

    def path(self, digest: str) -> Path:
        return self._paths.blob(digest)

    def has(self, digest: str) -> bool:
        return self._paths.blob(digest).is_file()

    def read(self, digest: str) -> bytes:
        """The blob's bytes, re-verified (a store corrupted on disk is never trusted)."""
        data = self._paths.blob(digest).read_bytes()
        actual = sha256_digest(data)
        if actual != digest:
            raise DigestMismatchError(f"blob {digest} in the store is corrupt (hashes to {actual})")
        return data

    def write(self, digest: str, data: bytes, *, sync: bool = True) -> Path:
        """Store ``data`` under ``digest`` after checking it hashes to it. Atomic, idempotent.
        ``sync=False`` skips the fsyncs, for a pull whose durability ``Store.settle`` handles
        (an fsync on ext4 commits the journal, flushing every file the pull wrote)."""
        validate_digest(digest)
        actual = sha256_digest(data)
        if actual != digest:
            raise DigestMismatchError(f"content does not match {digest} (got {actual})")
        target = self._paths.blob(digest)
        if target.is_file():
            return target
        write_atomic(target, data, self._paths.tmp, sync=sync)
        return target

    def delete(self, digest: str) -> int:
        """Remove a blob; returns the bytes freed (0 if it was absent)."""
        target = self._paths.blob(digest)
        try:
            size = target.stat().st_size
            target.unlink()
            return size
        except FileNotFoundError:
            return 0

    def digests(self) -> list[str]:
        return ["sha256:" + p.name for p in self._paths.blobs.iterdir() if len(p.name) == 64]

    def stale_partials(self) -> list[tuple[Path, int]]:
        """Partial downloads no live pull is writing (their blob lock is free), with their
        sizes: what a failed or killed pull (ENOSPC, a dropped registry) left behind."""
        stale = []
        for partial, digest in self._partials():
            with try_file_lock(self._paths.blob_lock(digest)) as free:
                if free:
                    with contextlib.suppress(FileNotFoundError):
                        stale.append((partial, partial.stat().st_size))
        return stale

    def remove_stale_partials(self) -> int:
        """Delete the partial downloads no live pull is writing; returns the bytes freed. Each
        is removed while its blob lock is held, so a pull starting meanwhile waits and then
        starts over instead of appending to a file that is gone."""
        freed = 0
        for partial, digest in self._partials():
            with try_file_lock(self._paths.blob_lock(digest)) as free:
                if not free:
                    continue
                with contextlib.suppress(FileNotFoundError):
                    size = partial.stat().st_size
                    partial.unlink()
                    freed += size
        return freed

    def _partials(self) -> list[tuple[Path, str]]:
        try:
            names = [p for p in self._paths.ingest.iterdir() if p.name.endswith(".partial")]
        except FileNotFoundError:
            return []
        out = []
        for partial in names:
            hex_part = partial.name.removesuffix(".partial")
            if len(hex_part) == 64 and set(hex_part) <= _HEX:
                out.append((partial, "sha256:" + hex_part))
        return out


def write_atomic(target: Path, data: bytes, scratch: Path, mode: int = 0o644, *,
                 sync: bool = True) -> None:
    """Write a file so that readers see the old content or the new, never a mix: a temp file in
    ``scratch`` (same filesystem), fsync, rename over ``target``, fsync of the directory.
    Without ``sync`` the rename is still atomic for readers, but not durable yet."""
    # O_EXCL with a random name, as tempfile.mkstemp, without importing tempfile (and with it
    # random and shutil) on every command's path.
    tmp = os.path.join(scratch, f".write-{os.urandom(8).hex()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)
            if sync:
                os.fsync(f.fileno())
        os.rename(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    if not sync:
        return
    dir_fd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
