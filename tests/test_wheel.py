"""The wheel is all of barque: built from the checkout with ``pip wheel`` (maturin, with
rust/barque-py/build.rs building the executables), installed into a fresh venv, and used from
there with no access to the checkout (a temporary cwd, no PYTHONPATH, the venv's PATH).

One wheel build for the module. It runs in the checkout's ``target/`` (pip builds a local
directory in place), so after ``scripts/setup`` cargo has next to nothing left to do.
Select it with ``-m wheel``; ``-m 'not wheel'`` leaves it out.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import REPO, Terminal, busybox_rootfs, stop_forkserver, wait_for_forkserver

pytestmark = [
    pytest.mark.wheel,
    pytest.mark.root,
    pytest.mark.registry,
    pytest.mark.skipif(os.geteuid() != 0, reason="containers need root (namespaces, mounts)"),
    pytest.mark.skipif(shutil.which("cargo") is None, reason="building the wheel needs cargo"),
]

#: What the dynamic loader may bring in: glibc's libraries, the loader, the vDSO.
GLIBC = ("libc.so.", "libm.so.", "libgcc_s.so.", "libpthread.so.", "libdl.so.", "ld-linux",
         "linux-vdso.so.")
NET = ("--network", "none")


class Installed:
    """A fresh venv with the wheel installed, and its commands run as a user runs them."""

    def __init__(self, venv: Path, home: Path, forkserver_dir: Path) -> None:
        self.bin = venv / "bin"
        self.home = home
        self.root = home / "store"
        self.forkserver_dir = forkserver_dir
        where = self.python("import barque; print(barque.__file__)")
        self.package = Path(where.strip()).parent

    def env(self, **extra: str) -> dict[str, str]:
        """Nothing of the test's environment (no PYTHONPATH, VIRTUAL_ENV or BARQUE_*); every
        command through this venv's forkserver, or failing."""
        return {"PATH": f"{self.bin}:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(self.home),
                "LANG": "C.UTF-8", "BARQUE_FORKSERVER_DIR": str(self.forkserver_dir),
                "BARQUE_FORKSERVER": "require", **extra}

    def python(self, code: str) -> str:
        return subprocess.run([str(self.bin / "python"), "-c", code], capture_output=True,
                              text=True, check=True, cwd=self.home, env=self.env()).stdout

    def command(self, program: str, *args: str, check: bool = True,
                timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """``program`` found on the venv's PATH, as a shell would."""
        r = subprocess.run([program, *args], capture_output=True, text=True, cwd=self.home,
                           timeout=timeout, env=self.env(), stdin=subprocess.DEVNULL)
        if check and r.returncode != 0:
            raise AssertionError(f"{program} {' '.join(args)}: exit {r.returncode}\n"
                                 f"{r.stdout}{r.stderr}")
        return r

    def barque(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.command("barque", "--root", str(self.root), *args, check=check)


def _build_wheel(out: Path) -> Path:
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                           str(out), str(REPO)], capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0 and "No matching distribution found for maturin" in proc.stderr:
        pytest.skip("maturin>=1.12.1, the build backend, is not to be had from the package index")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    wheels = list(out.glob("barque-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build_wheel(tmp_path_factory.mktemp("wheelhouse"))


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    base = tmp_path_factory.mktemp("installed")
    home, venv, servers = base / "home", base / "venv", base / "forkserver"
    home.mkdir()
    servers.mkdir(mode=0o700)
    clean = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(home), "LANG": "C.UTF-8"}
    # The base interpreter, not the test venv's: nothing of the checkout's install leaks in.
    base_python = Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    subprocess.run([str(base_python), "-m", "venv", str(venv)], check=True, cwd=home, env=clean)
    pip_env = {**clean, **{k: v for k, v in os.environ.items() if k.startswith("PIP_")}}
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)], check=True,
                   cwd=home, env=pip_env, timeout=900)
    inst = Installed(venv, home, servers)
    # The venv's own forkserver (its barque-py), as the front end starts one; with
    # BARQUE_FORKSERVER=require every command below goes through it.
    server = subprocess.Popen([str(venv / "bin" / "barque-py"), "__forkserver__", str(servers)],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, cwd=home, start_new_session=True,
                              env=inst.env(BARQUE_FORKSERVER_IDLE="3600"))
    try:
        wait_for_forkserver(servers)
        yield inst
    finally:
        server.kill()
        server.wait()
        stop_forkserver(servers)


@pytest.fixture(scope="module")
def image(installed: Installed, fixture_images) -> str:  # type: ignore[no-untyped-def]
    ref: str = fixture_images["busybox"].ref
    installed.barque("pull", "-q", ref)
    return ref


def test_the_wheel_holds_the_extension_and_every_executable(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    version = wheel.name.split("-")[1]
    for name in ("barque/_native.abi3.so", "barque/_bin/barque-shim", "barque/_bin/barque-init",
                 "barque/_bin/barque-trampoline", f"barque-{version}.data/scripts/barque",
                 f"barque-{version}.data/scripts/barque-runtime"):
        assert name in names


def test_the_commands_on_path_are_the_native_ones(installed: Installed) -> None:
    assert installed.package.is_relative_to(installed.bin.parent)  # the venv's, not the checkout's
    for name in ("barque", "barque-runtime"):
        path = shutil.which(name, path=installed.env()["PATH"])
        assert path == str(installed.bin / name)
        assert Path(path).read_bytes()[:4] == b"\x7fELF"  # not pip's console script
    python_cli = installed.bin / "barque-py"
    assert python_cli.read_text().startswith(f"#!{installed.bin / 'python'}")
    version = installed.command("barque", "--version")
    assert version.stdout.startswith("barque version ")
    info = installed.barque("info")
    assert f" Fast path:  forkserver in use (dir {installed.forkserver_dir})\n" in info.stdout


def test_every_shipped_executable_needs_only_glibc(installed: Installed) -> None:
    shipped = [installed.bin / "barque", installed.bin / "barque-runtime",
               installed.package / "_bin" / "barque-shim", installed.package / "_native.abi3.so"]
    for path in shipped:
        ldd = subprocess.run(["ldd", str(path)], capture_output=True, text=True, check=True)
        libraries = [line.split()[0] for line in ldd.stdout.splitlines() if line.strip()]
        assert libraries, ldd.stdout
        assert all(lib.rsplit("/", 1)[-1].startswith(GLIBC) for lib in libraries), (path, ldd.stdout)
    for name in ("barque-init", "barque-trampoline"):  # they run in images without a libc
        ldd = subprocess.run(["ldd", str(installed.package / "_bin" / name)], capture_output=True,
                             text=True)
        out = ldd.stdout + ldd.stderr
        assert "not a dynamic executable" in out or "statically linked" in out, out


def test_detached_logs_exec_stop_rm(installed: Installed, image: str) -> None:
    script = "trap 'echo bye; exit 0' TERM; echo started; while :; do sleep 0.1; done"
    installed.barque("run", "-d", *NET, "--name", "wheel-web", image, "sh", "-c", script)
    try:
        deadline = time.monotonic() + 60
        logs = installed.barque("logs", "wheel-web")
        while "started" not in logs.stdout and time.monotonic() < deadline:
            time.sleep(0.1)
            logs = installed.barque("logs", "wheel-web")
        assert logs.stdout == "started\n"
        assert installed.barque("exec", "wheel-web", "sh", "-c", "echo $((6 * 7))").stdout == "42\n"
        assert installed.barque("stop", "wheel-web").stdout == "wheel-web\n"
        state = json.loads(installed.barque("inspect", "wheel-web").stdout)[0]["State"]
        assert (state["Status"], state["ExitCode"]) == ("exited", 0)
        assert installed.barque("logs", "wheel-web").stdout == "started\nbye\n"
    finally:
        installed.barque("rm", "-f", "wheel-web", check=False)
    assert installed.barque("ps", "-a", "-q").stdout == ""


def test_run_with_init(installed: Installed, image: str) -> None:
    r = installed.barque("run", "--rm", "--init", *NET, image, "sh", "-c",
                         "tr '\\0' ' ' < /proc/1/cmdline; echo; exit 7", check=False)
    assert (r.returncode, r.stdout) == (7, "/dev/init -- sh -c tr '\\0' ' ' < /proc/1/cmdline; echo; exit 7 \n")


def test_run_it_on_a_real_terminal(installed: Installed, image: str) -> None:
    term = Terminal(installed.root, "run", "-it", "--rm", *NET, image, "sh",
                    command=[str(installed.bin / "barque")], env=installed.env(TERM="dumb"))
    assert term.command("echo $((2 + 3)); tty", "wheel-done").splitlines() == ["5", "/dev/pts/0"]
    term.write(b"exit 3\r")
    assert term.exit_code(timeout=60) == 3


def test_barque_runtime_runs_a_bundle(installed: Installed, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    installed.command("barque-runtime", "spec", "--bundle", str(bundle))
    config = json.loads((bundle / "config.json").read_text())
    config["root"] = {"path": str(busybox_rootfs(bundle / "rootfs")), "readonly": True}
    config["process"]["terminal"] = False
    config["hostname"] = "bundled"
    config["process"]["args"] = ["sh", "-c", "echo hello from $(hostname); exit 4"]
    (bundle / "config.json").write_text(json.dumps(config))
    state = tmp_path / "state"
    r = installed.command("barque-runtime", "--root", str(state), "run", "--bundle", str(bundle),
                          "wheel-bundle", check=False)
    assert (r.returncode, r.stdout, r.stderr) == (4, "hello from bundled\n", "")
