"""``-v``, ``--mount`` and ``--tmpfs`` parsing (pure logic: no store, no containers)."""

from __future__ import annotations

import pytest

from barque.errors import InvalidArgumentError
from barque.runtime.mountspec import (
    MountSpec,
    check_duplicates,
    from_api,
    parse_mount,
    parse_tmpfs,
    parse_volume,
    valid_volume_name,
)


@pytest.mark.parametrize("raw, expected", [
    ("/data", MountSpec("volume", "/data", "", mode="z")),
    ("vol:/data", MountSpec("volume", "/data", "vol", mode="z")),
    ("vol:/data/../srv//x/", MountSpec("volume", "/srv/x", "vol", mode="z")),
    ("vol:/data:ro", MountSpec("volume", "/data", "vol", read_only=True, mode="ro")),
    ("vol:/data:nocopy,rw", MountSpec("volume", "/data", "vol", nocopy=True, mode="nocopy,rw")),
    ("/host/dir/:/data", MountSpec("bind", "/data", "/host/dir", create_host_path=True)),
    ("/host:/data:ro,rshared", MountSpec("bind", "/data", "/host", read_only=True,
                                         propagation="rshared", create_host_path=True,
                                         mode="ro,rshared")),
    ("/host:/data:z", MountSpec("bind", "/data", "/host", create_host_path=True, mode="z")),
])
def test_volume_flag(raw: str, expected: MountSpec) -> None:
    assert parse_volume(raw) == expected


@pytest.mark.parametrize("raw, message", [
    ("vol:data", "invalid volume specification: 'vol:data': invalid mount config for type "
                 "\"volume\": invalid mount path: 'data' mount path must be absolute"),
    ("relative", "mount path must be absolute"),
    ("vol:/", "destination can't be '/'"),
    ("/host:/..", "destination can't be '/'"),
    ("/data:ro", "invalid volume specification: '/data:ro'"),
    ("a:/b:ro:extra", "invalid volume specification: 'a:/b:ro:extra'"),
    ("vol:/data:bogus", "invalid mode: bogus"),
    ("vol:/data:ro,rw", "invalid mode: ro,rw"),
    ("vol:/data:rshared", 'field BindOptions must not be specified'),
    ("/host:/data:nocopy", 'field VolumeOptions must not be specified'),
    ("bad/name:/data", 'includes invalid characters for a local volume name'),
    ("./rel:/data", 'includes invalid characters for a local volume name'),
    ("..:/data", 'includes invalid characters for a local volume name'),
    ("a:/data", 'includes invalid characters for a local volume name'),  # 2 characters at least
    ("x" * 256 + ":/data", "is too long"),
    ("vol:", "invalid volume specification: 'vol:'"),
])
def test_volume_flag_errors(raw: str, message: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        parse_volume(raw)
    assert message in str(info.value)


def test_volume_names() -> None:
    assert valid_volume_name("ab") and valid_volume_name("a.b-c_d") and \
        valid_volume_name("x" * 255)
    for bad in ("", "a", ".a", "_a", "-a", "a/b", "a b", "..", "x" * 256, "é1"):
        assert not valid_volume_name(bad), bad


@pytest.mark.parametrize("raw, expected", [
    ("type=volume,source=v1,target=/d", MountSpec("volume", "/d", "v1")),
    ("target=/d", MountSpec("volume", "/d", "")),  # type defaults to volume: anonymous
    ("type=volume,src=v1,dst=/d,readonly,volume-nocopy",
     MountSpec("volume", "/d", "v1", read_only=True, nocopy=True)),
    ("type=volume,source=v1,destination=/d,ro=false,volume-label=a=b",
     MountSpec("volume", "/d", "v1")),
    ("type=bind,source=/h/,target=/d,bind-propagation=rslave",
     MountSpec("bind", "/d", "/h", propagation="rslave")),
    ("type=tmpfs,target=/t,tmpfs-size=1m,tmpfs-mode=1777",
     MountSpec("tmpfs", "/t", tmpfs_options=("noexec", "nosuid", "nodev", "size=1048576",
                                             "mode=1777"))),
])
def test_mount_flag(raw: str, expected: MountSpec) -> None:
    assert parse_mount(raw) == expected


def test_mount_flag_keeps_volume_labels() -> None:
    assert parse_mount("source=v1,target=/d,volume-label=a=b").labels == {"a": "b"}


@pytest.mark.parametrize("raw, message", [
    ("type=volume,source=v,target=/d,bogus=1", "unexpected key 'bogus' in 'bogus=1'"),
    ("type=volume,source=v,target=/d,bogus", "invalid field 'bogus' must be a key=value pair"),
    ("type=nfs,target=/d", "invalid mount type 'nfs'"),
    ("type=volume,source=v", "target is required"),
    ("type=bind,target=/d", 'invalid mount config for type "bind": field Source must not be '
                            "empty"),
    ("type=bind,source=rel,target=/d", "'rel' mount path must be absolute"),
    ("type=tmpfs,source=x,target=/d", "field Source must not be specified"),
    ("type=bind,source=/h,target=/d,volume-nocopy", "cannot mix 'volume-*' options with mount "
                                                    "type 'bind'"),
    ("type=volume,target=/d,tmpfs-size=1m", "cannot mix 'tmpfs-*' options"),
    ("type=tmpfs,target=/d,bind-propagation=shared", "cannot mix 'bind-*' options"),
    ("type=tmpfs,target=/d,tmpfs-mode=99", "invalid value for tmpfs-mode: 99"),
    ("type=tmpfs,target=/d,tmpfs-size=big", "invalid value for tmpfs-size: big"),
    ("type=volume,target=/d,readonly=maybe", "invalid value for readonly: maybe"),
    ("type=volume,source=a/b,target=/d", "includes invalid characters"),
    ("type=volume,target=/", "destination can't be '/'"),
    ("type=bind,source=/h,target=d", "'d' mount path must be absolute"),
])
def test_mount_flag_errors(raw: str, message: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        parse_mount(raw)
    assert message in str(info.value)


def test_tmpfs_flag() -> None:
    assert parse_tmpfs("/run") == MountSpec("tmpfs", "/run",
                                            tmpfs_options=("noexec", "nosuid", "nodev"))
    spec = parse_tmpfs("/run/:size=64m,mode=1777,exec,ro")
    assert spec.target == "/run" and spec.read_only
    assert spec.tmpfs_options == ("noexec", "nosuid", "nodev", "size=67108864", "mode=1777",
                                  "exec")  # later options win: exec overrides noexec
    assert "size=50%" in parse_tmpfs("/t:size=50%").tmpfs_options
    for bad, message in (("/t:bogus", 'invalid tmpfs option "bogus"'),
                         ("/t:size=lots", 'invalid tmpfs size "lots"'),
                         ("/t:mode=999", 'invalid tmpfs mode "999"'),
                         ("/t:uid=root", 'invalid tmpfs option "uid=root"'),
                         ("t", "mount path must be absolute"), ("/", "destination can't be")):
        with pytest.raises(InvalidArgumentError, match=message):
            parse_tmpfs(bad)


def test_duplicates_are_refused_across_flags() -> None:
    check_duplicates([parse_volume("a1:/a"), parse_volume("a1:/b")])
    with pytest.raises(InvalidArgumentError, match="Duplicate mount point: /a"):
        check_duplicates([parse_volume("a1:/a"), parse_tmpfs("/a/")])


def test_python_api_forms() -> None:
    assert from_api({"v1": {"bind": "/d", "mode": "ro"}}, kind="volumes") == \
        [parse_volume("v1:/d:ro")]
    assert from_api("v1:/d", kind="volumes") == [parse_volume("v1:/d")]
    assert from_api({"Type": "bind", "Source": "/h", "Target": "/d", "ReadOnly": True,
                     "BindOptions": {"Propagation": "rshared"}}, kind="mounts") == \
        [MountSpec("bind", "/d", "/h", read_only=True, propagation="rshared")]
    assert from_api("type=tmpfs,target=/t", kind="mounts")[0].type == "tmpfs"
    with pytest.raises(InvalidArgumentError):
        from_api(42, kind="mounts")
