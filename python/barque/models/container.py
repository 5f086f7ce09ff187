"""A container in Docker's shapes: the create body (``Config`` fields, ``HostConfig``,
``NetworkingConfig``) and the inspect document (``State``, ``NetworkSettings``, ``Mounts``...).

Fields are in the order of moby's Go structs (``api/types/container``), so an encoded object
lists its keys in the order ``docker inspect`` prints them; defaults are what Docker prints
for a container given nothing. ``omitempty`` fields default to :data:`UNSET` (left out).

No ``from __future__ import annotations`` here: msgspec reads the annotations when it first
decodes a type, and evaluating them from strings then costs ~7 ms per process (a ``barque``
command decodes a container at most once); real annotations cost less than 1 ms.
"""

from typing import Any

import msgspec
from msgspec import UNSET, UnsetType, field

__all__ = [
    "UNSET", "UnsetType", "BindOptions", "ContainerConfig", "ContainerCreate",
    "ContainerInspect", "ContainerState", "DeviceMapping", "DeviceRequest", "DriverData",
    "EndpointSettings", "HealthConfig", "HostConfig", "LogConfig", "Mount", "MountPoint",
    "NetworkingConfig", "NetworkSettings", "PortBinding", "RestartPolicy", "StoredContainer",
    "ThrottleDevice", "TmpfsOptions", "Ulimit", "VolumeOptions", "WeightDevice",
]


class _Docker(msgspec.Struct, rename="pascal"):
    """Docker's JSON casing for every field not named explicitly."""


class _Sparse(msgspec.Struct, rename="pascal", omit_defaults=True):
    """An object whose every field is ``omitempty`` in Docker (mount options, healthchecks)."""


# -- small objects --------------------------------------------------------------------------

class PortBinding(_Docker):
    host_ip: str = field(default="", name="HostIp")
    host_port: str = ""


class RestartPolicy(_Docker):
    name: str = "no"
    maximum_retry_count: int = 0

    @property
    def restarts(self) -> bool:
        """Whether the policy ever restarts the container (``no`` and ``""`` do not)."""
        return self.name not in ("", "no")


class LogConfig(_Docker):
    #: ``""`` in a create body means the daemon's default (json-file).
    type: str = ""
    config: dict[str, str] | None = field(default_factory=dict)


class DeviceMapping(_Docker):
    path_on_host: str = ""
    path_in_container: str = ""
    cgroup_permissions: str = ""


class DeviceRequest(_Docker):
    driver: str = ""
    count: int = 0
    device_ids: list[str] | None = field(default=None, name="DeviceIDs")
    capabilities: list[list[str]] | None = None
    options: dict[str, str] | None = None


class ThrottleDevice(_Docker):
    path: str = ""
    rate: int = 0


class WeightDevice(_Docker):
    path: str = ""
    weight: int = 0


class Ulimit(_Docker):
    name: str = ""
    soft: int = 0
    hard: int = 0


class HealthConfig(_Sparse):
    test: list[str] | None = None
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0


class BindOptions(_Sparse):
    propagation: str = ""
    non_recursive: bool = False
    create_mountpoint: bool = False
    read_only_non_recursive: bool = False
    read_only_force_recursive: bool = False


class VolumeDriverConfig(_Sparse):
    name: str = ""
    options: dict[str, str] | None = None


class VolumeOptions(_Sparse):
    no_copy: bool = False
    labels: dict[str, str] | None = None
    driver_config: VolumeDriverConfig | None = None
    subpath: str = ""


class TmpfsOptions(_Sparse):
    size_bytes: int = 0
    mode: int = 0
    options: list[list[str]] | None = None


class Mount(_Sparse):
    """One ``HostConfig.Mounts`` entry (``--mount``)."""

    type: str = ""
    source: str = ""
    target: str = ""
    read_only: bool = False
    consistency: str = ""
    bind_options: BindOptions | None = None
    volume_options: VolumeOptions | None = None
    tmpfs_options: TmpfsOptions | None = None


class MountPoint(_Docker):
    """One inspect ``Mounts`` entry: what is mounted where."""

    type: str = ""
    name: str | UnsetType = UNSET
    source: str = ""
    destination: str = ""
    driver: str | UnsetType = UNSET
    mode: str = ""
    rw: bool = field(default=True, name="RW")
    propagation: str = ""


# -- Config ---------------------------------------------------------------------------------

class ContainerConfig(_Docker):
    """Docker's ``Config``: what the container runs, portable between hosts."""

    hostname: str = ""
    domainname: str = ""
    user: str = ""
    attach_stdin: bool = False
    attach_stdout: bool = False
    attach_stderr: bool = False
    exposed_ports: dict[str, dict[str, Any]] | None | UnsetType = UNSET
    tty: bool = False
    open_stdin: bool = False
    stdin_once: bool = False
    env: list[str] | None = None
    cmd: list[str] | None = None
    healthcheck: HealthConfig | None | UnsetType = UNSET
    args_escaped: bool | UnsetType = UNSET
    image: str = ""
    volumes: dict[str, dict[str, Any]] | None = None
    working_dir: str = ""
    entrypoint: list[str] | None = None
    network_disabled: bool | UnsetType = UNSET
    mac_address: str | UnsetType = UNSET
    on_build: list[str] | None = None
    labels: dict[str, str] | None = None
    stop_signal: str | UnsetType = UNSET
    stop_timeout: int | None | UnsetType = UNSET
    shell: list[str] | None | UnsetType = UNSET


# -- HostConfig -----------------------------------------------------------------------------

class HostConfig(_Docker):
    """Docker's ``HostConfig``: how this host runs the container (API v1.47's key set)."""

    binds: list[str] | None = None
    container_id_file: str = field(default="", name="ContainerIDFile")
    log_config: LogConfig = field(default_factory=LogConfig)
    network_mode: str = ""
    port_bindings: dict[str, list[PortBinding] | None] | None = field(default_factory=dict)
    restart_policy: RestartPolicy = field(default_factory=RestartPolicy)
    auto_remove: bool = False
    volume_driver: str = ""
    volumes_from: list[str] | None = None
    console_size: list[int] | None = field(default_factory=lambda: [0, 0])
    annotations: dict[str, str] | None | UnsetType = UNSET
    cap_add: list[str] | None = None
    cap_drop: list[str] | None = None
    cgroupns_mode: str = ""
    dns: list[str] | None = field(default_factory=list)
    dns_options: list[str] | None = field(default_factory=list)
    dns_search: list[str] | None = field(default_factory=list)
    extra_hosts: list[str] | None = None
    group_add: list[str] | None = None
    ipc_mode: str = ""
    cgroup: str = ""
    links: list[str] | None = None
    oom_score_adj: int = 0
    pid_mode: str = ""
    privileged: bool = False
    publish_all_ports: bool = False
    readonly_rootfs: bool = False
    security_opt: list[str] | None = None
    storage_opt: dict[str, str] | None | UnsetType = UNSET
    tmpfs: dict[str, str] | None | UnsetType = UNSET
    uts_mode: str = field(default="", name="UTSMode")
    userns_mode: str = ""
    shm_size: int = 0
    sysctls: dict[str, str] | None | UnsetType = UNSET
    runtime: str = ""
    isolation: str = ""
    # Resources (embedded in Go: the same JSON object)
    cpu_shares: int = 0
    memory: int = 0
    nano_cpus: int = 0
    cgroup_parent: str = ""
    blkio_weight: int = 0
    blkio_weight_device: list[WeightDevice] | None = field(default_factory=list)
    blkio_device_read_bps: list[ThrottleDevice] | None = field(default_factory=list)
    blkio_device_write_bps: list[ThrottleDevice] | None = field(default_factory=list)
    blkio_device_read_iops: list[ThrottleDevice] | None = field(
        default_factory=list, name="BlkioDeviceReadIOps")
    blkio_device_write_iops: list[ThrottleDevice] | None = field(
        default_factory=list, name="BlkioDeviceWriteIOps")
    cpu_period: int = 0
    cpu_quota: int = 0
    cpu_realtime_period: int = 0
    cpu_realtime_runtime: int = 0
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    devices: list[DeviceMapping] | None = field(default_factory=list)
    device_cgroup_rules: list[str] | None = None
    device_requests: list[DeviceRequest] | None = None
    kernel_memory_tcp: int | UnsetType = field(default=UNSET, name="KernelMemoryTCP")
    memory_reservation: int = 0
    memory_swap: int = 0
    memory_swappiness: int | None = None
    oom_kill_disable: bool | None = None
    pids_limit: int | None = None
    ulimits: list[Ulimit] | None = field(default_factory=list)
    cpu_count: int = 0
    cpu_percent: int = 0
    io_maximum_iops: int = field(default=0, name="IOMaximumIOps")
    io_maximum_bandwidth: int = field(default=0, name="IOMaximumBandwidth")
    # after Resources in Go
    mounts: list[Mount] | None | UnsetType = UNSET
    masked_paths: list[str] | None = None
    readonly_paths: list[str] | None = None
    init: bool | None | UnsetType = UNSET


# -- networking -----------------------------------------------------------------------------

class EndpointSettings(_Docker):
    ipam_config: dict[str, Any] | None = field(default=None, name="IPAMConfig")
    links: list[str] | None = None
    aliases: list[str] | None = None
    mac_address: str = ""
    driver_opts: dict[str, str] | None = None
    network_id: str = field(default="", name="NetworkID")
    endpoint_id: str = field(default="", name="EndpointID")
    gateway: str = ""
    ip_address: str = field(default="", name="IPAddress")
    ip_prefix_len: int = field(default=0, name="IPPrefixLen")
    ipv6_gateway: str = field(default="", name="IPv6Gateway")
    global_ipv6_address: str = field(default="", name="GlobalIPv6Address")
    global_ipv6_prefix_len: int = field(default=0, name="GlobalIPv6PrefixLen")
    dns_names: list[str] | None = field(default=None, name="DNSNames")


class NetworkingConfig(_Docker):
    endpoints_config: dict[str, EndpointSettings] | None = None


class NetworkSettings(_Docker):
    bridge: str = ""
    sandbox_id: str = field(default="", name="SandboxID")
    sandbox_key: str = ""
    ports: dict[str, list[PortBinding] | None] | None = field(default_factory=dict)
    hairpin_mode: bool = False
    link_local_ipv6_address: str = field(default="", name="LinkLocalIPv6Address")
    link_local_ipv6_prefix_len: int = field(default=0, name="LinkLocalIPv6PrefixLen")
    secondary_ip_addresses: list[dict[str, Any]] | None = field(
        default=None, name="SecondaryIPAddresses")
    secondary_ipv6_addresses: list[dict[str, Any]] | None = field(
        default=None, name="SecondaryIPv6Addresses")
    endpoint_id: str = field(default="", name="EndpointID")
    gateway: str = ""
    global_ipv6_address: str = field(default="", name="GlobalIPv6Address")
    global_ipv6_prefix_len: int = field(default=0, name="GlobalIPv6PrefixLen")
    ip_address: str = field(default="", name="IPAddress")
    ip_prefix_len: int = field(default=0, name="IPPrefixLen")
    ipv6_gateway: str = field(default="", name="IPv6Gateway")
    mac_address: str = ""
    networks: dict[str, EndpointSettings] = field(default_factory=dict)


# -- the create body and the stored container -----------------------------------------------

class ContainerCreate(ContainerConfig, rename="pascal"):
    """``POST /containers/create``'s body: the ``Config`` fields at the top level, with
    ``HostConfig`` and ``NetworkingConfig`` beside them (the container's name is a query
    parameter, not part of it)."""

    host_config: HostConfig = field(default_factory=HostConfig)
    networking_config: NetworkingConfig = field(default_factory=NetworkingConfig)

    def config(self) -> ContainerConfig:
        """The ``Config`` part alone."""
        return ContainerConfig(**{name: getattr(self, name)
                                  for name in ContainerConfig.__struct_fields__})


class StoredContainer(_Docker):
    """What a container's row keeps (its ``config`` column): the request as received, with
    what create resolved that Docker's inspect shows too (the ``Config`` merged with the
    image's, the mount points). Rows written before this model (``Config``, ``HostConfig``
    and ``Mounts`` only) decode as well."""

    config: ContainerConfig = field(default_factory=ContainerConfig)
    host_config: HostConfig = field(default_factory=HostConfig)
    networking_config: NetworkingConfig = field(default_factory=NetworkingConfig)
    mounts: list[MountPoint] | None = field(default_factory=list)


# -- inspect --------------------------------------------------------------------------------

class ContainerState(_Docker):
    status: str = ""
    running: bool = False
    paused: bool = False
    restarting: bool = False
    oom_killed: bool = field(default=False, name="OOMKilled")
    dead: bool = False
    pid: int = 0
    exit_code: int = 0
    error: str = ""
    started_at: str = "0001-01-01T00:00:00Z"
    finished_at: str = "0001-01-01T00:00:00Z"
    health: dict[str, Any] | UnsetType = UNSET


class DriverData(_Docker):
    data: dict[str, str] | None = None
    name: str = ""


class ContainerInspect(_Docker):
    """``GET /containers/{id}/json``: the whole ``docker inspect`` document."""

    id: str = ""
    created: str = ""
    path: str = ""
    args: list[str] = field(default_factory=list)
    state: ContainerState = field(default_factory=ContainerState)
    image: str = ""
    resolv_conf_path: str = ""
    hostname_path: str = ""
    hosts_path: str = ""
    log_path: str = ""
    name: str = ""
    restart_count: int = 0
    driver: str = ""
    platform: str = ""
    mount_label: str = ""
    process_label: str = ""
    app_armor_profile: str = ""
    exec_ids: list[str] | None = field(default=None, name="ExecIDs")
    host_config: HostConfig = field(default_factory=HostConfig)
    graph_driver: DriverData = field(default_factory=DriverData)
    size_rw: int | UnsetType = UNSET
    size_root_fs: int | UnsetType = UNSET
    mounts: list[MountPoint] = field(default_factory=list)
    config: ContainerConfig = field(default_factory=ContainerConfig)
    network_settings: NetworkSettings = field(default_factory=NetworkSettings)
