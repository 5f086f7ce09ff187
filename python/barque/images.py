"""The image service: pull, push, save, load, import, list, look up, tag, remove, prune,
history, inspect and search images -- every image operation of the CLI is one call here.

Long calls (pull, push, save, load, import) report through a :class:`barque.progress.Progress`
(never by printing) and take a ``cancel`` event (``threading.Event`` or anything with
``is_set()``): a cancelled call raises OperationCancelledError and leaves the store as a killed
one would (a pull's partial blobs resumable, nothing of a load or import).

Names are resolved Docker's way: a full or short image ID (``sha256:`` optional, any unique hex
prefix), a tag (``busybox`` means ``docker.io/library/busybox:latest``) or a digest reference.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from functools import cached_property

import msgspec

from . import arguments
from .digest import chain_ids, sha256_digest, validate_digest
from .errors import (
    AmbiguousImageError,
    AuthenticationError,
    ConflictError,
    DigestMismatchError,
    ImageNotFoundError,
    InvalidManifestError,
    InvalidReferenceError,
    RegistryError,
    StoreError,
)
from .overlay import MAX_LAYERS
from .progress import CancellingProgress, NullProgress, Progress, check_cancelled
from .reference import Reference
from .store.metadata import ImageRecord, LayerRecord, NewImage
from .store.snapshots import current_boot_id

TYPE_CHECKING = False  # typing itself costs start-up time; checkers see the imports
if TYPE_CHECKING:
    from pathlib import Path
    from typing import IO, Any

    from .models.image import ImageInspect
    from .progress import Cancel
    from .registry.search import SearchResult

    from ._native import BlobIngest, IngestResult
    from .engine import Engine
    from .registry.auth import Credentials
    from .registry.client import RegistryClient
    from .registry.manifest import Descriptor
    from .store import Store

_HEX = frozenset("0123456789abcdef")


def familiar(ref: str) -> str:
    """``docker.io/library/busybox:latest`` -> ``busybox:latest`` (what Docker prints)."""
    return Reference.parse(ref).familiar


def parse_created(created: str) -> datetime | None:
    """An image config's ``created`` (RFC 3339, Go's nanoseconds allowed) as a datetime in
    UTC when it has no zone; None when empty or unparsable."""
    if not created:
        return None
    text = created.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    # Go writes nanoseconds; Python parses at most microseconds.
    if "." in text:
        head, _, rest = text.partition(".")
        frac = "".join(c for c in rest if c.isdigit())
        zone = rest[len(frac):]
        text = f"{head}.{frac[:6]}{zone}"
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


class Image:
    """A local image. Attributes are read from the store when the object is made."""

    def __init__(self, record: ImageRecord, layer_sizes: list[int] | None = None) -> None:
        self._record = record
        #: Unpacked size of each layer (history shows these, as Docker does).
        self._layer_sizes = layer_sizes or [layer.blob_size for layer in record.layers]

    def __repr__(self) -> str:
        return f"<Image {self.short_id} {' '.join(self.tags)}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Image) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def id(self) -> str:
        """The config digest, ``sha256:<hex>``."""
        return self._record.id

    @property
    def short_id(self) -> str:
        return self.id[7:19]

    @property
    def tags(self) -> list[str]:
        """Familiar tag names, e.g. ``busybox:latest`` or ``127.0.0.1:5000/fixtures/layers:1``."""
        return [familiar(t) for t in self._record.repo_tags]

    @property
    def digests(self) -> list[str]:
        return [familiar(d) for d in self._record.repo_digests]

    @property
    def size(self) -> int:
        return self._record.size

    @cached_property
    def config(self) -> dict[str, Any]:
        """The full image config document (architecture, os, config, rootfs, history...)."""
        config: dict[str, Any] = json.loads(self._record.config)
        return config

    @property
    def created(self) -> datetime | None:
        return parse_created(self._record.created)

    @property
    def layers(self) -> tuple[LayerRecord, ...]:
        return self._record.layers

    @property
    def manifest_digest(self) -> str:
        return self._record.manifest_digest

    @property
    def attrs(self) -> dict[str, Any]:
        """Docker-compatible ``image inspect`` JSON (:meth:`inspect`'s document as dicts)."""
        from .models import to_builtins

        attrs: dict[str, Any] = to_builtins(self.inspect())
        return attrs

    def inspect(self) -> ImageInspect:
        """``docker image inspect``'s document, typed (``barque.models.image``): the config
        blob's ``config`` decoded into Docker's ImageConfig, so its keys are Docker's."""
        from .errors import InvalidArgumentError
        from .models import convert
        from .models.image import ImageConfig, ImageInspect, ImageMetadata, RootFS

        cfg = self.config
        try:
            config = convert(cfg.get("config") or {}, ImageConfig)
        except InvalidArgumentError:
            # A config Docker could not decode either (a number where a string belongs):
            # inspect still shows the rest, as the image stays usable for rmi and save.
            config = ImageConfig()
        last_tag = self._record.last_tag_time
        return ImageInspect(
            id=self.id, repo_tags=self.tags, repo_digests=self.digests,
            comment=cfg.get("comment", ""), created=self._record.created,
            docker_version=cfg.get("docker_version", ""), author=cfg.get("author", ""),
            config=config,
            architecture=cfg.get("architecture", ""), os=cfg.get("os", ""), size=self.size,
            root_fs=RootFS(layers=[layer.diff_id for layer in self.layers]),
            metadata=ImageMetadata(
                last_tag_time=_rfc3339(last_tag) if last_tag else "0001-01-01T00:00:00Z"),
            **({"variant": cfg["variant"]} if cfg.get("variant") else {}))

    @property
    def history(self) -> list[dict[str, Any]]:
        """Docker's ``image history``: newest first, sizes taken from the matching layers."""
        entries = self.config.get("history") or []
        sizes = self._layer_sizes
        rows: list[dict[str, Any]] = []
        index = 0
        for entry in entries:
            empty = bool(entry.get("empty_layer"))
            size = 0
            if not empty and index < len(sizes):
                size = sizes[index]
                index += 1
            rows.append({"Id": "<missing>", "Created": entry.get("created", ""),
                         "CreatedBy": entry.get("created_by", ""), "Size": size,
                         "Comment": entry.get("comment", ""), "Tags": []})
        rows.reverse()
        if rows:
            rows[0]["Id"] = self.id
            rows[0]["Tags"] = self.tags
        return rows


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")


class PruneReport(msgspec.Struct):
    deleted: list[dict[str, str]]
    space_reclaimed: int


class ImageUsage(msgspec.Struct):
    """The images' share of the store (see :meth:`ImageService.usage`)."""

    total: int
    active: int
    size: int
    reclaimable: int
    #: Bytes of partial downloads no live pull is writing (part of ``reclaimable``).
    stale_partials: int


class ImageService:
    """Images in one store. Obtain it as ``Engine(...).images``."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @property
    def _store(self) -> Store:
        return self._engine.store

    # -- lookup ---------------------------------------------------------------------------

    def _record(self, image_id: str) -> ImageRecord:
        record = self._store.metadata.get_image(image_id)
        if record is None:
            raise ImageNotFoundError(f"No such image: {image_id}")
        return record

    def _image(self, record: ImageRecord) -> Image:
        return Image(record, [self._store.snapshots.size(layer.chain_id) for layer in record.layers])

    def resolve_id(self, name: str) -> str:
        """The image ID that ``name`` (ID, short ID, tag or digest reference) designates."""
        meta = self._store.metadata
        text = arguments.text(name, "name").strip()
        hex_part = text[7:] if text.startswith("sha256:") else text
        if text.startswith("sha256:") or (len(hex_part) == 64 and set(hex_part) <= _HEX):
            if not hex_part or not set(hex_part) <= _HEX:
                raise ImageNotFoundError(f"No such image: {name}")
            return self._by_prefix(hex_part, name)
        try:
            ref = Reference.parse(text)
        except InvalidReferenceError:
            if text and set(text) <= _HEX:
                return self._by_prefix(text, name)
            raise
        found = meta.image_for_digest(str(ref.with_tag(None))) if ref.digest else None
        if found is None and ref.tag is not None and not ref.digest:
            found = meta.image_for_tag(str(ref))
        if found is None and ref.digest and ref.tag:
            found = meta.image_for_digest(f"{ref.name}@{ref.digest}")
        if found is not None:
            return found
        if set(text) <= _HEX:
            return self._by_prefix(text, name)
        raise ImageNotFoundError(f"No such image: {ref.familiar}")

    def _by_prefix(self, hex_prefix: str, name: str) -> str:
        matches = self._store.metadata.find_ids_by_prefix(hex_prefix)
        if not matches:
            raise ImageNotFoundError(f"No such image: {name}")
        if len(matches) > 1:
            raise AmbiguousImageError(f"multiple images match prefix {name!r}")
        return matches[0]

    def get(self, name: str) -> Image:
        """The local image ``name`` designates; raises ImageNotFoundError."""
        return self._image(self._record(self.resolve_id(name)))

    def exists(self, name: str) -> bool:
        try:
            self.resolve_id(name)
        except (ImageNotFoundError, AmbiguousImageError):
            return False
        return True

    def list(self, all: bool = False) -> list[Image]:
        """All local images, newest first (``all`` is accepted for Docker parity: barque keeps
        no intermediate images, so it changes nothing yet)."""
        images = [self._image(r) for r in self._store.metadata.images()]
        epoch = datetime.fromtimestamp(0, timezone.utc)
        images.sort(key=lambda i: i.created or epoch, reverse=True)
        return images

    # -- tags -----------------------------------------------------------------------------

    def tag(self, source: str, target: str) -> None:
        """Point the tag ``target`` at the image ``source`` designates (moving it from any
        other image). Atomic and idempotent. Raises ImageNotFoundError, AmbiguousImageError,
        InvalidReferenceError (a bad name, a digest reference)."""
        arguments.text(target, "target")
        image_id = self.resolve_id(source)
        ref = Reference.parse(target)
        if ref.digest:
            raise InvalidReferenceError(f"refusing to create a tag with a digest reference: {target}")
        self._store.metadata.tag(str(ref), image_id)

    # -- pull -----------------------------------------------------------------------------

    def pull(self, reference: str, *, platform: str | None = None,
             progress: Progress | None = None, cancel: Cancel | None = None,
             credentials: Credentials | None = None) -> Image:
        """Pull ``reference`` from its registry into the store and tag it.

        Layers download concurrently and are hashed, decompressed and unpacked in one pass.
        The image becomes visible only when every layer is verified and unpacked (atomic);
        an interrupted, failed or cancelled pull leaves its partial blobs to be resumed by
        the next pull. Idempotent: pulling what is stored re-checks the manifest and reports
        ``Already exists``. ``progress`` hears Docker's pull statuses; ``cancel`` is checked
        per chunk and layer; ``credentials`` are used for this pull only, instead of the
        Docker config's (a daemon client's X-Registry-Auth). Raises RegistryError (and its AuthenticationError,
        ManifestUnknownError), InvalidReferenceError, InvalidManifestError,
        PlatformNotFoundError, DigestMismatchError, InvalidLayerError,
        OperationCancelledError.
        """
        ref = Reference.parse(arguments.text(reference, "reference"))
        arguments.optional_text(platform, "platform")
        with self._registry_for(ref, credentials) as client:
            return _Pull(self, ref, platform, progress or NullProgress(), cancel, client).run()

    @contextlib.contextmanager
    def _registry_for(self, ref: Reference, credentials: Credentials | None
                      ) -> Iterator[RegistryClient]:
        """The engine's registry client, or one of its own for a call given credentials (so
        they live as long as the call and reach no other call's tokens)."""
        if credentials is None:
            yield self._engine.registry
            return
        from .registry.client import RegistryClient

        client = RegistryClient(self._engine.settings, credentials={ref.registry: credentials})
        try:
            yield client
        finally:
            client.close()

    # -- push -----------------------------------------------------------------------------

    def push(self, reference: str, *, progress: Progress | None = None,
             cancel: Cancel | None = None, credentials: Credentials | None = None
             ) -> PushResult:
        """Push the local image tagged ``reference`` to its registry, blobs the registry lacks
        first, then the manifest exactly as stored (so its digest is kept). Blobs another
        repository of the same registry is known to hold are mounted, not uploaded. Any image
        whose compressed blobs are in the store (pulled, loaded, imported) pushes the same way.

        Idempotent (a second push finds every blob there); the tag moves on the registry only
        with the manifest, last. ``progress`` hears Docker's push statuses; ``cancel`` stops
        it at the next layer report, before the manifest (blobs already sent stay, for the
        next push to skip). ``credentials`` are used for this push only, as with
        :meth:`pull`. Raises ImageNotFoundError, InvalidReferenceError, StoreError (a
        blob missing), RegistryError, AuthenticationError, OperationCancelledError.
        """
        from .registry.push import BlobToPush, Pusher

        ref = Reference.parse(arguments.text(reference, "reference"), default_tag=None)
        if ref.digest:
            raise InvalidReferenceError(f"cannot push a digest reference: {reference}")
        report: Progress = progress or NullProgress()
        if cancel is not None:
            report = CancellingProgress(report, cancel, "push")
        if ref.tag is None:
            ref = ref.with_tag("latest")
            report.message("Using default tag: latest")
        image_id = self._store.metadata.image_for_tag(str(ref))
        if image_id is None:
            raise ImageNotFoundError(f"An image does not exist locally with the tag: "
                                     f"{ref.familiar_name}")
        record = self._record(image_id)
        manifest = _stored_manifest(record, ref)
        sources = self._mount_sources(ref)
        content = self._store.content

        def blob(desc: Any, diff_id: str | None) -> BlobToPush:
            if not content.has(desc.digest):
                what = "config" if diff_id is None else "layer"
                raise StoreError(f"cannot push {ref.familiar}: its {what} blob {desc.digest} is "
                                 "not in the store (remove the image and pull, load or build "
                                 "it again)")
            return BlobToPush(desc, content.path(desc.digest),
                              diff_id[7:19] if diff_id else None,
                              tuple(sources.get(desc.digest, ())))

        diff_ids = [layer.diff_id for layer in record.layers]
        if len(diff_ids) != len(manifest.layers):
            diff_ids = [d.digest for d in manifest.layers]  # progress IDs only
        layers = [blob(d, diff_id) for d, diff_id in zip(manifest.layers, diff_ids)]
        config = blob(manifest.config, None)
        report.message(f"The push refers to repository [{ref.name}]")
        settings = self._engine.settings
        check_cancelled(cancel, "push")
        with self._registry_for(ref, credentials) as client:
            pusher = Pusher(client, ref, progress=report,
                            concurrency=settings.max_concurrent_uploads,
                            chunk_size=settings.upload_chunk_bytes)
            outcome = pusher.push(layers, config, manifest.raw, manifest.media_type)
        # Docker records the pushed digest too; a later push elsewhere may mount from here.
        self._store.metadata.add_digest(f"{ref.name}@{outcome.digest}", image_id)
        return PushResult(str(ref), outcome.digest, outcome.size, outcome.blobs)

    def _mount_sources(self, target: Reference) -> dict[str, builtins.list[str]]:
        """Blob digest -> other repositories of ``target``'s registry that hold it: those
        that served (repo digests) an image using it first, then those merely tagged."""
        found: dict[str, list[str]] = {}
        records = self._store.metadata.images()
        for pushed_or_pulled in (True, False):
            for record in records:
                blobs = [layer.blob_digest for layer in record.layers] + [record.id]
                refs = record.repo_digests if pushed_or_pulled else record.repo_tags
                for ref in map(Reference.parse, refs):
                    if ref.registry != target.registry or ref.repository == target.repository:
                        continue
                    for digest in blobs:
                        repos = found.setdefault(digest, [])
                        if ref.repository not in repos:
                            repos.append(ref.repository)
        return found

    # -- archives -------------------------------------------------------------------------

    def save(self, names: builtins.list[str], out: IO[bytes], *, format: str = "docker",
             progress: Progress | None = None, cancel: Cancel | None = None) -> None:
        """``docker save``: the images ``names`` (IDs, tags, digest references) written to
        the binary stream ``out`` as one tar, ``docker`` (docker-archive, Docker 20.10's
        layout) or ``oci`` (an OCI image layout). An image named by a tag carries it; by ID
        none. Streams (memory stays bounded); the store is only read. ``progress`` hears
        ``Saving layer`` (bytes) and ``Layer saved`` per layer; a failed or cancelled save
        has written part of an archive to ``out`` (write to a file and rename it to make it
        atomic, as the CLI's ``-o`` does). Raises ImageNotFoundError, InvalidArchiveError
        (no names, an unknown format), DigestMismatchError (a corrupt stored blob),
        OperationCancelledError."""
        from .archives import save

        arguments.strings(names, "names")
        arguments.text(format, "format")
        save(self._engine, list(names), out, format=format, progress=progress, cancel=cancel)

    def load(self, source: IO[bytes], *, progress: Progress | None = None,
             cancel: Cancel | None = None) -> builtins.list[str]:
        """``docker load``: the images of a docker-archive or OCI layout tar read from the
        binary stream ``source``; returns Docker's lines (``Loaded image: REF`` per tag,
        ``Loaded image ID: ID`` for an untagged image), which ``progress`` also hears as
        messages after ``Loading layer`` (bytes) per member. All or nothing: the archive is
        staged and checked entirely (digests, DiffIDs, names) before anything enters the
        store; a refused, failed or cancelled load leaves the store as it was and no staging
        file. Idempotent: loading the same archive twice changes nothing the second time
        (tags move to the loaded images, as with Docker). Raises InvalidArchiveError,
        DigestMismatchError, InvalidLayerError, OperationCancelledError."""
        from .archives import load

        return load(self._engine, source, progress=progress, cancel=cancel)

    def import_(self, source: str | IO[bytes], reference: str | None = None, *,
                changes: builtins.list[str] | None = None, message: str = "",
                compression: str = "gzip", source_name: str | None = None,
                progress: Progress | None = None, cancel: Cancel | None = None) -> str:
        """``docker import``: a one-layer image from a root filesystem tar (plain, gzip,
        bzip2, xz or zstd), tagged ``reference``; returns its ID. ``source`` is a binary
        stream, a file path, or an ``http(s)://`` URL (fetched with retries and redirects;
        credentials are never sent). ``changes`` are Dockerfile instructions for the config,
        ``message`` its history comment (else "Imported from SOURCE"), ``compression`` the
        stored layer's (gzip or zstd). Atomic: the image and its tag appear together, and a
        failed or cancelled import leaves nothing (``progress`` hears ``Importing`` with the
        bytes read, then ``Imported``). Not idempotent: each import is a new image (a new
        ``created`` time). Raises InvalidArchiveError (a corrupt tar), InvalidLayerError,
        InvalidArgumentError (a bad change or compression), RegistryError (a URL that cannot
        be fetched), OperationCancelledError."""
        from .archives import import_rootfs

        arguments.optional_text(reference, "reference")
        arguments.optional_strings(changes, "changes")

        def ingest(stream: IO[bytes], name: str) -> str:
            return import_rootfs(self._engine, stream, source_name=source_name or name,
                                 reference=reference, changes=list(changes or []),
                                 message=message, compression=compression,
                                 progress=progress, cancel=cancel)

        if not isinstance(source, str):
            return ingest(source, source_name or "-")
        if source.startswith(("http://", "https://")):
            return self._import_url(source, ingest)
        with open(source, "rb") as f:
            return ingest(f, source)

    def _import_url(self, url: str, ingest: Callable[[IO[bytes], str], str]) -> str:
        """The tarball at ``url`` streamed into ``ingest``: over urllib3 as the registry
        client is (retries, redirects), without its registry credentials."""
        import urllib3

        pool = urllib3.PoolManager(retries=urllib3.Retry(total=3, redirect=5))
        try:
            response = pool.request("GET", url, preload_content=False)
        except urllib3.exceptions.HTTPError as e:
            raise RegistryError(f"cannot fetch {url}: {e}") from e
        try:
            if response.status != 200:
                raise RegistryError(f"cannot fetch {url}: HTTP {response.status}")
            # At the end of the body, reads return b"" rather than fail on a closed file (the
            # buffered reader the import sniffs through reads once more after the end).
            if isinstance(response, urllib3.HTTPResponse):  # what a PoolManager returns
                response.auto_close = False
            # A readable binary stream (read, readinto), though not declared an IO[bytes].
            return ingest(response, url)  # type: ignore[arg-type]
        finally:
            response.release_conn()

    # -- history, inspect, search, login ----------------------------------------------------

    def history(self, name: str) -> builtins.list[dict[str, Any]]:
        """``docker history``: the image's history entries, newest first, with Docker's keys
        (``Id`` -- ``<missing>`` but for the image itself --, ``Created``, ``CreatedBy``,
        ``Size``, ``Comment``, ``Tags``). Raises ImageNotFoundError."""
        return self.get(name).history

    def inspect(self, name: str) -> dict[str, Any]:
        """``docker image inspect``: Docker's JSON for the image. Raises ImageNotFoundError."""
        return self.get(name).attrs

    def search(self, term: str, *, limit: int = 25) -> builtins.list[SearchResult]:
        """``docker search``: Docker Hub's search for ``TERM``, or for ``HOST/TERM`` the
        repositories of that registry's catalog whose name contains TERM, at most ``limit``.
        Raises RegistryError, AuthenticationError."""
        from .registry import search

        arguments.text(term, "term")
        arguments.integer(limit, "limit")
        return search.search(self._engine.registry, term, limit)

    def list_tags(self, repository: str, *, limit: int | None = None) -> builtins.list[str]:
        """The tags of ``repository`` (``[HOST/]NAME``) on its registry, following pages, at
        most ``limit``. Raises RegistryError, AuthenticationError, InvalidReferenceError."""
        from .registry import search

        arguments.text(repository, "repository")
        arguments.integer(limit, "limit")
        name = Reference.parse(repository, default_tag=None)
        return search.list_tags(self._engine.registry, str(name), limit)

    def login(self, server: str | None, username: str, password: str, *,
              save: bool = True) -> None:
        """``docker login``: check the credentials against ``server`` (Docker Hub when None),
        then save them in Docker's ``config.json`` (atomically, mode 0600, other keys kept);
        without ``save`` only check them (a daemon's ``/auth``: its client keeps them).
        Raises AuthenticationError, RegistryError; nothing is written when they fail."""
        from .registry.auth import Credentials
        from .registry.login import login, verify_credentials

        settings = self._engine.settings
        creds = Credentials(username, password)
        if not save:
            verify_credentials(self._engine.registry, server or "docker.io", creds)
            return
        login(self._engine.registry, settings.docker_config, server or "docker.io", creds)

    def logout(self, server: str | None) -> bool:
        """``docker logout``: drop ``server``'s saved credentials (Docker Hub when None);
        False when there were none. Idempotent."""
        from .registry.login import logout

        return logout(self._engine.settings.docker_config, server or "docker.io")

    # -- removal --------------------------------------------------------------------------

    def remove(self, name: str, force: bool = False) -> builtins.list[dict[str, str]]:
        """Docker's ``rmi``: untag a reference, delete the image when no reference is left.

        Returns Docker-style records: ``{"Untagged": ref}`` and ``{"Deleted": id}``. Layers
        shared with another image are kept. Conflicts are checked before anything changes, so
        a refusal leaves every tag in place (moby's daemon/images/image_delete.go rules):

        - by reference, without ``force``: the image's last reference (one tag and its
          repository's digests) is refused while a container uses it; one of several tags
          is just untagged;
        - by ID: a running container's image is never deleted, a stopped container's or an
          image with tags in several repositories only with ``force``.

        Where Docker's ``-f`` would delete an image a stopped container still uses, barque
        keeps it, untagged: that container's root filesystem is mounted from its layers.
        Each name's removal is one transaction; the layers' collection follows it. Raises
        ImageNotFoundError, AmbiguousImageError, ConflictError.
        """
        meta = self._store.metadata
        image_id = self.resolve_id(name)
        record = self._record(image_id)
        users = meta.containers_using_image(image_id)
        if _looks_like_id(name, image_id):
            running = self._running(users)
            if running:
                raise ConflictError(
                    f"conflict: unable to delete {image_id[7:19]} (cannot be forced) - image is "
                    f"being used by running container {running[0][:12]}")
            if not force and not _single_reference(record) and \
                    (record.repo_tags or record.repo_digests):
                raise ConflictError(
                    f"conflict: unable to delete {image_id[7:19]} (must be forced) - image is "
                    "referenced in multiple repositories")
            if not force and users:
                raise ConflictError(
                    f"conflict: unable to delete {image_id[7:19]} (must be forced) - image is "
                    f"being used by stopped container {users[0][:12]}")
            if users:  # forced: the container keeps its image, nameless
                out = [{"Untagged": familiar(r)} for r in record.repo_tags + record.repo_digests]
                for tag in record.repo_tags:
                    meta.untag(tag)
                for digest in record.repo_digests:
                    meta.remove_digest(digest)
                return out
            return self._delete(image_id)
        ref = Reference.parse(name)
        if users and not force and _single_reference(record):
            # Removing it would leave the container's image dangling: Docker wants -f.
            raise ConflictError(
                f'conflict: unable to remove repository reference "{name}" (must force) - '
                f"container {users[0][:12]} is using its referenced image {image_id[7:19]}")
        out = []
        if ref.digest:
            key = f"{ref.name}@{ref.digest}"
            if meta.image_for_digest(key) == image_id:
                meta.remove_digest(key)
                out.append({"Untagged": familiar(key)})
        else:
            meta.untag(str(ref))
            out.append({"Untagged": ref.familiar})
            record = self._record(image_id)
            # Docker drops a repository's digest refs with its last tag there.
            if not any(Reference.parse(t).name == ref.name for t in record.repo_tags):
                out += [{"Untagged": familiar(d)}
                        for d in meta.remove_digests_of_repo(image_id, ref.name)]
        record = self._record(image_id)
        if record.repo_tags or record.repo_digests or users:
            return out  # still named, or (forced) kept for the container that uses it
        return out + self._delete(image_id)

    def _delete(self, image_id: str) -> builtins.list[dict[str, str]]:
        """Drop the image's remaining names and the image; collect what only it used."""
        out = [{"Untagged": familiar(r)} for r in self._store.metadata.remove_image(image_id)]
        out.append({"Deleted": image_id})
        out += [{"Deleted": c} for c in self._collect_garbage()]
        return out

    def _running(self, container_ids: builtins.list[str]) -> builtins.list[str]:
        """Those of ``container_ids`` whose process is alive (stale records repaired)."""
        from .errors import ContainerNotFoundError

        running = []
        for container_id in container_ids:
            try:
                status = self._engine.containers.get(container_id).status
            except ContainerNotFoundError:
                continue
            if status in ("running", "paused", "restarting"):
                running.append(container_id)
        return running

    def _collect_garbage(self) -> builtins.list[str]:
        with self._store.gc_lock(shared=False):
            return self._store.collect_garbage()

    def prune(self, all: bool = False, *,
              matches: Callable[[Image], bool] | None = None) -> PruneReport:
        """Remove dangling images (no tag), or with ``all`` every image no container uses
        (either way only those ``matches`` accepts: Docker's ``until`` and ``label``); then
        delete unreferenced layers, blobs, abandoned unpack leftovers and the partial
        downloads no live pull is writing (counted in the space reclaimed). Idempotent: a
        second prune finds nothing; live pulls, loads and commits are never disturbed."""
        deleted: list[dict[str, str]] = []
        partials = self._store.content.remove_stale_partials()
        before = self._disk_usage()
        for record in self._store.metadata.images():
            if self._store.metadata.containers_using_image(record.id):
                continue
            if (all or not record.repo_tags) and (matches is None
                                                  or matches(self._image(record))):
                deleted += [{"Untagged": familiar(r)}
                            for r in self._store.metadata.remove_image(record.id)]
                deleted.append({"Deleted": record.id})
        deleted += [{"Deleted": c} for c in self._collect_garbage()]
        return PruneReport(deleted, partials + max(0, before - self._disk_usage()))

    def usage(self) -> ImageUsage:
        """``system df``'s Images row: bytes on disk are the store's blobs, unpacked layers
        and partial downloads; reclaimable is all of it but what images a container uses
        need (and partials a live pull is writing)."""
        store, meta = self._store, self._store.metadata
        blob_sizes: dict[str, int] = {}
        for digest in store.content.digests():
            with contextlib.suppress(FileNotFoundError):
                blob_sizes[digest] = store.paths.blob(digest).stat().st_size
        layer_sizes = {c: store.snapshots.size(c) for c in meta.snapshot_ids()}
        stale = sum(size for _, size in store.content.stale_partials())
        partials = 0
        for partial in store.paths.ingest.glob("*.partial"):
            with contextlib.suppress(FileNotFoundError):
                partials += partial.stat().st_size
        images = meta.images()
        active = [r for r in images if meta.containers_using_image(r.id)]
        used_layers = {layer.chain_id for r in active for layer in r.layers}
        used_blobs = {d for r in active for d in
                      (r.id, r.manifest_digest, *(layer.blob_digest for layer in r.layers))}
        size = sum(blob_sizes.values()) + sum(layer_sizes.values()) + partials
        needed = sum(layer_sizes.get(c, 0) for c in used_layers) + \
            sum(blob_sizes.get(d, 0) for d in used_blobs) + (partials - stale)
        return ImageUsage(len(images), len(active), size, max(0, size - needed), stale)

    def _disk_usage(self) -> int:
        total = 0
        paths = self._store.paths
        for digest in self._store.content.digests():
            try:
                total += paths.blob(digest).stat().st_size
            except FileNotFoundError:
                pass
        for chain_id in self._store.metadata.snapshot_ids():
            total += self._store.snapshots.size(chain_id)
        return total


class PushResult(msgspec.Struct):
    """A finished push: the tag pushed, the manifest digest and size the registry serves,
    and per blob digest how it got there (``exists``, ``mounted`` or ``uploaded``)."""

    reference: str
    digest: str
    size: int
    blobs: dict[str, str]


def _stored_manifest(record: ImageRecord, ref: Reference) -> Any:
    """The image's manifest as stored, parsed (the bytes pushed are exactly these)."""
    from .registry.manifest import ImageManifest, parse_manifest

    digest = sha256_digest(record.manifest)
    if not record.manifest or digest != record.manifest_digest:
        raise StoreError(f"cannot push {ref.familiar}: its stored manifest is missing or does "
                         f"not hash to {record.manifest_digest}")
    manifest = parse_manifest(record.manifest, digest, record.manifest_media_type)
    if not isinstance(manifest, ImageManifest) or manifest.config.digest != record.id:
        raise StoreError(f"cannot push {ref.familiar}: its stored manifest does not describe "
                         f"image {record.id}")
    return manifest


def _single_reference(record: ImageRecord) -> bool:
    """moby's isSingleReference: at most one tag, and every name in that tag's repository
    (its digest references). False for an image without names."""
    refs = list(record.repo_tags) + list(record.repo_digests)
    if len(refs) <= 1:
        return len(refs) == 1
    if len(record.repo_tags) > 1:
        return False
    digest_repos = {Reference.parse(d).name for d in record.repo_digests}
    single = Reference.parse(record.repo_tags[0] if record.repo_tags else refs[0])
    return digest_repos == {single.name}


def _looks_like_id(name: str, image_id: str) -> bool:
    text = name.removeprefix("sha256:")
    return bool(text) and set(text) <= _HEX and image_id[7:].startswith(text)


class _Pull:
    """One pull: resolve, fetch the config, fetch and unpack the layers, record the image."""

    def __init__(self, service: ImageService, ref: Reference, platform: str | None,
                 progress: Progress, cancel: Cancel | None = None,
                 client: RegistryClient | None = None) -> None:
        self.service = service
        self.store = service._store
        self.settings = service._engine.settings
        self.client = client or service._engine.registry
        self.ref = ref if (ref.tag or ref.digest) else ref.with_tag("latest")
        self.platform = platform
        self.progress = progress
        self.cancelled = threading.Event()
        #: The caller's cancel event (``cancelled`` is this pull's own: a failed layer's).
        self.cancel = cancel

    def run(self) -> Image:
        from .registry.platform import Platform, host_platform

        # Fail early, before any network traffic, if the native core is missing.
        from . import _native
        ref = self.ref
        self.progress.message(f"{ref.tag or ref.digest}: Pulling from {ref.repository}")
        wanted = Platform.parse(self.platform) if self.platform else host_platform()
        manifest, index_digest = self.client.resolve(ref, wanted)
        if len(manifest.layers) > MAX_LAYERS:
            raise InvalidManifestError(
                f"{ref.familiar} has {len(manifest.layers)} layers; at most {MAX_LAYERS} "
                "can be mounted as one root filesystem")
        config_bytes = self.client.get_config(ref, manifest.config)
        config = _parse_config(config_bytes, ref)
        diff_ids = config["rootfs"]["diff_ids"]
        if len(diff_ids) != len(manifest.layers):
            raise InvalidManifestError(
                f"{ref.familiar}: manifest has {len(manifest.layers)} layers but the config lists "
                f"{len(diff_ids)} diff_ids")
        chains = chain_ids(diff_ids)
        image_id = validate_digest(manifest.config.digest, "config digest")
        already = self.store.metadata.get_image(image_id)
        with self.store.gc_lock(shared=True):
            sizes = self._fetch_layers(manifest.layers, diff_ids, chains)
            check_cancelled(self.cancel, "pull")  # the last point before the image is recorded
            boot = current_boot_id()
            if not boot:  # without a boot ID nothing can be trusted "for this boot only"
                self.store.sync()
            durable = not boot
            self.store.content.write(image_id, config_bytes, sync=durable)
            self.store.content.write(manifest.digest, manifest.raw, sync=durable)
            layers = [LayerRecord(d, c, desc.digest, desc.media_type, desc.size)
                      for d, c, desc in zip(diff_ids, chains, manifest.layers)]
            shown_digest = index_digest or manifest.digest
            tags = [str(ref)] if ref.tag and not ref.digest else []
            self.store.metadata.add_image(
                NewImage(id=image_id, config=config_bytes, manifest_digest=manifest.digest,
                         manifest_media_type=manifest.media_type, manifest=manifest.raw,
                         created=str(config.get("created") or ""), size=sum(sizes), layers=layers),
                tags=tags, digests=[f"{ref.name}@{shown_digest}"], boot_id=boot)
        self.progress.message(f"Digest: {shown_digest}")
        up_to_date = already is not None and (not tags or str(ref) in already.repo_tags)
        self.progress.message(
            f"Status: {'Image is up to date' if up_to_date else 'Downloaded newer image'}"
            f" for {ref.familiar}")
        return self.service.get(image_id)

    def _fetch_layers(self, layers: Sequence[Descriptor], diff_ids: list[str],
                      chains: list[str]) -> list[int]:
        workers = max(1, self.settings.max_concurrent_downloads)
        for i, desc in enumerate(layers):
            self.progress.layer(desc.digest[7:19], "Pulling fs layer" if i < workers else "Waiting")
        # Imported here: a pull's threads are not worth their import time to `barque run`.
        from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="barque-pull") as pool:
            futures = [pool.submit(self._fetch_layer, desc, diff_id, chain)
                       for desc, diff_id, chain in zip(layers, diff_ids, chains)]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = [f for f in done if f.exception() is not None]
            if failed:
                self.cancelled.set()
                for f in futures:
                    f.cancel()
                wait(futures)
                error = failed[0].exception()
                assert error is not None  # failed: the futures that raised
                raise error
            return [f.result() for f in futures]

    def _fetch_layer(self, desc: Descriptor, diff_id: str, chain_id: str) -> int:
        store = self.store
        short = desc.digest[7:19]
        check_cancelled(self.cancel, "pull")
        if store.snapshots.has(chain_id) and store.content.has(desc.digest):
            self.progress.layer(short, "Already exists")
            return store.snapshots.size(chain_id)
        with store.layer_lock(chain_id), store.blob_lock(desc.digest):
            if store.snapshots.has(chain_id):
                if not store.content.has(desc.digest):
                    self._download(desc, None, None, short)
                self.progress.layer(short, "Already exists")
                return store.snapshots.size(chain_id)
            staging = store.snapshots.prepare(chain_id)
            try:
                if store.content.has(desc.digest):
                    result = self._unpack_local(desc, staging, diff_id, short)
                else:
                    result = self._download(desc, staging, diff_id, short)
            except BaseException:
                store.snapshots.discard(chain_id)
                raise
            store.snapshots.commit(chain_id, diff_id, result["unpacked_bytes"], durable=False)
        self.progress.layer(short, "Pull complete")
        return int(result["unpacked_bytes"])

    def _unpack_local(self, desc: Descriptor, staging: Path, diff_id: str,
                      short: str) -> IngestResult:
        from . import _native
        from .native import translated_errors
        from .registry.manifest import compression_of

        self.progress.layer(short, "Extracting")
        with translated_errors(f"layer {desc.digest}"):
            return _native.unpack_blob(str(self.store.content.path(desc.digest)), str(staging),
                                       compression=compression_of(desc.media_type),
                                       expected_diff_id=diff_id, sync=False,
                                       max_bytes=self.settings.max_layer_bytes,
                                       max_entries=self.settings.max_layer_entries)

    def _download(self, desc: Descriptor, staging: Path | None, diff_id: str | None,
                  short: str) -> IngestResult:
        """Stream the blob into the store (and, with ``staging``, unpack it on the way),
        resuming from the partial file left by an earlier attempt or a killed pull."""
        from . import _native as native
        from .native import translated_errors
        from .registry.manifest import compression_of

        paths = self.store.paths
        partial = paths.partial(desc.digest)
        compression = compression_of(desc.media_type)

        def new_ingest() -> BlobIngest:
            if staging is not None:
                for child in staging.iterdir():  # a restart must unpack into an empty dir
                    from .store.snapshots import remove_tree

                    remove_tree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
            return native.BlobIngest(
                str(partial), desc.digest, desc.size,
                unpack_dir=str(staging) if staging is not None else None,
                compression=compression, expected_diff_id=diff_id,
                max_bytes=self.settings.max_layer_bytes,
                max_entries=self.settings.max_layer_entries)

        attempts = 0
        with translated_errors(f"layer {desc.digest}"):
            holder = [new_ingest()]
            # Bytes an earlier pull left: if they fail verification they were bad (a registry
            # that sent too much, a disk error), not this registry's; the ingest has deleted
            # them, and the blob is fetched again at once, once.
            resumed = holder[0].offset > 0
            try:
                while True:
                    try:
                        return self._stream_into(holder, desc, short, partial, new_ingest)
                    except native.DigestError:
                        if not resumed or self.cancelled.is_set():
                            raise
                        resumed = False
                        self.progress.layer(short, "Discarding a partial download that failed "
                                                   "verification")
                        partial.unlink(missing_ok=True)
                        holder[0] = new_ingest()
                    except AuthenticationError:
                        raise
                    except (RegistryError, ConnectionError, TimeoutError) as e:
                        attempts += 1
                        if attempts >= self.settings.download_retries or self.cancelled.is_set():
                            raise _gave_up(e, self.ref.registry, desc.digest, attempts) from e
                        delay = self.settings.download_retry_backoff * 2 ** (attempts - 1)
                        self.progress.layer(short, f"Retrying in {delay:g} seconds ({e})")
                        time.sleep(delay)
            except BaseException:
                holder[0].abort()
                raise

    def _stream_into(self, holder: list[BlobIngest], desc: Descriptor, short: str,
                     partial: Path, new_ingest: Callable[[], BlobIngest]) -> IngestResult:
        """One attempt: open the blob at the ingest's offset and feed it through."""
        if holder[0].offset == desc.size:  # complete already (an earlier pull's ingest file)
            return self._finish(holder[0], desc, short)
        stream = self.client.open_blob(self.ref, desc, offset=holder[0].offset)
        try:
            if stream.offset != holder[0].offset:  # the server ignored Range: start over
                holder[0].abort()
                partial.unlink(missing_ok=True)
                holder[0] = new_ingest()
            ingest = holder[0]
            received = ingest.offset
            if received:
                self.progress.layer(short, "Resuming", received, desc.size)
            last_report = 0.0
            try:
                for chunk in stream.chunks(1 << 20):
                    check_cancelled(self.cancel, "pull")  # the partial file stays, resumable
                    if self.cancelled.is_set():
                        raise RegistryError("pull cancelled: another layer failed")
                    ingest.write(chunk)
                    received += len(chunk)
                    now = time.monotonic()
                    if now - last_report > 0.1:
                        self.progress.layer(short, "Downloading", received, desc.size)
                        last_report = now
            except DigestMismatchError:
                # The registry sent more than the descriptor says: what it sent cannot be
                # trusted, so none of it is kept for a later pull to resume from.
                ingest.abort()
                partial.unlink(missing_ok=True)
                raise
        finally:
            stream.close()
        return self._finish(holder[0], desc, short)

    def _finish(self, ingest: BlobIngest, desc: Descriptor, short: str) -> IngestResult:
        self.progress.layer(short, "Verifying Checksum")
        blob = self.store.content.path(desc.digest)
        result = ingest.finish(str(blob), sync=False)
        # Verified, not yet durable: if power is lost before the store settles, the image
        # that needs this blob is forgotten and the blob collected with it (Store.settle).
        os.rename(self.store.paths.partial(desc.digest), blob)
        self.progress.layer(short, "Download complete")
        return result


def _gave_up(error: BaseException, registry: str, digest: str, attempts: int) -> RegistryError:
    """The one line a pull ends with when a layer's last attempt failed: it names the layer
    and the registry, whichever request (open or read) failed."""
    text = str(error)
    if digest not in text:
        text = f"layer {digest}: {text}"
    if registry not in text:
        text = f"{text} (registry {registry})"
    return RegistryError(f"{text}; gave up after {attempts} attempt{'s' if attempts > 1 else ''}")


def _parse_config(data: bytes, ref: Reference) -> dict[str, Any]:
    try:
        config: dict[str, Any] = json.loads(data)  # a dict once the checks below pass
    except ValueError as e:
        raise InvalidManifestError(f"{ref.familiar}: image config is not valid JSON: {e}") from e
    rootfs = config.get("rootfs") if isinstance(config, dict) else None
    if not isinstance(rootfs, dict) or rootfs.get("type") != "layers" or not isinstance(
            rootfs.get("diff_ids"), list):
        raise InvalidManifestError(f"{ref.familiar}: image config has no rootfs.diff_ids")
    return config
