"""An OCI Distribution v2 client, pull side: manifests, indexes, configs and resumable blobs.

Contracts of :class:`RegistryClient` (other modules rely on them):

- **Transport.** One ``urllib3.PoolManager`` per client; the client is thread-safe (blobs are
  fetched from several threads at once). Plain HTTP is used for ``localhost``, loopback
  addresses (``127.0.0.0/8``, ``[::1]``) and ``Settings.insecure_registries`` (``host``,
  ``host:port`` or a CIDR matched against IP literals); HTTPS with certificate verification for
  everything else. Docker Hub (``docker.io``) is reached at ``registry-1.docker.io``.
- **Mirrors.** ``Settings.registry_mirrors[registry]`` base URLs are tried in order, then the
  registry itself; any failure on a mirror falls through to the next. A mirror that cannot be
  reached is skipped for a minute. Mirrors get their own credentials, never the registry's.
- **Redirects** are followed here (urllib3's are disabled), at most 10. ``Authorization`` and
  ``Cookie`` are dropped for good as soon as a redirect leaves the origin (scheme, host, port)
  that was asked, so credentials never reach blob storage or any other host.
- **Authentication**: see :mod:`barque.registry.auth`. Refused or missing credentials raise
  :class:`~barque.errors.AuthenticationError` with one line naming ``registry/repository``.
- **Integrity.** Manifests are read up to ``max_manifest_bytes`` (one byte more means refusal),
  hashed exactly as received, and those same bytes are parsed. By digest, the hash must equal
  the digest; by tag, a ``Docker-Content-Digest`` header must equal it. Configs are capped at
  ``max_config_bytes`` and checked against their descriptor's size and digest. Blob streams
  are bounded by the descriptor's size; their digest is the caller's to check (it may resume).
- **Retries.** Transient failures (connection reset, timeouts, HTTP 408/429/5xx) of manifest
  and config requests, and of opening a blob, are retried up to ``download_retries`` attempts
  with exponential backoff (``Retry-After`` honoured up to 30 s). A refused connection is not
  transient. Errors while *reading* a blob are raised as :class:`~barque.errors.RegistryError`
  so the caller can reopen at the offset it reached.
- **Timeouts.** Connecting is bounded by ``Settings.connect_timeout``; a response that sends
  nothing for ``read_timeout`` seconds fails. A blob also fails when it arrives slower than
  ``low_speed_limit`` bytes/s on average over ``low_speed_time`` seconds (curl's
  ``--speed-limit``/``--speed-time``): a registry trickling a byte a second never goes idle
  long enough for the read timeout, and would otherwise hold a pull for days.
- **Errors.** 404 on a manifest -> :class:`~barque.errors.ManifestUnknownError`
  (``manifest unknown: host/repo:tag``); 401 -> AuthenticationError; 403 -> AuthenticationError
  (``denied: ...``); anything else -> RegistryError carrying the registry's own message from
  its JSON ``errors`` body.

Push (:mod:`.push`), login (:mod:`.login`) and search (:mod:`.search`) reuse
:meth:`RegistryClient.send` (any method, body, scope ``repository:<repo>:pull,push``) and the
endpoint/auth machinery unchanged; mirrors are for pulls only and are bypassed.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Self, TypeVar
from urllib.parse import urljoin, urlsplit

import msgspec
import urllib3
from urllib3.exceptions import (
    HTTPError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.exceptions import TimeoutError as Urllib3TimeoutError

from ..config import Settings
from ..errors import (
    AuthenticationError,
    BarqueError,
    DigestMismatchError,
    InvalidManifestError,
    ManifestUnknownError,
    RegistryError,
)
from ..reference import Reference
from .auth import Authenticator, Credentials, normalize_auth_key
from .manifest import (
    ACCEPT_MANIFEST_TYPES,
    INDEX_MEDIA_TYPES,
    Descriptor,
    ImageIndex,
    ImageManifest,
    parse_manifest,
    validate_digest,
)
from .platform import Platform, host_platform, select_manifest

__all__ = ["DOCKER_HUB_API_HOST", "BlobStream", "Endpoint", "RegistryClient", "is_plain_http"]

log = logging.getLogger("barque.registry")

T = TypeVar("T")

#: Docker Hub's API host, for the registry named ``docker.io``.
DOCKER_HUB_API_HOST = "registry-1.docker.io"
USER_AGENT = "barque/0.1"
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_MAX_REDIRECTS = 10
_TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
#: What is read of an error response's body (the rest is never needed for its message).
MAX_ERROR_BODY = 64 << 10
_MAX_RETRY_AFTER = 30.0
_MIRROR_PENALTY = 60.0
_MAX_INDEX_DEPTH = 4
_CONTENT_RANGE_RE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_ERRNO_RE = re.compile(r"\[Errno -?\d+\] ([^\n]*)")


class _TransientError(RegistryError):
    """A failure worth retrying; never escapes the client (re-raised as RegistryError)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _split_host_port(host: str) -> tuple[str, int | None]:
    if host.startswith("["):
        end = host.find("]")
        name, rest = host[1:end], host[end + 1:]
        return name, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    name, sep, port = host.rpartition(":")
    if sep and port.isdigit() and ":" not in name:
        return name, int(port)
    return host, None


def is_plain_http(host: str, insecure_registries: tuple[str, ...] = ()) -> bool:
    """True when registry ``host`` (``name[:port]``) is reached over plain HTTP.

    ``localhost``, loopback IPs and entries of ``insecure_registries`` (exact ``host:port``,
    a bare ``host`` for any port, or a CIDR containing an IP-literal host) are; others are not.
    """
    name, _ = _split_host_port(host)
    lowered = name.lower()
    if lowered == "localhost" or lowered.endswith(".localhost"):
        return True
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        ip = None
    if ip is not None and ip.is_loopback:
        return True
    for entry in insecure_registries:
        entry = entry.strip().lower()
        for prefix in ("http://", "https://"):
            entry = entry.removeprefix(prefix)
        entry = entry.rstrip("/")
        if entry == host.lower() or entry == lowered:
            return True
        if ip is not None and "/" in entry:
            try:
                if ip in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue
    return False


def url_origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``, lowercased: what credentials and challenges are
    kept per."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def one_line(text: str, limit: int = 300) -> str:
    """Text a registry sent, made safe for a one-line error: whitespace runs and unprintable
    characters become one space, and more than ``limit`` characters are cut."""
    text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return text if len(text) <= limit else text[:limit] + "..."


def registry_message(body: bytes) -> tuple[str | None, str | None]:
    """(first error code, joined messages) from a Distribution JSON ``errors`` body."""
    try:
        doc = json.loads(body)
    except ValueError:
        return None, None
    errors = doc.get("errors") if isinstance(doc, dict) else None
    if not isinstance(errors, list):
        return None, None
    codes: list[str] = [e["code"] for e in errors if isinstance(e, dict) and
                        isinstance(e.get("code"), str)]
    msgs: list[str] = [e["message"] for e in errors if isinstance(e, dict) and
                       isinstance(e.get("message"), str) and e["message"]]
    return (codes[0] if codes else None), (one_line("; ".join(msgs)) if msgs else None)


def release(resp: urllib3.BaseHTTPResponse) -> None:
    """Give the connection back; a body not read to the end closes the socket instead."""
    try:
        remaining = getattr(resp, "length_remaining", None)
        if remaining is not None and remaining <= MAX_ERROR_BODY:
            resp.drain_conn()
        elif remaining != 0:
            resp.close()
    except Exception:  # noqa: BLE001 - best effort: the connection is then just dropped
        resp.close()
    resp.release_conn()


def _reason(exc: BaseException) -> str:
    m = _ERRNO_RE.search(str(exc))
    if m:
        return m.group(1).strip().lower()
    for inner in (exc.__cause__, exc.__context__, *(a for a in exc.args
                                                    if isinstance(a, BaseException))):
        if isinstance(inner, OSError) and inner.strerror:
            return inner.strerror.lower()
    return one_line(str(exc).rsplit(": ", 1)[-1], 120) or exc.__class__.__name__


def _network_error(url: str, exc: Exception) -> RegistryError:
    """Map a urllib3/socket failure to a one-line RegistryError (transient ones retried).

    Errors meaning the host cannot be reached at all carry ``unreachable = True`` (a mirror
    failing so is skipped for a while).
    """
    err = _classify_network_error(urlsplit(url).netloc, exc)
    if not isinstance(err, _TransientError) and not isinstance(exc, SSLError):
        err.unreachable = True
    return err


def _classify_network_error(host: str, exc: Exception) -> RegistryError:
    if isinstance(exc, NameResolutionError):
        return RegistryError(f"cannot reach registry {host}: cannot resolve host name")
    if isinstance(exc, NewConnectionError):
        reason = _reason(exc)
        if "refused" in reason:
            return RegistryError(f"cannot connect to registry {host}: connection refused")
        if "timed out" in reason:
            return _TransientError(f"cannot connect to registry {host}: connection timed out")
        return RegistryError(f"cannot connect to registry {host}: {reason}")
    if isinstance(exc, SSLError):
        return RegistryError(f"TLS handshake with registry {host} failed: {_reason(exc)} (if it "
                             "serves plain HTTP, add it to insecure_registries)")
    if isinstance(exc, (ReadTimeoutError, Urllib3TimeoutError)):
        return _TransientError(f"registry {host} timed out")
    if isinstance(exc, ProtocolError):
        return _TransientError(f"connection to registry {host} failed: {_reason(exc)}")
    return _TransientError(f"request to registry {host} failed: {_reason(exc)}")


class Endpoint(msgspec.Struct, frozen=True):
    """Where a registry's API is reached: the registry itself or one of its mirrors."""

    #: ``scheme://host[:port][/prefix]`` without a trailing slash; ``/v2/`` is appended.
    base: str
    #: The registry host whose credentials requests to this endpoint may carry.
    cred_host: str
    mirror: bool = False

    @property
    def origin(self) -> str:
        """``scheme://host[:port]``: the unit of trust for credentials and tokens."""
        return url_origin(self.base)

    @property
    def host(self) -> str:
        """``host[:port]`` of the endpoint."""
        return urlsplit(self.base).netloc

    def url(self, repository: str, kind: str, target: str) -> str:
        """``<base>/v2/<repository>/<kind>/<target>`` (kind: ``manifests`` or ``blobs``)."""
        return f"{self.base}/v2/{repository}/{kind}/{target}"


class BlobStream:
    """An open blob download. Iterate :meth:`chunks`; always :meth:`close` (or use ``with``).

    ``total`` is the blob's size (from its descriptor); ``offset`` is where the data begins:
    the offset asked for when the registry honoured ``Range``, 0 when it answered the whole blob
    (the caller must then restart its hash and file). The stream yields exactly
    ``total - offset`` bytes or raises: :class:`~barque.errors.RegistryError` if the
    connection drops (reopen at ``offset + received``), :class:`~barque.errors.DigestMismatchError`
    if the server sends more than the descriptor's size.
    """

    def __init__(self, response: urllib3.BaseHTTPResponse | None, descriptor: Descriptor,
                 offset: int, source: str, *, low_speed_limit: int = 0,
                 low_speed_time: float = 0.0, read_timeout: float | None = None) -> None:
        self.descriptor = descriptor
        self._low_speed_limit = low_speed_limit
        self._low_speed_time = low_speed_time
        self._read_timeout = read_timeout
        self.total = descriptor.size
        self.offset = offset
        self._resp = response
        self._source = source
        self._received = 0
        self._closed = response is None

    @property
    def digest(self) -> str:
        """The blob's digest (from its descriptor)."""
        return self.descriptor.digest

    @property
    def received(self) -> int:
        """Bytes yielded so far (data position is ``offset + received``)."""
        return self._received

    def chunks(self, size: int = 1 << 20) -> Iterator[bytes]:
        """Yield the blob's bytes from ``offset`` on, in chunks of at most ``size`` bytes."""
        if size <= 0:
            raise ValueError("chunk size must be positive")
        resp = self._resp
        expected = self.total - self.offset
        window_start, window_bytes = time.monotonic(), 0
        while self._received < expected:
            if resp is None or self._closed:
                raise RegistryError(f"download of {self.digest} was closed")
            try:
                # read1: whatever has arrived, so a trickle is measured as it comes (read()
                # would wait for the whole chunk, a byte at a time).
                data = resp.read1(min(size, expected - self._received), decode_content=False)
            except (HTTPError, OSError) as e:
                self.close()
                reason = f"no data for {self._read_timeout:g} s (read_timeout)" if isinstance(
                    e, (ReadTimeoutError, Urllib3TimeoutError, TimeoutError)) and \
                    self._read_timeout else _reason(e)
                raise RegistryError(f"download of {self.digest} from {self._source} failed after "
                                    f"{self.offset + self._received} of {self.total} bytes: "
                                    f"{reason}") from e
            if not data:
                self.close()
                raise RegistryError(f"download of {self.digest} from {self._source} ended after "
                                    f"{self.offset + self._received} of {self.total} bytes")
            self._received += len(data)
            window_bytes += len(data)
            if self._low_speed_limit > 0 and self._received < expected:
                now = time.monotonic()
                elapsed = now - window_start
                if elapsed >= self._low_speed_time:
                    if window_bytes < self._low_speed_limit * elapsed:
                        self.close()
                        raise RegistryError(
                            f"download of {self.digest} from {self._source} is too slow: "
                            f"{window_bytes} bytes in {elapsed:.0f} s, under low_speed_limit "
                            f"{self._low_speed_limit} bytes/s (after {self.offset + self._received}"
                            f" of {self.total} bytes)")
                    window_start, window_bytes = now, 0
            yield data
        if resp is not None and not self._closed:
            try:
                extra = resp.read(1, decode_content=False)
            except (HTTPError, OSError):
                extra = b""
            if extra:
                self.close()
                raise DigestMismatchError(f"blob {self.digest} from {self._source} is larger "
                                          f"than its descriptor's {self.total} bytes")
            self.close()

    def __iter__(self) -> Iterator[bytes]:
        return self.chunks()

    def close(self) -> None:
        """Release the connection (closing it if the body was not read to the end)."""
        if self._closed or self._resp is None:
            self._closed = True
            return
        self._closed = True
        release(self._resp)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class RegistryClient:
    """Pull-side client for OCI Distribution v2 registries (see the module docstring).

    Safe to share between threads. ``timeout`` bounds connecting, ``read_timeout`` each wait
    for data (default: the settings' ``connect_timeout`` and ``read_timeout``); ``backoff`` is
    the first retry delay in seconds, doubled each time (default ``download_retry_backoff``).
    ``credentials`` (``{registry host: Credentials}``) are used instead of the Docker
    config's, which is then not read: a daemon's client sends its own with each request.
    """

    def __init__(self, settings: Settings, *, timeout: float | None = None,
                 read_timeout: float | None = None, backoff: float | None = None,
                 user_agent: str = USER_AGENT,
                 credentials: dict[str, Credentials] | None = None) -> None:
        self._settings = settings
        self._backoff = settings.download_retry_backoff if backoff is None else backoff
        self._read_timeout = settings.read_timeout if read_timeout is None else read_timeout
        connect = settings.connect_timeout if timeout is None else timeout
        self._pool = urllib3.PoolManager(
            num_pools=16, maxsize=max(4, settings.max_concurrent_downloads + 2), block=False,
            headers={"User-Agent": user_agent},
            timeout=urllib3.Timeout(connect=connect, read=self._read_timeout), retries=False)
        self._auth = Authenticator(settings.docker_config, self._fetch_token,
                                   self.may_send_credentials, credentials=credentials)
        self._lock = threading.Lock()
        self._mirror_down_until: dict[str, float] = {}

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Close pooled connections. The client must not be used afterwards."""
        self._pool.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # ------------------------------------------------------------------ public API
    def get_manifest(self, ref: Reference) -> ImageManifest | ImageIndex:
        """Fetch and verify the manifest or index ``ref`` names (its digest if pinned, else tag)."""
        return self._fetch_manifest(ref, ref.tag_or_digest)

    def resolve(self, ref: Reference, platform: Platform | None = None
                ) -> tuple[ImageManifest, str | None]:
        """The image manifest for ``platform`` (default: this host's), and the index digest.

        When ``ref`` names an index, the entry for ``platform`` is chosen
        (:func:`~barque.registry.platform.select_manifest`) and fetched by digest; the second
        element is then the top-level index's digest, else None. A single-platform manifest is
        returned as is: checking its config's platform is the caller's business.
        Raises PlatformNotFoundError, ManifestUnknownError, InvalidManifestError, ...
        """
        want = platform if platform is not None else host_platform()
        doc = self.get_manifest(ref)
        index_digest: str | None = None
        depth = 0
        while isinstance(doc, ImageIndex):
            if depth >= _MAX_INDEX_DEPTH:
                raise InvalidManifestError(f"invalid manifest: indexes of {ref} nest more than "
                                           f"{_MAX_INDEX_DEPTH} deep")
            if index_digest is None:
                index_digest = doc.digest
            entry = select_manifest(doc.manifests, want)
            child = self._fetch_manifest(ref, entry.digest, expected=entry)
            if isinstance(child, ImageIndex) != (entry.media_type in INDEX_MEDIA_TYPES):
                raise InvalidManifestError(f"invalid manifest: {ref.name}@{entry.digest} is a "
                                           f"{child.media_type}, its index says "
                                           f"{entry.media_type}")
            doc = child
            depth += 1
        return doc, index_digest

    def get_config(self, ref: Reference, descriptor: Descriptor) -> bytes:
        """The image config blob, verified against ``descriptor`` (size and sha256).

        Refused with InvalidManifestError beyond ``Settings.max_config_bytes``.
        """
        digest = validate_digest(descriptor.digest)
        cap = self._settings.max_config_bytes
        if descriptor.size > cap:
            raise InvalidManifestError(f"config {digest} of {ref.name} is {descriptor.size} "
                                       f"bytes, over the {cap}-byte limit (max_config_bytes)")
        what = f"{ref.registry}/{ref.repository}"

        def on(ep: Endpoint) -> bytes:
            def once() -> bytes:
                resp = self.send("GET", ep, ep.url(ref.repository, "blobs", digest),
                                 scope=self._scope(ref), what=what)
                try:
                    if resp.status != 200:
                        raise self.response_error(resp, ep, ref, f"blob {digest}", blob=True)
                    return self.read_at_most(resp, descriptor.size, ep)
                finally:
                    release(resp)

            data = self.retrying(once)
            _verify(data, descriptor, f"config of {ref.name}")
            return data

        return self._on_endpoints(ref.registry, on)

    def open_blob(self, ref: Reference, descriptor: Descriptor, offset: int = 0) -> BlobStream:
        """Start downloading a blob (a layer) from ``offset``; see :class:`BlobStream`.

        Sends ``Range: bytes=<offset>-`` when ``offset > 0``. Opening is retried on transient
        errors; reading is not (reopen at the offset reached). Foreign ``urls`` are never used.
        """
        digest = validate_digest(descriptor.digest)
        if not 0 <= offset <= descriptor.size:
            raise ValueError(f"offset {offset} outside blob {digest} of {descriptor.size} bytes")
        if offset == descriptor.size and offset > 0:
            return BlobStream(None, descriptor, offset, ref.registry)
        what = f"{ref.registry}/{ref.repository}"
        headers = {"Range": f"bytes={offset}-"} if offset else {}

        def on(ep: Endpoint) -> BlobStream:
            def once() -> BlobStream:
                resp = self.send("GET", ep, ep.url(ref.repository, "blobs", digest),
                                 scope=self._scope(ref), what=what, headers=headers)
                try:
                    start = self._blob_start(resp, ep, ref, descriptor, offset)
                except BaseException:
                    release(resp)
                    raise
                return BlobStream(resp, descriptor, start, ep.host,
                                  low_speed_limit=self._settings.low_speed_limit,
                                  low_speed_time=self._settings.low_speed_time,
                                  read_timeout=self._read_timeout)

            return self.retrying(once)

        return self._on_endpoints(ref.registry, on)

    def endpoints(self, registry: str) -> list[Endpoint]:
        """Mirrors configured for ``registry`` (in order), then the registry itself."""
        mirrors = self._settings.registry_mirrors.get(registry) or \
            self._settings.registry_mirrors.get(normalize_auth_key(registry)) or ()
        out: list[Endpoint] = []
        for m in mirrors:
            base = m.strip().rstrip("/")
            if not base:
                continue
            if "://" not in base:
                scheme = "http" if self._plain(base.split("/", 1)[0]) else "https"
                base = f"{scheme}://{base}"
            base = base.removesuffix("/v2")
            out.append(Endpoint(base, urlsplit(base).netloc, mirror=True))
        api_host = DOCKER_HUB_API_HOST if registry == "docker.io" else registry
        scheme = "http" if self._plain(registry) else "https"
        out.append(Endpoint(f"{scheme}://{api_host}", registry))
        return out

    # ------------------------------------------------------------------ transport
    # The requests themselves, public for push.py, login.py and search.py, which reuse them.
    def _plain(self, host: str) -> bool:
        return is_plain_http(host, self._settings.insecure_registries)

    def may_send_credentials(self, url: str) -> bool:
        """Whether credentials may travel to ``url``: over HTTPS, or plain HTTP to a registry
        configured (or known) to speak it."""
        parts = urlsplit(url)
        return parts.scheme == "https" or (parts.scheme == "http" and self._plain(parts.netloc))

    @staticmethod
    def _scope(ref: Reference, actions: str = "pull") -> str:
        return f"repository:{ref.repository}:{actions}"

    def _fetch_manifest(self, ref: Reference, target: str,
                        expected: Descriptor | None = None) -> ImageManifest | ImageIndex:
        by_digest = target.startswith("sha256:")
        if by_digest:
            validate_digest(target)
        subject = f"{ref.name}@{target}" if by_digest else f"{ref.name}:{target}"
        what = f"{ref.registry}/{ref.repository}"
        cap = self._settings.max_manifest_bytes
        if expected is not None and expected.size > cap:
            raise InvalidManifestError(f"manifest {subject} is {expected.size} bytes, over the "
                                       f"{cap}-byte limit (max_manifest_bytes)")

        def on(ep: Endpoint) -> ImageManifest | ImageIndex:
            def once() -> tuple[bytes, str | None, str | None]:
                resp = self.send("GET", ep, ep.url(ref.repository, "manifests", target),
                                 scope=self._scope(ref), what=what,
                                 headers={"Accept": ACCEPT_MANIFEST_TYPES})
                try:
                    if resp.status != 200:
                        raise self.response_error(resp, ep, ref, subject)
                    length = resp.headers.get("Content-Length")
                    if length is not None and length.isdigit() and int(length) > cap:
                        raise InvalidManifestError(f"manifest {subject} is {length} bytes, over "
                                                   f"the {cap}-byte limit (max_manifest_bytes)")
                    raw = self.read_at_most(resp, cap, ep, decode=True)
                    if len(raw) > cap:
                        raise InvalidManifestError(f"manifest {subject} is over the {cap}-byte "
                                                   "limit (max_manifest_bytes)")
                    return (raw, resp.headers.get("Content-Type"),
                            resp.headers.get("Docker-Content-Digest"))
                finally:
                    release(resp)

            raw, content_type, header_digest = self.retrying(once)
            digest = "sha256:" + hashlib.sha256(raw).hexdigest()
            if by_digest and digest != target:
                raise DigestMismatchError(f"manifest {subject} from {ep.host} hashes to {digest}")
            if not by_digest and header_digest and header_digest.startswith("sha256:") \
                    and header_digest.strip() != digest:
                raise DigestMismatchError(f"manifest {subject} from {ep.host} hashes to {digest}, "
                                          f"not to its Docker-Content-Digest "
                                          f"{one_line(header_digest, 80)}")
            if expected is not None and len(raw) != expected.size:
                raise DigestMismatchError(f"manifest {subject} is {len(raw)} bytes, its index "
                                          f"says {expected.size}")
            return parse_manifest(raw, digest, content_type)

        return self._on_endpoints(ref.registry, on)

    def _blob_start(self, resp: urllib3.BaseHTTPResponse, ep: Endpoint, ref: Reference,
                    descriptor: Descriptor, offset: int) -> int:
        """Check a blob GET's status and framing; return where its data starts."""
        subject = f"blob {descriptor.digest}"
        if resp.status == 200:
            start = 0
        elif resp.status == 206 and offset > 0:
            m = _CONTENT_RANGE_RE.fullmatch(resp.headers.get("Content-Range", "").strip())
            if m is None or int(m.group(1)) != offset or \
                    (m.group(3) != "*" and int(m.group(3)) != descriptor.size):
                raise RegistryError(f"registry {ep.host} answered {subject} with an unexpected "
                                    f"Content-Range {resp.headers.get('Content-Range')!r} for "
                                    f"offset {offset}")
            start = offset
        else:
            raise self.response_error(resp, ep, ref, subject, blob=True)
        length = resp.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) != descriptor.size - start:
            raise DigestMismatchError(f"{subject} from {ep.host} is {int(length) + start} bytes, "
                                      f"its descriptor says {descriptor.size}")
        return start

    def read_at_most(self, resp: urllib3.BaseHTTPResponse, limit: int, ep: Endpoint,
                     decode: bool = False) -> bytes:
        """Read the body up to ``limit + 1`` bytes (one more than allowed shows an overflow)."""
        buf = bytearray()
        try:
            while len(buf) <= limit:
                chunk = resp.read(min(1 << 16, limit + 1 - len(buf)), decode_content=decode)
                if not chunk:
                    break
                buf += chunk
        except (HTTPError, OSError) as e:
            raise _network_error(ep.base, e) from e
        return bytes(buf)

    def send(self, method: str, ep: Endpoint, url: str, *, scope: str, what: str,
             headers: dict[str, str] | None = None, body: bytes | None = None
             ) -> urllib3.BaseHTTPResponse:
        """One request with authentication and manual redirects, no retries.

        Returns the final response unread (``preload_content=False``); the caller must
        :func:`release` it. A 401 from ``ep``'s origin is answered once by authenticating
        (or refreshing a token); a second 401 raises AuthenticationError.
        """
        for attempt in (0, 1):
            authz = self._auth.authorization(ep.origin, ep.cred_host, scope, what)
            h = dict(headers or {})
            if authz is not None:
                h["Authorization"] = authz
            resp, final_url = self.follow(method, url, h, body)
            if resp.status != 401 or url_origin(final_url) != ep.origin:
                return resp
            challenges = resp.headers.getlist("WWW-Authenticate")
            try:
                err_body = resp.read(MAX_ERROR_BODY, decode_content=True)
            except (HTTPError, OSError):
                err_body = b""
            release(resp)
            if attempt == 1 or not challenges:
                _, msg = registry_message(err_body)
                creds = self._auth.credentials_for(ep.cred_host)
                suffix = f" (the credentials for {ep.cred_host} in {self._auth.config_path} " \
                         "were rejected)" if authz is not None and creds is not None else ""
                raise AuthenticationError(
                    f"unauthorized: {msg or 'authentication required'} for {what}{suffix}")
            self._auth.record_challenge(ep.origin, challenges, what)
            if authz is not None:
                self._auth.invalidate(ep.origin, scope)
        raise AssertionError("unreachable")

    def follow(self, method: str, url: str, headers: dict[str, str], body: bytes | None
               ) -> tuple[urllib3.BaseHTTPResponse, str]:
        """One request with the caller's headers, no retries; redirects are followed by hand,
        and ``Authorization``/``Cookie`` dropped when one leaves the origin. Returns the
        response and the URL that gave it."""
        for _ in range(_MAX_REDIRECTS + 1):
            try:
                resp = self._pool.request(method, url, headers=headers, body=body,
                                          redirect=False, retries=False, preload_content=False)
            except (HTTPError, OSError) as e:
                raise _network_error(url, e) from e
            location = resp.headers.get("Location")
            if resp.status not in _REDIRECT_STATUSES or not location:
                return resp, url
            release(resp)
            target = urljoin(url, location.strip())
            if urlsplit(target).scheme not in ("http", "https"):
                raise RegistryError(f"registry {urlsplit(url).netloc} redirected to an "
                                    f"unsupported URL {one_line(target, 100)!r}")
            if url_origin(target) != url_origin(url):
                headers = {k: v for k, v in headers.items()
                           if k.lower() not in ("authorization", "cookie")}
            if resp.status == 303 and method != "HEAD":
                method, body = "GET", None
            url = target
        raise RegistryError(f"too many redirects from registry {urlsplit(url).netloc}")

    def _fetch_token(self, url: str, headers: dict[str, str]) -> tuple[int, bytes]:
        def once() -> tuple[int, bytes]:
            resp, _ = self.follow("GET", url, dict(headers), None)
            try:
                if resp.status in _TRANSIENT_STATUSES:
                    raise _TransientError(f"token service {urlsplit(url).netloc} answered HTTP "
                                          f"{resp.status}", _retry_after(resp))
                try:
                    return resp.status, resp.read(1 << 20, decode_content=True)
                except (HTTPError, OSError) as e:
                    raise _network_error(url, e) from e
            finally:
                release(resp)

        return self.retrying(once)

    def response_error(self, resp: urllib3.BaseHTTPResponse, ep: Endpoint, ref: Reference,
                       subject: str, blob: bool = False) -> BarqueError:
        """The exception for a non-success answer about ``subject``."""
        try:
            body = resp.read(MAX_ERROR_BODY, decode_content=True)
        except (HTTPError, OSError):
            body = b""
        code, msg = registry_message(body)
        status = resp.status
        what = f"{ref.registry}/{ref.repository}"
        if status == 404 and not blob:
            extra = f" ({msg})" if msg and msg.lower() != "manifest unknown" else ""
            return ManifestUnknownError(f"manifest unknown: {subject}{extra}")
        if status == 404:
            return RegistryError(f"blob unknown: {subject.removeprefix('blob ')} in {what}")
        if status == 403:
            denied = msg or "requested access to the resource is denied"
            return AuthenticationError(f"denied: {denied} for {what}")
        if status in _TRANSIENT_STATUSES:
            return _TransientError(f"registry {ep.host} answered HTTP {status} for {subject}"
                                   + (f": {msg}" if msg else ""), _retry_after(resp))
        detail = msg or (code.lower().replace("_", " ") if code else f"HTTP {status}")
        return RegistryError(f"registry {ep.host} refused {subject}: {detail}")

    def retrying(self, fn: Callable[[], T]) -> T:
        """``fn()``, tried again after a transient failure (429, 5xx, a dropped connection)
        with backoff, as many times as the settings allow."""
        attempts = max(1, self._settings.download_retries)
        for i in range(attempts):
            try:
                return fn()
            except _TransientError as e:
                if i == attempts - 1:
                    raise RegistryError(str(e)) from e
                delay = e.retry_after if e.retry_after is not None else \
                    self._backoff * (2 ** i) * (0.75 + random.random() / 2)
                log.info("%s; retrying in %.1fs (%d/%d)", e, delay, i + 2, attempts)
                time.sleep(min(delay, _MAX_RETRY_AFTER))
        raise AssertionError("unreachable")

    def _on_endpoints(self, registry: str, fn: Callable[[Endpoint], T]) -> T:
        endpoints = self.endpoints(registry)
        now = time.monotonic()
        for ep in endpoints:
            if ep.mirror:
                with self._lock:
                    if self._mirror_down_until.get(ep.base, 0.0) > now:
                        continue
            try:
                return fn(ep)
            except BarqueError as e:
                if not ep.mirror:
                    raise
                log.warning("mirror %s failed (%s); trying the next endpoint", ep.base, e)
                if getattr(e, "unreachable", False):
                    with self._lock:
                        self._mirror_down_until[ep.base] = now + _MIRROR_PENALTY
        raise AssertionError("unreachable: the registry itself is always the last endpoint")


def _retry_after(resp: urllib3.BaseHTTPResponse) -> float | None:
    value = resp.headers.get("Retry-After", "").strip()
    return min(float(value), _MAX_RETRY_AFTER) if value.isdigit() else None


def _verify(data: bytes, descriptor: Descriptor, what: str) -> None:
    """Raise DigestMismatchError unless ``data`` has the descriptor's size and sha256."""
    if len(data) > descriptor.size:
        raise DigestMismatchError(f"{what} {descriptor.digest} is larger than its descriptor's "
                                  f"{descriptor.size} bytes")
    if len(data) != descriptor.size:
        raise DigestMismatchError(f"{what} {descriptor.digest} is {len(data)} bytes, its "
                                  f"descriptor says {descriptor.size}")
    actual = "sha256:" + hashlib.sha256(data).hexdigest()
    if actual != descriptor.digest:
        raise DigestMismatchError(f"{what} hashes to {actual}, not {descriptor.digest}")
