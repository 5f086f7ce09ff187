"""The container service: create, start, wait, stop, remove and list containers.

A container is a directory ``containers/<id>/`` (an OCI bundle: ``config.json``, the overlay's
``upper/`` and ``work/``, a ``rootfs/`` mount point, and the ``hostname``/``hosts``/
``resolv.conf`` files bound into it) plus one row in the metadata database. The Rust core
mounts the overlay inside the container's own mount namespace, so nothing is left mounted on
the host when the container's last process exits.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec

from . import arguments, overlay, procfs
from .diskusage import tree_size
from .errors import (
    ConflictError,
    ContainerNotFoundError,
    ContainerStartError,
    ImageNotFoundError,
    InvalidArgumentError,
)
from .store.metadata import ContainerRecord

TYPE_CHECKING = False  # typing itself costs start-up time; checkers see the imports
if TYPE_CHECKING:
    from contextlib import AbstractContextManager
    from typing import Any

    from .attach import AttachSession
    from .changes import Change, PathStat, TarStream
    from .engine import Engine
    from .images import Image
    from .models import (
        ContainerConfig,
        ContainerCreate,
        ContainerInspect,
        HostConfig,
        StoredContainer,
    )
    from .progress import Cancel, Progress
    from .runtime.cgroups import Cgroup
    from .runtime.spec import RunOptions
    from .store import Store

_HEX = frozenset("0123456789abcdef")


class CreateOptions(msgspec.Struct):
    """What ``barque create``/``run`` accept beyond the runtime options of the spec.

    ``open_stdin`` (``-i``) gives a supervised container a stdin fed by attach clients.
    ``log_driver`` is ``json-file`` (Docker's default) or ``none``; ``log_opts`` takes
    ``max-size`` (a size such as ``10m``) and ``max-file`` (a count, with ``max-size``)."""

    name: str | None = None
    auto_remove: bool = False
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    stop_signal: str | None = None
    open_stdin: bool = False
    log_driver: str = "json-file"
    log_opts: dict[str, str] = msgspec.field(default_factory=dict)
    #: ``-v`` specs (or docker-py's ``{source: {"bind": target, "mode": "ro"}}``),
    #: ``--mount`` specs (CSV strings or dicts with Docker's keys), ``--tmpfs`` specs (or a
    #: ``{path: options}`` dict), ``--volumes-from`` ``CONTAINER[:ro|rw]``: see
    #: :mod:`barque.runtime.mountspec` and :meth:`barque.volumes.VolumeService.plan`.
    volumes: Any = msgspec.field(default_factory=list)
    mounts: list[Any] = msgspec.field(default_factory=list)
    tmpfs: Any = msgspec.field(default_factory=list)
    volumes_from: list[str] = msgspec.field(default_factory=list)

    def wants_mounts(self) -> bool:
        return bool(self.volumes or self.mounts or self.tmpfs or self.volumes_from)


class _ExecFiles(msgspec.Struct, frozen=True):
    """What the native exec needs: the container's init, the files of its process section
    and seccomp filter (paths), its cgroups' ``cgroup.procs`` and the seccomp cache."""

    container_pid: int
    process: str
    seccomp: str | None
    cgroup_procs: list[str]
    seccomp_cache: str


class Container:
    """A container's record, read from the store when the object was made."""

    def __init__(self, service: ContainerService, record: ContainerRecord) -> None:
        self._service = service
        self._record = record
        #: What create had to say (Docker's create ``Warnings``): a ulimit clamped, say.
        self.warnings: list[str] = []

    def __repr__(self) -> str:
        return f"<Container {self.short_id} {self.name} {self.status}>"

    @property
    def id(self) -> str:
        return self._record.id

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def name(self) -> str:
        return self._record.name

    @property
    def status(self) -> str:
        return self._record.status

    @property
    def exit_code(self) -> int:
        return self._record.exit_code

    @property
    def pid(self) -> int:
        return self._record.pid

    @property
    def image_id(self) -> str:
        return self._record.image_id

    @property
    def image(self) -> str:
        """The image as the user named it at create (``ps``'s IMAGE column)."""
        return self._record.image

    @property
    def created(self) -> float:
        """Seconds since the epoch; ``started_at``/``finished_at`` likewise, 0 if never."""
        return self._record.created

    @property
    def started_at(self) -> float:
        return self._record.started_at

    @property
    def finished_at(self) -> float:
        return self._record.finished_at

    @property
    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = json.loads(self._record.config)
        return config

    def reload(self) -> Container:
        self._record = self._service._load(self.id)
        return self

    def start(self) -> Container:
        """Start it detached, under its supervisor (see :meth:`ContainerService.start`)."""
        return self._service.start(self.id)

    def restart(self, timeout: float = 10) -> Container:
        return self._service.restart(self.id, timeout)

    def pause(self) -> None:
        self._service.pause(self.id)

    def unpause(self) -> None:
        self._service.unpause(self.id)

    def exec(self, command: list[str], **kwargs: Any) -> int:
        """``docker exec``; see :meth:`ContainerService.exec`."""
        return self._service.exec(self.id, command, **kwargs)

    def top(self, ps_args: list[str] | None = None) -> tuple[list[str], list[list[str]]]:
        return self._service.top(self.id, ps_args)

    def logs(self, *, stdout: bool = True, stderr: bool = True, timestamps: bool = False,
             tail: int | None = None, since: float | str | None = None) -> bytes:
        """The container's log so far, as ``docker logs`` prints it (streams merged)."""
        return b"".join(
            (e.time.encode() + b" " if timestamps else b"") + e.data
            for e in self._service.logs(self.id, tail=tail, since=since)
            if (stdout and e.stream == "stdout") or (stderr and e.stream == "stderr"))

    def wait(self) -> int:
        return self._service.wait(self.id)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        self._service.kill(self.id, sig)

    def stop(self, timeout: float = 10) -> None:
        self._service.stop(self.id, timeout)

    def remove(self, force: bool = False, volumes: bool = False) -> None:
        self._service.remove(self.id, force=force, volumes=volumes)

    def __enter__(self) -> Container:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._service.remove(self.id, force=True, volumes=True)
        except ContainerNotFoundError:
            pass

    @property
    def model(self) -> StoredContainer:
        """The container's description, typed: its ``Config`` (merged with the image's),
        ``HostConfig``, ``NetworkingConfig`` and mount points, as created."""
        return _stored_of(self._record)

    @property
    def attrs(self) -> dict[str, Any]:
        """Docker-compatible ``inspect`` JSON (see :meth:`inspect`)."""
        from . import models

        attrs: dict[str, Any] = models.to_builtins(self.inspect())
        return attrs

    def inspect(self, size: bool = False) -> ContainerInspect:
        """``docker inspect``'s document; with ``size``, ``SizeRw`` and ``SizeRootFs``."""
        return _inspect_document(self._service, self._record, size)


def _stored(body: ContainerCreate, image_cfg: dict[str, Any], spec: dict[str, Any],
            plan: Any) -> StoredContainer:
    """What the container's row keeps: ``body`` as received, its ``Config`` merged with the
    image's and its defaults resolved the way Docker's inspect shows them (``NetworkMode``,
    ``ShmSize``, ``LogConfig``...), and its volume plan's mount points."""
    from . import models
    from .runtime.spec import DEFAULT_PATH, DEFAULT_SHM_SIZE

    host = body.host_config
    entrypoint: builtins.list[str] | None
    cmd: builtins.list[str] | None
    if body.entrypoint is not None:  # --entrypoint drops the image's Cmd (Docker's merge)
        entrypoint, cmd = body.entrypoint, body.cmd
    else:
        entrypoint = image_cfg.get("Entrypoint") or None
        cmd = body.cmd or image_cfg.get("Cmd") or None
    user_keys = {e.partition("=")[0] for e in body.env or []}
    env = [*(body.env or []), *(e for e in image_cfg.get("Env") or []
                                if isinstance(e, str) and e.partition("=")[0] not in user_keys)]
    if not any(e.startswith("PATH=") for e in env):  # what the process gets, shown
        env.insert(0, "PATH=" + DEFAULT_PATH)
    exposed = {**(image_cfg.get("ExposedPorts") or {}), **(body.exposed_ports or {})}
    stop_signal = body.stop_signal or image_cfg.get("StopSignal") or models.UNSET
    linux = spec.get("linux") or {}
    config = msgspec.structs.replace(
        body.config(), hostname=spec.get("hostname") or body.hostname,
        user=body.user or image_cfg.get("User") or "", env=env,
        cmd=list(cmd) if cmd is not None else None,
        entrypoint=list(entrypoint) if entrypoint is not None else None,
        working_dir=body.working_dir or image_cfg.get("WorkingDir") or "",
        labels={**(image_cfg.get("Labels") or {}), **(body.labels or {})},
        exposed_ports=exposed or models.UNSET, stop_signal=stop_signal,
        volumes=(plan.config_volumes or None) if plan else body.volumes)
    resolved = msgspec.structs.replace(
        host, network_mode=host.network_mode or "none",
        log_config=models.LogConfig(type=host.log_config.type or "json-file",
                                    config=dict(host.log_config.config or {})),
        restart_policy=models.RestartPolicy(
            name=host.restart_policy.name or "no",
            maximum_retry_count=host.restart_policy.maximum_retry_count),
        cgroupns_mode=host.cgroupns_mode or "private", ipc_mode=host.ipc_mode or "private",
        shm_size=host.shm_size or DEFAULT_SHM_SIZE, runtime=host.runtime or "barque",
        masked_paths=list(linux.get("maskedPaths") or []),
        readonly_paths=list(linux.get("readonlyPaths") or []))
    mounts = models.convert(plan.records, builtins.list[models.MountPoint]) if plan else []
    return models.StoredContainer(config=config, host_config=resolved,
                                  networking_config=body.networking_config, mounts=mounts)


def _inspect_document(service: ContainerService, record: ContainerRecord,
                      size: bool) -> ContainerInspect:
    from . import models

    stored = _stored_of(record)
    paths = service._store.paths
    bundle = paths.container(record.id)
    running = record.status in ("running", "paused")
    command = command_of(stored.config)
    host = stored.host_config
    network = host.network_mode or "none"
    try:
        lower = ":".join(str(p) for p in service._image_layers(
            service._engine.images.get(record.image_id)))
    except ImageNotFoundError:
        lower = ""
    sandbox_key = ""
    if running:  # barque's sandbox is the container's own network namespace, or the host's
        sandbox_key = "/proc/1/ns/net" if network == "host" else f"/proc/{record.pid}/ns/net"
    restart_count, restarting = 0, False
    if host.restart_policy.restarts:
        from . import restarts

        restart_count = restarts.restart_count(bundle)
        restarting = record.status == "exited" and restarts.restarting(paths.root, bundle)
    document = models.ContainerInspect(
        id=record.id, created=_rfc3339(record.created),
        path=command[0] if command else "", args=command[1:], restart_count=restart_count,
        state=models.ContainerState(
            # Docker's: a container waiting out its restart delay counts as running.
            status="restarting" if restarting else record.status,
            running=running or restarting, restarting=restarting,
            paused=record.status == "paused",
            oom_killed=record.oom_killed, pid=record.pid if running else 0,
            exit_code=record.exit_code, error=record.error,
            started_at=_rfc3339(record.started_at) if record.started_at
            else "0001-01-01T00:00:00Z",
            finished_at=_rfc3339(record.finished_at) if record.finished_at
            else "0001-01-01T00:00:00Z"),
        image=record.image_id, resolv_conf_path=str(bundle / "resolv.conf"),
        hostname_path=str(bundle / "hostname"), hosts_path=str(bundle / "hosts"),
        log_path=str(paths.container_log(record.id))
        if host.log_config.type == "json-file" else "",
        name="/" + record.name, driver="overlay2", platform="linux", host_config=host,
        graph_driver=models.DriverData(name="overlay2", data={
            "LowerDir": lower, "MergedDir": str(bundle / "rootfs"),
            "UpperDir": str(bundle / "upper"), "WorkDir": str(bundle / "work")}),
        mounts=list(stored.mounts or []), config=stored.config,
        network_settings=models.NetworkSettings(
            sandbox_id=record.id if running else "", sandbox_key=sandbox_key,
            networks={network: models.EndpointSettings()}))
    if size:
        rw, root = service.sizes(Container(service, record))
        document.size_rw, document.size_root_fs = rw, root
    return document


#: The description create just encoded, by its bytes: a ``run`` reads its container back
#: (cgroup, start, removal) without decoding what it made. Never mutated by its readers.
_last_stored: tuple[bytes, StoredContainer] | None = None


def _stored_of(record: ContainerRecord) -> StoredContainer:
    """A row's container description (rows of every format barque has written)."""
    from . import models

    if _last_stored is not None and _last_stored[0] is record.config:
        return _last_stored[1]
    return models.decode(record.config, models.StoredContainer)


def _encode_stored(stored: StoredContainer) -> bytes:
    from . import models

    global _last_stored
    encoded = models.encode(stored)
    _last_stored = (encoded, stored)
    return encoded


def command_of(config: ContainerConfig) -> builtins.list[str]:
    """Entrypoint + Cmd: what the container runs (inspect's Path and Args, ps's COMMAND)."""
    entrypoint = config.entrypoint or []
    if entrypoint == [""]:
        entrypoint = []
    return [*entrypoint, *(config.cmd or [])]


def _resolv_conf(host_resolv: bytes, host: HostConfig) -> bytes:
    """The container's resolv.conf: the host's, with ``Dns`` replacing its nameservers,
    ``DnsSearch`` its search domains and ``DnsOptions`` its options (Docker's rules)."""
    replaced = {key: value for key, value in (
        ("nameserver", [f"nameserver {d}" for d in host.dns or []]),
        ("search", [f"search {' '.join(host.dns_search)}"] if host.dns_search else []),
        ("options", [f"options {' '.join(host.dns_options)}"] if host.dns_options else []),
    ) if value}
    if not replaced:
        return host_resolv
    kept = []
    for line in host_resolv.decode(errors="replace").splitlines():
        word = line.split(None, 1)[0] if line.split() else ""
        if word in replaced or (word == "domain" and "search" in replaced):
            continue
        kept.append(line)
    for lines in replaced.values():
        kept += lines
    return ("\n".join(kept) + "\n").encode()


def _extra_hosts(entries: builtins.list[str]) -> str:
    """``ExtraHosts`` (``name:ip``, or Docker 25's ``name=ip``) as /etc/hosts lines."""
    lines = []
    for entry in entries:
        if "=" in entry:
            name, _, address = entry.partition("=")
        else:
            name, _, address = entry.partition(":")
        if not name or not address:
            raise InvalidArgumentError(
                f"HostConfig.ExtraHosts: invalid entry {entry!r}: want HOST:IP")
        lines.append(f"{address.strip('[]')}\t{name}\n")
    return "".join(lines)


def _rfc3339(ts: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")


_ADJECTIVES = ("admiring", "bold", "brave", "calm", "clever", "dazzling", "eager", "elastic",
               "fervent", "festive", "gentle", "happy", "jolly", "keen", "kind", "lucid",
               "modest", "nimble", "optimistic", "peaceful", "quiet", "relaxed", "serene",
               "sharp", "stoic", "swift", "tender", "upbeat", "vibrant", "vivid", "wise", "zen")
_NAMES = ("albattani", "babbage", "bohr", "curie", "darwin", "dijkstra", "einstein", "euler",
          "fermat", "feynman", "galileo", "goldberg", "hamilton", "hopper", "jepsen", "kepler",
          "knuth", "lamport", "liskov", "lovelace", "mayer", "meitner", "noether", "pascal",
          "ritchie", "shannon", "shockley", "tesla", "thompson", "turing", "wozniak", "yalow")


def _pick(words: tuple[str, ...]) -> str:
    # os.urandom rather than `secrets`, whose import (hmac, hashlib) `run` would pay for.
    return words[int.from_bytes(os.urandom(2), "big") % len(words)]


#: In a container's directory while ``restart`` stops and starts it: the restarting pid.
_RESTARTING = "restarting"


def _write_new(path: str, data: bytes, mode: int) -> None:
    """A new file (never an existing one: O_EXCL) with ``data``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def _generated_name(attempt: int = 0) -> str:
    """Docker's kind of name; after a clash, with a digit (as Docker), then a hex suffix."""
    name = f"{_pick(_ADJECTIVES)}_{_pick(_NAMES)}"
    if attempt >= 10:
        return f"{name}_{os.urandom(3).hex()}"
    return f"{name}{os.urandom(1)[0] % 10}" if attempt else name


class ContainerService:
    """Containers in one store. Obtain it as ``Engine(...).containers``."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @property
    def _store(self) -> Store:
        return self._engine.store

    # -- lookup ---------------------------------------------------------------------------

    def resolve_id(self, name_or_id: str) -> str:
        meta = self._store.metadata
        text = arguments.text(name_or_id, "name_or_id").removeprefix("/")
        found = meta.container_for_name(text)
        if found:
            return found
        if text and set(text) <= _HEX:
            matches = meta.container_ids_by_prefix(text)
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise ContainerNotFoundError(f"multiple containers match prefix {text!r}")
        raise ContainerNotFoundError(f"No such container: {name_or_id}")

    def _load(self, container_id: str) -> ContainerRecord:
        record = self._store.metadata.get_container(container_id)
        if record is None:
            raise ContainerNotFoundError(f"No such container: {container_id}")
        repaired = self._repair(record)
        if repaired is None:
            raise ContainerNotFoundError(f"No such container: {container_id}")
        return repaired

    def get(self, name_or_id: str) -> Container:
        return Container(self, self._load(self.resolve_id(name_or_id)))

    def list(self, all: bool = False,
             filters: dict[str, list[str]] | None = None) -> list[Container]:
        """Containers, newest first: running ones, or ``all``. ``filters`` as ``docker ps
        --filter``: ``status``, ``name`` (substring), ``id`` (prefix), ``label`` (``k`` or
        ``k=v``), ``ancestor`` (an image name or ID), ``volume`` (a volume name or a mount
        destination); values of one key are OR-ed, keys AND-ed.
        A status filter implies ``all``, as in Docker."""
        filters = arguments.filters(filters) or {}
        unknown = set(filters) - {"status", "name", "id", "label", "ancestor", "volume"}
        if unknown:
            raise InvalidArgumentError(f"invalid filter '{sorted(unknown)[0]}'")
        ancestors = {self._engine.images.resolve_id(v) for v in filters.get("ancestor", [])
                     if self._engine.images.exists(v)}
        out = []
        for stored in self._store.metadata.containers():
            record = self._repair(stored)
            if record is None:  # an --rm container whose supervisor died: removed now
                continue
            if not (all or "status" in filters or record.status in ("running", "paused")):
                continue
            container = Container(self, record)
            if _matches(container, filters, ancestors):
                out.append(container)
        return out

    def sizes(self, container: Container) -> tuple[int, int]:
        """(bytes in the container's writable layer, those plus its image's): ``ps -s``."""
        rw = tree_size(self._store.paths.container(container.id) / "upper")
        try:
            image_size = self._engine.images.get(container.image_id).size
        except ImageNotFoundError:
            image_size = 0
        return rw, rw + image_size

    def rename(self, name_or_id: str, new_name: str) -> None:
        """Give a container a new name; Docker's conflict error if the name is taken."""
        arguments.text(new_name, "new_name")
        container_id = self.resolve_id(name_or_id)
        _validate_name(new_name)
        owner = self._store.metadata.rename_container(container_id, new_name)
        if owner is not None:
            raise ConflictError(_name_conflict(new_name, owner))

    def prune(self) -> tuple[builtins.list[str], int]:
        """Remove every container that is not running; returns their IDs and the bytes their
        writable layers held."""
        removed, reclaimed = [], 0
        for container in self.list(all=True):
            if container.status in ("running", "paused"):
                continue
            reclaimed += tree_size(self._store.paths.container(container.id) / "upper")
            self.remove(container.id)
            removed.append(container.id)
        return removed, reclaimed

    def _repair(self, record: ContainerRecord) -> ContainerRecord | None:
        """A 'running' container whose process is gone (or whose PID was reused) is recorded
        as exited -- with the code its supervisor recorded, else 255 -- and its cgroup
        released: the books never show a ghost. An ``--rm`` container whose supervisor
        died before removing it is removed (None)."""
        from .runtime import supervisor

        if record.status not in ("running", "paused"):
            return record
        # A zombie still counts as running: its parent (a foreground `run`, or the
        # supervisor) is about to reap it and record the real exit code. A start time of 0
        # was recorded for a process already gone when its start was booked (a quick
        # `echo`): gone, whatever runs under that pid now.
        if record.pid and record.pid_start \
                and procfs.start_time(record.pid) == record.pid_start:
            return record
        state = self._store.paths.run_state(record.id)
        exit_record = supervisor.read_exit(state)
        if exit_record is None and supervisor.shim_alive(state):
            # Exited a moment ago: the supervisor is draining its output, then records it.
            deadline = time.monotonic() + 2
            while exit_record is None and time.monotonic() < deadline \
                    and supervisor.shim_alive(state):
                time.sleep(0.01)
                exit_record = supervisor.read_exit(state)
        if exit_record is not None:
            self._finish(record.id, exit_record.exit_code, exit_record.finished_at)
        else:
            self._finish(record.id, record.exit_code or 255, time.time(),
                         error="container process disappeared")
        updated = self._store.metadata.get_container(record.id)
        if updated is not None and not supervisor.shim_alive(state) \
                and _stored_of(updated).host_config.auto_remove:
            self._remove_stopped(record.id, volumes=True)
            return None
        return updated

    def _finish(self, container_id: str, exit_code: int, finished_at: float,
                error: str = "") -> None:
        """Record the container as exited and release its cgroup (idempotent)."""
        oom_killed = self._release_cgroup(container_id)
        fields: dict[str, Any] = dict(status="exited", exit_code=exit_code, pid=0,
                                      finished_at=finished_at, oom_killed=oom_killed)
        if error:
            fields["error"] = error
        self._store.metadata.update_container(container_id, **fields)
        from . import restarts

        restarts.notify_exit(self._store.paths.root, container_id)  # its restart policy

    # -- create ---------------------------------------------------------------------------

    def create(self, image: str, command: builtins.list[str] | None = None, *,
               options: RunOptions | None = None, create: CreateOptions | None = None,
               pull: bool = False, progress: Any = None, volumes: Any = None,
               mounts: builtins.list[Any] | None = None) -> Container:
        """Create (but do not start) a container from ``image``. With ``pull``, a missing
        image is pulled first, as ``docker run`` does. ``volumes`` (``-v``) and ``mounts``
        (``--mount``) add to ``create``'s (see :class:`CreateOptions`). The arguments
        become a :class:`~barque.models.ContainerCreate` (see :meth:`create_from`)."""
        body, create = self._body(image, command, options, create, volumes, mounts)
        return self.create_from(body, name=create.name, pull=pull, progress=progress)

    def _body(self, image: str, command: builtins.list[str] | None, options: RunOptions | None,
              create: CreateOptions | None, volumes: Any, mounts: builtins.list[Any] | None
              ) -> tuple[ContainerCreate, CreateOptions]:
        """The create body the older arguments describe, and the CreateOptions they add up
        to."""
        from .models.options import body_from_options
        from .runtime.spec import RunOptions

        arguments.text(image, "image")
        command = arguments.command(command, "command")
        options = arguments.run_options(options) or RunOptions()
        arguments.create_options(create)
        arguments.mount_specs(volumes, "volumes", mapping=True)
        arguments.mount_specs(mounts, "mounts")
        if command is not None:
            options.command = command
        create = create or CreateOptions()
        if volumes or mounts:
            create = msgspec.structs.replace(
                create, volumes=_as_list(create.volumes) + _as_list(volumes),
                mounts=list(create.mounts) + list(mounts or []))
        return body_from_options(image, options, create), create

    def create_from(self, body: ContainerCreate, *, name: str | None = None, pull: bool = False,
                    progress: Any = None) -> Container:
        """Create (but do not start) the container ``body`` describes: Docker's
        ``POST /containers/create`` (``name`` is its query parameter; None: a generated
        one). With ``pull``, a missing ``body.image`` is pulled first. Every field is kept
        (``inspect`` shows them); one barque would have to ignore is refused with an
        InvalidArgumentError naming it (``HostConfig.PortBindings: ...``)."""
        from . import models
        from .models.options import mount_csv
        from .models.support import refuse_unsupported
        from .runtime.spec import build_spec_from

        if not isinstance(body, models.ContainerCreate):
            raise arguments.wrong_type("body", "a barque.models.ContainerCreate", body)
        arguments.optional_text(name, "name")
        refuse_unsupported(body)
        image = arguments.text(body.image, "body.Image")
        if not image:
            raise InvalidArgumentError("Config.Image: an image is required")
        images = self._engine.images
        try:
            img = images.get(image)
        except ImageNotFoundError:
            if not pull:
                raise
            img = images.pull(image, progress=progress)
        container_id = os.urandom(32).hex()
        # A generated name is only checked by add_container (atomic, and it draws another on
        # a clash); a chosen one is checked up front, before anything is made for it.
        chosen = name.removeprefix("/") if name else None
        name = chosen or _generated_name()
        _validate_name(name)
        if chosen:
            self._check_name_free(name)
        bundle = self._store.paths.container(container_id)
        host = body.host_config
        _validate_log_config(host.log_config.type or "json-file",
                             dict(host.log_config.config or {}))
        if body.stop_signal:
            parse_signal(body.stop_signal)
        image_cfg = img.config.get("config") or {}
        plan = None
        requested = [*(host.binds or []), *(body.volumes or {})]
        mount_requests = [mount_csv(m) for m in host.mounts or []]
        tmpfs = host.tmpfs or {}
        if requested or mount_requests or tmpfs or host.volumes_from \
                or image_cfg.get("Volumes"):
            # Every mount is checked before anything (volume, directory, bundle) is made.
            plan = self._engine.volumes.plan(
                img, volumes=requested, mounts=mount_requests, tmpfs=tmpfs,
                volumes_from=list(host.volumes_from or []))
        lowers = self._image_layers(img)
        warnings: builtins.list[str] = []
        spec = build_spec_from(image_cfg, body, lambda path: _layer_file(tuple(lowers), path),
                               container_id, plan.oci if plan else (), warnings)
        stored = _stored(body, image_cfg, spec, plan)
        if host.init:
            _add_init(spec)
        created_volumes: builtins.list[str] = []
        held = contextlib.ExitStack()
        try:
            if plan:
                # Held until the record exists, so a volume rm/prune cannot take a volume
                # this container is about to use.
                held.enter_context(self._engine.volumes.lock())
                created_volumes = self._engine.volumes.apply(plan, img)
            self._make_bundle(bundle, lowers, spec, host, discard_upper=host.auto_remove)
            record = ContainerRecord(
                id=container_id, name=name, image_id=img.id, image=image, created=time.time(),
                config=_encode_stored(stored), status="created", pid=0, pid_start=0,
                exit_code=0, started_at=0.0, finished_at=0.0, oom_killed=False, error="")
            for attempt in range(1, 21):
                owner = self._store.metadata.add_container(record)
                if owner is None:
                    break
                if chosen:  # the user's choice: Docker's conflict error
                    raise ConflictError(_name_conflict(name, owner))
                # A generated name another process took meanwhile: draw another.
                record = msgspec.structs.replace(record, name=_generated_name(attempt))
            else:
                raise ConflictError("could not find a free container name")
        except BaseException:
            _remove_tree(bundle)
            if created_volumes:
                self._engine.volumes.rollback(created_volumes)
            raise
        finally:
            held.close()
        container = Container(self, record)
        container.warnings = warnings
        return container

    def _check_name_free(self, name: str) -> None:
        owner = self._store.metadata.container_for_name(name)
        if owner:
            raise ConflictError(_name_conflict(name, owner))

    def _image_layers(self, img: Image) -> builtins.list[Path]:
        """The image's unpacked layers, top first (the overlay's lower dirs)."""
        return self._store.snapshots.lower_dirs(img.layers)

    def _make_bundle(self, bundle: Path, lowers: builtins.list[Path], spec: dict[str, Any],
                     host: HostConfig, *, discard_upper: bool = False) -> None:
        """The container's directory: upper/work/rootfs, its /etc files (with ``host``'s
        ``Dns*`` and ``ExtraHosts``), ``config.json``.
        ``discard_upper`` (``--rm``): the overlay is mounted volatile, so stopping the
        container does not sync the store's filesystem for an upper about to be deleted."""
        os.makedirs(bundle, 0o700)
        os.chmod(bundle, 0o700)  # makedirs' mode is masked by the umask
        for sub in ("upper", "work", "rootfs"):
            os.mkdir(f"{bundle}/{sub}", 0o700 if sub == "work" else 0o755)
        self._init_layer(bundle / "upper", lowers)
        hostname = spec.get("hostname") or bundle.name[:12]
        try:
            fd = os.open("/etc/resolv.conf", os.O_RDONLY | os.O_CLOEXEC)
            try:
                resolv = os.read(fd, 1 << 16)
            finally:
                os.close(fd)
        except OSError:
            resolv = b""
        files = {
            "hostname": f"{hostname}\n".encode(),
            "hosts": ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                      f"127.0.1.1\t{hostname}\n"
                      + _extra_hosts(host.extra_hosts or [])).encode(),
            "resolv.conf": _resolv_conf(resolv, host),
        }
        for name, content in files.items():
            _write_new(f"{bundle}/{name}", content, 0o644)
            spec.setdefault("mounts", []).append({
                "destination": f"/etc/{name}", "type": "bind", "source": f"{bundle}/{name}",
                "options": ["rbind", "rprivate"] + (["ro"] if host.readonly_rootfs else [])})
        spec["root"] = {"path": "rootfs", "readonly": bool(host.readonly_rootfs)}
        spec.setdefault("annotations", {}).update({
            "org.barque.overlay.lower": ":".join(str(p) for p in lowers),
            "org.barque.overlay.upper": str(bundle / "upper"),
            "org.barque.overlay.work": str(bundle / "work"),
        })
        if discard_upper:
            spec["annotations"]["org.barque.overlay.volatile"] = "true"
        # Written in place, not synced: nobody reads this bundle before the container's record
        # exists (the commit point, added after), and a bundle lost to a power cut fails its
        # next start with a clear error; run --rm would pay two fsyncs for nothing. Compact:
        # only json's C encoder is fast, and it does not indent (the seccomp profile makes this
        # document large).
        _write_new(f"{bundle}/config.json", json.dumps(spec, separators=(",", ":")).encode(),
                   0o600)

    def _init_layer(self, upper: Path, layers: builtins.list[Path]) -> None:
        """What Docker's init layer adds to every container, so that tools relying on it
        work: ``/etc/mtab -> /proc/mounts`` and an empty ``/.dockerenv``. Written into the
        container's upper dir; ``/etc`` there copies the image's owner and mode so the merged
        view of ``/etc`` is unchanged."""
        import stat

        etc_meta, has_mtab = _etc_facts(tuple(layers))
        (upper / ".dockerenv").touch(mode=0o755)
        os.chmod(upper / ".dockerenv", 0o755)
        if etc_meta is None:
            return  # no /etc directory in the image: nothing to link into
        (upper / "etc").mkdir(mode=0o755)
        os.chmod(upper / "etc", stat.S_IMODE(etc_meta.st_mode))
        os.chown(upper / "etc", etc_meta.st_uid, etc_meta.st_gid)
        if not has_mtab:  # else the image has its own
            os.symlink("/proc/mounts", upper / "etc" / "mtab")

    def export(self, name_or_id: str, out: Any) -> None:
        """Write the container's root filesystem (image layers plus its changes) to the binary
        file ``out`` as a tar, as ``docker export`` does. The overlay's view is computed from
        the layer directories (whiteouts and opaque dirs applied), not mounted: no page-sized
        option string to overflow with many layers, and nothing mounted on the host."""
        import tarfile

        record = self._load(self.resolve_id(name_or_id))
        img = self._engine.images.get(record.image_id)
        bundle = self._store.paths.container(record.id)
        layers = [bundle / "upper"] + [self._store.snapshots.path(x.chain_id)
                                       for x in reversed(img.layers)]
        from .merged import merged_tree

        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for arcname, path in merged_tree(layers):
                tar.add(path, arcname=arcname, recursive=False)

    # -- lifecycle ------------------------------------------------------------------------

    def _lock(self, container_id: str) -> AbstractContextManager[None]:
        """Serialises a start against its supervisor's exit command (``cleanup``), which may
        run before the start has recorded the container as running."""
        from .store import file_lock

        return file_lock(self._store.paths.lock("container-" + container_id))

    def _cgroup_for(self, record: ContainerRecord, fresh: bool = False) -> Cgroup:
        """The container's cgroup, made with its limits and its spec's device rules.
        ``fresh``: created by this process and never started, so no leftover of an earlier
        start can exist."""
        from .runtime import cgroups

        host = _stored_of(record).host_config
        limits = cgroups.CgroupLimits(memory=host.memory or None, pids=host.pids_limit or None,
                                      cpus=host.nano_cpus / 1e9 if host.nano_cpus else None)
        if host.privileged or host.devices:
            # The rules made at create, with the --device numbers found then.
            spec = json.loads((self._store.paths.container(record.id) / "config.json")
                              .read_bytes())
            devices = ((spec.get("linux") or {}).get("resources") or {}).get("devices") or []
        else:  # what the spec says, without parsing it on every start
            from .runtime.spec import default_device_rules

            devices = default_device_rules()
        return cgroups.create(record.id, limits, fresh=fresh, devices=devices)

    def start(self, name_or_id: str, *, hold_output: bool = False,
              tty_size: tuple[int, int] | None = None,
              keep_restart_count: bool = False) -> Container:
        """Start a created (or exited) container detached, under its own supervisor
        (``barque-shim``), which logs its output, records its exit and survives this process.
        ``hold_output`` keeps the output for the first attach client (``start -a``,
        ``run -it``). Errors in the container's set-up raise ``ContainerStartError`` with
        Docker's exit code (127, 126, 125). ``keep_restart_count``: a restart policy's start
        (a user's clears the count and a stop by hand, see :mod:`barque.restarts`)."""
        from .runtime import supervisor

        container_id = self.resolve_id(name_or_id)
        with self._lock(container_id):
            record = self._load(container_id)
            if record.status in ("running", "paused"):
                return Container(self, record)
            cfg = _stored_of(record)
            if not keep_restart_count and cfg.host_config.restart_policy.restarts:
                from . import restarts

                restarts.record_user_start(self._store.paths.container(container_id))
            log_opts = dict(cfg.host_config.log_config.config or {})
            json_file = cfg.host_config.log_config.type == "json-file"
            console = cfg.host_config.console_size
            if tty_size is None and console and len(console) == 2 and all(console):
                tty_size = (console[0], console[1])  # the create body's ConsoleSize
            if tty_size and cfg.config.tty:
                self._set_console_size(container_id, tty_size)
            cgroup = self._cgroup_for(record)
            state = self._store.paths.run_state(container_id)
            options = supervisor.ShimOptions(
                bundle=self._store.paths.container(container_id), state_dir=state,
                log_path=self._store.paths.container_log(container_id) if json_file else None,
                log_max_size=_log_max_size(log_opts), log_max_file=_log_max_file(log_opts),
                stdin=cfg.config.open_stdin, hold_output=hold_output,
                tty_size=tty_size, cgroup_procs=cgroup.procs,
                seccomp_cache=self._store.paths.seccomp_cache,
                exit_command=[sys.executable, "-m", "barque", "--root",
                              str(self._store.paths.root), "container", "cleanup",
                              container_id])
            # Taken before the start: the supervisor records the exit of a command that ends
            # at once before this process records the start, and FinishedAt must not come
            # before StartedAt.
            started_at = time.time()
            try:
                started = supervisor.start(options)
            except BaseException as e:
                cgroup.remove()
                self._record_start_failure(container_id, e)
                raise
            self._store.metadata.update_container(
                container_id, status="running", pid=started.pid,
                pid_start=procfs.start_time(started.pid), started_at=started_at,
                finished_at=0.0, exit_code=0, error="", oom_killed=False)
            return Container(self, self._load(container_id))

    def _record_start_failure(self, container_id: str, error: BaseException) -> None:
        """What Docker records when a container's process cannot start: the status stays
        what it was (``created`` for a new container, so ``ps -a`` shows ``Created`` and
        ``FinishedAt`` stays unset), ``ExitCode`` is the start's (127 not found, 126 not
        executable, 125 otherwise) and ``State.Error`` its message."""
        if not isinstance(error, Exception):
            return  # interrupted: nothing failed to start
        code = error.exit_code if isinstance(error, ContainerStartError) else 125
        self._store.metadata.update_container(container_id, exit_code=code,
                                              error=" ".join(str(error).split()))

    def _set_console_size(self, container_id: str, size: tuple[int, int]) -> None:
        """The terminal's size in the bundle (OCI ``process.consoleSize``): the runtime sets
        it on the pty before the program starts, so its first look sees the right size."""
        from .store.content import write_atomic

        path = self._store.paths.container(container_id) / "config.json"
        spec = json.loads(path.read_bytes())
        spec["process"]["consoleSize"] = {"height": size[0], "width": size[1]}
        write_atomic(path, json.dumps(spec, separators=(",", ":")).encode(), self._store.paths.tmp,
                     mode=0o600, sync=False)

    def _start_foreground(self, record: ContainerRecord, *, stdin: int, stdout: int,
                          stderr: int) -> tuple[int, int, Any]:
        """Start a container just created with the given fds as its stdio, as a child of
        this process (no supervisor, no log): ``run`` in the foreground without a tty.
        Returns its pid, the pid's kernel start time and its cgroup."""
        from . import _native
        from .native import container_errors

        cgroup = self._cgroup_for(record, fresh=True)
        try:
            with container_errors():
                pid = _native.spawn(str(self._store.paths.container(record.id)),
                                   stdin_fd=stdin, stdout_fd=stdout, stderr_fd=stderr,
                                   cgroup_procs=cgroup.procs,
                                   seccomp_cache_dir=str(self._store.paths.seccomp_cache))
        except BaseException as e:
            cgroup.remove()
            self._record_start_failure(record.id, e)
            raise
        pid_start = procfs.start_time(pid)
        self._store.metadata.update_container(
            record.id, status="running", pid=pid, pid_start=pid_start, started_at=time.time(),
            finished_at=0.0, exit_code=0, error="", oom_killed=False)
        return pid, pid_start, cgroup

    def wait(self, name_or_id: str) -> int:
        """Wait for the container to exit and return its exit code (128+N for signal N)."""
        from .runtime import supervisor

        container_id = self.resolve_id(name_or_id)
        record = self._load(container_id)
        if record.status not in ("running", "paused"):
            return record.exit_code
        state = self._store.paths.run_state(container_id)
        if (state / "shim.pid").exists():
            procfs.wait_gone(record.pid, record.pid_start)
            # Gone may mean a zombie its supervisor has yet to reap: the exit code is known
            # once the supervisor has recorded it.
            deadline = time.monotonic() + 10
            exit_record = supervisor.read_exit(state)
            while exit_record is None and supervisor.shim_alive(state) \
                    and time.monotonic() < deadline:
                time.sleep(0.005)
                exit_record = supervisor.read_exit(state)
            current = self._store.metadata.get_container(container_id)
            if current is not None and current.status in ("running", "paused"):
                if exit_record is not None:
                    self._finish(container_id, exit_record.exit_code, exit_record.finished_at)
                else:
                    self._finish(container_id, record.exit_code or 255, time.time(),
                                 error="container process disappeared")
            return self._load(container_id).exit_code
        code = procfs.wait_exit(record.pid, record.pid_start)
        self._finish(container_id, code, time.time())
        return code

    def _release_cgroup(self, container_id: str, cgroup: Cgroup | None = None) -> bool:
        """Whether the container was OOM-killed; removes its cgroup (best effort: a cgroup
        still busy is left for ``remove``). ``cgroup``: the one this process made for it,
        else it is looked up."""
        from .runtime import cgroups

        if cgroup is None:
            cgroup = cgroups.open_existing(container_id)
        oom_killed = cgroup.oom_killed()
        try:
            cgroup.remove()
        except OSError:
            pass
        return oom_killed

    def kill(self, name_or_id: str, sig: int = signal.SIGKILL) -> None:
        sig = parse_signal(arguments.signal(sig))
        record = self._load(self.resolve_id(name_or_id))
        if record.status not in ("running", "paused"):
            raise ConflictError(f"Container {record.id} is not running")
        self._mark_stopped_by_hand(record)
        self._signal(record, sig)

    def _mark_stopped_by_hand(self, record: ContainerRecord) -> None:
        """So a restart policy does not undo a ``stop`` or ``kill`` (see barque.restarts)."""
        if _stored_of(record).host_config.restart_policy.restarts:
            from . import restarts

            restarts.record_stop_by_hand(self._store.paths.container(record.id))

    def _signal(self, record: ContainerRecord, sig: int) -> None:
        try:
            os.kill(record.pid, sig)
        except ProcessLookupError:
            return
        if record.status == "paused" and sig == signal.SIGKILL:
            # A frozen task acts on SIGKILL only once thawed.
            self._thaw_quietly(record.id)

    def _thaw_quietly(self, container_id: str) -> None:
        from .runtime import cgroups

        with contextlib.suppress(OSError, InvalidArgumentError):
            cgroups.open_existing(container_id).freeze(False)
        self._store.metadata.update_container(container_id, status="running")

    def stop(self, name_or_id: str, timeout: float = 10) -> None:
        """Docker's stop: the stop signal, then SIGKILL after ``timeout`` seconds."""
        arguments.number(timeout, "timeout")
        record = self._load(self.resolve_id(name_or_id))
        self._mark_stopped_by_hand(record)  # also cancels a restart waiting out its delay
        if record.status not in ("running", "paused"):
            return
        stop_signal = _stored_of(record).config.stop_signal or "SIGTERM"
        sig = parse_signal(stop_signal)
        os.kill(record.pid, sig)
        if record.status == "paused":
            self._thaw_quietly(record.id)  # so the stop signal can be acted on
        if not procfs.wait_gone(record.pid, record.pid_start, timeout):
            with contextlib.suppress(ProcessLookupError):
                os.kill(record.pid, signal.SIGKILL)
        self.wait(record.id)

    def restart(self, name_or_id: str, timeout: float = 10) -> Container:
        """``docker restart``: stop (if running), then start detached. As with Docker, the
        stop does not remove a ``--rm`` container: its supervisor's exit command sees the
        restart under way (a marker naming this process) and leaves it. The new supervisor
        starts once the old one is gone, since both use the same state directory."""
        from .runtime import supervisor

        arguments.number(timeout, "timeout")
        container_id = self.resolve_id(name_or_id)
        marker = self._store.paths.container(container_id) / _RESTARTING
        old_shim = supervisor.shim_pid(self._store.paths.run_state(container_id))
        old_shim_start = procfs.start_time(old_shim) if old_shim else 0
        marker.write_text(str(os.getpid()))
        try:
            self.stop(container_id, timeout)
            if old_shim:
                procfs.wait_gone(old_shim, old_shim_start, 10)
            return self.start(container_id)
        except BaseException:
            with contextlib.suppress(Exception):  # the restart's own error is the one to raise
                if _stored_of(self._load(container_id)).host_config.auto_remove:
                    self._abandon(container_id, True)
            raise
        finally:
            with contextlib.suppress(FileNotFoundError):
                marker.unlink()

    def _restarting(self, container_id: str) -> bool:
        """Whether a live ``restart`` holds this container (see :meth:`restart`)."""
        try:
            pid = int((self._store.paths.container(container_id) / _RESTARTING).read_text())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return False
        return True

    def pause(self, name_or_id: str) -> None:
        """Freeze every process of the container (the cgroup freezer)."""
        from .runtime import cgroups

        record = self._load(self.resolve_id(name_or_id))
        if record.status == "paused":
            raise ConflictError(f"Container {record.id} is already paused")
        if record.status != "running":
            raise ConflictError(f"Container {record.id} is not running")
        cgroups.open_existing(record.id).freeze(True)
        self._store.metadata.update_container(record.id, status="paused")

    def unpause(self, name_or_id: str) -> None:
        from .runtime import cgroups

        record = self._load(self.resolve_id(name_or_id))
        if record.status != "paused":
            raise ConflictError(f"Container {record.id} is not paused")
        cgroups.open_existing(record.id).freeze(False)
        self._store.metadata.update_container(record.id, status="running")

    def top(self, name_or_id: str, ps_args: builtins.list[str] | None = None
            ) -> tuple[builtins.list[str], builtins.list[builtins.list[str]]]:
        """``docker top``: the host's ``ps`` (default ``-ef``) limited to the container's
        processes; returns the titles and the rows."""
        import subprocess

        from .runtime import cgroups

        arguments.optional_strings(ps_args, "ps_args")
        record = self._load(self.resolve_id(name_or_id))
        if record.status not in ("running", "paused"):
            raise ConflictError(f"Container {record.id} is not running")
        pids = set(cgroups.open_existing(record.id).pids()) or {record.pid}
        out = subprocess.run(["ps", *(ps_args or ["-ef"])], capture_output=True, text=True,
                             check=False)
        if out.returncode != 0:
            raise InvalidArgumentError(f"ps: {out.stderr.strip() or 'failed'}")
        lines = out.stdout.splitlines()
        if not lines:
            return [], []
        titles = lines[0].split()
        if "PID" not in titles:
            raise InvalidArgumentError("Couldn't find PID field in ps output")
        at = titles.index("PID")
        rows = []
        for line in lines[1:]:
            fields = line.split(None, len(titles) - 1)
            if len(fields) > at and fields[at].isdigit() and int(fields[at]) in pids:
                rows.append(fields)
        return titles, rows

    def logs(self, name_or_id: str, *, tail: int | None = None,
             since: float | str | None = None, until: float | str | None = None,
             follow: bool = False) -> Iterator[Any]:
        """The container's log entries (:class:`barque.logs.LogEntry`), oldest first; with
        ``follow``, then those written until the container stops."""
        from . import logs

        arguments.integer(tail, "tail")
        arguments.time_point(since, "since")
        arguments.time_point(until, "until")
        record = self._load(self.resolve_id(name_or_id))
        log_type = _stored_of(record).host_config.log_config.type
        if log_type != "json-file":
            raise InvalidArgumentError(
                f'configured logging driver does not support reading: "{log_type or "none"}"')
        since_t = logs.parse_since(since) if isinstance(since, str) else since
        until_t = logs.parse_since(until) if isinstance(until, str) else until

        def running() -> bool:
            current = self._store.metadata.get_container(record.id)
            repaired = self._repair(current) if current is not None else None
            return repaired is not None and repaired.status in ("running", "paused")

        return logs.entries(self._store.paths.container_log(record.id), tail=tail,
                            since=since_t, until=until_t, follow=follow, running=running)

    def exec(self, name_or_id: str, command: builtins.list[str], *,
             env: builtins.list[str] | None = None, user: str | None = None,
             workdir: str | None = None, tty: bool = False, privileged: bool = False,
             stdin: int | None = None, stdout: int = 1, stderr: int = 2, detach: bool = False,
             wait: bool = True) -> int:
        """``docker exec``: run ``command`` in the running container, in its namespaces and
        cgroup, with its capabilities, seccomp filter and no_new_privs (``privileged``: all
        capabilities, no filter). ``env`` entries (``K=V``) override the container's; ``user``
        is resolved against the container's own /etc/passwd and /etc/group. Returns the exit
        code; without ``wait`` (or with ``detach``, which also gives it /dev/null as stdio),
        the process's host pid at once (it is this process's child). With ``tty`` in the
        foreground (``exec -t``), the process gets a pty of the container's own, relayed to
        ``stdin`` (a terminal, in raw mode; None: no input) and ``stdout`` until it exits;
        with ``tty`` and ``detach`` or not ``wait``, ``stdin`` must be a terminal's slave
        side, which becomes the controlling terminal (:meth:`exec_terminal` hands back a
        pty's master instead)."""
        from . import _native
        from .native import container_errors

        arguments.descriptor(stdin, "stdin", optional=True)
        arguments.descriptor(stdout, "stdout")
        arguments.descriptor(stderr, "stderr")
        if tty and not detach and wait:
            return self._exec_relayed(name_or_id, command, env=env, user=user, workdir=workdir,
                                      privileged=privileged, stdin=stdin, stdout=stdout)
        devnull = None
        if stdin is None or detach:
            devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
            stdin = devnull
            if detach:
                stdout = stderr = devnull
        try:
            with self._exec_files(name_or_id, command, env=env, user=user, workdir=workdir,
                                  tty=tty, privileged=privileged) as files, \
                    container_errors():
                pid = _native.exec_process(
                    files.container_pid, files.process, seccomp_json=files.seccomp,
                    stdin_fd=stdin, stdout_fd=stdout, stderr_fd=stderr,
                    cgroup_procs=files.cgroup_procs, terminal=tty,
                    seccomp_cache_dir=files.seccomp_cache)
        finally:
            if devnull is not None:
                os.close(devnull)
        if detach or not wait:
            return pid
        return _native.wait(pid)

    def exec_terminal(self, name_or_id: str, command: builtins.list[str], *,
                      env: builtins.list[str] | None = None, user: str | None = None,
                      workdir: str | None = None, privileged: bool = False,
                      size: tuple[int, int] | None = None) -> tuple[int, int]:
        """``docker exec -t``: as :meth:`exec`, on a new pty of the container's own devpts
        (so ``tty`` inside names its ``/dev/pts/N``, as for ``run -t``) of ``size`` (rows,
        cols). Returns ``(pid, master_fd)`` at once: the process is this process's child
        (``wait`` for it); the master is the caller's to relay, resize and close."""
        from . import _native
        from .native import container_errors

        with self._exec_files(name_or_id, command, env=env, user=user, workdir=workdir,
                              tty=True, privileged=privileged) as files, container_errors():
            pid, master = _native.exec_process_pty(
                files.container_pid, files.process, seccomp_json=files.seccomp,
                cgroup_procs=files.cgroup_procs, size=size,
                seccomp_cache_dir=files.seccomp_cache)
        return pid, master

    @contextlib.contextmanager
    def _exec_files(self, name_or_id: str, command: builtins.list[str], *,
                    env: builtins.list[str] | None, user: str | None, workdir: str | None,
                    tty: bool, privileged: bool) -> Iterator[_ExecFiles]:
        """The OCI process (and seccomp) files of an exec into the running container, which
        exist while the context is open."""
        from .runtime import cgroups
        from .runtime.spec import replace_or_append, resolve_capabilities
        from .runtime.users import process_groups, resolve_user
        from .store.content import write_atomic

        argv = arguments.command(command, "command")
        arguments.optional_strings(env, "env")
        arguments.optional_text(user, "user")
        arguments.optional_text(workdir, "workdir")
        if not argv:
            raise InvalidArgumentError("exec needs a command to run")
        command = argv
        record = self._load(self.resolve_id(name_or_id))
        if record.status == "paused":
            raise ConflictError(f"Container {record.id} is paused, unpause the container "
                                "before exec")
        if record.status != "running":
            raise ConflictError(f"Container {record.id} is not running")
        bundle = self._store.paths.container(record.id)
        spec = json.loads((bundle / "config.json").read_bytes())
        process = dict(spec["process"])
        process["args"] = list(command)
        process["terminal"] = tty
        process["env"] = replace_or_append(process.get("env", []), env or [])
        if workdir:
            process["cwd"] = workdir
        if user is not None or privileged:
            img = self._engine.images.get(record.image_id)
            layers = [bundle / "upper"] + [self._store.snapshots.path(x.chain_id)
                                           for x in reversed(img.layers)]
            host = _stored_of(record).host_config
            if user is not None:
                def lookup(path: str) -> bytes | None:
                    return overlay.read_file(layers, path)

                who = resolve_user(user, lookup)
                # Docker's exec -u keeps the container's --group-add groups too.
                process["user"] = {"uid": who.uid, "gid": who.gid, "additionalGids": list(
                    process_groups(who, host.group_add or [], lookup))}
            uid = process["user"]["uid"]
            caps = list(resolve_capabilities(host.cap_add or [], host.cap_drop or [],
                                             privileged or host.privileged))
            process["capabilities"] = {
                "bounding": caps, "effective": caps if uid == 0 else [],
                "permitted": caps if uid == 0 else [], "inheritable": [], "ambient": []}
        seccomp = None if privileged else (spec.get("linux") or {}).get("seccomp")
        token = os.urandom(8).hex()
        process_file = bundle / f"exec-{token}.json"
        seccomp_file = bundle / f"exec-{token}-seccomp.json"
        try:
            write_atomic(process_file, json.dumps(process).encode(), self._store.paths.tmp,
                         mode=0o600, sync=False)
            if seccomp is not None:
                write_atomic(seccomp_file, json.dumps(seccomp).encode(), self._store.paths.tmp,
                             mode=0o600, sync=False)
            yield _ExecFiles(container_pid=record.pid, process=str(process_file),
                             seccomp=str(seccomp_file) if seccomp is not None else None,
                             cgroup_procs=cgroups.open_existing(record.id).procs,
                             seccomp_cache=str(self._store.paths.seccomp_cache))
        finally:
            for path in (process_file, seccomp_file):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

    def cleanup(self, name_or_id: str) -> None:
        """The supervisor's exit command: settle the books of an exited container and remove
        it if it was started with ``--rm``. Idempotent; a container already gone is fine."""
        try:
            container_id = self.resolve_id(name_or_id)
        except ContainerNotFoundError:
            return
        with self._lock(container_id):
            record = self._store.metadata.get_container(container_id)
            if record is None:
                return
            record = self._repair(record)
            if record is None or record.status in ("running", "paused"):
                return
            if _stored_of(record).host_config.auto_remove \
                    and not self._restarting(container_id):
                self._remove_stopped(container_id, volumes=True)

    def remove(self, name_or_id: str, force: bool = False, volumes: bool = False) -> None:
        """``docker rm``; with ``volumes`` (``-v``), also the container's anonymous volumes
        that no other container uses (named volumes stay)."""
        container_id = self.resolve_id(name_or_id)
        record = self._load(container_id)
        if record.status in ("running", "paused"):
            if not force:
                raise ConflictError(
                    f"You cannot remove a running container {container_id}. Stop the container "
                    "before attempting removal or force remove")
            self._signal(record, signal.SIGKILL)
            self.wait(container_id)
        self._remove_stopped(container_id, volumes=volumes)

    def _remove_stopped(self, container_id: str, volumes: bool = False,
                        record: ContainerRecord | None = None, cgroup: Any = None) -> None:
        """``record``: the container's, when the caller has it (its config is all that is
        read, and that never changes); ``cgroup``: its cgroup, when the caller made it."""
        self._release_cgroup(container_id, cgroup)
        if volumes and record is None:
            record = self._store.metadata.get_container(container_id)
        self._store.metadata.remove_container(container_id)
        # Only a container with mounts pays for importing the volume service.
        if record is not None and _stored_of(record).mounts:
            from .volumes import volume_names

            self._engine.volumes.remove_anonymous(sorted(volume_names(record)))
        _remove_tree(self._store.paths.run_state(container_id))
        from .store.snapshots import discard_tree

        discard_tree(self._store.paths.container(container_id), self._store.paths.trash)

    def run(self, image: str, command: builtins.list[str] | None = None, *,
            options: RunOptions | None = None, create: CreateOptions | None = None,
            stdin: int | None = None, stdout: int = 1, stderr: int = 2, progress: Any = None,
            sig_proxy: bool = False, detach: bool = False, volumes: Any = None,
            mounts: builtins.list[Any] | None = None) -> Any:
        """``docker run``: :meth:`run_from` of the create body the arguments describe
        (``volumes``/``mounts``: as for :meth:`create`)."""
        arguments.descriptor(stdin, "stdin", optional=True)
        arguments.descriptor(stdout, "stdout")
        arguments.descriptor(stderr, "stderr")
        body, create = self._body(image, command, options, create, volumes, mounts)
        return self.run_from(body, name=create.name, stdin=stdin, stdout=stdout, stderr=stderr,
                             progress=progress, sig_proxy=sig_proxy, detach=detach)

    def run_from(self, body: ContainerCreate, *, name: str | None = None,
                 stdin: int | None = None, stdout: int = 1, stderr: int = 2,
                 progress: Any = None, sig_proxy: bool = False, detach: bool = False) -> Any:
        """``docker run`` of a create body (a missing image is pulled). With ``detach``,
        create and start it under its supervisor and return the :class:`Container`. Else in
        the foreground: create, start with the given stdio (``stdin`` None: /dev/null),
        wait, and remove when ``HostConfig.AutoRemove``; returns the exit code. With
        ``sig_proxy`` (the CLI's default, as Docker's), signals this process receives while
        waiting are forwarded to the container's init (main thread only)."""
        arguments.descriptor(stdin, "stdin", optional=True)
        arguments.descriptor(stdout, "stdout")
        arguments.descriptor(stderr, "stderr")
        container = self.create_from(body, name=name, pull=True, progress=progress)
        auto_remove = body.host_config.auto_remove
        if detach:
            try:
                return self.start(container.id)
            except BaseException:
                self._abandon(container.id, auto_remove)
                raise
        devnull = None
        if stdin is None:
            devnull = stdin = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        started = False
        try:
            proxy = _SignalProxy()
            # Installed before the start, so a signal that arrives while the container is being
            # set up is held and forwarded once its pid is known, not lost.
            with proxy.installed() if sig_proxy else contextlib.nullcontext():
                pid, pid_start, cgroup = self._start_foreground(
                    container._record, stdin=stdin, stdout=stdout, stderr=stderr)
                started = True
                proxy.attach(pid)
                code = procfs.wait_exit(pid, pid_start)
        except BaseException:
            if auto_remove:
                self.remove(container.id, force=True, volumes=True)
            elif started:  # a start that failed recorded itself; a failed wait is an exit
                self._store.metadata.update_container(container.id, status="exited",
                                                      exit_code=125, finished_at=time.time())
            raise
        finally:
            if devnull is not None:
                os.close(devnull)
        if auto_remove:
            # Reaped, so nothing of it runs: its books and files go straight away.
            self._remove_stopped(container.id, volumes=True, record=container._record,
                                 cgroup=cgroup)
        else:
            self._finish(container.id, code, time.time())
        return code

    def _abandon(self, container_id: str, auto_remove: bool) -> None:
        """After a failed start (which :meth:`start` recorded): removed with ``--rm``."""
        if auto_remove:
            with contextlib.suppress(ContainerNotFoundError):
                self.remove(container_id, force=True, volumes=True)

    # -- changes, archives, stats, attach (the service API the CLI and the daemon call) --

    def commit(self, name_or_id: str, repository: str | None = None, tag: str | None = None,
               *, changes: builtins.list[str] | None = None, message: str = "",
               author: str = "", pause: bool = True, compression: str = "gzip",
               progress: Progress | None = None, cancel: Cancel | None = None) -> str:
        """``docker commit``: the container's changes (its overlay's upper dir) become a new
        layer on its image's layers, tagged ``repository`` (``REPO[:TAG]``, or ``tag`` apart
        as docker-py passes it); returns the new image ID.

        ``changes`` are Dockerfile instructions applied to the config (CMD, ENV...);
        ``pause`` freezes a running container while its upper dir is read; ``compression``
        is gzip or zstd. ``progress`` (:class:`barque.progress.Progress`) hears
        ``Writing layer`` with the changes written so far and ``Committed``; ``cancel`` (a
        ``threading.Event``) stops it before the image is recorded. Atomic: the image and its
        tag appear together or not at all; a failed or cancelled commit leaves no layer, blob
        or staging file (a killed one leaves its ``tmp/commit-*`` for the GC). Not
        idempotent: each commit is a new image (a new ``created`` time). Raises
        ContainerNotFoundError, InvalidArgumentError (a digest reference, a bad change or
        compression), OperationCancelledError."""
        from .changes import ContainerChanges

        arguments.optional_text(repository, "repository")
        arguments.optional_text(tag, "tag")
        reference = repository
        if tag is not None:
            if not repository:
                raise InvalidArgumentError("a tag needs a repository to commit to")
            reference = f"{repository}:{tag}"
        return ContainerChanges(self._engine).commit(
            name_or_id, reference, message=message, author=author, changes=changes or [],
            pause=pause, compression=compression, progress=progress, cancel=cancel)

    def diff(self, name_or_id: str) -> builtins.list[Change]:
        """``docker diff``: the container's filesystem changes against its image, as
        :class:`barque.changes.Change` (``kind`` A/C/D, ``path``), in path order. Reads only;
        raises ContainerNotFoundError."""
        from .changes import ContainerChanges

        return ContainerChanges(self._engine).diff(name_or_id)

    def get_archive(self, name_or_id: str, path: str, *,
                    follow_link: bool = False) -> tuple[TarStream, PathStat]:
        """Docker's ``GET /containers/{id}/archive``: ``(stream, stat)``, a tar of ``path``
        (a :class:`barque.changes.TarStream`: iterate or ``read`` it, then close it) and its
        :class:`barque.changes.PathStat`. Works on running and stopped containers (a stopped
        one's overlay is mounted until the stream is closed); every path is resolved inside
        the container. Raises ContainerNotFoundError, ContainerPathNotFoundError."""
        from .changes import ContainerCopy

        arguments.text(path, "path")
        return ContainerCopy(self._engine).archive(name_or_id, path, follow_link=follow_link)

    def put_archive(self, name_or_id: str, path: str, data: Any, *,
                    copy_uid_gid: bool = False) -> None:
        """Docker's ``PUT /containers/{id}/archive``: extract the tar stream ``data`` (a
        binary file; plain or compressed) into the directory ``path`` of the container.
        Owners become the container's root unless ``copy_uid_gid``. Not atomic: entries
        written before a bad one stay, as with Docker. Raises ContainerPathNotFoundError,
        InvalidArgumentError (not a directory, a directory over a file), InvalidArchiveError."""
        from .changes import ContainerCopy

        arguments.text(path, "path")
        ContainerCopy(self._engine).copy_in_tar(data, name_or_id, path, archive=copy_uid_gid)

    def copy_from(self, name_or_id: str, path: str, destination: str | os.PathLike[str], *,
                  archive: bool = False, follow_link: bool = False) -> None:
        """``docker cp CONTAINER:PATH DEST``: into DEST if it is a directory (PATH's contents
        for ``PATH/.``), else as DEST; owners become the caller's unless ``archive``, modes
        and mtimes are kept, ``follow_link`` copies what a symlink PATH points to. Not atomic
        (files copied before a failure stay). Raises ContainerNotFoundError,
        ContainerPathNotFoundError, InvalidArgumentError (a directory over a file)."""
        from .changes import ContainerCopy

        arguments.text(path, "path")
        ContainerCopy(self._engine).copy_out(name_or_id, path, Path(destination),
                                             archive=archive, follow_link=follow_link)

    def copy_to(self, source: str | os.PathLike[str], name_or_id: str, path: str, *,
                archive: bool = False, follow_link: bool = False) -> None:
        """``docker cp SRC CONTAINER:PATH``: into PATH if it is a directory, else as PATH;
        owners become the container's root unless ``archive``, modes and mtimes are kept. Not
        atomic. Raises ContainerNotFoundError, FileNotFoundError (SRC), InvalidArgumentError
        (a directory over a file, an invalid PATH)."""
        from .changes import ContainerCopy

        arguments.text(path, "path")
        ContainerCopy(self._engine).copy_in(Path(source), name_or_id, path, archive=archive,
                                            follow_link=follow_link)

    def stats(self, name_or_id: str, *, stream: bool = False,
              interval: float = 1.0) -> Any:
        """Docker's stats JSON (``GET /containers/{id}/stats``) read from the container's
        cgroup: ``memory_stats`` (``usage``, ``limit``: the host's memory without a limit,
        ``stats``), ``cpu_stats``/``precpu_stats`` (``cpu_usage.total_usage`` in ns,
        ``system_cpu_usage``, ``online_cpus``), ``pids_stats`` (``current``, ``limit``),
        ``read``/``preread``. Without ``stream``, one document whose ``pre*`` reading was taken
        ``interval`` seconds before (so CPU % can be computed, as ``docker stats
        --no-stream`` does); with it, an iterator of one document per ``interval`` until the
        container stops (``interval`` 0: each ``next`` reads at once, the caller paces). A
        container that is not running has empty stats, as in Docker.
        Reads only; raises ContainerNotFoundError."""
        from . import stats as readings

        arguments.number(interval, "interval")
        container = self.get(name_or_id)

        def cgroup_sample() -> dict[str, Any] | None:
            from .runtime import cgroups

            current = self._load(container.id)
            if current.status not in ("running", "paused"):
                return None
            return readings.sample(cgroups.open_existing(container.id))

        def documents() -> Iterator[dict[str, Any]]:
            previous = None
            while True:
                current = cgroup_sample()
                if current is None:
                    return
                yield readings.document(container.id, container.name, current, previous)
                previous = current
                if interval:
                    time.sleep(interval)

        if stream:
            return documents()
        first = cgroup_sample()
        if first is None:
            return readings.document(container.id, container.name, readings.EMPTY_SAMPLE, None)
        if not interval:
            return readings.document(container.id, container.name, first, None)
        time.sleep(interval)
        second = cgroup_sample()
        if second is None:  # it stopped in between: what it last used
            return readings.document(container.id, container.name, first, None)
        return readings.document(container.id, container.name, second, first)

    def attach(self, name_or_id: str, *, timeout: float = 10.0) -> AttachSession:
        """Docker's ``attach``: a :class:`barque.attach.AttachSession` on the running
        container's supervisor (its output from then on, its stdin if it was created with
        ``-i``, resize, the exit code). Raises ConflictError when it is not running."""
        from . import attach

        arguments.number(timeout, "timeout")
        record = self._load(self.resolve_id(name_or_id))
        if record.status not in ("running", "paused"):
            raise ConflictError(f"You cannot attach to a stopped container {record.id}, start "
                                "it first")
        state = self._store.paths.run_state(record.id)
        return attach.AttachSession(attach.connect(state, timeout), state)

    def start_attached(self, name_or_id: str, *, tty_size: tuple[int, int] | None = None,
                       timeout: float = 10.0) -> AttachSession:
        """``docker start -a`` (and ``run -it``): start the container under its supervisor
        holding its first output, and return an :class:`barque.attach.AttachSession` on it.
        A start that fails removes a ``--rm`` container, then raises (ContainerStartError
        with Docker's exit code)."""
        from . import attach

        arguments.number(timeout, "timeout")
        container = self.get(name_or_id)
        auto_remove = container.model.host_config.auto_remove
        try:
            self.start(container.id, hold_output=True, tty_size=tty_size)
        except BaseException:
            self._abandon(container.id, auto_remove)
            raise
        state = self._store.paths.run_state(container.id)
        return attach.AttachSession(attach.connect(state, timeout), state)

    def first_network_default(self) -> bool:
        """True for the first caller only, per store: the first ``run``/``create`` that
        falls back to ``--network none`` says why (barque has no bridge network yet). The
        marker's exclusive creation is atomic, so of two first commands at once one is told;
        a store that cannot be marked answers True every time (better said than never)."""
        try:
            fd = os.open(self._store.paths.network_notice_marker,
                         os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        except FileExistsError:
            return False
        except OSError:
            return True
        os.close(fd)
        return True

    def _exec_relayed(self, name_or_id: str, command: builtins.list[str], *,
                      env: builtins.list[str] | None, user: str | None, workdir: str | None,
                      privileged: bool, stdin: int | None, stdout: int) -> int:
        """``exec -t`` in the foreground: a pty of the container's own, relayed to ``stdin``
        (a terminal, put in raw mode; None: no input) and ``stdout`` until the process
        exits, with the window size kept in step; returns its exit code."""
        from . import _native, attach

        if stdin is not None and not os.isatty(stdin):
            raise InvalidArgumentError("the input device is not a TTY")
        size = (attach.window_size(stdin) if stdin is not None else None) or \
            attach.window_size(stdout)
        # Docker's exec -t sets TERM; the caller's env still wins.
        pid, master = self.exec_terminal(name_or_id, command, env=["TERM=xterm", *(env or [])],
                                         user=user, workdir=workdir, privileged=privileged,
                                         size=size)
        try:
            attach.relay_pty(master, stdin=stdin is not None,
                             in_fd=stdin if stdin is not None else 0, out_fd=stdout)
        finally:
            os.close(master)
        return _native.wait(pid)


def parse_signal(name: str | int) -> int:
    """A signal number from ``SIGTERM``, ``TERM``, ``term`` or ``15``."""
    from .errors import InvalidArgumentError as _Invalid

    if isinstance(name, int):
        return name
    text = name.strip().upper()
    if text.isdigit():
        return int(text)
    value = getattr(signal, text if text.startswith("SIG") else f"SIG{text}", None)
    if not isinstance(value, signal.Signals):
        raise _Invalid(f"Invalid signal: {name}")
    return int(value)


#: Where ``--init`` mounts barque-init (on the container's /dev tmpfs: nothing is added to
#: its root filesystem).
INIT_PATH = "/dev/init"


def _add_init(spec: dict[str, Any]) -> None:
    """``--init``: a minimal init (``barque-init``, static) as PID 1 that reaps zombies and
    forwards signals to the command."""
    from .runtime.supervisor import helper_binary

    spec.setdefault("mounts", []).append({
        "destination": INIT_PATH, "type": "bind", "source": str(helper_binary("barque-init")),
        "options": ["bind", "ro", "nosuid", "nodev"]})
    spec["process"]["args"] = [INIT_PATH, "--", *spec["process"]["args"]]


def _validate_log_config(driver: str, log_opts: dict[str, str]) -> None:
    if driver not in ("json-file", "none"):
        raise InvalidArgumentError(
            f"logging driver {driver!r} is not supported: json-file or none")
    for key, value in log_opts.items():
        if driver == "none":
            raise InvalidArgumentError(f"unknown log opt '{key}' for none log driver")
        if key not in ("max-size", "max-file"):
            raise InvalidArgumentError(f"unknown log opt '{key}' for json-file log driver")
    max_size = _log_max_size(log_opts)
    if max_size is not None and max_size < 1:
        raise InvalidArgumentError("max-size must be a positive size")
    max_file = log_opts.get("max-file")
    if max_file is not None:
        if not max_file.isdigit() or int(max_file) < 1:
            raise InvalidArgumentError("max-file cannot be less than 1")
        if int(max_file) > 1 and not log_opts.get("max-size"):
            raise InvalidArgumentError("max-file cannot be set without max-size")


def _log_max_size(opts: dict[str, str]) -> int | None:
    from .runtime.cgroups import parse_memory

    return parse_memory(opts["max-size"]) if opts.get("max-size") else None


def _log_max_file(opts: dict[str, str]) -> int | None:
    return int(opts["max-file"]) if opts.get("max-file") else None


#: What `docker run --sig-proxy` forwards (SIGKILL/SIGSTOP cannot be caught; SIGCHLD, SIGPIPE
#: and SIGWINCH concern this process, not the container).
_PROXIED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
                    signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM, signal.SIGCONT)


class _SignalProxy:
    """Forwards the signals this process receives to the container's init."""

    def __init__(self) -> None:
        self.pid = 0
        self.held: list[int] = []

    def _forward(self, signum: int, _frame: object) -> None:
        if not self.pid:
            self.held.append(signum)
            return
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:
            pass

    def attach(self, pid: int) -> None:
        self.pid = pid
        while self.held:
            self._forward(self.held.pop(0), None)

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        import threading

        if threading.current_thread() is not threading.main_thread():
            yield  # Python handles signals in the main thread only
            return
        previous = {sig: signal.signal(sig, self._forward) for sig in _PROXIED_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _matches(c: Container, filters: dict[str, list[str]], ancestors: set[str]) -> bool:
    stored = c.model
    labels = stored.config.labels or {}
    for key, values in filters.items():
        if key == "status":
            ok = c.status in values
        elif key == "name":
            ok = any(v.lstrip("/") in c.name for v in values)
        elif key == "id":
            ok = any(c.id.startswith(v) for v in values)
        elif key == "label":
            ok = any(labels.get(k) == v if sep else k in labels
                     for k, sep, v in (item.partition("=") for item in values))
        elif key == "volume":
            ok = any(v in (m.name, m.destination) for m in stored.mounts or [] for v in values)
        else:  # ancestor
            ok = c.image_id in ancestors
        if not ok:
            return False
    return True


def _as_list(volumes: Any) -> list[Any]:
    """``volumes=`` as a list: docker-py's dict form is one item."""
    if not volumes:
        return []
    return [volumes] if isinstance(volumes, dict) else list(volumes)



def _validate_name(name: str) -> None:
    import re

    if not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+", name):
        raise InvalidArgumentError(
            f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")


def _name_conflict(name: str, owner: str) -> str:
    return (f'Conflict. The container name "/{name}" is already in use by container "{owner}". '
            "You have to remove (or rename) that container to be able to reuse that name.")


# Image layers never change once unpacked (a snapshot is content-addressed by its ChainID), so
# what a start reads from them is read once per process: a long-lived caller (the Python API)
# then skips a dozen syscalls per container.
@functools.lru_cache(maxsize=128)
def _layer_file(layers_top_first: tuple[Path, ...], path: str) -> bytes | None:
    return overlay.read_file(layers_top_first, path)


@functools.lru_cache(maxsize=64)
def _etc_facts(layers_top_first: tuple[Path, ...]) -> tuple[os.stat_result | None, bool]:
    """The stat of the image's ``/etc`` directory (None if it has none), and whether it has
    ``/etc/mtab``."""
    import stat

    etc = overlay.lookup(layers_top_first, "etc")
    etc_meta = etc[1] if etc is not None and stat.S_ISDIR(etc[1].st_mode) else None
    return etc_meta, overlay.exists(layers_top_first, "etc/mtab")


def _remove_tree(path: Path) -> None:
    from .store.snapshots import remove_tree

    if path.exists():
        remove_tree(path)
