"""HTTP/1.1 for the Engine API: h11 over asyncio streams, requests, responses, error statuses.

A handler is a plain (blocking) function of a :class:`Request`; it runs on the server's thread
pool, never on the event loop, so a slow engine call (a ``wait``, a pull) never holds up
another client. It returns a :class:`Response` (a whole body) or a :class:`Stream` (chunks
produced by a blocking iterator, each pulled on the pool too; its status and headers are
written and flushed before the first chunk is asked for, which ``POST /wait`` clients rely
on). An exception becomes Docker's ``{"message": ...}`` with the status :func:`status_of`
gives.
"""

from __future__ import annotations

import asyncio
import http
import io
import json
import logging
import re
import sys
from collections.abc import Awaitable, Callable, Iterator
from functools import cached_property
from urllib.parse import parse_qs, unquote, urlsplit

import h11

from .. import errors

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO

log = logging.getLogger("barque.api")

#: A request body larger than this is refused (413) before it is read: the endpoints served
#: so far take small JSON documents only.
MAX_BODY = 16 << 20

#: How much h11 may buffer while looking for the end of a request's head.
MAX_HEAD = 64 << 10

#: The requests whose body is a tarball of any size (``docker load``, ``docker import``, a
#: copy into a container): not held in memory nor bounded by MAX_BODY, but read by the
#: handler from the connection as it goes (:attr:`Request.stream`).
STREAMED_BODIES = [("POST", re.compile(r"/images/load")),
                   ("POST", re.compile(r"/images/create")),
                   ("PUT", re.compile(r"/containers/[^/]+/archive"))]


class Request:
    """One request: ``path`` without its ``/vX.Y`` prefix (``version`` holds that, or None)."""

    def __init__(self, method: str, path: str, query: dict[str, list[str]],
                 headers: dict[str, str], body: bytes, version: str | None) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.version = version
        #: The path's ``{name}`` parts, set by the router.
        self.params: dict[str, str] = {}
        #: The body still on the connection, for a request of STREAMED_BODIES.
        self.body_reader: _BodyReader | None = None

    @cached_property
    def stream(self) -> BinaryIO:
        """The body as a binary file: read from the connection as it is asked for, for the
        requests of STREAMED_BODIES (their ``body`` stays empty; on the pool's thread, as
        handlers run), else over ``body``."""
        if self.body_reader is not None:
            return io.BufferedReader(self.body_reader, 1 << 20)
        return io.BytesIO(self.body)

    def arg(self, name: str, default: str | None = None) -> str | None:
        """The last value of query parameter ``name``."""
        values = self.query.get(name)
        return values[-1] if values else default

    def flag(self, name: str, default: bool = False) -> bool:
        """A boolean query parameter as Docker reads one: ``0``, ``false``, ``no`` and the
        empty string are false, anything else true."""
        value = self.arg(name)
        if value is None:
            return default
        return value.strip().lower() not in ("", "0", "false", "no")

    def integer(self, name: str, default: int | None = None) -> int | None:
        value = self.arg(name)
        if value is None or value == "":
            return default
        try:
            return int(value)
        except ValueError:
            raise errors.InvalidArgumentError(
                f"invalid value for {name!r}: {value!r} is not an integer") from None

    def filters(self) -> dict[str, list[str]]:
        """The ``filters`` parameter, in both of Docker's encodings: ``{"k": {"v": true}}``
        (what current clients send) and ``{"k": ["v"]}`` (API < 1.22, docker-py's)."""
        text = self.arg("filters")
        if not text:
            return {}
        try:
            raw = json.loads(text)
        except ValueError as e:
            raise errors.InvalidArgumentError(f"invalid filters: {e}") from None
        if not isinstance(raw, dict):
            raise errors.InvalidArgumentError("invalid filters: not a JSON object")
        out: dict[str, list[str]] = {}
        for key, values in raw.items():
            if isinstance(values, dict):
                out[key] = [str(v) for v, on in values.items() if on]
            elif isinstance(values, list):
                out[key] = [str(v) for v in values]
            else:
                raise errors.InvalidArgumentError(f"invalid filters: {key!r} has no values")
        return out


class Response:
    """A whole response. ``body`` None: no body at all (204, 304, HEAD)."""

    def __init__(self, status: int, body: bytes | None = None,
                 content_type: str = "application/json",
                 headers: list[tuple[str, str]] | None = None) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers or []


class Stream:
    """A chunked response; ``chunks`` is blocking (each ``next`` runs on the thread pool).
    ``abandon`` is called (on the event loop) when the client goes away while a chunk is
    being produced: the producer can then stop early (a pull is cancelled)."""

    def __init__(self, chunks: Iterator[bytes], status: int = 200,
                 content_type: str = "application/json",
                 headers: list[tuple[str, str]] | None = None,
                 abandon: Callable[[], None] | None = None) -> None:
        self.chunks = chunks
        self.status = status
        self.content_type = content_type
        self.headers = headers or []
        self.abandon = abandon


class Hijack:
    """An answer that takes the connection over (``attach``, ``exec start``): the server
    answers ``101 UPGRADED`` (``Upgrade: tcp``) when the client asked to upgrade, as the
    docker CLI and docker-py do, else a bare ``200`` without a length, as dockerd does; then
    ``relay(reader, writer, early)`` runs on the event loop with the raw connection, ``early``
    being what the client sent past its request. The connection closes when it returns."""

    def __init__(self, content_type: str,
                 relay: Callable[[asyncio.StreamReader, asyncio.StreamWriter, bytes],
                                 Awaitable[None]]) -> None:
        self.content_type = content_type
        self.relay = relay


def json_response(value: object, status: int = 200) -> Response:
    return Response(status, json.dumps(value).encode() + b"\n")


def message_response(status: int, message: str) -> Response:
    """Docker's error document: ``{"message": "..."}``, one line."""
    return json_response({"message": " ".join(message.split())}, status)


Handler = Callable[[Request], "Response | Stream | Hijack"]
#: Runs a blocking function off the event loop (the server's pool).
Offload = Callable[[Callable[[], object]], Awaitable[object]]

#: barque's errors -> the status Docker answers with; the first class of an error's MRO
#: found here wins, so a subclass may differ from its base (a VolumeInUseError is a 409
#: ConflictError), and the builtin bases barque's errors have catch the rest (LookupError
#: 404, ValueError/TypeError 400). Any other exception is a 500: a KeyError of a bug is no
#: "not found".
_STATUS: dict[type[BaseException], int] = {
    errors.ImageNotFoundError: 404,
    errors.ContainerNotFoundError: 404,
    errors.VolumeNotFoundError: 404,
    errors.ContainerPathNotFoundError: 404,
    errors.ManifestUnknownError: 404,
    errors.PlatformNotFoundError: 404,
    # Docker: "multiple IDs found with provided prefix" is an invalid parameter.
    errors.AmbiguousImageError: 400,
    errors.ConflictError: 409,
    errors.ImageInUseError: 409,
    errors.AuthenticationError: 401,
    errors.InvalidArgumentError: 400,
    errors.InvalidReferenceError: 400,
    errors.InvalidPlatformError: 400,
    errors.InvalidArgumentTypeError: 400,
    errors.ContainerStartError: 500,
    errors.RegistryError: 500,
    errors.StoreError: 500,
    LookupError: 404,
    ValueError: 400,
    TypeError: 400,
}


def status_of(error: BaseException) -> int:
    """The HTTP status for ``error`` (500 for anything not barque's or not mapped)."""
    if not isinstance(error, errors.BarqueError):
        return 500
    for cls in type(error).__mro__:
        status = _STATUS.get(cls)
        if status is not None:
            return status
    return 500


def error_response(error: BaseException) -> Response:
    status = status_of(error)
    if isinstance(error, errors.BarqueError):
        text = str(error) or type(error).__name__
    elif isinstance(error, OSError) and error.strerror:
        text = error.strerror + (f": {error.filename}" if error.filename else "")
    else:  # a bug: the client gets its one line, the log its traceback
        text = f"{type(error).__name__}: {error}"
        log.error("internal error", exc_info=error)
    return message_response(status, text)


# -- the connection loop -------------------------------------------------------------------

async def serve_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                           route: Callable[[Request], Handler | Response],
                           offload: Offload, common_headers: list[tuple[str, str]]) -> None:
    """Serve one client's requests, one after the other (keep-alive), until it closes."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
    try:
        while True:
            request = await _read_request(conn, reader)
            if request is None:
                return
            if isinstance(request, Response):  # refused before its body was read
                await _send_whole(conn, writer, request, "GET", common_headers)
                return
            found = route(request)
            if isinstance(found, Response):
                answer: Response | Stream | Hijack = found
            else:
                handler = found
                try:
                    result = await offload(lambda: handler(request))
                    assert isinstance(result, (Response, Stream, Hijack))
                    answer = result
                except Exception as e:  # noqa: BLE001 - every failure is an error response
                    answer = error_response(e)
                if request.body_reader is not None:
                    # What the handler left of the body (all of it, refused early): read to
                    # its end, so the client, still sending, gets the answer.
                    while conn.their_state is h11.SEND_BODY:
                        await _next_event(conn, reader)
            if isinstance(answer, Hijack):
                log.debug("%s %s -> hijacked", request.method, request.path)
                await _hijack(conn, writer, request, answer, common_headers, reader)
                return
            if log.isEnabledFor(logging.DEBUG):
                log.debug("%s %s -> %d", request.method, request.path, answer.status)
            if isinstance(answer, Stream):
                if not await _send_stream(conn, reader, writer, answer, offload,
                                          common_headers):
                    return
            else:
                await _send_whole(conn, writer, answer, request.method, common_headers)
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return
            conn.start_next_cycle()
    except h11.RemoteProtocolError as e:
        if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            # h11 can still answer: say why, as Go's server does for a bad request line.
            body = json.dumps({"message": f"bad request: {e}"}).encode()
            writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
                         b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    except (ConnectionError, asyncio.IncompleteReadError):
        pass  # the client went away; nothing to answer
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionError, OSError):
            pass


async def _next_event(conn: h11.Connection, reader: asyncio.StreamReader) -> object:
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        conn.receive_data(await reader.read(65536))


async def _read_request(conn: h11.Connection, reader: asyncio.StreamReader
                        ) -> Request | Response | None:
    """The next request with its whole body; None when the client closed between requests;
    a Response when the request is refused before its body is read (too large)."""
    event = await _next_event(conn, reader)
    if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
        return None
    if not isinstance(event, h11.Request):
        raise h11.RemoteProtocolError(f"unexpected {type(event).__name__}")
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in event.headers}
    target = urlsplit(event.target.decode("latin-1"))
    query = parse_qs(target.query, keep_blank_values=True)
    path, version = split_version(unquote(target.path))
    request = Request(event.method.decode("ascii"), path, query, headers, b"", version)
    if any(request.method == method and pattern.fullmatch(path)
           for method, pattern in STREAMED_BODIES):
        request.body_reader = _BodyReader(conn, reader, asyncio.get_running_loop())
        return request
    length = headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY:
        return message_response(413, f"request body too large: {length} bytes, at most "
                                     f"{MAX_BODY}")
    body = bytearray()
    while True:
        event = await _next_event(conn, reader)
        if isinstance(event, h11.Data):
            body += event.data
            if len(body) > MAX_BODY:
                return message_response(413, f"request body too large: more than {MAX_BODY}"
                                             " bytes")
        elif isinstance(event, h11.EndOfMessage):
            break
        elif isinstance(event, h11.ConnectionClosed):
            return None
    request.body = bytes(body)
    return request


class _BodyReader(io.RawIOBase):
    """A request's body read from its connection by the handler's thread: each read that
    needs more waits for the event loop to receive the next piece."""

    def __init__(self, conn: h11.Connection, reader: asyncio.StreamReader,
                 loop: asyncio.AbstractEventLoop) -> None:
        self._conn, self._reader, self._loop = conn, reader, loop
        self._pending = b""
        self._ended = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._pending and not self._ended:
            try:
                event = asyncio.run_coroutine_threadsafe(
                    _next_event(self._conn, self._reader), self._loop).result()
            except h11.RemoteProtocolError as e:
                raise ConnectionError(f"the request body was cut short: {e}") from None
            if isinstance(event, h11.Data):
                self._pending = bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self._ended = True
            else:
                raise ConnectionError("the client left before the end of its request body")
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count


def split_version(path: str) -> tuple[str, str | None]:
    """``/v1.47/containers/json`` -> (``/containers/json``, ``"1.47"``)."""
    if path.startswith("/v") and "/" in path[1:]:
        head, _, rest = path[2:].partition("/")
        major, dot, minor = head.partition(".")
        if dot and major.isdigit() and minor.isdigit():
            return "/" + rest, head
    return path, None


def _headers(status: int, content_type: str | None, extra: list[tuple[str, str]],
             common: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    out = [(k.encode(), v.encode()) for k, v in common + extra]
    if content_type:
        out.append((b"Content-Type", content_type.encode()))
    return out


def _reason(status: int) -> bytes:
    try:
        return http.HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


async def _send_whole(conn: h11.Connection, writer: asyncio.StreamWriter, answer: Response,
                      method: str, common: list[tuple[str, str]]) -> None:
    body = answer.body
    headers = _headers(answer.status, answer.content_type if body is not None else None,
                       answer.headers, common)
    if answer.status not in (204, 304):
        headers.append((b"Content-Length", str(len(body or b"")).encode()))
    writer.write(conn.send(h11.Response(status_code=answer.status, headers=headers,
                                        reason=_reason(answer.status))))
    if body and method != "HEAD":
        writer.write(conn.send(h11.Data(data=body)))
    writer.write(conn.send(h11.EndOfMessage()))
    await writer.drain()


async def _hijack(conn: h11.Connection, writer: asyncio.StreamWriter, request: Request,
                  answer: Hijack, common: list[tuple[str, str]],
                  reader: asyncio.StreamReader) -> None:
    head = b""
    if request.headers.get("upgrade", "").lower() == "tcp":
        headers = _headers(101, answer.content_type,
                           [("Connection", "Upgrade"), ("Upgrade", "tcp")], common)
        try:
            head = conn.send(h11.InformationalResponse(status_code=101, headers=headers,
                                                       reason=b"UPGRADED")) or b""
        except h11.LocalProtocolError:  # asked without Connection: Upgrade
            head = b""
    if not head:
        # No upgrade asked for: dockerd writes a 200 head and then the raw stream, to the
        # connection's end (no length, no chunks), which h11 cannot say; written by hand.
        head = b"\r\n".join([b"HTTP/1.1 200 OK"] + [k + b": " + v for k, v in _headers(
            200, answer.content_type, [], common)] + [b"", b""])
    writer.write(head)
    early = bytes(conn.trailing_data[0])
    await writer.drain()
    await answer.relay(reader, writer, early)


_END = object()


async def _client_gone(conn: h11.Connection, reader: asyncio.StreamReader) -> None:
    """Returns when the client closes its end; bytes it sends meanwhile (its next request)
    are kept for h11."""
    while True:
        data = await reader.read(65536)
        if not data:
            return
        conn.receive_data(data)


async def _send_stream(conn: h11.Connection, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter, answer: Stream, offload: Offload,
                       common: list[tuple[str, str]]) -> bool:
    """Send ``answer``; False when the client went away before its end (the connection is
    then done with)."""
    headers = _headers(answer.status, answer.content_type, answer.headers, common)
    headers.append((b"Transfer-Encoding", b"chunked"))
    writer.write(conn.send(h11.Response(status_code=answer.status, headers=headers,
                                        reason=_reason(answer.status))))
    await writer.drain()  # the client may wait for the headers before anything else
    chunks = answer.chunks
    gone = asyncio.ensure_future(_client_gone(conn, reader))
    finished = False
    try:
        while True:
            produce = asyncio.ensure_future(offload(lambda: next(chunks, _END)))
            await asyncio.wait([produce, gone], return_when=asyncio.FIRST_COMPLETED)
            if not produce.done():
                # The client left while the chunk is being made (a `wait` on a container
                # that runs on): its thread finishes on its own; nothing is sent any more.
                produce.add_done_callback(_discard)
                return False
            try:
                chunk = produce.result()
            except Exception as e:  # noqa: BLE001 - the status is sent: end the stream
                log.error("stream failed after its headers were sent: %s", e,
                          exc_info=sys.exc_info())
                return False
            if chunk is _END:
                break
            assert isinstance(chunk, bytes)
            if chunk:
                writer.write(conn.send(h11.Data(data=chunk)))
                await writer.drain()
        writer.write(conn.send(h11.EndOfMessage()))
        await writer.drain()
        finished = True
    finally:
        gone.cancel()
        if finished:
            close = getattr(chunks, "close", None)
            if close is not None:
                await offload(close)
        elif answer.abandon is not None:
            answer.abandon()
    return True


def _discard(future: asyncio.Future[object]) -> None:
    """Collect an abandoned chunk's outcome, so asyncio does not report it as unretrieved."""
    if not future.cancelled():
        future.exception()
