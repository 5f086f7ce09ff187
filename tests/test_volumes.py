"""Volumes and mounts with real containers, through the CLI as a Docker user drives them:
named volumes shared by running containers, copy-up, binds, tmpfs, --volumes-from,
anonymous volumes, read-only mounts, and every bad input refused with nothing created."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from helpers import BIN, REPO, barque, cli

pytestmark = [
    pytest.mark.registry,
    pytest.mark.skipif(os.geteuid() != 0, reason="containers need root (namespaces, mounts)"),
]

NET = ("--network", "none")


@pytest.fixture(scope="module")
def store(tmp_path_factory, fixture_images):  # type: ignore[no-untyped-def]
    if not (BIN / "barque-shim").exists() and not os.environ.get("BARQUE_LIBEXEC"):
        pytest.fail(f"barque-shim is not in {BIN}: run scripts/setup")
    root = tmp_path_factory.mktemp("volumes") / "root"
    barque(root, "pull", "-q", fixture_images["busybox"].ref)
    barque(root, "pull", "-q", fixture_images["layers"].ref)
    return root


@pytest.fixture
def busybox(fixture_images) -> str:  # type: ignore[no-untyped-def]
    return fixture_images["busybox"].ref


@pytest.fixture
def layers(fixture_images) -> str:  # type: ignore[no-untyped-def]
    return fixture_images["layers"].ref


def run(store: Path, *args: str, check: bool = True,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return barque(store, "run", *NET, *args, check=check, env=env)


def _inspect(store: Path, name: str) -> dict:
    return json.loads(barque(store, "inspect", name).stdout)[0]


def _volumes(store: Path) -> set[str]:
    return set(barque(store, "volume", "ls", "-q").stdout.split())


def _containers(store: Path) -> set[str]:
    return set(barque(store, "ps", "-a", "-q", "--no-trunc").stdout.split())


def _until(predicate, timeout: float = 15.0, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


# -- named volumes ---------------------------------------------------------------------------

def test_two_running_containers_share_a_named_volume_that_outlives_them(store, busybox) -> None:
    assert barque(store, "volume", "create", "test_volume").stdout == "test_volume\n"
    # The reader runs first and waits for the writer's file through the shared volume.
    barque(store, "run", "-d", *NET, "--name", "reader", "-v", "test_volume:/test", busybox,
           "sh", "-c", "while [ ! -e /test/a.txt ]; do sleep 0.05; done; "
           "echo seen $(cat /test/a.txt); sleep 60")
    writer = run(store, "--rm", "-v", "test_volume:/test", busybox, "sh", "-c",
                 "echo from-writer > /test/a.txt; ls /test")
    assert writer.stdout == "a.txt\n"
    _until(lambda: "seen from-writer" in barque(store, "logs", "reader").stdout,
           what="the reader to see the writer's file")
    assert _inspect(store, "reader")["State"]["Running"]

    mounts = _inspect(store, "reader")["Mounts"]
    assert mounts == [{
        "Type": "volume", "Name": "test_volume",
        "Source": str(store / "volumes" / "test_volume" / "_data"), "Destination": "/test",
        "Driver": "local", "Mode": "z", "RW": True, "Propagation": ""}]
    shown = barque(store, "ps", "--filter", "volume=test_volume", "--format", "json").stdout
    assert [json.loads(line)["Names"] for line in shown.splitlines()] == ["reader"]
    assert barque(store, "ps", "-a", "-q", "--filter", "volume=other").stdout == ""

    # In use by a running container: refused, even with -f; the error names the container.
    reader_id = _inspect(store, "reader")["Id"]
    for args in (("volume", "rm", "test_volume"), ("volume", "rm", "-f", "test_volume")):
        refused = barque(store, *args, check=False)
        assert refused.returncode == 1
        assert refused.stderr == (f"Error: remove test_volume: volume is in use - "
                                  f"[{reader_id} (reader)]\n")
    barque(store, "rm", "-f", "-v", "reader")

    assert "test_volume" in _volumes(store)  # a named volume outlives rm -v
    third = run(store, "--rm", "-v", "test_volume:/test", busybox, "cat", "/test/a.txt")
    assert third.stdout == "from-writer\n"
    assert barque(store, "volume", "rm", "test_volume").stdout == "test_volume\n"
    assert "test_volume" not in _volumes(store)
    assert not (store / "volumes" / "test_volume").exists()


def test_volume_create_ls_inspect_and_prune(store) -> None:
    barque(store, "volume", "create", "--label", "tier=db", "labelled")
    again = barque(store, "volume", "create", "--label", "other=x", "labelled")
    assert again.stdout == "labelled\n"  # an existing name is returned unchanged
    info = json.loads(barque(store, "volume", "inspect", "labelled").stdout)[0]
    assert set(info) == {"CreatedAt", "Driver", "Labels", "Mountpoint", "Name", "Options",
                         "Scope"}
    assert info["Labels"] == {"tier": "db"} and info["Driver"] == "local"
    assert info["Mountpoint"] == str(store / "volumes" / "labelled" / "_data")
    assert Path(info["Mountpoint"]).is_dir() and info["Scope"] == "local"
    generated = barque(store, "volume", "create").stdout.strip()
    assert len(generated) == 64 and all(c in "0123456789abcdef" for c in generated)
    assert barque(store, "volume", "ls", "-q", "--filter", "label=tier=db").stdout == \
        "labelled\n"
    assert "labelled" in barque(store, "volume", "ls", "-q", "--filter",
                                "dangling=true").stdout
    table = barque(store, "volume", "ls", "--filter", "name=labell").stdout.splitlines()
    assert table[0].split() == ["DRIVER", "VOLUME", "NAME"] and table[1].split() == \
        ["local", "labelled"]
    missing = barque(store, "volume", "inspect", "nope", check=False)
    assert missing.returncode == 1 and "Error: No such volume: nope\n" in missing.stderr
    # prune without -a keeps named volumes (Docker 23's rule); with -a they go.
    assert "labelled" not in barque(store, "volume", "prune", "-f").stdout
    pruned = barque(store, "volume", "prune", "-f", "-a", "--filter", "label=tier").stdout
    assert pruned.startswith("Deleted Volumes:\nlabelled\n")
    assert "labelled" not in _volumes(store) and generated in _volumes(store)
    barque(store, "volume", "rm", generated)


def test_volume_with_local_driver_options_is_that_filesystem(store, busybox) -> None:
    barque(store, "volume", "create", "--opt", "type=tmpfs", "--opt", "device=tmpfs",
           "--opt", "o=size=1m,mode=1770", "tmpvol")
    info = json.loads(barque(store, "volume", "inspect", "tmpvol").stdout)[0]
    assert info["Options"] == {"type": "tmpfs", "device": "tmpfs", "o": "size=1m,mode=1770"}
    out = run(store, "--rm", "-v", "tmpvol:/t", busybox, "sh", "-c",
              "grep ' /t ' /proc/mounts | cut -d' ' -f1,3; stat -c %a /t")
    assert out.stdout == "tmpfs tmpfs\n1770\n"
    refused = barque(store, "volume", "create", "--opt", "colour=blue", "painted", check=False)
    assert refused.returncode == 1 and refused.stderr == "Error: invalid option key: 'colour'\n"
    assert "painted" not in _volumes(store)
    barque(store, "volume", "rm", "tmpvol")


def test_volume_used_by_a_stopped_container_needs_force(store, busybox) -> None:
    barque(store, "create", *NET, "--name", "holder", "-v", "held:/data", busybox, "true")
    holder = _inspect(store, "holder")["Id"]
    refused = barque(store, "volume", "rm", "held", check=False)
    assert refused.returncode == 1
    assert refused.stderr == f"Error: remove held: volume is in use - [{holder} (holder)]\n"
    assert "held" in _volumes(store)
    assert barque(store, "volume", "rm", "-f", "held").stdout == "held\n"
    assert "held" not in _volumes(store)
    barque(store, "rm", "holder")


# -- copy-up -----------------------------------------------------------------------------------

def test_image_volume_becomes_an_anonymous_volume(store, layers) -> None:
    before = _volumes(store)
    out = run(store, "--name", "imgvol", layers,
              "stat -c '%u:%g %a' /srv/app/data; ls -A /srv/app/data; grep ' /srv/app/data ' "
              "/proc/mounts | cut -d' ' -f4 | cut -d, -f1")
    assert out.stdout.splitlines() == ["0:0 755", "rw"]
    (new,) = _volumes(store) - before
    info = json.loads(barque(store, "volume", "inspect", new).stdout)[0]
    assert info["Labels"] == {"com.docker.volume.anonymous": ""}
    container = _inspect(store, "imgvol")
    assert container["Config"]["Volumes"] == {"/srv/app/data": {}}
    assert [(m["Type"], m["Name"], m["Destination"]) for m in container["Mounts"]] == \
        [("volume", new, "/srv/app/data")]
    barque(store, "rm", "imgvol")  # without -v: the anonymous volume stays
    assert new in _volumes(store)
    barque(store, "volume", "prune", "-f")
    assert new not in _volumes(store)


def test_copy_up_of_image_content_with_owners_and_modes(store, layers) -> None:
    out = run(store, "--rm", "-v", "copied:/srv/app", "-v", "owned:/srv/app/owned",
              "--entrypoint", "sh", layers, "-c",
              "cat /srv/app/tree/sub/b /srv/app/keep/file; readlink /srv/app/abs-link; "
              "stat -c '%a %u:%g' /srv/app/setuid /srv/app/owned")
    assert out.stdout.splitlines()[-3:] == ["/srv/app/keep/file", "4755 0:0", "755 1000:1000"]
    data = store / "volumes" / "copied" / "_data"
    # "data": the mount point of the image's VOLUME /srv/app/data, made inside the volume.
    assert sorted(os.listdir(data)) == sorted(
        ["abs-link", "data", "greeting.txt", "hard-link", "hard-src", "keep", "opaque", "owned",
         "rel-link", "setuid", "tree"])
    assert os.lstat(data / "setuid").st_mode & 0o7777 == 0o4755
    assert os.readlink(data / "abs-link") == "/srv/app/keep/file"
    assert os.stat(data / "hard-link").st_ino == os.stat(data / "hard-src").st_ino
    owned = os.stat(store / "volumes" / "owned" / "_data")
    assert (owned.st_uid, owned.st_gid) == (1000, 1000)

    # A volume with content is not copied into again.
    (data / "greeting.txt").write_text("changed\n")
    again = run(store, "--rm", "-v", "copied:/srv/app", "--entrypoint", "cat", layers,
                "/srv/app/greeting.txt")
    assert again.stdout == "changed\n"

    # nocopy: the new volume stays empty.
    empty = run(store, "--rm", "-v", "nocopied:/srv/app/tree:nocopy", "--entrypoint", "ls",
                layers, "-A", "/srv/app/tree")
    assert empty.stdout == ""
    assert os.listdir(store / "volumes" / "nocopied" / "_data") == []
    mount_nocopy = run(store, "--rm", "--mount",
                       "type=volume,source=nocopied2,target=/srv/app/tree,volume-nocopy",
                       "--entrypoint", "ls", layers, "-A", "/srv/app/tree")
    assert mount_nocopy.stdout == ""
    for name in ("copied", "owned", "nocopied", "nocopied2"):
        barque(store, "volume", "rm", name)


# -- binds ---------------------------------------------------------------------------------

def test_bind_mount_creates_the_host_directory_owned_by_the_sudo_user(store, busybox,
                                                                      tmp_path) -> None:
    target = tmp_path / "made" / "by" / "bind"
    out = run(store, "--rm", "-v", f"{target}:/data", busybox, "sh", "-c",
              "echo hi > /data/f; cat /data/f",
              env={"SUDO_UID": "1234", "SUDO_GID": "2345"})
    assert out.stdout == "hi\n"
    for path in (tmp_path / "made", tmp_path / "made" / "by", target):
        st = os.stat(path)
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (1234, 2345, 0o755), path
    assert (target / "f").read_text() == "hi\n"

    env = {k: v for k, v in os.environ.items() if not k.startswith("SUDO_")}
    mine = tmp_path / "mine"
    proc = subprocess.run([*cli(), "--root", str(store), "run", *NET,
                           "--rm", "-v", f"{mine}:/data", busybox, "true"], env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert os.stat(mine).st_uid == os.getuid()

    inspect_me = run(store, "-d", "-v", f"{target}:/data:ro", busybox, "sleep", "30")
    mounts = _inspect(store, inspect_me.stdout.strip())["Mounts"]
    assert mounts == [{"Type": "bind", "Source": str(target), "Destination": "/data",
                       "Mode": "ro", "RW": False, "Propagation": "rprivate"}]
    barque(store, "rm", "-f", inspect_me.stdout.strip())


def test_bind_mount_of_a_file_on_a_new_path_and_over_an_image_file(store, busybox,
                                                                    tmp_path) -> None:
    host = tmp_path / "conf.txt"
    host.write_text("from host\n")
    out = run(store, "--rm", "-v", f"{host}:/etc/new/app.conf:ro", "-v", f"{host}:/etc/passwd",
              busybox, "sh", "-c", "cat /etc/new/app.conf /etc/passwd; test -f /etc/new/app.conf"
              " && echo file; echo x >> /etc/new/app.conf", check=False)
    assert out.returncode == 1 and out.stdout == "from host\nfrom host\nfile\n"
    assert "Read-only file system" in out.stderr
    assert host.read_text() == "from host\n"


def test_mount_flag_refuses_a_missing_bind_source(store, busybox, tmp_path) -> None:
    missing = tmp_path / "absent"
    out = run(store, "--mount", f"type=bind,source={missing},target=/data", busybox, "true",
              check=False)
    assert out.returncode == 125
    assert out.stderr == ('Error: invalid mount config for type "bind": bind source path '
                          f"does not exist: {missing}\n")
    assert not missing.exists()


# -- read-only ----------------------------------------------------------------------------

def test_read_only_mounts_stay_read_only_after_a_remount_attempt(store, busybox,
                                                                 tmp_path) -> None:
    host = tmp_path / "ro-host"
    host.mkdir()
    script = ("touch /data/x 2>&1; mount -o remount,rw /data 2>/dev/null && echo remounted; "
              "touch /data/y 2>&1; grep ' /data ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1")
    for how in (("-v", "rovol:/data:ro"), ("-v", f"{host}:/data:ro"),
                ("--mount", f"type=bind,source={host},target=/data,readonly"),
                ("--mount", "type=volume,source=rovol,target=/data,ro=true")):
        out = run(store, "--rm", *how, busybox, "sh", "-c", script, check=False)
        lines = out.stdout.splitlines()
        assert lines == ["touch: /data/x: Read-only file system",
                         "touch: /data/y: Read-only file system", "ro"], (how, out)
    assert os.listdir(host) == []
    assert os.listdir(store / "volumes" / "rovol" / "_data") == []
    barque(store, "volume", "rm", "rovol")


# -- tmpfs -------------------------------------------------------------------------------

def test_tmpfs_size_and_mode_are_enforced(store, busybox) -> None:
    script = ("stat -c %a /scratch; dd if=/dev/zero of=/scratch/f bs=1024 count=2048 "
              "2>&1 | grep -o 'No space left on device' | head -1; stat -c %s /scratch/f")
    out = run(store, "--rm", "--tmpfs", "/scratch:size=1m,mode=1777", busybox, "sh", "-c",
              script)
    assert out.stdout.splitlines()[:2] == ["1777", "No space left on device"]
    assert int(out.stdout.splitlines()[-1]) <= 1 << 20
    out = run(store, "--rm", "--mount", "type=tmpfs,target=/scratch,tmpfs-size=1m,"
              "tmpfs-mode=700", busybox, "sh", "-c", script)
    assert out.stdout.splitlines()[:2] == ["700", "No space left on device"]
    flags = run(store, "--rm", "--tmpfs", "/t", busybox, "sh", "-c",
                "grep ' /t ' /proc/mounts | cut -d' ' -f4").stdout
    assert {"rw", "nosuid", "nodev", "noexec"} <= set(flags.strip().split(","))


# -- volumes-from --------------------------------------------------------------------------

def test_volumes_from_shares_volumes_and_binds(store, busybox, tmp_path) -> None:
    host = tmp_path / "shared-bind"
    host.mkdir()
    (host / "h.txt").write_text("host\n")
    barque(store, "create", *NET, "--name", "source-c", "-v", "vf:/data", "-v", f"{host}:/h",
           busybox, "true")
    out = run(store, "--rm", "--volumes-from", "source-c", busybox, "sh", "-c",
              "echo w > /data/w.txt && cat /h/h.txt")
    assert out.stdout == "host\n"
    assert (store / "volumes" / "vf" / "_data" / "w.txt").read_text() == "w\n"
    ro = run(store, "--name", "reader-c", "--volumes-from", "source-c:ro", busybox, "sh",
             "-c", "cat /data/w.txt; touch /data/z 2>&1; touch /h/z 2>&1", check=False)
    assert ro.stdout.splitlines() == ["w", "touch: /data/z: Read-only file system",
                                      "touch: /h/z: Read-only file system"]
    mounts = {m["Destination"]: m for m in _inspect(store, "reader-c")["Mounts"]}
    assert mounts["/data"]["Name"] == "vf" and mounts["/data"]["RW"] is False
    assert _inspect(store, "reader-c")["HostConfig"]["VolumesFrom"] == ["source-c:ro"]
    missing = run(store, "--volumes-from", "no-such", busybox, "true", check=False)
    assert missing.returncode == 125 and missing.stderr == "Error: No such container: no-such\n"
    barque(store, "rm", "reader-c", "source-c")
    barque(store, "volume", "rm", "vf")


# -- anonymous volumes ---------------------------------------------------------------------

def test_anonymous_volumes_go_with_rm_v_and_run_rm_and_stay_otherwise(store, busybox) -> None:
    def made_by(*args: str) -> set[str]:
        before = _volumes(store)
        run(store, *args)
        return _volumes(store) - before

    kept = made_by("--name", "anon-kept", "-v", "/anon", busybox, "true")
    assert len(kept) == 1
    barque(store, "rm", "anon-kept")
    assert kept <= _volumes(store)

    removed = made_by("--name", "anon-gone", "-v", "/anon", "-v", "named-stays:/named",
                      busybox, "true")
    assert len(removed) == 2 and "named-stays" in removed
    barque(store, "rm", "-v", "anon-gone")
    assert _volumes(store) & removed == {"named-stays"}

    assert made_by("--rm", "-v", "/anon", "-v", "named-stays:/named", busybox,
                   "true") == set()
    # Detached --rm: the supervisor's exit command removes the container and its volumes.
    before = _volumes(store)
    cid = run(store, "-d", "--rm", "-v", "/anon", busybox, "true").stdout.strip()
    _until(lambda: cid not in _containers(store), what="the --rm container to go")
    _until(lambda: _volumes(store) == before, what="its anonymous volume to go")
    barque(store, "volume", "rm", "named-stays", *kept)


# -- bad input ---------------------------------------------------------------------------

def test_each_bad_input_is_one_clear_error_and_creates_nothing(store, busybox,
                                                                tmp_path) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    cases = [
        (["-v", "vol:relative/path"], "mount path must be absolute"),
        (["-v", "vol:/"], "destination can't be '/'"),
        (["--mount", "type=volume,source=vol,target=/"], "destination can't be '/'"),
        (["-v", f"{a_file}/sub:/data"], f"{a_file} is a file, not a directory"),
        (["-v", f"{a_file}:/bin"], "a directory is needed there"),
        (["-v", "vol:/data:bogus"], "invalid mode: bogus"),
        (["--mount", "type=volume,source=vol,target=/data,bogus=1"],
         "unexpected key 'bogus' in 'bogus=1'"),
        (["--tmpfs", "/t:bogus=1"], 'invalid tmpfs option "bogus=1"'),
        (["--mount", "type=tmpfs,target=/t,tmpfs-size=lots"], "invalid value for tmpfs-size"),
        (["-v", "bad name:/data"], 'includes invalid characters for a local volume name'),
        (["-v", "..:/data"], "includes invalid characters for a local volume name"),
        (["-v", "x" * 256 + ":/data"], "is too long"),
        (["-v", "vol1:/data", "-v", "vol2:/data"], "Duplicate mount point: /data"),
        (["-v", "vol1:/data", "--tmpfs", "/data/"], "Duplicate mount point: /data"),
        (["-v", "vol:/data", "-v", f"{tmp_path}/never-made:/data"],
         "Duplicate mount point: /data"),
    ]
    containers, volumes = _containers(store), _volumes(store)
    for args, expected in cases:
        out = run(store, *args, busybox, "true", check=False)
        assert out.returncode == 125, (args, out)
        assert out.stderr.startswith("Error: ") and out.stderr.count("\n") == 1, (args, out)
        assert expected in out.stderr, (args, out.stderr)
    assert _containers(store) == containers
    assert _volumes(store) == volumes
    assert not (tmp_path / "never-made").exists()
    for name in ("a/b", "..", "_x", "a b", "x" * 256, "a"):
        out = barque(store, "volume", "create", name, check=False)
        assert out.returncode == 1 and out.stderr.startswith("Error: "), (name, out)
        assert out.stderr.count("\n") == 1
    assert _volumes(store) == volumes


# -- symlinks in the image -----------------------------------------------------------------

@pytest.fixture(scope="module")
def symlink_image(registry, tmp_path_factory) -> str:  # type: ignore[no-untyped-def]
    """A busybox image whose /data is a symlink to /etc (absolute, as a hostile image would
    make it) and /rel a relative one climbing out (../../../etc)."""
    sys.path.insert(0, str(REPO / "scripts"))
    import mkimage
    from registry_server import skopeo_copy

    work = tmp_path_factory.mktemp("symlink-image")
    rootfs = work / "rootfs"
    mkimage.busybox_rootfs(rootfs)
    (rootfs / "data").symlink_to("/etc")
    (rootfs / "rel").symlink_to("../../../etc")
    mkimage.build(work / "layout", [rootfs], "1", ["sh"], level=1)
    ref = registry.ref("tests/symlinked-target:1")
    skopeo_copy(f"oci:{work / 'layout'}:1", ref)
    return ref


def test_a_symlinked_mount_target_stays_inside_the_rootfs(store, symlink_image,
                                                          tmp_path) -> None:
    marker = f"barque-marker-{uuid.uuid4().hex}"
    host = tmp_path / "bind"
    host.mkdir()
    for target in ("/data", "/rel"):
        out = run(store, "--rm", "-v", f"symvol:{target}", "-v", f"{host}:/mnt/b",
                  symlink_image, "sh", "-c",
                  f"echo inside > {target}/{marker}; cat /etc/{marker}; ls /etc/passwd")
        assert out.stdout == "inside\n/etc/passwd\n", out
        assert not os.path.exists(f"/etc/{marker}")
        data = store / "volumes" / "symvol" / "_data"
        # Copy-up followed the link inside the image: the image's /etc, not the host's.
        assert (data / marker).read_text() == "inside\n"
        assert (data / "passwd").read_text().startswith("root:x:0:0:root:/root:/bin/sh\napp:")
        barque(store, "volume", "rm", "symvol")
    out = run(store, "--rm", "--tmpfs", "/data", symlink_image, "sh", "-c",
              f"touch /data/{marker}; ls /etc")
    # The tmpfs covers the image's /etc (only the container's own hostname, hosts and
    # resolv.conf are bound into it), not the host's.
    assert out.stdout.split() == [marker, "hostname", "hosts", "resolv.conf"]
    assert not os.path.exists(f"/etc/{marker}")


# -- Python API ----------------------------------------------------------------------------

def test_python_api(store, busybox) -> None:
    import barque as barque_pkg
    from barque.containers import CreateOptions
    from barque.errors import VolumeInUseError, VolumeNotFoundError
    from barque.runtime.spec import RunOptions

    engine = barque_pkg.Engine(root=store)
    volume = engine.volumes.create("api-vol", labels={"k": "v"})
    assert engine.volumes.get("api-vol").attrs["Labels"] == {"k": "v"}
    assert "api-vol" in [v.name for v in engine.volumes.list({"label": ["k=v"]})]
    code = engine.containers.run(
        busybox, ["sh", "-c", "echo api > /d/f && test -w /t"],
        options=RunOptions(network="none"), create=CreateOptions(auto_remove=True),
        volumes={"api-vol": {"bind": "/d", "mode": "rw"}}, mounts=["type=tmpfs,target=/t"])
    assert code == 0
    assert (volume.mountpoint / "f").read_text() == "api\n"
    with engine.containers.run(busybox, ["sleep", "30"], options=RunOptions(network="none"),
                               volumes=["api-vol:/d:ro"], detach=True) as c:
        with pytest.raises(VolumeInUseError, match=c.id):
            engine.volumes.remove("api-vol", force=True)
    engine.volumes.remove("api-vol")
    with pytest.raises(VolumeNotFoundError):
        engine.volumes.get("api-vol")
    made = engine.volumes.create(labels={"prune-me": ""})  # a generated name, not anonymous
    assert made.name not in engine.volumes.prune()[0]
    assert engine.volumes.prune(all=True, filters={"label": ["prune-me"]})[0] == [made.name]
    engine.close()
