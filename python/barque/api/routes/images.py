"""``/images/...``: listing, inspecting, pulling and removing images."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from fnmatch import fnmatchcase

from ... import models
from ...errors import InvalidArgumentError
from ..http import Request, Response, Stream, json_response
from .common import Route

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ...engine import Engine
    from ...images import Image


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


ROUTES: list[Route] = [
    ("GET", "/images/json", images_list),
    ("POST", "/images/create", image_create),
    # An image name may hold slashes (registry/repo:tag): the rest of the path is the name.
    ("GET", "/images/(?P<name>.+)/json", image_inspect),
    ("DELETE", "/images/(?P<name>.+)", image_remove),
]
