"""Container commands: run, create, start, wait, stop, kill, rm, ps."""

from __future__ import annotations

import os
import sys
from typing import Annotated, Optional

import typer

from .main import app, engine, inspect

container_app = typer.Typer(help="Manage containers.", no_args_is_help=True)
app.add_typer(container_app, name="container")
container_app.command("inspect")(inspect)

#: Docker's exit code for a failure of the engine itself (not of the container's command).
ENGINE_FAILURE = 125

NETWORK_NOTICE = ("barque: no bridge network yet; the container gets --network none "
                  "(pass --network host or none to silence this)")


def _options(
    env: list[str], env_file: list[str], workdir: Optional[str], user: Optional[str],
    hostname: Optional[str], entrypoint: Optional[str], network: Optional[str], read_only: bool,
    privileged: bool, cap_add: list[str], cap_drop: list[str], security_opt: list[str],
    tty: bool, memory: Optional[str] = None, pids_limit: Optional[int] = None,
    cpus: Optional[float] = None,
):  # type: ignore[no-untyped-def]
    from ..runtime.spec import RunOptions

    if network is None:
        sys.stderr.write(NETWORK_NOTICE + "\n")
        network = "none"
    if network not in ("none", "host"):
        from ..errors import BarqueError

        raise BarqueError(f"network {network} not found: barque supports 'none' and 'host'")
    return RunOptions(
        entrypoint=None if entrypoint is None else ([entrypoint] if entrypoint else []),
        env=_environment(env, env_file), workdir=workdir, user=user, hostname=hostname,
        tty=tty, read_only=read_only, privileged=privileged, cap_add=list(cap_add),
        cap_drop=list(cap_drop), security_opt=list(security_opt), network=network,
        memory=memory, pids_limit=pids_limit, cpus=cpus)


def _environment(env: list[str], env_files: list[str]) -> list[str]:
    """Docker's -e rules: K=V as given, a bare K takes the caller's value (or is dropped)."""
    entries: list[str] = []
    for path in env_files:
        with open(path) as f:
            entries += [line.strip() for line in f if line.strip() and not line.startswith("#")]
    entries += env
    out = []
    for entry in entries:
        if "=" in entry:
            out.append(entry)
        elif entry in os.environ:
            out.append(f"{entry}={os.environ[entry]}")
    return out


EnvOpt = Annotated[list[str], typer.Option("--env", "-e", help="Set environment variables.")]
EnvFileOpt = Annotated[list[str], typer.Option("--env-file", help="Read in a file of environment variables.")]
WorkdirOpt = Annotated[Optional[str], typer.Option("--workdir", "-w", help="Working directory inside the container.")]
UserOpt = Annotated[Optional[str], typer.Option("--user", "-u", help="Username or UID (format: <name|uid>[:<group|gid>]).")]
HostnameOpt = Annotated[Optional[str], typer.Option("--hostname", "-h", help="Container host name.")]
EntrypointOpt = Annotated[Optional[str], typer.Option("--entrypoint", help="Overwrite the default ENTRYPOINT of the image.")]
NetworkOpt = Annotated[Optional[str], typer.Option("--network", help="'none' or 'host'.")]
ReadOnlyOpt = Annotated[bool, typer.Option("--read-only", help="Mount the container's root filesystem as read only.")]
PrivilegedOpt = Annotated[bool, typer.Option("--privileged", help="Give extended privileges to this container.")]
CapAddOpt = Annotated[list[str], typer.Option("--cap-add", help="Add Linux capabilities.")]
CapDropOpt = Annotated[list[str], typer.Option("--cap-drop", help="Drop Linux capabilities.")]
SecurityOpt = Annotated[list[str], typer.Option("--security-opt", help="Security options.")]
NameOpt = Annotated[Optional[str], typer.Option("--name", help="Assign a name to the container.")]
RmOpt = Annotated[bool, typer.Option("--rm", help="Automatically remove the container when it exits.")]
LabelOpt = Annotated[list[str], typer.Option("--label", "-l", help="Set meta data on a container.")]
MemoryOpt = Annotated[Optional[str], typer.Option("--memory", "-m", help="Memory limit (e.g. 16m, 1g).")]
PidsLimitOpt = Annotated[Optional[int], typer.Option("--pids-limit", help="Tune container pids limit (-1 for unlimited).")]
CpusOpt = Annotated[Optional[float], typer.Option("--cpus", help="Number of CPUs.")]


def _labels(labels: list[str]) -> dict[str, str]:
    return {k: v for k, _, v in (label.partition("=") for label in labels)}


_RUN_SETTINGS = {"allow_interspersed_args": False, "help_option_names": ["--help"]}
_RUN_HELP = "Create and run a new container from an image (in the foreground)."
_CREATE_HELP = "Create a new container (start it with 'barque start -a')."


@app.command("run", context_settings=_RUN_SETTINGS, help=_RUN_HELP)
@container_app.command("run", context_settings=_RUN_SETTINGS, help=_RUN_HELP)
@app.command("create", context_settings=_RUN_SETTINGS, help=_CREATE_HELP)
@container_app.command("create", context_settings=_RUN_SETTINGS, help=_CREATE_HELP)
def run_or_create(
    ctx: typer.Context,
    image: Annotated[str, typer.Argument(metavar="IMAGE")],
    command: Annotated[Optional[list[str]], typer.Argument(metavar="[COMMAND] [ARG...]")] = None,
    rm: RmOpt = False, name: NameOpt = None, env: EnvOpt = [], env_file: EnvFileOpt = [],
    workdir: WorkdirOpt = None, user: UserOpt = None, hostname: HostnameOpt = None,
    entrypoint: EntrypointOpt = None, network: NetworkOpt = None, read_only: ReadOnlyOpt = False,
    privileged: PrivilegedOpt = False, cap_add: CapAddOpt = [], cap_drop: CapDropOpt = [],
    security_opt: SecurityOpt = [], label: LabelOpt = [], memory: MemoryOpt = None,
    pids_limit: PidsLimitOpt = None, cpus: CpusOpt = None,
    sig_proxy: Annotated[bool, typer.Option(
        "--sig-proxy/--no-sig-proxy", help="Proxy received signals to the process (run only).")
    ] = True,
) -> None:
    """`run` and `create` take the same options; `run` also starts and waits."""
    from ..containers import CreateOptions
    from .progress import PullRenderer

    options = _options(env, env_file, workdir, user, hostname, entrypoint, network, read_only,
                       privileged, cap_add, cap_drop, security_opt, tty=False,
                       memory=memory, pids_limit=pids_limit, cpus=cpus)
    create = CreateOptions(name=name, auto_remove=rm, labels=_labels(label))
    progress = None
    if not engine().images.exists(image):
        sys.stderr.write(f"Unable to find image '{image}' locally\n")
        progress = PullRenderer(sys.stderr)
    if ctx.info_name == "create":
        container = engine().containers.create(image, command or None, options=options,
                                               create=create, pull=True, progress=progress)
        typer.echo(container.id)
        return
    sys.stdout.flush()
    code = engine().containers.run(image, command or None, options=options, create=create,
                                   progress=progress, sig_proxy=sig_proxy)
    raise typer.Exit(code)


@app.command("start")
@container_app.command("start")
def start(
    container: Annotated[str, typer.Argument(metavar="CONTAINER")],
    attach: Annotated[bool, typer.Option("--attach", "-a", help="Attach stdout/stderr and wait.")] = False,
) -> None:
    """Start a created container. Without a supervisor yet, barque always attaches: the
    container runs in the foreground of this command."""
    service = engine().containers
    c = service.start(container)
    code = service.wait(c.id)
    if attach:
        raise typer.Exit(code)
    typer.echo(container)


@app.command("wait")
@container_app.command("wait")
def wait(containers: Annotated[list[str], typer.Argument(metavar="CONTAINER...")]) -> None:
    """Block until containers stop, then print their exit codes."""
    for name in containers:
        typer.echo(str(engine().containers.wait(name)))


@app.command("stop")
@container_app.command("stop")
def stop(
    containers: Annotated[list[str], typer.Argument(metavar="CONTAINER...")],
    time: Annotated[int, typer.Option("--time", "-t", help="Seconds to wait before killing it.")] = 10,
) -> None:
    """Stop running containers: the stop signal, then SIGKILL after the grace period."""
    for name in containers:
        engine().containers.stop(name, timeout=time)
        typer.echo(name)


@app.command("kill")
@container_app.command("kill")
def kill(
    containers: Annotated[list[str], typer.Argument(metavar="CONTAINER...")],
    signal_name: Annotated[str, typer.Option("--signal", "-s", help="Signal to send.")] = "KILL",
) -> None:
    """Kill running containers."""
    import signal

    name = signal_name.upper()
    sig = int(name) if name.isdigit() else getattr(signal, name if name.startswith("SIG") else f"SIG{name}")
    for c in containers:
        engine().containers.kill(c, sig)
        typer.echo(c)


@app.command("rm")
@container_app.command("rm")
def rm(
    containers: Annotated[list[str], typer.Argument(metavar="CONTAINER...")],
    force: Annotated[bool, typer.Option("--force", "-f", help="Force the removal of a running container.")] = False,
) -> None:
    """Remove one or more containers."""
    from ..errors import BarqueError
    from .errors import report

    failed = False
    for name in containers:
        try:
            engine().containers.remove(name, force=force)
            typer.echo(name)
        except BarqueError as e:
            report(e)
            failed = True
    if failed:
        raise typer.Exit(1)


@app.command("ps")
@container_app.command("ls")
def ps(
    all: Annotated[bool, typer.Option("--all", "-a", help="Show all containers.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only display container IDs.")] = False,
    no_trunc: Annotated[bool, typer.Option("--no-trunc", help="Don't truncate output.")] = False,
    format: Annotated[Optional[str], typer.Option("--format", help="'table' or 'json'.")] = None,
    filter: Annotated[list[str], typer.Option(
        "--filter", "-f", help="Filter: status=, name=, id=, label=, ancestor=.")] = [],
) -> None:
    """List containers."""
    from ..errors import InvalidArgumentError
    from .render import container_rows, print_container_table

    filters: dict[str, list[str]] = {}
    for item in filter:
        key, sep, value = item.partition("=")
        if not sep:
            raise InvalidArgumentError(f"bad format of filter (expected name=value): {item}")
        filters.setdefault(key, []).append(value)
    rows = container_rows(engine().containers.list(all=all, filters=filters), no_trunc)
    if quiet:
        for row in rows:
            typer.echo(row["ID"])
    elif format == "json":
        import json

        for row in rows:
            typer.echo(json.dumps(row, separators=(",", ":")))
    else:
        print_container_table(rows)


@app.command("rename")
@container_app.command("rename")
def rename(
    container: Annotated[str, typer.Argument(metavar="CONTAINER")],
    new_name: Annotated[str, typer.Argument(metavar="NEW_NAME")],
) -> None:
    """Rename a container."""
    engine().containers.rename(container, new_name)


@container_app.command("prune")
def prune(
    force: Annotated[bool, typer.Option("--force", "-f", help="Do not prompt for confirmation.")
    ] = False,
) -> None:
    """Remove all stopped containers."""
    from ..humanize import human_size

    if not force:
        typer.echo("WARNING! This will remove all stopped containers.")
        if not typer.confirm("Are you sure you want to continue?", default=False):
            return
    removed, reclaimed = engine().containers.prune()
    if removed:
        typer.echo("Deleted Containers:")
        for container_id in removed:
            typer.echo(container_id)
        typer.echo("")
    typer.echo(f"Total reclaimed space: {human_size(reclaimed)}")


@app.command("export")
@container_app.command("export")
def export(
    container: Annotated[str, typer.Argument(metavar="CONTAINER")],
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="Write to a file, instead of STDOUT.")] = None,
) -> None:
    """Export a container's filesystem as a tar archive."""
    from ..errors import InvalidArgumentError

    if output is None:
        if sys.stdout.isatty():
            raise InvalidArgumentError(
                "cowardly refusing to save to a terminal. Use the -o flag or redirect")
        sys.stdout.flush()
        engine().containers.export(container, sys.stdout.buffer)
        return
    tmp = output + ".tmp"
    with open(tmp, "wb") as f:
        engine().containers.export(container, f)
    os.replace(tmp, output)
