"""Every on-disk path of the store, and nothing else.

Layout under the root (mode 0700, so no other user can traverse it; CVE-2021-41091)::

    blobs/sha256/<hex>          content-addressed blobs (layers, configs, manifests), immutable
    ingest/<hex>.partial        a blob being downloaded; kept across a killed pull to resume
    snapshots/<chainid-hex>/    one unpacked layer (an overlayfs lower dir), keyed by ChainID
    snapshots/.tmp-<hex>/       a layer being unpacked; renamed into place when verified
    containers/<id>/            a container's bundle: config.json, upper/, work/, rootfs/,
                                hostname, hosts, resolv.conf, and <id>-json.log (+ .1, .2 ...)
    locks/                      advisory lock files (flock) coordinating barque processes
    metadata.db                 SQLite (WAL): images, tags, digests, snapshots
    tmp/                        scratch space on the store's filesystem, for atomic writes
    tmp/<op>-<random>/          a load, import or commit's staging files; .owner.lock inside
                                is flock'ed by the live owner (see store/staging.py)
    trash/                      trees taken out of the store, being deleted in the background
    cache/seccomp/<key>.bpf     compiled seccomp programs, keyed by profile, arch and libseccomp
    volumes/<name>/_data        a named or anonymous volume's files (its record: metadata.db)
    network-notice-shown        empty; made by the first run/create told there is no bridge
                                network yet, so the CLI says so once per store

A supervised container's live state (its supervisor's pid, attach socket and exit record) is
not in the store but under ``/run/barque/<store key>/<id>/``: on a tmpfs that a reboot empties,
as that state dies with the processes, and short enough for a unix socket path (108 bytes).
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path

import msgspec

from ..digest import digest_hex

#: Where supervised containers' live state goes (a tmpfs on systemd hosts).
RUN_ROOT = Path("/run/barque")


class StorePaths(msgspec.Struct, frozen=True, dict=True):  # dict: for the cached_property
    root: Path

    @property
    def blobs(self) -> Path:
        return self.root / "blobs" / "sha256"

    @property
    def ingest(self) -> Path:
        return self.root / "ingest"

    @property
    def snapshots(self) -> Path:
        return self.root / "snapshots"

    @property
    def containers(self) -> Path:
        return self.root / "containers"

    def container(self, container_id: str) -> Path:
        if len(container_id) != 64 or not all(c in "0123456789abcdef" for c in container_id):
            raise ValueError(f"invalid container id {container_id!r}")
        return self.containers / container_id

    def container_log(self, container_id: str) -> Path:
        """The json-file log of a container (rotated files get ``.1``, ``.2`` ...)."""
        return self.container(container_id) / f"{container_id}-json.log"

    def run_state(self, container_id: str) -> Path:
        """The live-state directory of a supervised container (see the module docstring)."""
        self.container(container_id)  # validates the id
        return self._run_root / container_id

    @cached_property
    def _run_root(self) -> Path:
        key = str(self.root.resolve()).encode()
        try:
            # CPython's own sha256: loading OpenSSL (hashlib) costs a few ms of every
            # container start.
            from _sha256 import sha256  # type: ignore[import-not-found]
        except ImportError:
            from hashlib import sha256
        digest: str = sha256(key).hexdigest()
        return RUN_ROOT / digest[:12]

    @property
    def volumes(self) -> Path:
        return self.root / "volumes"

    def volume(self, name: str) -> Path:
        """A volume's directory; its files are in ``_data`` below it (Docker's layout)."""
        if not name or "/" in name or name in (".", "..") or name.startswith(".") \
                or "\0" in name:
            raise ValueError(f"invalid volume name {name!r}")
        return self.volumes / name

    def volume_data(self, name: str) -> Path:
        return self.volume(name) / "_data"

    @property
    def trash(self) -> Path:
        return self.root / "trash"

    @property
    def seccomp_cache(self) -> Path:
        """Compiled seccomp filters (the Rust core names, validates and replaces the files)."""
        return self.root / "cache" / "seccomp"

    @property
    def locks(self) -> Path:
        return self.root / "locks"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def network_notice_marker(self) -> Path:
        return self.root / "network-notice-shown"

    @property
    def database(self) -> Path:
        return self.root / "metadata.db"

    def blob(self, digest: str) -> Path:
        return self.blobs / digest_hex(digest)

    def partial(self, digest: str) -> Path:
        return self.ingest / f"{digest_hex(digest)}.partial"

    def snapshot(self, chain_id: str) -> Path:
        return self.snapshots / digest_hex(chain_id)

    def snapshot_staging(self, chain_id: str) -> Path:
        return self.snapshots / f".tmp-{digest_hex(chain_id)}"

    def lock(self, name: str) -> Path:
        return self.locks / f"{name}.lock"

    def blob_lock(self, digest: str) -> Path:
        """Held by the pull writing the blob's partial file (and renaming it into place)."""
        return self.lock("blob-" + digest_hex(digest))

    def ensure(self) -> None:
        """Create the layout (idempotent). The root is forced to 0700 even if it existed."""
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        for d in (self.blobs, self.ingest, self.snapshots, self.containers, self.locks, self.tmp):
            d.mkdir(parents=True, exist_ok=True)
