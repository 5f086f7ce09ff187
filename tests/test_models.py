"""barque.models without containers: Docker's JSON in and out of the typed objects, the
command line parsed into one create body, and the OCI spec derived from a body (pure)."""

from __future__ import annotations

import json
import resource

import pytest

from barque import models
from barque.errors import InvalidArgumentError
from barque.models.support import refuse_unsupported
from barque.runtime.spec import DEFAULT_SHM_SIZE, build_spec_from

CID = "0123456789abcdef" * 4
ETC = {"/etc/passwd": b"root:x:0:0:root:/root:/bin/sh\n", "/etc/group": b"root:x:0:\n"}


def _lookup(path: str) -> bytes | None:
    return ETC.get(path)


def _body(**fields: object) -> models.ContainerCreate:
    return models.convert({"Image": "busybox", "Cmd": ["sh"], **fields}, models.ContainerCreate)


def test_a_body_encodes_to_dockers_json_and_back() -> None:
    sent = {"Image": "busybox", "Cmd": ["sh"], "Env": ["A=1"], "StopSignal": "SIGINT",
            "HostConfig": {"UTSMode": "", "IOMaximumBandwidth": 0, "CpuRealtimePeriod": 0,
                           "ContainerIDFile": "", "Init": True, "Tmpfs": {"/t": ""},
                           "Mounts": [{"Type": "tmpfs", "Target": "/m",
                                       "TmpfsOptions": {"SizeBytes": 4096}}]},
            "NetworkingConfig": {"EndpointsConfig": {"none": {}}}}
    body = models.decode(json.dumps(sent).encode(), models.ContainerCreate)
    again = json.loads(models.encode(body))
    assert again["HostConfig"]["Mounts"] == sent["HostConfig"]["Mounts"]  # omitempty kept out
    assert again["HostConfig"]["Init"] is True and again["StopSignal"] == "SIGINT"
    assert "Healthcheck" not in again and "StopTimeout" not in again  # UNSET: left out
    assert models.decode(models.encode(body), models.ContainerCreate) == body
    assert body.config().image == "busybox" and body.host_config.mounts[0].target == "/m"


def test_refusals_name_the_field_and_zero_values_pass() -> None:
    refuse_unsupported(_body(HostConfig={"PortBindings": {}, "RestartPolicy": {"Name": "no"},
                                         "CpuShares": 0, "IpcMode": "private",
                                         "MemorySwappiness": -1, "Runtime": "runc"}))
    with pytest.raises(InvalidArgumentError,
                       match=r"^HostConfig\.IpcMode: only a private IPC namespace is "
                             r"supported, not 'host'$"):
        refuse_unsupported(_body(HostConfig={"IpcMode": "host"}))
    with pytest.raises(InvalidArgumentError, match=r"^HostConfig\.IOMaximumBandwidth: "):
        refuse_unsupported(_body(HostConfig={"IOMaximumBandwidth": 10}))
    with pytest.raises(InvalidArgumentError, match=r"^Config\.StopTimeout: "):
        refuse_unsupported(_body(StopTimeout=3))
    with pytest.raises(InvalidArgumentError, match=r"^NetworkingConfig\.EndpointsConfig: "):
        refuse_unsupported(_body(NetworkingConfig={"EndpointsConfig": {"bridge": {}}}))


def test_the_spec_is_derived_from_the_body() -> None:
    body = _body(Domainname="example.test", HostConfig={
        "ShmSize": 8 << 20, "Ulimits": [{"Name": "nproc", "Soft": 10, "Hard": 20}],
        "Sysctls": {"kernel.shmmax": "1000"}, "Annotations": {"k": "v"},
        "ReadonlyPaths": ["/proc/sys"], "Memory": 64 << 20, "NanoCpus": 250_000_000,
        "CapDrop": ["CAP_CHOWN"], "ReadonlyRootfs": True})
    spec = build_spec_from({}, body, _lookup, CID)
    shm = next(m for m in spec["mounts"] if m["destination"] == "/dev/shm")
    assert "size=8192k" in shm["options"]
    assert {"type": "RLIMIT_NPROC", "hard": 20, "soft": 10} in spec["process"]["rlimits"]
    assert any(r["type"] == "RLIMIT_NOFILE" for r in spec["process"]["rlimits"])
    assert spec["linux"]["sysctl"]["kernel.shmmax"] == "1000"
    assert spec["annotations"]["k"] == "v" and spec["domainname"] == "example.test"
    assert spec["linux"]["readonlyPaths"] == ["/proc/sys"]
    assert spec["linux"]["resources"]["memory"] == {"limit": 64 << 20}
    assert spec["linux"]["resources"]["cpu"]["quota"] == 25_000
    assert "CAP_CHOWN" not in spec["process"]["capabilities"]["bounding"]
    assert spec["root"]["readonly"] is True
    default = build_spec_from({}, _body(), _lookup, CID)
    shm = next(m for m in default["mounts"] if m["destination"] == "/dev/shm")
    assert f"size={DEFAULT_SHM_SIZE // 1024}k" in shm["options"]


def test_spec_checks_of_applied_fields() -> None:
    with pytest.raises(InvalidArgumentError, match="^HostConfig.Sysctls: net.ipv4.ip_forward"):
        build_spec_from({}, _body(HostConfig={"NetworkMode": "host",
                                              "Sysctls": {"net.ipv4.ip_forward": "1"}}),
                        _lookup, CID)
    with pytest.raises(InvalidArgumentError, match="^HostConfig.Ulimits: invalid ulimit type"):
        build_spec_from({}, _body(HostConfig={"Ulimits": [{"Name": "bogus"}]}), _lookup, CID)
    with pytest.raises(InvalidArgumentError, match="reserved for barque"):
        build_spec_from({}, _body(HostConfig={"Annotations": {"org.barque.overlay.upper": "/"}}),
                        _lookup, CID)
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY:
        warnings: list[str] = []
        spec = build_spec_from({}, _body(HostConfig={"Ulimits": [
            {"Name": "nofile", "Soft": hard + 5, "Hard": hard + 5}]}), _lookup, CID,
            warnings=warnings)
        assert {"type": "RLIMIT_NOFILE", "hard": hard, "soft": hard} in spec["process"]["rlimits"]
        assert len(warnings) == 1 and "nofile" in warnings[0]


def test_the_command_line_parses_into_one_body() -> None:
    from barque.cli.run import RunArgs, container_create

    body = container_create(RunArgs(
        image="busybox", command=["echo", "hi"], network="none", entrypoint="", env=["A=1"],
        dns=["192.0.2.1"], dns_search=["example.test"], dns_option=["ndots:1"],
        add_host=["db:192.0.2.2"], ulimit=["nofile=100:200", "nproc=50"], shm_size="8m",
        sysctl=["kernel.shmmax=5"], expose=["80", "53/udp", "8000-8001"], memory="16m",
        cpus=0.5, pids_limit=9, rm=True, label=["k=v"], volume=["/anon", "/host:/in:ro"],
        tmpfs=["/run:size=1m"], mount=["type=tmpfs,target=/m,tmpfs-size=4096"], init=True))
    host = body.host_config
    assert body.image == "busybox" and body.cmd == ["echo", "hi"] and body.entrypoint == []
    assert body.env == ["A=1"] and body.labels == {"k": "v"} and body.volumes == {"/anon": {}}
    assert host.dns == ["192.0.2.1"] and host.dns_search == ["example.test"]
    assert host.dns_options == ["ndots:1"] and host.extra_hosts == ["db:192.0.2.2"]
    assert host.ulimits == [models.Ulimit(name="nofile", soft=100, hard=200),
                            models.Ulimit(name="nproc", soft=50, hard=50)]
    assert host.shm_size == 8 << 20 and host.sysctls == {"kernel.shmmax": "5"}
    assert body.exposed_ports == {"80/tcp": {}, "53/udp": {}, "8000/tcp": {}, "8001/tcp": {}}
    assert host.memory == 16 << 20 and host.nano_cpus == 500_000_000 and host.pids_limit == 9
    assert host.auto_remove is True and host.init is True and host.network_mode == "none"
    assert host.binds == ["/host:/in:ro"] and host.tmpfs == {"/run": "size=1m"}
    assert host.mounts == [models.Mount(type="tmpfs", target="/m",
                                        tmpfs_options=models.TmpfsOptions(size_bytes=4096))]
    assert body.attach_stdout and not body.attach_stdin
    with pytest.raises(InvalidArgumentError, match='"--ulimit" flag'):
        container_create(RunArgs(image="busybox", network="none", ulimit=["nofile"]))


def test_api_mounts_keep_every_option_and_refuse_unsupported_ones() -> None:
    from barque.containers import CreateOptions
    from barque.models.options import body_from_options
    from barque.runtime.spec import RunOptions

    mount = {"Type": "volume", "Source": "data", "Target": "/d", "ReadOnly": True,
             "VolumeOptions": {"NoCopy": True, "Labels": {"a": "b"}}}
    body = body_from_options("busybox", RunOptions(), CreateOptions(mounts=[mount]))
    assert json.loads(models.encode(body))["HostConfig"]["Mounts"] == [mount]
    with pytest.raises(InvalidArgumentError, match="^HostConfig.Mounts: VolumeOptions.Subpath"):
        body_from_options("busybox", RunOptions(), CreateOptions(mounts=[
            {"Type": "volume", "Source": "data", "Target": "/d",
             "VolumeOptions": {"Subpath": "x"}}]))
    oci = {"destination": "/h", "type": "bind", "source": "/srv", "options": ["rbind", "ro"]}
    body = body_from_options("busybox", RunOptions(mounts=[oci]), CreateOptions())
    assert body.host_config.mounts == [models.Mount(type="bind", source="/srv", target="/h",
                                                    read_only=True)]
