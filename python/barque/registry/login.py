"""``login`` and ``logout``: check credentials against a registry, keep them in Docker's config.

Credentials are saved where Docker and skopeo read them, ``auths.<registry>.auth`` (base64
``user:password``) in ``~/.docker/config.json``, so one login serves all three. The file is
replaced atomically (temp file, fsync, rename, mode 0600) and every other key is kept; a
config that is not valid JSON is refused rather than overwritten. Nothing is written unless
the registry accepted the credentials: ``GET /v2/``, then the Bearer token flow (the realm's
token endpoint with Basic credentials) or Basic on ``/v2/`` itself.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from ..errors import AuthenticationError, BarqueError, RegistryError
from .auth import (
    DOCKER_HUB_AUTH_KEY,
    Credentials,
    normalize_auth_key,
    parse_www_authenticate,
)
from .client import MAX_ERROR_BODY, RegistryClient, registry_message, release

__all__ = ["auth_key", "login", "logout", "remove_credentials", "save_credentials",
           "verify_credentials"]


def auth_key(registry: str) -> str:
    """The ``auths`` key Docker writes for ``registry`` (Hub's is its v1 URL)."""
    host = normalize_auth_key(registry)
    return DOCKER_HUB_AUTH_KEY if host == "docker.io" else host


def login(client: RegistryClient, config_path: Path, registry: str, creds: Credentials
          ) -> Path:
    """Check ``creds`` against ``registry``, then save them; returns the config written.
    Refused credentials raise AuthenticationError and leave the config untouched."""
    verify_credentials(client, registry, creds)
    return save_credentials(config_path, registry, creds)


def logout(config_path: Path, registry: str) -> bool:
    """Forget the saved login for ``registry``; False if there was none."""
    return remove_credentials(config_path, registry)


def verify_credentials(client: RegistryClient, registry: str, creds: Credentials) -> None:
    """Raise AuthenticationError (one line, Docker's wording) unless ``registry`` accepts
    ``creds``; RegistryError if it cannot be reached. A registry asking for no
    authentication accepts anything, as with Docker."""
    ep = client.endpoints(registry)[-1]  # the registry itself: mirrors have no say in logins
    url = f"{ep.base}/v2/"
    status, challenges, body = _get(client, url, {})
    if status == 200:
        return
    if status != 401:
        raise _unexpected(url, status, body)
    offered = parse_www_authenticate(challenges)
    bearer = next((c for c in offered if c.scheme == "bearer" and c.realm), None)
    basic = next((c for c in offered if c.scheme == "basic"), None)
    if bearer is None and basic is None:
        raise AuthenticationError(f'Get "{url}": unsupported authentication scheme '
                                  f"({', '.join(c.scheme for c in offered) or 'none'})")
    target = bearer.realm if bearer is not None else url
    assert target is not None
    if not client.may_send_credentials(target):
        raise AuthenticationError(f"refusing to send the credentials for {registry} over "
                                  f"plain HTTP to {urlsplit(target).netloc}")
    if bearer is None:
        status, _, body = _get(client, url, {"Authorization": creds.basic()})
        if status == 200:
            return
        if status in (401, 403):
            raise _rejected(url, body)
        raise _unexpected(url, status, body)
    query = [("account", creds.username), ("client_id", "barque")]
    if bearer.service:
        query.append(("service", bearer.service))
    token_url = target + ("&" if urlsplit(target).query else "?") + urlencode(query)
    status, _, body = _get(client, token_url, {"Authorization": creds.basic()})
    if status in (401, 403):
        raise _rejected(url, body)
    if status != 200:
        raise _unexpected(token_url, status, body)


def save_credentials(config_path: Path, registry: str, creds: Credentials) -> Path:
    """Store ``creds`` for ``registry`` in the Docker config; returns the file written."""
    path = _real_path(config_path)
    doc = _read_config(path)
    auths = doc.get("auths")
    if not isinstance(auths, dict):
        auths = doc["auths"] = {}
    raw = f"{creds.username}:{creds.password}".encode()
    auths[auth_key(registry)] = {"auth": base64.b64encode(raw).decode("ascii")}
    _write_config(path, doc)
    return path


def remove_credentials(config_path: Path, registry: str) -> bool:
    """Drop every ``auths`` entry naming ``registry`` (any spelling of it); False if there
    was none. Other registries' entries and other keys stay as they are."""
    path = _real_path(config_path)
    if not path.exists():
        return False
    doc = _read_config(path)
    auths = doc.get("auths")
    if not isinstance(auths, dict):
        return False
    host = normalize_auth_key(registry)
    doomed = [k for k in auths if isinstance(k, str) and normalize_auth_key(k) == host]
    if not doomed:
        return False
    for key in doomed:
        del auths[key]
    _write_config(path, doc)
    return True


# --------------------------------------------------------------------------- internals

def _get(client: RegistryClient, url: str, headers: dict[str, str]
         ) -> tuple[int, list[str], bytes]:
    def once() -> tuple[int, list[str], bytes]:
        resp, _ = client.follow("GET", url, dict(headers), None)
        try:
            try:
                body = resp.read(MAX_ERROR_BODY, decode_content=True)
            except Exception:  # noqa: BLE001 - only the status matters then
                body = b""
            return resp.status, resp.headers.getlist("WWW-Authenticate"), body
        finally:
            release(resp)

    return client.retrying(once)


def _rejected(url: str, body: bytes) -> AuthenticationError:
    _, msg = registry_message(body)
    detail = msg if msg and msg.lower() != "authentication required" else \
        "incorrect username or password"
    return AuthenticationError(f'Get "{url}": unauthorized: {detail}')


def _unexpected(url: str, status: int, body: bytes) -> RegistryError:
    _, msg = registry_message(body)
    return RegistryError(f'Get "{url}": registry answered HTTP {status}'
                         + (f": {msg}" if msg else ""))


def _real_path(config_path: Path) -> Path:
    # A config.json that is a symlink (dotfiles managers) is updated where it points.
    return Path(os.path.realpath(config_path))


def _read_config(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_bytes() or b"{}")
    except FileNotFoundError:
        return {}
    except ValueError as e:
        raise BarqueError(f"{path} is not valid JSON ({e}); fix or remove it first") from e
    if not isinstance(doc, dict):
        raise BarqueError(f"{path} is not a JSON object; fix or remove it first")
    return doc


def _write_config(path: Path, doc: dict[str, Any]) -> None:
    from ..store.content import write_atomic

    # Docker creates ~/.docker private; the file holds passwords, hence 0600 whatever umask.
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    data = json.dumps(doc, indent="\t").encode() + b"\n"
    write_atomic(path, data, path.parent, mode=0o600)
