"""Container cgroups: one per container, ``barque/<id>`` under each controller of cgroup v1
(memory, pids, cpu, freezer, devices), or under the unified hierarchy of a pure cgroup v2 host.

The service creates the cgroup and writes its limits before the container starts; the Rust
init joins it by writing itself to the ``cgroup.procs`` files this module lists (opened in the
parent before clone), so nothing of Python runs in the container's process.

The spec's device rules (``linux.resources.devices``) go to v1's ``devices.deny`` and
``devices.allow``; cgroup v2 has no such files, so there they become a BPF device program
attached to the container's directory (``barque._native.restrict_devices``).
"""

from __future__ import annotations

import errno
import functools
import os
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import msgspec

from ..errors import InvalidArgumentError

TYPE_CHECKING = False  # typing itself costs start-up time; checkers see the imports
if TYPE_CHECKING:
    from typing import Any

#: Where the cgroup filesystems are mounted.
CGROUP_ROOT = Path("/sys/fs/cgroup")
#: The v1 controllers barque manages (freezer: pause/unpause; devices: which device nodes
#: the container may open or create).
V1_CONTROLLERS = ("memory", "pids", "cpu", "freezer", "devices")
V2_CONTROLLERS = ("memory", "pids", "cpu")
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


@functools.cache  # the host's cgroup layout does not change under a running barque
def is_v2() -> bool:
    """A pure cgroup v2 host (the unified hierarchy mounted at /sys/fs/cgroup)."""
    return (CGROUP_ROOT / "cgroup.controllers").exists()


class Cgroup:
    """The directories of one container's cgroup (one per v1 controller, or one on v2)."""

    def __init__(self, container_id: str, dirs: dict[str, Path], v2: bool) -> None:
        self.container_id = container_id
        #: controller name (``"unified"`` on v2) -> directory.
        self.dirs = dirs
        self.v2 = v2

    def __repr__(self) -> str:
        return f"<Cgroup {self.container_id[:12]} {sorted(self.dirs)}>"

    @property
    def procs(self) -> list[str]:
        """The ``cgroup.procs`` files the container's init must join."""
        return [str(d / "cgroup.procs") for d in self.dirs.values()]

    def oom_killed(self) -> bool:
        """Whether the kernel's OOM killer killed a process of this cgroup."""
        memory = self.dirs.get("unified" if self.v2 else "memory")
        if memory is None:
            return False
        name = "memory.events" if self.v2 else "memory.oom_control"
        try:
            text = (memory / name).read_text()
        except OSError:
            return False
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit():
                return int(value) > 0
        return False

    def pids(self) -> list[int]:
        """The host pids of every process in the cgroup."""
        for d in self.dirs.values():
            try:
                return sorted(int(x) for x in (d / "cgroup.procs").read_text().split())
            except OSError:
                continue
        return []

    def freeze(self, frozen: bool, timeout: float = 5.0) -> None:
        """Freeze (``docker pause``) or thaw every process of the cgroup, waiting until the
        kernel reports the new state."""
        if self.v2:
            d = self.dirs.get("unified")
            control, value, done = "cgroup.freeze", "1" if frozen else "0", None
        else:
            d = self.dirs.get("freezer")
            control, value = "freezer.state", "FROZEN" if frozen else "THAWED"
            done = value
        if d is None:
            raise InvalidArgumentError("the freezer cgroup controller is not available on this "
                                       "host")
        _write(d / control, value)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if done is not None:
                if (d / control).read_text().strip() == done:
                    return
            else:
                events = dict(line.split(" ", 1) for line in
                              (d / "cgroup.events").read_text().splitlines() if " " in line)
                if events.get("frozen", "").strip() == value:
                    return
            time.sleep(0.01)
        raise OSError(errno.ETIMEDOUT, "the cgroup did not reach the freezer state", str(d))

    def remove(self, timeout: float = 2.0) -> None:
        """Remove the directories, waiting up to ``timeout`` seconds for their processes to
        go (a container's last processes may still be exiting after its init)."""
        deadline = time.monotonic() + timeout
        for d in self.dirs.values():
            while True:
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as e:
                    if e.errno != errno.EBUSY or time.monotonic() >= deadline:
                        raise
                    time.sleep(0.02)


@functools.cache  # read once per process: a container start and stop each need it twice
def _v1_dirs() -> dict[str, Path]:
    """The mounted v1 controllers barque manages: name -> hierarchy root, from
    /proc/self/mountinfo (``cpu`` and ``cpuacct`` are often one hierarchy, ``cpu,cpuacct``).
    Callers must not change the returned dict."""
    out: dict[str, Path] = {}
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        fields = line.split()
        try:
            sep = fields.index("-")
        except ValueError:
            continue
        if fields[sep + 1] != "cgroup" or len(fields) < sep + 4:
            continue
        mount_point = Path(fields[4].replace("\\040", " "))
        options = set(fields[sep + 3].split(","))
        for name in V1_CONTROLLERS:
            if name in options and name not in out:
                out[name] = mount_point
    return out


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _enable_v2(parent: Path, wanted: tuple[str, ...]) -> tuple[str, ...]:
    available = set((parent / "cgroup.controllers").read_text().split())
    enabled = tuple(c for c in wanted if c in available)
    current = set((parent / "cgroup.subtree_control").read_text().split())
    missing = [c for c in enabled if c not in current]
    if missing:
        _write(parent / "cgroup.subtree_control", " ".join(f"+{c}" for c in missing))
    return enabled


def open_existing(container_id: str) -> Cgroup:
    """The cgroup of ``container_id`` as it exists now (possibly none of its directories)."""
    if is_v2():
        d = CGROUP_ROOT / "barque" / container_id
        return Cgroup(container_id, {"unified": d} if d.is_dir() else {}, v2=True)
    dirs = {name: root / "barque" / container_id for name, root in _v1_dirs().items()}
    return Cgroup(container_id, {n: d for n, d in dirs.items() if d.is_dir()}, v2=False)


def create(container_id: str, limits: CgroupLimits | None = None, fresh: bool = False,
           devices: Sequence[Mapping[str, Any]] = ()) -> Cgroup:
    """Create the container's cgroup with ``limits`` (always, so accounting works) and the
    OCI device rules ``devices`` (``linux.resources.devices``, applied in order). A
    leftover of an earlier start is removed first, unless the caller knows there is none
    (``fresh``: a container never started). Controllers that are not mounted are skipped; a
    limit whose controller is missing raises InvalidArgumentError."""
    if "/" in container_id or container_id in ("", ".", ".."):
        raise InvalidArgumentError(f"invalid container ID: {container_id!r}")
    limits = (limits or CgroupLimits()).validate()
    if not fresh:
        open_existing(container_id).remove()
    cgroup = _create_v2(container_id, limits) if is_v2() else _create_v1(container_id, limits)
    try:
        _apply(cgroup, limits)
        _restrict_devices(cgroup, devices)
    except BaseException:
        cgroup.remove()
        raise
    return cgroup


def _create_v1(container_id: str, limits: CgroupLimits) -> Cgroup:
    roots = _v1_dirs()
    _require(limits, set(roots))
    dirs: dict[str, Path] = {}
    cgroup = Cgroup(container_id, dirs, v2=False)
    try:
        for name, root in roots.items():
            d = root / "barque" / container_id
            d.mkdir(parents=True, exist_ok=True)
            dirs[name] = d
    except BaseException:
        cgroup.remove()
        raise
    return cgroup


def _create_v2(container_id: str, limits: CgroupLimits) -> Cgroup:
    enabled = _enable_v2(CGROUP_ROOT, V2_CONTROLLERS)
    parent = CGROUP_ROOT / "barque"
    parent.mkdir(exist_ok=True)
    enabled = _enable_v2(parent, enabled)
    _require(limits, set(enabled))
    d = parent / container_id
    d.mkdir(exist_ok=True)
    return Cgroup(container_id, {"unified": d}, v2=True)


def _require(limits: CgroupLimits, controllers: set[str]) -> None:
    for value, name, flag in ((limits.memory, "memory", "--memory"),
                              (limits.pids, "pids", "--pids-limit"),
                              (limits.cpus, "cpu", "--cpus")):
        if value is not None and name not in controllers:
            raise InvalidArgumentError(
                f"{flag}: the {name} cgroup controller is not available on this host")


def _apply(cgroup: Cgroup, limits: CgroupLimits) -> None:
    pids = limits.pids if limits.pids is not None and limits.pids > 0 else None
    if cgroup.v2:
        d = cgroup.dirs["unified"]
        if limits.memory is not None:
            _write(d / "memory.max", str(limits.memory))
            if (d / "memory.swap.max").exists():  # Docker: as much swap again as memory
                _write(d / "memory.swap.max", str(limits.memory))
        if pids is not None:
            _write(d / "pids.max", str(pids))
        if limits.cpu_quota is not None:
            _write(d / "cpu.max", f"{limits.cpu_quota} {CFS_PERIOD}")
        return
    if limits.memory is not None:
        d = cgroup.dirs["memory"]
        _write(d / "memory.limit_in_bytes", str(limits.memory))
        if (d / "memory.memsw.limit_in_bytes").exists():  # Docker: memory+swap = 2 x memory
            _write(d / "memory.memsw.limit_in_bytes", str(2 * limits.memory))
    if pids is not None:
        _write(cgroup.dirs["pids"] / "pids.max", str(pids))
    if limits.cpu_quota is not None:
        d = cgroup.dirs["cpu"]
        _write(d / "cpu.cfs_period_us", str(CFS_PERIOD))
        _write(d / "cpu.cfs_quota_us", str(limits.cpu_quota))


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


def _restrict_devices(cgroup: Cgroup, rules: Sequence[Mapping[str, Any]]) -> None:
    """Applies the device rules before anything joins the cgroup: a v1 child starts with
    its parent's list (barque's own: everything), so the spec's deny-all comes first."""
    if not rules:
        return
    lines = device_rule_lines(rules)
    if cgroup.v2:
        from .. import _native

        _native.restrict_devices(str(cgroup.dirs["unified"]), lines)
        return
    d = cgroup.dirs.get("devices")
    if d is None:
        return  # no devices controller mounted: nothing can restrict them (as with runc)
    files: dict[bool, int] = {}
    try:
        for allow, line in lines:
            if allow not in files:
                files[allow] = os.open(d / ("devices.allow" if allow else "devices.deny"),
                                       os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(files[allow], line.encode())  # the kernel takes one rule per write
            except OSError as e:
                name = "devices.allow" if allow else "devices.deny"
                raise OSError(e.errno, f"{e.strerror} (rule {line!r})", str(d / name)) from e
    finally:
        for fd in files.values():
            os.close(fd)
