"""``/volumes/...``: list, create, inspect, remove."""

from __future__ import annotations

import msgspec

from ... import models
from ..http import Request, Response, json_response
from .common import Route

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ...engine import Engine


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


ROUTES: list[Route] = [
    ("GET", "/volumes", volumes_list),
    ("POST", "/volumes/create", volume_create),
    ("GET", "/volumes/{name}", volume_inspect),
    ("DELETE", "/volumes/{name}", volume_remove),
]
