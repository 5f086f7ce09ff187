"""Container cgroups: one per container, ``barque/<id>`` under each controller of cgroup v1
(memory, pids, cpu and cpuacct, freezer, devices), or under the unified hierarchy of a pure
cgroup v2 host; a thin typed wrapper over barque-container's cgroup manager
(``barque._native.Cgroup``, shared with ``barque-runtime``).

The service creates the cgroup and writes its limits before the container starts; the Rust
init joins it by writing itself to the ``cgroup.procs`` files this module lists (opened in the
parent before clone), so nothing of Python runs in the container's process.

The spec's device rules (``linux.resources.devices``) go to v1's ``devices.deny`` and
``devices.allow``; cgroup v2 has no such files, so there they become a BPF device program
attached to the container's directory.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import msgspec

from ..errors import InvalidArgumentError

TYPE_CHECKING = False  # typing itself costs start-up time; checkers see the imports
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar

    from .. import _native

    _T = TypeVar("_T")

CFS_PERIOD = 100_000
#: Docker's minimum for --memory.
MIN_MEMORY = 6 * 1024 * 1024

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_SIZE = re.compile(r"(\d+(?:\.\d+)?) ?([kmgtp])?i?b?", re.IGNORECASE)


def parse_memory(text: str | int) -> int:
    """Docker's ``RAMInBytes``: ``16m``, ``1.5g``, ``512k``, ``100``, ``64MiB``... in binary
    units (``b`` and no unit are bytes)."""
    if isinstance(text, int):
        return text
    m = _SIZE.fullmatch(text.strip())
    if not m:
        raise InvalidArgumentError(f"invalid size: '{text}'")
    return int(float(m.group(1)) * _UNITS[(m.group(2) or "").lower()])


class CgroupLimits(msgspec.Struct, frozen=True):
    """``--memory`` in bytes, ``--pids-limit`` (``None`` or <= 0: unlimited), ``--cpus``."""

    memory: int | None = None
    pids: int | None = None
    cpus: float | None = None

    def validate(self) -> CgroupLimits:
        if self.memory is not None and self.memory < MIN_MEMORY:
            raise InvalidArgumentError("Minimum memory limit allowed is 6MB")
        if self.cpus is not None:
            ncpu = os.cpu_count() or 1
            if not 0.01 <= self.cpus <= ncpu:
                raise InvalidArgumentError(
                    f"range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs "
                    "available")
        return self

    @property
    def cpu_quota(self) -> int | None:
        return None if self.cpus is None else max(1000, round(self.cpus * CFS_PERIOD))


def is_v2() -> bool:
    """A pure cgroup v2 host (the unified hierarchy mounted at /sys/fs/cgroup)."""
    from .. import _native

    return _native.cgroup_v2()


class CgroupStats(msgspec.Struct, frozen=True):
    """A cgroup's usage counters; None where the host has no such counter (or no limit)."""

    memory_usage: int | None
    memory_limit: int | None
    cpu_usage_ns: int | None
    pids_current: int | None
    pids_limit: int | None


def _usage_errors(call: Callable[[], _T]) -> _T:
    """The manager's usage errors (a missing controller, a bad rule) as barque's own."""
    try:
        return call()
    except InvalidArgumentError:
        raise
    except ValueError as e:
        raise InvalidArgumentError(str(e)) from None


class Cgroup:
    """The directories of one container's cgroup (one per v1 controller, or one on v2)."""

    __slots__ = ("container_id", "_cgroup")

    def __init__(self, container_id: str, cgroup: _native.Cgroup) -> None:
        self.container_id = container_id
        self._cgroup = cgroup

    def __repr__(self) -> str:
        return f"<Cgroup {self.container_id[:12]} {sorted(self.dirs)}>"

    @property
    def v2(self) -> bool:
        return self._cgroup.v2

    @property
    def dirs(self) -> dict[str, Path]:
        """controller name (``"unified"`` on v2) -> directory; controllers the host mounts
        together (``cpu,cpuacct``) share theirs."""
        return {name: Path(d) for names, d in self._cgroup.dirs for name in names.split(",")}

    @property
    def procs(self) -> list[str]:
        """The ``cgroup.procs`` files the container's init must join."""
        return self._cgroup.procs

    def oom_killed(self) -> bool:
        """Whether the kernel's OOM killer killed a process of this cgroup."""
        return self._cgroup.oom_killed()

    def pids(self) -> list[int]:
        """The host pids of every process in the cgroup."""
        return self._cgroup.pids()

    def stats(self) -> CgroupStats:
        """Memory usage and limit, CPU time and the number of tasks, as the kernel counts
        them now."""
        return CgroupStats(**self._cgroup.stats())

    def freeze(self, frozen: bool, timeout: float = 5.0) -> None:
        """Freeze (``docker pause``) or thaw every process of the cgroup, waiting until the
        kernel reports the new state."""
        _usage_errors(lambda: self._cgroup.freeze(frozen, timeout))

    def remove(self, timeout: float = 2.0) -> None:
        """Remove the directories, waiting up to ``timeout`` seconds for their processes to
        go (a container's last processes may still be exiting after its init)."""
        self._cgroup.remove(timeout)


def _path(container_id: str) -> str:
    return f"/barque/{container_id}"


def open_existing(container_id: str) -> Cgroup:
    """The cgroup of ``container_id`` as it exists now (possibly none of its directories)."""
    from .. import _native

    return Cgroup(container_id, _usage_errors(lambda: _native.Cgroup(_path(container_id))))


def create(container_id: str, limits: CgroupLimits | None = None, fresh: bool = False,
           devices: Sequence[Mapping[str, Any]] = ()) -> Cgroup:
    """Create the container's cgroup with ``limits`` (always, so accounting works) and the
    OCI device rules ``devices`` (``linux.resources.devices``, applied in order). A
    leftover of an earlier start is removed first, unless the caller knows there is none
    (``fresh``: a container never started). Controllers that are not mounted are skipped; a
    limit whose controller is missing raises InvalidArgumentError."""
    from .. import _native

    if "/" in container_id or container_id in ("", ".", ".."):
        raise InvalidArgumentError(f"invalid container ID: {container_id!r}")
    limits = (limits or CgroupLimits()).validate()
    memory = limits.memory
    pids = limits.pids if limits.pids is not None and limits.pids > 0 else None
    quota = limits.cpu_quota
    rules = device_rule_lines(devices)
    return Cgroup(container_id, _usage_errors(lambda: _native.Cgroup.create(
        _path(container_id), memory=memory,
        # Docker's default swap for --memory: memory + swap = 2 x memory, where the host
        # accounts swap at all.
        memory_swap=None if memory is None else 2 * memory, swap_where_accounted=True,
        pids=pids, cpu_quota=quota, cpu_period=None if quota is None else CFS_PERIOD,
        devices=rules, replace=not fresh)))


def device_rule_lines(rules: Sequence[Mapping[str, Any]]) -> list[tuple[bool, str]]:
    """OCI device rules as ``(allow, line)`` in cgroup v1's syntax: ``"a"`` for a rule about
    every device (v1 then resets its whole list), else ``"TYPE MAJOR:MINOR ACCESS"`` with
    ``*`` for a missing number and ``rwm`` for a missing access."""
    out = []
    for rule in rules:
        allow = bool(rule.get("allow"))
        kind = rule.get("type") or "a"
        if kind == "a":
            out.append((allow, "a"))
            continue
        major, minor = rule.get("major"), rule.get("minor")
        numbers = "{}:{}".format("*" if major is None or major < 0 else major,
                                 "*" if minor is None or minor < 0 else minor)
        out.append((allow, f"{kind} {numbers} {rule.get('access') or 'rwm'}"))
    return out
