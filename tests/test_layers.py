"""Hostile and well-formed layers through ``barque._native`` on a real filesystem.

Every hostile case asserts the exception class, that the message names the offending entry,
and that nothing outside the unpack directory changed. Each runs twice: streamed through
``BlobIngest`` and from a stored blob through ``unpack_blob``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import tarfile
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from barque._native import BlobIngest, DigestError, LayerError, sha256_file, syncfs, unpack_blob

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root to create device nodes, chown and trusted.* xattrs"
)

MTIME = 1_600_000_000
SHARED = Path(os.environ.get("BARQUE_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
IMAGES = SHARED / "fixtures" / "images"


# ---------------------------------------------------------------------------- building layers


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def build(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    """A PAX tar written by Python's tarfile, the way a careful producer would."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data else None)
    return buf.getvalue()


def member(
    name: str,
    kind: bytes = tarfile.REGTYPE,
    data: bytes = b"",
    *,
    mode: int = 0o644,
    uid: int = 0,
    gid: int = 0,
    mtime: int = MTIME,
    link: str = "",
    dev: tuple[int, int] = (0, 0),
    pax: dict[str, str] | None = None,
) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.uid, info.gid = uid, gid
    info.mtime = mtime
    info.linkname = link
    info.devmajor, info.devminor = dev
    if pax:
        info.pax_headers = dict(pax)
    return info, data


def file(name: str, data: bytes = b"", **kw) -> tuple[tarfile.TarInfo, bytes]:
    return member(name, tarfile.REGTYPE, data, **kw)


def directory(name: str, **kw) -> tuple[tarfile.TarInfo, bytes]:
    kw.setdefault("mode", 0o755)
    return member(name, tarfile.DIRTYPE, **kw)


def symlink(name: str, target: str, **kw) -> tuple[tarfile.TarInfo, bytes]:
    kw.setdefault("mode", 0o777)
    return member(name, tarfile.SYMTYPE, link=target, **kw)


def hardlink(name: str, target: str, **kw) -> tuple[tarfile.TarInfo, bytes]:
    return member(name, tarfile.LNKTYPE, link=target, **kw)


# Raw blocks, for shapes tarfile refuses to write.


def raw_header(name: bytes, typeflag: bytes = b"0", size: int = 0, mode: int = 0o644, link: bytes = b"") -> bytes:
    h = bytearray(512)
    h[0 : len(name)] = name
    h[100:108] = b"%07o\0" % mode
    h[108:116] = b"%07o\0" % 0
    h[116:124] = b"%07o\0" % 0
    h[124:136] = b"%011o\0" % size
    h[136:148] = b"%011o\0" % MTIME
    h[156:157] = typeflag
    h[157 : 157 + len(link)] = link
    h[257:263] = b"ustar\0"
    h[263:265] = b"00"
    h[148:156] = b" " * 8
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h)


def pax_record(key: bytes, value: bytes) -> bytes:
    body = b" " + key + b"=" + value + b"\n"
    n = len(body) + len(str(len(body)))
    if len(str(n)) != len(str(len(body))):
        n = len(body) + len(str(n))
    return str(n).encode() + body


def pad(block: bytes) -> bytes:
    return block + b"\0" * (-len(block) % 512)


def raw_tar(*parts: bytes, end: bool = True) -> bytes:
    return b"".join(pad(p) for p in parts) + (b"\0" * 1024 if end else b"")


def pax_entry(records: list[tuple[bytes, bytes]], header: bytes, data: bytes = b"") -> list[bytes]:
    payload = b"".join(pax_record(k, v) for k, v in records)
    return [raw_header(b"PaxHeaders/x", b"x", len(payload)), payload, header, data]


# ---------------------------------------------------------------------------- the sandbox


def snapshot(top: Path) -> dict[str, tuple]:
    """Everything observable about a tree, without following symlinks."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
        for name in [""] + dirnames + filenames:
            p = Path(dirpath, name) if name else Path(dirpath)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                content = os.readlink(p)
            elif stat.S_ISREG(st.st_mode):
                content = p.read_bytes()
            else:
                content = None
            xattrs = {k: os.getxattr(p, k, follow_symlinks=False) for k in os.listxattr(p, follow_symlinks=False)}
            out[str(p.relative_to(top))] = (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns, content, xattrs)
    return out


@dataclass
class Env:
    tmp: Path
    root: Path
    outside: Path
    before: dict
    top_level: set

    @property
    def sentinel(self) -> Path:
        return self.outside / "sentinel"

    def assert_outside_untouched(self) -> None:
        assert snapshot(self.outside) == self.before
        extra = {p.name for p in self.tmp.iterdir()} - self.top_level - {"blob", "blob.partial"}
        assert not extra, f"created outside the unpack dir: {extra}"


@pytest.fixture
def env(tmp_path: Path) -> Env:
    root = tmp_path / "rootfs"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    sentinel = outside / "sentinel"
    sentinel.write_bytes(b"sentinel")
    os.chown(sentinel, 1234, 1234)
    os.chmod(sentinel, 0o640)
    os.utime(sentinel, ns=(10**18, 10**18))
    sentdir = outside / "dir"
    sentdir.mkdir()
    os.chown(sentdir, 1234, 1234)
    os.chmod(sentdir, 0o750)
    os.utime(sentdir, ns=(10**18, 10**18))
    os.utime(outside, ns=(10**18, 10**18))
    return Env(tmp_path, root, outside, snapshot(outside), {p.name for p in tmp_path.iterdir()})


@pytest.fixture(params=["stream", "stored"])
def how(request) -> str:
    return request.param


def run(env: Env, how: str, blob: bytes, *, tar: bytes | None = None, chunk: int = 1000, **kw) -> dict:
    """Unpacks ``blob`` into env.root, streamed through BlobIngest or from a stored blob."""
    diff_id = sha(tar) if tar is not None else None
    if how == "stream":
        ingest = BlobIngest(
            str(env.tmp / "blob.partial"),
            sha(blob),
            len(blob),
            unpack_dir=str(env.root),
            expected_diff_id=diff_id,
            **kw,
        )
        for i in range(0, len(blob), chunk):
            ingest.write(blob[i : i + chunk])
        return ingest.finish(str(env.tmp / "blob"))
    path = env.tmp / "blob"
    path.write_bytes(blob)
    return unpack_blob(str(path), str(env.root), expected_diff_id=diff_id, **kw)


def refused(env: Env, how: str, tar: bytes, entry: str, exc=LayerError, *, blob: bytes | None = None, **kw):
    with pytest.raises(exc) as info:
        run(env, how, gz(tar) if blob is None else blob, **kw)
    assert entry in str(info.value), str(info.value)
    if os.environ.get("SHOW_REFUSALS"):
        print(f"\n{type(info.value).__name__}: {info.value}")
    env.assert_outside_untouched()
    if how == "stream":
        assert not (env.tmp / "blob.partial").exists(), "content that can never be valid is not kept"
        assert not (env.tmp / "blob").exists()
    return info.value


# ---------------------------------------------------------------------------- hostile layers


def test_dotdot_escape(env, how):
    tar = build(file("ok", b"fine"), file("../escape", b"pwned"))
    refused(env, how, tar, "../escape")
    assert not (env.tmp / "escape").exists()


def test_nested_dotdot_escape(env, how):
    refused(env, how, build(file("a/b/../../../escape", b"pwned")), "a/b/../../../escape")


def test_absolute_path(env, how):
    target = str(env.outside / "abs")
    refused(env, how, build(file(target, b"pwned")), target)
    assert not Path(target).exists()


def test_write_through_symlinked_parent(env, how):
    tar = build(symlink("evil", str(env.outside)), file("evil/file", b"pwned"))
    refused(env, how, tar, "evil/file")
    assert not (env.outside / "file").exists()


def test_relative_symlinked_parent(env, how):
    tar = build(symlink("evil", "../outside"), directory("evil/sub"), file("evil/sub/f", b"x"))
    refused(env, how, tar, "evil/sub")


@pytest.mark.parametrize("marker", [".wh.sentinel", ".wh..wh..opq"])
def test_whiteout_and_opaque_through_symlinked_parent(env, how, marker):
    """A whiteout under a symlink would mknod outside; an opaque marker would set trusted.* there."""
    refused(env, how, build(symlink("evil", str(env.outside)), file(f"evil/{marker}")), f"evil/{marker}")


@pytest.mark.parametrize("target", ["/etc/passwd", "../x", "../outside/sentinel", "SENTINEL", "absent"])
def test_hard_link_escape_or_absent(env, how, target):
    target = str(env.sentinel) if target == "SENTINEL" else target
    refused(env, how, build(file("x", b"inside"), hardlink("link", target)), "link")
    assert not (env.root / "link").exists()


@pytest.mark.parametrize("name", ["dir/.wh..", "dir/.wh.", "dir/.wh...", ".wh..", ".wh.x/inner"])
def test_whiteout_naming_parent_or_self(env, how, name):
    refused(env, how, build(directory("dir"), file("dir/keep", b"k"), file(name)), name)


def test_digest_mismatch(env):
    tar = build(file("a", b"x"))
    blob = gz(tar)
    wrong = sha(b"not this")
    ingest = BlobIngest(str(env.tmp / "blob.partial"), wrong, len(blob), unpack_dir=str(env.root))
    ingest.write(blob)
    with pytest.raises(DigestError) as info:
        ingest.finish(str(env.tmp / "blob"))
    assert wrong in str(info.value) and sha(blob) in str(info.value)
    assert not (env.tmp / "blob.partial").exists() and not (env.tmp / "blob").exists()
    env.assert_outside_untouched()


def test_damaged_download_is_a_digest_error(env):
    """Bytes that break the unpacker but are not what the digest names: a transfer problem."""
    tar = build(file("big", os.urandom(100_000)))
    blob = gz(tar)
    damaged = blob[:100] + bytes(256) + blob[356:]
    ingest = BlobIngest(str(env.tmp / "blob.partial"), sha(blob), len(blob), unpack_dir=str(env.root))
    for i in range(0, len(damaged), 1000):
        ingest.write(damaged[i : i + 1000])
    with pytest.raises(DigestError, match=sha(blob)):
        ingest.finish(str(env.tmp / "blob"))
    assert not (env.tmp / "blob.partial").exists()
    env.assert_outside_untouched()


def test_size_mismatch(env):
    blob = gz(build(file("a", b"x" * 1000)))
    partial = env.tmp / "blob.partial"
    ingest = BlobIngest(str(partial), sha(blob), len(blob) - 1, unpack_dir=str(env.root))
    with pytest.raises(DigestError, match="size"):
        ingest.write(blob)
    assert not partial.exists()
    with pytest.raises(ValueError):
        ingest.write(b"more")  # the ingest is closed after a failure

    ingest = BlobIngest(str(partial), sha(blob), len(blob) + 1, unpack_dir=str(env.root))
    ingest.write(blob)
    with pytest.raises(DigestError, match=str(len(blob) + 1)):
        ingest.finish(str(env.tmp / "blob"))
    assert not partial.exists() and not (env.tmp / "blob").exists()
    env.assert_outside_untouched()


def test_truncated_gzip(env, how):
    tar = build(file("big", os.urandom(200_000)))
    blob = gz(tar)
    refused(env, how, tar, "big", blob=blob[: len(blob) // 2])


def test_gzip_missing_trailer(env, how):
    tar = build(file("small", b"x"))
    blob = gz(tar)
    refused(env, how, tar, "", blob=blob[:-4])


def test_corrupt_gzip(env, how):
    tar = build(file("big", os.urandom(100_000) + b"\0" * 100_000))
    blob = bytearray(gz(tar))
    blob[len(blob) // 2 : len(blob) // 2 + 64] = b"\x55" * 64
    err = refused(env, how, tar, "", blob=bytes(blob))
    assert "gzip" in str(err) or "deflate" in str(err) or "big" in str(err)


def test_not_a_layer(env, how):
    refused(env, how, b"", "", blob=b"\x1f\x8b this is not gzip at all" * 10)


@pytest.mark.skipif(shutil.which("zstd") is None, reason="needs the zstd command")
def test_truncated_zstd(env, how):
    tar = build(file("big", os.urandom(300_000)))
    blob = subprocess.run(["zstd", "-q", "-c"], input=tar, capture_output=True, check=True).stdout
    refused(env, how, tar, "big", blob=blob[: len(blob) - 100], compression="zstd")


def test_tar_bomb_max_bytes(env, how):
    tar = build(file("a", b"x"), file("zeros", b"\0" * (8 << 20)))
    err = refused(env, how, tar, "zeros", max_bytes=1 << 20)
    assert "max_bytes" in str(err)


def test_tar_bomb_max_entries(env, how):
    tar = build(*[file(f"f{i}") for i in range(10)])
    err = refused(env, how, tar, "f5", max_entries=5)
    assert "max_entries" in str(err)


def test_missing_end_of_archive(env, how):
    tar = raw_tar(raw_header(b"a", size=3), b"abc", end=False)
    refused(env, how, tar, "a")


def test_cut_mid_entry(env, how):
    tar = build(file("payload", b"p" * 5000))
    refused(env, how, tar, "payload", blob=gz(tar[:2048]))


def test_pax_size_disagrees_with_header(env, how):
    tar = raw_tar(*pax_entry([(b"size", b"4")], raw_header(b"liar", size=3), b"abc"))
    refused(env, how, tar, "liar")


def test_pax_path_with_nul(env, how):
    tar = raw_tar(*pax_entry([(b"path", b"inno\0cent")], raw_header(b"innocent")))
    refused(env, how, tar, "inno")


@pytest.mark.parametrize("xattr", ["trusted.overlay.opaque", "trusted.overlay.redirect", "trusted.evil"])
def test_forged_trusted_xattr(env, how, xattr):
    tar = build(directory("victim", pax={f"SCHILY.xattr.{xattr}": "y"}))
    refused(env, how, tar, "victim")
    assert not (env.root / "victim").exists()


def test_diff_id_mismatch(env, how):
    tar = build(file("a", b"x"))
    with pytest.raises(DigestError, match="DiffID"):
        run(env, how, gz(tar), tar=build(file("a", b"y")))
    env.assert_outside_untouched()


def test_chmod_chown_utimes_never_follow_symlinks(env, how):
    """Symlink entries, then entries of the same name: the targets outside must not change."""
    tar = build(
        symlink("f", str(env.sentinel), uid=4242, gid=4242, mtime=1000),
        file("f", b"new", mode=0o4777, uid=4242, gid=4242, mtime=1000),
        symlink("d", str(env.outside / "dir")),
        directory("d", mode=0o777, uid=4242, gid=4242, mtime=1000),
        symlink("s", str(env.sentinel), uid=4242, gid=4242, mtime=1000),
        symlink("p", str(env.sentinel)),
        member("p", tarfile.FIFOTYPE, mode=0o666, uid=4242),
    )
    run(env, how, gz(tar), tar=tar)
    env.assert_outside_untouched()
    assert (env.root / "f").read_bytes() == b"new"
    assert stat.S_ISREG(os.lstat(env.root / "f").st_mode)
    assert stat.S_ISDIR(os.lstat(env.root / "d").st_mode)
    assert stat.S_ISFIFO(os.lstat(env.root / "p").st_mode)
    st = os.lstat(env.root / "s")
    assert stat.S_ISLNK(st.st_mode) and (st.st_uid, st.st_mtime) == (4242, 1000)


def test_symlink_then_file_same_path(env, how):
    tar = build(symlink("etc/passwd", str(env.sentinel)), file("etc/passwd", b"root:x:0:0::/:/bin/sh\n"))
    run(env, how, gz(tar), tar=tar)
    env.assert_outside_untouched()
    assert not (env.root / "etc/passwd").is_symlink()
    assert (env.root / "etc/passwd").read_bytes().startswith(b"root:")


# ---------------------------------------------------------------------------- faithful extraction


def test_whiteout_becomes_char_device(env, how):
    tar = build(directory("dir"), file("dir/.wh.gone"), file(".wh.topdir"))
    run(env, how, gz(tar), tar=tar)
    for p in (env.root / "dir/gone", env.root / "topdir"):
        st = os.lstat(p)
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert not list(env.root.rglob(".wh.*"))


def test_opaque_marker_becomes_xattr(env, how):
    tar = build(directory("a"), file("a/.wh..wh..opq"), file("b/.wh..wh..opq"), directory("b", mode=0o711))
    run(env, how, gz(tar), tar=tar)
    for d in ("a", "b"):
        assert os.getxattr(env.root / d, "trusted.overlay.opaque") == b"y"
    assert stat.S_IMODE(os.lstat(env.root / "b").st_mode) == 0o711
    assert not list(env.root.rglob(".wh.*"))


def test_setuid_and_ownership(env, how):
    tar = build(
        directory("srv", uid=1000, gid=1000, mode=0o2775),
        file("srv/setuid", b"secret", mode=0o4755, uid=1000, gid=1000),
        file("srv/sticky", mode=0o1777, uid=5, gid=6),
        symlink("srv/link", "setuid", uid=1234, gid=5678),
    )
    run(env, how, gz(tar), tar=tar)
    st = os.lstat(env.root / "srv/setuid")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o4755, 1000, 1000)
    st = os.lstat(env.root / "srv")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o2775, 1000, 1000)
    st = os.lstat(env.root / "srv/sticky")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o1777, 5, 6)
    st = os.lstat(env.root / "srv/link")
    assert (st.st_uid, st.st_gid) == (1234, 5678)


def test_hard_link_shares_inode(env, how):
    tar = build(file("a/orig", b"data"), hardlink("b/copy", "a/orig"), hardlink("./c", "./a/orig"))
    run(env, how, gz(tar), tar=tar)
    ino = os.lstat(env.root / "a/orig").st_ino
    assert os.lstat(env.root / "b/copy").st_ino == ino == os.lstat(env.root / "c").st_ino
    assert os.lstat(env.root / "a/orig").st_nlink == 3


def test_fifo_and_devices(env, how):
    tar = build(
        member("dev/fifo", tarfile.FIFOTYPE, mode=0o620),
        member("dev/null", tarfile.CHRTYPE, mode=0o666, dev=(1, 3)),
        member("dev/loop0", tarfile.BLKTYPE, mode=0o660, gid=6, dev=(7, 0)),
    )
    run(env, how, gz(tar), tar=tar)
    st = os.lstat(env.root / "dev/fifo")
    assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o620
    st = os.lstat(env.root / "dev/null")
    assert stat.S_ISCHR(st.st_mode) and (os.major(st.st_rdev), os.minor(st.st_rdev)) == (1, 3)
    assert stat.S_IMODE(st.st_mode) == 0o666
    st = os.lstat(env.root / "dev/loop0")
    assert stat.S_ISBLK(st.st_mode) and (os.major(st.st_rdev), st.st_gid) == (7, 6)


def test_mtimes(env, how):
    tar = build(
        directory("d", mtime=1_000_000),
        file("d/f", mtime=2_000_000),
        symlink("d/l", "f", mtime=3_000_000),
        directory("d/sub", mtime=4_000_000),
        file("d/sub/g", mtime=5_000_000),
        file("d/pax", mtime=6_000_000, pax={"mtime": "6000000.5"}),
    )
    run(env, how, gz(tar), tar=tar)
    r = env.root
    assert os.lstat(r / "d").st_mtime == 1_000_000  # applied after its children were created
    assert os.lstat(r / "d/f").st_mtime == 2_000_000
    assert os.lstat(r / "d/l").st_mtime == 3_000_000
    assert os.lstat(r / "d/sub").st_mtime == 4_000_000
    assert os.lstat(r / "d/pax").st_mtime_ns == 6_000_000_500_000_000


def test_user_and_security_xattrs(env, how):
    cap = bytes.fromhex("0100000200200000000000000000000000000000")  # cap_net_raw+ep
    tar = build(
        file("f", b"x", pax={"SCHILY.xattr.user.note": "hello"}),
        file("ping", b"elf", mode=0o755, uid=0, pax={"SCHILY.xattr.security.capability": cap.decode("latin-1")}),
    )
    run(env, how, gz(tar), tar=tar)
    assert os.getxattr(env.root / "f", "user.note") == b"hello"


def test_replacement_semantics(env, how):
    tar = build(
        directory("d"),
        file("d/inner", b"1"),
        directory("d", mode=0o700),  # dir over dir keeps content
        directory("gone"),
        file("gone/f", b"2"),
        file("gone", b"now a file"),  # dir replaced by file, recursively
        file("f", b"old"),
        directory("f"),  # file replaced by dir
        file("f/x", b"x"),
    )
    run(env, how, gz(tar), tar=tar)
    r = env.root
    assert (r / "d/inner").read_bytes() == b"1" and stat.S_IMODE(os.lstat(r / "d").st_mode) == 0o700
    assert (r / "gone").read_bytes() == b"now a file"
    assert (r / "f/x").read_bytes() == b"x"


def test_result_dict(env, how):
    tar = build(directory("a"), file("a/x", b"12345"), file("b", b"678"))
    blob = gz(tar)
    result = run(env, how, blob, tar=tar)
    assert result == {
        "digest": sha(blob),
        "size": len(blob),
        "diff_id": sha(tar),
        "unpacked_bytes": 8,
        "entries": 3,
    }


def test_resume_after_abort(env):
    tar = build(directory("srv"), file("srv/big", os.urandom(300_000)), file("srv/small", b"s"))
    blob = gz(tar)
    partial = env.tmp / "blob.partial"
    half = len(blob) // 2

    first = BlobIngest(str(partial), sha(blob), len(blob), unpack_dir=str(env.root), expected_diff_id=sha(tar))
    assert first.offset == 0
    first.write(blob[:half])
    assert first.offset == half
    first.abort()
    del first
    assert partial.stat().st_size == half
    assert stat.S_IMODE(partial.stat().st_mode) == 0o600

    second = BlobIngest(str(partial), sha(blob), len(blob), unpack_dir=str(env.root), expected_diff_id=sha(tar))
    assert second.offset == half
    second.write(blob[half:])
    result = second.finish(str(env.tmp / "blob"))
    assert result["diff_id"] == sha(tar)
    assert (env.tmp / "blob").read_bytes() == blob and not partial.exists()
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        assert (env.root / "srv/big").read_bytes() == t.extractfile("srv/big").read()
    assert (env.root / "srv/small").read_bytes() == b"s"
    with pytest.raises(ValueError):
        second.finish(str(env.tmp / "blob"))


def test_finish_without_sync_keeps_the_verified_partial(env):
    tar = build(directory("srv"), file("srv/big", os.urandom(300_000)), file("srv/small", b"s"))
    blob = gz(tar)
    partial = env.tmp / "blob.partial"
    blob_path = env.tmp / "blob"

    ingest = BlobIngest(str(partial), sha(blob), len(blob), unpack_dir=str(env.root), expected_diff_id=sha(tar))
    ingest.write(blob)
    result = ingest.finish(str(blob_path), sync=False)
    assert (result["digest"], result["size"], result["diff_id"]) == (sha(blob), len(blob), sha(tar))
    assert not blob_path.exists()
    assert partial.read_bytes() == blob and stat.S_IMODE(partial.stat().st_mode) == 0o600
    assert (env.root / "srv/small").read_bytes() == b"s"
    with pytest.raises(ValueError):
        ingest.finish(str(blob_path), sync=False)

    # As after a crash before the caller's syncfs + rename: the next ingest re-verifies it all.
    again = BlobIngest(str(partial), sha(blob), len(blob))
    assert again.offset == len(blob)
    assert again.finish(str(blob_path))["digest"] == sha(blob)
    assert blob_path.read_bytes() == blob and not partial.exists()

    # The caller's side of the protocol.
    syncfs(str(env.tmp))
    syncfs(str(blob_path))


def test_finish_without_sync_still_verifies(env):
    tar = build(file("a", b"x"))
    blob = gz(tar)
    partial = env.tmp / "blob.partial"
    ingest = BlobIngest(str(partial), sha(blob), len(blob), unpack_dir=str(env.root), expected_diff_id=sha(b"other"))
    ingest.write(blob)
    with pytest.raises(DigestError, match="DiffID"):
        ingest.finish(str(env.tmp / "blob"), sync=False)
    assert not partial.exists() and not (env.tmp / "blob").exists()


def test_unpack_blob_without_sync(env):
    tar = build(directory("srv"), file("srv/f", b"data"))
    path = env.tmp / "blob"
    path.write_bytes(gz(tar))
    result = unpack_blob(str(path), str(env.root), expected_diff_id=sha(tar), sync=False)
    assert result["diff_id"] == sha(tar)
    assert (env.root / "srv/f").read_bytes() == b"data"


def test_syncfs_errors(env):
    missing = env.tmp / "missing"
    with pytest.raises(FileNotFoundError) as info:
        syncfs(str(missing))
    assert info.value.filename == str(missing)
    with pytest.raises(TypeError):
        syncfs()  # type: ignore[call-arg]


def test_store_only_and_sha256_file(env):
    blob = b"a config blob"
    ingest = BlobIngest(str(env.tmp / "blob.partial"), sha(blob))
    ingest.write(blob)
    result = ingest.finish(str(env.tmp / "blob"))
    assert result == {"digest": sha(blob), "size": len(blob), "diff_id": None, "unpacked_bytes": 0, "entries": 0}
    assert sha256_file(str(env.tmp / "blob")) == sha(blob)


def test_argument_validation(env):
    partial = str(env.tmp / "blob.partial")
    good = sha(b"")
    for bad in ["sha256:abc", "sha512:" + "0" * 128, good.upper(), "md5:x", good + " "]:
        with pytest.raises(DigestError):
            BlobIngest(partial, bad)
        with pytest.raises(DigestError):
            BlobIngest(partial, good, unpack_dir=str(env.root), expected_diff_id=bad)
    with pytest.raises(ValueError):
        BlobIngest(partial, good, unpack_dir=str(env.root), compression="xz")
    with pytest.raises(FileNotFoundError):
        BlobIngest(partial, good, unpack_dir=str(env.root / "missing"))
    (env.root / "x").touch()
    blob = env.tmp / "blob"
    blob.write_bytes(gz(build(file("a"))))
    with pytest.raises(OSError) as info:
        unpack_blob(str(blob), str(env.root))
    assert info.value.errno == 39 and info.value.filename == str(env.root)


def test_parallel_ingests(tmp_path):
    """Several BlobIngest objects run at once from Python threads (the GIL is released)."""
    errors = []

    def one(i: int) -> None:
        try:
            tar = build(*[file(f"d{i}/f{j}", os.urandom(20_000)) for j in range(30)])
            blob = gz(tar)
            root = tmp_path / f"root{i}"
            root.mkdir()
            ing = BlobIngest(str(tmp_path / f"p{i}"), sha(blob), len(blob), unpack_dir=str(root), expected_diff_id=sha(tar))
            for k in range(0, len(blob), 4096):
                ing.write(blob[k : k + 4096])
            assert ing.finish(str(tmp_path / f"b{i}"))["entries"] == 30
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


# ---------------------------------------------------------------------------- real image fixtures


def oci_layers(image: Path) -> list[tuple[dict, str]]:
    """(layer descriptor, expected DiffID) for the single manifest of an OCI layout."""
    index = json.loads((image / "index.json").read_text())
    blob = lambda digest: image / "blobs" / "sha256" / digest.split(":", 1)[1]  # noqa: E731
    manifest = json.loads(blob(index["manifests"][0]["digest"]).read_text())
    config = json.loads(blob(manifest["config"]["digest"]).read_text())
    return list(zip(manifest["layers"], config["rootfs"]["diff_ids"], strict=True))


@pytest.mark.skipif(not IMAGES.is_dir(), reason=f"shared fixtures not found at {IMAGES}")
@pytest.mark.parametrize("image", ["layers-1.oci", "layers-1-zstd.oci"])
def test_fixture_layers_verify(tmp_path, image):
    src = IMAGES / image
    layers = oci_layers(src)
    compression = "zstd" if "zstd" in layers[0][0]["mediaType"] else "gzip"
    roots = []
    for i, (desc, diff_id) in enumerate(layers):
        blob = tmp_path / f"layer{i}"
        shutil.copyfile(src / "blobs" / "sha256" / desc["digest"].split(":", 1)[1], blob)
        root = tmp_path / f"root{i}"
        root.mkdir()
        result = unpack_blob(str(blob), str(root), compression=compression, expected_diff_id=diff_id)
        assert (result["digest"], result["size"], result["diff_id"]) == (desc["digest"], desc["size"], diff_id)
        roots.append(root)

    busybox = roots[0] / "bin/busybox"
    assert hashlib.sha256(busybox.read_bytes()).hexdigest().startswith("3d9f2889d678")
    assert os.readlink(roots[0] / "bin/sh") == "/bin/busybox"
    app = roots[1] / "srv/app"
    st = os.lstat(app / "setuid")
    assert stat.S_IMODE(st.st_mode) == 0o4755
    assert os.lstat(app / "owned").st_uid == 1000
    assert os.lstat(app / "hard-src").st_ino == os.lstat(app / "hard-link").st_ino
    assert os.readlink(app / "abs-link") == "/srv/app/keep/file"
    st = os.lstat(roots[2] / "srv/app/gone")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.getxattr(roots[2] / "srv/app/opaque", "trusted.overlay.opaque") == b"y"
    assert (roots[2] / "srv/app/opaque/newfile").read_bytes() == b"new\n"

    # The same first layer streamed through BlobIngest in network-sized chunks, auto-detected.
    desc, diff_id = layers[0]
    data = (tmp_path / "layer0").read_bytes()
    root = tmp_path / "streamed"
    root.mkdir()
    ingest = BlobIngest(str(tmp_path / "partial"), desc["digest"], desc["size"], unpack_dir=str(root), expected_diff_id=diff_id)
    for k in range(0, len(data), 65536):
        ingest.write(data[k : k + 65536])
    result = ingest.finish(str(tmp_path / "stored"))
    assert result["diff_id"] == diff_id
    assert snapshot(root) == snapshot(roots[0])
