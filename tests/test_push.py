"""`barque push` against a real docker-registry, checked with skopeo and by the requests the
registry received (a counting proxy in front of it)."""

from __future__ import annotations

import hashlib
import json
import uuid

import pytest

from helpers import barque
from registry_server import SKOPEO, run, skopeo_inspect
from throttle_proxy import ThrottleProxy

pytestmark = pytest.mark.registry


@pytest.fixture
def proxy(registry):  # type: ignore[no-untyped-def]
    """A pass-through proxy to the shared registry that records every request."""
    with ThrottleProxy(registry.host) as p:
        yield p


def _repo(prefix: str) -> str:
    """A repository no other test pushes to (the registry is shared by the session)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _diff_ids(fx) -> list[str]:  # type: ignore[no-untyped-def]
    return json.loads(fx.config)["rootfs"]["diff_ids"]


def _summary(stdout: str) -> tuple[str, str, int]:
    """(tag, digest, size) from Docker's last push line ``TAG: digest: sha256:... size: N``."""
    tag, _, rest = stdout.splitlines()[-1].partition(": digest: ")
    digest, _, size = rest.partition(" size: ")
    return tag, digest, int(size)


def _uploads(proxy: ThrottleProxy) -> list[tuple[str, str]]:
    """Requests that send blob bytes or open an upload session (mounts included)."""
    return [(m, p) for m, p, _ in proxy.requests
            if m in ("POST", "PATCH") or (m == "PUT" and "/blobs/uploads/" in p)]


def test_push_of_a_pulled_image_keeps_its_digest(tmp_path, registry, proxy,
                                                 fixture_images) -> None:
    fx = fixture_images["layers"]
    root = tmp_path / "root"
    barque(root, "pull", "-q", fx.ref)
    # Under the proxy's name the registry is another one to barque: nothing to mount from.
    target = f"{proxy.host}/{_repo('pushed')}:1"
    barque(root, "tag", fx.ref, target)

    out = barque(root, "push", target).stdout
    tag, digest, size = _summary(out)
    assert out.splitlines()[0] == f"The push refers to repository [{target.rsplit(':', 1)[0]}]"
    assert (tag, digest, size) == ("1", fx.digest, len(fx.raw))
    # skopeo asks the registry directly (the proxy folds repeated Accept headers into one)
    direct = target.replace(proxy.host, registry.host)
    served = skopeo_inspect(direct, "--format", "{{.Digest}}").decode().strip()
    assert served == digest
    assert skopeo_inspect(direct, "--raw") == fx.raw
    puts = [p for m, p in _uploads(proxy) if m == "PUT"]
    assert len(puts) == len(fx.manifest["layers"]) + 1  # type: ignore[arg-type]  (+ config)
    for diff_id in _diff_ids(fx):
        assert f"{diff_id[7:19]}: Pushed" in out.splitlines()

    # skopeo copies it out unchanged: the manifest and every blob hash to their digests
    copy = tmp_path / "copy"
    run([SKOPEO, "--insecure-policy", "copy", "-q", "--src-tls-verify=false",
         f"docker://{direct}", f"dir:{copy}"])
    assert (copy / "manifest.json").read_bytes() == fx.raw
    for layer in fx.manifest["layers"]:  # type: ignore[union-attr]
        blob = (copy / layer["digest"][7:]).read_bytes()
        assert "sha256:" + hashlib.sha256(blob).hexdigest() == layer["digest"]

    # the store learned where the image now lives, as Docker records RepoDigests
    repo_digests = json.loads(barque(root, "inspect", target).stdout)[0]["RepoDigests"]
    assert f"{target.rsplit(':', 1)[0]}@{digest}" in repo_digests

    # and a fresh store pulls it back to the same image
    fresh = tmp_path / "fresh"
    barque(fresh, "pull", "-q", direct)
    inspected = json.loads(barque(fresh, "inspect", direct).stdout)[0]
    assert inspected["Id"] == fx.manifest["config"]["digest"]  # type: ignore[index]


def test_second_push_uploads_nothing(tmp_path, proxy, fixture_images) -> None:
    fx = fixture_images["busybox"]
    root = tmp_path / "root"
    barque(root, "pull", "-q", f"{proxy.host}/{fx.repository}:{fx.tag}")
    target = f"{proxy.host}/{_repo('twice')}:1.35"
    barque(root, "tag", f"{proxy.host}/{fx.repository}:{fx.tag}", target)
    first = barque(root, "push", target).stdout
    assert _summary(first)[1] == fx.digest

    proxy.requests.clear()
    second = barque(root, "push", target).stdout.splitlines()
    for diff_id in _diff_ids(fx):
        assert f"{diff_id[7:19]}: Layer already exists" in second
    assert _summary("\n".join(second))[1] == fx.digest
    assert _uploads(proxy) == []
    heads = [p for m, p, _ in proxy.requests if m == "HEAD"]
    assert len(heads) == len(fx.manifest["layers"]) + 1  # type: ignore[arg-type]  (+ config)
    assert [m for m, p, _ in proxy.requests if "/manifests/" in p] == ["PUT"]


def test_blobs_of_another_repository_are_mounted_not_uploaded(tmp_path, proxy,
                                                              fixture_images) -> None:
    fx = fixture_images["layers"]
    root = tmp_path / "root"
    source = f"{proxy.host}/{fx.repository}:{fx.tag}"
    barque(root, "pull", "-q", source)
    target = f"{proxy.host}/{_repo('mounted')}:1"
    barque(root, "tag", source, target)
    proxy.requests.clear()

    out = barque(root, "push", target).stdout.splitlines()
    for diff_id in _diff_ids(fx):
        assert f"{diff_id[7:19]}: Mounted from {fx.repository}" in out
    mounts = [p for m, p in _uploads(proxy) if m == "POST"]
    digests = [layer["digest"] for layer in fx.manifest["layers"]]  # type: ignore[union-attr]
    digests.append(fx.manifest["config"]["digest"])  # type: ignore[index]
    assert sorted(p.split("mount=")[1].split("&")[0] for p in mounts) == sorted(digests)
    assert all(f"from={fx.repository}" in p for p in mounts)
    # no bytes travelled: no PATCH, no PUT to an upload session
    assert [m for m, _ in _uploads(proxy) if m != "POST"] == []
    assert skopeo_inspect(target.replace(proxy.host, proxy.upstream), "--raw") == fx.raw


def test_large_blobs_go_in_chunks(tmp_path, registry, proxy, fixture_images) -> None:
    fx = fixture_images["layers"]
    root = tmp_path / "root"
    config = tmp_path / "barque.toml"
    config.write_text("upload_chunk_bytes = 262144\n")
    barque(root, "pull", "-q", fx.ref)  # pulled from the registry directly: nothing to mount
    target = f"{proxy.host}/{_repo('chunked')}:1"
    barque(root, "tag", fx.ref, target)
    proxy.requests.clear()

    out = barque(root, "--config", str(config), "push", target).stdout
    assert _summary(out)[1] == fx.digest
    sizes = {layer["digest"]: layer["size"] for layer in fx.manifest["layers"]}  # type: ignore
    large = [d for d, s in sizes.items() if s > 262144]
    assert large, "the fixture should have a layer over 256 KiB"
    patches = [p for m, p in _uploads(proxy) if m == "PATCH"]
    assert len(patches) == sum(-(-sizes[d] // 262144) for d in large)
    assert skopeo_inspect(registry.ref(target.split("/", 1)[1]), "--raw") == fx.raw


def test_zstd_image_keeps_its_blobs(tmp_path, registry, fixture_images) -> None:
    fx = fixture_images["layers-zstd"]
    root = tmp_path / "root"
    barque(root, "pull", "-q", fx.ref)
    target = registry.ref(f"{_repo('zstd')}:1")
    barque(root, "tag", fx.ref, target)
    assert barque(root, "push", "-q", target).stdout == target + "\n"
    raw = skopeo_inspect(target, "--raw")
    assert raw == fx.raw
    assert all(layer["mediaType"].endswith("+zstd") for layer in json.loads(raw)["layers"])
    copy = tmp_path / "oci"
    run([SKOPEO, "--insecure-policy", "copy", "-q", "--src-tls-verify=false",
         f"docker://{target}", f"oci:{copy}:1"])
    index = json.loads((copy / "index.json").read_text())
    assert index["manifests"][0]["digest"] == fx.digest


def test_push_errors_are_one_line(tmp_path, registry, fixture_images) -> None:
    root = tmp_path / "root"
    missing = barque(root, "push", registry.ref("nothing/here:1"), check=False)
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1
    assert "An image does not exist locally with the tag" in missing.stderr

    fx = fixture_images["busybox"]
    barque(root, "pull", "-q", fx.ref)
    barque(root, "tag", fx.ref, "127.0.0.1:1/x/y:z")
    down = barque(root, "push", "127.0.0.1:1/x/y:z", check=False)
    assert down.returncode == 1 and down.stderr.count("\n") == 1
    assert "127.0.0.1:1" in down.stderr and "refused" in down.stderr

    target = registry.ref(f"{_repo('noblob')}:1")
    barque(root, "tag", fx.ref, target)
    layer = fx.manifest["layers"][0]["digest"]  # type: ignore[index]
    (root / "blobs" / "sha256" / layer[7:]).unlink()  # a layer whose blob was not kept
    lost = barque(root, "push", target, check=False)
    assert lost.returncode == 1 and lost.stderr.count("\n") == 1
    assert f"layer blob {layer} is not in the store" in lost.stderr



def test_push_to_a_registry_requiring_login(tmp_path, auth_registry) -> None:
    image = auth_registry.image
    docker_dir = tmp_path / "docker"
    auth_registry.docker_config(docker_dir)
    env = {"DOCKER_CONFIG": str(docker_dir)}
    root = tmp_path / "root"
    barque(root, "pull", "-q", image.ref, env=env)
    target = auth_registry.ref(f"{_repo('authed')}:1")
    barque(root, "tag", image.ref, target)
    out = barque(root, "push", target, env=env).stdout
    assert _summary(out)[1] == image.digest
    assert skopeo_inspect(target, "--raw", creds=auth_registry.creds) == image.raw

    refused = barque(root, "push", target, check=False,
                     env={"DOCKER_CONFIG": str(tmp_path / "nobody")})
    assert refused.returncode == 1 and "unauthorized" in refused.stderr

