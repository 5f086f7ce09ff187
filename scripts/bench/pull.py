#!/usr/bin/env python3
"""Cold-pull benchmark: barque vs skopeo+umoci (and docker when a dockerd runs), plus sha256.

Builds (once, cached under /var/tmp/barque-bench) a realistic three-layer image -- a Debian
bookworm minbase from debootstrap, python3 + nginx-light on top, 16 MiB of random files --
pushes it to a throwaway Debian ``docker-registry`` on 127.0.0.1 and times, in the same run,
N cold rounds of:

  barque --root TMP pull -q 127.0.0.1:PORT/bench/debian:1
  skopeo copy docker://... oci:DIR:bench   +   umoci unpack --image DIR:bench BUNDLE
  docker pull 127.0.0.1:PORT/bench/debian:1   (only when `docker info` succeeds)

then compares barque's native sha256 with `openssl dgst -sha256` on the largest layer blob.
Run as root. Stdlib only. A benchmark, not a test: exits 0 even when a target is missed.

    sudo python3 scripts/bench/pull.py [--rounds 3] [--json out.json] [--rebuild]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO / "scripts"))
import mkimage  # noqa: E402  (scripts/mkimage.py: build() makes the OCI layout)

RECIPE_VERSION = 1
DEFAULT_CACHE = Path("/var/tmp/barque-bench")
MIRROR = "http://deb.debian.org/debian"
SUITE = "bookworm"
PACKAGES = ["python3", "nginx-light"]
RANDOM_SEED = 20240101
RANDOM_FILES, RANDOM_FILE_SIZE = 64, 256 * 1024
TAG = "bench"
REPOSITORY = "bench/debian"
IMAGE_TAG = "1"
FIXED_MTIME = 1704067200  # 2024-01-01T00:00:00Z, for the reproducible random layer

# From /work/shared/reference/anchors.md ("Pulling and unpacking"), same image recipe.
DOCUMENTED_DOCKER_PULL = (8.3, 13.0)
DOCUMENTED = {
    "docker pull": "8.3-13 s",
    "skopeo copy": "1.1-1.5 s",
    "umoci unpack": "12-15 s",
    "openssl dgst -sha256 (cached file)": "0.92 GB/s",
}
PULL_TARGET_FRACTION = 0.25
SHA_TARGET_FRACTION = 0.90

LAYER_DIRS = ("layer1-debian-minbase", "layer2-python3-nginx", "layer3-random")

MB = 1_000_000


def log(msg: str = "") -> None:
    print(msg, flush=True)


def run(cmd: list, *, check: bool = True, quiet: bool = False, **kw) -> subprocess.CompletedProcess:
    """Run a command; on failure show its output tail."""
    if not quiet:
        log("  $ " + " ".join(str(c) for c in cmd))
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if check and proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-25:]
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(map(str, cmd))}\n"
                         + "\n".join("    " + line for line in tail))
    return proc


# --------------------------------------------------------------------------------------------
# tools

TOOLS = {  # executable -> Debian package
    "debootstrap": "debootstrap",
    "skopeo": "skopeo",
    "umoci": "umoci",
    "/usr/bin/docker-registry": "docker-registry",
    "openssl": "openssl",
}


def ensure_tools() -> None:
    def present(exe: str) -> bool:
        return bool(shutil.which(exe)) or (exe.startswith("/") and os.access(exe, os.X_OK))

    missing = sorted({pkg for exe, pkg in TOOLS.items() if not present(exe)})
    if not missing:
        return
    log(f"installing missing tools: {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
    if run(cmd, check=False, env=env).returncode != 0:
        run(["apt-get", "update"], env=env)
        run(cmd, env=env)


# --------------------------------------------------------------------------------------------
# mounts / cleanup helpers

def mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve()).rstrip("/") + "/"
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].replace("\\040", " ")
            if mp.startswith(prefix) or mp == prefix[:-1]:
                found.append(mp)
    return sorted(found, key=len, reverse=True)


def umount_all_under(path: Path) -> None:
    if path.exists():
        for mp in mounts_under(path):
            subprocess.run(["umount", "-l", mp], capture_output=True)


def rmtree(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        umount_all_under(path)
        shutil.rmtree(path, ignore_errors=True)
        if path.exists():  # e.g. immutable bits or a busy mount: let rm report it
            subprocess.run(["rm", "-rf", "--one-file-system", str(path)])


def tree_bytes(path: Path) -> tuple[int, int]:
    """(sum of regular file sizes, number of entries) under path, not following links."""
    total = entries = 0
    for dirpath, dirnames, filenames in os.walk(path):
        entries += len(dirnames) + len(filenames)
        for name in filenames:
            st = os.lstat(os.path.join(dirpath, name))
            if (st.st_mode & 0o170000) == 0o100000:
                total += st.st_size
    return total, entries


# --------------------------------------------------------------------------------------------
# image build

def _stat_key(st: os.stat_result, path: str) -> tuple:
    fmt = st.st_mode & 0o170000
    link = os.readlink(path) if fmt == 0o120000 else None
    size = st.st_size if fmt != 0o040000 else 0
    return (fmt, st.st_mode & 0o7777, size, st.st_mtime_ns, st.st_uid, st.st_gid, link, st.st_rdev)


def snapshot(root: Path) -> dict[str, tuple]:
    """Relative path -> (type, mode, size, mtime, uid, gid, link target, rdev) for a whole tree."""
    out: dict[str, tuple] = {}
    root_s = str(root)
    for dirpath, dirnames, filenames in os.walk(root_s):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            out[os.path.relpath(full, root_s)] = _stat_key(os.lstat(full), full)
    return out


def _copy_entry(src: Path, dst: Path, st: os.stat_result, inodes: dict) -> None:
    fmt = st.st_mode & 0o170000
    if fmt == 0o040000:
        dst.mkdir()
    elif fmt == 0o100000:
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in inodes:
            os.link(inodes[key], dst)  # keep hard links hard links inside the layer
            return
        shutil.copyfile(src, dst, follow_symlinks=False)
        inodes[key] = dst
    elif fmt == 0o120000:
        os.symlink(os.readlink(src), dst)
    elif fmt in (0o020000, 0o060000, 0o010000):
        os.mknod(dst, st.st_mode, st.st_rdev)
    else:  # sockets: not part of an image
        return
    os.lchown(dst, st.st_uid, st.st_gid)
    if fmt != 0o120000:
        os.chmod(dst, st.st_mode & 0o7777)
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def diff_layer(lower: Path, upper: Path, out: Path) -> dict[str, int]:
    """Write into ``out`` the entries of ``upper`` that are new or changed relative to ``lower``
    (by type, mode, size, mtime, owner, link target, device), plus ``.wh.NAME`` whiteouts for
    the topmost entries of ``lower`` missing from ``upper``. Parent directories are copied with
    ``upper``'s metadata."""
    before, after = snapshot(lower), snapshot(upper)
    changed = sorted(p for p, key in after.items() if before.get(p) != key)
    deleted = sorted(p for p in before if p not in after)
    # whiteout only the topmost deleted path of a deleted subtree, and nothing below a
    # directory that ``upper`` replaced by a non-directory (that replacement hides it already)
    deleted_set = set(deleted)

    def parent_is_dir(p: str) -> bool:
        parent = os.path.dirname(p)
        return not parent or after.get(parent, (None,))[0] == 0o040000

    top_deleted = [p for p in deleted if os.path.dirname(p) not in deleted_set and parent_is_dir(p)]
    rmtree(out)
    out.mkdir(parents=True)
    made_dirs: list[str] = []
    inodes: dict = {}

    def ensure_parents(rel: str) -> None:
        parts = Path(rel).parts[:-1]
        for i in range(1, len(parts) + 1):
            d = os.path.join(*parts[:i])
            if not (out / d).exists():
                _copy_entry(upper / d, out / d, os.lstat(upper / d), inodes)
                made_dirs.append(d)

    for rel in changed:
        ensure_parents(rel)
        dst = out / rel
        if dst.exists() or dst.is_symlink():
            continue  # a directory already created as a parent
        st = os.lstat(upper / rel)
        _copy_entry(upper / rel, dst, st, inodes)
        if (st.st_mode & 0o170000) == 0o040000:
            made_dirs.append(rel)
    for rel in top_deleted:
        ensure_parents(rel)
        wh = out / os.path.dirname(rel) / (".wh." + os.path.basename(rel))
        wh.touch()
        os.chmod(wh, 0o644)
    # writing children touched the directories' mtimes: restore them, deepest first
    for d in sorted(set(made_dirs), key=lambda p: p.count("/"), reverse=True):
        st = os.lstat(upper / d)
        os.utime(out / d, ns=(st.st_atime_ns, st.st_mtime_ns))
    return {"changed": len(changed), "whiteouts": len(top_deleted), "deleted": len(deleted)}


def build_base(target: Path, mirror: str, suite: str) -> None:
    rmtree(target)
    try:
        run(["debootstrap", "--variant=minbase", suite, target, mirror])
    finally:
        umount_all_under(target)


def build_packages_layer(base: Path, scratch: Path, out: Path, clean: bool) -> dict[str, int]:
    """Install PACKAGES in a copy of ``base`` with apt in a chroot, then diff it into ``out``.

    With ``clean``, finish like a tidy Dockerfile (``apt-get clean && rm -rf
    /var/lib/apt/lists/*``); without, keep what apt left (downloaded .debs, pkgcache.bin...)."""
    rmtree(scratch)
    run(["cp", "-a", "--reflink=auto", base, scratch])
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive", LC_ALL="C", LANG="C",
               PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    env.pop("PYTHONPATH", None)
    env.pop("PYTHONHOME", None)
    resolv = scratch / "etc" / "resolv.conf"
    resolv_backup = None
    if resolv.exists() or resolv.is_symlink():
        resolv_backup = scratch / "etc" / ".resolv.conf.bench-backup"
        os.rename(resolv, resolv_backup)
    shutil.copyfile("/etc/resolv.conf", resolv)
    # keep maintainer scripts from starting nginx on the host's port 80
    policy = scratch / "usr" / "sbin" / "policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    run(["mount", "-t", "proc", "proc", scratch / "proc"])
    try:
        chroot = ["chroot", str(scratch)]
        # debootstrap left fresh package lists: no `apt-get update` unless they went stale
        install = [*chroot, "apt-get", "install", "-y", "--no-install-recommends", *PACKAGES]
        updated = run(install, check=False, env=env).returncode != 0
        if updated:
            run([*chroot, "apt-get", "update"], env=env)
            run(install, env=env)
        if clean:
            run([*chroot, "apt-get", "clean"], env=env)
    finally:
        umount_all_under(scratch)
    if clean:
        lists = scratch / "var" / "lib" / "apt" / "lists"
        for child in lists.iterdir() if lists.is_dir() else []:
            rmtree(child)
    policy.unlink()
    resolv.unlink()
    if resolv_backup is not None:
        os.rename(resolv_backup, resolv)
    stats = diff_layer(base, scratch, out)
    stats["apt_update_needed"] = int(updated)
    rmtree(scratch)
    return stats


def build_random_layer(out: Path, seed: int = RANDOM_SEED) -> None:
    rmtree(out)
    data = out / "srv" / "bench-data"
    data.mkdir(parents=True)
    rng = random.Random(seed)
    for i in range(RANDOM_FILES):
        f = data / f"random-{i:02d}.bin"
        f.write_bytes(rng.randbytes(RANDOM_FILE_SIZE))
        os.chmod(f, 0o644)
        os.utime(f, (FIXED_MTIME, FIXED_MTIME))
    for d in (data, out / "srv"):
        os.chmod(d, 0o755)
        os.utime(d, (FIXED_MTIME, FIXED_MTIME))


def layout_layers(layout: Path, tag: str) -> list[dict]:
    index = json.loads((layout / "index.json").read_text())
    desc = next(m for m in index["manifests"]
                if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag)
    manifest = json.loads((layout / "blobs" / desc["digest"].replace(":", "/")).read_text())
    return manifest["layers"]


def ensure_image(cache: Path, rebuild: bool, mirror: str, suite: str, apt_clean: bool) -> dict:
    """Build whatever is missing or stale in the cache; return the image description.

    Each step leaves a stamp (a token plus the tokens of the steps it was built from), so a
    rebuilt base invalidates the package layer and the layout of both variants."""
    variant = "-clean" if apt_clean else ""
    stamps = cache / "stamps"
    meta_file = cache / f"image{variant}.json"
    layout = cache / f"oci{variant}"
    layers = [cache / LAYER_DIRS[0], cache / (LAYER_DIRS[1] + variant), cache / LAYER_DIRS[2]]
    if rebuild:
        log(f"--rebuild: removing {cache}")
        rmtree(cache)
    cache.mkdir(parents=True, exist_ok=True)
    stamps.mkdir(exist_ok=True)
    meta = json.loads(meta_file.read_text()) if meta_file.exists() else {}
    if meta.get("recipe") != RECIPE_VERSION:
        meta = {"recipe": RECIPE_VERSION}
    built_any = False

    def token(name: str) -> str | None:
        try:
            return json.loads((stamps / name).read_text())["token"]
        except (OSError, ValueError, KeyError):
            return None

    def step(name: str, deps: list[str], fn) -> None:  # type: ignore[no-untyped-def]
        nonlocal built_any
        want = {d: token(d) for d in deps}
        try:
            have = json.loads((stamps / name).read_text())
            if have.get("deps") == want and have.get("recipe") == RECIPE_VERSION:
                return
        except (OSError, ValueError):
            pass
        (stamps / name).unlink(missing_ok=True)
        log(f"building {name} ...")
        t0 = time.perf_counter()
        result = fn()
        meta.setdefault("build_seconds", {})[name] = round(time.perf_counter() - t0, 1)
        if isinstance(result, dict) and result:
            meta.setdefault("stats", {})[name] = result
        log(f"  {name}: {meta['build_seconds'][name]} s")
        (stamps / name).write_text(json.dumps({"token": f"{time.time_ns()}", "deps": want,
                                               "recipe": RECIPE_VERSION}))
        built_any = True
        meta_file.write_text(json.dumps(meta, indent=2))

    def make_layout() -> dict:
        digest = mkimage.build(layout, layers, TAG, ["/bin/bash"])
        sizes = []
        for lay, desc in zip(layers, layout_layers(layout, TAG), strict=True):
            unpacked, entries = tree_bytes(lay)
            sizes.append({"dir": lay.name, "digest": desc["digest"], "compressed": desc["size"],
                          "unpacked_file_bytes": unpacked, "entries": entries})
        meta["manifest_digest"] = digest
        meta["layers"] = sizes
        return {}

    l2 = "layer2" + variant
    step("layer1", [], lambda: build_base(layers[0], mirror, suite))
    step(l2, ["layer1"], lambda: build_packages_layer(
        layers[0], cache / "scratch-rootfs", layers[1], clean=apt_clean))
    step("layer3", [], lambda: build_random_layer(layers[2]))
    if not (layout / "index.json").exists() or "layers" not in meta:
        (stamps / ("layout" + variant)).unlink(missing_ok=True)
    step("layout" + variant, ["layer1", l2, "layer3"], make_layout)
    meta["variant"] = "apt-clean" if apt_clean else "anchors"
    meta["layout"] = str(layout)
    meta_file.write_text(json.dumps(meta, indent=2))
    if not built_any:
        log(f"reusing the cached image in {layout} (--rebuild to rebuild)")
    return meta


def print_image(meta: dict) -> None:
    log("image: Debian %s minbase + %s + %d x %d KiB random (gzip level 6, scripts/mkimage.py)"
        % (SUITE, " ".join(PACKAGES), RANDOM_FILES, RANDOM_FILE_SIZE // 1024))
    log("  variant: " + ("apt-clean (apt-get clean, no package lists in layer 2)"
                         if meta.get("variant") == "apt-clean" else
                         "anchors (apt's downloads and caches left in layer 2, as the anchors' "
                         "sizes imply)")
        + f"; layout {meta.get('layout')}")
    total_c = total_u = 0
    for i, lay in enumerate(meta["layers"], 1):
        total_c += lay["compressed"]
        total_u += lay["unpacked_file_bytes"]
        log(f"  layer {i} {lay['dir']:<28} {lay['compressed'] / MB:7.1f} MB compressed"
            f"  {lay['unpacked_file_bytes'] / MB:7.1f} MB of files, {lay['entries']} entries")
    log(f"  total {'':<28} {total_c / MB:7.1f} MB compressed  {total_u / MB:7.1f} MB of files"
        "   (anchors: 93 / 65 / 17 MB, 175 MB compressed, 361 MB unpacked)")
    if meta.get("build_seconds"):
        log("  build times (s): " + ", ".join(f"{k} {v}" for k, v in meta["build_seconds"].items()))


# --------------------------------------------------------------------------------------------
# registry

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Registry:
    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.log_file = workdir / "registry.log"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        (self.dir / "storage").mkdir(parents=True)
        cfg = self.dir / "registry.yml"
        cfg.write_text(f"version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n"
                       f"storage:\n  filesystem:\n    rootdirectory: {self.dir / 'storage'}\n"
                       f"  delete:\n    enabled: true\nhttp:\n  addr: {self.host}\n")
        with open(self.log_file, "wb") as logf:
            self.proc = subprocess.Popen(["/usr/bin/docker-registry", "serve", str(cfg)],
                                         stdout=logf, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        for _ in range(200):
            if self.proc.poll() is not None:
                raise SystemExit("docker-registry exited:\n" + self.log_file.read_text()[-2000:])
            try:
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise SystemExit("docker-registry did not answer on " + self.host)

    def manifest(self, repo: str, tag: str) -> dict:
        req = urllib.request.Request(
            f"http://{self.host}/v2/{repo}/manifests/{tag}",
            headers={"Accept": "application/vnd.oci.image.manifest.v1+json, "
                               "application/vnd.docker.distribution.manifest.v2+json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --------------------------------------------------------------------------------------------
# measurement

def drop_caches() -> bool:
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def timed(cmd: list[str], **kw) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    return time.perf_counter() - t0, proc


def failure_text(proc: subprocess.CompletedProcess) -> str:
    tail = (proc.stdout + proc.stderr).strip().splitlines()[-12:]
    return f"exit {proc.returncode}:\n" + "\n".join("      " + line for line in tail)


def find_barque(explicit: str | None) -> tuple[str | None, str | None, str]:
    """Return (barque executable to time, python to import barque._native with, note).

    Either may be None, with the reason in ``note``."""
    candidates = [explicit] if explicit else [str(REPO / ".venv" / "bin" / "barque"),
                                              shutil.which("barque")]
    exe = next((c for c in candidates if c and os.path.isfile(c) and os.access(c, os.X_OK)), None)
    if exe is None:
        where = explicit or f"{REPO / '.venv/bin/barque'} nor on PATH"
        return None, None, (f"barque not found ({where}); build it with "
                            f"`cd {REPO} && scripts/setup` (or `.venv/bin/pip install .`), "
                            "or pass --barque PATH")
    python = None
    try:
        with open(exe, "rb") as f:
            first = f.readline().decode(errors="replace").strip()
        if first.startswith("#!"):
            interp = first[2:].strip().split()[0]
            if os.access(interp, os.X_OK) and "python" in os.path.basename(interp):
                python = interp
    except OSError:
        pass
    if python is None:
        sibling = Path(exe).parent / "python"
        python = str(sibling) if sibling.exists() else None
    if python is None:
        return exe, None, (f"{exe}: cannot tell which python it runs (no python shebang), "
                           "so barque's sha256 is not measured")
    probe = subprocess.run([python, "-c", "import barque._native"], capture_output=True, text=True)
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["?"])[-1]
        return None, None, (f"barque's native module does not import with {python} ({last}); "
                            f"build it: cd {REPO} && scripts/setup")
    return exe, python, ""


class Bench:
    def __init__(self, args: argparse.Namespace, registry: Registry, workdir: Path,
                 barque: str | None, layout: Path) -> None:
        self.args = args
        self.registry = registry
        self.workdir = workdir
        self.barque = barque
        self.layout = layout
        self.ref = f"{registry.host}/{REPOSITORY}:{IMAGE_TAG}"
        self.times: dict[str, list[float]] = {}
        self.errors: dict[str, str] = {}
        self.unpacked: dict[str, int] = {}
        self.drop_ok = not args.no_drop_caches
        self.docker = False
        self.load_start = os.getloadavg()
        self.last_delete = 0.0

    def prepare(self) -> None:
        if self.args.no_drop_caches:
            log("page cache: NOT dropped (--no-drop-caches): registry reads may be warm")
        elif not drop_caches():
            self.drop_ok = False
            log("page cache: /proc/sys/vm/drop_caches is not writable, caches NOT dropped "
                "between rounds: reads may be warm")
        self.docker = bool(self.args.docker and shutil.which("docker") and subprocess.run(
            ["docker", "info"], capture_output=True).returncode == 0)

    #: This machine's ext4 has no journal, and there the inode allocator skips inodes deleted
    #: less than 60 s ago (recently_deleted()); right after a mass delete that scan costs more
    #: CPU than inflating. So no tool is timed within this many seconds of a large deletion:
    #: rounds keep their outputs until the run ends, and docker's own `image rm` is waited out.
    QUIET_AFTER_DELETE = 61.0

    def cold(self) -> None:
        wait = self.last_delete + self.QUIET_AFTER_DELETE - time.monotonic()
        if self.last_delete and wait > 0:
            log(f"  (waiting {wait:.0f} s after a large deletion: see QUIET_AFTER_DELETE)")
            time.sleep(wait)
        if self.drop_ok:
            drop_caches()

    def record(self, name: str, seconds: float) -> None:
        self.times.setdefault(name, []).append(seconds)

    def run_barque(self, rnd: int) -> None:
        name = "barque pull"
        if self.barque is None or name in self.errors:
            return
        root = self.workdir / f"barque-root-{rnd}"
        rmtree(root)
        self.cold()
        secs, proc = timed([self.barque, "--root", root, "pull", "-q", self.ref])
        if proc.returncode != 0:
            self.errors[name] = failure_text(proc)
            log(f"  round {rnd}: {name} FAILED {self.errors[name]}")
        else:
            self.record(name, secs)
            self.unpacked.setdefault("barque store (blobs + unpacked)", tree_bytes(root)[0])
            log(f"  round {rnd}: {name:<16} {secs:7.2f} s")

    def run_skopeo_umoci(self, rnd: int) -> None:
        if "skopeo copy" in self.errors or "umoci unpack" in self.errors:
            return
        oci, bundle = self.workdir / f"skopeo-oci-{rnd}", self.workdir / f"umoci-bundle-{rnd}"
        rmtree(oci)
        rmtree(bundle)
        self.cold()
        s_secs, proc = timed(["skopeo", "copy", "-q", "--src-tls-verify=false",
                              f"docker://{self.ref}", f"oci:{oci}:{TAG}"])
        if proc.returncode != 0:
            self.errors["skopeo copy"] = failure_text(proc)
            log(f"  round {rnd}: skopeo copy FAILED {self.errors['skopeo copy']}")
            return
        # no cache drop here: the pair stands for one pull (download, then unpack)
        u_secs, proc = timed(["umoci", "unpack", "--image", f"{oci}:{TAG}", bundle])
        if proc.returncode != 0:
            self.errors["umoci unpack"] = failure_text(proc)
            log(f"  round {rnd}: umoci unpack FAILED {self.errors['umoci unpack']}")
        else:
            self.record("skopeo copy", s_secs)
            self.record("umoci unpack", u_secs)
            self.record("skopeo + umoci", s_secs + u_secs)
            self.unpacked.setdefault("skopeo layout + umoci rootfs",
                                     tree_bytes(oci)[0] + tree_bytes(bundle / "rootfs")[0])
            log(f"  round {rnd}: {'skopeo copy':<16} {s_secs:7.2f} s   umoci unpack {u_secs:7.2f} s"
                f"   sum {s_secs + u_secs:7.2f} s")

    def run_docker(self, rnd: int) -> None:
        name = "docker pull"
        if not self.docker or name in self.errors:
            return
        if subprocess.run(["docker", "image", "rm", "-f", self.ref],
                          capture_output=True).returncode == 0:
            self.last_delete = time.monotonic()
        self.cold()
        secs, proc = timed(["docker", "pull", "-q", self.ref])
        if proc.returncode != 0:
            self.errors[name] = failure_text(proc)
            log(f"  round {rnd}: {name} FAILED {self.errors[name]}")
        else:
            self.record(name, secs)
            log(f"  round {rnd}: {name:<16} {secs:7.2f} s")

    def run_rounds(self) -> None:
        order = [self.run_barque, self.run_skopeo_umoci, self.run_docker]
        for rnd in range(1, self.args.rounds + 1):
            k = (rnd - 1) % len(order)  # rotate the order so no tool always goes first
            for fn in order[k:] + order[:k]:
                fn(rnd)


# --------------------------------------------------------------------------------------------
# sha256

SHA_PROBE = r"""
import json, sys, time
from barque import _native
print("ready", flush=True)
for line in sys.stdin:
    t0 = time.perf_counter()
    digest = _native.sha256_file(line.rstrip("\n"))
    seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "digest": digest}), flush=True)
"""


def warm(path: Path) -> None:
    with open(path, "rb") as f:
        while f.read(1 << 20):
            pass


def sha256_bench(blob: Path, barque_python: str | None, n: int = 5) -> dict:
    """Best of ``n`` for each hasher, the hashers interleaved so that load hits them alike."""
    import hashlib

    size = blob.stat().st_size
    expected = "sha256:" + blob.name
    warm(blob)
    res: dict = {"file": str(blob), "bytes": size, "runs": n}
    probe = None
    if barque_python:  # one long-lived process: barque is timed around the call only
        probe = subprocess.Popen([barque_python, "-c", SHA_PROBE], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if probe.stdout.readline().strip() != "ready":  # type: ignore[union-attr]
            probe.kill()
            res["barque_error"] = "cannot import barque._native: " + probe.communicate()[1][-500:]
            probe = None
    t_file, t_empty, t_hashlib, t_barque = [], [], [], []
    try:
        for _ in range(n):
            # openssl: wall clock of the whole command, and of the same on an empty file
            secs, proc = timed(["openssl", "dgst", "-sha256", str(blob)])
            if proc.returncode != 0 or blob.name not in proc.stdout:
                raise SystemExit(f"openssl dgst -sha256 {blob} failed or mismatched: "
                                 f"{proc.stdout}{proc.stderr}")
            t_file.append(secs)
            t_empty.append(timed(["openssl", "dgst", "-sha256", "/dev/null"])[0])
            # hashlib (OpenSSL's sha256 in this process): informational
            t0 = time.perf_counter()
            with open(blob, "rb") as f:
                h = hashlib.file_digest(f, "sha256").hexdigest()
            t_hashlib.append(time.perf_counter() - t0)
            if h != blob.name:
                raise SystemExit(f"hashlib digest mismatch for {blob}")
            if probe is not None:
                probe.stdin.write(f"{blob}\n")  # type: ignore[union-attr]
                probe.stdin.flush()  # type: ignore[union-attr]
                line = probe.stdout.readline()  # type: ignore[union-attr]
                if not line:
                    probe.wait()
                    err = probe.stderr.read()  # type: ignore[union-attr]
                    res["barque_error"] = "sha256_file failed: " + err[-800:]
                    probe = None
                    continue
                data = json.loads(line)
                if data["digest"] != expected:
                    res["barque_error"] = f"wrong digest {data['digest']} (expected {expected})"
                    probe.kill()
                    probe = None
                    continue
                t_barque.append(data["seconds"])
    finally:
        if probe is not None:
            probe.stdin.close()  # type: ignore[union-attr]
            probe.wait()
    res["openssl_seconds"] = min(t_file)
    res["openssl_startup_seconds"] = min(t_empty)
    res["openssl_gbps_raw"] = size / min(t_file) / 1e9
    res["openssl_gbps"] = size / max(min(t_file) - min(t_empty), 1e-9) / 1e9
    res["hashlib_gbps"] = size / min(t_hashlib) / 1e9
    if t_barque and "barque_error" not in res:
        res["barque_seconds"] = min(t_barque)
        res["barque_gbps"] = size / min(t_barque) / 1e9
        res["ratio_vs_openssl"] = res["barque_gbps"] / res["openssl_gbps"]
        res["ratio_vs_openssl_raw"] = res["barque_gbps"] / res["openssl_gbps_raw"]
    return res


# --------------------------------------------------------------------------------------------
# report

def summarize(bench: Bench, sha: dict, barque_note: str, meta: dict) -> dict:
    results = {name: {"times": [round(t, 4) for t in ts], "median": statistics.median(ts),
                      "min": min(ts), "rounds": len(ts)} for name, ts in bench.times.items()}
    b = results.get("barque pull", {}).get("median")
    su = results.get("skopeo + umoci", {}).get("median")
    d = results.get("docker pull", {}).get("median")
    ratios: dict = {}
    targets: dict = {}
    if b is not None and su is not None:
        ratios["barque / (skopeo + umoci)"] = b / su
    if d is not None:
        docker_ref, docker_src = d, "measured"
    else:
        docker_ref, docker_src = DOCUMENTED_DOCKER_PULL[0], "documented lower bound, not measured"
    if b is not None:
        ratios["barque / docker pull"] = b / docker_ref
        ratios["barque / docker pull source"] = docker_src
        if d is None:
            ratios["barque / docker pull (documented upper bound 13 s)"] = (
                b / DOCUMENTED_DOCKER_PULL[1])
        ok = b <= PULL_TARGET_FRACTION * docker_ref
        targets["pull <= 1/4 docker pull"] = {
            "status": "PASS" if ok else "MISS", "barque_median_s": b,
            "limit_s": PULL_TARGET_FRACTION * docker_ref, "docker_reference": docker_src}
    else:
        targets["pull <= 1/4 docker pull"] = {
            "status": "SKIP", "why": "barque pull failed" if "barque pull" in bench.errors
            else "barque not available: " + barque_note}
    if "barque_gbps" in sha:
        ratios["barque sha256 / openssl"] = sha["ratio_vs_openssl"]
        ok = sha["ratio_vs_openssl"] >= SHA_TARGET_FRACTION
        targets["sha256 >= 0.9 x openssl"] = {"status": "PASS" if ok else "MISS",
                                              "ratio": sha["ratio_vs_openssl"]}
    else:
        targets["sha256 >= 0.9 x openssl"] = {
            "status": "SKIP", "why": "barque sha256_file failed" if "barque_error" in sha
            else "barque not available"}
    return {"image": {"ref": bench.ref, "variant": meta.get("variant"), "layers": meta["layers"],
                      "compressed_total": sum(x["compressed"] for x in meta["layers"])},
            "rounds": bench.args.rounds, "caches_dropped": bench.drop_ok,
            "docker_measured": d is not None, "results": results, "errors": bench.errors,
            "disk_file_bytes": bench.unpacked, "sha256": sha, "ratios": ratios,
            "targets": targets, "documented_anchors": DOCUMENTED,
            "host": {"cpus": os.cpu_count(), "kernel": os.uname().release,
                     "loadavg_at_start": bench.load_start, "loadavg_at_end": os.getloadavg()}}


def print_report(rep: dict, bench: Bench) -> None:
    log()
    log(f"results: {rep['rounds']} cold round(s), page cache "
        + ("dropped before each" if rep["caches_dropped"] else "NOT dropped") + "; seconds")
    la0, la1 = rep["host"]["loadavg_at_start"], rep["host"]["loadavg_at_end"]
    log(f"  ({rep['host']['cpus']} CPUs; load average {la0[0]:.2f} at start, {la1[0]:.2f} at end:"
        " other work on the machine skews absolute times, compare the ratios)")
    log(f"  {'tool':<22} {'median':>8} {'min':>8}  rounds")
    for name in ("barque pull", "skopeo copy", "umoci unpack", "skopeo + umoci", "docker pull"):
        r = rep["results"].get(name)
        if r:
            log(f"  {name:<22} {r['median']:8.2f} {r['min']:8.2f}  {r['rounds']}")
        elif name in rep["errors"]:
            log(f"  {name:<22} {'failed':>8}")
        elif name == "docker pull":
            why = ("skipped (--no-docker)" if not bench.args.docker
                   else "skipped (`docker info` fails: no dockerd)")
            log(f"  {name:<22} {why}")
            log(f"  {'docker pull':<22} {'8.3-13':>17}  documented, not measured (anchors.md)")
        elif name == "barque pull":
            log(f"  {name:<22} {'skipped':>8}")
    for name, n in rep["disk_file_bytes"].items():
        log(f"  on disk after the pull, {name}: {n / MB:.1f} MB of regular files")
    sha = rep["sha256"]
    log()
    log(f"sha256 of {sha['file']}\n  ({sha['bytes'] / MB:.1f} MB, page cache warm, "
        f"best of {sha['runs']}):")
    log(f"  openssl dgst -sha256   {sha['openssl_gbps']:.3f} GB/s  (whole command "
        f"{sha['openssl_seconds'] * 1000:.1f} ms = {sha['openssl_gbps_raw']:.3f} GB/s, minus "
        f"{sha['openssl_startup_seconds'] * 1000:.1f} ms start-up on /dev/null)")
    if sha.get("hashlib_gbps"):
        log(f"  python hashlib         {sha['hashlib_gbps']:.3f} GB/s  (informational)")
    if "barque_gbps" in sha:
        log(f"  barque _native         {sha['barque_gbps']:.3f} GB/s  (timed inside Python around "
            "sha256_file)")
    else:
        state = ("FAILED: " + sha["barque_error"] if "barque_error" in sha
                 else "skipped (barque not available)")
        log(f"  barque _native         {state}")
    log()
    log("ratios (medians):")
    for k, v in rep["ratios"].items():
        if not k.endswith("source"):
            extra = ""
            if k == "barque / docker pull":
                extra = f"  [docker: {rep['ratios']['barque / docker pull source']}" + (
                    f" {DOCUMENTED_DOCKER_PULL[0]} s]" if not rep["docker_measured"] else "]")
            log(f"  {k:<52} {v:6.3f}{extra}")
    if not rep["ratios"]:
        log("  (none: barque was not measured)")
    log()
    log("targets:")
    for k, t in rep["targets"].items():
        if t["status"] == "SKIP":
            log(f"  SKIP  {k}: {t['why']}")
        elif k.startswith("pull"):
            log(f"  {t['status']:<5} {k}: barque {t['barque_median_s']:.2f} s vs limit "
                f"{t['limit_s']:.2f} s ({t['docker_reference']})")
        else:
            log(f"  {t['status']:<5} {k}: {t['ratio']:.3f}")
    if rep["errors"]:
        log()
        for k, v in rep["errors"].items():
            log(f"error: {k}: {v}")


# --------------------------------------------------------------------------------------------

def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3, help="cold rounds per tool (default 3)")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON")
    p.add_argument("--rebuild", action="store_true", help="rebuild the cached image from scratch")
    p.add_argument("--barque", help="barque executable (default: REPO/.venv/bin/barque, then PATH)")
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                   help=f"image cache (default {DEFAULT_CACHE})")
    p.add_argument("--mirror", default=MIRROR,
                   help=f"Debian mirror for debootstrap (default {MIRROR})")
    p.add_argument("--apt-clean", action="store_true",
                   help="tidy package layer (apt-get clean, no package lists; ~20 MB instead of "
                        "~60 MB), cached separately; the default matches the anchors' sizes")
    p.add_argument("--no-docker", dest="docker", action="store_false",
                   help="do not time docker pull")
    p.add_argument("--no-drop-caches", action="store_true", help="do not drop the page cache")
    p.add_argument("--build-only", action="store_true", help="build/cache the image and exit")
    p.add_argument("--keep-workdir", action="store_true",
                   help="keep the run's temp dir (debugging)")
    args = p.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root (debootstrap, chroot, drop_caches, unpacking as root)")
    if args.rounds < 1:
        raise SystemExit("--rounds must be >= 1")

    def on_signal(signum, frame):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    ensure_tools()
    meta = ensure_image(args.cache, args.rebuild, args.mirror, SUITE, args.apt_clean)
    print_image(meta)
    if args.build_only:
        return 0
    layout = Path(meta["layout"])

    barque, barque_python, barque_note = find_barque(args.barque)
    log(f"barque: {barque_note}" if barque_note else f"barque: {barque} (python {barque_python})")

    workdir = Path(tempfile.mkdtemp(prefix="barque-bench-run.", dir=args.cache.parent))
    registry = Registry(workdir / "registry")
    try:
        registry.start()
        log(f"registry: docker-registry on {registry.host}, storage in {registry.dir}")
        ref = f"{registry.host}/{REPOSITORY}:{IMAGE_TAG}"
        t0 = time.perf_counter()
        run(["skopeo", "copy", "-q", "--dest-tls-verify=false", f"oci:{layout}:{TAG}",
             f"docker://{ref}"])
        log(f"  pushed in {time.perf_counter() - t0:.1f} s")
        pushed = [(x["digest"], x["size"])
                  for x in registry.manifest(REPOSITORY, IMAGE_TAG)["layers"]]
        built = [(x["digest"], x["compressed"]) for x in meta["layers"]]
        if pushed != built:
            log("  note: the registry's layers differ from the layout's "
                f"(skopeo recompressed?): {pushed}")

        bench = Bench(args, registry, workdir, barque, layout)
        bench.prepare()
        if not bench.docker:
            log("docker pull: skipped (" + ("--no-docker" if not args.docker else
                "`docker info` fails: no dockerd running") + "); using the documented 8.3-13 s "
                "from anchors.md as a reference, not measured")
        log(f"timing {args.rounds} cold round(s) of {bench.ref} ...")
        bench.run_rounds()

        blobs = layout / "blobs" / "sha256"
        largest = max((x for x in meta["layers"]), key=lambda x: x["compressed"])
        blob = blobs / largest["digest"].split(":", 1)[1]
        sha = sha256_bench(blob, barque_python)
        rep = summarize(bench, sha, barque_note, meta)
        print_report(rep, bench)
        if args.json:
            args.json.write_text(json.dumps(rep, indent=2) + "\n")
            log(f"\nwrote {args.json}")
    except KeyboardInterrupt:
        log("\ninterrupted, cleaning up")
        return 130
    finally:
        if shutil.which("docker"):
            subprocess.run(["docker", "image", "rm", "-f", f"{registry.host}/{REPOSITORY}:{IMAGE_TAG}"],
                           capture_output=True)
        registry.stop()
        if args.keep_workdir:
            log(f"kept {workdir}")
        else:
            rmtree(workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
