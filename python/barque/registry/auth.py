"""Registry authentication: ``WWW-Authenticate`` challenges, Docker's credentials, bearer tokens.

The flow, as Docker's: a request is answered ``401`` with one or more challenges; for ``Bearer``
we GET the ``realm`` with ``service`` and ``scope`` (``repository:<repo>:pull``), sending Basic
credentials if we have some for the registry, and use the ``token`` (or ``access_token``) until
``expires_in`` runs out; for ``Basic`` we send the credentials themselves. Once a registry has
challenged us, later requests to it carry the authorization up front.

Credentials come from Docker's client config (``auths`` in ``~/.docker/config.json``) only:
``credsStore``/``credHelpers`` and ``identitytoken`` (OAuth refresh tokens) are not supported
yet and are ignored. Credentials are looked up by the host actually contacted: a mirror gets
its own entry, never the credentials of the registry it mirrors.

No HTTP happens in this module: :class:`Authenticator` is given a ``fetch`` callable by the
client, which owns the connection pool and the redirect policy (never forwarding
``Authorization`` to another host).
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import msgspec

from ..errors import AuthenticationError

__all__ = [
    "DOCKER_HUB_AUTH_KEY",
    "Authenticator",
    "Challenge",
    "Credentials",
    "load_docker_auths",
    "normalize_auth_key",
    "parse_www_authenticate",
]

log = logging.getLogger("barque.registry")

#: The key ``docker login`` writes Docker Hub's credentials under.
DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/"
_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
#: Tokens are renewed this long before they expire (or at 90% of a short lifetime).
_EXPIRY_MARGIN = 10.0
_DEFAULT_EXPIRES_IN = 60
_MAX_TOKEN_RESPONSE = 1 << 20


# --------------------------------------------------------------------------- challenges

class Challenge(msgspec.Struct, frozen=True):
    """One challenge of a ``WWW-Authenticate`` header: scheme (lowercased) and parameters.

    Parameter names are lowercased; values are unquoted and unescaped. ``token68`` holds a
    bare token instead of parameters (``Negotiate abc==``), rare for registries.
    """

    scheme: str
    params: Mapping[str, str] = msgspec.field(default_factory=dict)
    token68: str | None = None

    @property
    def realm(self) -> str | None:
        """The ``realm`` parameter (the token endpoint URL, for Bearer)."""
        return self.params.get("realm")

    @property
    def service(self) -> str | None:
        """The ``service`` parameter."""
        return self.params.get("service")

    @property
    def scope(self) -> str | None:
        """The ``scope`` parameter, if the registry named one."""
        return self.params.get("scope")


_TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_TOKEN68 = _TCHAR | frozenset("/=")


class _Scanner:
    """A cursor over one header value, with the few RFC 7230/7235 productions we need."""

    def __init__(self, text: str) -> None:
        self.s, self.i = text, 0

    def ws(self) -> None:
        while self.i < len(self.s) and self.s[self.i] in " \t":
            self.i += 1

    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def token(self, chars: frozenset[str] = _TCHAR) -> str:
        start = self.i
        while self.i < len(self.s) and self.s[self.i] in chars:
            self.i += 1
        return self.s[start:self.i]

    def quoted(self) -> str:
        """A quoted-string, the cursor on its opening quote; an unterminated one runs to the end."""
        self.i += 1
        out: list[str] = []
        while self.i < len(self.s):
            c = self.s[self.i]
            self.i += 1
            if c == "\\" and self.i < len(self.s):
                out.append(self.s[self.i])
                self.i += 1
            elif c == '"':
                break
            else:
                out.append(c)
        return "".join(out)

    def skip_commas(self) -> None:
        while True:
            self.ws()
            if self.peek() != ",":
                return
            self.i += 1


def _parse_one(text: str) -> list[Challenge]:
    sc = _Scanner(text)
    challenges: list[Challenge] = []
    sc.skip_commas()
    while sc.peek():
        scheme = sc.token()
        if not scheme:
            break  # garbage: keep what was understood so far
        sc.ws()
        params: dict[str, str] = {}
        token68: str | None = None
        # After the scheme: either a token68 ("Negotiate abc==") or name=value parameters.
        save = sc.i
        word = sc.token(_TOKEN68 - {"="})
        pad = sc.token(frozenset("="))
        sc.ws()
        if word and (("/" in word and sc.peek() in ("", ",")) or
                     (pad != "=" and sc.peek() in ("", ","))):
            token68 = word + pad  # "abc", "abc==", "abc=" then end/comma
        else:
            sc.i = save
        if token68 is None:
            while True:
                sc.ws()
                start = sc.i
                name = sc.token()
                sc.ws()
                if not name or sc.peek() != "=":
                    sc.i = start  # next challenge's scheme (or end)
                    break
                sc.i += 1
                sc.ws()
                value = sc.quoted() if sc.peek() == '"' else sc.token()
                params.setdefault(name.lower(), value)
                sc.ws()
                if sc.peek() == ",":
                    sc.skip_commas()
                    continue
                break
        challenges.append(Challenge(scheme.lower(), params, token68))
        sc.skip_commas()
    return challenges


def parse_www_authenticate(values: str | Iterable[str]) -> list[Challenge]:
    """Parse one or several ``WWW-Authenticate`` header values into challenges, in order.

    Handles several challenges in one value (``Bearer realm="a", Basic realm="b"``), quoted
    values containing commas and escaped quotes (``scope="repository:a:pull,push"``),
    case-insensitive schemes and parameter names, and stray whitespace or empty list items.
    Unparseable trailing text is ignored; never raises.
    """
    if isinstance(values, str):
        values = [values]
    out: list[Challenge] = []
    for value in values:
        out.extend(_parse_one(value))
    return out


# --------------------------------------------------------------------------- credentials

class Credentials(msgspec.Struct, frozen=True):
    """A username and password (or token) for one registry. ``repr`` hides the password."""

    username: str
    password: str

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r})"  # the password stays out of logs

    def basic(self) -> str:
        """The ``Authorization`` header value for HTTP Basic."""
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


def normalize_auth_key(key: str) -> str:
    """Docker's ``ConvertToHostname`` plus Hub aliases: ``https://host:5000/v1/`` -> ``host:5000``.

    Docker Hub's spellings (``https://index.docker.io/v1/``, ``registry-1.docker.io`` ...)
    all become ``docker.io``.
    """
    host = key.strip()
    for prefix in ("http://", "https://"):
        if host.lower().startswith(prefix):
            host = host[len(prefix):]
            break
    host = host.split("/", 1)[0].lower()
    return "docker.io" if host in _HUB_ALIASES else host


def _decode_entry(key: str, entry: object) -> Credentials | None:
    if not isinstance(entry, dict):
        return None
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        try:
            user, sep, password = base64.b64decode(auth, validate=False).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            log.warning("ignoring malformed 'auth' for %s in the docker config", key)
            return None
        if not sep or not user:
            log.warning("ignoring malformed 'auth' for %s in the docker config", key)
            return None
        return Credentials(user, password)
    username, secret = entry.get("username"), entry.get("password")
    if isinstance(username, str) and username and isinstance(secret, str):
        return Credentials(username, secret)
    return None


def load_docker_auths(path: Path) -> dict[str, Credentials]:
    """Read the ``auths`` of a Docker client config into ``{normalised host: Credentials}``.

    A missing file means no credentials; an unreadable or malformed one is logged and treated
    the same (as the Docker CLI does). Where several keys normalise to the same host, a key that
    is already just the host wins, then the first in file order.
    """
    try:
        doc = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        log.warning("ignoring docker config %s: %s", path, e)
        return {}
    auths = doc.get("auths") if isinstance(doc, dict) else None
    if not isinstance(auths, dict):
        return {}
    out: dict[str, Credentials] = {}
    exact: set[str] = set()
    for key, entry in auths.items():
        if not isinstance(key, str):
            continue
        host = normalize_auth_key(key)
        creds = _decode_entry(key, entry)
        if creds is None:
            continue
        is_exact = key.strip().lower() == host or (host == "docker.io"
                                                   and key == DOCKER_HUB_AUTH_KEY)
        if host not in out or (is_exact and host not in exact):
            out[host] = creds
            if is_exact:
                exact.add(host)
    return out


# --------------------------------------------------------------------------- tokens

class _Token(msgspec.Struct):
    value: str
    expires_at: float


Fetch = Callable[[str, dict[str, str]], tuple[int, bytes]]
"""``fetch(url, headers) -> (status, body)``: a GET that never forwards headers off-host."""


class Authenticator:
    """Per-client authentication state: challenges seen per origin, cached bearer tokens.

    Thread-safe. ``fetch`` performs the token GET; ``may_send_credentials(url)`` says whether
    Basic credentials may travel to ``url`` (HTTPS, or a host we reach over plain HTTP anyway).
    """

    def __init__(self, docker_config: Path, fetch: Fetch,
                 may_send_credentials: Callable[[str], bool],
                 clock: Callable[[], float] = time.monotonic,
                 credentials: dict[str, Credentials] | None = None) -> None:
        self._config_path = docker_config
        self._fetch = fetch
        self._may_send = may_send_credentials
        self._clock = clock
        self._lock = threading.Lock()
        self._token_locks: dict[tuple[str, str], threading.Lock] = {}
        # Given credentials (a daemon request's X-Registry-Auth) replace the config file's:
        # that file is then never read.
        self._auths: dict[str, Credentials] | None = None if credentials is None else {
            normalize_auth_key(host): creds for host, creds in credentials.items()}
        self._challenges: dict[str, Challenge] = {}
        self._tokens: dict[tuple[str, str], _Token] = {}

    # -- credentials
    def credentials_for(self, host: str) -> Credentials | None:
        """Credentials for registry ``host`` (``host[:port]`` or ``docker.io``), or None."""
        with self._lock:
            if self._auths is None:
                self._auths = load_docker_auths(self._config_path)
            return self._auths.get(normalize_auth_key(host))

    @property
    def config_path(self) -> Path:
        """Where credentials are read from (named in error messages)."""
        return self._config_path

    # -- challenges
    def record_challenge(self, origin: str, header_values: Iterable[str], what: str) -> None:
        """Remember how ``origin`` wants to be authenticated (from a 401's headers).

        Bearer is preferred over Basic. Raises AuthenticationError naming ``what`` if no
        supported challenge is offered.
        """
        challenges = parse_www_authenticate(header_values)
        chosen = next((c for c in challenges if c.scheme == "bearer" and c.realm), None) or \
            next((c for c in challenges if c.scheme == "basic"), None)
        if chosen is None:
            offered = ", ".join(c.scheme for c in challenges) or "none"
            raise AuthenticationError(f"unauthorized: authentication required for {what} "
                                      f"(unsupported authentication scheme: {offered})")
        with self._lock:
            self._challenges[origin] = chosen

    def knows(self, origin: str) -> bool:
        """True once ``origin`` has challenged us."""
        with self._lock:
            return origin in self._challenges

    def invalidate(self, origin: str, scope: str) -> None:
        """Forget the cached token for ``(origin, scope)`` (it was refused)."""
        with self._lock:
            self._tokens.pop((origin, scope), None)

    def authorization(self, origin: str, cred_host: str, scope: str, what: str) -> str | None:
        """The ``Authorization`` value for a request to ``origin`` needing ``scope``.

        None if ``origin`` has not challenged us yet (send the request anonymously first).
        ``cred_host`` names the credentials to use; ``what`` (``host/repo``) goes in messages.
        Raises AuthenticationError when Basic is required and we have no credentials, or the
        token endpoint refuses us.
        """
        with self._lock:
            challenge = self._challenges.get(origin)
        if challenge is None:
            return None
        creds = self.credentials_for(cred_host)
        if challenge.scheme == "basic":
            if creds is None:
                raise AuthenticationError(f"unauthorized: authentication required for {what} "
                                          f"(no credentials for {cred_host} in "
                                          f"{self._config_path})")
            return creds.basic()
        key = (origin, scope)
        with self._lock:
            lock = self._token_locks.setdefault(key, threading.Lock())
        with lock:  # one token request per (origin, scope) at a time
            with self._lock:
                tok = self._tokens.get(key)
            if tok is not None and tok.expires_at > self._clock():
                return f"Bearer {tok.value}"
            value, expires_in = self._request_token(challenge, creds, cred_host, scope, what)
            margin = min(_EXPIRY_MARGIN, expires_in / 10)
            with self._lock:
                self._tokens[key] = _Token(value, self._clock() + expires_in - margin)
            return f"Bearer {value}"

    def _request_token(self, challenge: Challenge, creds: Credentials | None, cred_host: str,
                       scope: str, what: str) -> tuple[str, float]:
        realm = challenge.realm or ""
        parts = urlsplit(realm)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise AuthenticationError(f"unauthorized: registry for {what} sent an invalid "
                                      f"token realm {realm!r}")
        query: list[tuple[str, str]] = []
        if challenge.service:
            query.append(("service", challenge.service))
        # Several scopes (a mount needs push here and pull on the source) are separate params.
        query.extend(("scope", one) for one in scope.split())
        url = realm + ("&" if parts.query else "?") + urlencode(query)
        headers: dict[str, str] = {}
        if creds is not None:
            if not self._may_send(realm):
                raise AuthenticationError(f"refusing to send the credentials for {cred_host} "
                                          f"over plain HTTP to {parts.netloc}")
            headers["Authorization"] = creds.basic()
        status, body = self._fetch(url, headers)
        if status in (401, 403):
            detail = "incorrect username or password" if creds is not None else \
                "authentication required"
            raise AuthenticationError(f"unauthorized: {detail} for {what} "
                                      f"(token service {parts.netloc} answered {status})")
        if status != 200:
            raise AuthenticationError(f"unauthorized: token service {parts.netloc} answered "
                                      f"HTTP {status} for {what}")
        try:
            doc = json.loads(body[:_MAX_TOKEN_RESPONSE])
        except ValueError:
            doc = None
        token = None
        if isinstance(doc, dict):
            token = doc.get("token") or doc.get("access_token")
        if not isinstance(token, str) or not token or not token.isprintable() or \
                not token.isascii() or " " in token:
            raise AuthenticationError(f"unauthorized: token service {parts.netloc} returned no "
                                      f"usable token for {what}")
        raw_expiry = doc.get("expires_in") if isinstance(doc, dict) else None
        expires_in = float(raw_expiry) if isinstance(raw_expiry, (int, float)) and \
            not isinstance(raw_expiry, bool) else 0.0
        return token, (expires_in if expires_in > 0 else float(_DEFAULT_EXPIRES_IN))
