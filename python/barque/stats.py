"""A container's resource usage as Docker's stats JSON (``GET /containers/{id}/stats``).

The numbers come from the container's cgroup, read through its :class:`barque.runtime.
cgroups.Cgroup` object: its ``stats()`` (memory usage and limit, CPU time, the pids count and
limit, from barque-container's cgroup manager) and, for the details Docker adds, the files of
its ``dirs`` (``memory.stat``, the user/system split, throttling). Docker's keys are kept (``memory_stats.usage``, ``cpu_stats.cpu_usage.total_usage``,
``pids_stats.current``, ``read``/``preread``...) so a client written for Docker reads them, and
the docker CLI's arithmetic (:func:`cpu_percent`, :func:`memory_used`) gives its columns.
barque has no network namespace with interfaces of its own yet (``--network none|host``) and
does not account block I/O, so ``networks`` is absent and ``blkio_stats`` empty, as Docker
shows them for ``--network none`` on a host without the io controller.
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone
from pathlib import Path

TYPE_CHECKING = False  # typing itself costs start-up time; checkers see the imports
if TYPE_CHECKING:
    from typing import Any

    from .runtime.cgroups import Cgroup, CgroupStats

#: Docker's v1 "unlimited" is a page-rounded 2**63 - 1; anything this large means no limit.
_UNLIMITED = 1 << 62
_NANOSECONDS = 1_000_000_000


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _number(path: Path) -> int | None:
    """A cgroup file holding one number (``max`` on v2 is None: no limit)."""
    text = _read(path)
    if text is None:
        return None
    text = text.strip().split()[0] if text.strip() else ""
    return int(text) if text.isdigit() else None


def _keyed(path: Path) -> dict[str, int]:
    """A ``key value`` per line file (``memory.stat``, ``cpu.stat``)."""
    out: dict[str, int] = {}
    for line in (_read(path) or "").splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            out[key] = int(value)
    return out


def host_memory() -> int:
    """The host's RAM in bytes (``MemTotal``): Docker's limit for a container without one."""
    from .procfs import memory_total

    return memory_total()


def system_cpu_usage() -> int:
    """Nanoseconds of CPU time the host has spent, all CPUs (``/proc/stat``'s first line),
    as Docker's ``system_cpu_usage``."""
    fields = (_read(Path("/proc/stat")) or "cpu").splitlines()[0].split()[1:8]
    ticks = sum(int(f) for f in fields if f.isdigit())
    return ticks * _NANOSECONDS // os.sysconf("SC_CLK_TCK")


def _rfc3339_nano(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="microseconds") \
        .replace("+00:00", "Z")


def _memory(cgroup: Cgroup, counters: CgroupStats) -> dict[str, Any]:
    d = cgroup.dirs.get("unified" if cgroup.v2 else "memory")
    if d is None or counters.memory_usage is None:
        return {}
    out: dict[str, Any] = {"usage": counters.memory_usage, "stats": _keyed(d / "memory.stat")}
    if not cgroup.v2:  # v1's high-water mark and limit hits, which Docker reports there
        out["max_usage"] = _number(d / "memory.max_usage_in_bytes") or 0
        out["failcnt"] = _number(d / "memory.failcnt") or 0
    host = host_memory()
    limit = counters.memory_limit
    # Docker reports the host's memory for a container without a limit (or a larger one).
    out["limit"] = host if limit is None or limit >= _UNLIMITED or (host and limit > host) \
        else limit
    return out


def _cpu(cgroup: Cgroup, counters: CgroupStats) -> dict[str, Any]:
    scale = _NANOSECONDS // os.sysconf("SC_CLK_TCK")
    if counters.cpu_usage_ns is None:
        # No CPU accounting for this cgroup (cpuacct not mounted): its processes' own times.
        user, system = _process_times(cgroup.pids())
        total, kernel, userland = (user + system) * scale, system * scale, user * scale
    elif cgroup.v2:
        d = cgroup.dirs.get("unified")
        stat = _keyed(d / "cpu.stat") if d is not None else {}
        total = counters.cpu_usage_ns
        kernel, userland = stat.get("system_usec", 0) * 1000, stat.get("user_usec", 0) * 1000
    else:
        acct = cgroup.dirs.get("cpuacct")
        ticks = _keyed(acct / "cpuacct.stat") if acct is not None else {}
        total = counters.cpu_usage_ns
        kernel, userland = ticks.get("system", 0) * scale, ticks.get("user", 0) * scale
    usage: dict[str, Any] = {"total_usage": total, "usage_in_kernelmode": kernel,
                             "usage_in_usermode": userland}
    acct = None if cgroup.v2 else cgroup.dirs.get("cpuacct")
    percpu = (_read(acct / "cpuacct.usage_percpu") or "").split() if acct is not None else []
    if percpu:
        usage["percpu_usage"] = [int(x) for x in percpu if x.isdigit()]
    d = cgroup.dirs.get("unified" if cgroup.v2 else "cpu")
    stat = _keyed(d / "cpu.stat") if d is not None else {}
    # v2 counts throttled time in microseconds, v1 in nanoseconds; Docker's field is ns.
    throttled = stat.get("throttled_usec", 0) * 1000 if cgroup.v2 else \
        stat.get("throttled_time", 0)
    return {"cpu_usage": usage, "system_cpu_usage": system_cpu_usage(),
            "online_cpus": len(os.sched_getaffinity(0)),
            "throttling_data": {"periods": stat.get("nr_periods", 0),
                                "throttled_periods": stat.get("nr_throttled", 0),
                                "throttled_time": throttled}}


def _process_times(pids: list[int]) -> tuple[int, int]:
    """Clock ticks of user and system time of ``pids`` and of the children they reaped (a
    container's init reaps every orphan of its PID namespace), from ``/proc/<pid>/stat``."""
    user = system = 0
    for pid in pids:
        data = _read(Path(f"/proc/{pid}/stat"))
        if data is None:
            continue  # exited meanwhile
        # comm (field 2) may hold spaces and parentheses: fields count from the last ')'.
        fields = data[data.rfind(")") + 2:].split()
        if len(fields) > 14:
            user += int(fields[11]) + int(fields[13])    # utime, cutime
            system += int(fields[12]) + int(fields[14])  # stime, cstime
    return user, system


def _pids(cgroup: Cgroup, counters: CgroupStats) -> dict[str, Any]:
    out: dict[str, Any] = {"current": counters.pids_current
                           if counters.pids_current is not None else len(cgroup.pids())}
    if counters.pids_limit is not None:
        out["limit"] = counters.pids_limit
    return out


def sample(cgroup: Cgroup) -> dict[str, Any]:
    """One reading of the cgroup: Docker's ``memory_stats``, ``cpu_stats``, ``pids_stats``
    and the ``read`` time."""
    counters = cgroup.stats()
    return {"read": _rfc3339_nano(time.time()), "pids_stats": _pids(cgroup, counters),
            "cpu_stats": _cpu(cgroup, counters), "memory_stats": _memory(cgroup, counters)}


#: What Docker sends for a reading that has no predecessor (its zero time, empty stats).
EMPTY_SAMPLE: dict[str, Any] = {
    "read": "0001-01-01T00:00:00Z", "pids_stats": {}, "memory_stats": {},
    "cpu_stats": {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0,
                                "usage_in_usermode": 0}, "throttling_data": {
        "periods": 0, "throttled_periods": 0, "throttled_time": 0}}}


def document(container_id: str, name: str, current: dict[str, Any],
             previous: dict[str, Any] | None) -> dict[str, Any]:
    """Docker's stats JSON from this reading and the one before it (``pre*``)."""
    previous = previous or EMPTY_SAMPLE
    return {
        "read": current["read"], "preread": previous["read"],
        "pids_stats": current["pids_stats"],
        "blkio_stats": {"io_service_bytes_recursive": None, "io_serviced_recursive": None,
                        "io_queue_recursive": None, "io_service_time_recursive": None,
                        "io_wait_time_recursive": None, "io_merged_recursive": None,
                        "io_time_recursive": None, "sectors_recursive": None},
        "num_procs": 0, "storage_stats": {},
        "cpu_stats": current["cpu_stats"], "precpu_stats": previous["cpu_stats"],
        "memory_stats": current["memory_stats"],
        "name": "/" + name, "id": container_id,
    }


# -- the docker CLI's arithmetic (cli/command/container/stats_helpers.go) ----------------


def cpu_percent(stats: dict[str, Any]) -> float:
    """CPU %: the container's share of the host's CPU time between the two readings, times
    the CPUs it may use (100% is one CPU)."""
    cpu, pre = stats.get("cpu_stats") or {}, stats.get("precpu_stats") or {}
    cpu_delta = (cpu.get("cpu_usage") or {}).get("total_usage", 0) - \
        (pre.get("cpu_usage") or {}).get("total_usage", 0)
    system_delta = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
    cpus = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or [])
    if system_delta > 0 and cpu_delta > 0:
        return float(cpu_delta / system_delta * cpus * 100.0)
    return 0.0


def memory_used(memory: dict[str, Any]) -> int:
    """MEM USAGE: the usage less the page cache the kernel can drop (inactive file pages),
    as the docker CLI computes it for cgroup v1 and v2."""
    usage = int(memory.get("usage") or 0)
    stats = memory.get("stats") or {}
    for key in ("total_inactive_file", "inactive_file"):  # v1's, then v2's
        if key in stats and stats[key] < usage:
            return usage - int(stats[key])
    return usage
