"""The overlay's view computed from layer directories (export, volume copy-up), checked
against what the kernel's overlayfs shows for the same layers."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from barque.merged import copy_merged, merged_tree

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="whiteouts (0:0 devices) and trusted.* xattrs need root")


def _whiteout(path: Path) -> None:
    os.mknod(path, stat.S_IFCHR | 0o600, 0)


def _layers(tmp: Path) -> list[Path]:
    """Three layers, bottom first: content, then deletions, an opaque dir and replacements."""
    bottom, middle, top = (tmp / n for n in ("bottom", "middle", "top"))
    for d in (bottom / "etc/conf.d", bottom / "srv/data/sub", bottom / "usr/bin"):
        d.mkdir(parents=True)
    (bottom / "etc/passwd").write_text("root\n")
    (bottom / "etc/conf.d/a").write_text("a\n")
    (bottom / "srv/data/keep").write_text("keep\n")
    (bottom / "srv/data/sub/deep").write_text("deep\n")
    (bottom / "usr/bin/tool").write_text("#!/bin/sh\n")
    os.chmod(bottom / "usr/bin/tool", 0o4755)
    os.link(bottom / "usr/bin/tool", bottom / "usr/bin/tool2")
    os.symlink("/etc/passwd", bottom / "usr/bin/link")
    (middle / "etc/conf.d").mkdir(parents=True)
    (middle / "srv/data").mkdir(parents=True)
    _whiteout(middle / "etc/passwd")
    os.setxattr(middle / "etc/conf.d", "trusted.overlay.opaque", b"y")
    (middle / "etc/conf.d/b").write_text("b\n")
    (middle / "srv/data/new").write_text("new\n")
    (top / "etc").mkdir(parents=True)
    (top / "etc/passwd").write_text("again\n")
    (top / "usr").mkdir()
    (top / "usr/bin").write_text("a file over a directory\n")
    for d in (bottom, middle, top):
        os.chown(d, 0, 0)
    return [top, middle, bottom]


def _kernel_view(layers: list[Path], mnt: Path) -> dict[str, str]:
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                    "ro,lowerdir=" + ":".join(map(str, layers)), str(mnt)], check=True)
    try:
        return _listing(mnt)
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def _listing(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(dirpath) / name
            st = os.lstat(p)
            kind = "l:" + os.readlink(p) if stat.S_ISLNK(st.st_mode) else \
                "d" if stat.S_ISDIR(st.st_mode) else "f:" + p.read_text()
            out[str(p.relative_to(root))] = f"{kind} {oct(stat.S_IMODE(st.st_mode))}"
    return out


def test_the_view_equals_overlayfs(tmp_path) -> None:
    layers = _layers(tmp_path)
    (tmp_path / "mnt").mkdir()
    expected = _kernel_view(layers, tmp_path / "mnt")
    ours = {rel: src for rel, src in merged_tree(layers)}
    assert sorted(ours) == sorted(expected)
    assert "etc/conf.d/a" not in ours and ours["etc/passwd"] == layers[0] / "etc/passwd"
    # and a copy of a subtree has the same content, modes and hard links
    dest = tmp_path / "copy"
    dest.mkdir()
    copy_merged(layers, "srv", dest)
    assert _listing(dest) == {k.removeprefix("srv/"): v for k, v in expected.items()
                              if k.startswith("srv/")}


def test_many_layers_and_links(tmp_path) -> None:
    layers = []
    for i in range(130):  # more than a page of lowerdir= could name
        layer = tmp_path / f"layer-{i:03d}"
        (layer / "data").mkdir(parents=True)
        (layer / "data" / f"f{i}").write_text(str(i))
        layers.append(layer)
    _whiteout(layers[0] / "data" / "f5")  # layers[0] is the top
    (tmp_path / "b/usr/bin").mkdir(parents=True)
    (tmp_path / "b/usr/bin/tool").write_text("x")
    os.chown(tmp_path / "b/usr/bin/tool", 1000, 1000)
    os.chmod(tmp_path / "b/usr/bin/tool", 0o4755)  # after chown, which clears setuid
    os.link(tmp_path / "b/usr/bin/tool", tmp_path / "b/usr/bin/tool2")
    names = {rel for rel, _ in merged_tree(layers, "data")}
    assert len(names) == 129 and "data/f5" not in names
    dest = tmp_path / "dest"
    dest.mkdir()
    copy_merged([tmp_path / "b"], "usr", dest)
    tool = os.lstat(dest / "bin/tool")
    assert (tool.st_uid, stat.S_IMODE(tool.st_mode)) == (1000, 0o4755)
    assert os.lstat(dest / "bin/tool2").st_ino == tool.st_ino
