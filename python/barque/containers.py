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

from . import arguments
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

    from .engine import Engine
    from .images import Image
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
    def attrs(self) -> dict[str, Any]:
        """Docker-compatible ``inspect`` JSON."""
        r = self._record
        cfg = self.config
        return {
            "Id": r.id,
            "Created": _rfc3339(r.created),
            "Path": (cfg["Config"].get("Cmd") or [""])[0] if cfg["Config"].get("Cmd") else "",
            "Args": (cfg["Config"].get("Cmd") or [])[1:],
            "State": {
                "Status": r.status, "Running": r.status in ("running", "paused"),
                "Paused": r.status == "paused",
                "Restarting": False, "OOMKilled": r.oom_killed, "Dead": False,
                "Pid": r.pid if r.status in ("running", "paused") else 0, "ExitCode": r.exit_code,
                "Error": r.error,
                "StartedAt": _rfc3339(r.started_at) if r.started_at else "0001-01-01T00:00:00Z",
                "FinishedAt": _rfc3339(r.finished_at) if r.finished_at else "0001-01-01T00:00:00Z",
            },
            "Image": r.image_id,
            "Name": "/" + r.name,
            "RestartCount": 0,
            "HostConfig": cfg["HostConfig"],
            "Config": cfg["Config"],
            "Mounts": cfg.get("Mounts") or [],
            "LogPath": str(self._service._store.paths.container_log(r.id))
            if cfg["HostConfig"].get("LogConfig", {}).get("Type") == "json-file" else "",
            "NetworkSettings": {"Networks": {cfg["HostConfig"].get("NetworkMode", "none"): {}}},
        }


def _rfc3339(ts: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")


def _process_start_time(pid: int) -> int:
    """The kernel's start time of ``pid`` (clock ticks since boot), 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return 0
    # comm (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = data[data.rfind(b")") + 2:].split()
    return int(fields[19]) if len(fields) > 19 else 0


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
                and _process_start_time(record.pid) == record.pid_start:
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
                and json.loads(updated.config)["HostConfig"].get("AutoRemove"):
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

    # -- create ---------------------------------------------------------------------------

    def create(self, image: str, command: builtins.list[str] | None = None, *,
               options: RunOptions | None = None, create: CreateOptions | None = None,
               pull: bool = False, progress: Any = None, volumes: Any = None,
               mounts: builtins.list[Any] | None = None) -> Container:
        """Create (but do not start) a container from ``image``. With ``pull``, a missing
        image is pulled first, as ``docker run`` does. ``volumes`` (``-v``) and ``mounts``
        (``--mount``) add to ``create``'s (see :class:`CreateOptions`)."""
        from .runtime.spec import RunOptions, build_spec

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
        name = create.name or _generated_name()
        _validate_name(name)
        if create.name:
            self._check_name_free(name)
        bundle = self._store.paths.container(container_id)
        _validate_log_config(create)
        if create.stop_signal:
            parse_signal(create.stop_signal)
        plan = None
        if create.wants_mounts() or (img.config.get("config") or {}).get("Volumes"):
            # Every mount is checked before anything (volume, directory, bundle) is made.
            plan = self._engine.volumes.plan(
                img, volumes=_as_list(create.volumes), mounts=create.mounts,
                tmpfs=create.tmpfs, volumes_from=create.volumes_from)
            options = msgspec.structs.replace(options, mounts=[*options.mounts, *plan.oci])
        lowers = self._image_layers(img)
        spec = build_spec(img.config.get("config") or {}, options,
                          lambda path: _layer_file(tuple(lowers), path), container_id)
        cmd = list(spec["process"]["args"])
        if options.init:
            _add_init(spec)
        created_volumes: list[str] = []
        held = contextlib.ExitStack()
        try:
            if plan:
                # Held until the record exists, so a volume rm/prune cannot take a volume
                # this container is about to use.
                held.enter_context(self._engine.volumes.lock())
                created_volumes = self._engine.volumes.apply(plan, img)
            self._make_bundle(bundle, lowers, spec, options, discard_upper=create.auto_remove)
            record = ContainerRecord(
                id=container_id, name=name, image_id=img.id, image=image, created=time.time(),
                config=json.dumps(self._docker_config(img, image, spec, cmd, options,
                                                      create, plan)).encode(),
                status="created", pid=0, pid_start=0, exit_code=0, started_at=0.0,
                finished_at=0.0, oom_killed=False, error="")
            for attempt in range(1, 21):
                owner = self._store.metadata.add_container(record)
                if owner is None:
                    break
                if create.name:  # the user's choice: Docker's conflict error
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
        return Container(self, record)

    def _check_name_free(self, name: str) -> None:
        owner = self._store.metadata.container_for_name(name)
        if owner:
            raise ConflictError(_name_conflict(name, owner))

    def _image_layers(self, img: Image) -> builtins.list[Path]:
        """The image's unpacked layers, top first (the overlay's lower dirs)."""
        return [self._store.snapshots.path(layer.chain_id) for layer in reversed(img.layers)]

    def _make_bundle(self, bundle: Path, lowers: builtins.list[Path], spec: dict[str, Any],
                     options: RunOptions, *, discard_upper: bool = False) -> None:
        """The container's directory: upper/work/rootfs, its /etc files, ``config.json``.
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
                      f"127.0.1.1\t{hostname}\n").encode(),
            "resolv.conf": resolv,
        }
        for name, content in files.items():
            _write_new(f"{bundle}/{name}", content, 0o644)
            spec.setdefault("mounts", []).append({
                "destination": f"/etc/{name}", "type": "bind", "source": f"{bundle}/{name}",
                "options": ["rbind", "rprivate"] + (["ro"] if options.read_only else [])})
        spec["root"] = {"path": "rootfs", "readonly": bool(options.read_only)}
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

    def _docker_config(self, img: Image, image: str, spec: dict[str, Any], cmd: builtins.list[str],
                       options: RunOptions, create: CreateOptions,
                       plan: Any = None) -> dict[str, Any]:
        from .runtime.spec import parse_device

        process = spec["process"]
        image_cfg = img.config.get("config") or {}
        mounts: dict[str, Any] = {"Mounts": [], "Config": {}, "HostConfig": {}}
        if plan:
            mounts = {"Mounts": plan.records,
                      "Config": {"Volumes": plan.config_volumes or None},
                      "HostConfig": {"Binds": plan.binds or None,
                                     "Mounts": plan.host_mounts or None,
                                     "Tmpfs": plan.tmpfs or None,
                                     "VolumesFrom": plan.volumes_from or None}}
        return {
            "Mounts": mounts["Mounts"],
            "Config": {
                "Hostname": spec.get("hostname", ""), "User": options.user or image_cfg.get("User", ""),
                "Env": process.get("env", []), "Cmd": cmd,
                "Entrypoint": None, "Image": image, "WorkingDir": process.get("cwd", "/"),
                "Labels": {**(image_cfg.get("Labels") or {}), **create.labels},
                "Tty": bool(options.tty), "OpenStdin": bool(create.open_stdin),
                "StopSignal": create.stop_signal or image_cfg.get("StopSignal") or "SIGTERM",
                "ExposedPorts": image_cfg.get("ExposedPorts") or {},
                **mounts["Config"],
            },
            "HostConfig": {
                "NetworkMode": options.network, "AutoRemove": create.auto_remove,
                "Privileged": bool(options.privileged), "ReadonlyRootfs": bool(options.read_only),
                "Devices": [{"PathOnHost": host, "PathInContainer": path,
                             "CgroupPermissions": permissions}
                            for host, path, permissions in map(parse_device, options.devices)],
                "CapAdd": list(options.cap_add) or None, "CapDrop": list(options.cap_drop) or None,
                "GroupAdd": list(options.group_add) or None,
                "SecurityOpt": list(options.security_opt) or None,
                "LogConfig": {"Type": create.log_driver, "Config": dict(create.log_opts)},
                "Init": bool(options.init) or None,
                **_resources(options),
                **mounts["HostConfig"],
            },
        }

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

        host = json.loads(record.config).get("HostConfig", {})
        nano = host.get("NanoCpus") or 0
        limits = cgroups.CgroupLimits(memory=host.get("Memory") or None,
                                      pids=host.get("PidsLimit") or None,
                                      cpus=nano / 1e9 if nano else None)
        if host.get("Privileged") or host.get("Devices"):
            # The rules made at create, with the --device numbers found then.
            spec = json.loads((self._store.paths.container(record.id) / "config.json")
                              .read_bytes())
            devices = ((spec.get("linux") or {}).get("resources") or {}).get("devices") or []
        else:  # what the spec says, without parsing it on every start
            from .runtime.spec import default_device_rules

            devices = default_device_rules()
        return cgroups.create(record.id, limits, fresh=fresh, devices=devices)

    def start(self, name_or_id: str, *, hold_output: bool = False,
              tty_size: tuple[int, int] | None = None) -> Container:
        """Start a created (or exited) container detached, under its own supervisor
        (``barque-shim``), which logs its output, records its exit and survives this process.
        ``hold_output`` keeps the output for the first attach client (``start -a``,
        ``run -it``). Errors in the container's set-up raise ``ContainerStartError`` with
        Docker's exit code (127, 126, 125)."""
        from .runtime import supervisor

        container_id = self.resolve_id(name_or_id)
        with self._lock(container_id):
            record = self._load(container_id)
            if record.status in ("running", "paused"):
                return Container(self, record)
            cfg = json.loads(record.config)
            log_config = cfg["HostConfig"].get("LogConfig") or {}
            log_opts = log_config.get("Config") or {}
            json_file = log_config.get("Type") == "json-file"
            if tty_size and cfg["Config"].get("Tty"):
                self._set_console_size(container_id, tty_size)
            cgroup = self._cgroup_for(record)
            state = self._store.paths.run_state(container_id)
            options = supervisor.ShimOptions(
                bundle=self._store.paths.container(container_id), state_dir=state,
                log_path=self._store.paths.container_log(container_id) if json_file else None,
                log_max_size=_log_max_size(log_opts), log_max_file=_log_max_file(log_opts),
                stdin=bool(cfg["Config"].get("OpenStdin")), hold_output=hold_output,
                tty_size=tty_size, cgroup_procs=cgroup.procs,
                seccomp_cache=self._store.paths.seccomp_cache,
                exit_command=[sys.executable, "-m", "barque", "--root",
                              str(self._store.paths.root), "container", "cleanup",
                              container_id])
            try:
                started = supervisor.start(options)
            except BaseException as e:
                cgroup.remove()
                self._record_start_failure(container_id, e)
                raise
            self._store.metadata.update_container(
                container_id, status="running", pid=started.pid,
                pid_start=_process_start_time(started.pid), started_at=time.time(),
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
        pid_start = _process_start_time(pid)
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
            _wait_gone(record.pid, record.pid_start)
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
        code = _wait_pid(record.pid, record.pid_start)
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
        self._signal(record, sig)

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
        if record.status not in ("running", "paused"):
            return
        stop_signal = json.loads(record.config)["Config"].get("StopSignal") or "SIGTERM"
        sig = parse_signal(stop_signal)
        os.kill(record.pid, sig)
        if record.status == "paused":
            self._thaw_quietly(record.id)  # so the stop signal can be acted on
        if not _wait_gone(record.pid, record.pid_start, timeout):
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
        old_shim_start = _process_start_time(old_shim) if old_shim else 0
        marker.write_text(str(os.getpid()))
        try:
            self.stop(container_id, timeout)
            if old_shim:
                _wait_gone(old_shim, old_shim_start, 10)
            return self.start(container_id)
        except BaseException:
            with contextlib.suppress(Exception):  # the restart's own error is the one to raise
                if json.loads(self._load(container_id).config)["HostConfig"].get("AutoRemove"):
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
        log_type = (json.loads(record.config)["HostConfig"].get("LogConfig") or {}).get("Type")
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
        the process's host pid at once (it is this process's child). With ``tty``,
        ``stdin`` must be a terminal's slave side: it becomes the controlling terminal (see
        :meth:`exec_terminal` for a pty of the container's own, as ``exec -t`` needs)."""
        from . import _native
        from .native import container_errors

        arguments.descriptor(stdin, "stdin", optional=True)
        arguments.descriptor(stdout, "stdout")
        arguments.descriptor(stderr, "stderr")
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
        from .runtime.spec import _replace_or_append, resolve_capabilities
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
        process["env"] = _replace_or_append(process.get("env", []), env or [])
        if workdir:
            process["cwd"] = workdir
        if user is not None or privileged:
            img = self._engine.images.get(record.image_id)
            layers = [bundle / "upper"] + [self._store.snapshots.path(x.chain_id)
                                           for x in reversed(img.layers)]
            host = json.loads(record.config)["HostConfig"]
            if user is not None:
                def lookup(path: str) -> bytes | None:
                    return read_from_layers(layers, path)

                who = resolve_user(user, lookup)
                # Docker's exec -u keeps the container's --group-add groups too.
                process["user"] = {"uid": who.uid, "gid": who.gid, "additionalGids": list(
                    process_groups(who, host.get("GroupAdd") or [], lookup))}
            uid = process["user"]["uid"]
            caps = list(resolve_capabilities(host.get("CapAdd") or [], host.get("CapDrop") or [],
                                             privileged or bool(host.get("Privileged"))))
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
            if json.loads(record.config)["HostConfig"].get("AutoRemove") \
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
        if record is not None and json.loads(record.config).get("Mounts"):
            from .volumes import _volume_names

            self._engine.volumes.remove_anonymous(sorted(_volume_names(record)))
        _remove_tree(self._store.paths.run_state(container_id))
        from .store.snapshots import discard_tree

        discard_tree(self._store.paths.container(container_id), self._store.paths.trash)

    def run(self, image: str, command: builtins.list[str] | None = None, *,
            options: RunOptions | None = None, create: CreateOptions | None = None,
            stdin: int | None = None, stdout: int = 1, stderr: int = 2, progress: Any = None,
            sig_proxy: bool = False, detach: bool = False, volumes: Any = None,
            mounts: builtins.list[Any] | None = None) -> Any:
        """``docker run``. With ``detach``, create and start it under its supervisor and
        return the :class:`Container`. Else in the foreground: create, start with the given
        stdio (``stdin`` None: /dev/null), wait, and remove when ``create.auto_remove``;
        returns the exit code. With ``sig_proxy`` (the CLI's default, as Docker's), signals
        this process receives while waiting are forwarded to the container's init (main
        thread only). ``volumes``/``mounts``: as for :meth:`create`."""
        arguments.descriptor(stdin, "stdin", optional=True)
        arguments.descriptor(stdout, "stdout")
        arguments.descriptor(stderr, "stderr")
        create = create or CreateOptions()
        container = self.create(image, command, options=options, create=create, pull=True,
                                progress=progress, volumes=volumes, mounts=mounts)
        if detach:
            try:
                return self.start(container.id)
            except BaseException:
                self._abandon(container.id, create.auto_remove)
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
                code = _wait_pid(pid, pid_start)
        except BaseException:
            if create.auto_remove:
                self.remove(container.id, force=True, volumes=True)
            elif started:  # a start that failed recorded itself; a failed wait is an exit
                self._store.metadata.update_container(container.id, status="exited",
                                                      exit_code=125, finished_at=time.time())
            raise
        finally:
            if devnull is not None:
                os.close(devnull)
        if create.auto_remove:
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


def _validate_log_config(create: CreateOptions) -> None:
    if create.log_driver not in ("json-file", "none"):
        raise InvalidArgumentError(
            f"logging driver {create.log_driver!r} is not supported: json-file or none")
    for key, value in create.log_opts.items():
        if create.log_driver == "none":
            raise InvalidArgumentError(f"unknown log opt '{key}' for none log driver")
        if key not in ("max-size", "max-file"):
            raise InvalidArgumentError(f"unknown log opt '{key}' for json-file log driver")
    max_size = _log_max_size(create.log_opts)
    if max_size is not None and max_size < 1:
        raise InvalidArgumentError("max-size must be a positive size")
    max_file = create.log_opts.get("max-file")
    if max_file is not None:
        if not max_file.isdigit() or int(max_file) < 1:
            raise InvalidArgumentError("max-file cannot be less than 1")
        if int(max_file) > 1 and not create.log_opts.get("max-size"):
            raise InvalidArgumentError("max-file cannot be set without max-size")


def _log_max_size(opts: dict[str, str]) -> int | None:
    from .runtime.cgroups import parse_memory

    return parse_memory(opts["max-size"]) if opts.get("max-size") else None


def _log_max_file(opts: dict[str, str]) -> int | None:
    return int(opts["max-file"]) if opts.get("max-file") else None


def _wait_gone(pid: int, pid_start: int, timeout: float | None = None) -> bool:
    """Wait (up to ``timeout`` seconds) until ``pid`` -- any process, not only a child --
    has exited; True if it has."""
    import select

    if _process_start_time(pid) != pid_start or _is_zombie(pid):
        return True
    try:
        fd = os.pidfd_open(pid)
    except (ProcessLookupError, OSError):
        return True
    try:
        if _process_start_time(pid) != pid_start:  # reused between the check and the open
            return True
        ready, _, _ = select.select([fd], [], [], timeout)
        return bool(ready)
    finally:
        os.close(fd)


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


def _resources(options: RunOptions) -> dict[str, Any]:
    """Docker's HostConfig resource fields (0 when unset)."""
    limits = options.cgroup_limits()
    return {"Memory": limits.memory or 0,
            "NanoCpus": round(limits.cpus * 1e9) if limits.cpus else 0,
            "PidsLimit": limits.pids if limits.pids is not None else None}


def _matches(c: Container, filters: dict[str, list[str]], ancestors: set[str]) -> bool:
    labels = c.config["Config"].get("Labels") or {}
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
            mounts = c.config.get("Mounts") or []
            ok = any(v in (m.get("Name"), m.get("Destination")) for m in mounts for v in values)
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


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return True
    return data[data.rfind(b")") + 2:][:1] in (b"Z", b"X")


def _wait_pid(pid: int, pid_start: int) -> int:
    """The exit code of ``pid``: reaped if it is our child, else polled until it is gone."""
    try:
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else \
            128 + os.WTERMSIG(status)
    except ChildProcessError:
        while _process_start_time(pid) == pid_start and not _is_zombie(pid):
            time.sleep(0.05)
        return 255  # not our child: its exit status is not ours to know


# Image layers never change once unpacked (a snapshot is content-addressed by its ChainID), so
# what a start reads from them is read once per process: a long-lived caller (the Python API)
# then skips a dozen syscalls per container.
@functools.lru_cache(maxsize=128)
def _layer_file(layers_top_first: tuple[Path, ...], path: str) -> bytes | None:
    return read_from_layers(list(layers_top_first), path)


@functools.lru_cache(maxsize=64)
def _etc_facts(layers_top_first: tuple[Path, ...]) -> tuple[os.stat_result | None, bool]:
    """The stat of the image's ``/etc`` directory (None if it has none), and whether it has
    ``/etc/mtab``."""
    import stat

    etc_meta = None
    for layer in layers_top_first:
        try:
            st = os.lstat(layer / "etc")
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode):
            etc_meta = st
        break
    return etc_meta, read_from_layers_exists(list(layers_top_first), "etc/mtab")


def read_from_layers(layers_top_first: list[Path], path: str) -> bytes | None:
    """A file's content as the overlay would show it, read without following symlinks:
    the first layer holding the path wins; a whiteout (char 0:0) or an opaque parent hides the
    layers below."""
    import stat

    rel = path.lstrip("/")
    parts = rel.split("/")
    for layer in layers_top_first:
        target = layer / rel
        try:
            st = os.lstat(target)
        except OSError:
            if _opaque_parent(layer, parts):
                return None
            continue
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
            return None
        if not stat.S_ISREG(st.st_mode) or st.st_size > 1 << 20:
            return None
        fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as f:
            return f.read()
    return None


def read_from_layers_exists(layers_top_first: list[Path], path: str) -> bool:
    """Whether ``path`` exists (as anything but a whiteout) in the merged layers."""
    import stat

    for layer in layers_top_first:
        try:
            st = os.lstat(layer / path)
        except OSError:
            if _opaque_parent(layer, path.split("/")):
                return False
            continue
        return not (stat.S_ISCHR(st.st_mode) and st.st_rdev == 0)
    return False


def _opaque_parent(layer: Path, parts: list[str]) -> bool:
    current = layer
    for part in parts[:-1]:
        current = current / part
        try:
            if os.getxattr(current, "trusted.overlay.opaque", follow_symlinks=False) == b"y":
                return True
        except OSError:
            pass
    return False


def _remove_tree(path: Path) -> None:
    from .store.snapshots import remove_tree

    if path.exists():
        remove_tree(path)
