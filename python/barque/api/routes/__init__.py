"""Docker's Engine API paths over barque's services: parse -> one service call -> render.

One module per resource (:mod:`.system`, :mod:`.images`, :mod:`.containers`,
:mod:`.volumes`), each exporting its ``ROUTES``; :class:`Router` matches a request against
all of them. Every handler is blocking and runs on the server's thread pool (see
:mod:`barque.api.http`). Shapes are Docker's (API v1.47): the typed documents of
:mod:`barque.models` where barque has them (``ContainerInspect``, ``ImageInspect``,
``Volume``), Docker's summary objects for the listings.
"""

from __future__ import annotations

import re

from ..http import Handler, Request, Response, message_response
from . import attach, containers, images, system, volumes
from .common import (API_VERSION, MAX_API_VERSION, MIN_API_VERSION, Route, RouteHandler,
                     common_headers, not_yet, version_tuple)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ...engine import Engine

__all__ = ["API_VERSION", "MAX_API_VERSION", "MIN_API_VERSION", "Router", "common_headers"]

#: Every route, in match order (the first match wins).
ROUTES: list[Route] = [
    *system.ROUTES,
    *images.ROUTES,
    *attach.ROUTES,
    *containers.ROUTES,
    *volumes.ROUTES,
    ("POST", "/build", not_yet("build", "barque has no image builder yet")),
]


class Router:
    """Routes ``(method, path)`` to a handler bound to one engine."""

    def __init__(self, engine: Engine, routes: list[Route] | None = None) -> None:
        self.engine = engine
        self._routes: list[tuple[str, re.Pattern[str], RouteHandler]] = []
        for method, pattern, handler in ROUTES if routes is None else routes:
            regex = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern) + "$")
            self._routes.append((method, regex, handler))

    def __call__(self, request: Request) -> Handler | Response:
        if request.version is not None:
            wanted = version_tuple(request.version)
            if wanted > version_tuple(MAX_API_VERSION):
                return message_response(400, f"client version {request.version} is too new. "
                                             f"Maximum supported API version is "
                                             f"{MAX_API_VERSION}")
            if wanted < version_tuple(MIN_API_VERSION):
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
