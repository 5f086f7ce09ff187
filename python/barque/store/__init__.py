"""The on-disk store: content-addressed blobs, unpacked layer snapshots, and metadata."""

from __future__ import annotations

from pathlib import Path

from .content import ContentStore
from .locks import file_lock
from .metadata import Metadata
from .paths import StorePaths
from .snapshots import SnapshotStore

__all__ = ["Store", "StorePaths", "ContentStore", "SnapshotStore", "Metadata", "file_lock"]


class Store:
    """Opens (creating if needed) a store root and gives access to its parts."""

    def __init__(self, root: Path) -> None:
        self.paths = StorePaths(root)
        self.paths.ensure()
        self.metadata = Metadata(self.paths.database)
        self.content = ContentStore(self.paths)
        self.snapshots = SnapshotStore(self.paths, self.metadata)

    def gc_lock(self, *, shared: bool):
        """Shared by operations that add content, exclusive for the GC that deletes it."""
        return file_lock(self.paths.lock("gc"), shared=shared)

    def layer_lock(self, chain_id: str):
        return file_lock(self.paths.lock("layer-" + chain_id.removeprefix("sha256:")))

    def blob_lock(self, digest: str):
        return file_lock(self.paths.lock("blob-" + digest.removeprefix("sha256:")))

    def close(self) -> None:
        self.metadata.close()
