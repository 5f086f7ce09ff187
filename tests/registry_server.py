"""Test instruments for registry work: a real ``docker-registry`` process, images pushed into it
with real ``skopeo``, and a scripted HTTP server for hostile-registry cases.

Used by ``conftest.py`` (fixtures ``registry``, ``fixture_images``, ``auth_registry``) and
importable directly (``from registry_server import ScriptedServer``) by any test module.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Self

REPO = Path(__file__).resolve().parents[1]
#: The read-only shared material (``../shared`` from the repository; ``BARQUE_SHARED`` overrides).
SHARED = Path(os.environ.get("BARQUE_SHARED") or REPO.parent / "shared")
IMAGES = SHARED / "fixtures" / "images"

DOCKER_REGISTRY = shutil.which("docker-registry") or "/usr/bin/docker-registry"
SKOPEO = shutil.which("skopeo") or "/usr/bin/skopeo"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(cmd: list[str], *, timeout: float = 120, input_text: str | None = None) -> str:
    """Run a command, return its stdout; raise with its stderr on failure."""
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          input=input_text, env=_clean_env(), check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr.strip()}")
    return proc.stdout


def _clean_env() -> dict[str, str]:
    # REGISTRY_* variables override docker-registry's config file; keep them out.
    return {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}


# --------------------------------------------------------------------------- docker-registry

@dataclass
class RegistryServer:
    """A running ``docker-registry`` (Distribution 2.x) on 127.0.0.1.

    ``host`` is ``127.0.0.1:PORT`` (what goes in an image reference), ``url`` is
    ``http://127.0.0.1:PORT``. ``username``/``password`` are set when it requires htpasswd auth.
    """

    host: str
    url: str
    root: Path
    log: Path
    process: subprocess.Popen[bytes]
    username: str | None = None
    password: str | None = None
    #: For ``auth_registry``: the image pushed into it.
    image: FixtureImage | None = None

    def ref(self, path: str) -> str:
        """``host/path``, e.g. ``registry.ref("fixtures/layers:1")``."""
        return f"{self.host}/{path}"

    @property
    def creds(self) -> str | None:
        """``user:password`` for skopeo's ``--creds`` (None without auth)."""
        return f"{self.username}:{self.password}" if self.username else None

    def docker_config(self, directory: Path, *, password: str | None = None,
                      key: str | None = None, style: str = "auth") -> Path:
        """Write a Docker client ``config.json`` with this registry's credentials; return it.

        ``password`` overrides the right one (to test refusal); ``key`` overrides the ``auths``
        key (default ``host``); ``style`` is ``"auth"`` (base64 ``user:pass``) or
        ``"fields"`` (``username``/``password``).
        """
        assert self.username is not None, "this registry has no credentials"
        secret = self.password if password is None else password
        entry: dict[str, str]
        if style == "auth":
            entry = {"auth": base64.b64encode(f"{self.username}:{secret}".encode()).decode()}
        else:
            entry = {"username": self.username, "password": secret or ""}
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "config.json"
        path.write_text(json.dumps({"auths": {key or self.host: entry}}))
        return path

    def stop(self) -> None:
        """Terminate the process (kill after 5 s)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def htpasswd_line(user: str, password: str) -> str:
    """A bcrypt htpasswd line (docker-registry accepts bcrypt only).

    Uses ``htpasswd -Bbn`` (Debian apache2-utils), else the ``bcrypt`` module.
    """
    tool = shutil.which("htpasswd")
    if tool:
        return run([tool, "-Bbn", user, password]).strip()
    import bcrypt  # type: ignore[import-not-found]

    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()
    return f"{user}:{hashed}"


def start_registry(workdir: Path, *, htpasswd: str | None = None,
                   timeout: float = 20.0, extra_config: str = "") -> RegistryServer:
    """Start ``docker-registry`` with storage in ``workdir`` and wait for ``/v2/`` to answer.

    ``htpasswd`` is the content of an htpasswd file (enables Basic auth); ``extra_config`` is
    YAML appended to the config (e.g. ``catalog:\n  maxentries: 2\n``). Raises RuntimeError
    with the registry's log if it does not come up.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    storage = workdir / "storage"
    storage.mkdir(exist_ok=True)
    auth = ""
    if htpasswd is not None:
        (workdir / "htpasswd").write_text(htpasswd + "\n")
        auth = (f"auth:\n  htpasswd:\n    realm: barque-tests\n"
                f"    path: {json.dumps(str(workdir / 'htpasswd'))}\n")
    last_error = ""
    for _ in range(3):  # the free port can be taken between choosing and binding it
        port = free_port()
        config = workdir / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {json.dumps(str(storage))}\n"
            "  delete:\n    enabled: true\n"
            "  maintenance:\n    uploadpurging:\n      enabled: false\n"
            f"http:\n  addr: 127.0.0.1:{port}\n  secret: barque-tests-secret\n"
            + auth + extra_config)
        log = workdir / "registry.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen([DOCKER_REGISTRY, "serve", str(config)], stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=_clean_env())
        host = f"127.0.0.1:{port}"
        server = RegistryServer(host, f"http://{host}", storage, log, proc)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                urllib.request.urlopen(f"{server.url}/v2/", timeout=1).close()
                return server
            except urllib.error.HTTPError as e:
                if e.code == 401:  # up, and asking for credentials
                    return server
            except OSError:
                pass
            time.sleep(0.05)
        server.stop()
        last_error = log.read_text(errors="replace")[-2000:]
    raise RuntimeError(f"docker-registry did not start:\n{last_error}")


# --------------------------------------------------------------------------- skopeo

@dataclass(frozen=True)
class FixtureImage:
    """A shared fixture image pushed into a test registry, with what skopeo says about it.

    ``str(image)`` is its reference. ``raw`` is ``skopeo inspect --raw`` (the manifest or index
    bytes as stored), ``digest`` skopeo's ``{{.Digest}}`` (checked equal to sha256(raw)),
    ``configs`` maps platform (``linux/amd64``, ``linux/arm64/v8``) to the raw config bytes
    from ``skopeo inspect --config --raw``.
    """

    name: str
    ref: str
    repository: str
    tag: str
    raw: bytes = field(repr=False)
    digest: str
    configs: dict[str, bytes] = field(repr=False)

    def __str__(self) -> str:
        return self.ref

    @property
    def manifest(self) -> dict[str, object]:
        """The parsed manifest/index JSON."""
        doc: dict[str, object] = json.loads(self.raw)
        return doc

    @property
    def media_type(self) -> str:
        """The document's ``mediaType``."""
        return str(self.manifest.get("mediaType"))

    @property
    def config(self) -> bytes:
        """The config of a single-platform image (the linux/amd64 one for an index)."""
        if len(self.configs) == 1:
            return next(iter(self.configs.values()))
        return self.configs["linux/amd64"]


def skopeo_copy(source: str, dest_ref: str, *, all_images: bool = False,
                creds: str | None = None, preserve_digests: bool = False) -> None:
    """``skopeo copy`` into a plain-HTTP registry (no signature policy needed)."""
    cmd = [SKOPEO, "--insecure-policy", "copy", "-q", "--dest-tls-verify=false"]
    if all_images:
        cmd.append("--all")
    if preserve_digests:
        cmd.append("--preserve-digests")
    if creds:
        cmd += ["--dest-creds", creds]
    run(cmd + [source, f"docker://{dest_ref}"], timeout=300)


def skopeo_inspect(ref: str, *args: str, creds: str | None = None) -> bytes:
    """``skopeo inspect ARGS docker://ref`` against a plain-HTTP registry, stdout as bytes."""
    cmd = [SKOPEO, "inspect", "--tls-verify=false", *args]
    if creds:
        cmd += ["--creds", creds]
    proc = subprocess.run(cmd + [f"docker://{ref}"], capture_output=True, timeout=120,
                          env=_clean_env(), check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"skopeo inspect {ref} failed: {proc.stderr.decode().strip()}")
    return proc.stdout


def describe_pushed(name: str, ref: str, creds: str | None = None) -> FixtureImage:
    """Ask skopeo what the registry holds under ``ref``."""
    raw = skopeo_inspect(ref, "--raw", creds=creds)
    digest = skopeo_inspect(ref, "--format", "{{.Digest}}", creds=creds).decode().strip()
    actual = "sha256:" + hashlib.sha256(raw).hexdigest()
    if digest != actual:
        raise RuntimeError(f"skopeo reports {digest} for {ref} but its raw bytes hash to {actual}")
    doc = json.loads(raw)
    configs: dict[str, bytes] = {}
    if "manifests" in doc:
        for entry in doc["manifests"]:
            p = entry.get("platform") or {}
            args = ["--override-os", p["os"], "--override-arch", p["architecture"]]
            key = f"{p['os']}/{p['architecture']}"
            if p.get("variant"):
                args += ["--override-variant", p["variant"]]
                key += f"/{p['variant']}"
            configs[key] = skopeo_inspect(ref, "--config", "--raw", *args, creds=creds)
    else:
        config = skopeo_inspect(ref, "--config", "--raw", creds=creds)
        c = json.loads(config)
        key = f"{c.get('os')}/{c.get('architecture')}"
        if c.get("variant"):
            key += f"/{c['variant']}"
        configs[key] = config
    path = ref.partition("/")[2]
    repository, _, tag = path.rpartition(":")
    return FixtureImage(name, ref, repository, tag, raw, digest, configs)


#: name -> (skopeo source relative to IMAGES, destination path, copy --all)
FIXTURE_SOURCES: dict[str, tuple[str, str, bool]] = {
    "layers": ("docker-archive:{images}/layers-1.docker.tar", "fixtures/layers:1", False),
    "layers-zstd": ("oci:{images}/layers-1-zstd.oci:1", "fixtures/layers-zstd:1", False),
    "busybox": ("oci:{images}/busybox-1.35.oci:1.35", "fixtures/busybox:1.35", False),
    "multiarch": ("oci:{images}/multiarch.oci:multi", "fixtures/multiarch:1", True),
}


def push_fixture(name: str, server: RegistryServer, images: Path = IMAGES) -> FixtureImage:
    """Push one of :data:`FIXTURE_SOURCES` into ``server`` and describe it."""
    source, dest, all_images = FIXTURE_SOURCES[name]
    ref = server.ref(dest)
    skopeo_copy(source.format(images=images), ref, all_images=all_images, creds=server.creds)
    image = describe_pushed(name, ref, server.creds)
    if name == "layers-zstd" and not _all_zstd(image):
        # skopeo recompressed on the way: push again keeping the blobs as they are
        skopeo_copy(source.format(images=images), ref, creds=server.creds,
                    preserve_digests=True)
        image = describe_pushed(name, ref, server.creds)
        if not _all_zstd(image):
            raise RuntimeError(f"{ref}: layers are not tar+zstd after the push")
    return image


def _all_zstd(image: FixtureImage) -> bool:
    layers = image.manifest.get("layers")
    return isinstance(layers, list) and all(
        str(layer.get("mediaType", "")).endswith("+zstd") for layer in layers)


# --------------------------------------------------------------------------- scripted server

@dataclass
class Request:
    """One request a :class:`ScriptedServer` received (header names lowercased)."""

    method: str
    path: str
    headers: dict[str, str]
    server: str


@dataclass
class Reply:
    """What a route answers: by default with ``Content-Length: len(body)``.

    ``content_length`` sends that value instead (a lie, to test framing checks);
    ``close_delimited`` sends no length and ends the body by closing the connection.
    """

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_length: int | None = None
    close_delimited: bool = False


Handler = Callable[[Request], Reply]


class ScriptedServer:
    """A tiny HTTP server on 127.0.0.1 answering from a route table, recording every request.

    ``routes[path]`` is a :class:`Reply` or a function ``Request -> Reply`` (exact path match,
    query string excluded; unknown paths get 404). For hostile-registry tests only: the real
    registry is the fixture ``registry``.
    """

    def __init__(self) -> None:
        self.routes: dict[str, Reply | Handler] = {}
        self.requests: list[Request] = []
        outer = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _serve(self) -> None:
                req = Request(self.command, self.path,
                              {k.lower(): v for k, v in self.headers.items()}, outer.host)
                outer.requests.append(req)
                route = outer.routes.get(self.path.split("?", 1)[0])
                if route is None:
                    reply = Reply(404, b'{"errors":[{"code":"NOT_FOUND","message":"no route"}]}')
                else:
                    reply = route(req) if callable(route) else route
                self.send_response(reply.status)
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                if reply.close_delimited:
                    self.send_header("Connection", "close")
                else:
                    length = len(reply.body) if reply.content_length is None \
                        else reply.content_length
                    self.send_header("Content-Length", str(length))
                self.end_headers()
                if self.command != "HEAD":
                    try:
                        self.wfile.write(reply.body)
                    except OSError:
                        pass
                if reply.close_delimited or reply.content_length is not None:
                    self.close_connection = True

            do_GET = do_HEAD = do_POST = do_PUT = _serve

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self.host = f"127.0.0.1:{self._httpd.server_address[1]}"
        self.url = f"http://{self.host}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,),
                                        daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def hits(self, path: str) -> list[Request]:
        """Requests received for ``path`` (query string excluded)."""
        return [r for r in self.requests if r.path.split("?", 1)[0] == path]

