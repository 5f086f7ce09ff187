"""Container commands: run, create, start, wait, stop, kill, rm, ps."""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any, Optional

import typer

from .flags import PsArgs, RunArgs, typer_options
from .main import app, engine, inspect

container_app = typer.Typer(help="Manage containers.", no_args_is_help=True,
                            rich_markup_mode=None)
app.add_typer(container_app, name="container")
container_app.command("inspect")(inspect)


# exec's options that are run's too (run's own come from barque.cli.flags).
EnvOpt = Annotated[list[str], typer.Option("--env", "-e", help="Set environment variables.")]
EnvFileOpt = Annotated[list[str], typer.Option("--env-file", help="Read in a file of environment variables.")]
WorkdirOpt = Annotated[Optional[str], typer.Option("--workdir", "-w", help="Working directory inside the container.")]
UserOpt = Annotated[Optional[str], typer.Option("--user", "-u", help="Username or UID (format: <name|uid>[:<group|gid>]).")]
InteractiveOpt = Annotated[bool, typer.Option("--interactive", "-i", help="Keep STDIN open even if not attached.")]
TtyOpt = Annotated[bool, typer.Option("--tty", "-t", help="Allocate a pseudo-TTY.")]


_RUN_SETTINGS = {"allow_interspersed_args": False, "help_option_names": ["--help"]}
_RUN_HELP = "Create and run a new container from an image."
_CREATE_HELP = "Create a new container (start it with 'barque start -a')."


@app.command("run", context_settings=_RUN_SETTINGS, help=_RUN_HELP)
@container_app.command("run", context_settings=_RUN_SETTINGS, help=_RUN_HELP)
@app.command("create", context_settings=_RUN_SETTINGS, help=_CREATE_HELP)
@container_app.command("create", context_settings=_RUN_SETTINGS, help=_CREATE_HELP)
@typer_options(RunArgs)
def run_or_create(
    ctx: typer.Context,
    image: Annotated[str, typer.Argument(metavar="IMAGE")],
    command: Annotated[Optional[list[str]], typer.Argument(metavar="[COMMAND] [ARG...]")] = None,
    **options: Any,
) -> None:
    """`run` and `create` take the same options (:class:`barque.cli.flags.RunArgs`); `run`
    also starts and waits."""
    from .run import run_or_create as run_command

    raise typer.Exit(run_command(ctx.info_name or "run",
                                 RunArgs(image=image, command=command or [], **options)))


@app.command("start")
@container_app.command("start")
def start(
    containers: Annotated[list[str], typer.Argument(metavar="CONTAINER...")],
    attach: Annotated[bool, typer.Option("--attach", "-a", help="Attach STDOUT/STDERR and forward signals.")] = False,
    interactive: Annotated[bool, typer.Option("--interactive", "-i", help="Attach container's STDIN.")] = False,
) -> None:
    """Start one or more stopped containers (detached, under their supervisor)."""
    from ..errors import InvalidArgumentError

    service = engine().containers
    if attach or interactive:
        if len(containers) > 1:
            raise InvalidArgumentError("you cannot start and attach multiple containers at once")
        c = service.get(containers[0])
        config = c.config["Config"]
        from .run import start_attached

        raise typer.Exit(start_attached(
            c.id, interactive=interactive and bool(config.get("OpenStdin")),
            tty=bool(config.get("Tty")),
            auto_remove=bool(c.config["HostConfig"].get("AutoRemove"))))
    for name in containers:
        service.start(name)
        typer.echo(name)


@app.command("restart")
@container_app.command("restart")
def restart(
    containers: Annotated[list[str], typer.Argument(metavar="CONTAINER...")],
    time: Annotated[int, typer.Option("--time", "-t", help="Seconds to wait before killing the container.")] = 10,
) -> None:
    """Restart one or more containers."""
    for name in containers:
        engine().containers.restart(name, timeout=time)
        typer.echo(name)


@app.command("pause")
@container_app.command("pause")
def pause(containers: Annotated[list[str], typer.Argument(metavar="CONTAINER...")]) -> None:
    """Pause all processes within one or more containers."""
    for name in containers:
        engine().containers.pause(name)
        typer.echo(name)


@app.command("unpause")
@container_app.command("unpause")
def unpause(containers: Annotated[list[str], typer.Argument(metavar="CONTAINER...")]) -> None:
    """Unpause all processes within one or more containers."""
    for name in containers:
        engine().containers.unpause(name)
        typer.echo(name)


@app.command("top", context_settings={"allow_interspersed_args": False})
@container_app.command("top", context_settings={"allow_interspersed_args": False})
def top(
    container: Annotated[str, typer.Argument(metavar="CONTAINER")],
    ps_args: Annotated[Optional[list[str]], typer.Argument(metavar="[ps OPTIONS]")] = None,
) -> None:
    """Display the running processes of a container."""
    titles, rows = engine().containers.top(container, ps_args or None)
    widths = [len(t) for t in titles]
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths[i], len(cell))
    for row in [titles, *rows]:
        cells = [c.ljust(widths[i]) for i, c in enumerate(row[:-1])] + row[-1:]
        typer.echo("   ".join(cells).rstrip())


@app.command("logs")
@container_app.command("logs")
def logs(
    container: Annotated[str, typer.Argument(metavar="CONTAINER")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Follow log output.")] = False,
    tail: Annotated[str, typer.Option("--tail", "-n", help="Number of lines to show from the end of the logs.")] = "all",
    timestamps: Annotated[bool, typer.Option("--timestamps", "-t", help="Show timestamps.")] = False,
    since: Annotated[Optional[str], typer.Option("--since", help="Show logs since timestamp or relative (e.g. 42m).")] = None,
    until: Annotated[Optional[str], typer.Option("--until", help="Show logs before a timestamp or relative.")] = None,
) -> None:
    """Fetch the logs of a container."""
    from ..errors import InvalidArgumentError

    if tail == "all":
        count = None
    elif tail.lstrip("-").isdigit():
        count = int(tail)
    else:
        raise InvalidArgumentError(f"invalid value for --tail: {tail!r}")
    out, err = sys.stdout.buffer, sys.stderr.buffer
    for entry in engine().containers.logs(container, tail=count, since=since, until=until,
                                           follow=follow):
        stream = err if entry.stream == "stderr" else out
        if timestamps:
            stream.write(entry.time.encode() + b" ")
        stream.write(entry.data)
        if follow:
            stream.flush()


@app.command("exec", context_settings=_RUN_SETTINGS)
@container_app.command("exec", context_settings=_RUN_SETTINGS)
def exec_(
    container: Annotated[str, typer.Argument(metavar="CONTAINER")],
    command: Annotated[list[str], typer.Argument(metavar="COMMAND [ARG...]")],
    detach: Annotated[bool, typer.Option("--detach", "-d", help="Detached mode: run command in the background.")] = False,
    interactive: InteractiveOpt = False, tty: TtyOpt = False, env: EnvOpt = [],
    env_file: EnvFileOpt = [], user: UserOpt = None, workdir: WorkdirOpt = None,
    privileged: Annotated[bool, typer.Option("--privileged", help="Give extended privileges to the command.")] = False,
) -> None:
    """Execute a command in a running container."""
    from .run import environment

    code = engine().containers.exec(
        container, command, env=environment(env, env_file), user=user, workdir=workdir,
        privileged=privileged, detach=detach,
        # Detached, the command gets /dev/null as its stdio and no terminal, as before.
        tty=tty and not detach, stdin=0 if interactive and not detach else None)
    if not detach:
        raise typer.Exit(code)


@app.command("stats")
@container_app.command("stats")
def stats(
    containers: Annotated[Optional[list[str]], typer.Argument(metavar="[CONTAINER...]")] = None,
    all: Annotated[bool, typer.Option("--all", "-a", help="Show all containers (default shows just running).")] = False,
    no_stream: Annotated[bool, typer.Option("--no-stream", help="Disable streaming stats and only pull the first result.")] = False,
    no_trunc: Annotated[bool, typer.Option("--no-trunc", help="Do not truncate output.")] = False,
) -> None:
    """Display a live stream of container(s) resource usage statistics."""
    import time

    from .render import STATS_HEADER, render_table, stats_row

    service = engine().containers
    names = containers or [c.id for c in service.list(all=all)]
    # One stream per container, paced here (interval 0), so that every container's reading
    # is taken in the same second rather than a second each.
    streams = [service.stats(name, stream=True, interval=0) for name in names]

    def screen() -> str:
        rows = []
        for name, readings in zip(names, streams):
            # A container that is not running (or stopped meanwhile) shows Docker's zeros.
            document = next(readings, None) or service.stats(name, interval=0)
            rows.append(stats_row(document, no_trunc))
        return render_table(STATS_HEADER, rows) + "\n"

    screen()  # the first readings: CPU % needs the time between two
    while True:
        time.sleep(1.0)
        table = screen()
        if no_stream:
            sys.stdout.write(table)
            return
        # Docker's live screen: cursor home, clear, the table again each second.
        sys.stdout.write("\x1b[2J\x1b[H" + table)
        sys.stdout.flush()


@container_app.command("cleanup", hidden=True)
def cleanup(container: Annotated[str, typer.Argument(metavar="CONTAINER")]) -> None:
    """The supervisor's exit command: settle an exited container's books (and --rm)."""
    engine().containers.cleanup(container)


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
    from ..containers import parse_signal

    sig = parse_signal(signal_name)
    for c in containers:
        engine().containers.kill(c, sig)
        typer.echo(c)


@app.command("rm")
@container_app.command("rm")
def rm(
    containers: Annotated[list[str], typer.Argument(metavar="CONTAINER...")],
    force: Annotated[bool, typer.Option("--force", "-f", help="Force the removal of a running container.")] = False,
    volumes: Annotated[bool, typer.Option("--volumes", "-v", help="Remove anonymous volumes associated with the container.")] = False,
) -> None:
    """Remove one or more containers."""
    from ..errors import BarqueError
    from .errors import report

    failed = False
    for name in containers:
        try:
            engine().containers.remove(name, force=force, volumes=volumes)
            typer.echo(name)
        except BarqueError as e:
            report(e)
            failed = True
    if failed:
        raise typer.Exit(1)


@app.command("ps")
@container_app.command("ls")
@typer_options(PsArgs)
def ps(**options: Any) -> None:
    """List containers."""
    from .listing import ps as list_containers

    list_containers(**options)


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
