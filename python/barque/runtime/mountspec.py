"""``-v``, ``--mount`` and ``--tmpfs`` specifications parsed into :class:`MountSpec`, with
Docker's rules and wording (moby ``volume/mounts/linux_parser.go``, docker/cli
``opts/mount.go``).

Pure: no file system access, no store. What a spec needs from the host (does a bind source
exist, is a volume there) is checked by :mod:`barque.volumes` when the container is created.
"""

from __future__ import annotations

import posixpath
import re

import msgspec

from ..errors import InvalidArgumentError

__all__ = ["MountSpec", "parse_volume", "parse_mount", "parse_tmpfs", "check_duplicates",
           "valid_volume_name", "volume_name_error", "clean_target", "from_api"]

VOLUME = "volume"
BIND = "bind"
TMPFS = "tmpfs"

_VOLUME_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")
_PROPAGATIONS = frozenset({"private", "rprivate", "shared", "rshared", "slave", "rslave"})
_LABELS = frozenset({"z", "Z"})           # SELinux relabel: accepted and ignored, as Docker
_CONSISTENCY = frozenset({"consistent", "cached", "delegated"})  # macOS only: ignored
#: What ``--tmpfs`` accepts besides ``size=`` and ``mode=`` (tmpfs(5) and mount flags).
_TMPFS_FLAGS = frozenset({"ro", "rw", "exec", "noexec", "suid", "nosuid", "dev", "nodev",
                          "atime", "noatime", "diratime", "nodiratime", "relatime",
                          "norelatime", "strictatime", "nostrictatime", "sync", "async",
                          "dirsync", "mand", "nomand"})
_TMPFS_KEYS = frozenset({"size", "mode", "nr_inodes", "nr_blocks", "uid", "gid"})
#: Docker's options for every tmpfs mount, which the user's own options follow (and win).
TMPFS_DEFAULTS = ("noexec", "nosuid", "nodev")


class MountSpec(msgspec.Struct, frozen=True):
    """One requested mount.

    ``type`` is ``volume``, ``bind`` or ``tmpfs``. ``source`` is a volume name (``""``: an
    anonymous volume), an absolute host path, or ``""`` for tmpfs. ``target`` is a cleaned
    absolute container path. ``propagation`` is for binds (``""`` means Docker's
    ``rprivate``). ``create_host_path``: a missing bind source is created (``-v``), not an
    error (``--mount``). ``tmpfs_options`` are kernel options (``size=`` in bytes). ``mode``
    is what Docker's inspect shows as ``Mode``.
    """

    type: str
    target: str
    source: str = ""
    read_only: bool = False
    nocopy: bool = False
    propagation: str = ""
    create_host_path: bool = False
    tmpfs_options: tuple[str, ...] = ()
    mode: str = ""
    labels: dict[str, str] = msgspec.field(default_factory=dict)

    # Labels only describe a volume to create: two requests for the same mount are the same
    # mount whatever labels they carry (and a dict would make the spec unhashable).
    def __eq__(self, other: object) -> bool:
        if type(other) is not MountSpec:
            return NotImplemented
        return self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())

    def _identity(self) -> tuple[object, ...]:
        return (self.type, self.target, self.source, self.read_only, self.nocopy,
                self.propagation, self.create_host_path, self.tmpfs_options, self.mode)


def valid_volume_name(name: str) -> bool:
    return bool(_VOLUME_NAME.fullmatch(name)) and len(name.encode()) <= 255


def volume_name_error(name: str) -> InvalidArgumentError:
    if len(name.encode()) > 255:
        return InvalidArgumentError(f'volume name "{name[:40]}..." is too long '
                                    "(at most 255 bytes)")
    return InvalidArgumentError(
        f'"{name}" includes invalid characters for a local volume name, only '
        '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, '
        "use absolute path")


def clean_target(path: str, kind: str = VOLUME) -> str:
    """A container path, cleaned; refuses relative paths and ``/`` with Docker's words."""
    where = f'invalid mount config for type "{kind}"'
    if not path or "\0" in path:
        raise InvalidArgumentError(f"{where}: field Target must not be empty")
    if not path.startswith("/"):
        raise InvalidArgumentError(
            f"{where}: invalid mount path: '{path}' mount path must be absolute")
    cleaned = "/" + posixpath.normpath(path).lstrip("/")
    if cleaned == "/":
        raise InvalidArgumentError(f"{where}: invalid specification: destination can't be '/'")
    return cleaned


def _spec_error(raw: str, reason: str = "") -> InvalidArgumentError:
    return InvalidArgumentError(f"invalid volume specification: '{raw}'"
                                + (f": {reason}" if reason else ""))


def parse_volume(raw: str) -> MountSpec:
    """``-v`` / ``--volume``: ``/path`` (anonymous volume), ``NAME:/path[:MODE]`` or
    ``/host:/path[:MODE]``; MODE is a comma list of ``ro``/``rw``, ``nocopy``, a
    propagation, ``z``/``Z``."""
    parts = raw.split(":")
    if len(parts) == 1:
        source, target, mode = "", parts[0], ""
    elif len(parts) == 2:
        if _is_mode(parts[1]):
            raise _spec_error(raw)  # "/foo:ro": a mode needs a source and a target
        source, target, mode = parts[0], parts[1], ""
    elif len(parts) == 3:
        source, target, mode = parts
    else:
        raise _spec_error(raw)
    if not target:
        raise _spec_error(raw)
    kind = BIND if source.startswith("/") else VOLUME
    read_only, nocopy, propagation = _parse_mode(mode)
    try:
        cleaned = clean_target(target, kind)
    except InvalidArgumentError as e:
        raise _spec_error(raw, str(e)) from None
    if kind == VOLUME:
        if source and not valid_volume_name(source):
            raise volume_name_error(source)
        if propagation:
            raise _spec_error(raw, 'invalid mount config for type "volume": '
                              "field BindOptions must not be specified")
        return MountSpec(VOLUME, cleaned, source, read_only=read_only, nocopy=nocopy,
                         mode=mode or "z")
    if nocopy:
        raise _spec_error(raw, 'invalid mount config for type "bind": '
                          "field VolumeOptions must not be specified")
    source = posixpath.normpath(source)
    return MountSpec(BIND, cleaned, source, read_only=read_only, propagation=propagation,
                     create_host_path=True, mode=mode)


def _is_mode(text: str) -> bool:
    try:
        _parse_mode(text)
    except InvalidArgumentError:
        return False
    return bool(text)


def _parse_mode(mode: str) -> tuple[bool, bool, str]:
    """(read_only, nocopy, propagation) of a ``-v`` mode; at most one of each kind."""
    if not mode:
        return False, False, ""
    rw = copy = prop = label = consistency = None
    for item in mode.split(","):
        if item in ("ro", "rw") and rw is None:
            rw = item
        elif item == "nocopy" and copy is None:
            copy = item
        elif item in _PROPAGATIONS and prop is None:
            prop = item
        elif item in _LABELS and label is None:
            label = item
        elif item in _CONSISTENCY and consistency is None:
            consistency = item
        else:
            raise InvalidArgumentError(f"invalid mode: {mode}")
    return rw == "ro", copy is not None, prop or ""


_TRUE = ("1", "true", "True", "TRUE", "t", "T")
_FALSE = ("0", "false", "False", "FALSE", "f", "F")


def _bool(key: str, value: str | None, raw: str) -> bool:
    if value is None or value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise _mount_error(raw, f"invalid value for {key}: {value}")


def _mount_error(raw: str, reason: str) -> InvalidArgumentError:
    return InvalidArgumentError(f'invalid argument "{raw}" for "--mount" flag: {reason}')


def parse_mount(raw: str) -> MountSpec:
    """``--mount type=volume|bind|tmpfs,source=,target=,readonly,volume-nocopy,
    volume-label=,bind-propagation=,tmpfs-size=,tmpfs-mode=`` (Docker's CSV syntax)."""
    from .cgroups import parse_memory

    kind, source, target = VOLUME, "", ""
    read_only = nocopy = False
    propagation, size, tmode = "", None, None
    labels: dict[str, str] = {}
    volume_keys, bind_keys, tmpfs_keys = [], [], []
    for item in raw.split(","):
        key, eq, value = item.partition("=")
        key = key.strip().lower()
        if key in ("readonly", "ro", "volume-nocopy") and not eq:
            value_opt: str | None = None
        elif not eq:
            raise _mount_error(raw, f"invalid field '{item}' must be a key=value pair")
        else:
            value_opt = value
        if key == "type":
            if value not in (VOLUME, BIND, TMPFS):
                raise _mount_error(raw, f"invalid mount type '{value}': use volume, bind or tmpfs")
            kind = value
        elif key in ("source", "src"):
            source = value
        elif key in ("target", "destination", "dst"):
            target = value
        elif key in ("readonly", "ro"):
            read_only = _bool(key, value_opt, raw)
        elif key == "consistency":
            if value not in _CONSISTENCY | {"default"}:
                raise _mount_error(raw, f"invalid consistency: {value}")
        elif key == "bind-propagation":
            bind_keys.append(key)
            if value not in _PROPAGATIONS:
                raise _mount_error(raw, f"invalid propagation mode: {value}")
            propagation = value
        elif key == "volume-nocopy":
            volume_keys.append(key)
            nocopy = _bool(key, value_opt, raw)
        elif key == "volume-label":
            volume_keys.append(key)
            k, _, v = value.partition("=")
            labels[k] = v
        elif key == "volume-driver":
            volume_keys.append(key)
            if value != "local":
                raise _mount_error(raw, f"volume driver '{value}' is not supported: local only")
        elif key == "tmpfs-size":
            tmpfs_keys.append(key)
            try:
                size = parse_memory(value)
            except InvalidArgumentError:
                raise _mount_error(raw, f"invalid value for {key}: {value}") from None
        elif key == "tmpfs-mode":
            tmpfs_keys.append(key)
            try:
                tmode = int(value, 8)
            except ValueError:
                raise _mount_error(raw, f"invalid value for {key}: {value}") from None
            if not 0 <= tmode <= 0o7777:
                raise _mount_error(raw, f"invalid value for {key}: {value}")
        else:
            raise _mount_error(raw, f"unexpected key '{key}' in '{item}'")
    for prefix, used in (("volume", volume_keys), ("bind", bind_keys), ("tmpfs", tmpfs_keys)):
        if used and kind != prefix:
            raise _mount_error(raw, f"cannot mix '{prefix}-*' options with mount type '{kind}'")
    if not target:
        raise _mount_error(raw, "target is required")
    target = clean_target(target, kind)
    if kind == VOLUME:
        if source and not valid_volume_name(source):
            raise volume_name_error(source)
        return MountSpec(VOLUME, target, source, read_only=read_only, nocopy=nocopy,
                         labels=labels)
    if kind == BIND:
        where = 'invalid mount config for type "bind"'
        if not source:
            raise InvalidArgumentError(f"{where}: field Source must not be empty")
        if not source.startswith("/"):
            raise InvalidArgumentError(
                f"{where}: invalid mount path: '{source}' mount path must be absolute")
        return MountSpec(BIND, target, posixpath.normpath(source), read_only=read_only,
                         propagation=propagation)
    if source:
        raise InvalidArgumentError(
            'invalid mount config for type "tmpfs": field Source must not be specified')
    options = list(TMPFS_DEFAULTS)
    if size is not None:
        options.append(f"size={size}")
    if tmode is not None:
        options.append(f"mode={tmode:o}")
    return MountSpec(TMPFS, target, read_only=read_only, tmpfs_options=tuple(options))


def parse_tmpfs(raw: str) -> MountSpec:
    """``--tmpfs /path[:OPTIONS]``: OPTIONS as for ``mount -t tmpfs`` (``size=64m``,
    ``mode=1777``, ``noexec``...); anything tmpfs does not know is refused here rather than
    when the container starts."""
    from .cgroups import parse_memory

    target, _, opts = raw.partition(":")
    target = clean_target(target, TMPFS)
    options = list(TMPFS_DEFAULTS)
    read_only = False
    for item in filter(None, opts.split(",")):
        key, eq, value = item.partition("=")
        if not eq and key in _TMPFS_FLAGS:
            read_only = {"ro": True, "rw": False}.get(key, read_only)
            if key not in ("ro", "rw"):
                options.append(key)
            continue
        if not eq or key not in _TMPFS_KEYS or not value:
            raise InvalidArgumentError(f"invalid tmpfs option \"{item}\" in '{raw}'")
        if key == "size" and not value.endswith("%"):
            try:
                value = str(parse_memory(value))
            except InvalidArgumentError:
                raise InvalidArgumentError(f"invalid tmpfs size \"{value}\" in '{raw}'") from None
        elif key == "mode" and not re.fullmatch(r"[0-7]{1,4}", value):
            raise InvalidArgumentError(f"invalid tmpfs mode \"{value}\" in '{raw}'")
        elif key != "size" and key != "mode" and not value.isdigit():
            raise InvalidArgumentError(f"invalid tmpfs option \"{item}\" in '{raw}'")
        options.append(f"{key}={value}")
    return MountSpec(TMPFS, target, read_only=read_only, tmpfs_options=tuple(options),
                     mode=opts)


def check_duplicates(specs: list[MountSpec]) -> None:
    """Two requested mounts on one container path: Docker's ``Duplicate mount point``."""
    seen: set[str] = set()
    for spec in specs:
        if spec.target in seen:
            raise InvalidArgumentError(f"Duplicate mount point: {spec.target}")
        seen.add(spec.target)


def from_api(item: object, *, kind: str) -> list[MountSpec]:
    """``volumes=``/``mounts=`` of the Python API: ``-v``/``--mount`` strings, MountSpecs, or
    (``volumes=``) docker-py's ``{source: {"bind": target, "mode": "ro"}}`` dict, or
    (``mounts=``) dicts with Docker's ``Type``/``Source``/``Target``/``ReadOnly`` keys."""
    if isinstance(item, MountSpec):
        return [item]
    if isinstance(item, str):
        return [parse_volume(item) if kind == "volumes" else parse_mount(item)]
    if isinstance(item, dict) and kind == "volumes":
        out = []
        for source, how in item.items():
            if isinstance(how, str):
                how = {"bind": how}
            mode = how.get("mode", "")
            out.append(parse_volume(f"{source}:{how['bind']}" + (f":{mode}" if mode else "")))
        return out
    if isinstance(item, dict):
        parts = [f"type={item.get('Type', 'volume')}", f"target={item.get('Target', '')}"]
        if item.get("Source"):
            parts.append(f"source={item['Source']}")
        if item.get("ReadOnly"):
            parts.append("readonly")
        if (item.get("VolumeOptions") or {}).get("NoCopy"):
            parts.append("volume-nocopy")
        spec = parse_mount(",".join(parts))
        return [msgspec.structs.replace(spec, propagation=(item.get("BindOptions") or {}).get("Propagation", "")
                        or spec.propagation)]
    raise InvalidArgumentError(f"invalid {kind} entry: {item!r}")
