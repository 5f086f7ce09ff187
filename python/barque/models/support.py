"""Which parts of a create body barque applies, and a clear refusal for the rest.

Every field is kept and shown by ``inspect``. A field that would change what the container
does, were it ignored, is refused at create with one line naming it, unless it holds
Docker's zero value (or a value barque's behaviour already matches): a container never runs
differently from what its description says.
"""

from __future__ import annotations

from ..errors import InvalidArgumentError

TYPE_CHECKING = False  # typing itself costs start-up time; checkers see the imports
if TYPE_CHECKING:
    from typing import Any

    from .container import ContainerCreate

_NO_BRIDGE = "port publishing needs bridge networking, which barque does not have yet"
_NOT_YET = "not supported by barque yet"

#: HostConfig fields barque does not apply, refused unless empty: why, per field.
_REFUSED: dict[str, str] = {
    "port_bindings": _NO_BRIDGE,
    "publish_all_ports": _NO_BRIDGE,
    "links": "links need bridge networking, which barque does not have yet",
    "storage_opt": "storage options are " + _NOT_YET,
    "oom_score_adj": "an OOM score adjustment is " + _NOT_YET,
    "cpu_shares": "CPU shares are " + _NOT_YET + " (use NanoCpus, --cpus)",
    "cgroup_parent": "a parent cgroup is " + _NOT_YET,
    "blkio_weight": "block IO weights are " + _NOT_YET,
    "blkio_weight_device": "block IO weights are " + _NOT_YET,
    "blkio_device_read_bps": "block IO limits are " + _NOT_YET,
    "blkio_device_write_bps": "block IO limits are " + _NOT_YET,
    "blkio_device_read_iops": "block IO limits are " + _NOT_YET,
    "blkio_device_write_iops": "block IO limits are " + _NOT_YET,
    "cpu_period": "a CFS period is " + _NOT_YET + " (use NanoCpus, --cpus)",
    "cpu_quota": "a CFS quota is " + _NOT_YET + " (use NanoCpus, --cpus)",
    "cpu_realtime_period": "real-time CPU limits are " + _NOT_YET,
    "cpu_realtime_runtime": "real-time CPU limits are " + _NOT_YET,
    "cpuset_cpus": "CPU sets are " + _NOT_YET,
    "cpuset_mems": "memory node sets are " + _NOT_YET,
    "device_cgroup_rules": "device cgroup rules are " + _NOT_YET + " (use Devices, --device)",
    "device_requests": "device requests (GPUs) are " + _NOT_YET,
    "kernel_memory_tcp": "a kernel TCP memory limit is " + _NOT_YET,
    "memory_reservation": "a memory reservation is " + _NOT_YET,
    "cpu_count": "CpuCount is for Windows containers only",
    "cpu_percent": "CpuPercent is for Windows containers only",
    "io_maximum_iops": "IOMaximumIOps is for Windows containers only",
    "io_maximum_bandwidth": "IOMaximumBandwidth is for Windows containers only",
}

#: HostConfig fields whose value must be one of these ("" is Docker's "the default").
_CHOICES: dict[str, tuple[Any, ...]] = {
    "ipc_mode": ("", "private", "shareable"),
    "pid_mode": ("",),
    "uts_mode": ("",),
    "userns_mode": ("",),
    "cgroupns_mode": ("", "private"),
    "cgroup": ("",),
    "volume_driver": ("", "local"),
    "runtime": ("", "runc", "barque"),
    "isolation": ("", "default"),
    "memory_swap": (0, -1),
    "memory_swappiness": (None, -1),
    "oom_kill_disable": (None, False),
}

_CHOICE_REASON = {
    "ipc_mode": "only a private IPC namespace is supported",
    "pid_mode": "only a private PID namespace is supported",
    "uts_mode": "only a private UTS namespace is supported",
    "userns_mode": "user namespaces are " + _NOT_YET,
    "cgroupns_mode": "only a private cgroup namespace is supported",
    "cgroup": "sharing another container's cgroup is " + _NOT_YET,
    "volume_driver": "only the local volume driver is supported",
    "runtime": "barque runs containers with its own runtime",
    "isolation": "isolation modes are for Windows containers only",
    "memory_swap": "a swap limit is " + _NOT_YET,
    "memory_swappiness": "memory swappiness is " + _NOT_YET,
    "oom_kill_disable": "disabling the OOM killer is " + _NOT_YET,
}


def _json_name(cls: type, attr: str) -> str:
    import msgspec

    for info in msgspec.structs.fields(cls):
        if info.name == attr:
            return info.encode_name
    return attr


def _empty(value: Any) -> bool:
    from msgspec import UNSET

    return value is UNSET or value is None or value is False or value == 0 \
        or (isinstance(value, (list, dict, str)) and not value)


def refuse_unsupported(body: ContainerCreate) -> None:
    """Raise :class:`InvalidArgumentError` (``HostConfig.PortBindings: ...``) for the first
    field of ``body`` barque would otherwise ignore."""
    from .container import HostConfig

    host = body.host_config

    def refuse(attr: str, reason: str, cls: type = HostConfig, part: str = "HostConfig"
               ) -> InvalidArgumentError:
        return InvalidArgumentError(f"{part}.{_json_name(cls, attr)}: {reason}")

    for attr, reason in _REFUSED.items():
        if not _empty(getattr(host, attr)):
            raise refuse(attr, reason)
    for attr, allowed in _CHOICES.items():
        if getattr(host, attr) not in allowed:
            raise refuse(attr, f"{_CHOICE_REASON[attr]}, not {getattr(host, attr)!r}")
    policy = host.restart_policy
    if policy.restarts or policy.maximum_retry_count:  # the default needs no checking
        from ..restarts import validate

        validate(policy, auto_remove=bool(host.auto_remove))  # Docker's wording
    for entry in host.extra_hosts or []:
        if entry.rpartition(":")[2] == "host-gateway" or entry.endswith("=host-gateway"):
            raise refuse("extra_hosts", "host-gateway needs bridge networking, which barque "
                                        "does not have yet")
    from .container import ContainerConfig

    health = body.healthcheck
    if health and health.test and health.test != ["NONE"]:
        raise refuse("healthcheck", "healthchecks are " + _NOT_YET, ContainerConfig, "Config")
    if not _empty(body.stop_timeout):
        raise refuse("stop_timeout", "a stop timeout is " + _NOT_YET + " (pass one to stop)",
                     ContainerConfig, "Config")
    if not _empty(body.mac_address):
        raise refuse("mac_address", "a MAC address needs bridge networking, which barque "
                                    "does not have yet", ContainerConfig, "Config")
    if body.network_disabled is True and (host.network_mode or "none") != "none":
        raise refuse("network_disabled", "a disabled network needs NetworkMode \"none\"",
                      ContainerConfig, "Config")
    network = host.network_mode or "none"
    for name, endpoint in (body.networking_config.endpoints_config or {}).items():
        if name != network:
            raise InvalidArgumentError(
                f"NetworkingConfig.EndpointsConfig: network {name!r} is not the container's "
                f"NetworkMode ({network!r}); barque has no other networks yet")
        if endpoint.ipam_config or endpoint.links or endpoint.aliases or endpoint.mac_address \
                or endpoint.driver_opts:
            raise InvalidArgumentError(
                f"NetworkingConfig.EndpointsConfig.{name}: endpoint settings need bridge "
                "networking, which barque does not have yet")
