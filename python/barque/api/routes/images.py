"""``/images/...``: listing, inspecting, pulling, pushing, tagging, saving, loading,
importing, searching, pruning and removing images; ``/commit`` and ``/auth`` too, as they
make and fetch images."""

from __future__ import annotations

import base64
import binascii
import json
import queue
import shlex
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from fnmatch import fnmatchcase

from ... import models
from ...errors import ImageNotFoundError, InvalidArgumentError, InvalidReferenceError
from ...images import parse_created
from ...logs import parse_since
from ...progress import check_cancelled
from ...reference import Reference
from ...registry.auth import Credentials, normalize_auth_key
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
    unknown = set(filters) - {"reference", "dangling", "label", "before", "since"}
    if unknown:
        raise InvalidArgumentError(f"invalid filter '{sorted(unknown)[0]}'")
    # before/since IMAGE: those created before (after) that image, as dockerd compares.
    epoch = datetime.fromtimestamp(0, timezone.utc)
    before = [engine.images.get(n).created or epoch for n in filters.get("before", [])]
    since = [engine.images.get(n).created or epoch for n in filters.get("since", [])]
    out = []
    for image in engine.images.list(all=request.flag("all")):
        created = image.created or epoch
        if any(created >= limit for limit in before) or any(created <= limit
                                                             for limit in since):
            continue
        if "reference" in filters and not any(_reference_matches(p, image.tags)
                                              for p in filters["reference"]):
            continue
        if "dangling" in filters:
            wanted = filters["dangling"][-1].lower() in ("true", "1")
            if (not image.tags) != wanted:
                continue
        if "label" in filters and not _labels_match(image, filters["label"]):
            continue
        out.append(_image_summary(image))
    return json_response(out)


def image_inspect(engine: Engine, request: Request) -> Response:
    document = engine.images.get(request.params["name"]).inspect()
    return Response(200, models.encode(document) + b"\n")


class _JsonMessages:
    """A :class:`~barque.progress.Progress` that queues Docker's jsonmessage lines (what
    ``docker pull`` and ``docker push`` render):
    ``{"status": ..., "id": ..., "progressDetail": {...}}``."""

    def __init__(self, events: queue.Queue[tuple[str, object]]) -> None:
        self._events = events

    def send(self, document: dict[str, object]) -> None:
        """A line of the work's own (a push's digest and ``aux``)."""
        self._events.put(("line", _line(document)))

    def message(self, text: str) -> None:
        tag, sep, repository = text.partition(": Pulling from ")
        if sep:  # Docker's first line names the tag as its id
            self._events.put(("pulling", _line({"status": "Pulling from " + repository,
                                                "id": tag})))
        else:
            self.send({"status": text})

    def layer(self, layer_id: str, status: str, current: int | None = None,
              total: int | None = None) -> None:
        detail: dict[str, int] = {}
        if current is not None:
            detail["current"] = current
            if total:
                detail["total"] = total
        self.send({"status": status, "progressDetail": detail, "id": layer_id})


def _line(document: dict[str, object]) -> bytes:
    return json.dumps(document).encode() + b"\n"


def _error_line(error: BaseException) -> bytes:
    """A failure once the stream has begun: Docker's last line, which the CLI prints."""
    text = " ".join(str(error).split()) or type(error).__name__
    return _line({"errorDetail": {"message": text}, "error": text})


def _progress_stream(work: Callable[[_JsonMessages, threading.Event], None],
                     what: str) -> Response | Stream:
    """``work`` (a pull, a push) on a thread of its own, its reports streamed as they come.
    A failure before its first report (no such image, refused
    credentials) is an error status, as with dockerd; a later one the stream's last line. A
    client that goes away cancels the work."""
    events: queue.Queue[tuple[str, object]] = queue.Queue()
    cancel = threading.Event()

    def run() -> None:
        try:
            work(_JsonMessages(events), cancel)
        except BaseException as e:  # noqa: BLE001 - handed to the client, below
            events.put(("error", e))
        else:
            events.put(("done", None))

    threading.Thread(target=run, name=f"barque-api-{what}", daemon=True).start()
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
                assert isinstance(value, BaseException)
                yield _error_line(value)
        finally:
            cancel.set()

    return Stream(lines(), abandon=cancel.set)


def _registry_auth(request: Request) -> Credentials | None:
    """``X-Registry-Auth``: base64url JSON ``{username, password, serveraddress...}`` from
    the client's own login, for this request only (never stored, never logged). None when
    it carries no username (the client has no login for that registry)."""
    header = request.headers.get("x-registry-auth", "").strip()
    if not header:
        return None
    try:
        document = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except (ValueError, binascii.Error):
        raise InvalidArgumentError("invalid X-Registry-Auth header: not base64url JSON") \
            from None
    if not isinstance(document, dict):
        raise InvalidArgumentError("invalid X-Registry-Auth header: not a JSON object")
    username, password = document.get("username") or "", document.get("password") or ""
    if not username and isinstance(document.get("auth"), str) and document["auth"]:
        try:  # the config file's "auth" (base64 user:password), as some clients forward it
            username, _, password = base64.b64decode(document["auth"]).decode().partition(":")
        except (ValueError, binascii.Error):
            raise InvalidArgumentError("invalid X-Registry-Auth header: a bad 'auth'") \
                from None
    if not isinstance(username, str) or not isinstance(password, str):
        raise InvalidArgumentError("invalid X-Registry-Auth header: username and password "
                                   "must be strings")
    return Credentials(username, password) if username else None


def image_create(engine: Engine, request: Request) -> Response | Stream:
    """``docker pull`` (``fromImage``: a jsonmessage stream, see :func:`_progress_stream`)
    or ``docker import`` (``fromSrc``: ``-`` for the body, or a URL)."""
    if request.arg("fromSrc") is not None:
        return _image_import(engine, request)
    name = request.arg("fromImage") or ""
    if not name:
        raise InvalidArgumentError("fromImage is required")
    tag = request.arg("tag") or ""
    if "@" not in name and ":" not in name.rpartition("/")[2]:
        name += ("@" if tag.startswith("sha256:") else ":") + (tag or "latest")
    platform_arg = request.arg("platform") or None
    credentials = _registry_auth(request)

    def pull(progress: _JsonMessages, cancel: threading.Event) -> None:
        engine.images.pull(name, platform=platform_arg, progress=progress, cancel=cancel,
                           credentials=credentials)

    return _progress_stream(pull, "pull")


def _image_import(engine: Engine, request: Request) -> Response:
    """``docker import``: the answer is dockerd's, a jsonmessage whose status is the new
    image's ID (what the CLI prints). ``repo`` may hold the tag itself (the CLI sends
    ``repo=NAME:TAG``), or ``tag`` gives it apart."""
    source = request.arg("fromSrc") or ""
    if not source:
        raise InvalidArgumentError("fromSrc must be '-' (the request body) or a URL")
    if source != "-" and "://" not in source:
        source = "http://" + source  # dockerd's reading of a bare host/path
    repo, tag = request.arg("repo") or "", request.arg("tag") or ""
    if tag and not repo:
        raise InvalidArgumentError("a tag needs a repository to import to")
    reference = (repo + (":" + tag if tag else "")) or None
    image_id = engine.images.import_(
        request.stream if source == "-" else source, reference,
        changes=request.query.get("changes", []), message=request.arg("message") or "",
        source_name=source)
    return Response(200, _line({"status": image_id}))


def image_push(engine: Engine, request: Request) -> Response | Stream:
    """``docker push``: a jsonmessage stream as the pull's, ending with dockerd's
    ``TAG: digest: sha256:... size: N`` status and its ``aux`` (what docker-py reads)."""
    name = request.params["name"]
    tag = request.arg("tag") or ""
    repository = Reference.parse(name, default_tag=None)
    if tag or repository.tag or repository.digest:
        references = [f"{name}:{tag}" if tag else name]
    else:  # no tag at all: every local tag of the repository (docker push --all-tags)
        references = sorted(t for image in engine.images.list() for t in image.tags
                            if Reference.parse(t).name == repository.name)
        if not references:
            raise ImageNotFoundError("An image does not exist locally with the tag: "
                                     f"{repository.familiar_name}")
    credentials = _registry_auth(request)

    def push(progress: _JsonMessages, cancel: threading.Event) -> None:
        for reference in references:
            result = engine.images.push(reference, progress=progress, cancel=cancel,
                                        credentials=credentials)
            pushed = result.reference.rpartition(":")[2]
            progress.send({"status": f"{pushed}: digest: {result.digest} size: {result.size}"})
            progress.send({"progressDetail": {},
                           "aux": {"Tag": pushed, "Digest": result.digest, "Size": result.size}})

    return _progress_stream(push, "push")


def image_history(engine: Engine, request: Request) -> Response:
    """``docker history``: Docker's ``Created`` is in Unix seconds, ``Tags`` null but for
    the image itself."""
    rows = []
    for row in engine.images.history(request.params["name"]):
        created = parse_created(row["Created"])
        rows.append({"Id": row["Id"], "Created": int(created.timestamp()) if created else 0,
                     "CreatedBy": row["CreatedBy"], "Tags": row["Tags"] or None,
                     "Size": row["Size"], "Comment": row["Comment"]})
    return json_response(rows)


def image_tag(engine: Engine, request: Request) -> Response:
    """``docker tag``: 201 and no body, as dockerd."""
    repo, tag = request.arg("repo") or "", request.arg("tag") or ""
    if not repo:
        raise InvalidReferenceError("repository name must have at least one component")
    engine.images.tag(request.params["name"], repo + (":" + tag if tag else ""))
    return Response(201, None)


class _ChunkWriter:
    """The binary file a save writes into, its writes handed to the response's thread in
    chunks of about 1 MiB through a short queue (memory stays bounded); a client gone away
    (``cancel``) makes the next write raise, which stops the save."""

    def __init__(self, chunks: queue.Queue[tuple[str, object]], cancel: threading.Event
                 ) -> None:
        self._chunks, self._cancel = chunks, cancel
        self._pending = bytearray()

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._pending += data
        if len(self._pending) >= 1 << 20:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if not self._pending:
            return
        chunk, self._pending = bytes(self._pending), bytearray()
        while True:
            check_cancelled(self._cancel, "save")
            try:
                self._chunks.put(("chunk", chunk), timeout=0.25)
                return
            except queue.Full:
                continue


def _save(engine: Engine, names: list[str]) -> Stream:
    """``docker save``: the tar streams as it is written; an unknown name is a 404 before
    anything is sent, a failure later ends the stream short (the client sees a truncated
    tar, as with dockerd)."""
    chunks: queue.Queue[tuple[str, object]] = queue.Queue(maxsize=8)
    cancel = threading.Event()

    def run() -> None:
        out = _ChunkWriter(chunks, cancel)
        try:
            # A file as far as save writes to it (write, flush), not a declared IO[bytes].
            engine.images.save(names, out, cancel=cancel)  # type: ignore[arg-type]
            out.flush()
        except BaseException as e:  # noqa: BLE001 - handed to the client, below
            chunks.put(("error", e))
        else:
            chunks.put(("done", None))

    threading.Thread(target=run, name="barque-api-save", daemon=True).start()
    first = chunks.get()
    if first[0] == "error":
        assert isinstance(first[1], BaseException)
        raise first[1]

    def body() -> Iterator[bytes]:
        kind, value = first
        try:
            while kind == "chunk":
                assert isinstance(value, bytes)
                yield value
                kind, value = chunks.get()
            if kind == "error":
                assert isinstance(value, BaseException)
                raise value
        finally:
            cancel.set()

    return Stream(body(), content_type="application/x-tar", abandon=cancel.set)


def image_get(engine: Engine, request: Request) -> Stream:
    return _save(engine, [request.params["name"]])


def images_get(engine: Engine, request: Request) -> Stream:
    names = [n for n in request.query.get("names", []) if n]
    if not names:
        raise InvalidArgumentError("no images named: give names=IMAGE (one or more)")
    return _save(engine, names)


def images_load(engine: Engine, request: Request) -> Response:
    """``docker load``: the body is the archive, read as it arrives; all or nothing (the
    service stages it whole before the store changes), so a truncated tar is an error
    status and no image. The answer is dockerd's ``{"stream": "Loaded image: ...\\n"}``
    lines."""
    lines = engine.images.load(request.stream)
    return Response(200, b"".join(_line({"stream": line + "\n"}) for line in lines))


def images_search(engine: Engine, request: Request) -> Response:
    """``docker search``: a private registry's catalog (``HOST/TERM``) or Docker Hub."""
    term = request.arg("term") or ""
    if not term:
        raise InvalidArgumentError("term is required")
    limit = request.integer("limit", 25) or 25
    if not 1 <= limit <= 100:
        raise InvalidArgumentError(f"limit {limit} is outside the range of [1, 100]")
    unknown = set(request.filters()) - {"is-official", "is-automated", "stars"}
    if unknown:
        raise InvalidArgumentError(f"invalid filter '{sorted(unknown)[0]}'")
    return json_response([{"description": r.description, "is_automated": r.is_automated,
                           "is_official": r.is_official, "name": r.name,
                           "star_count": r.star_count}
                          for r in engine.images.search(term, limit=limit)])


def _labels_match(image: Image, wanted: list[str]) -> bool:
    """Docker's ``label`` filter: every ``KEY`` or ``KEY=VALUE`` holds."""
    labels = (image.config.get("config") or {}).get("Labels") or {}
    return all(labels.get(k) == v if sep else k in labels
               for k, sep, v in (item.partition("=") for item in wanted))


def images_prune(engine: Engine, request: Request) -> Response:
    """``docker image prune``: dangling images, or with ``dangling=false`` every unused one;
    ``until`` (a time or a duration ago) and ``label``/``label!`` narrow it as in dockerd."""
    filters = request.filters()
    unknown = set(filters) - {"dangling", "until", "label", "label!"}
    if unknown:
        raise InvalidArgumentError(f"invalid filter '{sorted(unknown)[0]}'")
    dangling = filters.get("dangling", ["true"])[-1].lower()
    if dangling not in ("true", "false", "1", "0"):
        raise InvalidArgumentError(f"invalid filter 'dangling={dangling}'")
    until: float | None = None
    if filters.get("until"):
        try:
            until = parse_since(filters["until"][-1])
        except InvalidArgumentError:
            raise InvalidArgumentError(f"invalid value for 'until': {filters['until'][-1]!r} "
                                       "(a timestamp, an RFC 3339 time, or a duration such "
                                       "as 24h)") from None
    labels, not_labels = filters.get("label", []), filters.get("label!", [])

    def matches(image: Image) -> bool:
        if until is not None and (image.created is None or image.created.timestamp() >= until):
            return False
        if labels and not _labels_match(image, labels):
            return False
        return not (not_labels and any(_labels_match(image, [one]) for one in not_labels))

    report = engine.images.prune(all=dangling in ("false", "0"), matches=matches)
    return json_response({"ImagesDeleted": report.deleted or None,
                          "SpaceReclaimed": report.space_reclaimed})


def _config_changes(document: object) -> list[str]:
    """A commit's Config (what overrides the container's in the image) as the Dockerfile
    instructions barque's commit applies; a key it cannot apply is refused, not dropped."""
    if document is None:
        return []
    if not isinstance(document, dict):
        raise InvalidArgumentError("the commit's config must be a JSON object")
    changes: list[str] = []
    for key, value in document.items():
        if value in (None, "", [], {}):
            continue
        if key in ("Cmd", "Entrypoint"):
            words = [value] if isinstance(value, str) else value
            changes.append(f"{key.upper()} {json.dumps(words)}")
        elif key == "Env" and isinstance(value, list):
            changes += [f"ENV {shlex.quote(str(item))}" for item in value if "=" in str(item)]
        elif key == "Labels" and isinstance(value, dict):
            changes += [f"LABEL {shlex.quote(f'{k}={v}')}" for k, v in value.items()]
        elif key == "ExposedPorts" and isinstance(value, dict):
            changes += [f"EXPOSE {port}" for port in value]
        elif key == "Volumes" and isinstance(value, dict):
            changes.append(f"VOLUME {json.dumps(list(value))}")
        elif key in ("User", "WorkingDir") and isinstance(value, str):
            changes.append(f"{'WORKDIR' if key == 'WorkingDir' else 'USER'} {value}")
        else:
            raise InvalidArgumentError(f"commit: the config's {key!r} is not supported by "
                                       "barque's daemon (supported: Cmd, Entrypoint, Env, "
                                       "ExposedPorts, Labels, User, Volumes, WorkingDir)")
    return changes


def commit(engine: Engine, request: Request) -> Response:
    """``docker commit``: 201 ``{"Id": ...}``. The body's Config goes first, ``changes``
    after (so an explicit ``--change`` wins, as in dockerd)."""
    body = request.body.strip()
    try:
        config = json.loads(body) if body else None
    except ValueError as e:
        raise InvalidArgumentError(f"invalid JSON in the commit's config: {e}") from None
    changes = _config_changes(config) + request.query.get("changes", [])
    image_id = engine.containers.commit(
        request.arg("container") or "", request.arg("repo") or None,
        request.arg("tag") or None, changes=changes, message=request.arg("comment") or "",
        author=request.arg("author") or "", pause=request.flag("pause", True))
    return json_response({"Id": image_id}, 201)


def auth(engine: Engine, request: Request) -> Response:
    """``docker login``: the credentials are checked against the registry, not saved (the
    client keeps them and sends them back as X-Registry-Auth)."""
    try:
        document = json.loads(request.body or b"{}")
    except ValueError as e:
        raise InvalidArgumentError(f"invalid JSON: {e}") from None
    if not isinstance(document, dict):
        raise InvalidArgumentError("the login must be a JSON object")
    username, password = document.get("username") or "", document.get("password") or ""
    if not isinstance(username, str) or not isinstance(password, str) or not username:
        raise InvalidArgumentError("a login needs a username and a password (strings)")
    server = document.get("serveraddress") or None
    if server is not None and not isinstance(server, str):
        raise InvalidArgumentError("serveraddress must be a string")
    # The CLI names Docker Hub by its v1 URL: the registry is the host of what it sends.
    engine.images.login(normalize_auth_key(server) if server else None, username, password,
                        save=False)
    return json_response({"IdentityToken": "", "Status": "Login Succeeded"})


def image_remove(engine: Engine, request: Request) -> Response:
    """``docker rmi``: the service's report is Docker's already (``[{"Untagged": ...},
    {"Deleted": ...}]``)."""
    return json_response(engine.images.remove(request.params["name"],
                                              force=request.flag("force")))


ROUTES: list[Route] = [
    ("GET", "/images/json", images_list),
    ("POST", "/images/create", image_create),
    ("POST", "/images/load", images_load),
    ("POST", "/images/prune", images_prune),
    ("GET", "/images/search", images_search),
    ("GET", "/images/get", images_get),
    # An image name may hold slashes (registry/repo:tag): the rest of the path is the name.
    ("GET", "/images/(?P<name>.+)/json", image_inspect),
    ("GET", "/images/(?P<name>.+)/history", image_history),
    ("GET", "/images/(?P<name>.+)/get", image_get),
    ("POST", "/images/(?P<name>.+)/tag", image_tag),
    ("POST", "/images/(?P<name>.+)/push", image_push),
    ("DELETE", "/images/(?P<name>.+)", image_remove),
    ("POST", "/commit", commit),
    ("POST", "/auth", auth),
]
