#!/usr/bin/env python3
"""Build an OCI image layout from directories, one gzip layer per directory.

Used by the demo (an image made from the host's busybox-static, since there is no internet),
by the pull benchmark (a Debian rootfs split into layers) and by tests that need an image the
shared fixtures do not have. The layout is then pushed with ``skopeo copy oci:DIR:TAG ...``.

    scripts/mkimage.py --out /tmp/layout --tag latest --cmd sh ROOTFS_DIR [MORE_LAYER_DIRS...]
    scripts/mkimage.py --busybox-rootfs /tmp/rootfs     # make a busybox rootfs from the host's
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

EPOCH = "2024-01-01T00:00:00Z"


class _HashingWriter(io.RawIOBase):
    """Writes through to a file while hashing and counting the bytes."""

    def __init__(self, f) -> None:  # type: ignore[no-untyped-def]
        self.f, self.h, self.n = f, hashlib.sha256(), 0

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:  # type: ignore[no-untyped-def]
        self.f.write(b)
        self.h.update(b)
        self.n += len(b)
        return len(b)


def _blob_path(layout: Path, hexdigest: str) -> Path:
    return layout / "blobs" / "sha256" / hexdigest


def _write_blob(layout: Path, data: bytes) -> tuple[str, int]:
    hexdigest = hashlib.sha256(data).hexdigest()
    _blob_path(layout, hexdigest).write_bytes(data)
    return "sha256:" + hexdigest, len(data)


def write_layer(layout: Path, rootfs: Path, level: int) -> tuple[str, int, str]:
    """Tar ``rootfs`` (sorted, numeric owners) through gzip into a blob; return digest, size, DiffID."""
    tmp = layout / "blobs" / "sha256" / ".layer.tmp"
    with open(tmp, "wb") as raw:
        compressed = _HashingWriter(raw)
        with gzip.GzipFile(fileobj=compressed, mode="wb", compresslevel=level, mtime=0) as gz:
            uncompressed = _HashingWriter(gz)
            with tarfile.open(fileobj=uncompressed, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                for path in sorted(rootfs.rglob("*")):
                    rel = path.relative_to(rootfs).as_posix()
                    info = tar.gettarinfo(str(path), arcname=rel)
                    info.uname = info.gname = ""
                    if info.isreg():
                        with open(path, "rb") as f:
                            tar.addfile(info, f)
                    else:
                        tar.addfile(info)
    digest = "sha256:" + compressed.h.hexdigest()
    os.rename(tmp, _blob_path(layout, compressed.h.hexdigest()))
    return digest, compressed.n, "sha256:" + uncompressed.h.hexdigest()


def build(layout: Path, layers: list[Path], tag: str, cmd: list[str], level: int = 6,
          arch: str = "amd64") -> str:
    if layout.exists():
        shutil.rmtree(layout)
    (layout / "blobs" / "sha256").mkdir(parents=True)
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    descriptors, diff_ids = [], []
    for rootfs in layers:
        digest, size, diff_id = write_layer(layout, rootfs, level)
        descriptors.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                            "digest": digest, "size": size})
        diff_ids.append(diff_id)
    config = {
        "created": EPOCH, "architecture": arch, "os": "linux",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Cmd": cmd},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": EPOCH, "created_by": f"barque mkimage {p.name}"} for p in layers],
    }
    config_digest, config_size = _write_blob(layout, json.dumps(config).encode())
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": config_digest, "size": config_size},
                "layers": descriptors}
    manifest_digest, manifest_size = _write_blob(layout, json.dumps(manifest).encode())
    index = {"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest,
        "size": manifest_size, "annotations": {"org.opencontainers.image.ref.name": tag}}]}
    (layout / "index.json").write_text(json.dumps(index))
    return manifest_digest


def busybox_rootfs(target: Path) -> None:
    """A minimal rootfs from the host's busybox-static: every applet linked in /bin."""
    busybox = shutil.which("busybox") or "/bin/busybox"
    if target.exists():
        shutil.rmtree(target)
    for d in ("bin", "etc", "tmp", "root", "home/app"):
        (target / d).mkdir(parents=True)
    os.chmod(target / "tmp", 0o1777)
    shutil.copy2(busybox, target / "bin" / "busybox")
    applets = subprocess.run([str(target / "bin" / "busybox"), "--list"], check=True,
                             capture_output=True, text=True).stdout.split()
    for applet in applets:
        if applet != "busybox":
            (target / "bin" / applet).symlink_to("busybox")
    (target / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    (target / "etc" / "group").write_text("root:x:0:\napp:x:1000:\nnogroup:x:65534:\n")
    os.chown(target / "home" / "app", 1000, 1000) if os.geteuid() == 0 else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("layers", nargs="*", type=Path, help="one directory per layer, base first")
    parser.add_argument("--out", type=Path, help="the OCI layout directory to (re)create")
    parser.add_argument("--tag", default="latest")
    parser.add_argument("--cmd", default="sh", help="the image's Cmd (split on spaces)")
    parser.add_argument("--level", type=int, default=6, help="gzip level")
    parser.add_argument("--busybox-rootfs", type=Path, help="write a busybox rootfs here and exit")
    args = parser.parse_args()
    if args.busybox_rootfs:
        busybox_rootfs(args.busybox_rootfs)
        return
    if not args.out or not args.layers:
        parser.error("--out and at least one layer directory are required")
    print(build(args.out, args.layers, args.tag, args.cmd.split(), args.level))


if __name__ == "__main__":
    main()
