"""``--change`` for ``import`` and ``commit``: the Dockerfile instructions that only edit an
image's config (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, VOLUME, WORKDIR), with Dockerfile
syntax (JSON or shell form where Dockerfile allows both)."""

from __future__ import annotations

import json
import posixpath
import shlex
from typing import Any

from .errors import InvalidArgumentError

SUPPORTED = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "USER", "VOLUME", "WORKDIR")


def apply_changes(config: dict[str, Any], changes: list[str]) -> dict[str, Any]:
    """A copy of the image config's ``config`` section (Docker's ``Config``) with ``changes``
    applied in order. Raises InvalidArgumentError naming a bad instruction."""
    out: dict[str, Any] = json.loads(json.dumps(config or {}))  # a deep copy
    cmd_set = False
    for change in changes:
        keyword, _, rest = change.strip().partition(" ")
        if "\t" in keyword:
            keyword, _, more = keyword.partition("\t")
            rest = more + " " + rest
        keyword, rest = keyword.upper(), rest.strip()
        if keyword not in SUPPORTED:
            raise InvalidArgumentError(f"{keyword or change!r} is not a valid change command "
                                       f"(supported: {', '.join(SUPPORTED)})")
        if not rest:
            raise InvalidArgumentError(f"{keyword} requires an argument")
        if keyword == "CMD":
            out["Cmd"] = _command(rest)
            cmd_set = True
        elif keyword == "ENTRYPOINT":
            out["Entrypoint"] = _command(rest)
            if not cmd_set:  # as in a Dockerfile: a new ENTRYPOINT drops the inherited CMD
                out["Cmd"] = None
        elif keyword == "ENV":
            env = list(out.get("Env") or [])
            for key, value in _pairs(rest, keyword, legacy=True):
                env = [e for e in env if e.split("=", 1)[0] != key] + [f"{key}={value}"]
            out["Env"] = env
        elif keyword == "LABEL":
            labels = dict(out.get("Labels") or {})
            labels.update(_pairs(rest, keyword, legacy=False))
            out["Labels"] = labels
        elif keyword == "EXPOSE":
            ports = dict(out.get("ExposedPorts") or {})
            for word in _words(rest, keyword):
                ports.update({p: {} for p in _ports(word)})
            out["ExposedPorts"] = ports
        elif keyword == "USER":
            out["User"] = rest
        elif keyword == "VOLUME":
            volumes = dict(out.get("Volumes") or {})
            paths = _json_list(rest) if rest.startswith("[") else _words(rest, keyword)
            if paths is None:
                raise InvalidArgumentError(f"VOLUME: invalid JSON array {rest!r}")
            volumes.update({p: {} for p in paths})
            out["Volumes"] = volumes
        elif keyword == "WORKDIR":
            base = out.get("WorkingDir") or "/"
            out["WorkingDir"] = posixpath.normpath(posixpath.join(base, rest))
    return out


def _json_list(text: str) -> list[str] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def _command(text: str) -> list[str]:
    """Exec form (a JSON array of strings) or shell form (run by ``/bin/sh -c``)."""
    if text.startswith("["):
        value = _json_list(text)
        if value is not None:
            return value
    return ["/bin/sh", "-c", text]


def _words(text: str, keyword: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError as e:
        raise InvalidArgumentError(f"{keyword}: {e}") from e


def _pairs(text: str, keyword: str, *, legacy: bool) -> list[tuple[str, str]]:
    words = _words(text, keyword)
    if legacy and words and "=" not in words[0]:  # ENV KEY VALUE WITH SPACES
        key, _, value = text.partition(" ")
        return [(key, value.strip())]
    pairs = []
    for word in words:
        key, eq, value = word.partition("=")
        if not eq or not key:
            raise InvalidArgumentError(f"{keyword}: expected KEY=VALUE, got {word!r}")
        pairs.append((key, value))
    return pairs


def _ports(word: str) -> list[str]:
    port, _, proto = word.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in ("tcp", "udp", "sctp"):
        raise InvalidArgumentError(f"EXPOSE: invalid protocol in {word!r}")
    low, dash, high = port.partition("-")
    try:
        first, last = int(low), int(high) if dash else int(low)
    except ValueError:
        raise InvalidArgumentError(f"EXPOSE: invalid port {word!r}") from None
    if not 0 < first <= last <= 65535:
        raise InvalidArgumentError(f"EXPOSE: invalid port {word!r}")
    return [f"{p}/{proto}" for p in range(first, last + 1)]
