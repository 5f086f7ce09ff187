"""``/_ping``, ``/version``, ``/info``: what a client asks first."""

from __future__ import annotations

import os
import platform

from ... import __version__
from ..http import Request, Response, json_response
from .common import API_VERSION, MIN_API_VERSION, Route

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ...engine import Engine

#: Go's names for the machine (``/version``'s ``Arch``).
_GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386",
            "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


def ping(engine: Engine, request: Request) -> Response:
    headers = [("Builder-Version", "1"), ("Cache-Control", "no-cache, no-store, must-revalidate"),
               ("Pragma", "no-cache")]
    return Response(200, b"" if request.method == "HEAD" else b"OK",
                    "text/plain; charset=utf-8", headers)


def version(engine: Engine, request: Request) -> Response:
    arch = _GO_ARCH.get(platform.machine(), platform.machine())
    details = {"ApiVersion": API_VERSION, "Arch": arch, "BuildTime": "", "Experimental": "false",
               "GitCommit": "", "GoVersion": "", "KernelVersion": platform.release(),
               "MinAPIVersion": MIN_API_VERSION, "Os": "linux"}
    return json_response({
        "Platform": {"Name": f"barque {__version__}"},
        "Components": [{"Name": "Engine", "Version": __version__, "Details": details}],
        "Version": __version__, "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "", "GoVersion": "", "Os": "linux", "Arch": arch,
        "KernelVersion": platform.release(), "BuildTime": ""})


def info(engine: Engine, request: Request) -> Response:
    from ...cli.info import server_info

    document = server_info(engine)
    document.update({
        "ID": "", "Name": os.uname().nodename, "DockerRootDir": str(engine.root),
        "Runtimes": {document["DefaultRuntime"]: {"path": "barque-shim"}},
        "Swarm": {"LocalNodeState": "inactive"}, "SecurityOptions": ["name=seccomp,profile=builtin"],
        "IndexServerAddress": "https://index.docker.io/v1/", "Warnings": None,
    })
    return json_response(document)


ROUTES: list[Route] = [
    ("GET", "/_ping", ping),
    ("GET", "/version", version),
    ("GET", "/info", info),
]
