"""``/containers/...``: create, list, inspect, start, stop, kill, wait, logs, remove."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import msgspec

from ... import models
from ...errors import ContainerNotFoundError, InvalidArgumentError
from ..http import Request, Response, Stream, json_response
from .common import MULTIPLEXED_STREAM, RAW_STREAM, Route, multiplexed_frame, not_yet

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ...containers import Container
    from ...engine import Engine


def _status_text(container: Container) -> str:
    from ...humanize import human_duration

    now = time.time()
    if container.status in ("running", "paused"):
        up = "Up " + human_duration(now - container.started_at)
        return up + " (Paused)" if container.status == "paused" else up
    if container.status == "exited":
        return (f"Exited ({container.exit_code}) "
                f"{human_duration(now - container.finished_at)} ago")
    return "Created"


def _container_summary(engine: Engine, container: Container, size: bool) -> dict[str, object]:
    from ...containers import command_of

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
    from .attach import start_held

    if not start_held(engine, container.id):  # a client attached first: output held for it
        engine.containers.start(container.id)
    return Response(204)


def container_stop(engine: Engine, request: Request) -> Response:
    container = engine.containers.get(request.params["id"])
    if not _running(container):
        # Still a stop by hand: it cancels a restart waiting out its delay.
        engine.containers.stop(container.id)
        return Response(304)  # Docker: already stopped
    timeout = request.integer("t")
    if request.arg("signal"):
        raise InvalidArgumentError("stop's signal parameter is not supported by barque yet "
                                   "(set the container's StopSignal)")
    engine.containers.stop(container.id, 10 if timeout is None or timeout < 0 else timeout)
    return Response(204)


def container_kill(engine: Engine, request: Request) -> Response:
    from ...containers import parse_signal

    engine.containers.kill(request.params["id"], parse_signal(request.arg("signal") or "KILL"))
    return Response(204)


def container_wait(engine: Engine, request: Request) -> Stream:
    """``POST /containers/{id}/wait``. The waiting is done here in steps of at most 0.25 s
    (woken at once by the process's exit, through its pidfd) rather than in one blocking
    ``ContainerService.wait``: a client that goes away then frees its thread within a step,
    so abandoned waits never use up the pool."""
    from ... import procfs

    condition = request.arg("condition") or "not-running"
    if condition not in ("not-running", "next-exit", "removed"):
        raise InvalidArgumentError(f"invalid condition: {condition!r}")
    containers = engine.containers
    initial = containers.get(request.params["id"])  # a 404 before the headers
    container_id = initial.id
    abandoned = threading.Event()

    def until_started() -> None:
        """For next-exit and removed: wait for a run that began after the request (a
        created container's first start, or a stopped one's next), which may already be
        over when seen: `docker run` waits before it starts, and `true` is quick."""
        if initial.status == "created":
            while not abandoned.is_set() and containers.get(container_id).status == "created":
                abandoned.wait(0.02)
        elif condition == "next-exit" and not _running(initial):
            while not abandoned.is_set():
                current = containers.get(container_id)
                if current.started_at != initial.started_at:
                    return
                abandoned.wait(0.02)

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
            if condition != "not-running":
                until_started()
            until_stopped()
            if abandoned.is_set():
                return
            code = containers.wait(container_id)  # stopped: its recorded exit code
        except ContainerNotFoundError:
            # Removed meanwhile (an AutoRemove container): its code, if an attach saw it.
            from .attach import seen_exit_code

            seen = seen_exit_code(container_id)
            for _ in range(50):  # the attach's relay may be a moment behind the removal
                if seen is not None or abandoned.is_set():
                    break
                abandoned.wait(0.02)
                seen = seen_exit_code(container_id)
            code = seen or 0
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
            yield data if tty else multiplexed_frame(entry.stream == "stderr", data)

    content_type = RAW_STREAM if tty else MULTIPLEXED_STREAM
    return Stream(chunks(), content_type=content_type, abandon=abandoned.set)


ROUTES: list[Route] = [
    ("GET", "/containers/json", containers_list),
    ("POST", "/containers/create", container_create),
    ("GET", "/containers/{id}/json", container_inspect),
    ("POST", "/containers/{id}/start", container_start),
    ("POST", "/containers/{id}/stop", container_stop),
    ("POST", "/containers/{id}/kill", container_kill),
    ("POST", "/containers/{id}/wait", container_wait),
    ("GET", "/containers/{id}/logs", container_logs),
    ("DELETE", "/containers/{id}", container_remove),
    ("POST", "/containers/{id}/exec", not_yet("exec", "use barque exec on this host")),
]
