"""`barque login`/`logout` against a real htpasswd-protected docker-registry: the login is
checked before anything is saved, and what is saved is what skopeo (and Docker) read."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from helpers import cli
from registry_server import SKOPEO, Reply, Request, ScriptedServer

pytestmark = pytest.mark.registry

#: Keys of a Docker config that are not barque's: they must survive login and logout.
OTHER_KEYS = {"detachKeys": "ctrl-x,x",
              "auths": {"other.example:5000": {"auth": base64.b64encode(b"u:p").decode()}}}


def _barque(home: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """The CLI with HOME at ``home`` (so ~/.docker/config.json is the test's) and no tty."""
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_CONFIG"}
    env["HOME"] = str(home)
    return subprocess.run([*cli(), "--root", str(home / "root"), *args],
                          capture_output=True, text=True, input=stdin, env=env, timeout=120)


def _skopeo_inspect(ref: str, authfile: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SKOPEO, "inspect", "--tls-verify=false", "--authfile", str(authfile),
                           "--format", "{{.Digest}}", f"docker://{ref}"],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    (home / ".docker").mkdir(parents=True)
    return home


def test_wrong_password_saves_nothing(home, auth_registry) -> None:
    config = home / ".docker" / "config.json"
    bad = _barque(home, "login", "-u", auth_registry.username, "--password-stdin",
                  auth_registry.host, stdin="not-the-password\n")
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.count("\n") == 1
    assert bad.stderr.startswith(f'Error: Get "http://{auth_registry.host}/v2/": unauthorized: ')
    assert not config.exists()

    config.write_text(json.dumps(OTHER_KEYS))
    before = config.read_bytes()
    again = _barque(home, "login", "-u", "nobody", "-p", "x", auth_registry.host)
    assert again.returncode == 1 and "unauthorized" in again.stderr
    assert config.read_bytes() == before


def test_login_then_skopeo_uses_it_and_logout_removes_only_it(home, auth_registry) -> None:
    config = home / ".docker" / "config.json"
    config.write_text(json.dumps(OTHER_KEYS))
    image = auth_registry.image
    assert _skopeo_inspect(image.ref, config).returncode != 0  # not logged in yet

    ok = _barque(home, "login", "-u", auth_registry.username, "--password-stdin",
                 auth_registry.host, stdin=auth_registry.password + "\n")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout == "Login Succeeded\n"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    doc = json.loads(config.read_text())
    assert doc["detachKeys"] == OTHER_KEYS["detachKeys"]
    assert doc["auths"]["other.example:5000"] == OTHER_KEYS["auths"]["other.example:5000"]
    saved = base64.b64decode(doc["auths"][auth_registry.host]["auth"]).decode()
    assert saved == f"{auth_registry.username}:{auth_registry.password}"
    assert list(config.parent.glob(".write-*")) == []  # the temp file was renamed into place

    inspected = _skopeo_inspect(image.ref, config)
    assert inspected.returncode == 0, inspected.stderr
    assert inspected.stdout.strip() == image.digest
    # and barque itself pulls with the saved login
    pulled = _barque(home, "pull", "-q", image.ref)
    assert pulled.returncode == 0 and pulled.stdout == image.ref + "\n"

    out = _barque(home, "logout", auth_registry.host)
    assert out.returncode == 0
    assert out.stdout == f"Removing login credentials for {auth_registry.host}\n"
    doc = json.loads(config.read_text())
    assert doc == {**OTHER_KEYS, "auths": OTHER_KEYS["auths"]}
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert _skopeo_inspect(image.ref, config).returncode != 0
    assert _barque(home, "logout", auth_registry.host).stdout == \
        f"Not logged in to {auth_registry.host}\n"


def test_login_without_a_terminal_needs_every_credential(home, auth_registry) -> None:
    no_user = _barque(home, "login", auth_registry.host)
    assert no_user.returncode == 1
    assert "Cannot perform an interactive login from a non TTY device" in no_user.stderr
    no_pass = _barque(home, "login", "-u", auth_registry.username, auth_registry.host)
    assert no_pass.returncode == 1 and "non TTY" in no_pass.stderr
    both = _barque(home, "login", "-u", "a", "-p", "b", "--password-stdin", auth_registry.host)
    assert both.returncode == 1 and "mutually exclusive" in both.stderr
    assert not (home / ".docker" / "config.json").exists()

    down = _barque(home, "login", "-u", "a", "-p", "b", "127.0.0.1:1")
    assert down.returncode == 1 and down.stderr.count("\n") == 2  # the -p warning, the error
    assert "127.0.0.1:1" in down.stderr.splitlines()[-1]
    assert not (home / ".docker" / "config.json").exists()


def test_login_through_a_token_service(home) -> None:
    """Bearer registries (Docker Hub, Harbor...) check the password at their token service;
    docker-registry has none, so a scripted one plays it over real HTTP."""
    config = home / ".docker" / "config.json"
    with ScriptedServer() as server:
        def v2(req: Request) -> Reply:
            return Reply(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"auth"}]}',
                         {"WWW-Authenticate":
                          f'Bearer realm="{server.url}/token",service="scripted"'})

        def token(req: Request) -> Reply:
            right = "Basic " + base64.b64encode(b"alice:right-one").decode()
            if req.headers.get("authorization") == right:
                return Reply(200, b'{"token":"t0k","expires_in":300}')
            return Reply(401, b'{"details":"incorrect username or password"}')

        server.routes["/v2/"] = v2
        server.routes["/token"] = token
        bad = _barque(home, "login", "-u", "alice", "--password-stdin", server.host,
                      stdin="wrong\n")
        assert bad.returncode == 1
        assert "unauthorized: incorrect username or password" in bad.stderr
        assert not config.exists()
        ok = _barque(home, "login", "-u", "alice", "--password-stdin", server.host,
                     stdin="right-one\n")
        assert ok.returncode == 0 and ok.stdout == "Login Succeeded\n", ok.stderr
        asked = [r.path for r in server.requests if r.path.startswith("/token")]
        assert all("service=scripted" in p and "account=alice" in p for p in asked)
    saved = json.loads(config.read_text())["auths"][server.host]["auth"]
    assert base64.b64decode(saved) == b"alice:right-one"
