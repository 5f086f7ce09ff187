"""barque.overlay's lookups over layer directories, checked path by path against what the
kernel's overlayfs shows when the same layers are mounted."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from barque import overlay

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="whiteouts (0:0 devices) and trusted.* xattrs need root")


def _whiteout(path: Path) -> None:
    os.mknod(path, stat.S_IFCHR | 0o600, 0)


def _opaque(path: Path) -> None:
    os.setxattr(path, "trusted.overlay.opaque", b"y")


def _layers(tmp: Path) -> list[Path]:
    """Bottom, middle, top: every way a higher layer hides or merges with a lower one."""
    bottom, middle, top = (tmp / n for n in ("bottom", "middle", "top"))
    for d in ("etc/ssl/certs", "opt/app/lib", "var/log", "gone/sub", "srv/www", "home/u"):
        (bottom / d).mkdir(parents=True)
    for f in ("etc/passwd", "etc/ssl/certs/ca", "opt/app/lib/x.so", "var/log/old",
              "gone/sub/file", "srv/www/index", "home/u/.profile"):
        (bottom / f).write_text(f"bottom {f}\n")
    # middle: /opt opaque (so everything of bottom's /opt/app/lib is hidden, although
    # middle's own /opt/app is not opaque), /gone whited out, /srv a file over a directory
    for d in ("opt/app", "etc", "var/log"):
        (middle / d).mkdir(parents=True)
    _opaque(middle / "opt")
    (middle / "opt/app/new").write_text("middle opt/app/new\n")
    _whiteout(middle / "gone")
    (middle / "srv").write_text("a file over a directory\n")
    (middle / "etc/group").write_text("middle etc/group\n")
    _whiteout(middle / "var/log/old")
    # top: /home a symlink over a directory, /etc/ssl opaque and empty, /var/log/old back
    for d in ("etc/ssl", "var/log"):
        (top / d).mkdir(parents=True)
    _opaque(top / "etc/ssl")
    (top / "var/log/old").write_text("top var/log/old\n")
    os.symlink("/srv", top / "home")
    for d in (bottom, middle, top):
        os.chown(d, 0, 0)
    return [top, middle, bottom]


def _all_paths(layers: list[Path]) -> set[str]:
    """Every path any layer holds, and a name below each (the kernel says 'absent' there)."""
    out: set[str] = set()
    for layer in layers:
        for dirpath, dirs, files in os.walk(layer):
            for name in dirs + files:
                rel = str((Path(dirpath) / name).relative_to(layer))
                out |= {rel, f"{rel}/missing"}
    return out


@pytest.fixture
def mounted(tmp_path: Path):
    layers = _layers(tmp_path)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                    "ro,lowerdir=" + ":".join(map(str, layers)), str(mnt)], check=True)
    try:
        yield layers, mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def _kernel_entry(mnt: Path, rel: str) -> os.stat_result | None:
    """What the mount shows at ``rel`` without following symlinks on the way (a symlink in
    the middle of a path is 'absent', as overlay's own rules never follow one)."""
    current = mnt
    st = None
    for part in rel.split("/"):
        if st is not None and not stat.S_ISDIR(st.st_mode):
            return None
        try:
            st = os.lstat(current / part)
        except FileNotFoundError:
            return None
        current = current / part
    return st


def test_every_lookup_agrees_with_overlayfs(mounted) -> None:
    layers, mnt = mounted
    checked = 0
    for rel in sorted(_all_paths(layers)):
        kernel = _kernel_entry(mnt, rel)
        ours = overlay.lookup(layers, rel)
        assert (ours is None) == (kernel is None), rel
        assert overlay.exists(layers, "/" + rel) == (kernel is not None), rel
        if kernel is None or ours is None:
            continue
        checked += 1
        assert stat.S_IFMT(ours[1].st_mode) == stat.S_IFMT(kernel.st_mode), rel
        if stat.S_ISREG(kernel.st_mode):
            assert overlay.read_file(layers, rel) == (mnt / rel).read_bytes(), rel
        elif stat.S_ISDIR(kernel.st_mode):
            assert overlay.children(layers, rel) == sorted(os.listdir(mnt / rel)), rel
            assert overlay.read_file(layers, rel) is None
    assert overlay.children(layers, "") == sorted(os.listdir(mnt))
    assert checked >= 12  # the paths the mount shows, each compared


def test_the_rules_that_hide_lower_layers(mounted) -> None:
    layers, _ = mounted
    assert not overlay.exists(layers, "opt/app/lib/x.so")       # an opaque ancestor
    assert overlay.read_file(layers, "opt/app/new") == b"middle opt/app/new\n"
    assert not overlay.exists(layers, "gone/sub/file")          # a whited-out parent
    assert overlay.read_file(layers, "srv") == b"a file over a directory\n"
    assert not overlay.exists(layers, "srv/www/index")           # a file over a directory
    assert overlay.children(layers, "etc/ssl") == []             # opaque and empty
    assert overlay.read_file(layers, "var/log/old") == b"top var/log/old\n"
    assert overlay.merged_dirs(layers, "etc") == [layer / "etc" for layer in layers]
    assert overlay.merged_dirs(layers, "opt/app") == [layers[1] / "opt/app"]
    assert overlay.merged_dirs(layers, "srv") == []


def test_symlinks_are_never_followed_out_of_the_layers(mounted) -> None:
    layers, _ = mounted
    # /home -> /srv: a lookup through it finds nothing (the host's /srv is never read) ...
    assert overlay.lookup(layers, "home/u/.profile") is None
    assert overlay.read_file(layers, "home") is None
    # ... resolving follows it inside the image: /srv is the middle layer's file there
    assert overlay.resolve(layers, "/home") == "srv"
    assert overlay.entry_kind(layers, "/home") == "file"
    assert overlay.entry_kind(layers, "/home/u") == "missing"
    assert overlay.entry_kind(layers, "/etc/../opt/app") == "dir"
    assert overlay.resolve(layers, "/../../etc/passwd") == "etc/passwd"


def test_a_symlink_loop_resolves_to_nothing(tmp_path: Path) -> None:
    layer = tmp_path / "layer"
    layer.mkdir()
    os.symlink("b", layer / "a")
    os.symlink("a", layer / "b")
    assert overlay.resolve([layer], "/a") is None
    assert overlay.entry_kind([layer], "/a/x") == "missing"
