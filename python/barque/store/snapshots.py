"""Unpacked layers ("snapshots"), one directory per ChainID, ready to be overlayfs lower dirs.

Contract: ``snapshots/<chainid>`` exists only once its layer was fully unpacked and its DiffID
verified (unpacking happens in ``snapshots/.tmp-<chainid>`` and is renamed into place, which
is atomic). Preparing a staging dir discards any leftover of an interrupted unpack. Callers
hold the per-layer lock around prepare/commit.
"""

from __future__ import annotations

import atexit
import contextlib
import os
from pathlib import Path

from .metadata import Metadata
from .paths import StorePaths

TYPE_CHECKING = False  # typing itself costs start-up time; checkers see the imports
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from .metadata import LayerRecord


class SnapshotStore:
    def __init__(self, paths: StorePaths, metadata: Metadata) -> None:
        self._paths = paths
        self._metadata = metadata

    def path(self, chain_id: str) -> Path:
        return self._paths.snapshot(chain_id)

    def lower_dirs(self, layers: Sequence[LayerRecord]) -> list[Path]:
        """The unpacked ``layers`` of an image (its record lists them bottom first) as an
        overlay's lower dirs: top first."""
        return [self._paths.snapshot(layer.chain_id) for layer in reversed(layers)]

    def has(self, chain_id: str) -> bool:
        """A complete snapshot we can trust: durable, or unpacked during this boot (so its
        data survived at least in the page cache, and the next syncfs makes it durable)."""
        state = self._metadata.snapshot_durability(chain_id)
        if state is None or not self._paths.snapshot(chain_id).is_dir():
            return False
        durable, boot = state
        return durable or (bool(boot) and boot == current_boot_id())

    def size(self, chain_id: str) -> int:
        return self._metadata.snapshot_size(chain_id) or 0

    def prepare(self, chain_id: str) -> Path:
        """An empty staging directory for unpacking ``chain_id`` (leftovers removed)."""
        staging = self._paths.snapshot_staging(chain_id)
        if staging.exists():
            remove_tree(staging)
        staging.mkdir(mode=0o755)
        return staging

    def commit(self, chain_id: str, diff_id: str, unpacked_size: int, *,
               durable: bool = True) -> Path:
        """Move the verified staging dir into place and record it. Idempotent. With
        ``durable=False`` the caller has not synced yet: the record carries this boot's ID
        and is trusted only until a reboot, or until an image using it is added."""
        staging = self._paths.snapshot_staging(chain_id)
        target = self._paths.snapshot(chain_id)
        if target.exists():  # an unrecorded leftover from a crash between rename and record
            remove_tree(target)
        os.rename(staging, target)
        self._metadata.add_snapshot(chain_id, diff_id, unpacked_size, durable=durable,
                                    boot_id="" if durable else current_boot_id())
        return target

    def discard(self, chain_id: str) -> None:
        staging = self._paths.snapshot_staging(chain_id)
        if staging.exists():
            remove_tree(staging)

    def remove(self, chain_id: str) -> int:
        """Forget and delete a snapshot; returns its recorded size."""
        size = self.size(chain_id)
        self._metadata.remove_snapshot(chain_id)
        target = self._paths.snapshot(chain_id)
        if target.exists():
            # Rename first so a half-deleted tree is never mistaken for a snapshot.
            doomed = self._paths.snapshots / f".del-{target.name}"
            os.rename(target, doomed)
            remove_tree(doomed)
        return size

    def leftovers(self) -> list[Path]:
        """Directories that no record vouches for (staging, deletions, crashed commits)."""
        known = {self._paths.snapshot(c).name for c in self._metadata.snapshot_ids()}
        return [p for p in self._paths.snapshots.iterdir() if p.name not in known]


def current_boot_id() -> str:
    """The kernel's random ID of this boot: it changes across a reboot or power loss."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


#: `rm` processes started by :func:`discard_tree`, reaped by later calls (a long-lived Python
#: program would otherwise collect zombies).
_discarding: list[int] = []
#: Trees renamed into the trash and not yet handed to an `rm` (see :func:`flush_discarded`).
_pending: list[str] = []
#: How many discarded trees share one `rm`: starting it (~0.5 ms) was most of what a
#: `run --rm` spent removing its container.
DISCARD_BATCH = 8


def discard_tree(path: Path, trash: Path) -> None:
    """Take a tree out of the store at once (an atomic rename into ``trash``, on the same
    filesystem) and delete it in the background: ``run --rm`` does not wait ~40 ms of unlinks.
    Trees are handed to `rm` in batches (:data:`DISCARD_BATCH`), and whatever is pending when
    the process ends (:func:`flush_discarded`, run at exit). What a killed deletion leaves in
    ``trash`` is removed by the store's garbage collection. Falls back to deleting in place if
    the rename fails."""
    for pid in list(_discarding):
        try:
            if os.waitpid(pid, os.WNOHANG)[0]:
                _discarding.remove(pid)
        except ChildProcessError:
            _discarding.remove(pid)
    target = trash / f"{path.name}-{os.urandom(4).hex()}"
    try:
        trash.mkdir(exist_ok=True, mode=0o700)
        os.rename(path, target)
    except FileNotFoundError:
        return
    except OSError:
        remove_tree(path)
        return
    _pending.append(str(target))
    if len(_pending) >= DISCARD_BATCH:
        flush_discarded()


def flush_discarded() -> None:
    """Start one background `rm` for the trees discarded and not yet handed over. Runs when a
    batch is full and at interpreter exit; code that leaves with ``os._exit`` (the CLI, the
    forkserver's children) calls it itself, after its answer is out."""
    if not _pending:
        return
    targets = _pending[:]
    _pending.clear()
    try:
        # posix_spawn (vfork-like, no Python in the child) of an absolute path with an empty
        # environment: ~0.5 ms, where setsid or a PATH search would double it. A hangup that
        # kills it only leaves work for the garbage collection. At idle CPU priority: with
        # online discard, unlinks are slow here, and cleaning up must not slow the next start.
        rm = "/bin/rm" if os.path.exists("/bin/rm") else "/usr/bin/rm"
        pid = os.posix_spawn(
            rm, ["rm", "-rf", "--one-file-system", "--", *targets], {},
            file_actions=[(os.POSIX_SPAWN_OPEN, fd, os.devnull, os.O_RDWR, 0)
                          for fd in (0, 1, 2)])
        _discarding.append(pid)
        # Set here, once rm runs: set in the child (posix_spawn's scheduler=), the idle
        # priority held this process up until rm's exec (0.5 -> 2.5 ms).
        with contextlib.suppress(OSError):
            os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))
    except OSError:
        for target in targets:
            remove_tree(Path(target))


atexit.register(flush_discarded)


def remove_tree(path: Path) -> None:
    """Delete a tree that may contain read-only dirs; never follows symlinks."""

    def make_writable_and_retry(func: Callable[[str], object], p: str,
                                exc_info: tuple[object, BaseException, object]) -> None:
        if isinstance(exc_info[1], FileNotFoundError):
            return  # removed meanwhile by someone else (a supervisor cleaning its state)
        os.chmod(os.path.dirname(p), 0o700)
        func(p)

    import shutil  # here: it imports the compression modules, start-up time for every command

    shutil.rmtree(path, onerror=make_writable_and_retry)
