"""Image references, parsed and normalised exactly as Docker does (``distribution/reference``).

Grammar (from ``distribution/reference``)::

    reference        := name [ ":" tag ] [ "@" digest ]
    name             := [domain '/'] path-component ['/' path-component]*
    domain           := host [':' port-number]
    host             := domain-name | '[' IPv6address ']'
    domain-name      := domain-component ['.' domain-component]*
    domain-component := /([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])/
    path-component   := /[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*/
    tag              := /[\\w][\\w.-]{0,127}/
    digest           := "sha256:" /[a-f0-9]{64}/      (other algorithms are refused for now)

Normalisation (``ParseNormalizedNamed``): the first ``/``-separated component is a registry only
if it contains ``.`` or ``:``, is ``localhost``, or has an uppercase letter; otherwise the
registry is ``docker.io``. ``index.docker.io`` and ``registry-1.docker.io`` mean ``docker.io``.
A single-component repository on ``docker.io`` gets ``library/``. A reference with neither tag
nor digest gets ``default_tag`` (``latest``).

Only the standard library's ``re`` and ``msgspec`` (for the record) are imported: this module is
loaded at CLI start-up.
"""

from __future__ import annotations

import re

import msgspec

from .errors import InvalidReferenceError

__all__ = [
    "DEFAULT_REGISTRY",
    "Reference",
    "split_docker_domain",
]

#: The registry a reference without a domain names.
DEFAULT_REGISTRY = "docker.io"
#: Spellings of Docker Hub that normalise to :data:`DEFAULT_REGISTRY`.
_DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
_OFFICIAL_PREFIX = "library/"
_LOCALHOST = "localhost"
#: Longest name (domain and path, as written) Docker accepts.
NAME_TOTAL_LENGTH_MAX = 255

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|-+)"  # Docker writes [-]*; -+ is the same language without
# the empty match that makes a backtracking engine exponential on long names.
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_PATH = rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN = rf"(?:{_DOMAIN_NAME}|{_IPV6})(?::[0-9]+)?"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
# Any syntactically plausible digest: the algorithm is checked afterwards for a clearer message.
_ANY_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

_PATH_RE = re.compile(_PATH)
_DOMAIN_RE = re.compile(_DOMAIN)
_TAG_RE = re.compile(_TAG)
_SHA256_RE = re.compile(r"sha256:[a-f0-9]{64}")
_REFERENCE_RE = re.compile(rf"({_DOMAIN}/{_PATH})(?::({_TAG}))?(?:@({_ANY_DIGEST}))?")
_IDENTIFIER_RE = re.compile(r"[a-f0-9]{64}")


def split_docker_domain(name: str) -> tuple[str, str]:
    """Split a (tag-less or tagged) name into ``(registry, remainder)`` the way Docker does.

    The registry is normalised (Docker Hub aliases become ``docker.io``) and a single-component
    remainder on ``docker.io`` gets the ``library/`` prefix. No validation happens here.
    """
    i = name.find("/")
    first = name[:i] if i >= 0 else ""
    if i == -1 or (not any(c in first for c in ".:") and first != _LOCALHOST
                   and first.lower() == first):
        domain, remainder = DEFAULT_REGISTRY, name
    else:
        domain, remainder = first, name[i + 1:]
    if domain in _DOCKER_HUB_ALIASES:
        domain = DEFAULT_REGISTRY
    if domain == DEFAULT_REGISTRY and "/" not in remainder:
        remainder = _OFFICIAL_PREFIX + remainder
    return domain, remainder


def _invalid(text: str, why: str | None = None) -> InvalidReferenceError:
    msg = f"invalid reference format: {_quote(text)}"
    return InvalidReferenceError(msg if why is None else f"{msg}: {why}")


def _quote(text: str) -> str:
    """Double-quote ``text`` on one line, escaping quotes, backslashes and control characters."""
    out = []
    for c in text:
        if c in '"\\':
            out.append("\\" + c)
        elif c.isprintable():
            out.append(c)
        else:
            out.append(repr(c)[1:-1])
    return '"' + "".join(out) + '"'


def _check_digest(text: str, digest: str) -> None:
    algorithm, _, _hexpart = digest.partition(":")
    if algorithm != "sha256":
        raise _invalid(text, f"unsupported digest algorithm {algorithm!r} "
                             "(only sha256 is supported)")
    if not _SHA256_RE.fullmatch(digest):
        raise _invalid(text, "invalid digest: sha256 needs 64 lowercase hexadecimal characters")


class Reference(msgspec.Struct, frozen=True):
    """A normalised image reference: ``registry/repository[:tag][@digest]``.

    Instances are validated on construction (so a ``digest`` is always ``sha256:<64 hex>``
    and safe to use in a path or URL); build them with :meth:`parse` to get Docker's
    normalisation. At least one of ``tag`` and ``digest`` is normally set; when both are, the
    digest is what identifies the content and the tag is informational (as in Docker).
    """

    #: Registry host, with ``:port`` if any; ``docker.io`` for Docker Hub.
    registry: str
    #: Repository path inside the registry, e.g. ``library/mysql``.
    repository: str
    tag: str | None = None
    digest: str | None = None

    def __post_init__(self) -> None:
        text = self._compose()
        if not _DOMAIN_RE.fullmatch(self.registry):
            raise _invalid(text, f"invalid registry {self.registry!r}")
        if not _PATH_RE.fullmatch(self.repository):
            if self.repository.lower() != self.repository:
                raise InvalidReferenceError(
                    f"invalid reference format: repository name ({self.repository}) "
                    "must be lowercase")
            raise _invalid(text, f"invalid repository name {self.repository!r}")
        if len(self.registry) + 1 + len(self.repository) > NAME_TOTAL_LENGTH_MAX:
            raise _invalid(text, f"repository name must not be more than "
                                 f"{NAME_TOTAL_LENGTH_MAX} characters")
        if self.tag is not None and not _TAG_RE.fullmatch(self.tag):
            raise _invalid(text, f"invalid tag {self.tag!r}")
        if self.digest is not None:
            _check_digest(text, self.digest)

    @classmethod
    def parse(cls, text: str, default_tag: str | None = "latest") -> Reference:
        """Parse ``text`` as ``docker pull`` would.

        ``default_tag`` is added when ``text`` has neither tag nor digest (pass ``None`` to keep
        such a reference bare). Raises :class:`~barque.errors.InvalidReferenceError` whose
        message names ``text``.
        """
        if not isinstance(text, str) or not text:
            raise InvalidReferenceError(
                "invalid reference format: repository name must have at least one component")
        if _IDENTIFIER_RE.fullmatch(text):
            raise InvalidReferenceError(
                f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings")
        domain, remainder = split_docker_domain(text)
        tag_sep = remainder.find(":")
        remote = remainder[:tag_sep] if tag_sep >= 0 else remainder
        # Docker checks case before the grammar, so "Foo" gets the friendlier message.
        remote_name = remote.split("@", 1)[0]
        if remote_name.lower() != remote_name:
            raise InvalidReferenceError(
                f"invalid reference format: repository name ({remote_name}) must be lowercase")
        m = _REFERENCE_RE.fullmatch(f"{domain}/{remainder}")
        if m is None:
            raise _invalid(text)
        name, tag, digest = m.group(1), m.group(2), m.group(3)
        if len(name) > NAME_TOTAL_LENGTH_MAX:
            raise _invalid(text, f"repository name must not be more than "
                                 f"{NAME_TOTAL_LENGTH_MAX} characters")
        if digest is not None:
            _check_digest(text, digest)
        if tag is None and digest is None:
            tag = default_tag
        return cls(domain, name[len(domain) + 1:], tag, digest)

    @property
    def name(self) -> str:
        """Fully qualified name without tag or digest: ``docker.io/library/mysql``."""
        return f"{self.registry}/{self.repository}"

    @property
    def familiar_name(self) -> str:
        """The short name Docker shows (``docker images``' REPOSITORY column).

        ``mysql`` for ``docker.io/library/mysql``, ``user/repo`` for ``docker.io/user/repo``,
        and the full name for any other registry.
        """
        if self.registry == DEFAULT_REGISTRY:
            repo = self.repository
            if repo.startswith(_OFFICIAL_PREFIX) and repo.count("/") == 1:
                return repo[len(_OFFICIAL_PREFIX):]
            return repo
        return self.name

    @property
    def familiar(self) -> str:
        """:attr:`familiar_name` with ``:tag`` and/or ``@digest``: ``mysql:5.7``."""
        return self.familiar_name + self._suffix()

    @property
    def tag_or_digest(self) -> str:
        """What to ask the registry for: the digest if there is one, else the tag.

        Raises :class:`~barque.errors.InvalidReferenceError` for a bare reference.
        """
        if self.digest is not None:
            return self.digest
        if self.tag is not None:
            return self.tag
        raise InvalidReferenceError(f"invalid reference format: {_quote(self.name)} has "
                                    "neither a tag nor a digest")

    def with_tag(self, tag: str | None) -> Reference:
        """A copy with ``tag`` (validated; ``None`` removes it), keeping any digest.

        Like Docker's ``reference.WithTag``: ``ref.with_tag(None)`` of ``name:tag@digest`` is
        ``name@digest``.
        """
        return Reference(self.registry, self.repository, tag, self.digest)

    def with_digest(self, digest: str | None) -> Reference:
        """A copy pinned to ``digest`` (validated; ``None`` removes it), keeping any tag."""
        return Reference(self.registry, self.repository, self.tag, digest)

    def _suffix(self) -> str:
        out = ""
        if self.tag is not None:
            out += f":{self.tag}"
        if self.digest is not None:
            out += f"@{self.digest}"
        return out

    def _compose(self) -> str:
        return f"{self.registry}/{self.repository}{self._suffix()}"

    def __str__(self) -> str:
        """Canonical form: ``docker.io/library/mysql:5.7.30`` (``@sha256:…`` when pinned)."""
        return self._compose()
