#!/usr/bin/env python3
"""N lifecycles of `/bin/true` on one busybox bundle, side by side: `runc run`,
`barque-runtime run` and `crun run` (when installed), each with its own state root.

    sudo .venv/bin/python scripts/bench/runtime.py [--runs 50] [--barque-runtime PATH]

The bundle is `barque-runtime spec`'s (runc's default spec without its cgroup mount) with
`/bin/true` and a read-only rootfs made by scripts/mkimage.py. On this hybrid cgroup host crun
is run in a private mount namespace with the cgroup2 mount detached (`unshare -m sh -c
'umount /sys/fs/cgroup/unified; exec crun ...'`), so its time includes that sh and unshare;
`crun (in-ns)` times the same N lifecycles from one such namespace, without that overhead.
Prints medians, spread and ratios; exits 0 whatever the result.
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


def lifecycles(argv_for, runs: int) -> list[float] | str:
    """Milliseconds per run, or the error of the first failed one."""
    samples = []
    for i in range(runs):
        t = time.perf_counter()
        r = subprocess.run(argv_for(i), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        samples.append((time.perf_counter() - t) * 1000)
        if r.returncode != 0:
            return f"exit {r.returncode}: {r.stderr.decode(errors='replace').strip()[:300]}"
    return samples


def in_namespace_loop(crun: str, root: Path, bundle: Path, runs: int) -> list[float] | str:
    """crun lifecycles timed from inside one private mount namespace (no per-run unshare)."""
    script = (
        "import subprocess,sys,time,json\n"
        "out=[]\n"
        f"for i in range({runs}):\n"
        "    t=time.perf_counter()\n"
        f"    r=subprocess.run([{crun!r},'--root',{str(root)!r},'run','--bundle',{str(bundle)!r},f'ns{{i}}'],"
        "stdout=subprocess.DEVNULL,stderr=subprocess.PIPE)\n"
        "    out.append((time.perf_counter()-t)*1000)\n"
        "    if r.returncode: print(json.dumps(r.stderr.decode()[:300])); sys.exit(1)\n"
        "print(json.dumps(out))\n"
    )
    r = subprocess.run(["unshare", "-m", "sh", "-c",
                        f"umount /sys/fs/cgroup/unified 2>/dev/null; exec {sys.executable} -c \"$0\"", script],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return f"exit {r.returncode}: {(r.stdout + r.stderr).strip()[:300]}"
    return json.loads(r.stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--barque-runtime", default=None)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("runtime.py: needs root (containers)")
        return 0
    installed = Path(sysconfig.get_path("scripts")) / "barque-runtime"  # the wheel's, on PATH
    brt = args.barque_runtime or (str(installed) if installed.exists() else None)
    runc, crun = shutil.which("runc"), shutil.which("crun")
    work = Path(tempfile.mkdtemp(prefix="barque-bench-runtime-"))
    try:
        rootfs = work / "rootfs"
        subprocess.run([sys.executable, str(REPO / "scripts/mkimage.py"), "--busybox-rootfs", str(rootfs)],
                       check=True, capture_output=True)
        bundle = work / "bundle"
        bundle.mkdir()
        if brt:
            subprocess.run([brt, "spec", "--bundle", str(bundle)], check=True)
            config = json.loads((bundle / "config.json").read_text())
        else:
            subprocess.run([runc, "spec", "--bundle", str(bundle)], check=True)
            config = json.loads((bundle / "config.json").read_text())
            config["mounts"] = [m for m in config["mounts"] if m["type"] != "cgroup"]
        config["process"].update(terminal=False, args=["/bin/true"])
        config["root"] = {"path": str(rootfs), "readonly": True}
        (bundle / "config.json").write_text(json.dumps(config))

        cases: dict[str, list[float] | str] = {}
        if runc:
            cases["runc run"] = lifecycles(
                lambda i: [runc, "--root", str(work / "runc"), "run", "--bundle", str(bundle), f"r{i}"], args.runs)
        else:
            cases["runc run"] = "not installed"
        if brt:
            cases["barque-runtime run"] = lifecycles(
                lambda i: [brt, "--root", str(work / "barque"), "run", "--bundle", str(bundle), f"b{i}"], args.runs)
        else:
            cases["barque-runtime run"] = "not built (scripts/setup)"
        if crun:
            hybrid = Path("/sys/fs/cgroup/unified").is_dir()
            if hybrid:
                cases["crun run (unshare per run)"] = lifecycles(
                    lambda i: ["unshare", "-m", "sh", "-c",
                               f"umount /sys/fs/cgroup/unified 2>/dev/null; exec {crun} --root {work / 'crun'} "
                               f"run --bundle {bundle} c{i}"], args.runs)
                cases["crun run (in-ns)"] = in_namespace_loop(crun, work / "crun-ns", bundle, args.runs)
            else:
                cases["crun run"] = lifecycles(
                    lambda i: [crun, "--root", str(work / "crun"), "run", "--bundle", str(bundle), f"c{i}"], args.runs)
        else:
            cases["crun run"] = "not installed (apt-get install crun)"

        print(f"{args.runs} lifecycles of /bin/true, busybox bundle, kernel {os.uname().release}, "
              f"{os.cpu_count()} CPUs")
        print(f"{'case':30} {'median ms':>10} {'p10':>8} {'p90':>8}")
        medians: dict[str, float] = {}
        for name, result in cases.items():
            if isinstance(result, str):
                print(f"{name:30} {'-':>10}  ({result})")
                continue
            q = statistics.quantiles(result, n=10) if len(result) > 1 else result * 9
            medians[name] = statistics.median(result)
            print(f"{name:30} {medians[name]:10.2f} {q[0]:8.2f} {q[-1]:8.2f}")
        ours = medians.get("barque-runtime run")
        if ours:
            for name, m in medians.items():
                if name != "barque-runtime run":
                    print(f"barque-runtime run / {name}: {ours / m:.2f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
