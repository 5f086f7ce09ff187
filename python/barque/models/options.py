"""The Python API's older arguments (:class:`~barque.runtime.spec.RunOptions`,
:class:`~barque.containers.CreateOptions`, ``volumes=``/``mounts=``) as the create body they
describe, so every way of creating a container goes through one description."""

from __future__ import annotations

from ..errors import InvalidArgumentError
from .container import (
    UNSET,
    BindOptions,
    ContainerCreate,
    DeviceMapping,
    HostConfig,
    LogConfig,
    Mount,
    TmpfsOptions,
    VolumeOptions,
)

TYPE_CHECKING = False  # typing itself costs start-up time; checkers see the imports
if TYPE_CHECKING:
    from typing import Any

    from ..containers import CreateOptions
    from ..runtime.mountspec import MountSpec
    from ..runtime.spec import RunOptions


def body_from_options(image: str, options: RunOptions, create: CreateOptions) -> ContainerCreate:
    """The create body of ``containers.create(image, options=, create=)``: the same checks
    and messages as before (a bad ``--device`` or ``--memory`` is refused here)."""
    from ..runtime.spec import parse_device

    limits = options.cgroup_limits()
    binds: list[str] = []
    anonymous: dict[str, dict[str, Any]] = {}
    for item in _as_list(create.volumes):
        _volume_entries(item, binds, anonymous)
    mounts = [mount_from_spec(spec) for item in create.mounts
              for spec in _mount_specs(item)] + [_mount_from_oci(m) for m in options.mounts]
    tmpfs = create.tmpfs
    if not isinstance(tmpfs, dict):
        tmpfs = dict(_tmpfs_entry(item) for item in tmpfs)
    host = HostConfig(
        binds=binds or None,
        log_config=LogConfig(type=create.log_driver, config=dict(create.log_opts)),
        network_mode=options.network, auto_remove=create.auto_remove,
        volumes_from=list(create.volumes_from) or None,
        cap_add=list(options.cap_add) or None, cap_drop=list(options.cap_drop) or None,
        group_add=list(options.group_add) or None, privileged=bool(options.privileged),
        readonly_rootfs=bool(options.read_only),
        security_opt=list(options.security_opt) or None,
        tmpfs=tmpfs or UNSET, memory=limits.memory or 0,
        nano_cpus=round(limits.cpus * 1e9) if limits.cpus else 0, pids_limit=limits.pids,
        devices=[DeviceMapping(path_on_host=h, path_in_container=c, cgroup_permissions=p)
                 for h, c, p in map(parse_device, options.devices)],
        mounts=mounts or UNSET, init=True if options.init else UNSET)
    return ContainerCreate(
        hostname=options.hostname or "", user=options.user or "", tty=bool(options.tty),
        open_stdin=bool(create.open_stdin), env=list(options.env),
        cmd=list(options.command) if options.command is not None else None,
        image=image, volumes=anonymous or None, working_dir=options.workdir or "",
        entrypoint=list(options.entrypoint) if options.entrypoint is not None else None,
        labels=dict(create.labels), stop_signal=create.stop_signal or UNSET, host_config=host)


def _as_list(volumes: Any) -> list[Any]:
    if not volumes:
        return []
    return [volumes] if isinstance(volumes, dict) else list(volumes)


def _volume_entries(item: Any, binds: list[str], anonymous: dict[str, dict[str, Any]]) -> None:
    """A ``-v`` spec (or docker-py dict) as Docker's CLI sends it: ``Binds`` when it names a
    source, ``Config.Volumes`` for a bare anonymous volume."""
    from ..runtime import mountspec

    for spec in mountspec.from_api(item, kind="volumes"):
        if isinstance(item, str) and (spec.source or item != spec.target):
            binds.append(item)
        elif isinstance(item, str):
            anonymous[spec.target] = {}
        elif spec.source:
            binds.append(f"{spec.source}:{spec.target}" + (":ro" if spec.read_only else ""))
        else:
            anonymous[spec.target] = {}


def _mount_specs(item: Any) -> list[MountSpec]:
    from ..runtime import mountspec

    if isinstance(item, dict):  # Docker's keys: read as the Mount they describe
        from . import convert

        item = convert(item, Mount)
    if isinstance(item, Mount):
        return [mountspec.parse_mount(mount_csv(item))]
    return mountspec.from_api(item, kind="mounts")


def _tmpfs_entry(item: str) -> tuple[str, str]:
    from ..runtime import mountspec

    spec = mountspec.parse_tmpfs(item)
    return spec.target, spec.mode


def mount_from_spec(spec: MountSpec) -> Mount:
    """A parsed ``--mount`` as Docker's ``HostConfig.Mounts`` shows it."""
    options = dict(o.split("=", 1) for o in spec.tmpfs_options if "=" in o)
    return Mount(
        type=spec.type, source=spec.source, target=spec.target, read_only=spec.read_only,
        bind_options=BindOptions(propagation=spec.propagation)
        if spec.type == "bind" and spec.propagation else None,
        volume_options=VolumeOptions(no_copy=spec.nocopy, labels=dict(spec.labels) or None)
        if spec.type == "volume" and (spec.nocopy or spec.labels) else None,
        tmpfs_options=TmpfsOptions(size_bytes=int(options.get("size", 0)),
                                   mode=int(options.get("mode", "0"), 8))
        if spec.type == "tmpfs" and ("size" in options or "mode" in options) else None)


def mount_csv(mount: Mount) -> str:
    """A ``HostConfig.Mounts`` entry in ``--mount``'s syntax, which
    :func:`barque.runtime.mountspec.parse_mount` checks with Docker's rules."""
    def unsupported(what: str) -> InvalidArgumentError:
        return InvalidArgumentError(f"HostConfig.Mounts: {what} is not supported by barque yet")

    bind, volume, tmpfs = mount.bind_options, mount.volume_options, mount.tmpfs_options
    if bind and (bind.non_recursive or bind.create_mountpoint or bind.read_only_non_recursive
                 or bind.read_only_force_recursive):
        raise unsupported("BindOptions other than Propagation")
    if volume and volume.subpath:
        raise unsupported("VolumeOptions.Subpath")
    if tmpfs and tmpfs.options:
        raise unsupported("TmpfsOptions.Options")
    parts = [f"type={mount.type or 'volume'}", f"target={mount.target}"]
    if volume and volume.driver_config and volume.driver_config.name:
        parts.append(f"volume-driver={volume.driver_config.name}")
    if mount.source:
        parts.append(f"source={mount.source}")
    if mount.read_only:
        parts.append("readonly")
    if mount.bind_options and mount.bind_options.propagation:
        parts.append(f"bind-propagation={mount.bind_options.propagation}")
    if mount.volume_options:
        if mount.volume_options.no_copy:
            parts.append("volume-nocopy")
        parts += [f"volume-label={k}={v}" for k, v in (mount.volume_options.labels or {}).items()]
    if mount.tmpfs_options:
        if mount.tmpfs_options.size_bytes:
            parts.append(f"tmpfs-size={mount.tmpfs_options.size_bytes}")
        if mount.tmpfs_options.mode:
            parts.append(f"tmpfs-mode={mount.tmpfs_options.mode:o}")
    for part in parts:
        if "," in part:
            raise InvalidArgumentError(f"HostConfig.Mounts: a comma in {part!r} is not supported")
    return ",".join(parts)


def _mount_from_oci(mount: dict[str, Any]) -> Mount:
    """An OCI mount of ``RunOptions.mounts`` (bind or tmpfs) as a ``HostConfig.Mounts``
    entry; other kinds have no Docker equivalent."""
    kind = mount.get("type")
    options = list(mount.get("options") or [])
    if kind == "bind" or "bind" in options or "rbind" in options:
        return Mount(type="bind", source=str(mount.get("source", "")),
                     target=str(mount.get("destination", "")), read_only="ro" in options)
    if kind == "tmpfs":
        size = next((o[5:] for o in options if o.startswith("size=")), "")
        from ..runtime.cgroups import parse_memory

        return Mount(type="tmpfs", target=str(mount.get("destination", "")),
                     read_only="ro" in options,
                     tmpfs_options=TmpfsOptions(size_bytes=parse_memory(size)) if size else None)
    raise InvalidArgumentError(
        f"options.mounts: a {kind!r} mount has no Docker equivalent; pass mounts= "
        "(--mount syntax) instead")
