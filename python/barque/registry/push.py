"""The push side of OCI Distribution v2: blob existence checks, uploads, mounts, manifest PUT.

:class:`Pusher` sends one image already complete in the store: its layer and config blobs are
files (the compressed bytes the manifest describes) and its manifest is the exact stored bytes,
so an image pulled and pushed back keeps every digest. For each blob, in this order:

1. ``HEAD /v2/<repo>/blobs/<digest>``: 200 means the registry has it ("Layer already exists").
2. If the store knows another repository on the same registry holding the blob (a repo digest
   recorded by a pull or an earlier push), ``POST .../blobs/uploads/?mount=<digest>&from=<repo>``:
   201 means mounted, no bytes sent. A 202 means the registry declined and opened an ordinary
   upload session instead, which is then used.
3. Otherwise ``POST .../blobs/uploads/`` opens a session; a blob up to ``chunk_size`` goes in one
   ``PUT <location>?digest=`` (monolithic), a larger one in ``PATCH`` chunks of ``chunk_size``
   (each with ``Content-Range``; the registry answers a new ``Location``) closed by an empty PUT.

Layers are sent concurrently; the config after them and the manifest last, so the registry
never holds a manifest whose blobs are missing. Requests reuse :class:`RegistryClient`'s
transport and authentication (scope ``repository:<repo>:pull,push``, plus ``:pull`` on the
mount source); mirrors are for pulls only and are not used. An upload ``Location`` on another
origin is followed without credentials, as redirects are.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO
from urllib.parse import quote, urljoin, urlsplit

import msgspec
import urllib3

from ..errors import DigestMismatchError, RegistryError
from ..progress import NullProgress, Progress
from ..reference import Reference
from .client import (
    MAX_ERROR_BODY,
    RegistryClient,
    one_line,
    registry_message,
    release,
    url_origin,
)
from .manifest import Descriptor

__all__ = ["DEFAULT_CHUNK_SIZE", "BlobToPush", "PushOutcome", "Pusher"]

log = logging.getLogger("barque.registry")

#: Blobs up to this size go in one PUT; larger ones in PATCH chunks of this size.
DEFAULT_CHUNK_SIZE = 16 << 20


class BlobToPush(msgspec.Struct, frozen=True):
    """One blob of the image: what the manifest says about it and where its bytes are."""

    descriptor: Descriptor
    path: Path
    #: Short ID shown in progress (Docker shows a layer's DiffID), None for the config.
    progress_id: str | None = None
    #: Other repositories on the target registry known to hold this blob, best first.
    mount_sources: tuple[str, ...] = ()


class PushOutcome(msgspec.Struct, frozen=True):
    """What a push did: the manifest digest and size the registry now serves under the tag,
    and per blob digest how it got there: ``exists``, ``mounted`` or ``uploaded``."""

    digest: str
    size: int
    blobs: dict[str, str]


class Pusher:
    """Push one image to ``ref`` (a tag in the target repository) through ``client``."""

    def __init__(self, client: RegistryClient, ref: Reference, *,
                 progress: Progress | None = None, concurrency: int = 3,
                 chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        if ref.tag is None:
            raise ValueError("a push needs a tag")
        self._client = client
        self._ref = ref
        self._progress = progress or NullProgress()
        self._concurrency = max(1, concurrency)
        self._chunk_size = max(1, chunk_size)
        # The registry itself, never a mirror: uploads go where the tag lives.
        self._ep = client.endpoints(ref.registry)[-1]
        self._what = f"{ref.registry}/{ref.repository}"
        self._scope = f"repository:{ref.repository}:pull,push"
        self._cancelled = threading.Event()

    def push(self, layers: Sequence[BlobToPush], config: BlobToPush, manifest: bytes,
             manifest_media_type: str) -> PushOutcome:
        """Send the blobs that are missing, then the manifest; return what was done."""
        for blob in layers:
            if blob.progress_id:
                self._progress.layer(blob.progress_id, "Preparing")
        outcomes = self._push_layers(layers)
        outcomes[config.descriptor.digest] = self._push_blob(config)
        digest = self._put_manifest(manifest, manifest_media_type)
        return PushOutcome(digest, len(manifest), outcomes)

    # ------------------------------------------------------------------ blobs
    def _push_layers(self, layers: Sequence[BlobToPush]) -> dict[str, str]:
        from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

        unique = list({b.descriptor.digest: b for b in layers}.values())
        with ThreadPoolExecutor(self._concurrency, thread_name_prefix="barque-push") as pool:
            futures = {pool.submit(self._push_blob, blob): blob for blob in unique}
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = [f for f in done if f.exception() is not None]
            if failed:
                self._cancelled.set()
                for f in futures:
                    f.cancel()
                wait(futures)
                error = failed[0].exception()
                assert error is not None  # failed: the futures that raised
                raise error
            return {futures[f].descriptor.digest: f.result() for f in futures}

    def _push_blob(self, blob: BlobToPush) -> str:
        desc, shown = blob.descriptor, blob.progress_id
        if self._exists(desc):
            self._report(shown, "Layer already exists")
            return "exists"
        location: str | None = None
        for source in blob.mount_sources[:1]:  # as Docker: one attempt, the best candidate
            location = self._mount(desc, source)
            if location is None:
                self._report(shown, f"Mounted from {source}")
                return "mounted"
        if location is None:
            location = self._start_upload()
        self._upload(blob, location)
        self._report(shown, "Pushed")
        return "uploaded"

    def _exists(self, desc: Descriptor) -> bool:
        url = self._ep.url(self._ref.repository, "blobs", desc.digest)

        def once() -> bool:
            resp = self._client.send("HEAD", self._ep, url, scope=self._scope, what=self._what)
            try:
                if resp.status == 200:
                    return True
                if resp.status == 404:
                    return False
                raise self._client.response_error(resp, self._ep, self._ref,
                                                  f"blob {desc.digest}", blob=True)
            finally:
                release(resp)

        return self._client.retrying(once)

    def _mount(self, desc: Descriptor, source: str) -> str | None:
        """Ask for a cross-repository mount: None when mounted, else the upload session's
        Location the registry opened instead."""
        url = (f"{self._uploads_url()}?mount={quote(desc.digest, safe=':')}"
               f"&from={quote(source, safe='/')}")
        scope = f"{self._scope} repository:{source}:pull"
        resp = self._client.retrying(lambda: self._client.send(
            "POST", self._ep, url, scope=scope, what=self._what, body=b""))
        try:
            if resp.status == 201:
                return None
            if resp.status == 202:
                return self._location(resp, "mount")
            raise self._failure(resp, f"mounting blob {desc.digest} from {source}")
        finally:
            release(resp)

    def _start_upload(self) -> str:
        resp = self._client.retrying(lambda: self._client.send(
            "POST", self._ep, self._uploads_url(), scope=self._scope, what=self._what, body=b""))
        try:
            if resp.status != 202:
                raise self._failure(resp, "starting an upload")
            return self._location(resp, "upload")
        finally:
            release(resp)

    def _upload(self, blob: BlobToPush, location: str) -> None:
        desc, shown = blob.descriptor, blob.progress_id
        hasher = hashlib.sha256()
        sent = 0
        try:
            with open(blob.path, "rb") as f:
                if desc.size <= self._chunk_size:
                    data = _read_exactly(f, desc.size, blob)
                    hasher.update(data)
                    self._check_local(hasher, desc, blob)
                    self._report(shown, "Pushing", 0, desc.size)
                    self._finish(location, desc, data)
                    return
                while sent < desc.size:
                    if self._cancelled.is_set():
                        raise RegistryError("push cancelled: another layer failed")
                    chunk = _read_exactly(f, min(self._chunk_size, desc.size - sent), blob)
                    hasher.update(chunk)
                    location = self._patch(location, chunk, sent, desc)
                    sent += len(chunk)
                    self._report(shown, "Pushing", sent, desc.size)
                if f.read(1):
                    raise DigestMismatchError(f"blob {desc.digest} in the store is larger than "
                                              f"its {desc.size} bytes")
            self._check_local(hasher, desc, blob)
            self._finish(location, desc, b"")
        except BaseException:
            self._cancel_upload(location)
            raise

    def _patch(self, location: str, chunk: bytes, offset: int, desc: Descriptor) -> str:
        headers = {"Content-Type": "application/octet-stream",
                   "Content-Length": str(len(chunk)),
                   "Content-Range": f"{offset}-{offset + len(chunk) - 1}"}
        resp = self._request("PATCH", location, headers, chunk)
        try:
            if resp.status != 202:
                raise self._failure(resp, f"uploading blob {desc.digest}")
            return self._location(resp, "upload")
        finally:
            release(resp)

    def _finish(self, location: str, desc: Descriptor, body: bytes) -> None:
        sep = "&" if urlsplit(location).query else "?"
        url = f"{location}{sep}digest={quote(desc.digest, safe=':')}"
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(len(body))}
        resp = self._request("PUT", url, headers, body)
        try:
            if resp.status not in (201, 204):
                raise self._failure(resp, f"uploading blob {desc.digest}")
            echoed = resp.headers.get("Docker-Content-Digest")
            if echoed and echoed.strip() != desc.digest:
                raise DigestMismatchError(f"registry {self._ep.host} stored blob {desc.digest} "
                                          f"as {one_line(echoed, 80)}")
        finally:
            release(resp)

    def _cancel_upload(self, location: str) -> None:
        """Best effort: tell the registry to drop a failed session (it purges old ones anyway)."""
        try:
            release(self._request("DELETE", location, {}, None))
        except Exception as e:  # noqa: BLE001 - the original failure is what matters
            log.debug("could not cancel upload %s: %s", location, e)

    @staticmethod
    def _check_local(hasher: hashlib._Hash, desc: Descriptor, blob: BlobToPush) -> None:
        actual = "sha256:" + hasher.hexdigest()
        if actual != desc.digest:
            raise DigestMismatchError(f"blob {desc.digest} in the store is corrupt (hashes to "
                                      f"{actual}); remove the image and pull or build it again")

    # ------------------------------------------------------------------ manifest
    def _put_manifest(self, manifest: bytes, media_type: str) -> str:
        digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
        url = self._ep.url(self._ref.repository, "manifests", self._ref.tag or "")
        headers = {"Content-Type": media_type}
        resp = self._client.retrying(lambda: self._client.send(
            "PUT", self._ep, url, scope=self._scope, what=self._what, headers=headers,
            body=manifest))
        try:
            if resp.status not in (200, 201, 202):
                raise self._failure(resp, f"storing the manifest for {self._ref.familiar}")
            echoed = resp.headers.get("Docker-Content-Digest")
            if echoed and echoed.strip() != digest:
                raise DigestMismatchError(f"registry {self._ep.host} stored the manifest of "
                                          f"{self._ref.familiar} as {one_line(echoed, 80)}, "
                                          f"not {digest}")
        finally:
            release(resp)
        return digest

    # ------------------------------------------------------------------ helpers
    def _uploads_url(self) -> str:
        return f"{self._ep.base}/v2/{self._ref.repository}/blobs/uploads/"

    def _request(self, method: str, url: str, headers: dict[str, str], body: bytes | None
                 ) -> urllib3.BaseHTTPResponse:
        """A request to an upload location: authenticated on the registry's own origin only."""
        if url_origin(url) == self._ep.origin:
            return self._client.send(method, self._ep, url, scope=self._scope, what=self._what,
                                     headers=headers, body=body)
        resp, _ = self._client.follow(method, url, dict(headers), body)
        return resp

    def _location(self, resp: urllib3.BaseHTTPResponse, what: str) -> str:
        value = resp.headers.get("Location", "").strip()
        if not value:
            raise RegistryError(f"registry {self._ep.host} opened an {what} session for "
                                f"{self._what} without a Location")
        url = urljoin(self._ep.base + "/", value)
        if urlsplit(url).scheme not in ("http", "https"):
            raise RegistryError(f"registry {self._ep.host} gave an unusable upload location "
                                f"{one_line(value, 100)!r}")
        return url

    def _failure(self, resp: urllib3.BaseHTTPResponse, doing: str) -> RegistryError:
        try:
            body = resp.read(MAX_ERROR_BODY, decode_content=True)
        except Exception:  # noqa: BLE001 - the status alone still makes an error
            body = b""
        code, msg = registry_message(body)
        detail = msg or (code.lower().replace("_", " ") if code else f"HTTP {resp.status}")
        if resp.status in (401, 403):
            from ..errors import AuthenticationError

            return AuthenticationError(f"denied: {detail} for {self._what} ({doing})")
        return RegistryError(f"registry {self._ep.host} failed {doing} for {self._what}: "
                             f"{detail}")

    def _report(self, shown: str | None, status: str, current: int | None = None,
                total: int | None = None) -> None:
        if shown:
            self._progress.layer(shown, status, current, total)


def _read_exactly(f: IO[bytes], size: int, blob: BlobToPush) -> bytes:
    data = f.read(size)
    if len(data) != size:
        raise DigestMismatchError(f"blob {blob.descriptor.digest} in the store is shorter than "
                                  f"its {blob.descriptor.size} bytes")
    return data

