"""Docker's Engine API paths over barque's services: parse -> one service call -> render.

Every handler is blocking and runs on the server's thread pool (see :mod:`barque.api.http`).
Shapes are Docker's (API v1.47): the typed documents of :mod:`barque.models` where barque has
them (``ContainerInspect``, ``ImageInspect``, ``Volume``), Docker's summary objects for the
listings.
"""

from __future__ import annotations

import json
import os
import platform
import queue
import re
import struct
import threading
import time
from collections.abc import Callable, Iterator
from fnmatch import fnmatchcase

import msgspec

from .. import __version__, models
from ..errors import ContainerNotFoundError, InvalidArgumentError
from .http import Handler, Request, Response, Stream, json_response, message_response

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..containers import Container
    from ..engine import Engine
    from ..images import Image

#: The API version barque answers with (``_ping``'s ``Api-Version``, ``/version``): the
#: models' (Docker 27). Clients then prefix their paths with it.
API_VERSION = "1.47"
#: Docker's own floor; docker-py refuses servers below it.
MIN_API_VERSION = "1.24"
#: The highest path prefix accepted: what the docker CLI on this machine speaks (28.2), so
#: a client pinned to it (``DOCKER_API_VERSION=1.50``) is served too.
MAX_API_VERSION = "1.50"

#: Go's names for the machine (``/version``'s ``Arch``).
_GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386",
            "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


def _version_tuple(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    return int(major), int(minor)


def common_headers() -> list[tuple[str, str]]:
    """What dockerd puts on every response."""
    return [("Api-Version", API_VERSION), ("Docker-Experimental", "false"),
            ("Ostype", "linux"), ("Server", f"barque/{__version__} (linux)")]


class Router:
    """Routes ``(method, path)`` to a handler bound to one engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._routes: list[tuple[str, re.Pattern[str], Callable[[Engine, Request],
                                                                Response | Stream]]] = []
        for method, pattern, handler in _ROUTES:
            regex = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern) + "$")
            self._routes.append((method, regex, handler))

    def __call__(self, request: Request) -> Handler | Response:
        if request.version is not None:
            wanted = _version_tuple(request.version)
            if wanted > _version_tuple(MAX_API_VERSION):
                return message_response(400, f"client version {request.version} is too new. "
                                             f"Maximum supported API version is "
                                             f"{MAX_API_VERSION}")
            if wanted < _version_tuple(MIN_API_VERSION):
                return message_response(400, f"client version {request.version} is too old. "
                                             f"Minimum supported API version is "
                                             f"{MIN_API_VERSION}, please upgrade your client "
                                             "to a newer version")
        method = "GET" if request.method == "HEAD" else request.method
        for route_method, regex, handler in self._routes:
            if route_method != method:
                continue
            match = regex.match(request.path)
            if match:
                request.params = match.groupdict()
                engine = self.engine
                return lambda r: handler(engine, r)
        return message_response(404, "page not found")


# -- system ----------------------------------------------------------------------------------

def ping(engine: Engine, request: Request) -> Response:
    headers = [("Builder-Version", "1"), ("Cache-Control", "no-cache, no-store, must-revalidate"),
               ("Pragma", "no-cache")]
    return Response(200, b"" if request.method == "HEAD" else b"OK",
                    "text/plain; charset=utf-8", headers)


def version(engine: Engine, request: Request) -> Response:
    arch = _GO_ARCH.get(platform.machine(), platform.machine())
    details = {"ApiVersion": API_VERSION, "Arch": arch, "BuildTime": "", "Experimental": "false",
               "GitCommit": "", "GoVersion": "", "KernelVersion": platform.release(),
               "MinAPIVersion": MIN_API_VERSION, "Os": "linux"}
    return json_response({
        "Platform": {"Name": f"barque {__version__}"},
        "Components": [{"Name": "Engine", "Version": __version__, "Details": details}],
        "Version": __version__, "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "", "GoVersion": "", "Os": "linux", "Arch": arch,
        "KernelVersion": platform.release(), "BuildTime": ""})


def info(engine: Engine, request: Request) -> Response:
    from ..cli.info import server_info

    document = server_info(engine)
    document.update({
        "ID": "", "Name": os.uname().nodename, "DockerRootDir": str(engine.root),
        "Runtimes": {document["DefaultRuntime"]: {"path": "barque-shim"}},
        "Swarm": {"LocalNodeState": "inactive"}, "SecurityOptions": ["name=seccomp,profile=builtin"],
        "IndexServerAddress": "https://index.docker.io/v1/", "Warnings": None,
    })
    return json_response(document)


# -- images ----------------------------------------------------------------------------------

def _image_summary(image: Image) -> dict[str, object]:
    created = image.created
    labels = (image.config.get("config") or {}).get("Labels") or None
    return {"Containers": -1, "Created": int(created.timestamp()) if created else 0,
            "Id": image.id, "Labels": labels, "ParentId": "", "RepoDigests": image.digests,
            "RepoTags": image.tags, "SharedSize": -1, "Size": image.size}


def _reference_matches(pattern: str, tags: list[str]) -> bool:
    """``docker images REPO[:TAG]`` (the ``reference`` filter): a shell pattern on the
    familiar name, matched against the repository alone when it names no tag."""
    has_tag = ":" in pattern.rpartition("/")[2]
    for tag in tags:
        repository = tag.rpartition(":")[0] if ":" in tag.rpartition("/")[2] else tag
        if fnmatchcase(tag if has_tag else repository, pattern):
            return True
    return False


def images_list(engine: Engine, request: Request) -> Response:
    filters = request.filters()
    unknown = set(filters) - {"reference", "dangling", "label"}
    if unknown:
        raise InvalidArgumentError(f"invalid filter '{sorted(unknown)[0]}'")
    out = []
    for image in engine.images.list(all=request.flag("all")):
        if "reference" in filters and not any(_reference_matches(p, image.tags)
                                              for p in filters["reference"]):
            continue
        if "dangling" in filters:
            wanted = filters["dangling"][-1].lower() in ("true", "1")
            if (not image.tags) != wanted:
                continue
        summary = _image_summary(image)
        labels = summary["Labels"] if isinstance(summary["Labels"], dict) else {}
        if "label" in filters and not all(
                labels.get(k) == v if sep else k in labels
                for k, sep, v in (item.partition("=") for item in filters["label"])):
            continue
        out.append(summary)
    return json_response(out)


def image_inspect(engine: Engine, request: Request) -> Response:
    document = engine.images.get(request.params["name"]).inspect()
    return Response(200, models.encode(document) + b"\n")


class _JsonMessages:
    """A :class:`~barque.progress.Progress` that queues Docker's jsonmessage lines (what
    ``docker pull`` renders): ``{"status": ..., "id": ..., "progressDetail": {...}}``."""

    def __init__(self, events: queue.Queue[tuple[str, object]]) -> None:
        self._events = events

    def _put(self, document: dict[str, object]) -> None:
        self._events.put(("line", json.dumps(document).encode() + b"\n"))

    def message(self, text: str) -> None:
        tag, sep, repository = text.partition(": Pulling from ")
        if sep:  # Docker's first line names the tag as its id
            self._events.put(("pulling", json.dumps(
                {"status": "Pulling from " + repository, "id": tag}).encode() + b"\n"))
        else:
            self._put({"status": text})

    def layer(self, layer_id: str, status: str, current: int | None = None,
              total: int | None = None) -> None:
        detail: dict[str, int] = {}
        if current is not None:
            detail["current"] = current
            if total:
                detail["total"] = total
        self._put({"status": status, "progressDetail": detail, "id": layer_id})


def image_create(engine: Engine, request: Request) -> Response | Stream:
    """``docker pull``: the pull runs on a thread of its own, its reports streamed as they
    come. A pull that fails before its first report (no such repository, refused
    credentials) is an error status, as with dockerd; a later failure is the stream's last
    line (``{"errorDetail": {"message": ...}, "error": ...}``). A client that goes away
    cancels the pull (what it fetched stays, to be resumed)."""
    if request.arg("fromSrc") is not None:
        raise InvalidArgumentError("importing an image (fromSrc) is not served by the daemon "
                                   "yet; use barque import")
    name = request.arg("fromImage") or ""
    if not name:
        raise InvalidArgumentError("fromImage is required")
    tag = request.arg("tag") or ""
    if "@" not in name and ":" not in name.rpartition("/")[2]:
        name += ("@" if tag.startswith("sha256:") else ":") + (tag or "latest")
    events: queue.Queue[tuple[str, object]] = queue.Queue()
    cancel = threading.Event()
    platform_arg = request.arg("platform") or None

    def pull() -> None:
        try:
            engine.images.pull(name, platform=platform_arg, progress=_JsonMessages(events),
                               cancel=cancel)
        except BaseException as e:  # noqa: BLE001 - handed to the client, below
            events.put(("error", e))
        else:
            events.put(("done", None))

    threading.Thread(target=pull, name="barque-api-pull", daemon=True).start()
    # "Pulling from" comes before the manifest is fetched: held back until the pull has got
    # further, so a missing image or refused credentials are still an error status.
    held: list[object] = []
    first = events.get()
    while first[0] == "pulling":
        held.append(first[1])
        first = events.get()
    if first[0] == "error":
        assert isinstance(first[1], BaseException)
        raise first[1]

    def lines() -> Iterator[bytes]:
        kind, value = first
        try:
            for line in held:
                assert isinstance(line, bytes)
                yield line
            while kind in ("line", "pulling"):
                assert isinstance(value, bytes)
                yield value
                kind, value = events.get()
            if kind == "error":
                text = " ".join(str(value).split()) or type(value).__name__
                yield json.dumps({"errorDetail": {"message": text}, "error": text}).encode() \
                    + b"\n"
        finally:
            cancel.set()

    return Stream(lines(), abandon=cancel.set)


def image_remove(engine: Engine, request: Request) -> Response:
    """``docker rmi``: the service's report is Docker's already (``[{"Untagged": ...},
    {"Deleted": ...}]``)."""
    return json_response(engine.images.remove(request.params["name"],
                                              force=request.flag("force")))


# -- containers ------------------------------------------------------------------------------

def _status_text(container: Container) -> str:
    from ..humanize import human_duration

    now = time.time()
    if container.status in ("running", "paused"):
        up = "Up " + human_duration(now - container.started_at)
        return up + " (Paused)" if container.status == "paused" else up
    if container.status == "exited":
        return (f"Exited ({container.exit_code}) "
                f"{human_duration(now - container.finished_at)} ago")
    return "Created"


def _container_summary(engine: Engine, container: Container, size: bool) -> dict[str, object]:
    from ..containers import command_of

    stored = container.model
    network = stored.host_config.network_mode or "none"
    summary: dict[str, object] = {
        "Id": container.id, "Names": ["/" + container.name], "Image": container.image,
        "ImageID": container.image_id, "Command": " ".join(command_of(stored.config)),
        "Created": int(container.created), "Ports": [],
        "Labels": stored.config.labels or {}, "State": container.status,
        "Status": _status_text(container), "HostConfig": {"NetworkMode": network},
        "NetworkSettings": {"Networks": {network: models.to_builtins(
            models.EndpointSettings())}},
        "Mounts": [_mount_summary(m) for m in models.to_builtins(stored.mounts or [])],
    }
    if size:
        summary["SizeRw"], summary["SizeRootFs"] = engine.containers.sizes(container)
    return summary


def _mount_summary(mount: dict[str, object]) -> dict[str, object]:
    keys = ("Type", "Name", "Source", "Destination", "Driver", "Mode", "RW", "Propagation")
    return {k: mount[k] for k in keys if k in mount}


def containers_list(engine: Engine, request: Request) -> Response:
    found = engine.containers.list(all=request.flag("all"), filters=request.filters() or None)
    limit = request.integer("limit")
    if limit is not None and limit > 0:
        found = found[:limit]
    size = request.flag("size")
    return json_response([_container_summary(engine, c, size) for c in found])


def container_inspect(engine: Engine, request: Request) -> Response:
    container = engine.containers.get(request.params["id"])
    return Response(200, models.encode(container.inspect(size=request.flag("size"))) + b"\n")


#: What clients send for "no particular network": the docker CLI ``default``, docker-py
#: and compose ``bridge`` or nothing.
_DEFAULT_NETWORKS = ("", "default", "bridge")
NO_BRIDGE_WARNING = ("barque has no bridge network yet; the container gets NetworkMode "
                     "\"none\" (ask for \"none\" or \"host\" to silence this)")


def container_create(engine: Engine, request: Request) -> Response:
    body = models.decode(request.body or b"{}", models.ContainerCreate)
    warnings: list[str] = []
    host = body.host_config
    if host.network_mode in _DEFAULT_NETWORKS:
        # barque has no bridge yet: the default network is none, as for `barque run`, and
        # the endpoint asked for under the default's name is that network's.
        endpoints = {("none" if name in _DEFAULT_NETWORKS else name): endpoint
                     for name, endpoint in (body.networking_config.endpoints_config
                                            or {}).items()}
        body = msgspec.structs.replace(
            body, host_config=msgspec.structs.replace(host, network_mode="none"),
            networking_config=models.NetworkingConfig(endpoints_config=endpoints or None))
        warnings.append(NO_BRIDGE_WARNING)
    container = engine.containers.create_from(body, name=request.arg("name") or None)
    return json_response({"Id": container.id, "Warnings": [*warnings, *container.warnings]},
                         201)


def _running(container: Container) -> bool:
    return container.status in ("running", "paused")


def container_start(engine: Engine, request: Request) -> Response:
    container = engine.containers.get(request.params["id"])
    if _running(container):
        return Response(304)  # Docker: already started
    engine.containers.start(container.id)
    return Response(204)


def container_stop(engine: Engine, request: Request) -> Response:
    container = engine.containers.get(request.params["id"])
    if not _running(container):
        return Response(304)  # Docker: already stopped
    timeout = request.integer("t")
    if request.arg("signal"):
        raise InvalidArgumentError("stop's signal parameter is not supported by barque yet "
                                   "(set the container's StopSignal)")
    engine.containers.stop(container.id, 10 if timeout is None or timeout < 0 else timeout)
    return Response(204)


def container_kill(engine: Engine, request: Request) -> Response:
    from ..containers import parse_signal

    engine.containers.kill(request.params["id"], parse_signal(request.arg("signal") or "KILL"))
    return Response(204)


def container_wait(engine: Engine, request: Request) -> Stream:
    """``POST /containers/{id}/wait``. The waiting is done here in steps of at most 0.25 s
    (woken at once by the process's exit, through its pidfd) rather than in one blocking
    ``ContainerService.wait``: a client that goes away then frees its thread within a step,
    so abandoned waits never use up the pool."""
    from .. import procfs

    condition = request.arg("condition") or "not-running"
    if condition not in ("not-running", "next-exit", "removed"):
        raise InvalidArgumentError(f"invalid condition: {condition!r}")
    containers = engine.containers
    container_id = containers.get(request.params["id"]).id  # a 404 before the headers
    abandoned = threading.Event()

    def until_stopped() -> None:
        while not abandoned.is_set():
            current = containers.get(container_id)  # records an exit it finds
            if not _running(current):
                return
            if current.pid:
                procfs.wait_gone(current.pid, procfs.start_time(current.pid), 0.25)
            else:
                abandoned.wait(0.05)

    def result() -> Iterator[bytes]:
        try:
            if condition == "next-exit":
                # The next exit: of this run if it runs, else of the next start's.
                while not abandoned.is_set() and not _running(containers.get(container_id)):
                    abandoned.wait(0.05)
            until_stopped()
            if abandoned.is_set():
                return
            code = containers.wait(container_id)  # stopped: its recorded exit code
        except ContainerNotFoundError:
            code = 0  # removed meanwhile (an AutoRemove container): nothing left to wait for
        if condition == "removed":
            while not abandoned.is_set():
                try:
                    containers.get(container_id)
                except ContainerNotFoundError:
                    break
                abandoned.wait(0.05)
        if not abandoned.is_set():
            yield models.encode({"StatusCode": code, "Error": None}) + b"\n"

    return Stream(result(), abandon=abandoned.set)


def container_remove(engine: Engine, request: Request) -> Response:
    engine.containers.remove(request.params["id"], force=request.flag("force"),
                             volumes=request.flag("v"))
    return Response(204)


def _frame(stream: str, data: bytes) -> bytes:
    """Docker's multiplexed-stream frame: stream (1 stdout, 2 stderr), 3 zero bytes, the
    payload's length (big-endian u32), then the payload."""
    return struct.pack(">BxxxL", 2 if stream == "stderr" else 1, len(data)) + data


def container_logs(engine: Engine, request: Request) -> Stream:
    containers = engine.containers
    container = containers.get(request.params["id"])
    stdout, stderr = request.flag("stdout"), request.flag("stderr")
    if not (stdout or stderr):
        raise InvalidArgumentError("Bad parameters: you must choose at least one stream")
    tail_text = request.arg("tail") or "all"
    tail = None if tail_text == "all" else request.integer("tail")
    since = request.arg("since") or None
    until = request.arg("until") or None
    entries = containers.logs(container.id, tail=tail, follow=request.flag("follow"),
                              since=since if since not in ("0", None) else None,
                              until=until if until not in ("0", None) else None)
    timestamps = request.flag("timestamps")
    tty = container.model.config.tty
    # A follower whose client left stops at the next entry (its thread is held until the
    # container writes or stops: the service's follow cannot be woken from outside yet).
    abandoned = threading.Event()

    def chunks() -> Iterator[bytes]:
        for entry in entries:
            if abandoned.is_set():
                return
            if not (stdout if entry.stream == "stdout" else stderr):
                continue
            data = (entry.time.encode() + b" " if timestamps else b"") + entry.data
            yield data if tty else _frame(entry.stream, data)

    content_type = ("application/vnd.docker.raw-stream" if tty
                    else "application/vnd.docker.multiplexed-stream")
    return Stream(chunks(), content_type=content_type, abandon=abandoned.set)


# -- volumes ---------------------------------------------------------------------------------

class VolumeCreate(msgspec.Struct, rename="pascal"):
    """``POST /volumes/create``'s body."""

    name: str = ""
    driver: str = "local"
    driver_opts: dict[str, str] | None = None
    labels: dict[str, str] | None = None


def volumes_list(engine: Engine, request: Request) -> Response:
    volumes = engine.volumes.list(filters=request.filters() or None)
    documents = [models.to_builtins(v.inspect()) for v in volumes]
    return json_response({"Volumes": documents, "Warnings": None})


def volume_create(engine: Engine, request: Request) -> Response:
    body = models.decode(request.body or b"{}", VolumeCreate)
    volume = engine.volumes.create(body.name or None, driver=body.driver or "local",
                                   labels=body.labels, options=body.driver_opts)
    return Response(201, models.encode(volume.inspect()) + b"\n")


def volume_inspect(engine: Engine, request: Request) -> Response:
    return Response(200, models.encode(engine.volumes.get(request.params["name"]).inspect())
                    + b"\n")


def volume_remove(engine: Engine, request: Request) -> Response:
    engine.volumes.remove(request.params["name"], force=request.flag("force"))
    return Response(204)


def _not_yet(what: str, instead: str) -> Callable[[Engine, Request], Response]:
    """A route barque's daemon does not serve yet: Docker's 501 (not implemented) with a line
    saying what to do instead, rather than a 404 that reads like a typo."""
    def handler(engine: Engine, request: Request) -> Response:
        return message_response(501, f"{what} is not served by barque's daemon yet: {instead}")
    return handler


_ROUTES: list[tuple[str, str, Callable[[Engine, Request], Response | Stream]]] = [
    ("GET", "/_ping", ping),
    ("GET", "/version", version),
    ("GET", "/info", info),
    ("GET", "/images/json", images_list),
    ("POST", "/images/create", image_create),
    # An image name may hold slashes (registry/repo:tag): the rest of the path is the name.
    ("GET", "/images/(?P<name>.+)/json", image_inspect),
    ("DELETE", "/images/(?P<name>.+)", image_remove),
    ("GET", "/containers/json", containers_list),
    ("POST", "/containers/create", container_create),
    ("GET", "/containers/{id}/json", container_inspect),
    ("POST", "/containers/{id}/start", container_start),
    ("POST", "/containers/{id}/stop", container_stop),
    ("POST", "/containers/{id}/kill", container_kill),
    ("POST", "/containers/{id}/wait", container_wait),
    ("GET", "/containers/{id}/logs", container_logs),
    ("DELETE", "/containers/{id}", container_remove),
    ("POST", "/containers/{id}/attach", _not_yet(
        "attach", "run detached (docker run -d), then docker wait and docker logs")),
    ("POST", "/containers/{id}/exec", _not_yet("exec", "use barque exec on this host")),
    ("POST", "/build", _not_yet("build", "barque has no image builder yet")),
    ("GET", "/volumes", volumes_list),
    ("POST", "/volumes/create", volume_create),
    ("GET", "/volumes/{name}", volume_inspect),
    ("DELETE", "/volumes/{name}", volume_remove),
]
