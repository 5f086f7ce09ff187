"""The on-disk store: content-addressed blobs, unpacked layer snapshots, and metadata."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from .content import ContentStore
from .locks import file_lock
from .metadata import Metadata
from .paths import StorePaths
from .snapshots import SnapshotStore, current_boot_id, remove_tree
from .staging import create_staging, remove_abandoned_staging

__all__ = ["Store", "StorePaths", "ContentStore", "SnapshotStore", "Metadata", "file_lock"]


class Store:
    """Opens (creating if needed) a store root and gives access to its parts."""

    def __init__(self, root: Path) -> None:
        self.paths = StorePaths(root)
        self.paths.ensure()
        # Two processes creating a store at once: SQLite does not wait (busy timeout) for the
        # switch to WAL mode, so the first open of the database is serialised by hand.
        with file_lock(self.paths.lock("open")):
            self.metadata = Metadata(self.paths.database)
        self.content = ContentStore(self.paths)
        self.snapshots = SnapshotStore(self.paths, self.metadata)
        self.settle()

    #: A pull's data older than this has been written back by the kernel already (its dirty
    #: expiry is 30 s), so making it durable costs a cheap syncfs.
    SETTLE_AFTER = 60.0

    def settle(self, *, now: float | None = None) -> None:
        """Durability bookkeeping, run whenever a store is opened (one query when idle).

        Pulls do not sync on their critical path: their images and snapshots are recorded as
        trusted for the current boot only. Here, records another boot left non-durable (power
        was lost before their files reached the disk) are forgotten and their files collected;
        and once this boot's pending records are older than :attr:`SETTLE_AFTER`, one syncfs
        makes them durable for good.
        """
        boot = current_boot_id()
        lost, oldest = self.metadata.pending_durability(boot)
        if lost:
            with self.gc_lock(shared=False):
                self.metadata.forget_lost(boot)
                self.collect_garbage()
        now = time.time() if now is None else now
        if oldest is not None and now - oldest > self.SETTLE_AFTER:
            self.sync()
            self.metadata.mark_durable(boot, added_before=now)

    def sync(self) -> None:
        """Make everything written to the store's filesystem durable (one syncfs)."""
        from .. import _native

        _native.syncfs(str(self.paths.root))

    def collect_garbage(self) -> list[str]:
        """Delete snapshots and blobs no image uses, unpack leftovers and the staging files of
        killed loads, imports and commits; returns the removed ChainIDs. Callers hold
        the exclusive GC lock (pulls hold it shared, so nothing they are adding is taken)."""
        removed: list[str] = []
        used_chains = self.metadata.chain_ids_in_use()
        for chain_id in self.metadata.snapshot_ids():
            if chain_id not in used_chains:
                self.snapshots.remove(chain_id)
                removed.append(chain_id)
        used_blobs = self.metadata.blobs_in_use()
        for digest in self.content.digests():
            if digest not in used_blobs:
                self.content.delete(digest)
        # Directories no record vouches for: unpacks that were interrupted, deletions cut short.
        for leftover in self.snapshots.leftovers():
            remove_tree(leftover)
        # Background deletions that were cut short (see snapshots.discard_tree).
        if self.paths.trash.is_dir():
            for entry in self.paths.trash.iterdir():
                remove_tree(entry)
        remove_abandoned_staging(self.paths.tmp)
        return removed

    @contextmanager
    def staging(self, operation: str) -> Iterator[Path]:
        """A scratch directory under ``tmp/`` for one ``load``, ``import`` or ``commit``,
        removed on leaving the block; owned (flock) meanwhile, so only a killed operation's is
        collected (see :mod:`barque.store.staging`)."""
        with self.gc_lock(shared=True):  # the GC never sees it before its owner lock is held
            directory, owner_fd = create_staging(self.paths.tmp, operation)
        try:
            yield directory
        finally:
            remove_tree(directory)
            os.close(owner_fd)

    def gc_lock(self, *, shared: bool) -> AbstractContextManager[None]:
        """Shared by operations that add content, exclusive for the GC that deletes it."""
        return file_lock(self.paths.lock("gc"), shared=shared)

    def layer_lock(self, chain_id: str) -> AbstractContextManager[None]:
        return file_lock(self.paths.lock("layer-" + chain_id.removeprefix("sha256:")))

    def blob_lock(self, digest: str) -> AbstractContextManager[None]:
        return file_lock(self.paths.lock("blob-" + digest.removeprefix("sha256:")))

    def close(self) -> None:
        self.metadata.close()
