"""``search``: Docker Hub's search API for ``docker.io``, a registry's catalog for the others,
and the tags of one repository.

A private registry has no search API in Distribution v2, so ``HOST/TERM`` lists the catalog
(``/v2/_catalog``) and keeps the repositories whose name contains TERM; ``--list-tags`` reads
``/v2/<name>/tags/list``. Both follow the registry's ``Link: <...>; rel="next"`` pages.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import msgspec

from ..errors import AuthenticationError, RegistryError
from ..reference import Reference
from .client import (
    MAX_ERROR_BODY,
    Endpoint,
    RegistryClient,
    one_line,
    registry_message,
    release,
)

__all__ = ["HUB_SEARCH_URL", "SearchResult", "list_tags", "search"]

#: Docker Hub's search endpoint (what ``docker search`` asks for docker.io).
HUB_SEARCH_URL = "https://index.docker.io/v1/search"
#: Entries asked per catalog or tags page (registries may send fewer, then a Link).
DEFAULT_PAGE_SIZE = 100
_MAX_PAGES = 10_000
_MAX_PAGE_BYTES = 8 << 20
_LINK_NEXT_RE = re.compile(r'<([^>]*)>\s*;[^,]*rel="?next"?', re.IGNORECASE)


class SearchResult(msgspec.Struct, frozen=True):
    name: str
    description: str = ""
    star_count: int = 0
    is_official: bool = False
    is_automated: bool = False


def split_search_term(term: str) -> tuple[str, str]:
    """(registry, term): ``host:5000/foo`` names a registry as a reference would, else Hub."""
    first, sep, rest = term.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return "docker.io", term


def search(client: RegistryClient, term: str, limit: int = 25,
           page_size: int = DEFAULT_PAGE_SIZE) -> list[SearchResult]:
    """Up to ``limit`` repositories matching ``term`` (``HOST/TERM`` for a private registry)."""
    registry, text = split_search_term(term)
    if registry == "docker.io":
        return _search_hub(client, text, limit)
    needle = text.lower()
    out: list[SearchResult] = []
    ep = client.endpoints(registry)[-1]
    url = f"{ep.base}/v2/_catalog?{urlencode({'n': page_size})}"
    for page in _pages(client, ep, url, "registry:catalog:*", registry, "catalog"):
        names = page.get("repositories") or []
        for name in names if isinstance(names, list) else []:
            if isinstance(name, str) and needle in name.lower():
                out.append(SearchResult(f"{registry}/{name}"))
                if len(out) >= limit:
                    return out
    return out


def list_tags(client: RegistryClient, name: str, limit: int | None = None,
              page_size: int = DEFAULT_PAGE_SIZE) -> list[str]:
    """The tags of repository ``name`` (a reference without tag), in the registry's order."""
    ref = Reference.parse(name, default_tag=None)
    ep = client.endpoints(ref.registry)[-1]
    url = f"{ep.base}/v2/{ref.repository}/tags/list?{urlencode({'n': page_size})}"
    tags: list[str] = []
    for page in _pages(client, ep, url, f"repository:{ref.repository}:pull",
                       f"{ref.registry}/{ref.repository}", "tags"):
        for tag in page.get("tags") or []:
            if isinstance(tag, str):
                tags.append(tag)
                if limit is not None and len(tags) >= limit:
                    return tags
    return tags


def _pages(client: RegistryClient, ep: Endpoint, url: str, scope: str, what: str, kind: str
           ) -> Iterator[dict[str, Any]]:
    """Each JSON page, following ``Link: rel="next"`` on the registry's own origin."""
    seen: set[str] = set()
    while url and url not in seen and len(seen) < _MAX_PAGES:
        seen.add(url)
        status, link, body = _get(client, ep, url, scope, what)
        if status == 400 and len(seen) == 1 and \
                registry_message(body)[0] == "PAGINATION_NUMBER_INVALID":
            # The registry caps pages below our n (catalog.maxentries): let it pick the size.
            url = url.split("?", 1)[0]
            continue
        if status == 404 and kind == "catalog":
            raise RegistryError(f"registry {ep.host} does not offer a catalog (/v2/_catalog), "
                                "so it cannot be searched")
        if status == 404:
            raise RegistryError(f"repository {what} not found")
        if status != 200:
            raise RegistryError(f"registry {ep.host} answered HTTP {status} for the {kind} "
                                f"of {what}")
        try:
            page = json.loads(body)
        except ValueError as e:
            raise RegistryError(f"registry {ep.host} sent an invalid {kind} page: {e}") from e
        if not isinstance(page, dict):
            raise RegistryError(f"registry {ep.host} sent an invalid {kind} page")
        yield page
        m = _LINK_NEXT_RE.search(link or "")
        nxt = urljoin(url, m.group(1).strip()) if m else ""
        if nxt and urlsplit(nxt).netloc != urlsplit(url).netloc:
            break  # a page elsewhere would need our credentials there: stop here
        url = nxt


def _get(client: RegistryClient, ep: Endpoint, url: str, scope: str, what: str
         ) -> tuple[int, str, bytes]:
    def once() -> tuple[int, str, bytes]:
        resp = client.send("GET", ep, url, scope=scope, what=what,
                           headers={"Accept": "application/json"})
        try:
            if resp.status == 403:
                _, msg = registry_message(client.read_at_most(resp, MAX_ERROR_BODY, ep))
                raise AuthenticationError(
                    f"denied: {msg or 'requested access to the resource is denied'} for {what}")
            body = client.read_at_most(resp, _MAX_PAGE_BYTES, ep, decode=True)
            if len(body) > _MAX_PAGE_BYTES:
                raise RegistryError(f"registry {ep.host} sent a page over "
                                    f"{_MAX_PAGE_BYTES} bytes")
            return resp.status, ", ".join(resp.headers.getlist("Link")), body
        finally:
            release(resp)

    return client.retrying(once)


def _search_hub(client: RegistryClient, term: str, limit: int) -> list[SearchResult]:
    url = f"{HUB_SEARCH_URL}?{urlencode({'q': term, 'n': limit})}"
    hub = Endpoint(HUB_SEARCH_URL, "docker.io")  # unauthenticated: Hub's search is public

    def once() -> tuple[int, bytes]:
        resp, _ = client.follow("GET", url, {"Accept": "application/json"}, None)
        try:
            return resp.status, client.read_at_most(resp, _MAX_PAGE_BYTES, hub, decode=True)
        finally:
            release(resp)

    status, body = client.retrying(once)
    if status != 200:
        raise RegistryError(f"Docker Hub search ({urlsplit(url).netloc}) answered HTTP {status}")
    try:
        doc = json.loads(body)
    except ValueError as e:
        raise RegistryError(f"Docker Hub search sent invalid JSON: {e}") from e
    results = doc.get("results") if isinstance(doc, dict) else None
    out: list[SearchResult] = []
    for r in results if isinstance(results, list) else []:
        if not isinstance(r, dict) or not isinstance(r.get("name"), str):
            continue
        stars = r.get("star_count")
        out.append(SearchResult(
            one_line(r["name"], 256), str(r.get("description") or ""),
            stars if isinstance(stars, int) and not isinstance(stars, bool) else 0,
            r.get("is_official") is True, r.get("is_automated") is True))
    return out[:limit]
