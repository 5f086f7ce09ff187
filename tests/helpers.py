"""Shared helpers for tests: run the CLI as a user would, and list a merged rootfs."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BARQUE_SHARED", REPO.parent / "shared"))
ROOTFS_MANIFEST = SHARED / "tools" / "rootfs-manifest"


def barque(root: Path, *args: str, check: bool = True, timeout: float = 300,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m barque --root ROOT ARGS`` and return the finished process."""
    proc = subprocess.run([sys.executable, "-m", "barque", "--root", str(root), *args],
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"barque {' '.join(args)} exited {proc.returncode}:\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc


def busybox_rootfs(path: Path) -> Path:
    """A busybox root filesystem from the host's busybox-static (scripts/mkimage.py), plus a
    non-executable file the runtime tests exec to get 126."""
    subprocess.run([sys.executable, str(REPO / "scripts" / "mkimage.py"), "--busybox-rootfs",
                    str(path)], check=True, capture_output=True)
    (path / "notexec").write_text("just text\n")
    (path / "notexec").chmod(0o644)
    return path


def merged_listing(lower_dirs_top_first: list[Path]) -> list[str]:
    """Mount the layers as a read-only overlay (as a container's rootfs would be) and list it
    with the shared ``rootfs-manifest`` tool. Needs root."""
    with tempfile.TemporaryDirectory() as tmp:
        merged = Path(tmp) / "merged"
        merged.mkdir()
        lower = ":".join(str(p) for p in lower_dirs_top_first)
        if len(lower_dirs_top_first) == 1:  # overlay wants two lowers without an upper
            empty = Path(tmp) / "empty"
            empty.mkdir()
            lower += f":{empty}"
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={lower}",
                        str(merged)], check=True)
        try:
            out = subprocess.run([sys.executable, str(ROOTFS_MANIFEST), str(merged)],
                                 check=True, capture_output=True, text=True).stdout
        finally:
            subprocess.run(["umount", str(merged)], check=True)
    return sorted(out.splitlines())  # the tool walks a dir tree in walk order, not sorted


#: Entries Docker's container init layer adds, which are in the fixtures' listings (made from
#: `docker export`) but not in the image: /.dockerenv (shown as /dockerenv: the tool strips the
#: dot with "./") and the /etc/mtab symlink.
DOCKER_INIT_LAYER = ("/dockerenv ", "/etc/mtab ")


def expected_listing(name: str, *, image_only: bool = True) -> list[str]:
    """The fixture listing of Docker's container rootfs; ``image_only`` drops what Docker's
    init layer added, leaving what the image's layers alone produce."""
    lines = (SHARED / "fixtures" / "images" / f"{name}.rootfs.txt").read_text().splitlines()
    if image_only:
        lines = [line for line in lines if not line.startswith(DOCKER_INIT_LAYER)]
    return sorted(lines)
