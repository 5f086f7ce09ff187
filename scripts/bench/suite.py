#!/usr/bin/env python3
"""The benchmark suite of issue 6: every case side by side in one run, one report.

    sudo .venv/bin/python scripts/bench/suite.py [--quick] [--out bench/] [--only a,b,...]

Cases (each one a function; a failure in one is reported and the others still run):
  a  one lifecycle of /bin/true on a busybox bundle: runc run, crun run, barque-runtime run
  b  100 sequential lifecycles (total time), same three
  c  50 concurrent lifecycles: p50/p99, and no mount, cgroup or state record left behind
  d  `barque run --rm` (CLI, through the forkserver) vs `docker run --rm` on the same image,
     engine.containers.run, and `barque-py run --rm` (the Python CLI alone, for reference)
  e  cold pull + unpack of the ~170 MB Debian image (pull.py's) from a local registry: barque
     vs docker pull vs skopeo copy + umoci unpack, gzip and zstd, and the decompress+untar floor
  f  sha256 throughput: barque's _native.sha256_file vs `openssl dgst -sha256`
  g  PSS of one detached idle container's supervisor: barque-shim vs containerd-shim
  h  start-up of `barque --help` and `barque ps` (and `barque-py ps`, the Python CLI alone)

Writes OUT/report.md, OUT/report.png (matplotlib when importable, else a plain bar chart) and
OUT/results.json. dockerd (Debian's docker.io) is started on a private socket and data root
and stopped at the end. Exits non-zero only if a run failed, never because a target was missed.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import os
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import traceback
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "scripts"))
# barque itself is the installed wheel's (scripts/setup), not the checkout's python/: the
# benchmark measures what users install.
SCRIPTS = Path(sysconfig.get_path("scripts"))

DOCKER_SOCK = "unix:///run/barque-bench-docker.sock"
DOCKER_ROOT = Path("/var/lib/barque-bench-docker")
DOCKER_EXEC_ROOT = Path("/run/barque-bench-docker")
HYBRID_UNIFIED = Path("/sys/fs/cgroup/unified")

CASE_TITLES = {
    "a": "one lifecycle of /bin/true (ms)",
    "b": "100 sequential lifecycles, total (s)",
    "c": "50 concurrent lifecycles, per lifecycle (ms)",
    "d": "run --rm busybox true (ms)",
    "e-gzip": "cold pull + unpack, gzip layers (s)",
    "e-zstd": "cold pull + unpack, zstd layers (s)",
    "f": "sha256 of the largest layer blob (ms)",
    "g": "idle supervisor PSS (kB)",
    "h": "CLI start-up (ms)",
}

#: Pause after each `docker run --rm` of case (d), for dockerd's work that outlives the CLI.
DOCKER_SETTLE_S = 0.5

# Targets of issue 6. (case, tool, anchor (case, tool) or None, factor, absolute limit, text)
# "tool <= factor x anchor" on medians; lower is better everywhere (sha256 is timed, so
# "within 10% of openssl's throughput" is time <= 1/0.9 x openssl's).
TARGETS = [
    ("a", "barque-runtime run", ("a", "crun run"), 1.0, None, "≤ crun"),
    ("a", "barque-runtime run", ("a", "runc run"), 0.5, None, "≤ 0.5× runc"),
    ("d", "barque run --rm (CLI)", ("a", "runc run"), 1.0, None, "≤ runc run"),
    ("d", "barque run --rm (CLI)", ("d", "docker run --rm"), 0.1, None, "≤ 0.1× docker"),
    ("d", "engine.containers.run (Python)", ("a", "crun run"), 1.0, None, "< crun run"),
    ("e-gzip", "barque pull", ("e-gzip", "docker pull"), 0.25, None, "≤ 0.25× docker pull"),
    ("e-gzip", "barque pull", ("e-gzip", "gunzip + untar floor"), 1.3, None, "≤ 1.3× floor"),
    # Debian's dockerd 20.10 cannot pull zstd layers: the zstd pull is held to docker's gzip pull
    ("e-zstd", "barque pull", ("e-gzip", "docker pull"), 0.25, None, "≤ 0.25× docker pull (gzip)"),
    ("e-zstd", "barque pull", ("e-zstd", "zstd -d + untar floor"), 1.3, None, "≤ 1.3× floor"),
    ("f", "barque sha256_file", ("f", "openssl dgst -sha256"), 1 / 0.9, None,
     "≥ 0.9× openssl GB/s"),
    ("g", "barque-shim", None, None, 2048.0, "≤ 2 MB"),
]


def log(msg: str = "") -> None:
    print(msg, flush=True)


# --------------------------------------------------------------------------------------------
# pure logic: statistics, targets, the report (tests/test_bench_suite.py covers these)

def percentile(xs: list[float], p: float) -> float:
    s = sorted(xs)
    if len(s) == 1:
        return s[0]
    k = (len(s) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def spread(xs: list[float]) -> tuple[str, float, float]:
    """('p10–p90', lo, hi) for 10 samples or more, else ('min–max', lo, hi)."""
    if len(xs) >= 10:
        return "p10–p90", percentile(xs, 10), percentile(xs, 90)
    return "min–max", min(xs), max(xs)


def fmt(v: float) -> str:
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def medians(rows: list[dict]) -> dict[tuple[str, str], float]:
    return {(r["case"], r["tool"]): statistics.median(r["samples"]) for r in rows if r.get("samples")}


def evaluate_targets(rows: list[dict], targets: list = TARGETS) -> list[dict]:
    """Each target with its status: PASS, MISS, or n/a (a side was not measured)."""
    med = medians(rows)
    out = []
    for case, tool, anchor, factor, limit, text in targets:
        v = med.get((case, tool))
        res = {"case": case, "tool": tool, "target": text, "value": v, "anchor": anchor}
        if anchor is not None:
            a = med.get(anchor)
            if v is None or a is None:
                res.update(status="n/a", why=f"{tool if v is None else anchor[1]} not measured")
            else:
                res.update(limit=factor * a, ratio=v / a,
                           status="PASS" if v <= factor * a else "MISS")
        else:
            if v is None:
                res.update(status="n/a", why=f"{tool} not measured")
            else:
                res.update(limit=limit, status="PASS" if v <= limit else "MISS")
        out.append(res)
    return out


#: (case, tool, text in the error) -> why: an anchor that lacks a feature, not a failed run.
UNSUPPORTED = [
    ("e-zstd", "docker pull", "invalid tar header",
     "this dockerd cannot pull zstd layers (\"archive/tar: invalid tar header\")"),
    ("e-zstd", "skopeo copy + umoci unpack", "not correct mediatype",
     "umoci cannot unpack zstd layers (\"blob is not correct mediatype\")"),
]


def reclassify(rows: list[dict], errors: dict[str, str], notes: list[str]) -> None:
    """Turn an anchor's missing feature (UNSUPPORTED) from a failure into a note, in place."""
    for r in rows:
        for case, tool, text, why in UNSUPPORTED:
            if r["case"] == case and r["tool"] == tool and text in (r.get("error") or ""):
                r["error"], r["note"] = "", "unsupported: " + why
                errors.pop(f"({case}) {tool}", None)
                notes.append(f"({case}) {tool}: {why}")


def render_report(rows: list[dict], env: dict, errors: dict[str, str],
                  targets: list = TARGETS) -> str:
    """The markdown report: environment, the table, the targets, misses and failures."""
    med = medians(rows)
    evaluated = evaluate_targets(rows, targets)
    by_row: dict[tuple[str, str], list[dict]] = {}
    for t in evaluated:
        by_row.setdefault((t["case"], t["tool"]), []).append(t)
    lines = [f"# barque benchmark suite — {env.get('date', '?')}", ""]
    lines += [f"- machine: {env.get('cpu', '?')}, {env.get('cores', '?')} cores, "
              f"kernel {env.get('kernel', '?')}, cgroup {env.get('cgroup', '?')}",
              f"- load average at start / end: {env.get('load_start', '?')} / "
              f"{env.get('load_end', '?')}",
              f"- mode: {env.get('mode', '?')}; commit {env.get('commit', '?')}"]
    for k, v in env.get("versions", {}).items():
        lines.append(f"- {k}: {v}")
    lines += ["", "| case | tool | median | spread | n | ratio to anchors | target | result |",
              "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        key = (r["case"], r["tool"])
        unit = r.get("unit", "")
        if not r.get("samples"):
            why = " ".join((r.get("error") or r.get("note", "")).split()).replace("|", "/")[:200]
            lines.append(f"| {r['case']} | {r['tool']} | — | — | 0 | | | "
                         f"{'FAILED' if r.get('error') else 'not run'}: {why} |")
            continue
        kind, lo, hi = spread(r["samples"])
        ratios = []
        if not r.get("anchor"):
            for a in rows:
                if a.get("anchor") and a["case"] == r["case"] and (a["case"], a["tool"]) in med:
                    ratios.append(f"{med[key] / med[(a['case'], a['tool'])]:.2f}× {a['tool']}")
            for t in by_row.get(key, []):  # cross-case anchors (runc, crun from case a)
                if t["anchor"] and t["anchor"][0] != r["case"] and "ratio" in t:
                    ratios.append(f"{t['ratio']:.2f}× {t['anchor'][1]} ({t['anchor'][0]})")
        tg = by_row.get(key, [])
        note = f" ({r['note']})" if r.get("note") else ""
        lines.append(
            f"| {r['case']} | {r['tool']}{note} | {fmt(med[key])} {unit} | "
            f"{fmt(lo)}–{fmt(hi)} ({kind}) | {len(r['samples'])} | {'; '.join(ratios)} | "
            f"{'; '.join(t['target'] for t in tg)} | {' '.join(t['status'] for t in tg)} |")
    lines += ["", "## Targets", ""]
    for t in evaluated:
        if t["status"] == "n/a":
            detail = t["why"]
        elif "ratio" in t:
            detail = (f"{fmt(t['value'])} vs limit {fmt(t['limit'])} "
                      f"({t['ratio']:.2f}× {t['anchor'][1]})")
        else:
            detail = f"{fmt(t['value'])} vs limit {fmt(t['limit'])}"
        lines.append(f"- **{t['status']}** ({t['case']}) {t['tool']} {t['target']}: {detail}")
    misses = [t for t in evaluated if t["status"] == "MISS"]
    lines += ["", f"{len(misses)} of {len(evaluated)} targets missed"
              + (": " + "; ".join(f"{t['tool']} {t['target']}" for t in misses) if misses else ".")]
    if errors:
        lines += ["", "## Failures", ""]
        for k, v in errors.items():
            lines.append(f"- {k}: `{v.strip().splitlines()[-1][:300] if v.strip() else '?'}`")
    if env.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {n}" for n in env["notes"]]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# the chart

def write_chart(rows: list[dict], path: Path) -> str:
    med = medians(rows)
    cases = [c for c in CASE_TITLES if any(k[0] == c for k in med)]
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        _plain_png(rows, path)
        return "plain PNG (matplotlib not importable): bars in table order, barque dark"
    fig, axes = plt.subplots(len(cases), 1, figsize=(8, 1.0 + 1.1 * sum(
        1 + sum(1 for k in med if k[0] == c) * 0.35 for c in cases) / 1.5), squeeze=False)
    for ax, c in zip(axes[:, 0], cases, strict=True):
        items = [(r["tool"], med[(c, r["tool"])], not r.get("anchor")) for r in rows
                 if r["case"] == c and (c, r["tool"]) in med]
        ax.barh([t for t, _, _ in items], [v for _, v, _ in items],
                color=["#1f5fa8" if ours else "#b0b0b0" for _, _, ours in items])
        for i, (_, v, _) in enumerate(items):
            ax.text(v, i, " " + fmt(v), va="center", fontsize=7)
        ax.invert_yaxis()
        ax.set_title(f"({c}) {CASE_TITLES[c]}", fontsize=9, loc="left")
        ax.tick_params(labelsize=7)
        ax.margins(x=0.15)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return "matplotlib"


def _plain_png(rows: list[dict], path: Path) -> None:
    """Horizontal bars, one per measured row, each scaled to its case's largest median."""
    med = medians(rows)
    keys = [(r["case"], r["tool"], not r.get("anchor")) for r in rows if (r["case"], r["tool"]) in med]
    w, bar, gap = 600, 12, 4
    h = max(1, len(keys)) * (bar + gap) + gap
    px = [[(255, 255, 255)] * w for _ in range(h)]
    for i, (c, t, ours) in enumerate(keys):
        top = max(med[k] for k in med if k[0] == c) or 1
        n = int((w - 20) * med[(c, t)] / top)
        for y in range(gap + i * (bar + gap), gap + i * (bar + gap) + bar):
            for x in range(10, 10 + n):
                px[y][x] = (31, 95, 168) if ours else (176, 176, 176)
    raw = b"".join(b"\0" + bytes(v for p in row for v in p) for row in px)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(
            ">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


# --------------------------------------------------------------------------------------------
# helpers shared by the cases

def sh(cmd: list, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)


def first_line(cmd: list) -> str:
    try:
        p = sh(cmd, timeout=20)
        return ((p.stdout or p.stderr).strip().splitlines() or ["?"])[0]
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"


def mounts_with(prefix: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if prefix in line.split()[4]]


def lifecycle_batch(argvs: list[list[str]], concurrency: int, mount_prefix: str) -> dict:
    """Run each argv (a whole `run`), `concurrency` at a time; per-run ms, total ms, errors,
    and what is still mounted under mount_prefix afterwards (seen from this namespace)."""
    errors: list[str] = []

    def one(argv: list[str]) -> float:
        t = time.perf_counter()
        r = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        ms = (time.perf_counter() - t) * 1000
        if r.returncode != 0:
            errors.append(f"{argv[0]} exit {r.returncode}: {r.stderr.decode(errors='replace')[:300]}")
        return ms

    t0 = time.perf_counter()
    if concurrency <= 1:
        samples = [one(a) for a in argvs]
    else:
        with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
            samples = list(pool.map(one, argvs))
    total = (time.perf_counter() - t0) * 1000
    return {"samples": samples, "total_ms": total, "errors": errors,
            "mounts_left": mounts_with(mount_prefix)}


def cgroups_named(prefix: str) -> list[str]:
    found = []
    for base in Path("/sys/fs/cgroup").iterdir():
        for dirpath, dirnames, _ in os.walk(base):
            for d in dirnames:
                if d.startswith(prefix) or prefix in d:
                    found.append(os.path.join(dirpath, d))
            if dirpath.count("/") - str(base).count("/") >= 2:
                dirnames[:] = []
    return found


class Suite:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.quick = args.quick
        self.rows: list[dict] = []
        self.errors: dict[str, str] = {}
        self.notes: list[str] = []
        self.work = Path(tempfile.mkdtemp(prefix="barque-bench-suite.", dir="/var/tmp"))
        self.dockerd: subprocess.Popen | None = None
        self.docker_created_bridge = False
        self.registry = None
        self.brt = str(SCRIPTS / "barque-runtime")
        self.barque = str(SCRIPTS / "barque")
        self.barque_py = str(SCRIPTS / "barque-py")
        self.bundle: Path | None = None
        self.engine = None
        self.busybox_ref = ""
        self.lock = threading.Lock()

    # ---- rows
    def add(self, case: str, tool: str, samples: list[float] | None, unit: str, *,
            anchor: bool = False, note: str = "", error: str = "") -> None:
        self.rows.append({"case": case, "tool": tool, "samples": samples or [], "unit": unit,
                          "anchor": anchor, "note": note, "error": error})
        if error:
            self.errors[f"({case}) {tool}"] = error
        if samples:
            log(f"  ({case}) {tool:<34} median {fmt(statistics.median(samples))} {unit}"
                f"  n={len(samples)}")
        else:
            log(f"  ({case}) {tool:<34} {'FAILED: ' + error if error else note}")

    # ---- shared set-up
    def setup_common(self) -> None:
        import mkimage
        import pull

        pull.ensure_tools()
        rootfs = self.work / "bundle" / "rootfs"
        mkimage.busybox_rootfs(rootfs)
        self.bundle = self.work / "bundle"
        subprocess.run([self.brt, "spec", "--bundle", str(self.bundle)], check=True)
        config = json.loads((self.bundle / "config.json").read_text())
        config["process"].update(terminal=False, args=["/bin/true"])
        config["root"] = {"path": "rootfs", "readonly": True}
        (self.bundle / "config.json").write_text(json.dumps(config))
        self.start_forkserver()
        self.registry = pull.Registry(self.work / "registry")
        self.registry.start()
        log(f"registry: {self.registry.host}")
        mkimage.build(self.work / "busybox-layout", [rootfs], "bench", ["sh"])
        self.busybox_ref = f"{self.registry.host}/bench/busybox:1"
        subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false",
                        f"oci:{self.work / 'busybox-layout'}:bench", f"docker://{self.busybox_ref}"],
                       check=True)

    def start_forkserver(self) -> None:
        """barque's forkserver where users get it: its default directory (never a private
        BARQUE_FORKSERVER_DIR, which once hid that the default one was refused), started as
        users start it, by a first command; then every `barque` of the suite is required to
        use it (BARQUE_FORKSERVER=require: a fallback to the Python CLI fails the row instead
        of timing something else). A server already there (barque changed under it, say)
        hands over to a new one the same way."""
        for name in ("BARQUE_FORKSERVER_DIR", "BARQUE_FORKSERVER_STATUS"):
            os.environ.pop(name, None)
        auto = {**os.environ, "BARQUE_FORKSERVER": "auto"}
        required = {**os.environ, "BARQUE_FORKSERVER": "require"}
        info = [self.barque, "--root", str(self.work / "info-store"), "info", "--format", "json"]
        deadline = time.monotonic() + 60
        while True:
            subprocess.run([self.barque, "--version"], env=auto, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=False)
            served = subprocess.run(info, env=required, capture_output=True, text=True,
                                    check=False)
            if served.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the default forkserver does not serve: {served.stderr}")
            time.sleep(0.1)
        directory = json.loads(served.stdout)["ClientInfo"]["FastPath"]["Directory"]
        self.notes.append(f"barque CLI rows run through the default forkserver ({directory})")
        os.environ["BARQUE_FORKSERVER"] = "require"

    def start_dockerd(self) -> None:
        if not shutil.which("dockerd"):
            self.notes.append("dockerd not installed (apt-get install docker.io): Docker rows skipped")
            return
        had_bridge = Path("/sys/class/net/docker0").exists()
        DOCKER_ROOT.mkdir(parents=True, exist_ok=True)
        DOCKER_EXEC_ROOT.mkdir(parents=True, exist_ok=True)
        logf = open(self.work / "dockerd.log", "wb")
        self.dockerd = subprocess.Popen(
            ["dockerd", "-H", DOCKER_SOCK, "--data-root", str(DOCKER_ROOT),
             "--exec-root", str(DOCKER_EXEC_ROOT), "--pidfile", str(DOCKER_EXEC_ROOT / "dockerd.pid"),
             "--bridge=none", "--iptables=false", "--ip-masq=false",
             "--containerd-namespace", "barque-bench", "--containerd-plugins-namespace",
             "barque-bench-plugins"],
            stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
        os.environ["DOCKER_HOST"] = DOCKER_SOCK
        for _ in range(150):
            if self.dockerd.poll() is not None:
                raise RuntimeError("dockerd exited: " + (self.work / "dockerd.log").read_text()[-1500:])
            if sh(["docker", "info"]).returncode == 0:
                break
            time.sleep(0.2)
        else:
            raise RuntimeError("dockerd did not answer in 30 s")
        self.docker_created_bridge = not had_bridge and Path("/sys/class/net/docker0").exists()
        log(f"dockerd: pid {self.dockerd.pid} on {DOCKER_SOCK}")

    def docker_ok(self) -> bool:
        return self.dockerd is not None and self.dockerd.poll() is None

    def stop_dockerd(self) -> None:
        if self.dockerd is None:
            return
        sh(["docker", "rm", "-f", *sh(["docker", "ps", "-aq"]).stdout.split()])
        if self.dockerd.poll() is None:
            self.dockerd.terminate()
            try:
                self.dockerd.wait(30)
            except subprocess.TimeoutExpired:
                self.dockerd.kill()
                self.dockerd.wait()
        import pull
        for p in (DOCKER_EXEC_ROOT, DOCKER_ROOT):
            pull.umount_all_under(p)
            pull.rmtree(p)
        if self.docker_created_bridge or Path("/sys/class/net/docker0").exists() and self.docker_created_bridge:
            sh(["ip", "link", "del", "docker0"])
        os.environ.pop("DOCKER_HOST", None)

    def get_engine(self):  # type: ignore[no-untyped-def]
        if self.engine is None:
            from barque import Engine
            self.engine = Engine(root=self.work / "barque-store")
            self.engine.images.pull(self.busybox_ref)
        return self.engine

    # ---- runtimes: argv for one lifecycle, and where a batch runs
    def runtimes(self) -> dict[str, str | None]:
        return {"runc run": shutil.which("runc"), "crun run": shutil.which("crun"),
                "barque-runtime run": self.brt if os.access(self.brt, os.X_OK) else None}

    def batch(self, tool: str, exe: str, tag: str, n: int, concurrency: int) -> dict:
        root = self.work / "state" / f"{tag}"
        argvs = [[exe, "--root", str(root), "run", "--bundle", str(self.bundle), f"bq{tag}-{i}"]
                 for i in range(n)]
        req = {"argvs": argvs, "concurrency": concurrency, "mount_prefix": str(self.work)}
        if tool == "crun run" and HYBRID_UNIFIED.is_dir():
            # crun wants cgroup2 at /sys/fs/cgroup/unified gone on this hybrid host: the whole
            # batch runs in one private mount namespace without it (no per-run unshare cost).
            p = subprocess.run(
                ["unshare", "-m", "--propagation", "private", "sh", "-c",
                 'umount /sys/fs/cgroup/unified 2>/dev/null; exec "$0" "$@"',
                 sys.executable, __file__, "--_driver"],
                input=json.dumps(req), capture_output=True, text=True)
            if p.returncode != 0:
                raise RuntimeError(f"driver exit {p.returncode}: {p.stderr[-800:]}")
            res = json.loads(p.stdout)
        else:
            res = lifecycle_batch(argvs, concurrency, str(self.work))
        res["state_left"] = (sorted(x.name for x in root.iterdir() if x.name.startswith("bq"))
                             if root.exists() else [])  # not barque-runtime's seccomp-cache/
        return res

    # ---- cases
    def case_a(self) -> None:
        n = 5 if self.quick else 30
        for tool, exe in self.runtimes().items():
            if not exe:
                self.add("a", tool, None, "ms", anchor=tool != "barque-runtime run", note="not installed")
                continue
            self.batch(tool, exe, f"warm-{tool[:4]}", 2, 1)  # page cache, first-use set-up
            res = self.batch(tool, exe, f"a-{tool[:4]}", n, 1)
            note = "timed inside one private mount namespace" if tool == "crun run" and HYBRID_UNIFIED.is_dir() else ""
            self.add("a", tool, res["samples"], "ms", anchor=tool != "barque-runtime run",
                     note=note, error="; ".join(res["errors"][:2]))

    def case_b(self) -> None:
        reps = 1 if self.quick else 3
        for tool, exe in self.runtimes().items():
            if not exe:
                continue
            totals, errs = [], []
            for r in range(reps):
                res = self.batch(tool, exe, f"b{r}-{tool[:4]}", 100, 1)
                totals.append(res["total_ms"] / 1000)
                errs += res["errors"]
            self.add("b", tool, totals, "s", anchor=tool != "barque-runtime run",
                     note=f"{reps} × 100", error="; ".join(errs[:2]))

    def case_c(self) -> None:
        for tool, exe in self.runtimes().items():
            if not exe:
                continue
            tag = f"c-{tool[:4]}"
            res = self.batch(tool, exe, tag, 50, 50)
            left = []
            if res["mounts_left"]:
                left.append(f"{len(res['mounts_left'])} mounts")
            cg = cgroups_named(f"bq{tag}-")
            if cg:
                left.append(f"{len(cg)} cgroups ({cg[0]})")
            if res["state_left"]:
                left.append(f"{len(res['state_left'])} state records")
            s = res["samples"]
            note = (f"p50 {fmt(percentile(s, 50))} ms, p99 {fmt(percentile(s, 99))} ms, wall "
                    f"{fmt(res['total_ms'])} ms; " + ("left: " + ", ".join(left) if left else "nothing left"))
            err = "; ".join(res["errors"][:2])
            if left and tool == "barque-runtime run":
                err = (err + "; " if err else "") + "left behind: " + ", ".join(left)
            self.add("c", tool, s, "ms", anchor=tool != "barque-runtime run", note=note, error=err)

    def case_d(self) -> None:
        from barque.containers import CreateOptions
        from barque.runtime.spec import RunOptions

        engine = self.get_engine()
        ref = self.busybox_ref
        devnull = subprocess.DEVNULL
        root = self.work / "barque-store"
        funcs = {}

        def cli() -> None:
            subprocess.run([self.barque, "--root", str(root), "run", "--rm", "--network", "none",
                            ref, "true"], check=True, stdout=devnull, stderr=devnull)

        def python_cli() -> None:
            subprocess.run([self.barque_py, "--root", str(root), "run", "--rm", "--network",
                            "none", ref, "true"], check=True, stdout=devnull, stderr=devnull)

        def api() -> None:
            code = engine.containers.run(ref, ["true"], options=RunOptions(network="none"),
                                           create=CreateOptions(auto_remove=True))
            if code != 0:
                raise RuntimeError(f"engine.containers.run exit {code}")

        def docker() -> None:
            subprocess.run(["docker", "run", "--rm", "--network", "none", ref, "true"],
                           check=True, stdout=devnull, stderr=subprocess.PIPE)

        funcs["barque run --rm (CLI)"] = cli
        funcs["engine.containers.run (Python)"] = api
        funcs["barque-py run --rm (no forkserver)"] = python_cli
        if self.docker_ok():
            r = sh(["docker", "pull", "-q", ref])
            if r.returncode != 0:
                self.add("d", "docker run --rm", None, "ms", anchor=True, error=r.stderr[-300:])
            else:
                funcs["docker run --rm"] = docker
        else:
            self.add("d", "docker run --rm", None, "ms", anchor=True, note="no dockerd")
        n = 5 if self.quick else 20
        samples: dict[str, list[float]] = {k: [] for k in funcs}
        errs: dict[str, str] = {}
        for name, fn in funcs.items():  # warm-up
            try:
                fn()
            except Exception as e:  # noqa: BLE001
                errs[name] = repr(e)
        for _ in range(n):  # interleaved, so load drifts hit all alike
            for name, fn in funcs.items():
                if name in errs:
                    continue
                t = time.perf_counter()
                try:
                    fn()
                except Exception as e:  # noqa: BLE001
                    errs[name] = repr(e)
                    continue
                samples[name].append((time.perf_counter() - t) * 1000)
                if name == "docker run --rm":
                    # dockerd and containerd go on working after the CLI returns (the shim's
                    # exit, events, cleanup): a pause keeps that work off the next tool's
                    # sample. Interleaved without it, the API case measured 12.5 ms against
                    # 8.0 ms in a run without docker, the CLI 86 against 58 ms.
                    time.sleep(DOCKER_SETTLE_S)
        for name in funcs:
            self.add("d", name, samples[name] if name not in errs else None, "ms",
                     anchor=name == "docker run --rm", error=errs.get(name, ""))

    def case_g(self) -> None:
        from run import _idle_supervisor_memory

        engine = self.get_engine()
        rss, pss = _idle_supervisor_memory(engine, self.busybox_ref)
        self.add("g", "barque-shim", [float(pss)], "kB", note=f"RSS {rss} kB")
        if not self.docker_ok():
            self.add("g", "containerd-shim (docker)", None, "kB", anchor=True, note="no dockerd")
            return
        name = f"barque-bench-idle-{os.getpid()}"
        r = sh(["docker", "run", "-d", "--name", name, "--network", "none", self.busybox_ref,
                "sleep", "60"])
        if r.returncode != 0:
            self.add("g", "containerd-shim (docker)", None, "kB", anchor=True, error=r.stderr[-300:])
            return
        try:
            time.sleep(1)
            pid = sh(["docker", "inspect", "-f", "{{.State.Pid}}", name]).stdout.strip()
            ppid = next(line.split()[1] for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                        if line.startswith("PPid:"))
            comm = Path(f"/proc/{ppid}/comm").read_text().strip()
            roll = Path(f"/proc/{ppid}/smaps_rollup").read_text()
            pss_d = int(next(x.split()[1] for x in roll.splitlines() if x.startswith("Pss:")))
            self.add("g", "containerd-shim (docker)", [float(pss_d)], "kB", anchor=True,
                     note=comm)
        finally:
            sh(["docker", "rm", "-f", name])

    def case_h(self) -> None:
        n = 5 if self.quick else 20
        root = self.work / "barque-store"
        cmds = {"barque --help": [self.barque, "--help"],
                "barque ps": [self.barque, "--root", str(root), "ps"],
                "barque-py ps (no forkserver)": [self.barque_py, "--root", str(root), "ps"]}
        if self.docker_ok():
            cmds["docker ps"] = ["docker", "ps"]
        for name, argv in cmds.items():
            sh(argv)
            samples, err = [], ""
            for _ in range(n):
                t = time.perf_counter()
                r = sh(argv)
                samples.append((time.perf_counter() - t) * 1000)
                if r.returncode != 0:
                    err = f"exit {r.returncode}: {r.stderr[-300:]}"
                    break
            self.add("h", name, None if err else samples, "ms", anchor=name.startswith("docker"),
                     error=err)

    def case_f(self) -> None:
        import pull

        meta = self.pull_image()
        layout = Path(meta["layout"])
        largest = max(meta["layers"], key=lambda x: x["compressed"])
        blob = layout / "blobs" / "sha256" / largest["digest"].split(":", 1)[1]
        _, py, note = pull.find_barque(self.barque)
        res = pull.sha256_bench(blob, py, n=3 if self.quick else 5)
        size_note = f"{blob.stat().st_size / 1e6:.0f} MB, page cache warm, best of {res['runs']}"
        self.add("f", "openssl dgst -sha256", [(res["openssl_seconds"] - res["openssl_startup_seconds"]) * 1000],
                 "ms", anchor=True, note=f"{res['openssl_gbps']:.2f} GB/s net of start-up; {size_note}")
        if "barque_seconds" in res:
            self.add("f", "barque sha256_file", [res["barque_seconds"] * 1000], "ms",
                     note=f"{res['barque_gbps']:.2f} GB/s")
        else:
            self.add("f", "barque sha256_file", None, "ms", error=res.get("barque_error", note))

    _meta: dict | None = None

    def pull_image(self) -> dict:
        import pull
        if self._meta is None:
            self._meta = pull.ensure_image(pull.DEFAULT_CACHE, False, pull.MIRROR, pull.SUITE, False)
        return self._meta

    def zstd_layout(self, meta: dict) -> Path:
        """The same image with zstd layers (skopeo recompresses), cached beside the gzip one."""
        src = Path(meta["layout"])
        out = src.parent / "oci-zstd"
        stamp = out / ".from"
        if not (stamp.exists() and stamp.read_text() == meta["manifest_digest"]):
            import pull
            pull.rmtree(out)
            log("building the zstd variant with skopeo --dest-compress-format zstd ...")
            subprocess.run(["skopeo", "copy", "-q", "--dest-compress", "--dest-compress-format", "zstd",
                            f"oci:{src}:bench", f"oci:{out}:bench"], check=True)
            stamp.write_text(meta["manifest_digest"])
        return out

    def floor(self, layout: Path, decompress: list[str], rounds: int) -> list[float]:
        """Decompress + untar the layers, one after the other, into a tmpfs, cold."""
        import pull
        layers = pull.layout_layers(layout, "bench")
        times = []
        for r in range(rounds):
            target = self.work / f"floor-{layout.name}-{r}"
            target.mkdir()
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2g", "tmpfs", str(target)], check=True)
            try:
                pull.drop_caches()
                t = time.perf_counter()
                for lay in layers:
                    blob = layout / "blobs" / "sha256" / lay["digest"].split(":", 1)[1]
                    p = subprocess.run(["sh", "-c", f'{" ".join(decompress)} < "$0" | tar -x --numeric-owner -C "$1"',
                                        str(blob), str(target)], capture_output=True, text=True)
                    if p.returncode != 0:
                        raise RuntimeError(f"floor: {p.stderr[-300:]}")
                times.append(time.perf_counter() - t)
            finally:
                subprocess.run(["umount", str(target)])
                target.rmdir()
        return times

    def case_e(self) -> None:
        import pull

        meta = self.pull_image()
        gz = Path(meta["layout"])
        variants = [("e-gzip", gz, ["gzip", "-dc"], "gunzip + untar floor"),
                    ("e-zstd", None, ["zstd", "-dcq"], "zstd -d + untar floor")]
        rounds = 1 if self.quick else 3
        last_delete = 0.0
        prev_ref = ""
        for case, layout, dec, floor_name in variants:
            try:
                if layout is None:
                    layout = self.zstd_layout(meta)
                repo = f"bench/debian-{case[2:]}"
                ref = f"{self.registry.host}/{repo}:1"
                subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false",
                                f"oci:{layout}:bench", f"docker://{ref}"], check=True)
                bargs = argparse.Namespace(rounds=rounds, docker=self.docker_ok(),
                                           no_drop_caches=False)
                wd = self.work / f"pull-{case}"
                wd.mkdir()
                bench = pull.Bench(bargs, self.registry, wd, self.barque, layout)
                bench.ref = ref
                if self.quick:  # no 61 s quiet period after deletions: faster, noisier
                    bench.QUIET_AFTER_DELETE = 0.0
                if prev_ref and self.docker_ok() and sh(["docker", "image", "rm", "-f", prev_ref]).returncode == 0:
                    # docker keys layers by their uncompressed digest: the gzip variant's layers
                    # would make the zstd pull a no-op
                    last_delete = time.monotonic()
                prev_ref = ref
                bench.last_delete = last_delete
                bench.prepare()
                bench.run_rounds()
                last_delete = bench.last_delete
                t = bench.times
                self.add(case, "barque pull", t.get("barque pull"), "s",
                         error=bench.errors.get("barque pull", ""))
                self.add(case, "docker pull", t.get("docker pull"), "s", anchor=True,
                         error=bench.errors.get("docker pull", ""),
                         note="" if bench.docker else "no dockerd")
                su_err = bench.errors.get("skopeo copy", "") or bench.errors.get("umoci unpack", "")
                self.add(case, "skopeo copy + umoci unpack", t.get("skopeo + umoci"), "s", anchor=True,
                         error=su_err,
                         note=("skopeo " + fmt(statistics.median(t["skopeo copy"])) + " s + umoci "
                               + fmt(statistics.median(t["umoci unpack"])) + " s")
                         if t.get("skopeo copy") else "")
                try:
                    self.add(case, floor_name, self.floor(layout, dec, rounds), "s", anchor=True,
                             note="layers one after the other into tmpfs")
                except Exception as e:  # noqa: BLE001
                    self.add(case, floor_name, None, "s", anchor=True, error=repr(e))
            except Exception:  # noqa: BLE001
                self.add(case, "barque pull", None, "s", error=traceback.format_exc(limit=3))

    # ---- environment and clean-up
    def environment(self, mode: str) -> dict:
        cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                    if line.startswith("model name")), "?")
        cgroup = ("v2 (unified)" if Path("/sys/fs/cgroup/cgroup.controllers").exists() else
                  "hybrid (v1 + cgroup2 at /sys/fs/cgroup/unified)" if HYBRID_UNIFIED.is_dir() else "v1")
        versions = {
            "runc": first_line(["runc", "--version"]),
            "crun": first_line(["crun", "--version"]),
            "docker": ("dockerd " + sh(["docker", "version", "-f", "{{.Server.Version}}"]).stdout.strip()
                       if self.docker_ok() else "not running"),
            "skopeo": first_line(["skopeo", "--version"]),
            "umoci": first_line(["umoci", "--version"]),
            "openssl": first_line(["openssl", "version"]),
            "barque": first_line([self.barque, "--version"]),
            "barque-runtime": first_line([self.brt, "--version"]),
        }
        commit = sh(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]).stdout.strip()
        return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                "cpu": cpu, "cores": os.cpu_count(), "kernel": os.uname().release, "cgroup": cgroup,
                "versions": versions, "commit": commit, "mode": mode}

    def cleanup(self) -> None:
        import pull
        try:
            if self.engine is not None:
                for c in self.engine.containers.list(all=True):
                    c.remove(force=True)
        except Exception as e:  # noqa: BLE001
            log(f"cleanup: barque containers: {e!r}")
        # anything a runtime left in its state roots
        for tool, exe in self.runtimes().items():
            state = self.work / "state"
            if exe and state.exists():
                for root in state.iterdir():
                    for ctr in (root.iterdir() if root.is_dir() else []):
                        if ctr.is_dir():
                            sh([exe, "--root", str(root), "delete", "--force", ctr.name])
        try:
            self.stop_dockerd()
        except Exception as e:  # noqa: BLE001
            log(f"cleanup: dockerd: {e!r}")
        # The default forkserver is the users' as much as ours: it goes when idle.
        if self.registry is not None:
            self.registry.stop()
        pull.rmtree(self.work)


def driver() -> int:
    req = json.loads(sys.stdin.read())
    print(json.dumps(lifecycle_batch(req["argvs"], req["concurrency"], req["mount_prefix"])))
    return 0


def main() -> int:
    if "--_driver" in sys.argv:
        return driver()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="few repetitions (a couple of minutes)")
    ap.add_argument("--out", type=Path, default=REPO / "bench")
    ap.add_argument("--only", default="a,b,c,d,g,h,f,e", help="comma-separated cases to run")
    ap.add_argument("--no-docker", action="store_true", help="do not start dockerd")
    ap.add_argument("--render", type=Path, metavar="RESULTS_JSON",
                    help="only re-render report.md/png from a results.json (no runs)")
    args = ap.parse_args()
    if args.render:
        data = json.loads(args.render.read_text())
        env = data["env"]
        env["notes"] = [n for n in env.get("notes", []) if not n.startswith("(e-zstd) umoci")]
        env["notes"].append(f"re-rendered with --render from {args.render.name} "
                            f"on {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}")
        return write_outputs(args.out, data["rows"], env, data["errors"])
    if os.geteuid() != 0:
        sys.exit("suite.py: run as root (containers, mounts, drop_caches)")

    def on_signal(signum, frame):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    suite = Suite(args)
    load_start = " ".join(f"{x:.2f}" for x in os.getloadavg())
    failed_setup = False
    env: dict = {}
    try:
        try:
            suite.setup_common()
        except Exception:  # noqa: BLE001
            suite.errors["set-up"] = traceback.format_exc(limit=4)
            failed_setup = True
            log(suite.errors["set-up"])
        if not failed_setup and not args.no_docker:
            try:
                suite.start_dockerd()
            except Exception as e:  # noqa: BLE001
                suite.notes.append(f"dockerd could not start: {e}")
                log(f"dockerd: {e}")
                suite.dockerd = None if suite.dockerd is None or suite.dockerd.poll() is not None else suite.dockerd
        if not failed_setup:
            for case in args.only.split(","):
                fn = getattr(suite, f"case_{case.strip()}", None)
                if fn is None:
                    suite.errors[f"({case})"] = "no such case"
                    continue
                log(f"case ({case}) ...")
                try:
                    fn()
                except Exception:  # noqa: BLE001
                    suite.errors[f"({case})"] = traceback.format_exc(limit=4)
                    log(f"  case ({case}) FAILED:\n{suite.errors[f'({case})']}")
        env = suite.environment("--quick" if args.quick else "full")
    except KeyboardInterrupt:
        log("interrupted, cleaning up")
        suite.errors["interrupted"] = "SIGINT/SIGTERM"
    finally:
        suite.cleanup()
    env.setdefault("date", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    env["load_start"] = load_start
    env["load_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    env["notes"] = suite.notes + [
        "Lower is better everywhere; ratios are of medians from this one run.",
        "(a)–(c) state roots and bundle are per tool; crun runs inside one private mount "
        "namespace with cgroup2 detached on a hybrid host.",
        "(d) each docker run --rm is followed by a 0.5 s pause, so that dockerd's work after "
        "the CLI returns does not land on the next tool's sample.",
        "(d) engine.containers.run uses auto_remove (the API's --rm): like crun run and the "
        "CLI case, it leaves nothing behind.",
        "(e) rounds are cold (page cache dropped, fresh target); " + (
            "--quick: no wait after large deletions (ext4 without a journal), so noisier."
            if args.quick else "pull.py's 61 s wait after large deletions applies (ext4 "
            "without a journal)."),
    ]
    return write_outputs(args.out, suite.rows, env, suite.errors)


def write_outputs(out: Path, rows: list[dict], env: dict, errors: dict[str, str]) -> int:
    """report.md, report.png and results.json; 1 if a run failed (never for a missed target)."""
    reclassify(rows, errors, env.setdefault("notes", []))
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text(render_report(rows, env, errors))
    how = write_chart(rows, out / "report.png")
    (out / "results.json").write_text(json.dumps(
        {"env": env, "rows": rows, "errors": errors, "targets": evaluate_targets(rows)},
        indent=1, default=str))
    log(f"\nwrote {out / 'report.md'}, {out / 'report.png'} ({how})")
    log((out / "report.md").read_text())
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
