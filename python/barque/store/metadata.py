"""The store's metadata: images, tags, repo digests, snapshots, containers and volumes, in
SQLite (WAL mode).

Contract: every method is atomic (one transaction); readers never see a half-written image;
concurrent barque processes serialise their writes through SQLite's lock (busy timeout 60 s),
so a tag is never lost or corrupted. Methods are safe to call from several threads.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import msgspec

from ..errors import StoreError

TYPE_CHECKING = False  # typing itself costs start-up time; checkers see the imports
if TYPE_CHECKING:
    from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY,            -- config digest
    config BLOB NOT NULL,           -- the config JSON exactly as pulled
    manifest_digest TEXT NOT NULL,
    manifest_media_type TEXT NOT NULL,
    manifest BLOB NOT NULL,
    created TEXT NOT NULL,          -- the config's "created" (RFC 3339), may be ''
    size INTEGER NOT NULL,          -- bytes of unpacked file content, all layers
    added_at REAL NOT NULL,
    last_tag_time REAL,
    -- 0 until a syncfs after the pull made its files durable. Until then the image is trusted
    -- only during the boot that pulled it (its data is at least in the page cache).
    durable INTEGER NOT NULL DEFAULT 1,
    boot_id TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS image_layers (
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    diff_id TEXT NOT NULL,
    chain_id TEXT NOT NULL,
    blob_digest TEXT NOT NULL,
    media_type TEXT NOT NULL,
    blob_size INTEGER NOT NULL,
    PRIMARY KEY (image_id, position)
);
CREATE INDEX IF NOT EXISTS image_layers_chain ON image_layers(chain_id);
CREATE INDEX IF NOT EXISTS image_layers_blob ON image_layers(blob_digest);
CREATE TABLE IF NOT EXISTS tags (
    ref TEXT PRIMARY KEY,           -- canonical "registry/repo:tag"
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS repo_digests (
    ref TEXT PRIMARY KEY,           -- canonical "registry/repo@sha256:..."
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS containers (
    id TEXT PRIMARY KEY,            -- 64 hex
    name TEXT NOT NULL UNIQUE,      -- without the leading "/"
    image_id TEXT NOT NULL,
    image TEXT NOT NULL,            -- what the user asked for, as Docker shows it
    created REAL NOT NULL,
    config BLOB NOT NULL,           -- JSON: Docker's Config and HostConfig for inspect
    status TEXT NOT NULL,           -- created | running | exited
    pid INTEGER NOT NULL DEFAULT 0,
    pid_start INTEGER NOT NULL DEFAULT 0,  -- /proc/PID/stat starttime: detects PID reuse
    exit_code INTEGER NOT NULL DEFAULT 0,
    started_at REAL NOT NULL DEFAULT 0,
    finished_at REAL NOT NULL DEFAULT 0,
    oom_killed INTEGER NOT NULL DEFAULT 0,
    error TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS volumes (
    name TEXT PRIMARY KEY,          -- [a-zA-Z0-9][a-zA-Z0-9_.-]+, files in volumes/<name>/_data
    driver TEXT NOT NULL,           -- "local"
    created REAL NOT NULL,
    labels BLOB NOT NULL,           -- JSON object (anonymous volumes: com.docker.volume.anonymous)
    options BLOB NOT NULL           -- JSON object: the driver options (--opt)
);
CREATE TABLE IF NOT EXISTS snapshots (
    chain_id TEXT PRIMARY KEY,
    diff_id TEXT NOT NULL,
    unpacked_size INTEGER NOT NULL,
    created REAL NOT NULL,
    -- As for images: 0 until synced, and then trusted only during the same boot.
    durable INTEGER NOT NULL DEFAULT 1,
    boot_id TEXT NOT NULL DEFAULT ''
);
"""


class LayerRecord(msgspec.Struct, frozen=True):
    diff_id: str
    chain_id: str
    blob_digest: str
    media_type: str
    blob_size: int


class ImageRecord(msgspec.Struct, frozen=True):
    id: str
    config: bytes
    manifest_digest: str
    manifest_media_type: str
    manifest: bytes
    created: str
    size: int
    added_at: float
    last_tag_time: float | None
    layers: tuple[LayerRecord, ...] = ()
    repo_tags: tuple[str, ...] = ()
    repo_digests: tuple[str, ...] = ()


class ContainerRecord(msgspec.Struct, frozen=True):
    id: str
    name: str
    image_id: str
    image: str
    created: float
    config: bytes
    status: str
    pid: int
    pid_start: int
    exit_code: int
    started_at: float
    finished_at: float
    oom_killed: bool
    error: str


class VolumeRecord(msgspec.Struct, frozen=True):
    name: str
    driver: str
    created: float
    labels: bytes
    options: bytes


_CONTAINER_COLUMNS = ("id, name, image_id, image, created, config, status, pid, pid_start,"
                      " exit_code, started_at, finished_at, oom_killed, error")


class NewImage(msgspec.Struct):
    """What a pull hands to :meth:`Metadata.add_image`."""

    id: str
    config: bytes
    manifest_digest: str
    manifest_media_type: str
    manifest: bytes
    created: str
    size: int
    layers: list[LayerRecord] = msgspec.field(default_factory=list)


def _schema_version() -> int:
    """A number that changes with ``_SCHEMA`` (24 bits of its sha256), kept in the
    database's ``user_version``: a store made by another version gets its new tables."""
    try:
        from _sha256 import sha256  # type: ignore[import-not-found]  # no OpenSSL load
    except ImportError:
        from hashlib import sha256
    return int.from_bytes(sha256(_SCHEMA.encode()).digest()[:3], "big")


class Metadata:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.RLock()
        with self._errors():
            self._db = sqlite3.connect(path, timeout=60.0, isolation_level=None,
                                       check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            # The schema is created once per store, not on every open: that would take the
            # write lock (BEGIN IMMEDIATE) in every command, readers included.
            current = self._db.execute("PRAGMA user_version").fetchone()[0]
        wanted = _schema_version()
        if current != wanted:
            with self.transaction():
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {wanted}")

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """SQLite failures (a full disk, a corrupt file) become one-line StoreErrors."""
        try:
            yield
        except sqlite3.Error as e:
            raise StoreError(f"store metadata {self._path}: {e}") from e

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; BEGIN IMMEDIATE takes the write lock up front (no upgrade deadlock)."""
        with self._lock, self._errors():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def _query(self, sql: str, args: tuple[object, ...] = ()) -> list[Any]:
        """The rows, tuples whose shape the SQL decides."""
        with self._lock, self._errors():
            return self._db.execute(sql, args).fetchall()

    # -- images ---------------------------------------------------------------------------

    def add_image(self, image: NewImage, tags: list[str], digests: list[str], *,
                  boot_id: str = "") -> None:
        """Record an image with its layers, and point ``tags``/``digests`` at it. With a
        ``boot_id`` the image is not durable yet (see :meth:`settle`). Atomic and idempotent:
        re-adding an existing image only moves the tags and adds the digests."""
        now = time.time()
        with self.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO images (id, config, manifest_digest, manifest_media_type,"
                " manifest, created, size, added_at, durable, boot_id)"
                " VALUES (?,?,?,?,?,?,?,?,?,?)",
                (image.id, image.config, image.manifest_digest, image.manifest_media_type,
                 image.manifest, image.created, image.size, now, int(not boot_id), boot_id))
            db.execute("DELETE FROM image_layers WHERE image_id = ?", (image.id,))
            db.executemany(
                "INSERT INTO image_layers VALUES (?,?,?,?,?,?,?)",
                [(image.id, i, l.diff_id, l.chain_id, l.blob_digest, l.media_type, l.blob_size)
                 for i, l in enumerate(image.layers)])
            for ref in tags:
                db.execute("INSERT OR REPLACE INTO tags VALUES (?, ?)", (ref, image.id))
            for ref in digests:
                db.execute("INSERT OR REPLACE INTO repo_digests VALUES (?, ?)", (ref, image.id))
            if tags:
                db.execute("UPDATE images SET last_tag_time = ? WHERE id = ?", (now, image.id))

    # -- durability -------------------------------------------------------------------------

    def pending_durability(self, boot_id: str) -> tuple[bool, float | None]:
        """(whether records of another boot were never made durable, the oldest time a record
        of this boot was added without being durable yet, or None)."""
        lost = self._query(
            "SELECT (SELECT count(*) FROM images WHERE durable = 0 AND boot_id != ?)"
            " + (SELECT count(*) FROM snapshots WHERE durable = 0 AND boot_id != ?)",
            (boot_id, boot_id))[0][0]
        oldest = self._query(
            "SELECT min(t) FROM (SELECT added_at AS t FROM images WHERE durable = 0 AND boot_id = ?"
            " UNION ALL SELECT created FROM snapshots WHERE durable = 0 AND boot_id = ?)",
            (boot_id, boot_id))[0][0]
        return bool(lost), oldest

    def forget_lost(self, boot_id: str) -> list[str]:
        """Drop images and snapshot records that were not durable when the machine went down
        (another boot's): their files may be incomplete. Returns the dropped image IDs."""
        with self.transaction() as db:
            ids = [r[0] for r in db.execute(
                "SELECT id FROM images WHERE durable = 0 AND boot_id != ?", (boot_id,))]
            db.executemany("DELETE FROM images WHERE id = ?", [(i,) for i in ids])
            db.execute("DELETE FROM snapshots WHERE durable = 0 AND boot_id != ?", (boot_id,))
            return ids

    def mark_durable(self, boot_id: str, added_before: float) -> None:
        """After a syncfs: this boot's images added before ``added_before`` and every snapshot
        of this boot created before it are durable."""
        with self.transaction() as db:
            db.execute("UPDATE images SET durable = 1, boot_id = '' WHERE durable = 0"
                       " AND boot_id = ? AND added_at < ?", (boot_id, added_before))
            db.execute("UPDATE snapshots SET durable = 1, boot_id = '' WHERE durable = 0"
                       " AND boot_id = ? AND created < ?", (boot_id, added_before))

    def image_ids(self) -> list[str]:
        return [r[0] for r in self._query("SELECT id FROM images ORDER BY added_at DESC")]

    def get_image(self, image_id: str) -> ImageRecord | None:
        rows = self._query(
            "SELECT id, config, manifest_digest, manifest_media_type, manifest, created, size,"
            " added_at, last_tag_time FROM images WHERE id = ?", (image_id,))
        if not rows:
            return None
        layers = tuple(LayerRecord(*r) for r in self._query(
            "SELECT diff_id, chain_id, blob_digest, media_type, blob_size FROM image_layers"
            " WHERE image_id = ? ORDER BY position", (image_id,)))
        tags = tuple(r[0] for r in self._query(
            "SELECT ref FROM tags WHERE image_id = ? ORDER BY ref", (image_id,)))
        digests = tuple(r[0] for r in self._query(
            "SELECT ref FROM repo_digests WHERE image_id = ? ORDER BY ref", (image_id,)))
        (id_, config, manifest_digest, manifest_media_type, manifest, created, size, added_at,
         last_tag_time) = rows[0]
        return ImageRecord(id_, config, manifest_digest, manifest_media_type, manifest, created,
                           size, added_at, last_tag_time, layers=layers, repo_tags=tags,
                           repo_digests=digests)

    def images(self) -> list[ImageRecord]:
        return [img for i in self.image_ids() if (img := self.get_image(i)) is not None]

    def find_ids_by_prefix(self, hex_prefix: str) -> list[str]:
        """Image IDs whose hex starts with ``hex_prefix`` (callers validate it is hex)."""
        return [r[0] for r in self._query(
            "SELECT id FROM images WHERE substr(id, 8, ?) = ?", (len(hex_prefix), hex_prefix))]

    def image_for_tag(self, ref: str) -> str | None:
        rows = self._query("SELECT image_id FROM tags WHERE ref = ?", (ref,))
        return rows[0][0] if rows else None

    def image_for_digest(self, ref: str) -> str | None:
        rows = self._query("SELECT image_id FROM repo_digests WHERE ref = ?", (ref,))
        return rows[0][0] if rows else None

    def tag(self, ref: str, image_id: str) -> None:
        """Point ``ref`` at ``image_id`` (moving it if it pointed elsewhere). Atomic."""
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO tags VALUES (?, ?)", (ref, image_id))
            db.execute("UPDATE images SET last_tag_time = ? WHERE id = ?", (time.time(), image_id))

    def add_digest(self, ref: str, image_id: str) -> None:
        """Record that ``ref`` (``registry/repo@sha256:...``) serves ``image_id``, as a push
        learns. Atomic."""
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO repo_digests VALUES (?, ?)", (ref, image_id))

    def untag(self, ref: str) -> bool:
        with self.transaction() as db:
            return db.execute("DELETE FROM tags WHERE ref = ?", (ref,)).rowcount > 0

    def remove_image(self, image_id: str) -> list[str]:
        """Delete the image record, its tags and digests. Returns the refs that were untagged."""
        with self.transaction() as db:
            refs = [r[0] for r in db.execute(
                "SELECT ref FROM tags WHERE image_id = ? UNION ALL"
                " SELECT ref FROM repo_digests WHERE image_id = ?", (image_id, image_id))]
            db.execute("DELETE FROM images WHERE id = ?", (image_id,))
            return refs

    def remove_digest(self, ref: str) -> bool:
        with self.transaction() as db:
            return db.execute("DELETE FROM repo_digests WHERE ref = ?", (ref,)).rowcount > 0

    def remove_digests_of_repo(self, image_id: str, repo: str) -> list[str]:
        with self.transaction() as db:
            refs = [r[0] for r in db.execute(
                "SELECT ref FROM repo_digests WHERE image_id = ? AND ref LIKE ?",
                (image_id, repo.replace("%", r"\%") + "@%"))]
            db.executemany("DELETE FROM repo_digests WHERE ref = ?", [(r,) for r in refs])
            return refs

    # -- containers -----------------------------------------------------------------------

    def add_container(self, record: ContainerRecord) -> str | None:
        """Insert a new container unless its name is taken: returns None when inserted, else
        the ID of the container holding the name. Check and insert are one transaction, so two
        processes can never both take a name."""
        with self.transaction() as db:
            owner = db.execute("SELECT id FROM containers WHERE name = ?",
                               (record.name,)).fetchone()
            if owner:
                return str(owner[0])
            db.execute(f"INSERT INTO containers ({_CONTAINER_COLUMNS}) VALUES"
                       " (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                       (record.id, record.name, record.image_id, record.image, record.created,
                        record.config, record.status, record.pid, record.pid_start,
                        record.exit_code, record.started_at, record.finished_at,
                        int(record.oom_killed), record.error))
            return None

    def container_for_name(self, name: str) -> str | None:
        rows = self._query("SELECT id FROM containers WHERE name = ?", (name,))
        return rows[0][0] if rows else None

    def container_ids_by_prefix(self, prefix: str) -> list[str]:
        return [r[0] for r in self._query(
            "SELECT id FROM containers WHERE substr(id, 1, ?) = ?", (len(prefix), prefix))]

    def get_container(self, container_id: str) -> ContainerRecord | None:
        rows = self._query(f"SELECT {_CONTAINER_COLUMNS} FROM containers WHERE id = ?",
                           (container_id,))
        if not rows:
            return None
        r = list(rows[0])
        r[12] = bool(r[12])
        return ContainerRecord(*r)

    def containers(self) -> list[ContainerRecord]:
        ids = [r[0] for r in self._query("SELECT id FROM containers ORDER BY created DESC")]
        return [c for i in ids if (c := self.get_container(i)) is not None]

    def update_container(self, container_id: str, **fields: object) -> None:
        """Set some state columns of one container atomically."""
        allowed = {"status", "pid", "pid_start", "exit_code", "started_at", "finished_at",
                   "oom_killed", "error", "name"}
        if not fields or not set(fields) <= allowed:
            raise ValueError(f"cannot update {sorted(set(fields) - allowed)}")
        assignments = ", ".join(f"{k} = ?" for k in fields)
        with self.transaction() as db:
            db.execute(f"UPDATE containers SET {assignments} WHERE id = ?",
                       (*fields.values(), container_id))

    def rename_container(self, container_id: str, name: str) -> str | None:
        """Rename unless ``name`` is taken by another container: returns None when renamed,
        else the ID holding the name. One transaction, like :meth:`add_container`."""
        with self.transaction() as db:
            owner = db.execute("SELECT id FROM containers WHERE name = ? AND id != ?",
                               (name, container_id)).fetchone()
            if owner:
                return str(owner[0])
            db.execute("UPDATE containers SET name = ? WHERE id = ?", (name, container_id))
            return None

    def remove_container(self, container_id: str) -> bool:
        with self.transaction() as db:
            return db.execute("DELETE FROM containers WHERE id = ?",
                              (container_id,)).rowcount > 0

    def containers_using_image(self, image_id: str) -> list[str]:
        return [r[0] for r in self._query(
            "SELECT id FROM containers WHERE image_id = ?", (image_id,))]

    # -- volumes ----------------------------------------------------------------------------

    def add_volume(self, record: VolumeRecord) -> bool:
        """Record a volume unless one has that name: True when inserted (one transaction, so
        two processes creating one name agree on a single volume)."""
        with self.transaction() as db:
            return db.execute(
                "INSERT OR IGNORE INTO volumes (name, driver, created, labels, options)"
                " VALUES (?,?,?,?,?)",
                (record.name, record.driver, record.created, record.labels,
                 record.options)).rowcount > 0

    def get_volume(self, name: str) -> VolumeRecord | None:
        rows = self._query("SELECT name, driver, created, labels, options FROM volumes"
                           " WHERE name = ?", (name,))
        return VolumeRecord(*rows[0]) if rows else None

    def volumes(self) -> list[VolumeRecord]:
        return [VolumeRecord(*r) for r in self._query(
            "SELECT name, driver, created, labels, options FROM volumes ORDER BY name")]

    def remove_volume(self, name: str) -> bool:
        with self.transaction() as db:
            return db.execute("DELETE FROM volumes WHERE name = ?", (name,)).rowcount > 0

    # -- snapshots and blobs in use ---------------------------------------------------------

    def add_snapshot(self, chain_id: str, diff_id: str, unpacked_size: int, *,
                     durable: bool = True, boot_id: str = "") -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO snapshots VALUES (?,?,?,?,?,?)",
                       (chain_id, diff_id, unpacked_size, time.time(), int(durable), boot_id))

    def snapshot_size(self, chain_id: str) -> int | None:
        rows = self._query("SELECT unpacked_size FROM snapshots WHERE chain_id = ?", (chain_id,))
        return rows[0][0] if rows else None

    def snapshot_durability(self, chain_id: str) -> tuple[bool, str] | None:
        """(durable, boot_id) of a recorded snapshot, None if there is no record."""
        rows = self._query("SELECT durable, boot_id FROM snapshots WHERE chain_id = ?",
                           (chain_id,))
        return (bool(rows[0][0]), rows[0][1]) if rows else None

    def remove_snapshot(self, chain_id: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM snapshots WHERE chain_id = ?", (chain_id,))

    def snapshot_ids(self) -> list[str]:
        return [r[0] for r in self._query("SELECT chain_id FROM snapshots")]

    def chain_ids_in_use(self) -> set[str]:
        return {r[0] for r in self._query("SELECT DISTINCT chain_id FROM image_layers")}

    def blobs_in_use(self) -> set[str]:
        used = {r[0] for r in self._query("SELECT DISTINCT blob_digest FROM image_layers")}
        used.update(r[0] for r in self._query("SELECT id FROM images"))
        used.update(r[0] for r in self._query("SELECT manifest_digest FROM images"))
        return used
