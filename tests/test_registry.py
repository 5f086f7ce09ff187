"""The registry client against a real docker-registry (images pushed by real skopeo), against
scripted hostile servers, and the pure logic underneath (challenges, platforms, manifests)."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from msgspec.structs import replace
from barque.config import Settings
from barque.errors import (
    AuthenticationError,
    DigestMismatchError,
    InvalidManifestError,
    InvalidPlatformError,
    ManifestUnknownError,
    PlatformNotFoundError,
    RegistryError,
)
from barque.reference import Reference
from barque.registry.auth import (
    Credentials,
    load_docker_auths,
    normalize_auth_key,
    parse_www_authenticate,
)
from barque.registry.client import BlobStream, RegistryClient, is_plain_http
from barque.registry.manifest import (
    MEDIA_TYPE_DOCKER_MANIFEST,
    MEDIA_TYPE_OCI_INDEX,
    MEDIA_TYPE_OCI_MANIFEST,
    Descriptor,
    ImageIndex,
    ImageManifest,
    compression_of,
    parse_manifest,
)
from barque.registry.platform import Platform, host_platform, normalize_arch, select_manifest
from registry_server import FixtureImage, RegistryServer, Reply, Request, ScriptedServer

ARM64_DIGEST = "sha256:408b1c8cbc97219aeb3235fc058fd2bf5b90fd4517c17332e1c9031e4bde239d"
AMD64_DIGEST = "sha256:a6b78ff517c2be61493cd26a6de1f295a15e513a19e512233e64f35fd38e021e"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def client_for(settings: Settings, **kw: object) -> RegistryClient:
    return RegistryClient(settings, backoff=0.0, **kw)  # type: ignore[arg-type]


# ============================================================================ real registry

@pytest.mark.registry
@pytest.mark.parametrize("name", ["layers", "layers-zstd", "busybox", "multiarch"])
def test_manifest_digest_matches_skopeo(name: str, fixture_images: dict[str, FixtureImage],
                                        settings: Settings) -> None:
    image = fixture_images[name]
    with client_for(settings) as client:
        doc = client.get_manifest(Reference.parse(image.ref))
        assert doc.digest == image.digest
        assert doc.raw == image.raw
        assert doc.media_type == image.media_type
        assert isinstance(doc, ImageIndex) == (name == "multiarch")
        # the same document by digest
        pinned = client.get_manifest(Reference.parse(f"{image.ref}@{image.digest}"))
        assert pinned.raw == image.raw


@pytest.mark.registry
@pytest.mark.parametrize(("name", "compression", "media_type"), [
    ("layers", "gzip", MEDIA_TYPE_DOCKER_MANIFEST),
    ("layers-zstd", "zstd", MEDIA_TYPE_OCI_MANIFEST),
    ("busybox", "gzip", MEDIA_TYPE_OCI_MANIFEST),
])
def test_resolve_single_platform_images(name: str, compression: str, media_type: str,
                                        fixture_images: dict[str, FixtureImage],
                                        settings: Settings) -> None:
    image = fixture_images[name]
    ref = Reference.parse(image.ref)
    with client_for(settings) as client:
        manifest, index_digest = client.resolve(ref)
        assert index_digest is None
        assert manifest.digest == image.digest
        assert manifest.media_type == media_type
        assert {compression_of(layer.media_type) for layer in manifest.layers} == {compression}
        assert len(manifest.layers) == len(image.manifest["layers"])  # type: ignore[arg-type]
        config = client.get_config(ref, manifest.config)
        assert config == image.config
        assert sha(config) == manifest.config.digest


@pytest.mark.registry
@pytest.mark.parametrize(("platform", "digest"), [
    ("linux/amd64", AMD64_DIGEST),
    ("linux/arm64/v8", ARM64_DIGEST),
    ("linux/arm64", ARM64_DIGEST),
    ("linux/aarch64", ARM64_DIGEST),
])
def test_multiarch_resolves_each_platform(platform: str, digest: str,
                                          fixture_images: dict[str, FixtureImage],
                                          settings: Settings) -> None:
    image = fixture_images["multiarch"]
    ref = Reference.parse(image.ref)
    with client_for(settings) as client:
        manifest, index_digest = client.resolve(ref, Platform.parse(platform))
        assert index_digest == image.digest
        assert manifest.digest == digest
        config = client.get_config(ref, manifest.config)
        key = "linux/arm64/v8" if digest == ARM64_DIGEST else "linux/amd64"
        assert config == image.configs[key]
        labels = json.loads(config)["config"].get("Labels") or {}
        if key == "linux/arm64/v8":
            assert labels["fixture.platform"] == "linux/arm64/v8"
        else:
            assert "fixture.platform" not in labels


@pytest.mark.registry
def test_unknown_platform_lists_what_is_available(fixture_images: dict[str, FixtureImage],
                                                  settings: Settings) -> None:
    ref = Reference.parse(fixture_images["multiarch"].ref)
    with client_for(settings) as client, pytest.raises(PlatformNotFoundError) as exc:
        client.resolve(ref, Platform.parse("linux/s390x"))
    assert "linux/s390x" in str(exc.value)
    assert "linux/arm64/v8" in str(exc.value) and "linux/amd64" in str(exc.value)


@pytest.mark.registry
def test_missing_tag_and_repository(registry: RegistryServer,
                                    fixture_images: dict[str, FixtureImage],
                                    settings: Settings) -> None:
    with client_for(settings) as client:
        with pytest.raises(ManifestUnknownError) as exc:
            client.get_manifest(Reference.parse(registry.ref("fixtures/busybox:nope")))
        assert str(exc.value) == f"manifest unknown: {registry.host}/fixtures/busybox:nope"
        with pytest.raises(ManifestUnknownError):
            client.resolve(Reference.parse(registry.ref("fixtures/no-such-repo:1")))
        with pytest.raises(ManifestUnknownError):
            client.get_manifest(Reference.parse(registry.ref(f"fixtures/busybox@{sha(b'x')}")))
        assert isinstance(exc.value, LookupError)


@pytest.mark.registry
def test_blob_download_full_and_resumed(fixture_images: dict[str, FixtureImage],
                                        settings: Settings) -> None:
    image = fixture_images["layers"]
    ref = Reference.parse(image.ref)
    with client_for(settings) as client:
        manifest, _ = client.resolve(ref)
        layer = max(manifest.layers, key=lambda d: d.size)
        with client.open_blob(ref, layer) as stream:
            assert (stream.total, stream.offset) == (layer.size, 0)
            full = b"".join(stream.chunks(64 << 10))
        assert sha(full) == layer.digest and len(full) == layer.size
        offset = layer.size // 3
        with client.open_blob(ref, layer, offset=offset) as stream:
            assert stream.offset == offset and stream.total == layer.size
            tail = b"".join(stream.chunks())
            assert stream.received == layer.size - offset
        assert tail == full[offset:]
        with client.open_blob(ref, layer, offset=layer.size) as stream:
            assert list(stream.chunks()) == []
        with pytest.raises(ValueError):
            client.open_blob(ref, layer, offset=layer.size + 1)


@pytest.mark.registry
def test_one_client_from_many_threads(fixture_images: dict[str, FixtureImage],
                                      settings: Settings) -> None:
    jobs: list[tuple[Reference, Descriptor]] = []
    with client_for(settings) as client:
        for name in ("layers", "layers-zstd"):
            ref = Reference.parse(fixture_images[name].ref)
            manifest, _ = client.resolve(ref)
            jobs += [(ref, d) for d in manifest.layers]

        def fetch(job: tuple[Reference, Descriptor]) -> bool:
            with client.open_blob(*job) as s:
                h = hashlib.sha256()
                for chunk in s.chunks(4096):
                    h.update(chunk)
            return "sha256:" + h.hexdigest() == job[1].digest

        with ThreadPoolExecutor(max_workers=6) as pool:
            assert all(pool.map(fetch, jobs * 3))


@pytest.mark.registry
def test_config_is_verified_and_capped(fixture_images: dict[str, FixtureImage],
                                       settings: Settings) -> None:
    image = fixture_images["layers"]
    ref = Reference.parse(image.ref)
    with client_for(settings) as client:
        manifest, _ = client.resolve(ref)
        lying = replace(manifest.config, size=manifest.config.size - 1)
        with pytest.raises(DigestMismatchError):
            client.get_config(ref, lying)
        # a real blob fetched under another blob's digest is refused
        other = replace(manifest.layers[-1], digest=manifest.config.digest)
        with pytest.raises(DigestMismatchError):
            client.get_config(ref, other)
    with client_for(replace(settings, max_config_bytes=100)) as small, \
            pytest.raises(InvalidManifestError, match="max_config_bytes"):
        small.get_config(ref, manifest.config)
    with client_for(replace(settings, max_manifest_bytes=200)) as small, \
            pytest.raises(InvalidManifestError, match="max_manifest_bytes"):
        small.get_manifest(ref)


@pytest.mark.registry
def test_mirrors_first_then_the_registry(registry: RegistryServer,
                                         fixture_images: dict[str, FixtureImage],
                                         settings: Settings) -> None:
    image = fixture_images["busybox"]
    # The "registry" is unreachable; its mirror (the real registry) serves everything.
    dead = "127.0.0.1:9"
    mirrored = replace(settings, registry_mirrors={dead: (registry.url,)})
    ref = Reference.parse(f"{dead}/{image.repository}:{image.tag}")
    with client_for(mirrored) as client:
        manifest, _ = client.resolve(ref)
        assert manifest.digest == image.digest
        assert client.get_config(ref, manifest.config) == image.config
    # A dead mirror falls through to the registry itself.
    broken = replace(settings, registry_mirrors={registry.host: ("http://127.0.0.1:9",)})
    with client_for(broken) as client:
        manifest, _ = client.resolve(Reference.parse(image.ref))
        assert manifest.digest == image.digest


def test_connection_refused_is_one_line(settings: Settings) -> None:
    with client_for(settings) as client, pytest.raises(RegistryError) as exc:
        client.get_manifest(Reference.parse("127.0.0.1:9/fixtures/x:1"))
    assert str(exc.value) == "cannot connect to registry 127.0.0.1:9: connection refused"


# ============================================================================ authentication

@pytest.mark.registry
def test_auth_registry_without_credentials(auth_registry: RegistryServer,
                                          settings: Settings) -> None:
    ref = Reference.parse(auth_registry.ref("fixtures/busybox:1.35"))
    with client_for(settings) as client, pytest.raises(AuthenticationError) as exc:
        client.resolve(ref)
    msg = str(exc.value)
    assert msg.startswith(f"unauthorized: authentication required for {auth_registry.host}"
                          "/fixtures/busybox")
    assert "\n" not in msg


@pytest.mark.registry
@pytest.mark.parametrize(("style", "key"), [
    ("auth", None),
    ("fields", None),
    ("auth", "http://{host}/v1/"),
    ("fields", "https://{host}"),
])
def test_auth_registry_with_credentials(style: str, key: str | None,
                                        auth_registry: RegistryServer, settings: Settings,
                                        tmp_path: Path) -> None:
    image = auth_registry.image
    assert image is not None
    config = auth_registry.docker_config(
        tmp_path / "docker", style=style, key=key.format(host=auth_registry.host) if key else None)
    ref = Reference.parse(image.ref)
    with client_for(replace(settings, docker_config=config)) as client:
        manifest, _ = client.resolve(ref)
        assert manifest.digest == image.digest
        assert client.get_config(ref, manifest.config) == image.config
        with client.open_blob(ref, manifest.layers[0], offset=10) as stream:
            assert stream.offset == 10 and sum(map(len, stream.chunks())) == stream.total - 10


@pytest.mark.registry
def test_auth_registry_wrong_password(auth_registry: RegistryServer, settings: Settings,
                                      tmp_path: Path) -> None:
    config = auth_registry.docker_config(tmp_path / "docker", password="Xq9-not-it")
    ref = Reference.parse(auth_registry.ref("fixtures/busybox:1.35"))
    with client_for(replace(settings, docker_config=config)) as client, \
            pytest.raises(AuthenticationError) as exc:
        client.get_manifest(ref)
    assert str(exc.value).startswith("unauthorized: ")
    assert f"{auth_registry.host}/fixtures/busybox" in str(exc.value)
    assert "rejected" in str(exc.value) and "Xq9-not-it" not in str(exc.value)


# ============================================================================ hostile servers

def _manifest_bytes(layers: int = 1) -> tuple[bytes, bytes]:
    """(manifest, config) of a small valid OCI image."""
    config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    doc = {
        "schemaVersion": 2, "mediaType": MEDIA_TYPE_OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": sha(b"layer%d" % i), "size": 6} for i in range(layers)],
    }
    return json.dumps(doc).encode(), config


def _ref(server: ScriptedServer, rest: str = "hostile/x:1") -> Reference:
    return Reference.parse(f"{server.host}/{rest}")


def test_manifest_not_hashing_to_requested_digest(settings: Settings) -> None:
    manifest, _ = _manifest_bytes()
    wanted = sha(b"something else")
    with ScriptedServer() as srv, client_for(settings) as client:
        srv.routes[f"/v2/hostile/x/manifests/{wanted}"] = Reply(
            body=manifest, headers={"Content-Type": MEDIA_TYPE_OCI_MANIFEST})
        with pytest.raises(DigestMismatchError, match="hashes to"):
            client.get_manifest(_ref(srv, f"hostile/x@{wanted}"))


def test_tag_fetch_checks_docker_content_digest(settings: Settings) -> None:
    manifest, _ = _manifest_bytes()
    with ScriptedServer() as srv, client_for(settings) as client:
        srv.routes["/v2/hostile/x/manifests/1"] = Reply(body=manifest, headers={
            "Content-Type": MEDIA_TYPE_OCI_MANIFEST, "Docker-Content-Digest": sha(b"other")})
        with pytest.raises(DigestMismatchError, match="Docker-Content-Digest"):
            client.get_manifest(_ref(srv))
        srv.routes["/v2/hostile/x/manifests/1"] = Reply(body=manifest, headers={
            "Content-Type": MEDIA_TYPE_OCI_MANIFEST, "Docker-Content-Digest": sha(manifest)})
        doc = client.get_manifest(_ref(srv))
        assert isinstance(doc, ImageManifest) and doc.digest == sha(manifest)


def test_index_child_must_match_its_descriptor(settings: Settings) -> None:
    manifest, _ = _manifest_bytes()
    child_digest = sha(manifest)
    index = json.dumps({"schemaVersion": 2, "mediaType": MEDIA_TYPE_OCI_INDEX, "manifests": [
        {"mediaType": MEDIA_TYPE_OCI_MANIFEST, "digest": child_digest, "size": len(manifest) + 1,
         "platform": {"os": "linux", "architecture": "amd64"}}]}).encode()
    with ScriptedServer() as srv, client_for(settings) as client:
        srv.routes["/v2/hostile/x/manifests/1"] = Reply(body=index)
        srv.routes[f"/v2/hostile/x/manifests/{child_digest}"] = Reply(body=manifest)
        with pytest.raises(DigestMismatchError, match="its index says"):
            client.resolve(_ref(srv), Platform("linux", "amd64"))


def test_ambiguous_manifest_and_index_is_refused(settings: Settings) -> None:
    manifest, _ = _manifest_bytes()
    doc = json.loads(manifest)
    doc["manifests"] = [{"mediaType": MEDIA_TYPE_OCI_MANIFEST, "digest": sha(b"x"), "size": 1}]
    for media_type in (MEDIA_TYPE_OCI_MANIFEST, MEDIA_TYPE_OCI_INDEX, None):
        if media_type is None:
            doc.pop("mediaType", None)
        else:
            doc["mediaType"] = media_type
        body = json.dumps(doc).encode()
        with ScriptedServer() as srv, client_for(settings) as client:
            srv.routes["/v2/hostile/x/manifests/1"] = Reply(body=body)
            with pytest.raises(InvalidManifestError, match="ambiguous"):
                client.resolve(_ref(srv))


@pytest.mark.parametrize("close_delimited", [False, True])
def test_oversized_manifest_is_refused(close_delimited: bool, settings: Settings) -> None:
    manifest, _ = _manifest_bytes(layers=40)
    small = replace(settings, max_manifest_bytes=len(manifest) - 1)
    with ScriptedServer() as srv, client_for(small) as client:
        srv.routes["/v2/hostile/x/manifests/1"] = Reply(body=manifest,
                                                        close_delimited=close_delimited)
        with pytest.raises(InvalidManifestError, match="max_manifest_bytes"):
            client.get_manifest(_ref(srv))
    exact = replace(settings, max_manifest_bytes=len(manifest))
    with ScriptedServer() as srv, client_for(exact) as client:
        srv.routes["/v2/hostile/x/manifests/1"] = Reply(body=manifest,
                                                        close_delimited=close_delimited)
        assert client.get_manifest(_ref(srv)).raw == manifest


def test_redirect_to_other_host_drops_credentials(settings: Settings, tmp_path: Path) -> None:
    blob = b"layer bytes " * 1000
    digest = sha(blob)
    desc = Descriptor("application/vnd.oci.image.layer.v1.tar+gzip", digest, len(blob))
    creds = base64.b64encode(b"user:pass").decode()
    with ScriptedServer() as reg, ScriptedServer() as storage:
        config = tmp_path / "config.json"
        config.write_text(json.dumps({"auths": {reg.host: {"auth": creds}}}))

        def guarded(req: Request) -> Reply:
            if req.headers.get("authorization") != f"Basic {creds}":
                return Reply(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"no"}]}',
                             {"WWW-Authenticate": 'Basic realm="hostile"'})
            return Reply(307, headers={"Location": f"{storage.url}/storage/blob?sig=1"})

        reg.routes[f"/v2/hostile/x/blobs/{digest}"] = guarded
        storage.routes["/storage/blob"] = Reply(body=blob)
        with client_for(replace(settings, docker_config=config)) as client, \
                client.open_blob(_ref(reg), desc) as stream:
            assert b"".join(stream.chunks()) == blob
        assert reg.hits(f"/v2/hostile/x/blobs/{digest}")[-1].headers["authorization"]
        hits = storage.hits("/storage/blob")
        assert hits and all("authorization" not in h.headers for h in hits)


def test_bearer_token_flow_and_cache(settings: Settings, tmp_path: Path) -> None:
    manifest, config_bytes = _manifest_bytes()
    creds = base64.b64encode(b"alice:pw").decode()
    with ScriptedServer() as reg, ScriptedServer() as auth:
        cfg = tmp_path / "config.json"
        cfg.write_text(json.dumps({"auths": {f"http://{reg.host}/v1/": {"auth": creds}}}))

        def token(req: Request) -> Reply:
            if req.headers.get("authorization") != f"Basic {creds}":
                return Reply(401)
            return Reply(body=b'{"access_token":"tok-123","expires_in":300}')

        def guarded(body: bytes) -> Callable[[Request], Reply]:
            def handler(req: Request) -> Reply:
                if req.headers.get("authorization") != "Bearer tok-123":
                    return Reply(401, headers={"WWW-Authenticate":
                                               f'Bearer realm="{auth.url}/token",'
                                               f'service="hostile",'
                                               f'scope="repository:hostile/x:pull,push"'})
                return Reply(body=body, headers={"Content-Type": MEDIA_TYPE_OCI_MANIFEST})
            return handler

        auth.routes["/token"] = token
        reg.routes["/v2/hostile/x/manifests/1"] = guarded(manifest)
        reg.routes[f"/v2/hostile/x/blobs/{sha(config_bytes)}"] = guarded(config_bytes)
        with client_for(replace(settings, docker_config=cfg)) as client:
            for _ in range(3):
                m, _ = client.resolve(_ref(reg))
                assert client.get_config(_ref(reg), m.config) == config_bytes
        tokens = auth.hits("/token")
        assert len(tokens) == 1  # cached for the scope
        assert "service=hostile" in tokens[0].path
        assert "scope=repository%3Ahostile%2Fx%3Apull" in tokens[0].path
        # anonymous: the token service refuses, and that is an authentication error
        with client_for(settings) as client, pytest.raises(AuthenticationError,
                                                           match="authentication required"):
            client.resolve(_ref(reg))
        # wrong credentials
        cfg.write_text(json.dumps({"auths": {reg.host: {"username": "alice",
                                                         "password": "nope"}}}))
        with client_for(replace(settings, docker_config=cfg)) as client, \
                pytest.raises(AuthenticationError, match="incorrect username or password"):
            client.resolve(_ref(reg))


def test_credentials_never_go_to_a_plain_http_realm(settings: Settings,
                                                    tmp_path: Path) -> None:
    cfg = tmp_path / "config.json"
    with ScriptedServer() as reg:
        cfg.write_text(json.dumps({"auths": {reg.host: {"auth": "dTpw"}}}))
        reg.routes["/v2/hostile/x/manifests/1"] = Reply(401, headers={
            "WWW-Authenticate": 'Bearer realm="http://auth.example.invalid/token"'})
        with client_for(replace(settings, docker_config=cfg)) as client, \
                pytest.raises(AuthenticationError, match="plain HTTP"):
            client.get_manifest(_ref(reg))


def test_transient_errors_are_retried(settings: Settings) -> None:
    manifest, _ = _manifest_bytes()
    calls = {"n": 0}

    def flaky(req: Request) -> Reply:
        calls["n"] += 1
        return Reply(503) if calls["n"] < 3 else Reply(body=manifest)

    with ScriptedServer() as srv, client_for(settings) as client:
        srv.routes["/v2/hostile/x/manifests/1"] = flaky
        assert client.get_manifest(_ref(srv)).digest == sha(manifest)
        assert calls["n"] == 3
        srv.routes["/v2/hostile/x/manifests/2"] = Reply(
            500, b'{"errors":[{"code":"UNKNOWN","message":"disk on fire"}]}')
        with pytest.raises(RegistryError, match="disk on fire") as exc:
            client.get_manifest(_ref(srv, "hostile/x:2"))
        assert type(exc.value) is RegistryError
        assert len(srv.hits("/v2/hostile/x/manifests/2")) == settings.download_retries


def test_registry_error_message_is_passed_on(settings: Settings) -> None:
    with ScriptedServer() as srv, client_for(settings) as client:
        srv.routes["/v2/hostile/x/manifests/1"] = Reply(
            400, b'{"errors":[{"code":"NAME_INVALID","message":"invalid repository name"}]}')
        with pytest.raises(RegistryError, match="invalid repository name"):
            client.get_manifest(_ref(srv))
        srv.routes["/v2/hostile/x/manifests/2"] = Reply(
            403, b'{"errors":[{"code":"DENIED","message":"requested access is denied"}]}')
        with pytest.raises(AuthenticationError, match="denied: requested access is denied"):
            client.get_manifest(_ref(srv, "hostile/x:2"))


def test_blob_range_ignored_and_size_lies(settings: Settings) -> None:
    blob = bytes(range(256)) * 64
    digest = sha(blob)
    desc = Descriptor("application/vnd.oci.image.layer.v1.tar", digest, len(blob))
    path = f"/v2/hostile/x/blobs/{digest}"
    with ScriptedServer() as srv, client_for(settings) as client:
        srv.routes[path] = Reply(body=blob)  # ignores Range
        with client.open_blob(_ref(srv), desc, offset=100) as stream:
            assert stream.offset == 0
            assert b"".join(stream.chunks()) == blob
        assert srv.hits(path)[-1].headers["range"] == "bytes=100-"
        srv.routes[path] = Reply(body=blob + b"extra", close_delimited=True)
        with pytest.raises(DigestMismatchError, match="larger"), \
                client.open_blob(_ref(srv), desc) as stream:
            for _ in stream.chunks():
                pass
        srv.routes[path] = Reply(body=blob[:-10], close_delimited=True)
        with pytest.raises(RegistryError, match="ended after"), \
                client.open_blob(_ref(srv), desc) as stream:
            for _ in stream.chunks():
                pass
        srv.routes[path] = Reply(body=blob + b"x")
        with pytest.raises(DigestMismatchError):
            client.open_blob(_ref(srv), desc)
        srv.routes[path] = Reply(206, blob[50:], {"Content-Range": f"bytes 60-{len(blob) - 1}/"
                                                                   f"{len(blob)}"})
        with pytest.raises(RegistryError, match="Content-Range"):
            client.open_blob(_ref(srv), desc, offset=50)


# ============================================================================ pure logic

@pytest.mark.parametrize(("header", "expected"), [
    (('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
      'scope="repository:samalba/my-app:pull,push"'),
     [("bearer", {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                  "scope": "repository:samalba/my-app:pull,push"})]),
    ('Basic realm="Registry Realm"', [("basic", {"realm": "Registry Realm"})]),
    ('Bearer realm="a", Basic realm="b, c"',
     [("bearer", {"realm": "a"}), ("basic", {"realm": "b, c"})]),
    ('BEARER Realm="x\\"y" , Error="insufficient_scope"',
     [("bearer", {"realm": 'x"y', "error": "insufficient_scope"})]),
    ("Bearer realm=unquoted,service=svc", [("bearer", {"realm": "unquoted", "service": "svc"})]),
    (", , Basic", [("basic", {})]),
    ("Negotiate abc==, Basic realm=x", [("negotiate", {}), ("basic", {"realm": "x"})]),
    ('Bearer realm="unterminated', [("bearer", {"realm": "unterminated"})]),
    ("", []),
])
def test_www_authenticate_parser(header: str, expected: list[tuple[str, dict[str, str]]]
                                 ) -> None:
    got = parse_www_authenticate(header)
    assert [(c.scheme, dict(c.params)) for c in got] == expected


def test_www_authenticate_several_headers() -> None:
    got = parse_www_authenticate(['Basic realm="r"', 'Bearer realm="t",service="s"'])
    assert [c.scheme for c in got] == ["basic", "bearer"]
    assert got[1].realm == "t" and got[1].service == "s" and got[1].scope is None
    assert parse_www_authenticate("Negotiate abc==")[0].token68 == "abc=="


@pytest.mark.parametrize(("key", "host"), [
    ("https://index.docker.io/v1/", "docker.io"),
    ("index.docker.io", "docker.io"),
    ("registry-1.docker.io", "docker.io"),
    ("127.0.0.1:5000", "127.0.0.1:5000"),
    ("http://127.0.0.1:5000/v1/", "127.0.0.1:5000"),
    ("https://Registry.Example.com", "registry.example.com"),
])
def test_auth_keys_normalise(key: str, host: str) -> None:
    assert normalize_auth_key(key) == host


def test_docker_config_credentials(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    b64 = base64.b64encode
    path.write_text(json.dumps({"auths": {
        "https://index.docker.io/v1/": {"auth": b64(b"hub:pw:with:colons").decode()},
        "https://r.example.com/v1/": {"auth": b64(b"old:old").decode()},
        "r.example.com": {"username": "new", "password": "new"},
        "broken.example.com": {"auth": "%%%"},
        "empty.example.com": {},
    }, "credsStore": "desktop"}))
    auths = load_docker_auths(path)
    assert auths["docker.io"] == Credentials("hub", "pw:with:colons")
    assert auths["r.example.com"] == Credentials("new", "new")  # the bare host key wins
    assert "broken.example.com" not in auths and "empty.example.com" not in auths
    assert "pw" not in repr(auths["docker.io"])
    assert load_docker_auths(tmp_path / "missing.json") == {}
    (tmp_path / "bad.json").write_text("{not json")
    assert load_docker_auths(tmp_path / "bad.json") == {}


@pytest.mark.parametrize(("host", "plain"), [
    ("127.0.0.1:5000", True), ("127.1.2.3", True), ("localhost:5000", True), ("[::1]:5000", True),
    ("registry.example.com", False), ("10.0.0.5:5000", False), ("docker.io", False),
    ("insecure.example.com:5000", True), ("insecure.example.com:6000", False),
    ("bare.example.com:1234", True), ("192.168.7.9:5000", True),
])
def test_plain_http_hosts(host: str, plain: bool) -> None:
    insecure = ("insecure.example.com:5000", "bare.example.com", "192.168.0.0/16")
    assert is_plain_http(host, insecure) == plain


def test_docker_hub_endpoint(settings: Settings) -> None:
    with client_for(replace(settings, registry_mirrors={
            "docker.io": ("https://mirror.example.com/", "mirror2.example.com/prefix")})) as c:
        eps = c.endpoints("docker.io")
    assert [e.base for e in eps] == ["https://mirror.example.com",
                                     "https://mirror2.example.com/prefix",
                                     "https://registry-1.docker.io"]
    assert [e.cred_host for e in eps] == ["mirror.example.com", "mirror2.example.com",
                                          "docker.io"]
    assert eps[1].url("library/busybox", "manifests", "latest") == \
        "https://mirror2.example.com/prefix/v2/library/busybox/manifests/latest"


@pytest.mark.parametrize(("text", "expected"), [
    ("linux/arm64/v8", Platform("linux", "arm64", "v8")),
    ("linux/amd64", Platform("linux", "amd64")),
    ("Linux/AMD64", Platform("linux", "amd64")),
    ("windows/amd64", Platform("windows", "amd64")),
])
def test_platform_parse(text: str, expected: Platform) -> None:
    assert Platform.parse(text) == expected


def test_platform_parse_single_component_and_errors() -> None:
    host = host_platform()
    assert Platform.parse("linux") == Platform("linux", host.architecture, host.variant)
    assert Platform.parse("arm64") == Platform(host.os, "arm64")
    for bad in ("", "linux/", "a/b/c/d", "linux/arm64 /v8", "nonsense", "linux/../x"):
        with pytest.raises(InvalidPlatformError):
            Platform.parse(bad)
    assert str(Platform.parse("linux/arm/v7")) == "linux/arm/v7"


@pytest.mark.parametrize(("arch", "variant", "expected"), [
    ("x86_64", None, ("amd64", None)), ("x86-64", None, ("amd64", None)),
    ("amd64", "v1", ("amd64", None)), ("amd64", "v3", ("amd64", "v3")),
    ("aarch64", None, ("arm64", None)), ("arm64", "v8", ("arm64", None)),
    ("arm64", "8", ("arm64", None)), ("arm64", "v9", ("arm64", "v9")),
    ("armhf", None, ("arm", None)), ("armel", None, ("arm", "v6")),
    ("arm", "7", ("arm", None)), ("arm", "6", ("arm", "v6")), ("i386", None, ("386", None)),
])
def test_normalize_arch(arch: str, variant: str | None,
                        expected: tuple[str, str | None]) -> None:
    assert normalize_arch(arch, variant) == expected


def _entry(platform: str | None, n: int,
           media_type: str = MEDIA_TYPE_OCI_MANIFEST) -> Descriptor:
    p = None
    if platform is not None:
        parts = platform.split("/")
        p = Platform(parts[0], parts[1], parts[2] if len(parts) > 2 else None)
    return Descriptor(media_type, sha(b"%d" % n), 100, p)


@pytest.mark.parametrize(("entries", "want", "pick"), [
    (["linux/amd64", "linux/arm64/v8"], "linux/arm64", 1),
    (["linux/amd64", "linux/arm64"], "linux/arm64/v8", 1),
    (["linux/arm/v6", "linux/arm/v7", "linux/arm64"], "linux/arm/v7", 1),
    (["linux/arm/v5", "linux/arm/v6"], "linux/arm/v7", 1),  # the newest one v7 can run
    (["linux/arm"], "linux/arm/v7", 0),
    (["linux/amd64", "linux/amd64/v3"], "linux/amd64/v2", 0),
    (["linux/amd64/v2", "linux/amd64/v3"], "linux/amd64/v3", 1),
    (["windows/amd64", "linux/amd64"], "linux/amd64", 1),
    (["linux/amd64", "linux/amd64"], "linux/amd64", 0),  # ties keep the index's order
    (["linux/x86_64"], "linux/amd64", 0),
])
def test_select_manifest(entries: list[str], want: str, pick: int) -> None:
    descs = [_entry(p, i) for i, p in enumerate(entries)]
    assert select_manifest(descs, Platform.parse(want)) is descs[pick]


@pytest.mark.parametrize(("entries", "want"), [
    (["linux/amd64", "linux/arm64/v8"], "linux/s390x"),
    (["linux/arm/v7"], "linux/arm/v6"),  # an older CPU cannot run a newer variant
    (["linux/amd64/v3"], "linux/amd64"),
    (["linux/arm64"], "linux/arm/v7"),
    ([None], "linux/amd64"),  # entries without a platform are never guessed at
    (["unknown/unknown"], "linux/amd64"),
])
def test_select_manifest_refuses(entries: list[str | None], want: str) -> None:
    descs = [_entry(p, i) for i, p in enumerate(entries)]
    with pytest.raises(PlatformNotFoundError, match=f"no matching manifest for {want}"):
        select_manifest(descs, Platform.parse(want))


def test_select_manifest_skips_non_manifests() -> None:
    descs = [_entry("linux/amd64", 0, "application/vnd.in-toto+json"), _entry("linux/amd64", 1)]
    assert select_manifest(descs, Platform.parse("linux/amd64")) is descs[1]


def test_host_platform_is_normalised() -> None:
    p = host_platform()
    assert p.os == "linux"
    assert p.architecture in {"amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64"}
    assert p.matches(p.normalized())


@pytest.mark.parametrize(("media_type", "compression"), [
    ("application/vnd.docker.image.rootfs.diff.tar.gzip", "gzip"),
    ("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", "gzip"),
    ("application/vnd.oci.image.layer.v1.tar", "none"),
    ("application/vnd.oci.image.layer.v1.tar+gzip", "gzip"),
    ("application/vnd.oci.image.layer.v1.tar+zstd", "zstd"),
    ("application/vnd.oci.image.layer.nondistributable.v1.tar", "none"),
    ("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", "gzip"),
    ("application/vnd.oci.image.layer.nondistributable.v1.tar+zstd", "zstd"),
])
def test_compression_of(media_type: str, compression: str) -> None:
    assert compression_of(media_type) == compression


def test_compression_of_unknown() -> None:
    with pytest.raises(InvalidManifestError):
        compression_of("application/vnd.cncf.helm.chart.content.v1.tar+gzip")


def _doc(**changes: object) -> bytes:
    manifest, _ = _manifest_bytes()
    doc = json.loads(manifest)
    for k, v in changes.items():
        if v is None:
            doc.pop(k, None)
        else:
            doc[k] = v
    return json.dumps(doc).encode()


LAYER = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha(b"l"),
         "size": 1}


@pytest.mark.parametrize(("raw", "match"), [
    (b"\xff\xfe{}", "not JSON"),
    (b"[]", "not a JSON object"),
    (b'{"schemaVersion":2,"schemaVersion":2}', "duplicate key"),
    (_doc(schemaVersion=1), "schemaVersion 1"),
    (_doc(schemaVersion="2"), "schemaVersion"),
    (_doc(mediaType="application/vnd.docker.distribution.manifest.v1+prettyjws"), "schema 1"),
    (_doc(mediaType="application/vnd.example+json"), "unsupported manifest media type"),
    (_doc(layers=[{**LAYER, "digest": "sha256:" + "A" * 64}]), "invalid layer digest"),
    (_doc(layers=[{**LAYER, "digest": "sha512:" + "a" * 128}]), "invalid layer digest"),
    (_doc(layers=[{**LAYER, "digest": "sha256:../../../etc/passwd"}]), "invalid layer digest"),
    (_doc(layers=[{**LAYER, "digest": f"{sha(b'l')}\n"}]), "invalid layer digest"),
    (_doc(layers=[{**LAYER, "size": -1}]), "invalid size"),
    (_doc(layers=[{**LAYER, "size": 1.5}]), "invalid size"),
    (_doc(layers=[{**LAYER, "size": True}]), "invalid size"),
    (_doc(layers=[{**LAYER, "mediaType": "application/x-tar"}]), "unsupported layer media"),
    (_doc(config={"mediaType": "application/vnd.cncf.helm.config.v1+json",
                  "digest": sha(b"c"), "size": 1}), "not a container image"),
    (_doc(layers=None), "needs 'config' and 'layers'"),
    (_doc(mediaType=MEDIA_TYPE_OCI_INDEX), "ambiguous|needs a 'manifests' list"),
    (_doc(manifests=[]), "ambiguous"),
])
def test_manifest_refusals(raw: bytes, match: str) -> None:
    with pytest.raises(InvalidManifestError, match=match):
        parse_manifest(raw, sha(raw))


def test_manifest_parsing_details() -> None:
    raw = _doc(mediaType=None, layers=[{**LAYER, "urls": ["https://foreign.example/l"],
                                        "annotations": {"a": "b"}}])
    m = parse_manifest(raw, sha(raw), "application/vnd.oci.image.manifest.v1+json; charset=x")
    assert isinstance(m, ImageManifest)
    assert m.media_type == MEDIA_TYPE_OCI_MANIFEST and m.raw == raw and m.digest == sha(raw)
    assert m.layers[0].urls == ("https://foreign.example/l",)
    assert m.layers[0].annotations == {"a": "b"}
    assert m.layers[0].as_dict()["urls"] == ["https://foreign.example/l"]
    with pytest.raises(InvalidManifestError, match="contradicts"):
        parse_manifest(_doc(), sha(_doc()), MEDIA_TYPE_DOCKER_MANIFEST)
    index = json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": MEDIA_TYPE_OCI_MANIFEST, "digest": sha(b"1"), "size": 5,
         "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}}]}).encode()
    idx = parse_manifest(index, sha(index))
    assert isinstance(idx, ImageIndex) and idx.media_type == MEDIA_TYPE_OCI_INDEX
    assert idx.manifests[0].platform == Platform("linux", "arm64", "v8")


def test_blob_stream_type_is_exported() -> None:
    import barque.registry as reg

    assert reg.BlobStream is BlobStream
    assert reg.RegistryClient is RegistryClient
    with pytest.raises(AttributeError):
        _ = reg.Nope


def test_registry_package_import_is_light() -> None:
    import subprocess
    import sys

    code = ("import sys, barque.reference, barque.registry, barque.registry.platform, "
            "barque.registry.manifest; print('urllib3' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={"PYTHONPATH": ":".join(sys.path)})
    assert out.stdout.strip() == "False"


def test_threads_share_one_token_request(settings: Settings, tmp_path: Path) -> None:
    manifest, _ = _manifest_bytes()
    gate = threading.Event()
    with ScriptedServer() as reg, ScriptedServer() as auth:
        def token(req: Request) -> Reply:
            gate.wait(2)
            return Reply(body=b'{"token":"t"}')

        def guarded(req: Request) -> Reply:
            if req.headers.get("authorization") != "Bearer t":
                return Reply(401, headers={"WWW-Authenticate": f'Bearer realm="{auth.url}/t"'})
            return Reply(body=manifest)

        auth.routes["/t"] = token
        reg.routes["/v2/hostile/x/manifests/1"] = guarded
        with client_for(settings) as client, ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(client.get_manifest, _ref(reg)) for _ in range(4)]
            gate.set()
            assert {f.result().digest for f in futures} == {sha(manifest)}
        assert len(auth.hits("/t")) == 1
