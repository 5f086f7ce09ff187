#!/usr/bin/env python3
"""Container start-up, side by side: `runc run` of a bundle vs `barque run --rm` vs
`engine.containers.run(...)` from Python, all running `true` in the same busybox rootfs.

    sudo .venv/bin/python scripts/bench/run.py [--runs 30] [--json FILE]

Targets (issue 3): `barque run --rm busybox true` through the CLI no slower than `runc run`;
`engine.containers.run` from Python faster than crun (about 16 ms here, not installed, so the
documented figure is the bar); the idle supervisor of a detached container at most 2 MB RSS. Prints medians and ratios; exits 0 whatever the result.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))  # barque itself: the installed wheel's

CRUN_DOCUMENTED_MS = 16.0  # anchors.md: crun run, about 16 ms on these machines


def _time(fn, runs: int) -> list[float]:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run.py needs root (namespaces, mounts)")
    import mkimage

    from barque import Engine
    from barque.containers import CreateOptions
    from barque.runtime.spec import RunOptions

    work = Path(tempfile.mkdtemp(prefix="barque-bench-run.", dir="/var/tmp"))
    registry = None
    try:
        # One rootfs, used by both: a runc bundle, and a barque image with the same content.
        rootfs = work / "bundle" / "rootfs"
        mkimage.busybox_rootfs(rootfs)
        subprocess.run(["runc", "spec", "--bundle", str(work / "bundle")], check=True)
        spec = json.loads((work / "bundle" / "config.json").read_text())
        spec["process"]["terminal"] = False
        spec["process"]["args"] = ["true"]
        (work / "bundle" / "config.json").write_text(json.dumps(spec))

        mkimage.build(work / "layout", [rootfs], "bench", ["true"])
        registry = _start_registry(work)
        ref = f"{registry[1]}/bench/busybox:1"
        subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false",
                        f"oci:{work / 'layout'}:bench", f"docker://{ref}"], check=True)
        root = work / "store"
        engine = Engine(root=root)
        engine.images.pull(ref)
        barque_cli = shutil.which("barque", path=sysconfig.get_path("scripts")) or "barque"
        devnull = subprocess.DEVNULL

        def runc() -> None:
            subprocess.run(["runc", "run", "--bundle", str(work / "bundle"), f"b{time.time_ns()}"],
                           check=True, stdout=devnull, stderr=devnull)

        def cli() -> None:
            subprocess.run([barque_cli, "--root", str(root), "run", "--rm", "--network", "none",
                            ref, "true"], check=True, stdout=devnull, stderr=devnull)

        def api() -> None:
            code = engine.containers.run(ref, ["true"], options=RunOptions(network="none"),
                                           create=CreateOptions(auto_remove=True))
            assert code == 0

        for fn in (runc, cli, api):  # warm the page cache and any first-use set-up
            fn()
        samples: dict[str, list[float]] = {"runc run": [], "barque run --rm (CLI)": [],
                                           "engine.containers.run (Python)": []}
        for _ in range(args.runs):  # interleaved, so load drifts hit all three alike
            samples["runc run"] += _time(runc, 1)
            samples["barque run --rm (CLI)"] += _time(cli, 1)
            samples["engine.containers.run (Python)"] += _time(api, 1)
        med = {k: statistics.median(v) for k, v in samples.items()}
        print(f"{'what':34} {'median ms':>10} {'min ms':>8}  runs")
        for k, v in samples.items():
            print(f"{k:34} {med[k]:10.1f} {min(v):8.1f}  {len(v)}")
        cli_ratio = med["barque run --rm (CLI)"] / med["runc run"]
        api_ratio = med["engine.containers.run (Python)"] / CRUN_DOCUMENTED_MS
        print(f"\nratios (medians): barque CLI / runc = {cli_ratio:.2f}   "
              f"Python API / crun (documented {CRUN_DOCUMENTED_MS:.0f} ms) = {api_ratio:.2f}")
        print(f"  {'PASS' if cli_ratio <= 1 else 'MISS'}  CLI no slower than runc run")
        print(f"  {'PASS' if api_ratio < 1 else 'MISS'}  Python API faster than crun")
        rss_kb, pss_kb = _idle_supervisor_memory(engine, ref)
        print(f"\nidle supervisor (barque-shim) of a detached container: RSS {rss_kb} kB, "
              f"PSS {pss_kb} kB")
        print(f"  {'PASS' if rss_kb <= 2048 else 'MISS'}  supervisor RSS at most 2 MB")
        if args.json:
            args.json.write_text(json.dumps({"median_ms": med, "cli_over_runc": cli_ratio,
                                             "api_over_crun_documented": api_ratio,
                                             "shim_rss_kb": rss_kb, "shim_pss_kb": pss_kb},
                                            indent=2))
    finally:
        if registry:
            registry[0].terminate()
            registry[0].wait()
        shutil.rmtree(work, ignore_errors=True)


def _idle_supervisor_memory(engine, ref: str) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """(RSS, PSS) in kB of the supervisor of a detached `sleep` container, once it idles."""
    from barque.runtime.spec import RunOptions

    container = engine.containers.run(ref, ["sleep", "60"], options=RunOptions(network="none"),
                                      detach=True)
    try:
        state = engine.store.paths.run_state(container.id)
        shim_pid = int((state / "shim.pid").read_text())
        time.sleep(1)
        status = Path(f"/proc/{shim_pid}/status").read_text()
        rss = int(next(line.split()[1] for line in status.splitlines()
                       if line.startswith("VmRSS:")))
        rollup = Path(f"/proc/{shim_pid}/smaps_rollup").read_text()
        pss = int(next(line.split()[1] for line in rollup.splitlines()
                       if line.startswith("Pss:")))
        return rss, pss
    finally:
        container.remove(force=True)


def _start_registry(work: Path):  # type: ignore[no-untyped-def]
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (work / "registry.yml").write_text(
        f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
        f"    rootdirectory: {work / 'registry'}\nhttp:\n  addr: 127.0.0.1:{port}\n")
    proc = subprocess.Popen(["/usr/bin/docker-registry", "serve", str(work / "registry.yml")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    return proc, f"127.0.0.1:{port}"


if __name__ == "__main__":
    main()
