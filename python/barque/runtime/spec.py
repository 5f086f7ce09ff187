"""Build an OCI runtime spec (``config.json``) from an image config and ``docker run`` options.

:func:`build_spec` gives what Docker's daemon gives runc (moby ``oci/defaults.go`` and
``daemon/oci_linux.go``): the same process arguments, environment, user, capabilities,
mounts, namespaces, masked paths, device rules and seccomp filter, so a program sees the same
container under barque as under ``docker run``. The result is plain JSON-able data in the
runtime-spec 1.0.2 shape that ``runc spec`` writes; runc 1.1 and barque's Rust core run it.

Everything here is pure apart from a few cheap reads of host facts (the kernel's last
capability, the file-descriptor hard limit, the architecture, whether two sysctls exist, and
``/dev`` for privileged containers). The caller owns the side effects: creating the rootfs,
the working directory inside it, and the bundle.
"""

from __future__ import annotations

import functools
import os
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping

import msgspec

from ..errors import InvalidArgumentError
from . import seccomp as _seccomp
from .users import process_groups, resolve_user

TYPE_CHECKING = False  # typing itself costs start-up time; checkers see the imports
if TYPE_CHECKING:
    from typing import Any

    from ..models import ContainerCreate, Ulimit


__all__ = ["RunOptions", "SecurityOptions", "build_spec", "replace_or_append",
           "parse_security_opts",
           "build_spec_from", "run_options_from", "resolve_args", "resolve_env",
           "resolve_capabilities", "available_capabilities",
           "host_devices", "default_device_rules", "parse_device", "resolve_devices",
           "CAPABILITIES",
           "DEFAULT_CAPABILITIES", "DEFAULT_PATH", "OCI_VERSION"]

OCI_VERSION = "1.0.2-dev"  # what runc 1.1 writes and accepts
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#: Linux capabilities by number (``include/uapi/linux/capability.h``, 0..40).
CAPABILITIES: tuple[str, ...] = tuple("CAP_" + n for n in """
    CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP LINUX_IMMUTABLE
    NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER SYS_MODULE SYS_RAWIO
    SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE SYS_RESOURCE SYS_TIME
    SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP MAC_OVERRIDE MAC_ADMIN SYSLOG
    WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF CHECKPOINT_RESTORE""".split())
_CAP_NUMBER = {name: i for i, name in enumerate(CAPABILITIES)}

#: Docker's default capability set (its order), CapEff ``00000000a80425fb``.
DEFAULT_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)

_MASKED_PATHS = (
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
    "/sys/firmware", "/sys/devices/virtual/powercap",
)
_READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

# Docker's device cgroup rules, plus the ones runc adds on its own to every container (so a
# runtime that does not add them, like barque's core, gives the same /dev): mknod of any
# node, and the char devices the runtime creates.
_DEVICE_RULES: tuple[tuple[bool, str, int | None, int | None], ...] = (
    (False, "", None, None),   # deny everything, then allow:
    (True, "c", None, None),   # mknod of char devices (access "m" only)
    (True, "b", None, None),   # mknod of block devices (access "m" only)
    (True, "c", 1, 3),         # /dev/null
    (True, "c", 1, 5),         # /dev/zero
    (True, "c", 1, 7),         # /dev/full
    (True, "c", 1, 8),         # /dev/random
    (True, "c", 1, 9),         # /dev/urandom
    (True, "c", 5, 0),         # /dev/tty
    (True, "c", 5, 1),         # /dev/console
    (True, "c", 5, 2),         # /dev/ptmx
    (True, "c", 136, None),    # /dev/pts/*
    (True, "c", 10, 200),      # /dev/net/tun
)
#: What ``--device`` grants when it names no permissions (Docker's default).
_DEVICE_PERMISSIONS = "rwm"

_NETWORK_MODES = ("none", "host")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}")  # runc's ID charset, no leading dot
_NOFILE_CEILING = 1048576
_HOST_NAME_MAX = 64
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})     # Go's strconv.ParseBool
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


class RunOptions(msgspec.Struct):
    """The ``docker run`` options that shape the spec; defaults are Docker's.

    ``command`` replaces the image's ``Cmd``; ``entrypoint`` (``--entrypoint``) replaces its
    ``Entrypoint`` and drops its ``Cmd`` -- ``[]`` or ``[""]`` means "no entrypoint". ``env``
    entries are ``KEY=VALUE`` (the CLI resolves a bare ``-e KEY`` from its own environment;
    a bare ``KEY`` reaching here unsets ``KEY``). ``cap_add``/``cap_drop`` take names with or
    without ``CAP_``, any case, or ``ALL``. ``security_opt``: ``no-new-privileges[=BOOL]``,
    ``seccomp=unconfined|builtin|PATH|{inline JSON}``, and (ignored, as Docker does on a host
    without SELinux/AppArmor) ``label=...``, ``apparmor=...``, ``disable``. ``network`` is
    ``"none"`` or ``"host"``. ``mounts`` are OCI mount objects, appended after the defaults.
    ``init`` is handled by the caller (it changes ``args``); this module ignores it.
    ``group_add`` (``--group-add``) are group names or gids of the image's ``/etc/group``.
    ``memory`` (bytes, or a Docker size such as ``"16m"``), ``pids_limit`` (<= 0: unlimited)
    and ``cpus`` become ``linux.resources``; the service applies them to the container's
    cgroup (:mod:`barque.runtime.cgroups`).
    """

    command: list[str] | None = None
    entrypoint: list[str] | None = None
    env: list[str] = msgspec.field(default_factory=list)
    workdir: str | None = None
    user: str | None = None
    group_add: list[str] = msgspec.field(default_factory=list)
    hostname: str | None = None
    tty: bool = False
    read_only: bool = False
    privileged: bool = False
    cap_add: list[str] = msgspec.field(default_factory=list)
    cap_drop: list[str] = msgspec.field(default_factory=list)
    security_opt: list[str] = msgspec.field(default_factory=list)
    network: str = "none"
    init: bool = False
    mounts: list[dict[str, Any]] = msgspec.field(default_factory=list)
    memory: int | str | None = None
    pids_limit: int | None = None
    cpus: float | None = None
    #: ``--device HOST[:CONTAINER][:PERMISSIONS]``: a host device node, made in the container
    #: and allowed by its device cgroup.
    devices: list[str] = msgspec.field(default_factory=list)

    def cgroup_limits(self) -> Any:
        """The validated :class:`~barque.runtime.cgroups.CgroupLimits` of these options."""
        from .cgroups import CgroupLimits, parse_memory

        memory = None if self.memory is None else parse_memory(self.memory)
        return CgroupLimits(memory=memory, pids=self.pids_limit, cpus=self.cpus).validate()


class SecurityOptions(msgspec.Struct, frozen=True):
    """Parsed ``--security-opt`` values.

    ``seccomp`` is ``None`` for Docker's default profile, ``"unconfined"`` for none, else a
    path or inline JSON document of a Docker-format profile.
    """

    no_new_privileges: bool = False
    seccomp: str | None = None


def parse_security_opts(opts: Iterable[str]) -> SecurityOptions:
    """Parse ``--security-opt`` values with Docker's rules (``key=value``; ``key:value`` too).

    Raises :class:`~barque.errors.InvalidArgumentError` (``invalid --security-opt: ...``) for
    unknown keys, a non-boolean ``no-new-privileges``, or an empty ``seccomp=``.
    """
    nnp, profile = False, None
    for opt in opts:
        if opt == "no-new-privileges":
            nnp = True
            continue
        if opt == "disable":
            continue
        sep = "=" if "=" in opt else ":" if ":" in opt else None
        if sep is None:
            raise InvalidArgumentError(f"invalid --security-opt: {opt!r}")
        key, _, value = opt.partition(sep)
        if key == "no-new-privileges":
            if value in _TRUE:
                nnp = True
            elif value in _FALSE:
                nnp = False
            else:
                raise InvalidArgumentError(f"invalid --security-opt: {opt!r} (want a boolean)")
        elif key == "seccomp":
            if not value:
                raise InvalidArgumentError(f"invalid --security-opt: {opt!r} (empty profile)")
            profile = None if value == "builtin" else value
        elif key in ("label", "apparmor"):
            continue  # no SELinux/AppArmor support: Docker ignores these on such hosts too
        else:
            raise InvalidArgumentError(
                f"invalid --security-opt: {opt!r} (known: no-new-privileges, seccomp=..., "
                "label=..., apparmor=...)")
    return SecurityOptions(no_new_privileges=nnp, seccomp=profile)


def resolve_args(image_config: Mapping[str, Any], options: RunOptions) -> list[str]:
    """``process.args`` with Docker's rules.

    ``Entrypoint + Cmd`` where the run command replaces ``Cmd``; ``--entrypoint`` replaces
    ``Entrypoint`` and, unless a command is given, also drops the image's ``Cmd``. Raises
    :class:`~barque.errors.InvalidArgumentError` ``No command specified`` when nothing is left.
    """
    command = list(options.command or [])
    if options.entrypoint is not None:
        entrypoint = [] if options.entrypoint in ([], [""]) else list(options.entrypoint)
        args = entrypoint + command
    else:
        entrypoint = list(image_config.get("Entrypoint") or [])
        args = entrypoint + (command or list(image_config.get("Cmd") or []))
    if not args:
        raise InvalidArgumentError("No command specified")
    return args


def _env_key(entry: str) -> str:
    return entry.partition("=")[0]


def replace_or_append(base: list[str], overrides: Iterable[str]) -> list[str]:
    """Docker's ``ReplaceOrAppendEnvValues``: override by key, append new keys, and a bare
    ``KEY`` (no ``=``) removes ``KEY``."""
    out: list[str | None] = list(base)
    index = {_env_key(e): i for i, e in enumerate(base)}
    for entry in overrides:
        key = _env_key(entry)
        if "=" not in entry:
            if key in index:
                out[index.pop(key)] = None
            continue
        if key in index:
            out[index[key]] = entry
        else:
            index[key] = len(out)
            out.append(entry)
    return [e for e in out if e is not None]


def resolve_env(image_config: Mapping[str, Any], options: RunOptions, hostname: str,
                home: str | None = None) -> list[str]:
    """``process.env`` as Docker builds it.

    Start from ``PATH=<default>``, ``HOSTNAME=<hostname>`` and (with a tty) ``TERM=xterm``;
    overlay the container's env, which is the ``-e`` values followed by the image's ``Env``
    entries whose keys ``-e`` does not set. ``home`` (the user's passwd home) is added as
    ``HOME`` unless something sets it -- what runc does at exec time, done here so every
    runtime gives the same environment. Raises for an entry with an empty key.
    """
    for entry in options.env:
        if not entry or entry.startswith("="):
            raise InvalidArgumentError(f"invalid environment variable: {entry!r}")
    user_keys = {_env_key(e) for e in options.env}
    image_env = [e for e in (image_config.get("Env") or []) if isinstance(e, str) and e]
    config_env = list(options.env) + [e for e in image_env if _env_key(e) not in user_keys]
    base = ["PATH=" + DEFAULT_PATH, "HOSTNAME=" + hostname]
    if options.tty:
        base.append("TERM=xterm")
    env = replace_or_append(base, config_env)
    if home is not None and not any(_env_key(e) == "HOME" for e in env):
        env.append("HOME=" + home)
    return env


def _resolve_cwd(image_config: Mapping[str, Any], options: RunOptions) -> str:
    raw = options.workdir or image_config.get("WorkingDir") or "/"
    if not isinstance(raw, str) or "\0" in raw or not raw.startswith("/"):
        raise InvalidArgumentError(
            f"the working directory '{raw}' is invalid, it needs to be an absolute path")
    cleaned = posixpath.normpath(raw)
    return "/" + cleaned.lstrip("/")  # normpath keeps a leading '//'


@functools.cache
def last_cap() -> int:
    """The kernel's highest capability number (``/proc/sys/kernel/cap_last_cap``)."""
    try:
        with open("/proc/sys/kernel/cap_last_cap", "rb") as f:
            return min(int(f.read().strip()), len(CAPABILITIES) - 1)
    except (OSError, ValueError):
        return len(CAPABILITIES) - 1


@functools.cache
def available_capabilities() -> tuple[str, ...]:
    """Capabilities a container can be given here: known to the kernel and in this process's
    bounding set (``CapBnd``), in number order.

    A runtime cannot grant a capability its own process lacks (this sandbox, for one, has no
    CAP_SYS_RESOURCE), so "all capabilities" means these, as in moby's ``caps`` package.
    """
    bounding = (1 << (last_cap() + 1)) - 1
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("CapBnd:"):
                    bounding &= int(line.split()[1], 16)
                    break
    except (OSError, ValueError, IndexError):
        pass
    return tuple(c for i, c in enumerate(CAPABILITIES) if bounding >> i & 1)


def _normalize_caps(names: Iterable[str], flag: str) -> list[str]:
    out = []
    for raw in names:
        name = raw.strip().upper()
        if name == "ALL":
            out.append("ALL")
            continue
        if not name.startswith("CAP_"):
            name = "CAP_" + name
        if name not in _CAP_NUMBER:
            raise InvalidArgumentError(f"unknown capability in {flag}: {raw!r}")
        if flag == "--cap-add" and name not in available_capabilities():
            raise InvalidArgumentError(
                f"capability not supported by your kernel or not available in the current "
                f"environment: {name!r}")
        out.append(name)
    return out


def resolve_capabilities(cap_add: Iterable[str] = (), cap_drop: Iterable[str] = (),
                         privileged: bool = False) -> list[str]:
    """The container's capability set: Docker's ``TweakCapabilities``.

    Privileged: every capability available (see :func:`available_capabilities`). Else the
    14 defaults minus ``cap_drop`` plus ``cap_add``; ``--cap-add ALL`` means all available but
    ``cap_drop``; ``--cap-drop ALL`` means exactly ``cap_add``. Sorted by capability number,
    no duplicates. An unknown name, or a ``cap_add`` of a capability not available here,
    raises :class:`~barque.errors.InvalidArgumentError` naming the bad one.
    """
    if privileged:
        return list(available_capabilities())
    adds = _normalize_caps(cap_add, "--cap-add")
    drops = _normalize_caps(cap_drop, "--cap-drop")
    if "ALL" in adds:
        caps = [c for c in list(available_capabilities()) if c not in drops]
    elif "ALL" in drops:
        caps = [c for c in adds if c != "ALL"]
    else:
        caps = [c for c in DEFAULT_CAPABILITIES if c not in drops] + adds
    return sorted(set(caps), key=_CAP_NUMBER.__getitem__)


def _nofile_limit() -> int:
    # Docker passes dockerd's own RLIMIT_NOFILE (1048576 under its systemd unit). Never ask
    # for more than our hard limit: raising it needs CAP_SYS_RESOURCE, which this sandbox
    # lacks, and the runtime's setrlimit would then fail the whole start (Podman's bug here).
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return _NOFILE_CEILING if hard == resource.RLIM_INFINITY else min(_NOFILE_CEILING, hard)


def _default_mounts(privileged: bool) -> list[dict[str, Any]]:
    sys_ro = [] if privileged else ["ro"]
    return [
        {"destination": "/proc", "type": "proc", "source": "proc",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", *sys_ro]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": [*sys_ro, "nosuid", "noexec", "nodev", "relatime"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
    ]


def default_device_rules() -> list[dict[str, Any]]:
    """The ``linux.resources.devices`` of a container without ``--privileged`` or
    ``--device``: deny everything, then allow Docker's and runc's defaults."""
    rules = []
    for allow, kind, major, minor in _DEVICE_RULES:
        rule: dict[str, Any] = {"allow": allow}
        if kind:
            rule["type"] = kind
        if major is not None:
            rule["major"] = major
        if minor is not None:
            rule["minor"] = minor
        mknod_only = allow and kind and major is None
        rule["access"] = "m" if mknod_only else "rwm"
        rules.append(rule)
    return rules


def _valid_device_permissions(text: str) -> bool:
    """Docker's ``ValidDeviceMode``: a non-empty combination of r, w and m, each once."""
    return bool(text) and len(set(text)) == len(text) and set(text) <= set("rwm")


def parse_device(text: str) -> tuple[str, str, str]:
    """``--device HOST[:CONTAINER][:PERMISSIONS]`` as (host path, container path,
    permissions), with Docker's checks and messages (``HOST:rw`` is a host path and its
    permissions)."""
    def invalid(reason: str) -> InvalidArgumentError:
        return InvalidArgumentError(f'invalid argument "{text}" for "--device" flag: {reason}')

    parts = text.split(":")
    if len(parts) > 3 or not parts[0]:
        raise invalid(f"bad format for path: {text}")
    host, container, permissions = parts[0], parts[0], _DEVICE_PERMISSIONS
    if len(parts) == 2:
        if _valid_device_permissions(parts[1]):
            permissions = parts[1]
        else:
            container = parts[1]
    elif len(parts) == 3:
        container, permissions = parts[1], parts[2]
        if not _valid_device_permissions(permissions):
            raise invalid(f"bad mode specified: {permissions}")
    if not container.startswith("/"):
        raise invalid(f"{container} is not an absolute path")
    return host, posixpath.normpath(container), permissions


def resolve_devices(specs: Iterable[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The ``linux.devices`` entries and the device cgroup rules of ``--device`` values, as
    Docker's daemon makes them: the host node's type, numbers, mode and owner; a symlink is
    followed; a directory gives every device node under it. The container path must be
    under ``/dev``, where barque creates nodes."""
    import stat

    nodes: list[dict[str, Any]] = []
    rules: list[dict[str, Any]] = []
    for text in specs:
        host, container, permissions = parse_device(text)
        resolved = os.path.realpath(host) if os.path.islink(host) else host
        try:
            st = os.stat(resolved)
        except OSError as e:
            raise InvalidArgumentError(
                f"error gathering device information while adding custom device "
                f'"{host}": {(e.strerror or str(e)).lower()}') from e
        if stat.S_ISDIR(st.st_mode):
            found = [dict(d, path=container + d["path"][len(resolved):])
                     for d in host_devices(resolved)]
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            found = [{"path": container, "type": "c" if stat.S_ISCHR(st.st_mode) else "b",
                      "major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev),
                      "fileMode": stat.S_IMODE(st.st_mode), "uid": st.st_uid,
                      "gid": st.st_gid}]
        else:
            found = []
        if not found:
            raise InvalidArgumentError(
                "error gathering device information while adding custom device "
                f'"{host}": not a device node')
        if container == "/dev" or not container.startswith("/dev/"):
            raise InvalidArgumentError(
                f"--device {text}: barque creates device nodes under /dev only, not at "
                f"{container}")
        nodes += found
        rules += [{"allow": True, "type": d["type"], "major": d["major"], "minor": d["minor"],
                   "access": permissions} for d in found]
    return nodes, rules


_SKIP_DEV_DIRS = frozenset({"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"})


def host_devices(root: str = "/dev") -> list[dict[str, Any]]:
    """Every char/block device node under ``root`` as OCI ``linux.devices`` entries.

    What a privileged Docker container gets (runc's ``HostDevices``): skips ``/dev/console``
    and the pts/shm/fd/mqueue directories, does not follow symlinks.
    """
    import stat

    out: list[dict[str, Any]] = []
    stack = [root]
    while stack:
        directory = stack.pop()
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                if entry.name not in _SKIP_DEV_DIRS:
                    stack.append(entry.path)
                continue
            if entry.path == posixpath.join(root, "console"):
                continue
            if stat.S_ISCHR(st.st_mode):
                kind = "c"
            elif stat.S_ISBLK(st.st_mode):
                kind = "b"
            else:
                continue
            out.append({"path": entry.path, "type": kind, "major": os.major(st.st_rdev),
                        "minor": os.minor(st.st_rdev), "fileMode": stat.S_IMODE(st.st_mode),
                        "uid": st.st_uid, "gid": st.st_gid})
    return out


def _sysctl_exists(name: str) -> bool:
    return os.path.exists("/proc/sys/" + name.replace(".", "/"))


def _load_profile(value: str) -> dict[str, Any]:
    import json

    text = value
    if not value.lstrip().startswith("{"):
        try:
            with open(value, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise InvalidArgumentError(
                f"opening seccomp profile ({value}) failed: {e.strerror or e}") from None
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise InvalidArgumentError(f"decoding seccomp profile failed: {e}") from None
    if not isinstance(doc, dict):
        raise InvalidArgumentError("decoding seccomp profile failed: not a JSON object")
    return doc


def _check_hostname(hostname: str) -> str:
    if not hostname or len(hostname.encode()) > _HOST_NAME_MAX or any(
            c.isspace() or c in "/\0" or not c.isprintable() for c in hostname):
        raise InvalidArgumentError(f"invalid hostname: {hostname!r}")
    return hostname


def _check_mount(mount: Any) -> dict[str, Any]:
    if not isinstance(mount, dict) or not isinstance(mount.get("destination"), str) \
            or not mount["destination"].startswith("/"):
        raise InvalidArgumentError(f"invalid mount (need an absolute 'destination'): {mount!r}")
    return dict(mount)


def build_spec(image_config: Mapping[str, Any] | None, options: RunOptions,
               rootfs_lookup: Callable[[str], bytes | None], container_id: str,
               rootfs: str = "rootfs") -> dict[str, Any]:
    """The OCI runtime spec for one container, as a JSON-able dict.

    ``image_config`` is the image config's ``config`` section (``Env``, ``Cmd``,
    ``Entrypoint``, ``WorkingDir``, ``User``...; ``None`` or ``{}`` for none).
    ``rootfs_lookup(path)`` returns a file of the image's root filesystem (``/etc/passwd``,
    ``/etc/group``) or ``None``. ``container_id`` is the full hex ID (the default hostname is
    its first 12 characters); ``rootfs`` becomes ``root.path`` (absolute, or relative to the
    bundle).

    The spec carries ``linux.cgroupsPath`` ``/barque/<id>`` and the annotation
    ``org.barque.container.id``; the caller may add annotations and mounts. The caller must
    create ``process.cwd`` inside the rootfs if it is missing (Docker does).

    Raises :class:`~barque.errors.InvalidArgumentError` for anything Docker refuses before
    starting: an ID that is not ``[A-Za-z0-9][A-Za-z0-9_.+-]*``, no command, a relative
    working directory, an unknown user or group, an unknown capability, a bad
    ``--security-opt`` or seccomp profile, an unknown network mode, a bad hostname or mount,
    a ``--device`` that is malformed or not a device node.
    """
    config: Mapping[str, Any] = image_config or {}
    if not _ID.fullmatch(container_id):
        # it becomes part of linux.cgroupsPath: no '/', no '..'
        raise InvalidArgumentError(f"invalid container ID: {container_id!r}")
    if options.network not in _NETWORK_MODES:
        raise InvalidArgumentError(
            f"network mode {options.network!r} is not supported (use 'none' or 'host')")
    security = parse_security_opts(options.security_opt)

    args = resolve_args(config, options)
    cwd = _resolve_cwd(config, options)
    if options.hostname:
        hostname = options.hostname
    elif options.network == "host":
        hostname = os.uname().nodename  # Docker: host networking shows the host's name
    else:
        hostname = container_id[:12]
    hostname = _check_hostname(hostname)

    user = resolve_user(options.user or config.get("User") or "", rootfs_lookup)
    env = resolve_env(config, options, hostname, home=user.home)
    caps = resolve_capabilities(options.cap_add, options.cap_drop, options.privileged)
    device_nodes, device_rules = resolve_devices(options.devices)

    nofile = _nofile_limit()
    process_user: dict[str, Any] = {
        "uid": user.uid, "gid": user.gid,
        "additionalGids": list(process_groups(user, options.group_add, rootfs_lookup))}
    # A non-root process gets only the bounding set: execve would clear its effective and
    # permitted sets anyway (Docker's oci.SetCapabilities). Inheritable and ambient stay
    # empty for everyone (CVE-2022-24769).
    is_root = user.uid == 0
    capabilities = {"bounding": list(caps), "effective": list(caps) if is_root else [],
                    "permitted": list(caps) if is_root else [], "inheritable": [],
                    "ambient": []}
    process: dict[str, Any] = {
        "terminal": options.tty,
        "user": process_user,
        "args": args,
        "env": env,
        "cwd": cwd,
        "capabilities": capabilities,
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": nofile, "soft": nofile}],
        "noNewPrivileges": security.no_new_privileges,
    }

    namespaces = [{"type": t} for t in ("pid", "ipc", "uts", "mount", "cgroup")]
    if options.network != "host":
        namespaces.insert(1, {"type": "network"})

    linux: dict[str, Any] = {
        "namespaces": namespaces,
        "maskedPaths": [] if options.privileged else list(_MASKED_PATHS),
        "readonlyPaths": [] if options.privileged else list(_READONLY_PATHS),
        "devices": (host_devices() if options.privileged else []) + device_nodes,
        "resources": {"devices": ([{"allow": True, "access": "rwm"}] if options.privileged
                                  else default_device_rules()) + device_rules},
        "cgroupsPath": f"/barque/{container_id}",
    }
    if options.network != "host":
        sysctl = {}
        if _sysctl_exists("net.ipv4.ping_group_range"):
            sysctl["net.ipv4.ping_group_range"] = "0 2147483647"  # ping without NET_RAW
        if _sysctl_exists("net.ipv4.ip_unprivileged_port_start"):
            sysctl["net.ipv4.ip_unprivileged_port_start"] = "0"  # ports < 1024 for anyone
        if sysctl:
            linux["sysctl"] = sysctl
    if not options.privileged and security.seccomp != "unconfined":
        if security.seccomp is None:
            profile: dict[str, Any] | None = _seccomp.default_profile(caps)
        else:
            profile = _seccomp.convert_docker_profile(_load_profile(security.seccomp), caps)
        if profile is not None:
            linux["seccomp"] = profile
    limits = options.cgroup_limits()
    if limits.memory is not None:
        linux["resources"]["memory"] = {"limit": limits.memory}
    if limits.pids is not None:
        linux["resources"]["pids"] = {"limit": limits.pids}
    if limits.cpu_quota is not None:
        linux["resources"]["cpu"] = {"quota": limits.cpu_quota, "period": 100_000}

    return {
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": {"path": rootfs, "readonly": options.read_only},
        "hostname": hostname,
        "mounts": _default_mounts(options.privileged)
        + [_check_mount(m) for m in options.mounts],
        "linux": linux,
        "annotations": {"org.barque.container.id": container_id},
    }


# -- the spec of a Docker create body ---------------------------------------------------------

#: Docker's ``/dev/shm`` size when ``HostConfig.ShmSize`` is 0 (64 MiB).
DEFAULT_SHM_SIZE = 64 << 20

#: Sysctls a container may set with ``--sysctl`` (moby ``opts.ValidateSysctl``): those of the
#: namespaces it has of its own. ``net.*`` needs its own network namespace.
_NAMESPACED_SYSCTLS = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
                       "kernel.shmall", "kernel.shmmax", "kernel.shmmni",
                       "kernel.shm_rmid_forced")
_NAMESPACED_SYSCTL_PREFIXES = ("fs.mqueue.", "net.")

_RLIMITS = ("as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice",
            "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack")


def device_text(host: str, container: str, permissions: str) -> str:
    """A ``HostConfig.Devices`` entry as the ``--device`` text :func:`parse_device` reads."""
    return f"{host}:{container or host}:{permissions or _DEVICE_PERMISSIONS}"


def run_options_from(body: ContainerCreate,
                     mounts: Iterable[dict[str, Any]] = ()) -> RunOptions:
    """The options :func:`build_spec` reads, computed from a create body (never kept: the
    body is the container's one description). ``mounts``: the OCI mounts of its volume
    plan."""
    host = body.host_config
    entrypoint = body.entrypoint
    return RunOptions(
        command=list(body.cmd) if body.cmd else None,
        entrypoint=None if entrypoint is None else list(entrypoint),
        env=list(body.env or []), workdir=body.working_dir or None, user=body.user or None,
        group_add=list(host.group_add or []), hostname=body.hostname or None, tty=body.tty,
        read_only=host.readonly_rootfs, privileged=host.privileged,
        cap_add=list(host.cap_add or []), cap_drop=list(host.cap_drop or []),
        security_opt=list(host.security_opt or []),
        network=host.network_mode or "none", init=bool(host.init), mounts=list(mounts),
        memory=host.memory or None, pids_limit=host.pids_limit,
        cpus=host.nano_cpus / 1e9 if host.nano_cpus else None,
        devices=[device_text(d.path_on_host, d.path_in_container, d.cgroup_permissions)
                 for d in host.devices or []])


def build_spec_from(image_config: Mapping[str, Any] | None, body: ContainerCreate,
                    rootfs_lookup: Callable[[str], bytes | None], container_id: str,
                    mounts: Iterable[dict[str, Any]] = (),
                    warnings: list[str] | None = None) -> dict[str, Any]:
    """:func:`build_spec` for a Docker create body, with the HostConfig fields the options
    do not carry applied: ``ShmSize`` (the /dev/shm tmpfs), ``Ulimits`` (rlimits, a hard
    limit above this process's own clamped to it, with a line in ``warnings``), ``Sysctls``,
    ``MaskedPaths``/``ReadonlyPaths``, ``Annotations`` and ``Config.Domainname``."""
    host = body.host_config
    spec = build_spec(image_config, run_options_from(body, mounts), rootfs_lookup,
                      container_id)
    shm = host.shm_size or DEFAULT_SHM_SIZE
    for mount in spec["mounts"]:
        if mount["destination"] == "/dev/shm" and mount["type"] == "tmpfs":
            mount["options"] = [o for o in mount["options"] if not o.startswith("size=")] \
                + [f"size={shm // 1024}k" if shm % 1024 == 0 else f"size={shm}"]
    if host.ulimits:
        spec["process"]["rlimits"] = _rlimits(host.ulimits, spec["process"]["rlimits"],
                                              warnings)
    if host.sysctls:
        sysctl = spec["linux"].setdefault("sysctl", {})
        for key, value in host.sysctls.items():
            _check_sysctl(key, host.network_mode or "none")
            sysctl[key] = value
    if host.masked_paths is not None:
        spec["linux"]["maskedPaths"] = list(host.masked_paths)
    if host.readonly_paths is not None:
        spec["linux"]["readonlyPaths"] = list(host.readonly_paths)
    if host.annotations:
        for key in host.annotations:
            if key.startswith("org.barque."):
                raise InvalidArgumentError(
                    f"HostConfig.Annotations: {key!r} is reserved for barque itself")
        spec["annotations"].update(host.annotations)
    if body.domainname:
        spec["domainname"] = _check_hostname(body.domainname)
    return spec


def _rlimits(ulimits: Iterable[Ulimit], defaults: list[dict[str, Any]],
             warnings: list[str] | None) -> list[dict[str, Any]]:
    import resource

    chosen = {r["type"]: r for r in defaults}
    for u in ulimits:
        name = u.name.lower()
        if name not in _RLIMITS:
            raise InvalidArgumentError(f"HostConfig.Ulimits: invalid ulimit type: {u.name}")
        if u.soft > u.hard:
            raise InvalidArgumentError(
                f"HostConfig.Ulimits: ulimit soft limit must be less than or equal to hard "
                f"limit: {u.soft} > {u.hard}")
        kind = "RLIMIT_" + name.upper()
        soft, hard = u.soft, u.hard
        # Raising a hard limit needs CAP_SYS_RESOURCE in the host's user namespace, which
        # the runtime may lack: it clamps the same way; said here so the user knows.
        current = resource.getrlimit(getattr(resource, kind))[1]
        if current != resource.RLIM_INFINITY and hard > current:
            if warnings is not None:
                warnings.append(f"ulimit {name}: hard limit {hard} is above this host's "
                                f"{current}; the container gets {current}")
            hard, soft = current, min(soft, current)
        chosen[kind] = {"type": kind, "hard": hard, "soft": soft}
    return list(chosen.values())


def _check_sysctl(key: str, network: str) -> None:
    if key.startswith("net.") and network == "host":
        raise InvalidArgumentError(
            f"HostConfig.Sysctls: {key}: sysctls of the network namespace cannot be set "
            "with --network host")
    if key in _NAMESPACED_SYSCTLS or key.startswith(_NAMESPACED_SYSCTL_PREFIXES):
        return
    raise InvalidArgumentError(f"HostConfig.Sysctls: {key} is not allowed: only sysctls of "
                               "the container's own namespaces can be set")
