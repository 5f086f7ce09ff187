"""Scratch directories of archive operations (load, import, commit) under the store's ``tmp/``.

Each is named ``<operation>-<random>`` and holds ``.owner.lock``, flock'ed by the process doing
the operation for as long as the directory exists. The kernel drops the flock of a killed
process, so the GC tells a killed operation's leftovers from work in progress without guessing
from pids or ages: a staging directory whose lock it can take (or that has no lock file) is
garbage. Owners create their directory under the shared GC lock, so the exclusive GC never
sees one before its owner holds the lock.
"""

from __future__ import annotations

import fcntl
import os
import stat
from pathlib import Path

from .snapshots import remove_tree

#: The operations that stage files, each a name prefix under ``tmp/``.
OPERATIONS = ("load", "import", "commit")
OWNER_LOCK = ".owner.lock"


def create_staging(tmp: Path, operation: str) -> tuple[Path, int]:
    """A new staging directory for ``operation`` and the fd holding its owner lock (closing
    the fd gives the directory up to the GC)."""
    if operation not in OPERATIONS:
        raise ValueError(f"unknown staging operation {operation!r}")
    import tempfile  # here: start-up time for commands that never stage

    directory = Path(tempfile.mkdtemp(dir=tmp, prefix=f"{operation}-"))
    try:
        fd = os.open(directory / OWNER_LOCK, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                     0o600)
    except BaseException:
        remove_tree(directory)
        raise
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # new and private: never contended
    except BaseException:
        os.close(fd)
        remove_tree(directory)
        raise
    return directory, fd


def _is_staging(entry: Path) -> bool:
    if not any(entry.name.startswith(f"{op}-") for op in OPERATIONS):
        return False
    try:
        return stat.S_ISDIR(os.lstat(entry).st_mode)
    except FileNotFoundError:
        return False


def remove_abandoned_staging(tmp: Path) -> list[Path]:
    """Delete the staging directories under ``tmp`` that no live process owns; returns them.
    The caller holds the exclusive GC lock (see the module docstring)."""
    removed = []
    for entry in sorted(tmp.iterdir()):
        if not _is_staging(entry):
            continue
        try:
            fd = os.open(entry / OWNER_LOCK, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            fd = None  # its owner died before locking it, or it is already being removed
        try:
            if fd is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live load, import or commit
            remove_tree(entry)
            removed.append(entry)
        finally:
            if fd is not None:
                os.close(fd)
    return removed
