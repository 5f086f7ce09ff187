"""`barque search`: a real registry's catalog (paginated by the registry), tags, and the errors
of a registry that cannot be reached."""

from __future__ import annotations

import json

import pytest

from helpers import barque
from registry_server import IMAGES, skopeo_copy, start_registry

pytestmark = pytest.mark.registry

#: Repositories in the paged registry; three pages of two with ``catalog.maxentries: 2``.
REPOS = ["apps/alpha", "apps/beta", "apps/gamma", "tools/alpha-cli", "tools/delta", "zeta"]


@pytest.fixture(scope="module")
def paged_registry(registry, tmp_path_factory):  # type: ignore[no-untyped-def]
    """A registry whose catalog pages hold 2 entries (it refuses a larger ``n``), holding
    :data:`REPOS`, and ``apps/alpha`` with tags 1, 2 and latest."""
    server = start_registry(tmp_path_factory.mktemp("paged-registry"),
                            extra_config="catalog:\n  maxentries: 2\n")
    try:
        source = f"docker-archive:{IMAGES}/layers-1.docker.tar"
        for repo in REPOS:
            skopeo_copy(source, server.ref(f"{repo}:1"))
        for tag in ("2", "latest"):
            skopeo_copy(source, server.ref(f"apps/alpha:{tag}"))
        yield server
    finally:
        server.stop()


def _table(stdout: str) -> list[list[str]]:
    return [line.split() for line in stdout.splitlines()]


def test_catalog_search_follows_every_page(tmp_path, paged_registry) -> None:
    host = paged_registry.host
    out = barque(tmp_path, "search", f"{host}/alpha").stdout
    rows = _table(out)
    assert out.splitlines()[0].split() == ["NAME", "DESCRIPTION", "STARS", "OFFICIAL"]
    # apps/alpha is on the first page, tools/alpha-cli on the third
    assert rows[1:] == [[f"{host}/apps/alpha", "0"], [f"{host}/tools/alpha-cli", "0"]]

    everything = barque(tmp_path, "search", f"{host}/", "--format", "json").stdout
    names = [json.loads(line)["Name"] for line in everything.splitlines()]
    assert names == [f"{host}/{r}" for r in REPOS]

    limited = _table(barque(tmp_path, "search", "--limit", "3", f"{host}/").stdout)
    assert [r[0] for r in limited[1:]] == [f"{host}/{r}" for r in REPOS[:3]]

    nothing = barque(tmp_path, "search", f"{host}/no-such-thing").stdout
    assert _table(nothing) == [["NAME", "DESCRIPTION", "STARS", "OFFICIAL"]]


def test_list_tags(tmp_path, paged_registry) -> None:
    host = paged_registry.host
    out = barque(tmp_path, "search", "--list-tags", f"{host}/apps/alpha").stdout
    rows = _table(out)
    assert rows[0] == ["NAME", "TAG"]
    assert sorted(r[1] for r in rows[1:]) == ["1", "2", "latest"]
    assert {r[0] for r in rows[1:]} == {f"{host}/apps/alpha"}
    as_json = barque(tmp_path, "search", "--list-tags", "--format", "json",
                     f"{host}/tools/delta").stdout
    assert [json.loads(line) for line in as_json.splitlines()] == [
        {"Name": f"{host}/tools/delta", "Tag": "1"}]
    missing = barque(tmp_path, "search", "--list-tags", f"{host}/apps/nope", check=False)
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1
    assert "apps/nope" in missing.stderr


def test_unreachable_registries_are_named(tmp_path) -> None:
    down = barque(tmp_path, "search", "127.0.0.1:1/anything", check=False)
    assert down.returncode == 1 and down.stdout == ""
    assert down.stderr.count("\n") == 1 and "127.0.0.1:1" in down.stderr
    # Docker Hub: this machine has no internet, so the error must name Hub's index, one line
    hub = barque(tmp_path, "search", "busybox", check=False, timeout=120)
    if hub.returncode == 0:
        pytest.skip("Docker Hub is reachable from here")
    assert hub.returncode == 1 and hub.stdout == ""
    assert hub.stderr.count("\n") == 1 and "index.docker.io" in hub.stderr
