"""Platforms (``os/architecture[/variant]``) and choosing one manifest from an image index.

Normalisation and matching follow containerd's ``platforms`` package: architecture aliases
(``x86_64`` -> ``amd64``, ``aarch64`` -> ``arm64``, ``armhf`` -> ``arm/v7`` ...) are folded, and
each architecture's default variant is implied when none is given, so ``linux/arm64`` and
``linux/arm64/v8`` are the same platform, as are ``linux/arm`` and ``linux/arm/v7``, and
``linux/amd64`` and ``linux/amd64/v1``.

Selection (:func:`select_manifest`) takes, among the index entries that are image manifests or
nested indexes with a ``platform``, the one whose normalised OS, architecture and variant equal
the wanted platform; failing that, for ``arm`` and ``amd64`` the entry with the highest *older*
variant the wanted one can run (``arm/v7`` runs ``arm/v6``; ``amd64/v3`` runs ``amd64/v2``).
Entries without a ``platform`` are never chosen (containerd would take them; a pull that picks
the wrong architecture silently is worse than an error). Ties keep the index's order.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import msgspec

from ..errors import InvalidPlatformError, PlatformNotFoundError
from .mediatypes import INDEX_MEDIA_TYPES, MANIFEST_MEDIA_TYPES

if TYPE_CHECKING:
    from .manifest import Descriptor

__all__ = ["Platform", "host_platform", "normalize_arch", "normalize_os", "select_manifest"]

_KNOWN_OS = frozenset({
    "aix", "android", "darwin", "dragonfly", "freebsd", "hurd", "illumos", "ios", "js",
    "linux", "nacl", "netbsd", "openbsd", "plan9", "solaris", "wasip1", "windows", "zos",
})
_KNOWN_ARCH = frozenset({
    "386", "amd64", "amd64p32", "arm", "armbe", "arm64", "arm64be", "ppc64", "ppc64le",
    "loong64", "mips", "mipsle", "mips64", "mips64le", "mips64p32", "mips64p32le", "ppc",
    "riscv", "riscv64", "s390", "s390x", "sparc", "sparc64", "wasm",
    # aliases folded by normalize_arch
    "i386", "x86_64", "x86-64", "aarch64", "armhf", "armel",
})
_COMPONENT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
#: Variant implied when an architecture is given without one.
_DEFAULT_VARIANT = {"arm64": "v8", "arm": "v7", "amd64": "v1"}


def normalize_os(os_name: str) -> str:
    """Lowercase an OS name and fold ``macos`` into ``darwin``."""
    os_name = os_name.lower()
    return "darwin" if os_name == "macos" else os_name


def normalize_arch(arch: str, variant: str | None) -> tuple[str, str | None]:
    """Fold architecture aliases and spell the variant canonically (containerd's rules).

    The variant returned is ``None`` when it is the architecture's default (``arm64`` ``v8``,
    ``arm`` ``v7``, ``amd64`` ``v1``) so that equal platforms compare equal.
    """
    arch = arch.lower()
    v = (variant or "").lower()
    if arch == "i386":
        arch, v = "386", ""
    elif arch in ("x86_64", "x86-64", "amd64"):
        arch = "amd64"
    elif arch in ("aarch64", "arm64"):
        arch = "arm64"
        if v in ("8", "v8.0"):
            v = "v8"
    elif arch == "armhf":
        arch, v = "arm", "v7"
    elif arch == "armel":
        arch, v = "arm", "v6"
    elif arch == "arm" and v in ("5", "6", "7", "8"):
        v = "v" + v
    if v and v == _DEFAULT_VARIANT.get(arch):
        v = ""
    return arch, (v or None)


class Platform(msgspec.Struct, frozen=True):
    """An OCI platform: ``os``, ``architecture`` and optional ``variant`` (Go's spellings)."""

    os: str
    architecture: str
    variant: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        """Parse ``os[/arch[/variant]]`` as ``docker pull --platform`` does.

        A single component is an OS (with the host's architecture) if it is a known OS, else
        an architecture (with the host's OS). The result is *not* normalised (``str()`` gives
        back what was written); :meth:`normalized` and matching fold aliases. Raises
        :class:`~barque.errors.InvalidPlatformError`.
        """
        parts = text.strip().split("/")
        if not 1 <= len(parts) <= 3 or not all(_COMPONENT_RE.fullmatch(p) for p in parts):
            raise InvalidPlatformError(
                f"invalid platform {text!r}: expected os[/arch[/variant]], e.g. linux/arm64/v8")
        parts = [p.lower() for p in parts]
        if len(parts) == 1:
            host = host_platform()
            if parts[0] in _KNOWN_OS:
                return cls(normalize_os(parts[0]), host.architecture, host.variant)
            if parts[0] in _KNOWN_ARCH:
                return cls(host.os, parts[0])
            raise InvalidPlatformError(f"invalid platform {text!r}: unknown OS or architecture "
                                       f"{parts[0]!r}")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    def normalized(self) -> Platform:
        """The canonical spelling: aliases folded, default variant dropped."""
        arch, variant = normalize_arch(self.architecture, self.variant)
        return Platform(normalize_os(self.os), arch, variant)

    def matches(self, other: Platform) -> bool:
        """True when both name the same platform once normalised (``arm64`` == ``arm64/v8``)."""
        return self.normalized() == other.normalized()

    def __str__(self) -> str:
        """``os/architecture[/variant]``."""
        base = f"{self.os}/{self.architecture}"
        return f"{base}/{self.variant}" if self.variant else base


def host_platform() -> Platform:
    """The platform of this machine, as Docker names it (``linux/amd64``, ``linux/arm64/v8``)."""
    machine = os.uname().machine.lower()
    os_name = "linux" if sys.platform.startswith("linux") else normalize_os(sys.platform)
    table: dict[str, tuple[str, str | None]] = {
        "x86_64": ("amd64", None), "amd64": ("amd64", None),
        "aarch64": ("arm64", "v8"), "arm64": ("arm64", "v8"),
        "armv8l": ("arm", "v8"), "armv7l": ("arm", "v7"), "armv7": ("arm", "v7"),
        "armv6l": ("arm", "v6"), "armv5tel": ("arm", "v5"),
        "i386": ("386", None), "i486": ("386", None), "i586": ("386", None),
        "i686": ("386", None),
    }
    arch, variant = table.get(machine, (machine, None))
    return Platform(os_name, arch, variant)


def _variant_number(arch: str, variant: str | None) -> int | None:
    """``v7`` -> 7 for architectures whose variants are ordered levels; ``None`` otherwise."""
    v = variant or _DEFAULT_VARIANT.get(arch)
    if arch not in ("arm", "amd64") or not v or not v.startswith("v") or not v[1:].isdigit():
        return None
    return int(v[1:])


def _describe(entry: Descriptor) -> str:
    return str(entry.platform) if entry.platform is not None else "unknown"


def select_manifest(entries: Sequence[Descriptor], want: Platform) -> Descriptor:
    """Choose the index entry for ``want`` (see the module docstring for the rules).

    Only entries whose media type is an image manifest or an index are considered.
    Raises :class:`~barque.errors.PlatformNotFoundError` naming the platforms available.
    """
    usable = [e for e in entries if e.media_type in MANIFEST_MEDIA_TYPES
              or e.media_type in INDEX_MEDIA_TYPES]
    target = want.normalized()
    fallback: tuple[int, Descriptor] | None = None
    want_level = _variant_number(target.architecture, target.variant)
    for entry in usable:
        if entry.platform is None:
            continue
        have = entry.platform.normalized()
        if have.os != target.os or have.architecture != target.architecture:
            continue
        if have.variant == target.variant:
            return entry
        level = _variant_number(have.architecture, have.variant)
        if want_level is not None and level is not None and level < want_level \
                and (fallback is None or level > fallback[0]):
            fallback = (level, entry)
    if fallback is not None:
        return fallback[1]
    available = ", ".join(_describe(e) for e in usable) or "none"
    raise PlatformNotFoundError(
        f"no matching manifest for {want} in the manifest list entries (available: {available})")
