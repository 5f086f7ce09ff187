"""``barque cp`` as Docker's: tar streams both ways with ``-``, mtimes and modes kept, ``-a``
keeping owners, ``-L`` following a symlink SRC; real containers, stopped and running."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from helpers import SHARED, barque, cli

BUSYBOX_TAR = SHARED / "fixtures" / "images" / "busybox-1.35.docker.tar"
IMAGE = "barque-fixtures/busybox:1.35"
#: Times no copy could stamp by accident: both long past.
OLD_FILE, OLD_DIR = 1_000_000_000, 1_100_000_000

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="containers and mounts need root"),
    pytest.mark.skipif(not BUSYBOX_TAR.is_file(), reason="shared fixtures missing"),
]


def cp(root: Path, *args: str, stdin: bytes | None = None, cwd: Path | None = None,
       check: bool = True) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.run([*cli(), "--root", str(root), "cp", *args], input=stdin,
                          capture_output=True, timeout=300, cwd=cwd)
    if check and proc.returncode != 0:
        raise AssertionError(f"cp {' '.join(args)} exited {proc.returncode}: "
                             f"{proc.stderr.decode()}")
    return proc


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stopped container ``made`` whose /data holds a file owned 1234:5678 with an old
    mtime, an old subdirectory, a symlink to the file and /dlink, a symlink to /data."""
    root = tmp_path_factory.mktemp("cp") / "root"
    barque(root, "load", "-i", str(BUSYBOX_TAR))
    barque(root, "run", "--name", "made", "--network", "none", IMAGE, "sh", "-c",
           f"mkdir -p /data/sub && echo content > /data/f && chmod 640 /data/f && "
           f"chown 1234:5678 /data/f && touch -d @{OLD_FILE} /data/f && "
           f"ln -s f /data/link && touch -d @{OLD_DIR} /data/sub && ln -s /data /dlink")
    return root


def _members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_cp_to_dash_streams_a_tar_and_writes_no_file(store, tmp_path) -> None:
    out = cp(store, "made:/data", "-", cwd=tmp_path)
    assert not (tmp_path / "-").exists()
    members = _members(out.stdout)
    assert sorted(members) == ["data", "data/f", "data/link", "data/sub"]
    f = members["data/f"]
    assert (f.uid, f.gid, f.mode, int(f.mtime), f.size) == (1234, 5678, 0o640, OLD_FILE, 8)
    assert members["data/link"].issym() and members["data/link"].linkname == "f"
    assert members["data/sub"].isdir() and int(members["data/sub"].mtime) == OLD_DIR
    with tarfile.open(fileobj=io.BytesIO(out.stdout)) as tar:
        assert tar.extractfile("data/f").read() == b"content\n"  # type: ignore[union-attr]
    # -L: the target, under the link's name; without it, the link itself
    assert sorted(_members(cp(store, "-L", "made:/dlink", "-").stdout)) == [
        "dlink", "dlink/f", "dlink/link", "dlink/sub"]
    assert _members(cp(store, "made:/dlink", "-").stdout)["dlink"].linkname == "/data"
    missing = cp(store, "made:/nothing", "-", check=False)
    assert (missing.returncode, missing.stdout) == (1, b"")
    assert missing.stderr == b"Error: Could not find the file /nothing in container made\n"


def _tar(*entries: tuple[str, bytes | None, int]) -> bytes:
    """A tar of (name, content or None for a directory, mtime), every entry 4321:8765."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, content, mtime in entries:
            info = tarfile.TarInfo(name)
            info.uid, info.gid, info.mtime = 4321, 8765, mtime
            if content is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o750
                tar.addfile(info)
            else:
                info.size, info.mode = len(content), 0o604
                tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def _stat_in(root: Path, container: str, path: str) -> str:
    """``uid:gid:octal mode:mtime`` of ``path`` as seen from inside a running container."""
    return barque(root, "exec", container, "stat", "-c", "%u:%g:%a:%Y", path).stdout.strip()


def test_cp_from_dash_extracts_into_a_directory(store) -> None:
    archive = _tar(("in", None, OLD_DIR), ("in/new.txt", b"from stdin\n", OLD_FILE))
    cp(store, "-", "made:/home", stdin=archive)
    cp(store, "-a", "-", "made:/root", stdin=archive)
    barque(store, "run", "-d", "--name", "reader", "--network", "none", IMAGE, "sleep", "60")
    try:
        # Into a running container too; owners are the container's root without -a
        cp(store, "-", "reader:/tmp", stdin=archive)
        assert barque(store, "exec", "reader", "cat", "/tmp/in/new.txt").stdout == "from stdin\n"
        assert _stat_in(store, "reader", "/tmp/in/new.txt") == f"0:0:604:{OLD_FILE}"
        assert _stat_in(store, "reader", "/tmp/in") == f"0:0:750:{OLD_DIR}"
    finally:
        barque(store, "rm", "-f", "reader")
    members = _members(cp(store, "made:/home/in", "-").stdout)
    assert (members["in/new.txt"].uid, int(members["in/new.txt"].mtime)) == (0, OLD_FILE)
    kept = _members(cp(store, "made:/root/in", "-").stdout)["in/new.txt"]
    assert (kept.uid, kept.gid, kept.mode) == (4321, 8765, 0o604)  # -a


def test_cp_from_dash_refuses_a_non_directory_and_a_climbing_entry(store) -> None:
    archive = _tar(("x.txt", b"x\n", OLD_FILE))
    not_dir = cp(store, "-", "made:/etc/passwd", stdin=archive, check=False)
    assert (not_dir.returncode, not_dir.stderr) == (
        1, b'Error: destination "made:/etc/passwd" must be a directory\n')
    missing = cp(store, "-", "made:/nowhere", stdin=archive, check=False)
    assert missing.stderr == b"Error: Could not find the file /nowhere in container made\n"
    climbing = cp(store, "-", "made:/home", stdin=_tar(("../../climbed", b"x\n", OLD_FILE)),
                  check=False)
    assert climbing.returncode == 1 and climbing.stderr.count(b"\n") == 1
    assert b"outside the destination" in climbing.stderr
    garbage = cp(store, "-", "made:/home", stdin=b"not a tar\n" * 100, check=False)
    assert garbage.returncode == 1 and garbage.stderr.count(b"\n") == 1


def test_cp_out_keeps_mtimes_and_modes_and_a_keeps_owners(store, tmp_path) -> None:
    cp(store, "made:/data", str(tmp_path))
    f = (tmp_path / "data" / "f").lstat()
    assert (int(f.st_mtime), f.st_mode & 0o7777) == (OLD_FILE, 0o640)
    assert (f.st_uid, f.st_gid) == (os.geteuid(), os.getegid())  # the caller's, as Docker
    assert int((tmp_path / "data" / "sub").stat().st_mtime) == OLD_DIR
    assert os.readlink(tmp_path / "data" / "link") == "f"
    cp(store, "-a", "made:/data/f", str(tmp_path / "owned"))
    owned = (tmp_path / "owned").stat()
    assert (owned.st_uid, owned.st_gid, int(owned.st_mtime)) == (1234, 5678, OLD_FILE)
    # -L copies the directory /dlink points to, under the link's name
    cp(store, "-L", "made:/dlink", str(tmp_path / "followed"))
    assert (tmp_path / "followed" / "f").read_text() == "content\n"
    assert not (tmp_path / "followed").is_symlink()
    cp(store, "made:/dlink", str(tmp_path / "link-itself"))
    assert os.readlink(tmp_path / "link-itself") == "/data"


def test_cp_in_keeps_mtimes_and_a_keeps_owners_and_l_follows(store, tmp_path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "file").write_text("host\n")
    os.chown(src / "file", 2222, 3333)
    os.chmod(src / "file", 0o611)
    os.utime(src / "file", (OLD_FILE, OLD_FILE))
    os.symlink("file", src / "link")
    cp(store, str(src / "file"), "made:/home/plain")
    cp(store, "-a", str(src / "file"), "made:/home/archived")
    cp(store, "-L", str(src / "link"), "made:/home/followed")
    cp(store, str(src / "link"), "made:/home/link")
    members = _members(cp(store, "made:/home", "-").stdout)
    plain, archived = members["home/plain"], members["home/archived"]
    assert (plain.uid, plain.gid, plain.mode, int(plain.mtime)) == (0, 0, 0o611, OLD_FILE)
    assert (archived.uid, archived.gid, int(archived.mtime)) == (2222, 3333, OLD_FILE)
    assert members["home/followed"].isreg() and members["home/followed"].size == 5
    assert members["home/link"].issym() and members["home/link"].linkname == "file"
