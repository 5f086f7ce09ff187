"""barque.runtime: image config + ``docker run`` options -> OCI runtime spec.

Pure logic against Docker's rules (moby ``daemon/oci_linux.go``, ``oci/defaults.go``,
``profiles/seccomp``; runc's ``user.GetExecUser``), plus one real run of a generated spec
with runc to prove a runtime accepts it and applies the security settings.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from msgspec.structs import replace
from barque.errors import BarqueError, InvalidArgumentError
from barque.runtime import seccomp, spec
from barque.runtime.seccomp import convert_docker_profile, default_docker_profile, default_profile
from barque.runtime.spec import (
    CAPABILITIES,
    DEFAULT_CAPABILITIES,
    DEFAULT_PATH,
    RunOptions,
    build_spec,
    parse_security_opts,
    resolve_args,
    resolve_capabilities,
)
from barque.runtime.spec import available_capabilities as REAL_AVAILABLE
from barque.runtime.users import ExecUser, resolve_user

REPO = Path(__file__).resolve().parent.parent
CID = "0123456789abcdef" * 4

PASSWD = b"""root:x:0:0:root:/root:/bin/sh
app:x:1000:1000:app:/home/app:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
dup:x:1000:2000:second entry for uid 1000:/x:/bin/sh
"""
GROUP = b"""root:x:0:
wheel:x:10:other,app
audio:x:29:app
app:x:1000:
nogroup:x:65534:
"""


def fake_rootfs(files: dict[str, bytes]) -> Callable[[str], bytes | None]:
    return files.get


ETC = fake_rootfs({"/etc/passwd": PASSWD, "/etc/group": GROUP})
EMPTY = fake_rootfs({})


@pytest.fixture(autouse=True)
def all_caps_available(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the tests independent of the sandbox's own bounding set."""
    monkeypatch.setattr(spec, "available_capabilities", lambda: CAPABILITIES)


def build(image: dict[str, Any] | None = None, lookup: Callable[[str], bytes | None] = ETC,
          **opts: Any) -> dict[str, Any]:
    image = {"Cmd": ["sh"]} if image is None else image
    return build_spec(image, RunOptions(**opts), lookup, CID)


# --- process.args ----------------------------------------------------------------------------

ARGS_TABLE: list[tuple[list[str] | None, list[str] | None, list[str] | None,
                       list[str] | None, list[str] | None]] = [
    # image Entrypoint, image Cmd, run command, --entrypoint, expected (None: error)
    (None, ["sh"], None, None, ["sh"]),
    (None, ["sh"], ["echo", "hi"], None, ["echo", "hi"]),
    (["/ep"], ["a"], None, None, ["/ep", "a"]),
    (["/ep"], ["a"], ["b", "c"], None, ["/ep", "b", "c"]),
    (["/ep"], None, None, None, ["/ep"]),
    (["/ep"], ["a"], None, ["/x"], ["/x"]),               # --entrypoint drops the image Cmd
    (["/ep"], ["a"], ["b"], ["/x", "-v"], ["/x", "-v", "b"]),
    (["/ep"], ["a"], ["b"], [""], ["b"]),                 # --entrypoint "" resets it
    (["/ep"], ["a"], ["b"], [], ["b"]),
    (["/ep"], ["a"], None, [""], None),                   # ...and then nothing is left
    (None, ["sh"], None, [], None),
    (None, None, None, None, None),
    ([], [], [], None, None),
    (None, None, ["true"], None, ["true"]),
]


@pytest.mark.parametrize(("ep", "cmd", "command", "entrypoint", "expected"), ARGS_TABLE)
def test_args_follow_dockers_rules(ep: list[str] | None, cmd: list[str] | None,
                                   command: list[str] | None, entrypoint: list[str] | None,
                                   expected: list[str] | None) -> None:
    image = {"Entrypoint": ep, "Cmd": cmd}
    options = RunOptions(command=command, entrypoint=entrypoint)
    if expected is None:
        with pytest.raises(InvalidArgumentError, match=r"^No command specified$"):
            resolve_args(image, options)
        with pytest.raises(BarqueError):
            build_spec(image, options, ETC, CID)
    else:
        assert resolve_args(image, options) == expected
        assert build_spec(image, options, ETC, CID)["process"]["args"] == expected


# --- process.env -----------------------------------------------------------------------------

def test_env_defaults_path_hostname_and_home() -> None:
    env = build()["process"]["env"]
    assert env == [f"PATH={DEFAULT_PATH}", f"HOSTNAME={CID[:12]}", "HOME=/root"]


def test_env_image_then_overrides_by_key() -> None:
    image = {"Cmd": ["sh"], "Env": ["PATH=/opt/bin:/bin", "FOO=image", "KEEP=1"]}
    env = build(image, env=["FOO=run", "NEW=x=y", "EMPTY="], tty=True,
                hostname="web")["process"]["env"]
    assert env == ["PATH=/opt/bin:/bin", "HOSTNAME=web", "TERM=xterm", "FOO=run", "NEW=x=y",
                   "EMPTY=", "KEEP=1", "HOME=/root"]


def test_env_bare_key_unsets_and_home_is_not_overridden() -> None:
    image = {"Cmd": ["sh"], "Env": ["FOO=1", "HOME=/srv"]}
    env = build(image, env=["FOO", "HOSTNAME"])["process"]["env"]
    assert env == [f"PATH={DEFAULT_PATH}", "HOME=/srv"]


@pytest.mark.parametrize("bad", ["=x", ""])
def test_env_empty_key_is_refused(bad: str) -> None:
    with pytest.raises(InvalidArgumentError, match="invalid environment variable"):
        build(env=[bad])


def test_env_home_follows_the_user() -> None:
    assert "HOME=/home/app" in build(user="app")["process"]["env"]
    assert "HOME=/" in build(user="4242")["process"]["env"]


# --- users -----------------------------------------------------------------------------------

USER_TABLE: list[tuple[str | None, ExecUser]] = [
    (None, ExecUser(0, 0, (), "/root")),
    ("", ExecUser(0, 0, (), "/root")),
    ("root", ExecUser(0, 0, (), "/root")),
    ("0", ExecUser(0, 0, (), "/root")),
    ("1000", ExecUser(1000, 1000, (10, 29), "/home/app")),   # first passwd match wins
    ("app", ExecUser(1000, 1000, (10, 29), "/home/app")),
    ("app:app", ExecUser(1000, 1000, (), "/home/app")),      # explicit group: no extras
    ("1000:1000", ExecUser(1000, 1000, (), "/home/app")),
    ("app:wheel", ExecUser(1000, 10, (), "/home/app")),
    ("app:4243", ExecUser(1000, 4243, (), "/home/app")),
    ("nobody", ExecUser(65534, 65534, (), "/nonexistent")),
    ("4242", ExecUser(4242, 0, (), "/")),                    # numeric, no entry: fine
    ("4242:4243", ExecUser(4242, 4243, (), "/")),
    ("4242:audio", ExecUser(4242, 29, (), "/")),
    (":wheel", ExecUser(0, 10, (), "/root")),
]


@pytest.mark.parametrize(("user", "expected"), USER_TABLE)
def test_user_resolution(user: str | None, expected: ExecUser) -> None:
    assert resolve_user(user, ETC) == expected


@pytest.mark.parametrize(("user", "message"), [
    ("ghost", "unable to find user ghost: no matching entries in passwd file"),
    ("app:ghosts", "unable to find group ghosts: no matching entries in group file"),
    ("-1", "uids and gids must be in range"),
    ("1000:99999999999", "uids and gids must be in range"),
    (" 1000", "unable to find user  1000"),   # Atoi does not trim
])
def test_user_errors(user: str, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match="^" + message.replace("(", r"\(")):
        resolve_user(user, ETC)


def test_user_without_etc_files() -> None:
    assert resolve_user("1234:5678", EMPTY) == ExecUser(1234, 5678, (), "/")
    assert resolve_user(None, EMPTY) == ExecUser(0, 0, (), "/")
    with pytest.raises(InvalidArgumentError, match="unable to find user app"):
        resolve_user("app", EMPTY)
    only_passwd = fake_rootfs({"/etc/passwd": PASSWD})
    assert resolve_user("app", only_passwd) == ExecUser(1000, 1000, (), "/home/app")


def test_user_in_spec_uses_run_option_over_image_user() -> None:
    image = {"Cmd": ["sh"], "User": "nobody"}
    # Docker lists the primary gid among the supplementary groups too (CVE-2022-36109).
    assert build(image)["process"]["user"] == {
        "uid": 65534, "gid": 65534, "additionalGids": [65534]}
    assert build(image, user="app")["process"]["user"] == {
        "uid": 1000, "gid": 1000, "additionalGids": [1000, 10, 29]}


def test_user_lines_are_parsed_leniently() -> None:
    files = fake_rootfs({"/etc/passwd": b"# comment\n\n  short:x:7\nbad:x:zz:qq::\n",
                         "/etc/group": b"g:x:70: short , ,other\n"})
    assert resolve_user("short", files) == ExecUser(7, 0, (70,), "/")
    assert resolve_user("bad", files) == ExecUser(0, 0, (), "/")


# --- capabilities ----------------------------------------------------------------------------

def caps_of(**opts: Any) -> dict[str, list[str]]:
    caps: dict[str, list[str]] = build(**opts)["process"]["capabilities"]
    return caps


def test_default_capabilities_are_dockers_14() -> None:
    caps = caps_of()
    assert set(caps["bounding"]) == set(DEFAULT_CAPABILITIES) and len(DEFAULT_CAPABILITIES) == 14
    assert caps["effective"] == caps["permitted"] == caps["bounding"]
    assert caps["inheritable"] == [] and caps["ambient"] == []   # CVE-2022-24769
    mask = sum(1 << CAPABILITIES.index(c) for c in caps["bounding"])
    assert f"{mask:016x}" == "00000000a80425fb"


def test_non_root_user_gets_only_the_bounding_set() -> None:
    caps = caps_of(user="app")
    assert set(caps["bounding"]) == set(DEFAULT_CAPABILITIES)
    assert caps["effective"] == caps["permitted"] == caps["inheritable"] == caps["ambient"] == []


@pytest.mark.parametrize(("add", "drop", "expected"), [
    (["sys_admin"], [], set(DEFAULT_CAPABILITIES) | {"CAP_SYS_ADMIN"}),
    (["CAP_NET_ADMIN", "Sys_Ptrace"], ["chown", "CAP_KILL"],
     set(DEFAULT_CAPABILITIES) - {"CAP_CHOWN", "CAP_KILL"} | {"CAP_NET_ADMIN", "CAP_SYS_PTRACE"}),
    ([], ["ALL"], set()),
    (["chown", "kill"], ["all"], {"CAP_CHOWN", "CAP_KILL"}),
    (["ALL"], [], set(CAPABILITIES)),
    (["all"], ["SYS_ADMIN", "net_raw"], set(CAPABILITIES) - {"CAP_SYS_ADMIN", "CAP_NET_RAW"}),
    (["chown"], [], set(DEFAULT_CAPABILITIES)),   # adding a default is not a duplicate
])
def test_cap_add_and_drop(add: list[str], drop: list[str], expected: set[str]) -> None:
    caps = resolve_capabilities(add, drop)
    assert set(caps) == expected and len(caps) == len(expected)
    assert caps == sorted(caps, key=CAPABILITIES.index)


@pytest.mark.parametrize(("add", "drop", "bad"), [
    (["CAP_FLY"], [], "CAP_FLY"), ([], ["sys_adminn"], "sys_adminn"), (["chown", "x"], [], "'x'"),
])
def test_unknown_capability_is_named(add: list[str], drop: list[str], bad: str) -> None:
    with pytest.raises(InvalidArgumentError, match="unknown capability") as info:
        build(cap_add=add, cap_drop=drop)
    assert bad in str(info.value)


def test_privileged_gets_every_available_capability(monkeypatch: pytest.MonkeyPatch) -> None:
    assert caps_of(privileged=True)["bounding"] == list(CAPABILITIES)
    # A sandbox without CAP_SYS_RESOURCE cannot hand it out: privileged leaves it out and
    # asking for it is an error up front rather than a runtime failure.
    fewer = tuple(c for c in CAPABILITIES if c != "CAP_SYS_RESOURCE")
    monkeypatch.setattr(spec, "available_capabilities", lambda: fewer)
    assert caps_of(privileged=True)["bounding"] == list(fewer)
    assert "CAP_SYS_RESOURCE" not in resolve_capabilities(["ALL"], [])
    with pytest.raises(InvalidArgumentError, match="not available in the current environment"):
        resolve_capabilities(["SYS_RESOURCE"], [])
    assert "CAP_SYS_RESOURCE" not in resolve_capabilities([], ["SYS_RESOURCE"])


def test_available_capabilities_reads_this_process() -> None:
    REAL_AVAILABLE.cache_clear()
    caps = REAL_AVAILABLE()
    assert caps and set(caps) <= set(CAPABILITIES)
    assert list(caps) == sorted(caps, key=CAPABILITIES.index)
    assert len(caps) <= spec.last_cap() + 1


# --- mounts, paths, namespaces, devices -------------------------------------------------------

def test_default_mounts_masked_and_readonly_paths() -> None:
    s = build()
    by_dest = {m["destination"]: m for m in s["mounts"]}
    assert list(by_dest) == ["/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup",
                             "/dev/mqueue", "/dev/shm"]
    assert by_dest["/dev/pts"]["options"] == ["nosuid", "noexec", "newinstance",
                                              "ptmxmode=0666", "mode=0620", "gid=5"]
    assert "ro" in by_dest["/sys"]["options"] and "ro" in by_dest["/sys/fs/cgroup"]["options"]
    assert "size=65536k" in by_dest["/dev/shm"]["options"]
    linux = s["linux"]
    assert set(linux["maskedPaths"]) == {
        "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
        "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
        "/sys/firmware", "/sys/devices/virtual/powercap"}
    assert linux["readonlyPaths"] == ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                                      "/proc/sysrq-trigger"]
    rules = linux["resources"]["devices"]
    assert rules[0] == {"allow": False, "access": "rwm"}
    allowed = {(r["major"], r.get("minor")) for r in rules[1:] if "major" in r}
    assert {(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1), (5, 2), (136, None),
            (10, 200)} == allowed
    assert linux["devices"] == []


def test_caller_mounts_come_after_the_defaults() -> None:
    extra = {"destination": "/data", "type": "bind", "source": "/srv/data",
             "options": ["rbind", "rw"]}
    mounts = build(mounts=[extra])["mounts"]
    assert mounts[-1] == extra and len(mounts) == 8
    with pytest.raises(InvalidArgumentError, match="destination"):
        build(mounts=[{"destination": "data"}])


def test_privileged_relaxes_paths_mounts_devices_and_seccomp() -> None:
    s = build(privileged=True)
    assert s["linux"]["maskedPaths"] == [] and s["linux"]["readonlyPaths"] == []
    by_dest = {m["destination"]: m for m in s["mounts"]}
    assert "ro" not in by_dest["/sys"]["options"]
    assert "ro" not in by_dest["/sys/fs/cgroup"]["options"]
    assert s["linux"]["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    assert "seccomp" not in s["linux"]
    assert all(d["path"].startswith("/dev/") and d["type"] in "cb" for d in s["linux"]["devices"])


def test_device_flag_adds_the_node_and_its_rule_after_the_defaults() -> None:
    null = os.stat("/dev/null")
    s = build(devices=["/dev/null:/dev/n:rw"])
    assert s["linux"]["devices"] == [
        {"path": "/dev/n", "type": "c", "major": 1, "minor": 3,
         "fileMode": null.st_mode & 0o7777, "uid": null.st_uid, "gid": null.st_gid}]
    rules = s["linux"]["resources"]["devices"]
    assert rules[0] == {"allow": False, "access": "rwm"}
    assert rules[-1] == {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"}
    # privileged: every host device, allow-all first, the flag's own rule after it
    p = build(privileged=True, devices=["/dev/null:/dev/n"])
    assert p["linux"]["resources"]["devices"][0] == {"allow": True, "access": "rwm"}
    assert p["linux"]["devices"][-1]["path"] == "/dev/n"
    with pytest.raises(InvalidArgumentError, match="bad mode specified: rx"):
        build(devices=["/dev/null:/dev/n:rx"])
    with pytest.raises(InvalidArgumentError, match="under /dev only"):
        build(devices=["/dev/null:/n"])


def test_device_flag_with_a_directory_takes_every_node_under_it(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("making device nodes needs root")
    (tmp_path / "snd").mkdir()
    os.mknod(tmp_path / "snd" / "ctl", 0o660 | stat.S_IFCHR, os.makedev(116, 7))
    (tmp_path / "snd" / "readme").write_text("not a device\n")
    s = build(devices=[f"{tmp_path}/snd:/dev/snd:rw"])
    assert [(d["path"], d["major"], d["minor"]) for d in s["linux"]["devices"]] == [
        ("/dev/snd/ctl", 116, 7)]
    assert s["linux"]["resources"]["devices"][-1] == {
        "allow": True, "type": "c", "major": 116, "minor": 7, "access": "rw"}
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidArgumentError, match="not a device node"):
        build(devices=[f"{tmp_path}/empty:/dev/empty"])


def test_namespaces_and_network_host() -> None:
    s = build()
    assert [n["type"] for n in s["linux"]["namespaces"]] == [
        "pid", "network", "ipc", "uts", "mount", "cgroup"]
    assert s["hostname"] == CID[:12]
    host = build(network="host")
    assert "network" not in [n["type"] for n in host["linux"]["namespaces"]]
    assert host["hostname"] == os.uname().nodename
    assert "sysctl" not in host["linux"]
    assert build(network="host", hostname="box")["hostname"] == "box"
    with pytest.raises(InvalidArgumentError, match="network mode 'bridge'"):
        build(network="bridge")


@pytest.mark.parametrize("bad", ["", "../x", "a/b", ".hidden", "a b"])
def test_bad_container_id_is_refused(bad: str) -> None:
    with pytest.raises(InvalidArgumentError, match="invalid container ID"):
        build_spec({"Cmd": ["sh"]}, RunOptions(), ETC, bad)


@pytest.mark.parametrize("bad", ["a b", "x" * 65, "a/b"])
def test_bad_hostname_is_refused(bad: str) -> None:
    with pytest.raises(InvalidArgumentError, match="invalid hostname"):
        build(hostname=bad)


def test_root_readonly_cgroups_path_annotation_and_version() -> None:
    s = build(read_only=True)
    assert s["root"] == {"path": "rootfs", "readonly": True}
    assert build()["root"]["readonly"] is False
    assert s["ociVersion"] == "1.0.2-dev"
    assert s["annotations"] == {"org.barque.container.id": CID}
    assert s["linux"]["cgroupsPath"] == f"/barque/{CID}"
    assert s["process"]["terminal"] is False and build(tty=True)["process"]["terminal"] is True
    json.dumps(s)  # plain JSON data


@pytest.mark.parametrize(("image_dir", "run_dir", "expected"), [
    (None, None, "/"),
    ("/app", None, "/app"),
    ("/app", "/work", "/work"),
    ("/a/../../b/./c/", None, "/b/c"),
    ("//x", None, "/x"),
])
def test_working_directory(image_dir: str | None, run_dir: str | None, expected: str) -> None:
    image = {"Cmd": ["sh"], "WorkingDir": image_dir}
    assert build(image, workdir=run_dir)["process"]["cwd"] == expected


@pytest.mark.parametrize("hostile", ["../../../etc", "app", "./x", "x/../../..", "/a\0b"])
def test_relative_or_hostile_working_directory_is_refused(hostile: str) -> None:
    with pytest.raises(InvalidArgumentError, match="needs to be an absolute path"):
        build({"Cmd": ["sh"], "WorkingDir": hostile})
    with pytest.raises(InvalidArgumentError, match="needs to be an absolute path"):
        build(workdir=hostile)


# --- rlimits ---------------------------------------------------------------------------------

def test_nofile_never_above_the_current_hard_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    (limit,) = build()["process"]["rlimits"]
    assert limit["type"] == "RLIMIT_NOFILE" and limit["soft"] == limit["hard"]
    assert limit["hard"] <= 1048576
    assert hard == resource.RLIM_INFINITY or limit["hard"] <= hard
    monkeypatch.setattr(resource, "getrlimit", lambda _: (1024, 4096))
    assert build()["process"]["rlimits"][0] == {"type": "RLIMIT_NOFILE", "hard": 4096,
                                                "soft": 4096}
    monkeypatch.setattr(resource, "getrlimit", lambda _: (1024, resource.RLIM_INFINITY))
    assert build()["process"]["rlimits"][0]["hard"] == 1048576


# --- security options and seccomp ------------------------------------------------------------

@pytest.mark.parametrize(("opts", "nnp", "profile"), [
    ([], False, None),
    (["no-new-privileges"], True, None),
    (["no-new-privileges=true"], True, None),
    (["no-new-privileges:1"], True, None),
    (["no-new-privileges", "no-new-privileges=false"], False, None),
    (["seccomp=unconfined"], False, "unconfined"),
    (["seccomp=builtin"], False, None),
    (["seccomp=/p.json", "label=disable", "apparmor=unconfined", "disable"], False, "/p.json"),
])
def test_security_opts(opts: list[str], nnp: bool, profile: str | None) -> None:
    parsed = parse_security_opts(opts)
    assert (parsed.no_new_privileges, parsed.seccomp) == (nnp, profile)


@pytest.mark.parametrize("bad", ["bogus", "foo=bar", "no-new-privileges=maybe", "seccomp="])
def test_bad_security_opts_are_refused(bad: str) -> None:
    with pytest.raises(InvalidArgumentError, match="invalid --security-opt"):
        build(security_opt=[bad])


def allowed_names(profile: dict[str, Any]) -> set[str]:
    return {n for r in profile["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" and not r.get("args")
            for n in r["names"]}


def test_default_seccomp_in_spec() -> None:
    s = build()
    prof = s["linux"]["seccomp"]
    assert prof["defaultAction"] == "SCMP_ACT_ERRNO" and prof["defaultErrnoRet"] == 1
    names = allowed_names(prof)
    assert {"read", "execve", "clone3"} - names == {"clone3"}
    assert not names & {"mount", "umount2", "unshare", "setns", "bpf", "reboot", "kexec_load",
                        "add_key", "keyctl", "init_module", "open_by_handle_at", "swapon"}
    assert "chroot" in names   # CAP_SYS_CHROOT is a default capability
    assert s["process"]["noNewPrivileges"] is False
    assert build(security_opt=["no-new-privileges"])["process"]["noNewPrivileges"] is True


def test_seccomp_absent_for_unconfined_and_privileged() -> None:
    assert "seccomp" not in build(security_opt=["seccomp=unconfined"])["linux"]
    assert "seccomp" not in build(privileged=True)["linux"]
    assert "seccomp" not in build(privileged=True, security_opt=["seccomp=/nope"])["linux"]


def test_sys_admin_unlocks_mount_and_plain_clone() -> None:
    base = default_profile(DEFAULT_CAPABILITIES, "x86_64", (6, 1))
    admin = default_profile([*DEFAULT_CAPABILITIES, "CAP_SYS_ADMIN"], "x86_64", (6, 1))
    gained = allowed_names(admin) - allowed_names(base)
    assert {"mount", "umount2", "unshare", "setns", "clone", "clone3", "bpf"} <= gained
    assert not allowed_names(base) - allowed_names(admin)
    # Without SYS_ADMIN: clone only without namespace flags, and clone3 fails with ENOSYS.
    (clone,) = [r for r in base["syscalls"] if r["names"] == ["clone"]]
    assert clone["args"] == [{"index": 0, "value": 0x7E020000, "op": "SCMP_CMP_MASKED_EQ"}]
    (clone3,) = [r for r in base["syscalls"] if r["names"] == ["clone3"]]
    assert clone3["action"] == "SCMP_ACT_ERRNO" and clone3["errnoRet"] == 38
    assert not [r for r in admin["syscalls"] if r["action"] == "SCMP_ACT_ERRNO"]
    in_spec = build(cap_add=["SYS_ADMIN"])["linux"]["seccomp"]
    assert "mount" in allowed_names(in_spec)


def test_capabilities_gate_their_syscalls() -> None:
    ptrace = default_profile([*DEFAULT_CAPABILITIES, "CAP_SYS_PTRACE"], "amd64", (6, 1))
    assert {"kcmp", "pidfd_getfd", "process_madvise"} <= allowed_names(ptrace)
    time = default_profile(["CAP_SYS_TIME"], "amd64", (6, 1))
    assert {"settimeofday", "clock_settime"} <= allowed_names(time)
    assert "chroot" not in allowed_names(default_profile([], "amd64", (6, 1)))
    # ptrace is allowed to everyone from kernel 4.8 on, never before
    assert "ptrace" in allowed_names(default_profile([], "amd64", (4, 8)))
    assert "ptrace" not in allowed_names(default_profile([], "amd64", (4, 4)))


def test_seccomp_architectures() -> None:
    amd = default_profile([], "x86_64", (6, 1))
    assert amd["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    assert {"arch_prctl", "modify_ldt"} <= allowed_names(amd)
    arm = default_profile([], "aarch64", (6, 1))
    assert arm["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert "arch_prctl" not in allowed_names(arm) and "set_tls" in allowed_names(arm)
    assert default_profile([], "arm64", (6, 1)) == arm
    s390 = default_profile([], "s390x", (6, 1))
    (clone,) = [r for r in s390["syscalls"] if r["names"] == ["clone"]]
    assert clone["args"][0]["index"] == 1   # s390 swaps clone's first two arguments


def test_personality_and_socket_are_argument_filtered() -> None:
    prof = default_profile(DEFAULT_CAPABILITIES, "amd64", (6, 1))
    personas = sorted(r["args"][0]["value"] for r in prof["syscalls"]
                      if r["names"] == ["personality"])
    assert personas == [0, 8, 0x20000, 0x20008, 0xFFFFFFFF]
    (sock,) = [r for r in prof["syscalls"] if r["names"] == ["socket"]]
    assert sock["args"] == [{"index": 0, "value": 40, "op": "SCMP_CMP_NE"}]  # not AF_VSOCK


def test_default_profile_counts_and_cache() -> None:
    assert len(seccomp.ALWAYS_ALLOWED) == 349
    key = (DEFAULT_CAPABILITIES, "amd64", (6, 1))
    first = default_profile(*key)
    hits = seccomp._default_json.cache_info().hits
    second = default_profile(*key)
    assert seccomp._default_json.cache_info().hits == hits + 1
    assert first == second and first is not second
    second["syscalls"].clear()   # the caller may modify what it gets
    assert default_profile(*key) == first


def test_converting_dockers_default_gives_the_default() -> None:
    doc = default_docker_profile()
    snapshot = json.dumps(doc)
    caps: tuple[str, ...]
    for caps in ((), DEFAULT_CAPABILITIES, CAPABILITIES):
        assert convert_docker_profile(doc, caps, "amd64", (6, 1)) == default_profile(
            caps, "amd64", (6, 1))
    assert json.dumps(doc) == snapshot   # input untouched


def test_convert_docker_profile_filters() -> None:
    doc = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [
            {"name": "chmod", "action": "SCMP_ACT_ERRNO", "errnoRet": 13, "comment": "x"},
            {"names": ["mount"], "action": "SCMP_ACT_ERRNO",
             "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["arch_prctl"], "action": "SCMP_ACT_KILL",
             "includes": {"arches": ["arm64"]}},
            {"names": ["new_thing"], "action": "SCMP_ACT_LOG",
             "includes": {"minKernel": "7.0"}},
            {"names": ["old_thing"], "action": "SCMP_ACT_LOG",
             "excludes": {"minKernel": "5.4"}},
            {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 0, "value": 1, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]},
        ],
    }
    out = convert_docker_profile(doc, ["CAP_CHOWN"], "x86_64", (6, 1))
    assert out == {
        "defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [
            {"names": ["chmod"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
            {"names": ["mount"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]},
        ]}
    admin = convert_docker_profile(doc, ["cap_sys_admin"], "arm64", (7, 2))
    assert admin is not None
    assert [r["names"][0] for r in admin["syscalls"]] == ["chmod", "arch_prctl", "new_thing",
                                                          "personality"]
    assert convert_docker_profile({}, [], "amd64") is None   # Docker: no filter at all


@pytest.mark.parametrize(("doc", "message"), [
    ({"defaultAction": "SCMP_ACT_NOPE"}, "unknown defaultAction"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
      "archMap": [{"architecture": "SCMP_ARCH_X86_64"}]}, "both"),
    ({"defaultAction": "SCMP_ACT_ERRNO",
      "syscalls": [{"name": "a", "names": ["b"], "action": "SCMP_ACT_ALLOW"}]}, "either"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"action": "SCMP_ACT_ALLOW"}]},
     "names no syscall"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["a"], "action": "ALLOW"}]},
     "unknown action"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["a"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "op": "EQ"}]}]},
     "unknown op"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["a"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "six"}}]},
     "minKernel"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": "read"}, "must be a list"),
])
def test_bad_docker_profiles_are_refused(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        convert_docker_profile(doc, [], "amd64", (6, 1))


def test_seccomp_profile_file_in_spec(tmp_path: Path) -> None:
    path = tmp_path / "profile.json"
    path.write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ERRNO",
        "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]},
                    {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": []}],
        "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                     {"names": ["mount"], "action": "SCMP_ACT_ALLOW",
                      "includes": {"caps": ["CAP_SYS_ADMIN"]}}]}))
    prof = build(security_opt=[f"seccomp={path}"])["linux"]["seccomp"]
    native = {"amd64": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"], "arm64": ["SCMP_ARCH_AARCH64"]}
    assert prof["architectures"] == native.get(seccomp.host_arch(), [])
    assert prof["syscalls"] == [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"}]
    admin = build(security_opt=[f"seccomp={path}"], cap_add=["SYS_ADMIN"])["linux"]["seccomp"]
    assert "mount" in allowed_names(admin)
    inline = build(security_opt=["seccomp=" + path.read_text()])["linux"]["seccomp"]
    assert inline == prof
    with pytest.raises(InvalidArgumentError, match="opening seccomp profile"):
        build(security_opt=[f"seccomp={tmp_path / 'missing.json'}"])
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(InvalidArgumentError, match="decoding seccomp profile"):
        build(security_opt=[f"seccomp={tmp_path / 'bad.json'}"])


def test_options_and_image_config_are_not_modified() -> None:
    image = {"Cmd": ["sh"], "Env": ["A=1"], "Entrypoint": None}
    options = RunOptions(command=["x"], env=["B=2"], mounts=[{"destination": "/m"}])
    before = (json.dumps(image), repr(options))
    s = build_spec(image, options, ETC, CID)
    s["mounts"][-1]["destination"] = "/changed"
    assert (json.dumps(image), repr(options)) == before
    assert build_spec(None, replace(options), ETC, CID)["process"]["args"] == ["x"]


# --- one real run with runc ------------------------------------------------------------------

@pytest.fixture
def busybox_bundle(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("runc needs root for namespaces, mounts and cgroups")
    if shutil.which("runc") is None:
        pytest.skip("runc is not installed")
    if shutil.which("busybox") is None and not Path("/bin/busybox").exists():
        pytest.skip("no busybox on the host to build a rootfs from")
    subprocess.run([sys.executable, str(REPO / "scripts" / "mkimage.py"), "--busybox-rootfs",
                    str(tmp_path / "rootfs")], check=True, capture_output=True)
    yield tmp_path


@pytest.mark.root
def test_spec_runs_under_runc_with_dockers_security(busybox_bundle: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.undo()   # the real available capabilities, as a real container gets them
    rootfs = busybox_bundle / "rootfs"

    def lookup(path: str) -> bytes | None:
        f = rootfs / path.lstrip("/")
        return f.read_bytes() if f.is_file() else None

    cid = uuid.uuid4().hex + uuid.uuid4().hex
    script = 'grep -E "^(CapEff|Seccomp|NoNewPrivs):" /proc/self/status; hostname; id -u'
    config = build_spec({"Cmd": ["sh"], "Env": ["PATH=/bin"]},
                        RunOptions(command=["sh", "-c", script]), lookup, cid,
                        rootfs=str(rootfs))
    (busybox_bundle / "config.json").write_text(json.dumps(config))
    # Nothing special was needed on this hybrid cgroup v1 host: runc creates the
    # linux.cgroupsPath cgroup ("/barque/<id>") and mounts /sys/fs/cgroup itself.
    try:
        result = subprocess.run(["runc", "run", "--bundle", str(busybox_bundle), cid],
                                stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                timeout=60)
    finally:
        subprocess.run(["runc", "delete", "-f", cid], capture_output=True)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split("\n")
    status = dict(line.split(":\t") for line in lines if ":\t" in line)
    assert status == {"CapEff": "00000000a80425fb", "NoNewPrivs": "0", "Seccomp": "2"}
    assert lines[-3:] == [cid[:12], "0", ""]
