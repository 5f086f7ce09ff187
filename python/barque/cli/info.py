"""``barque info``: what ``docker info`` says, for barque, and whether the fast path is in use.

The client section says whether this very command ran in the forkserver (the fast path) and,
when it did not, why: the native front end passes its reason in ``BARQUE_FORKSERVER_STATUS``.
A misconfigured forkserver directory thus shows here instead of only as slow commands.
"""

from __future__ import annotations

import os
import platform
from typing import TYPE_CHECKING, Any, Callable

import typer

from .. import procfs

if TYPE_CHECKING:
    from ..engine import Engine


def client_info() -> dict[str, Any]:
    """barque's version and the fast path's state, for this command."""
    from .. import __version__
    from . import forkserver

    directory = forkserver.serving_directory()
    fast_path: dict[str, Any] = {
        "InUse": directory is not None,
        "Directory": str(directory) if directory is not None else None,
        "Reason": None if directory is not None else forkserver.why_not_served(),
    }
    return {"Version": __version__, "FastPath": fast_path}


def server_info(engine: Engine) -> dict[str, Any]:
    """The store's contents and the host facts containers run with (Docker's key names)."""
    from .. import __version__
    from ..runtime import cgroups

    statuses = [c.status for c in engine.containers.list(all=True)]
    running = statuses.count("running")
    paused = statuses.count("paused")
    return {
        "Containers": len(statuses),
        "ContainersRunning": running,
        "ContainersPaused": paused,
        "ContainersStopped": len(statuses) - running - paused,
        "Images": len(engine.images.list()),
        "ServerVersion": __version__,
        "Driver": "overlay",
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": "2" if cgroups.is_v2() else "1",
        # barque-container, in the CLI's process (foreground) or under barque-shim (detached).
        "DefaultRuntime": "barque-container",
        "KernelVersion": platform.release(),
        "OperatingSystem": _operating_system(),
        "OSType": "linux",
        "Architecture": platform.machine(),
        "NCPU": os.cpu_count() or 0,
        "MemTotal": procfs.memory_total(),
        "BarqueRootDir": str(engine.root),
    }


def show(engine: Callable[[], Engine], format: str | None) -> None:
    """Print the client section first, so it is there even when the store cannot be opened."""
    if format not in (None, "json"):
        raise typer.BadParameter(f"unsupported format {format!r}: use 'json'",
                                 param_hint="--format")
    client = client_info()
    if format == "json":
        import json

        typer.echo(json.dumps({**server_info(engine()), "ClientInfo": client}))
        return
    fast = client["FastPath"]
    state = (f"forkserver in use (dir {fast['Directory']})" if fast["InUse"]
             else f"not in use: {fast['Reason']}")
    typer.echo(f"Client:\n Version:    {client['Version']}\n Fast path:  {state}\n")
    typer.echo("Server:")
    server = server_info(engine())
    lines = [
        f" Containers: {server['Containers']}",
        f"  Running: {server['ContainersRunning']}",
        f"  Paused: {server['ContainersPaused']}",
        f"  Stopped: {server['ContainersStopped']}",
        f" Images: {server['Images']}",
        f" Server Version: {server['ServerVersion']}",
        f" Storage Driver: {server['Driver']}",
        f" Logging Driver: {server['LoggingDriver']}",
        f" Cgroup Driver: {server['CgroupDriver']}",
        f" Cgroup Version: {server['CgroupVersion']}",
        f" Default Runtime: {server['DefaultRuntime']}",
        f" Kernel Version: {server['KernelVersion']}",
        f" Operating System: {server['OperatingSystem']}",
        f" OSType: {server['OSType']}",
        f" Architecture: {server['Architecture']}",
        f" CPUs: {server['NCPU']}",
        f" Total Memory: {_gib(server['MemTotal'])}",
        f" Barque Root Dir: {server['BarqueRootDir']}",
    ]
    typer.echo("\n".join(lines))


def _operating_system() -> str:
    try:
        return platform.freedesktop_os_release().get("PRETTY_NAME", "Linux")
    except OSError:
        return "Linux"


def _gib(size: int) -> str:
    return f"{size / (1 << 30):.2f}GiB"
