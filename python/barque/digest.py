"""Digest strings (``sha256:<64 hex>``): validation before a digest ever names a file."""

from __future__ import annotations

import re

from .errors import InvalidManifestError

_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")


def is_digest(value: object) -> bool:
    return isinstance(value, str) and _DIGEST.match(value) is not None


def validate_digest(value: object, what: str = "digest") -> str:
    """Return ``value`` if it is a well-formed sha256 digest, else raise InvalidManifestError."""
    if not isinstance(value, str) or not is_digest(value):
        raise InvalidManifestError(f"invalid {what}: {value!r}")
    return value


def digest_hex(digest: str) -> str:
    """The hex part of a validated digest (safe to use as a file name)."""
    return validate_digest(digest)[len("sha256:"):]


def sha256_digest(data: bytes) -> str:
    import hashlib  # here: OpenSSL's bindings cost start-up time on commands that never hash

    return "sha256:" + hashlib.sha256(data).hexdigest()


def chain_ids(diff_ids: list[str]) -> list[str]:
    """OCI ChainIDs: ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))."""
    out: list[str] = []
    for diff_id in diff_ids:
        validate_digest(diff_id, "diff_id")
        out.append(diff_id if not out else sha256_digest(f"{out[-1]} {diff_id}".encode()))
    return out
