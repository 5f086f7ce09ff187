"""``/containers/{id}/attach`` and ``/resize``: a client's stdio joined to a container's.

The container's supervisor (``barque-shim``) serves its stdio on a socket of 8-byte framed
messages (:mod:`barque.runtime.supervisor`); an attach relays between that socket and the
hijacked HTTP connection, on the event loop: the client's bytes become stdin frames (its
half-close the stdin's end), the container's output is written raw with a tty and in
Docker's multiplexed frames without, and the supervisor's exit frame ends it.

``docker run`` attaches *before* it starts the container, so nothing is lost: an attach to a
created container is recorded here, and the ``start`` that follows (:func:`start_held`)
starts it with its output held for the first client, which this attach then is.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time

from ... import attach as attaching
from ...errors import ConflictError, InvalidArgumentError
from ...runtime import supervisor as sv
from ..http import Hijack, Request, Response
from .common import MULTIPLEXED_STREAM, RAW_STREAM, Route, multiplexed_frame

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ...engine import Engine

_lock = threading.Lock()
class _HeldStart:
    """A client attached before the start: the start hands it the supervisor's session."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.session: attaching.AttachSession | None = None


#: Containers a client attached to before their start, per id.
_waiting_for_start: dict[str, _HeldStart] = {}
#: Running attach relays per container: (loop, supervisor writer), for ``resize``.
_relays: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.StreamWriter]]] = {}
#: Attaches accepted whose relay has not begun yet, per container: a ``resize`` waits for
#: them rather than connecting first (the first connection gets the held output).
_connecting: dict[str, int] = {}
#: The exit codes attach relays saw, for a ``wait`` on an AutoRemove container that is gone
#: by the time it asks (``docker run --rm`` waits with condition=removed); the latest few.
_exit_codes: dict[str, int] = {}
_EXIT_CODES_KEPT = 256


def seen_exit_code(container_id: str) -> int | None:
    """The exit code an attach relay saw for ``container_id``, if one did."""
    with _lock:
        return _exit_codes.get(container_id)


def _connecting_done(container_id: str) -> None:
    with _lock:
        left = _connecting.get(container_id, 0) - 1
        if left > 0:
            _connecting[container_id] = left
        else:
            _connecting.pop(container_id, None)


def start_held(engine: Engine, container_id: str) -> bool:
    """Start ``container_id`` with its output held for a client that attached before the
    start (``docker run``); False (nothing done) when no client waits."""
    with _lock:
        held = _waiting_for_start.get(container_id)
    if held is None:
        return False
    try:
        # The service's attached start: output held until this session connects, and a
        # start that fails removes an AutoRemove container, as for `barque run`.
        held.session = engine.containers.start_attached(container_id)
    finally:
        held.started.set()
    return True


def parse_detach_keys(text: str | None) -> bytes:
    """Docker's ``detachKeys``: comma-separated ``ctrl-<x>`` or single characters."""
    if text is None or text == "":
        return attaching.DETACH_KEYS
    out = bytearray()
    for part in text.split(","):
        if part.startswith("ctrl-") and len(part) == 6:
            key = part[5]
            if key.isalpha():
                out.append(ord(key.lower()) - ord("a") + 1)
                continue
            special = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}
            if key in special:
                out.append(special[key])
                continue
        elif len(part) == 1:
            out.append(ord(part))
            continue
        raise InvalidArgumentError(f"Invalid detach keys ({part}) provided")
    return bytes(out)


async def relay(container_id: str, supervisor: socket.socket, reader: asyncio.StreamReader,
                writer: asyncio.StreamWriter, early: bytes, *, stdin: bool, stdout: bool,
                stderr: bool, tty: bool, detach_keys: bytes) -> None:
    """Relay until the container exits, the client detaches, or the client goes away."""
    supervisor.setblocking(False)
    up_reader, up_writer = await asyncio.open_unix_connection(sock=supervisor)
    entry = (asyncio.get_running_loop(), up_writer)
    with _lock:
        _relays.setdefault(container_id, []).append(entry)
    _connecting_done(container_id)

    async def from_client() -> bool:
        """The client's bytes as stdin; True when the detach keys were typed."""
        matched = 0
        data = early
        while True:
            if data and stdin:
                detach = False
                if tty and detach_keys:
                    data, matched, detach = attaching.scan_detach(data, matched, detach_keys)
                if data:
                    up_writer.write(sv.encode(sv.STDIN, data))
                    await up_writer.drain()
                if detach:
                    return True
            try:
                data = await reader.read(65536)
            except ConnectionError:
                data = b""
            if not data:
                if stdin:  # the client's half-close: the container's stdin ends
                    up_writer.write(sv.encode(sv.STDIN))
                    await up_writer.drain()
                return False

    async def to_client() -> None:
        frames = sv.FrameReader()
        while True:
            chunk = await up_reader.read(65536)
            if not chunk:
                return
            for kind, payload in frames.feed(chunk):
                if kind == sv.EXIT:
                    with _lock:
                        _exit_codes[container_id] = struct.unpack(">i", payload)[0]
                        while len(_exit_codes) > _EXIT_CODES_KEPT:
                            del _exit_codes[next(iter(_exit_codes))]
                    await writer.drain()
                    return
                if (kind == sv.STDOUT and stdout) or (kind == sv.STDERR and stderr):
                    writer.write(payload if tty else multiplexed_frame(kind == sv.STDERR, payload))
            await writer.drain()

    output = asyncio.ensure_future(to_client())
    client = asyncio.ensure_future(from_client())
    try:
        done, _ = await asyncio.wait([output, client], return_when=asyncio.FIRST_COMPLETED)
        if output not in done and not client.result():
            await output  # stdin ended: the output goes on until the container exits
    except (ConnectionError, OSError):
        pass  # the client went away: the container runs on
    finally:
        for task in (output, client):
            task.cancel()
        with _lock:
            relays = _relays.get(container_id, [])
            if entry in relays:
                relays.remove(entry)
            if not relays:
                _relays.pop(container_id, None)
        up_writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await up_writer.wait_closed()


def container_attach(engine: Engine, request: Request) -> Hijack:
    containers = engine.containers
    container = containers.get(request.params["id"])
    config = container.model.config
    tty = bool(config.tty)
    detach_keys = parse_detach_keys(request.arg("detachKeys"))
    stdin = request.flag("stdin") and bool(config.open_stdin)
    stdout, stderr = request.flag("stdout"), request.flag("stderr")
    container_id = container.id
    held: _HeldStart | None = None
    if container.status not in ("created", "running", "paused"):
        raise ConflictError(f"You cannot attach to a stopped container {container_id}, "
                            "start it first")
    with _lock:
        _connecting[container_id] = _connecting.get(container_id, 0) + 1
    if container.status == "created":
        held = _HeldStart()
        with _lock:
            _waiting_for_start[container_id] = held

    def connect() -> socket.socket | None:
        """The supervisor's socket, once the container runs (None: it never started while
        the client was there, or it stopped)."""
        try:
            if held is not None:
                while not held.started.wait(0.25):
                    if containers.get(container_id).status != "created":
                        break  # started some other way (the CLI): attach as to a running one
                if held.started.is_set():
                    return held.session.socket if held.session is not None else None
            return containers.attach(container_id).socket
        except (ConflictError, LookupError):
            return None
        finally:
            if held is not None:
                with _lock:
                    if _waiting_for_start.get(container_id) is held:
                        del _waiting_for_start[container_id]

    async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                  early: bytes) -> None:
        waiting = asyncio.ensure_future(asyncio.to_thread(connect))
        try:
            supervisor = await asyncio.shield(waiting)
        except asyncio.CancelledError:
            waiting.add_done_callback(_close_result)
            _connecting_done(container_id)
            raise
        if supervisor is None:
            _connecting_done(container_id)
            return
        await relay(container_id, supervisor, reader, writer, early, stdin=stdin,
                    stdout=stdout, stderr=stderr, tty=tty, detach_keys=detach_keys)

    return Hijack(RAW_STREAM if tty else MULTIPLEXED_STREAM, run)


def _close_result(future: asyncio.Future[socket.socket | None]) -> None:
    if not future.cancelled() and future.exception() is None:
        result = future.result()
        if result is not None:
            result.close()


def container_resize(engine: Engine, request: Request) -> Response:
    """The tty's size: sent through the container's attach relays in this daemon, or on a
    connection of its own when none runs (``docker resize`` from another client)."""
    container = engine.containers.get(request.params["id"])
    rows, cols = request.integer("h", 0) or 0, request.integer("w", 0) or 0
    if rows < 0 or cols < 0 or rows > 0xFFFF or cols > 0xFFFF:
        raise InvalidArgumentError(f"invalid size: {rows}x{cols}")
    if container.status not in ("running", "paused"):
        raise ConflictError(f"Container {container.id} is not running")
    if not container.model.config.tty or not rows or not cols:
        return Response(200, b"", "text/plain; charset=utf-8")
    frame = sv.resize_frame(rows, cols)
    deadline = time.monotonic() + 5
    while True:
        with _lock:
            relays = list(_relays.get(container.id, []))
            connecting = _connecting.get(container.id, 0)
        if relays or not connecting or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    if relays:
        for loop, writer in relays:
            loop.call_soon_threadsafe(writer.write, frame)
    else:
        with engine.containers.attach(container.id) as session:
            session.socket.sendall(frame)
    return Response(200, b"", "text/plain; charset=utf-8")


ROUTES: list[Route] = [
    ("POST", "/containers/{id}/attach", container_attach),
    ("POST", "/containers/{id}/resize", container_resize),
]
