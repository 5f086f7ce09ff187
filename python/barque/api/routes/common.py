"""What every route module shares: the API versions, the route type, dockerd's headers and
the answer for a path barque does not serve yet."""

from __future__ import annotations

import struct
from collections.abc import Callable

from ... import __version__
from ..http import Hijack, Request, Response, Stream, message_response

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ...engine import Engine

#: The API version barque answers with (``_ping``'s ``Api-Version``, ``/version``): the
#: models' (Docker 27). Clients then prefix their paths with it.
API_VERSION = "1.47"
#: Docker's own floor; docker-py refuses servers below it.
MIN_API_VERSION = "1.24"
#: The highest path prefix accepted: what the docker CLI on this machine speaks (28.2), so
#: a client pinned to it (``DOCKER_API_VERSION=1.50``) is served too.
MAX_API_VERSION = "1.50"

#: A route's handler: blocking, run on the server's pool (see :mod:`barque.api.http`).
RouteHandler = Callable[["Engine", Request], "Response | Stream | Hijack"]
#: ``(method, path pattern, handler)``; ``{name}`` in a pattern matches one path segment,
#: a ``(?P<name>...)`` group whatever it says.
Route = tuple[str, str, RouteHandler]


#: The content types of a container's output: as is with a tty, framed without.
RAW_STREAM = "application/vnd.docker.raw-stream"
MULTIPLEXED_STREAM = "application/vnd.docker.multiplexed-stream"


def multiplexed_frame(stderr: bool, data: bytes) -> bytes:
    """Docker's multiplexed-stream frame (logs, attach, exec without a tty): the stream (1
    stdout, 2 stderr), 3 zero bytes, the payload's length (big-endian u32), the payload."""
    return struct.pack(">BxxxL", 2 if stderr else 1, len(data)) + data


def version_tuple(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    return int(major), int(minor)


def common_headers() -> list[tuple[str, str]]:
    """What dockerd puts on every response."""
    return [("Api-Version", API_VERSION), ("Docker-Experimental", "false"),
            ("Ostype", "linux"), ("Server", f"barque/{__version__} (linux)")]


def not_yet(what: str, instead: str) -> RouteHandler:
    """A route barque's daemon does not serve yet: Docker's 501 (not implemented) with a line
    saying what to do instead, rather than a 404 that reads like a typo."""
    def handler(engine: Engine, request: Request) -> Response:
        return message_response(501, f"{what} is not served by barque's daemon yet: {instead}")
    return handler
