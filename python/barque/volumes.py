"""The volume service: named and anonymous volumes, and the mounts of a container being
created (``-v``, ``--mount``, ``--tmpfs``, ``--volumes-from``, the image's ``VOLUME``s).

A volume is a row in the metadata database (name, driver ``local``, labels, options) and a
directory ``volumes/<name>/_data`` in the store, bind-mounted into the containers that use it.
Which containers use a volume is read from their records (Docker's ``Mounts``), so it can never
disagree with them. Creating, removing and the mounts of a container being created are
serialised by one lock (``locks/volumes.lock``): a volume cannot be removed between the moment a
container is planned to use it and the moment that container is recorded.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import stat
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from . import arguments, overlay, procfs
from .diskusage import tree_size
from .errors import (
    ContainerNotFoundError,
    InvalidArgumentError,
    VolumeInUseError,
    VolumeNotFoundError,
)
from .runtime import mountspec
from .runtime.mountspec import BIND, TMPFS, VOLUME, MountSpec
from .store.metadata import VolumeRecord

if TYPE_CHECKING:
    from .engine import Engine
    from .images import Image
    from .models.image import Volume as VolumeDocument
    from .store import Store
    from .store.metadata import ContainerRecord

#: Docker's label on the volumes it creates for ``-v /path`` and image ``VOLUME``s.
ANONYMOUS_LABEL = "com.docker.volume.anonymous"
_held = threading.local()  # the volumes locks this thread holds
#: The ``--opt`` keys of Docker's local driver (a filesystem mounted as the volume).
_DRIVER_OPTS = ("type", "device", "o")


class Volume:
    """A volume's record, read when the object was made."""

    def __init__(self, service: VolumeService, record: VolumeRecord) -> None:
        self._service = service
        self._record = record

    def __repr__(self) -> str:
        return f"<Volume {self.name}>"

    @property
    def name(self) -> str:
        return self._record.name

    @property
    def labels(self) -> dict[str, str]:
        labels: dict[str, str] = json.loads(self._record.labels)
        return labels

    @property
    def options(self) -> dict[str, str]:
        options: dict[str, str] = json.loads(self._record.options)
        return options

    @property
    def anonymous(self) -> bool:
        return ANONYMOUS_LABEL in self.labels

    @property
    def mountpoint(self) -> Path:
        return self._service._store.paths.volume_data(self.name)

    def remove(self, force: bool = False) -> None:
        self._service.remove(self.name, force=force)

    @property
    def attrs(self) -> dict[str, Any]:
        """Docker's ``volume inspect`` JSON (:meth:`inspect`'s document as dicts)."""
        from .models import to_builtins

        attrs: dict[str, Any] = to_builtins(self.inspect())
        return attrs

    def inspect(self) -> VolumeDocument:
        """``docker volume inspect``'s document, typed (``barque.models.image.Volume``)."""
        from datetime import datetime, timezone

        from .models.image import Volume as VolumeDocument

        created = datetime.fromtimestamp(int(self._record.created), timezone.utc)
        return VolumeDocument(
            created_at=created.isoformat().replace("+00:00", "Z"), driver=self._record.driver,
            labels=self.labels or None, mountpoint=str(self.mountpoint), name=self.name,
            options=self.options or None)


class MountPlan(msgspec.Struct):
    """A container's mounts, checked but not made yet (see :meth:`VolumeService.plan`).

    ``oci``: OCI mount objects, parents before children. ``records``: Docker's inspect
    ``Mounts``. The rest is what :meth:`VolumeService.apply` does: volumes to create (name,
    labels), volumes to fill from the image when empty (name, path in the image), host
    directories to create."""

    oci: list[dict[str, Any]] = msgspec.field(default_factory=list)
    records: list[dict[str, Any]] = msgspec.field(default_factory=list)
    new_volumes: list[tuple[str, dict[str, str]]] = msgspec.field(default_factory=list)
    copy_up: list[tuple[str, str]] = msgspec.field(default_factory=list)
    host_dirs: list[str] = msgspec.field(default_factory=list)
    #: Docker's HostConfig/Config fields describing the request.
    binds: list[str] = msgspec.field(default_factory=list)
    tmpfs: dict[str, str] = msgspec.field(default_factory=dict)
    volumes_from: list[str] = msgspec.field(default_factory=list)
    config_volumes: dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)
    host_mounts: list[dict[str, Any]] = msgspec.field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.oci)


class VolumeService:
    """Volumes in one store. Obtain it as ``Engine(...).volumes``."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @property
    def _store(self) -> Store:
        return self._engine.store

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """The volumes lock; re-entrant within a thread (removing a container, which may
        remove its anonymous volumes, can happen while it is held)."""
        from .store import file_lock

        path = self._store.paths.lock("volumes")
        held = _held.__dict__.setdefault("paths", set())
        if path in held:
            yield
            return
        with file_lock(path):
            held.add(path)
            try:
                yield
            finally:
                held.discard(path)

    # -- the volume API ---------------------------------------------------------------------

    def create(self, name: str | None = None, *, driver: str = "local",
               labels: dict[str, str] | None = None,
               options: dict[str, str] | None = None) -> Volume:
        """``docker volume create``: a new volume, or the existing one of that name unchanged.
        Without a name, a random 64-hex one. ``options`` are the local driver's ``type``,
        ``device`` and ``o`` (a filesystem mounted as the volume, e.g. ``type=tmpfs``)."""
        arguments.optional_text(name, "name")
        arguments.text(driver, "driver")
        arguments.string_map(labels, "labels")
        arguments.string_map(options, "options")
        if name is not None and not mountspec.valid_volume_name(name):
            raise mountspec.volume_name_error(name)
        if driver != "local":
            raise InvalidArgumentError(f"volume driver {driver!r} is not supported: local only")
        for key in options or {}:
            if key not in _DRIVER_OPTS:
                raise InvalidArgumentError(f"invalid option key: {key!r}")
        with self.lock():
            return self._create(name or os.urandom(32).hex(), labels or {}, options or {})

    def _create(self, name: str, labels: dict[str, str],
                options: dict[str, str] | None = None) -> Volume:
        record = VolumeRecord(name=name, driver="local", created=time.time(),
                              labels=json.dumps(labels).encode(),
                              options=json.dumps(options or {}).encode())
        if self._store.metadata.add_volume(record):
            try:
                self._ensure_dirs(name)
            except BaseException:
                self._store.metadata.remove_volume(name)
                raise
        return self.get(name)

    def _ensure_dirs(self, name: str) -> Path:
        """The volume's ``_data`` directory, made if missing (a create cut short by a crash
        left the record only: the record is what makes a volume exist)."""
        paths = self._store.paths
        paths.volumes.mkdir(mode=0o700, exist_ok=True)
        paths.volume(name).mkdir(mode=0o700, exist_ok=True)
        data = paths.volume_data(name)
        data.mkdir(mode=0o755, exist_ok=True)
        return data

    def get(self, name: str) -> Volume:
        arguments.text(name, "name")
        record = self._store.metadata.get_volume(name) if name else None
        if record is None:
            raise VolumeNotFoundError(f"No such volume: {name}")
        return Volume(self, record)

    def exists(self, name: str) -> bool:
        arguments.text(name, "name")
        return bool(name) and self._store.metadata.get_volume(name) is not None

    def list(self, filters: dict[str, list[str]] | None = None) -> list[Volume]:
        """Volumes by name. ``filters`` as ``docker volume ls --filter``: ``name``
        (substring), ``label`` (``k`` or ``k=v``), ``dangling`` (``true``: used by no
        container), ``driver``; values of one key OR-ed, keys AND-ed."""
        filters = arguments.filters(filters) or {}
        unknown = set(filters) - {"name", "label", "dangling", "driver"}
        if unknown:
            raise InvalidArgumentError(f"invalid filter '{sorted(unknown)[0]}'")
        dangling = None
        for value in filters.get("dangling", []):
            if value.lower() in ("true", "1"):
                dangling = True
            elif value.lower() in ("false", "0"):
                dangling = False
            else:
                raise InvalidArgumentError(
                    f"invalid filter 'dangling={value}': use true, false, 1 or 0")
        used = self._used_names() if dangling is not None else set()
        out = []
        for record in self._store.metadata.volumes():
            volume = Volume(self, record)
            labels = volume.labels
            if "name" in filters and not any(v in volume.name for v in filters["name"]):
                continue
            if "driver" in filters and record.driver not in filters["driver"]:
                continue
            if "label" in filters and not any(
                    labels.get(k) == v if sep else k in labels
                    for k, sep, v in (item.partition("=") for item in filters["label"])):
                continue
            if dangling is not None and (volume.name not in used) != dangling:
                continue
            out.append(volume)
        return out

    def users(self, name: str) -> builtins.list[ContainerRecord]:
        """The containers (running or not) whose mounts include the volume ``name``."""
        return [r for r in self._store.metadata.containers() if name in volume_names(r)]

    def _used_names(self) -> set[str]:
        used: set[str] = set()
        for record in self._store.metadata.containers():
            used |= volume_names(record)
        return used

    def remove(self, name: str, force: bool = False) -> None:
        """``docker volume rm``: refused while a container uses it. With ``force``, a volume
        used only by stopped containers goes (they keep its path in their records and will
        fail to start), a missing one is no error; one a running container uses never goes."""
        arguments.text(name, "name")
        with self.lock():
            record = self._store.metadata.get_volume(name) if name else None
            if record is None:
                if force:
                    return
                raise VolumeNotFoundError(f"No such volume: {name}")
            users = self.users(name)
            running = [u for u in users if u.status in ("running", "paused")
                       and procfs.start_time(u.pid) == u.pid_start]
            if users and (not force or running):
                listed = ", ".join(f"{u.id} ({u.name})" for u in (running or users))
                raise VolumeInUseError(f"remove {name}: volume is in use - [{listed}]")
            self._discard(name)

    def _discard(self, name: str) -> None:
        """Take the files out first, then the record: a removal cut short leaves a record
        whose files are gone (an empty volume again), never files a new volume of the same
        name would adopt."""
        from .store.snapshots import discard_tree

        discard_tree(self._store.paths.volume(name), self._store.paths.trash)
        self._store.metadata.remove_volume(name)

    def prune(self, *, all: bool = False, filters: dict[str, builtins.list[str]] | None = None,
              ) -> tuple[builtins.list[str], int]:
        """``docker volume prune``: remove the volumes no container uses -- only anonymous
        ones unless ``all`` (Docker 23's rule); ``filters``: ``label``. Returns their names
        and the bytes they held."""
        filters = arguments.filters(filters) or {}
        if set(filters) - {"label"}:
            raise InvalidArgumentError(f"invalid filter '{sorted(set(filters) - {'label'})[0]}'")
        removed, reclaimed = [], 0
        with self.lock():
            used = self._used_names()
            for volume in self.list({"label": filters["label"]} if "label" in filters else {}):
                if volume.name in used or not (all or volume.anonymous):
                    continue
                reclaimed += tree_size(volume.mountpoint)
                self._discard(volume.name)
                removed.append(volume.name)
        return removed, reclaimed

    def remove_anonymous(self, names: builtins.list[str]) -> None:
        """After a container's removal with ``-v`` or ``--rm``: its anonymous volumes that no
        other container uses. Named volumes stay (Docker's rule)."""
        if not names:
            return
        with self.lock():
            used = self._used_names()
            for name in names:
                record = self._store.metadata.get_volume(name)
                if record is not None and name not in used \
                        and Volume(self, record).anonymous:
                    self._discard(name)

    # -- a container's mounts ---------------------------------------------------------------

    def plan(self, img: Image, *, volumes: Sequence[Any] = (), mounts: Sequence[Any] = (),
             tmpfs: Sequence[str] | dict[str, str] = (),
             volumes_from: Sequence[str] = ()) -> MountPlan:
        """Check every mount a container asks for and decide what has to be made, touching
        nothing: any bad input raises before a volume, a directory or a container exists."""
        user: list[tuple[MountSpec, str]] = []
        binds: list[str] = []
        for item in volumes:
            for spec in mountspec.from_api(item, kind="volumes"):
                user.append((spec, "-v"))
                if spec.source:  # Docker lists "-v /path" under Config.Volumes instead
                    binds.append(item if isinstance(item, str) else f"{spec.source}:"
                                 f"{spec.target}" + (":ro" if spec.read_only else ""))
        for item in mounts:
            user += [(spec, "--mount") for spec in mountspec.from_api(item, kind="mounts")]
        tmpfs_items = [f"{k}:{v}" if v else k for k, v in tmpfs.items()] \
            if isinstance(tmpfs, dict) else list(tmpfs)
        plan = MountPlan(binds=binds)
        for item in tmpfs_items:
            spec = mountspec.parse_tmpfs(item)
            user.append((spec, "--tmpfs"))
            plan.tmpfs[spec.target] = spec.mode
        mountspec.check_duplicates([s for s, _ in user])
        taken = {s.target for s, _ in user}

        # --volumes-from: the other container's volumes and binds, where not overridden.
        inherited: list[dict[str, Any]] = []
        for item in volumes_from:
            ref, _, mode = item.partition(":")
            if mode not in ("", "ro", "rw"):
                raise InvalidArgumentError(f"invalid mode for volumes-from: {mode}")
            try:
                other = self._engine.containers.get(ref)
            except ContainerNotFoundError:
                raise ContainerNotFoundError(f"No such container: {ref}") from None
            plan.volumes_from.append(item)
            for m in other.config.get("Mounts") or []:
                if m.get("Type") not in (VOLUME, BIND) or m["Destination"] in taken:
                    continue
                taken.add(m["Destination"])
                inherited.append({**m, "RW": m.get("RW", True) if not mode else mode == "rw"})

        layers = self._store.snapshots.lower_dirs(img.layers)
        image_cfg = img.config.get("config") or {}
        specs = [s for s, _ in user]
        for path in image_cfg.get("Volumes") or {}:
            try:
                target = mountspec.clean_target(path)
            except InvalidArgumentError:
                continue  # an image VOLUME Docker would also ignore (relative or "/")
            plan.config_volumes[target] = {}
            if target not in taken:
                taken.add(target)
                specs.append(MountSpec(VOLUME, target))
        for spec, origin in user:
            if spec.type == VOLUME and not spec.source and origin == "-v":
                plan.config_volumes[spec.target] = {}

        planned_names: set[str] = set()
        for spec in specs:
            kind_in_image = overlay.entry_kind(layers, spec.target)
            if spec.type == VOLUME:
                self._plan_volume(plan, spec, kind_in_image, planned_names)
            elif spec.type == BIND:
                self._plan_bind(plan, spec, kind_in_image)
            else:
                plan.oci.append({"destination": spec.target, "type": "tmpfs",
                                 "source": "tmpfs", "options": list(spec.tmpfs_options)
                                 + (["ro"] if spec.read_only else [])})
        for spec, origin in user:
            if origin == "--mount":
                plan.host_mounts.append(_docker_mount(spec))
            if origin == "--mount" and spec.type == TMPFS:
                plan.records.append({"Type": "tmpfs", "Source": "", "Destination": spec.target,
                                     "Mode": "", "RW": not spec.read_only, "Propagation": ""})
        for m in inherited:
            self._plan_inherited(plan, m)
        # Parents before children (Docker sorts by path depth), so /a/b lands on /a's mount.
        plan.oci.sort(key=lambda m: m["destination"].count("/"))
        plan.records.sort(key=lambda m: m["Destination"])
        return plan

    def _plan_volume(self, plan: MountPlan, spec: MountSpec, kind_in_image: str,
                     planned: set[str]) -> None:
        if kind_in_image == "file":
            raise InvalidArgumentError(
                f"cannot mount volume over existing file, file exists {spec.target} "
                "(a volume is a directory)")
        anonymous = not spec.source
        name = spec.source or os.urandom(32).hex()
        existing = self._store.metadata.get_volume(name)
        if existing is None and name not in planned:
            labels = {ANONYMOUS_LABEL: ""} if anonymous else dict(spec.labels)
            plan.new_volumes.append((name, labels))
            planned.add(name)
        options = json.loads(existing.options) if existing else {}
        if not spec.nocopy and not options and kind_in_image == "dir":
            plan.copy_up.append((name, spec.target))
        plan.oci.append(self._volume_mount(name, options, spec.target, spec.read_only))
        plan.records.append({
            "Type": "volume", "Name": name, "Source": str(self._store.paths.volume_data(name)),
            "Destination": spec.target, "Driver": "local", "Mode": spec.mode,
            "RW": not spec.read_only, "Propagation": ""})

    def _volume_mount(self, name: str, options: dict[str, str], target: str,
                      read_only: bool) -> dict[str, Any]:
        ro = ["ro"] if read_only else []
        if options.get("type") and "bind" not in options.get("o", "").split(","):
            # The local driver's filesystem (type=tmpfs, ...) is mounted as the volume.
            return {"destination": target, "type": options["type"],
                    "source": options.get("device") or options["type"],
                    "options": [o for o in options.get("o", "").split(",") if o] + ro}
        source = options.get("device") or str(self._store.paths.volume_data(name))
        return {"destination": target, "type": "bind", "source": source,
                "options": ["rbind", "rprivate", *ro]}

    def _plan_bind(self, plan: MountPlan, spec: MountSpec, kind_in_image: str) -> None:
        where = 'invalid mount config for type "bind"'
        try:
            st = os.stat(spec.source)
        except FileNotFoundError:
            if not spec.create_host_path:
                raise InvalidArgumentError(
                    f"{where}: bind source path does not exist: {spec.source}") from None
            _check_creatable(spec.source)
            plan.host_dirs.append(spec.source)
            st = None
        except NotADirectoryError:
            parent = _first_non_directory(spec.source)
            raise InvalidArgumentError(
                f"{where}: cannot use host path {spec.source}: {parent} is a file, "
                "not a directory") from None
        if st is not None and not stat.S_ISDIR(st.st_mode) and kind_in_image == "dir":
            raise InvalidArgumentError(
                f"{where}: cannot mount host file {spec.source} on {spec.target}, a directory "
                "in the image (a directory is needed there)")
        if st is not None and stat.S_ISDIR(st.st_mode) and kind_in_image == "file":
            raise InvalidArgumentError(
                f"{where}: cannot mount host directory {spec.source} on {spec.target}, a file "
                "in the image")
        propagation = spec.propagation or "rprivate"
        plan.oci.append({"destination": spec.target, "type": "bind", "source": spec.source,
                         "options": ["rbind", propagation]
                         + (["ro"] if spec.read_only else [])})
        plan.records.append({"Type": "bind", "Source": spec.source,
                             "Destination": spec.target, "Mode": spec.mode,
                             "RW": not spec.read_only, "Propagation": propagation})

    def _plan_inherited(self, plan: MountPlan, m: dict[str, Any]) -> None:
        ro = [] if m["RW"] else ["ro"]
        if m["Type"] == VOLUME:
            record = self._store.metadata.get_volume(m["Name"])
            if record is None:
                raise VolumeNotFoundError(f"No such volume: {m['Name']}")
            plan.oci.append(self._volume_mount(m["Name"], json.loads(record.options),
                                               m["Destination"], not m["RW"]))
        else:
            plan.oci.append({"destination": m["Destination"], "type": "bind",
                             "source": m["Source"],
                             "options": ["rbind", m.get("Propagation") or "rprivate", *ro]})
        plan.records.append(dict(m, Mode="ro" if not m["RW"] else m.get("Mode", "")))

    def apply(self, plan: MountPlan, img: Image) -> builtins.list[str]:
        """Make what :meth:`plan` decided (call it holding :meth:`lock`): host directories
        (owned by the invoking user), new volumes, copy-up of the image's content into empty
        volumes. Returns the volumes it created, for :meth:`rollback`."""
        created: list[str] = []
        made_dirs: list[str] = []
        new = dict(plan.new_volumes)
        try:
            for path in plan.host_dirs:
                made_dirs += _make_host_dirs(path)
            # Every volume the container names, including one removed since plan() looked.
            for name in dict.fromkeys(m["Name"] for m in plan.records if m["Type"] == VOLUME):
                if self._store.metadata.get_volume(name) is None:
                    self._create(name, new.get(name, {}))
                    created.append(name)
            pending = [(n, t) for n, t in plan.copy_up
                       if not any(self._ensure_dirs(n).iterdir())]
            if pending:
                self._copy_up(img, pending)
        except BaseException:
            self.rollback(created)
            for path in reversed(made_dirs):
                with contextlib.suppress(OSError):
                    os.rmdir(path)
            raise
        return created

    def rollback(self, created: builtins.list[str]) -> None:
        for name in created:
            with contextlib.suppress(OSError):
                self._discard(name)

    def _copy_up(self, img: Image, pending: builtins.list[tuple[str, str]]) -> None:
        """Docker's copy-up: the image's files at the mount path, with owners, modes, links
        and xattrs, copied into each new empty volume. The image's view is computed from its
        layer directories (:mod:`barque.merged`), never mounted, so any number of layers
        works; the path is resolved within the image first, so a symlink in it can never
        point the copy at the host."""
        from .merged import copy_merged

        layers = self._store.snapshots.lower_dirs(img.layers)
        for name, target in pending:
            resolved = overlay.resolve(layers, target)
            if resolved is None or overlay.entry_kind(layers, "/" + resolved) != "dir":
                continue
            try:
                copy_merged(layers, resolved.strip("/"), self._store.paths.volume_data(name))
            except OSError as e:
                raise InvalidArgumentError(
                    f"copying the image's content into the volume failed: {e}") from e


def volume_names(record: ContainerRecord) -> set[str]:
    """The names of the volumes mounted in the container of ``record``."""
    try:
        mounts = json.loads(record.config).get("Mounts") or []
    except ValueError:
        return set()
    return {m["Name"] for m in mounts if m.get("Type") == VOLUME and m.get("Name")}


def _docker_mount(spec: MountSpec) -> dict[str, Any]:
    """A ``--mount`` as Docker's HostConfig.Mounts shows it."""
    out: dict[str, Any] = {"Type": spec.type, "Source": spec.source, "Target": spec.target}
    if spec.read_only:
        out["ReadOnly"] = True
    if spec.type == VOLUME and (spec.nocopy or spec.labels):
        out["VolumeOptions"] = {k: v for k, v in (("NoCopy", spec.nocopy),
                                                   ("Labels", spec.labels)) if v}
    if spec.type == BIND and spec.propagation:
        out["BindOptions"] = {"Propagation": spec.propagation}
    if spec.type == TMPFS:
        opts = dict(o.split("=", 1) for o in spec.tmpfs_options if "=" in o)
        out["TmpfsOptions"] = {**({"SizeBytes": int(opts["size"])} if "size" in opts else {}),
                               **({"Mode": int(opts["mode"], 8)} if "mode" in opts else {})}
    return out


def _first_non_directory(path: str) -> str:
    current = "/"
    for part in [p for p in path.split("/") if p]:
        current = os.path.join(current, part)
        try:
            if not stat.S_ISDIR(os.stat(current).st_mode):
                return current
        except OSError:
            break
    return current


def _check_creatable(path: str) -> None:
    """A missing bind source can be made: its nearest existing ancestor is a directory."""
    parent = os.path.dirname(path)
    while parent != "/" and not os.path.lexists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise InvalidArgumentError(
            f'invalid mount config for type "bind": cannot create host directory {path}: '
            f"{parent} is a file, not a directory")


def _owner() -> tuple[int, int]:
    """Who a created host directory belongs to: the user who invoked barque through sudo
    (``SUDO_UID``/``SUDO_GID``), else the caller."""
    try:
        uid = int(os.environ["SUDO_UID"])
        gid = int(os.environ.get("SUDO_GID", os.getgid()))
        return uid, gid
    except (KeyError, ValueError):
        return os.getuid(), os.getgid()


def _make_host_dirs(path: str) -> list[str]:
    """``-v /host/path:...`` with a missing host path: create it and its missing parents
    (0755), owned by the invoking user rather than always root. Returns those it made."""
    uid, gid = _owner()
    missing = []
    current = path
    while not os.path.lexists(current):
        missing.append(current)
        current = os.path.dirname(current)
    made = []
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o755)
        except FileExistsError:
            continue  # made meanwhile by someone else: theirs
        made.append(directory)
        os.chown(directory, uid, gid)
    return made



__all__ = ["Volume", "VolumeService", "MountPlan", "ANONYMOUS_LABEL", "volume_names"]
