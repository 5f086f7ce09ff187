"""A container's one typed description (``barque.models``): Docker's create body in, Docker's
inspect document out, with every HostConfig key Docker has; fields barque would have to ignore
refused with one line; fields it applies checked from inside real containers; and rows written
before the model still load."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import msgspec
import pytest

from helpers import BIN, barque

pytestmark = [
    pytest.mark.registry,
    pytest.mark.skipif(os.geteuid() != 0, reason="containers need root (namespaces, mounts)"),
]

#: HostConfig's keys in the Engine API reference, v1.47 (Docker 27; unchanged in v1.48's
#: HostConfig object apart from none): https://docs.docker.com/reference/api/engine/version/v1.47/
#: ("ContainerCreate" -> HostConfig, Resources included).
DOCKER_HOST_CONFIG_KEYS = [
    "CpuShares", "Memory", "CgroupParent", "BlkioWeight", "BlkioWeightDevice",
    "BlkioDeviceReadBps", "BlkioDeviceWriteBps", "BlkioDeviceReadIOps", "BlkioDeviceWriteIOps",
    "CpuPeriod", "CpuQuota", "CpuRealtimePeriod", "CpuRealtimeRuntime", "CpusetCpus",
    "CpusetMems", "Devices", "DeviceCgroupRules", "DeviceRequests", "KernelMemoryTCP",
    "MemoryReservation", "MemorySwap", "MemorySwappiness", "NanoCpus", "OomKillDisable", "Init",
    "PidsLimit", "Ulimits", "CpuCount", "CpuPercent", "IOMaximumIOps", "IOMaximumBandwidth",
    "Binds", "ContainerIDFile", "LogConfig", "NetworkMode", "PortBindings", "RestartPolicy",
    "AutoRemove", "VolumeDriver", "VolumesFrom", "Mounts", "ConsoleSize", "Annotations",
    "CapAdd", "CapDrop", "CgroupnsMode", "Dns", "DnsOptions", "DnsSearch", "ExtraHosts",
    "GroupAdd", "IpcMode", "Cgroup", "Links", "OomScoreAdj", "PidMode", "Privileged",
    "PublishAllPorts", "ReadonlyRootfs", "SecurityOpt", "StorageOpt", "Tmpfs", "UTSMode",
    "UsernsMode", "ShmSize", "Sysctls", "Runtime", "Isolation", "MaskedPaths", "ReadonlyPaths",
]
#: The ones Go's encoder leaves out while empty (``omitempty``), as ``docker inspect`` does.
OMITTED_WHEN_EMPTY = {"Annotations", "StorageOpt", "Tmpfs", "Sysctls", "KernelMemoryTCP",
                      "Mounts", "Init"}
#: Config's keys in the same reference (ContainerConfig).
DOCKER_CONFIG_KEYS = [
    "Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr",
    "ExposedPorts", "Tty", "OpenStdin", "StdinOnce", "Env", "Cmd", "Healthcheck", "ArgsEscaped",
    "Image", "Volumes", "WorkingDir", "Entrypoint", "NetworkDisabled", "MacAddress", "OnBuild",
    "Labels", "StopSignal", "StopTimeout", "Shell",
]
#: What ``docker inspect`` prints for a container, top level (Docker 20.10's dockerd, checked
#: by hand, prints these in this order; Docker 27's are the same).
DOCKER_INSPECT_KEYS = [
    "Id", "Created", "Path", "Args", "State", "Image", "ResolvConfPath", "HostnamePath",
    "HostsPath", "LogPath", "Name", "RestartCount", "Driver", "Platform", "MountLabel",
    "ProcessLabel", "AppArmorProfile", "ExecIDs", "HostConfig", "GraphDriver", "Mounts",
    "Config", "NetworkSettings",
]
DOCKER_NETWORK_SETTINGS_KEYS = [
    "Bridge", "SandboxID", "SandboxKey", "Ports", "HairpinMode", "LinkLocalIPv6Address",
    "LinkLocalIPv6PrefixLen", "SecondaryIPAddresses", "SecondaryIPv6Addresses", "EndpointID",
    "Gateway", "GlobalIPv6Address", "GlobalIPv6PrefixLen", "IPAddress", "IPPrefixLen",
    "IPv6Gateway", "MacAddress", "Networks",
]
DOCKER_ENDPOINT_KEYS = [
    "IPAMConfig", "Links", "Aliases", "MacAddress", "DriverOpts", "NetworkID", "EndpointID",
    "Gateway", "IPAddress", "IPPrefixLen", "IPv6Gateway", "GlobalIPv6Address",
    "GlobalIPv6PrefixLen", "DNSNames",
]


@pytest.fixture(scope="module")
def store(tmp_path_factory, fixture_images):  # type: ignore[no-untyped-def]
    if not (BIN / "barque-shim").exists() and not os.environ.get("BARQUE_LIBEXEC"):
        pytest.fail(f"barque-shim is not in {BIN}: run scripts/setup")
    root = tmp_path_factory.mktemp("inspect") / "root"
    barque(root, "pull", "-q", fixture_images["busybox"].ref)
    return root


@pytest.fixture
def busybox(fixture_images) -> str:  # type: ignore[no-untyped-def]
    return fixture_images["busybox"].ref


@pytest.fixture
def engine(store):  # type: ignore[no-untyped-def]
    import barque as barque_pkg

    return barque_pkg.Engine(root=store)


def _inspect(store: Path, name: str) -> dict:
    return json.loads(barque(store, "inspect", name).stdout)[0]


# -- the models themselves -----------------------------------------------------------------

def test_model_key_sets_are_dockers() -> None:
    from barque import models

    host_keys = [f.encode_name for f in msgspec.structs.fields(models.HostConfig)]
    assert sorted(host_keys) == sorted(DOCKER_HOST_CONFIG_KEYS)
    assert len(host_keys) == len(set(host_keys))
    config_keys = [f.encode_name for f in msgspec.structs.fields(models.ContainerConfig)]
    assert sorted(config_keys) == sorted(DOCKER_CONFIG_KEYS)
    body_keys = [f.encode_name for f in msgspec.structs.fields(models.ContainerCreate)]
    assert sorted(body_keys) == sorted(DOCKER_CONFIG_KEYS + ["HostConfig", "NetworkingConfig"])


def test_decode_errors_are_one_line_naming_the_path() -> None:
    from barque import models
    from barque.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError) as info:
        models.decode(b'{"Image": "busybox", "HostConfig": {"Memory": "lots"}}',
                      models.ContainerCreate)
    message = str(info.value)
    assert "\n" not in message and "$.HostConfig.Memory" in message and "int" in message
    with pytest.raises(InvalidArgumentError, match=r"\$\.HostConfig\.Ulimits\[0\]\.Soft"):
        models.decode(b'{"HostConfig": {"Ulimits": [{"Name": "nofile", "Soft": "x"}]}}',
                      models.ContainerCreate)
    with pytest.raises(InvalidArgumentError, match="invalid JSON"):
        models.decode(b'{"Image": ', models.ContainerCreate)


# -- inspect of a fresh container ----------------------------------------------------------

def test_fresh_container_shows_every_docker_key_with_dockers_zero_values(store, busybox) -> None:
    cid = barque(store, "create", "--network", "none", "--name", "fresh", busybox).stdout.strip()
    doc = _inspect(store, "fresh")
    assert list(doc) == DOCKER_INSPECT_KEYS
    host = doc["HostConfig"]
    assert set(host) == set(DOCKER_HOST_CONFIG_KEYS) - OMITTED_WHEN_EMPTY
    assert host["Binds"] is None and host["ContainerIDFile"] == "" and host["Links"] is None
    assert host["LogConfig"] == {"Type": "json-file", "Config": {}}
    assert host["NetworkMode"] == "none" and host["PortBindings"] == {}
    assert host["RestartPolicy"] == {"Name": "no", "MaximumRetryCount": 0}
    assert host["Dns"] == [] and host["DnsOptions"] == [] and host["DnsSearch"] == []
    assert host["ShmSize"] == 64 << 20 and host["OomScoreAdj"] == 0
    assert host["CpuShares"] == 0 and host["Memory"] == 0 and host["PidsLimit"] is None
    assert host["BlkioWeightDevice"] == [] and host["Devices"] == []
    assert host["MemorySwappiness"] is None and host["Ulimits"] == []
    assert host["IpcMode"] == "private" and host["CgroupnsMode"] == "private"
    assert "/proc/kcore" in host["MaskedPaths"] and "/proc/sys" in host["ReadonlyPaths"]
    assert host["ConsoleSize"] == [0, 0]
    config = doc["Config"]
    assert config["Image"] == busybox and config["Hostname"] == cid[:12]
    assert config["Cmd"] == ["sh"] and config["Entrypoint"] is None
    assert config["WorkingDir"] == "" and config["Volumes"] is None and config["OnBuild"] is None
    assert any(e.startswith("PATH=") for e in config["Env"])
    assert doc["Path"] == "sh" and doc["Args"] == []
    assert list(doc["NetworkSettings"]) == DOCKER_NETWORK_SETTINGS_KEYS
    assert list(doc["NetworkSettings"]["Networks"]) == ["none"]
    assert list(doc["NetworkSettings"]["Networks"]["none"]) == DOCKER_ENDPOINT_KEYS
    assert doc["NetworkSettings"]["SandboxKey"] == ""  # not running: no sandbox
    assert "Health" not in doc["State"] and doc["State"]["Status"] == "created"
    assert doc["Driver"] == "overlay2" and doc["Platform"] == "linux"
    assert doc["GraphDriver"]["Name"] == "overlay2"
    assert doc["GraphDriver"]["Data"]["UpperDir"].endswith(f"{cid}/upper")
    assert Path(doc["HostsPath"]).read_text().startswith("127.0.0.1\tlocalhost")
    assert Path(doc["HostnamePath"]).read_text() == f"{cid[:12]}\n"
    assert Path(doc["ResolvConfPath"]).exists()
    assert doc["ExecIDs"] is None and doc["RestartCount"] == 0 and doc["Mounts"] == []
    assert "SizeRw" not in doc
    barque(store, "rm", "fresh")


def test_running_container_has_a_sandbox_and_size_on_request(store, busybox, engine) -> None:
    barque(store, "run", "-d", "--network", "none", "--name", "sized", busybox, "sleep", "30")
    try:
        doc = _inspect(store, "sized")
        pid = doc["State"]["Pid"]
        assert doc["NetworkSettings"]["SandboxKey"] == f"/proc/{pid}/ns/net"
        sized = engine.containers.get("sized").inspect(size=True)
        assert isinstance(sized.size_rw, int) and sized.size_root_fs > sized.size_rw
        shown = json.loads(barque(store, "inspect", "--size", "sized").stdout)[0]
        assert shown["SizeRootFs"] == sized.size_root_fs and "SizeRw" in shown
    finally:
        barque(store, "rm", "-f", "sized")


# -- the create body -----------------------------------------------------------------------

BODY = {
    "Hostname": "roundtrip", "Domainname": "example.test", "User": "0:0",
    "Env": ["GREETING=hi"], "Cmd": ["sh", "-c", "true"], "Image": "",
    "WorkingDir": "/tmp", "Labels": {"tier": "test"}, "StopSignal": "SIGUSR1",
    "OpenStdin": False, "Tty": False,
    "HostConfig": {
        "NetworkMode": "none", "Memory": 33554432, "NanoCpus": 500000000, "PidsLimit": 40,
        "CapAdd": ["CAP_NET_ADMIN"], "CapDrop": ["CAP_MKNOD"], "ReadonlyRootfs": True,
        "Tmpfs": {"/scratch": "size=1m"}, "ShmSize": 8388608,
        "Ulimits": [{"Name": "nproc", "Soft": 500, "Hard": 600}],
        "Sysctls": {"kernel.shmmax": "123456789"},
        "Dns": ["192.0.2.53"], "DnsSearch": ["example.test"], "DnsOptions": ["ndots:2"],
        "ExtraHosts": ["db.example.test:192.0.2.10"], "Annotations": {"org.example/k": "v"},
        "Init": True, "LogConfig": {"Type": "json-file", "Config": {"max-size": "1m"}},
        "SecurityOpt": ["no-new-privileges"], "GroupAdd": ["10"],
        "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
        "ContainerIDFile": "", "ConsoleSize": [0, 0],
    },
}


def test_a_create_body_round_trips_through_create_and_inspect(engine, busybox) -> None:
    from barque import models

    sent = {**BODY, "Image": busybox}
    body = models.decode(json.dumps(sent).encode(), models.ContainerCreate)
    container = engine.containers.create_from(body, name="roundtrip")
    try:
        doc = container.attrs
        assert doc["Name"] == "/roundtrip"
        for key, value in sent["HostConfig"].items():
            assert doc["HostConfig"][key] == value, key
        for key, value in sent.items():
            if key == "Env":  # merged with the image's (and the default PATH it lacks)
                assert set(value) <= set(doc["Config"]["Env"])
            elif key != "HostConfig":
                assert doc["Config"][key] == value, key
        # and it is the same body when read back as one
        again = models.convert(doc["Config"] | {"HostConfig": doc["HostConfig"]},
                               models.ContainerCreate)
        assert again.host_config.ulimits == body.host_config.ulimits
        assert again.host_config.sysctls == body.host_config.sysctls
        assert container.model.host_config.memory == 33554432
    finally:
        container.remove(force=True)


@pytest.mark.parametrize(("host_config", "message"), [
    ({"PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}},
     "HostConfig.PortBindings: port publishing needs bridge networking, which barque does "
     "not have yet"),
    ({"PublishAllPorts": True}, "HostConfig.PublishAllPorts: port publishing needs bridge"),
    ({"RestartPolicy": {"Name": "sometimes"}}, "invalid restart policy: unknown policy "
                                                "'sometimes'"),
    ({"CpuShares": 512}, "HostConfig.CpuShares: CPU shares are not supported"),
    ({"CpusetCpus": "0"}, "HostConfig.CpusetCpus: CPU sets are not supported"),
    ({"PidMode": "host"}, "HostConfig.PidMode: only a private PID namespace"),
    ({"UTSMode": "host"}, "HostConfig.UTSMode: only a private UTS namespace"),
    ({"OomScoreAdj": 500}, "HostConfig.OomScoreAdj: "),
    ({"BlkioDeviceReadIOps": [{"Path": "/dev/sda", "Rate": 10}]},
     "HostConfig.BlkioDeviceReadIOps: "),
    ({"Sysctls": {"vm.swappiness": "1"}}, "HostConfig.Sysctls: vm.swappiness is not allowed"),
    ({"ExtraHosts": ["gw:host-gateway"]}, "HostConfig.ExtraHosts: host-gateway needs bridge"),
])
def test_fields_barque_would_ignore_are_refused_in_one_line(engine, busybox, host_config,
                                                            message) -> None:
    from barque import models
    from barque.errors import InvalidArgumentError

    before = {c.id for c in engine.containers.list(all=True)}
    body = models.convert({"Image": busybox, "Cmd": ["true"], "HostConfig": host_config},
                          models.ContainerCreate)
    with pytest.raises(InvalidArgumentError) as info:
        engine.containers.create_from(body)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)
    assert {c.id for c in engine.containers.list(all=True)} == before


def test_config_fields_barque_would_ignore_are_refused(engine, busybox) -> None:
    from barque import models
    from barque.errors import InvalidArgumentError

    body = models.convert({"Image": busybox, "Healthcheck": {"Test": ["CMD", "true"]}},
                          models.ContainerCreate)
    with pytest.raises(InvalidArgumentError, match="^Config.Healthcheck: healthchecks"):
        engine.containers.create_from(body)


# -- applied fields, seen from inside -----------------------------------------------------

def test_applied_fields_take_effect_inside_the_container(engine, busybox) -> None:
    from barque import models

    script = ("df -k /dev/shm | tail -1; ulimit -u; ulimit -Hu; cat /proc/sys/kernel/shmmax; "
              "cat /etc/resolv.conf; grep db.example /etc/hosts; "
              "cat /proc/sys/kernel/domainname; cat /proc/1/cmdline | tr '\\0' ' '; echo; "
              "echo keys=$(head -c 20 /proc/keys | wc -c)")
    body = models.convert({
        "Image": busybox, "Cmd": ["sh", "-c", script], "Domainname": "example.test",
        "HostConfig": {
            "NetworkMode": "none", "ShmSize": 8 << 20,
            "Ulimits": [{"Name": "nproc", "Soft": 500, "Hard": 600}],
            "Sysctls": {"kernel.shmmax": "123456789"},
            "Dns": ["192.0.2.53"], "DnsSearch": ["example.test"], "DnsOptions": ["ndots:2"],
            "ExtraHosts": ["db.example.test:192.0.2.10"], "Init": True, "MaskedPaths": [],
        }}, models.ContainerCreate)
    read, write = os.pipe()
    try:
        code = engine.containers.run_from(body, stdout=write, stderr=write)
    finally:
        os.close(write)
    with os.fdopen(read) as f:
        lines = f.read().splitlines()
    assert code == 0, lines
    assert lines[0].split()[1] == str(8 << 10)  # 1K-blocks of /dev/shm: 8 MiB
    assert lines[1:4] == ["500", "600", "123456789"]
    resolv = lines[4:7]
    assert "nameserver 192.0.2.53" in resolv and "search example.test" in resolv \
        and "options ndots:2" in resolv
    assert lines[7].split() == ["192.0.2.10", "db.example.test"]
    assert lines[8] == "example.test"
    assert lines[9].startswith("/dev/init -- sh -c")  # Init: barque-init is PID 1
    assert lines[10] != "keys=0"  # MaskedPaths [] unmasks /proc/keys, which Docker masks


def test_an_ulimit_above_the_hosts_hard_limit_is_clamped_with_a_warning(engine, busybox) -> None:
    import resource

    from barque import models

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY:
        pytest.skip("no finite hard limit to go above")
    body = models.convert({"Image": busybox, "Cmd": ["true"], "HostConfig": {
        "Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": hard + 1}]}},
        models.ContainerCreate)
    container = engine.containers.create_from(body)
    try:
        assert container.warnings == [f"ulimit nofile: hard limit {hard + 1} is above this "
                                      f"host's {hard}; the container gets {hard}"]
    finally:
        container.remove()


def test_the_cli_parses_into_one_body(store, busybox) -> None:
    barque(store, "create", "--network", "none", "--name", "flags", "-e", "A=1", "-l", "k=v",
           "--entrypoint", "echo", "--memory", "32m", "--cap-add", "NET_ADMIN",
           "--tmpfs", "/run:size=1m", "-v", "/anon", "--init", busybox, "hello")
    doc = _inspect(store, "flags")
    assert doc["Config"]["Entrypoint"] == ["echo"] and doc["Config"]["Cmd"] == ["hello"]
    assert doc["Path"] == "echo" and doc["Args"] == ["hello"]
    assert "A=1" in doc["Config"]["Env"] and doc["Config"]["Labels"]["k"] == "v"
    assert doc["Config"]["Volumes"] == {"/anon": {}}
    assert doc["HostConfig"]["Memory"] == 32 << 20 and doc["HostConfig"]["Init"] is True
    assert doc["HostConfig"]["CapAdd"] == ["NET_ADMIN"]
    assert doc["HostConfig"]["Tmpfs"] == {"/run": "size=1m"}
    assert [m["Destination"] for m in doc["Mounts"]] == ["/anon"]
    ps = barque(store, "ps", "-a", "--filter", "name=flags", "--format", "{{.Command}}").stdout
    assert ps == '"echo hello"\n'
    barque(store, "rm", "-v", "flags")


# -- rows of the format before the model ---------------------------------------------------

def test_a_row_in_the_old_format_still_loads(store, busybox, engine) -> None:
    from barque.store.metadata import ContainerRecord

    cid = barque(store, "create", "--network", "none", "--name", "old-row", "-l", "a=b",
                 busybox, "sh", "-c", "exit 3").stdout.strip()
    record = engine.store.metadata.get_container(cid)
    old = {
        "Mounts": [],
        "Config": {"Hostname": cid[:12], "User": "", "Env": ["PATH=/bin", "HOSTNAME=x"],
                   "Cmd": ["sh", "-c", "exit 3"], "Entrypoint": None, "Image": busybox,
                   "WorkingDir": "/", "Labels": {"a": "b"}, "Tty": False, "OpenStdin": False,
                   "StopSignal": "SIGTERM", "ExposedPorts": {}},
        "HostConfig": {"NetworkMode": "none", "AutoRemove": False, "Privileged": False,
                       "ReadonlyRootfs": False, "Devices": [], "CapAdd": None, "CapDrop": None,
                       "GroupAdd": None, "SecurityOpt": None,
                       "LogConfig": {"Type": "json-file", "Config": {}}, "Init": None,
                       "Memory": 0, "NanoCpus": 0, "PidsLimit": None},
    }
    with engine.store.metadata.transaction() as db:  # a row as older barque wrote it
        db.execute("UPDATE containers SET config = ? WHERE id = ?",
                   (json.dumps(old).encode(), cid))
    assert isinstance(record, ContainerRecord)
    doc = _inspect(store, "old-row")
    assert doc["Config"]["Cmd"] == ["sh", "-c", "exit 3"] and doc["Path"] == "sh"
    assert doc["HostConfig"]["NetworkMode"] == "none" and doc["Config"]["Labels"] == {"a": "b"}
    assert set(DOCKER_HOST_CONFIG_KEYS) - OMITTED_WHEN_EMPTY <= set(doc["HostConfig"])
    rows = barque(store, "ps", "-a", "--filter", "label=a=b", "--format",
                  "{{.Names}} {{.Command}}").stdout
    assert rows == 'old-row "sh -c exit 3"\n'
    started = barque(store, "start", "-a", "old-row", check=False)
    assert started.returncode == 3
    deadline = time.monotonic() + 10
    while _inspect(store, "old-row")["State"]["Status"] != "exited" \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    barque(store, "rm", "old-row")


# -- images and volumes --------------------------------------------------------------------

def test_image_and_volume_documents_fit_their_models(engine, busybox) -> None:
    """What ``inspect`` shows of an image and a volume today is exactly what the models hold
    (so the services can build them from the models without changing a key)."""
    from barque import models
    from barque.models.image import ImageInspect, Volume

    attrs = engine.images.get(busybox).attrs
    image = models.convert(attrs, ImageInspect)
    assert models.to_builtins(image) == attrs
    assert image.root_fs.layers and image.config.cmd == ["sh"]
    volume = engine.volumes.create("model-vol", labels={"a": "b"})
    try:
        assert models.to_builtins(models.convert(volume.attrs, Volume)) == volume.attrs
    finally:
        engine.volumes.remove("model-vol")
