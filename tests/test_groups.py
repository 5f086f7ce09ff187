"""Supplementary groups of a container's processes, as Docker sets them: the primary gid, the
user's groups from the image's own /etc/group, and --group-add (names or gids), seen with
busybox `id` in real containers (run, run -d, exec)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from helpers import barque

pytestmark = [
    pytest.mark.registry,
    pytest.mark.skipif(os.geteuid() != 0, reason="containers need root (namespaces, mounts)"),
]

# The busybox fixture's /etc/group: root:x:0:, nogroup:x:65534:, app:x:1000: (no members).
WHEEL = "wheel:x:10:root,app"


@pytest.fixture(scope="module")
def store(tmp_path_factory, fixture_images):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("groups") / "root"
    barque(root, "pull", "-q", fixture_images["busybox"].ref)
    return root


@pytest.fixture
def busybox(fixture_images) -> str:  # type: ignore[no-untyped-def]
    return fixture_images["busybox"].ref


@pytest.fixture(scope="module")
def wheel_image(store, fixture_images) -> str:  # type: ignore[no-untyped-def]
    """busybox with a group listing root and app as members."""
    barque(store, "run", "--name", "add-wheel", "--network", "none", fixture_images["busybox"].ref,
           "sh", "-c", f"echo {WHEEL} >> /etc/group")
    barque(store, "commit", "add-wheel", "local/wheel:1")
    barque(store, "rm", "add-wheel")
    return "local/wheel:1"


def _id(store: Path, *args: str) -> str:
    return barque(store, "run", "--rm", "--network", "none", *args, "id").stdout


def test_id_lists_the_primary_group(store, busybox) -> None:
    # Docker puts the primary gid among the supplementary groups (CVE-2022-36109's fix).
    assert _id(store, busybox) == "uid=0(root) gid=0(root) groups=0(root)\n"
    assert _id(store, "-u", "app", busybox) == "uid=1000(app) gid=1000(app) groups=1000(app)\n"


def test_groups_come_from_the_images_etc_group(store, wheel_image) -> None:
    assert _id(store, wheel_image) == "uid=0(root) gid=0(root) groups=0(root),10(wheel)\n"
    assert _id(store, "-u", "app", wheel_image) == \
        "uid=1000(app) gid=1000(app) groups=10(wheel),1000(app)\n"  # the kernel sorts them
    # an explicit group replaces the primary one and adds no memberships (runc's rule)
    assert _id(store, "-u", "app:nogroup", wheel_image) == \
        "uid=1000(app) gid=65534(nogroup) groups=65534(nogroup)\n"


def test_group_add_by_name_and_gid(store, busybox) -> None:
    out = _id(store, "--group-add", "nogroup", "--group-add", "1234", "--group-add", "root",
              busybox)
    # the kernel keeps supplementary groups sorted; a gid without a name is shown bare
    assert out == "uid=0(root) gid=0(root) groups=0(root),1234,65534(nogroup)\n"


def test_group_add_reaches_detached_containers_and_exec(store, busybox) -> None:
    barque(store, "run", "-d", "--name", "grouped", "--network", "none", "--group-add", "app",
           busybox, "sleep", "300")
    try:
        host = json.loads(barque(store, "inspect", "grouped").stdout)[0]["HostConfig"]
        assert host["GroupAdd"] == ["app"]
        assert barque(store, "exec", "grouped", "id").stdout == \
            "uid=0(root) gid=0(root) groups=0(root),1000(app)\n"
        # exec -u resolves the user again, and keeps the container's --group-add as Docker does
        assert barque(store, "exec", "-u", "nobody", "grouped", "id").stdout == \
            "uid=65534(nobody) gid=65534(nogroup) groups=1000(app),65534(nogroup)\n"
    finally:
        barque(store, "rm", "-f", "grouped")


def test_group_add_of_an_unknown_name_is_one_error_and_creates_nothing(store, busybox) -> None:
    for command in ("run", "create"):
        proc = barque(store, command, "--name", "nogroup-here", "--network", "none",
                      "--group-add", "nope", busybox, "id", check=False)
        assert proc.returncode == 125, proc.stderr
        assert proc.stdout == ""
        assert proc.stderr.strip().splitlines()[-1] == \
            "Error: Unable to find group nope: no matching entries in group file"
        assert "nogroup-here" not in barque(store, "ps", "-a").stdout
