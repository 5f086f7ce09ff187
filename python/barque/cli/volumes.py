"""Volume commands: volume create, ls, inspect, rm, prune (Docker's flags and output)."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from .main import FORMAT_HELP, app, engine

volume_app = typer.Typer(help="Manage volumes.", no_args_is_help=True,
                         rich_markup_mode=None)
app.add_typer(volume_app, name="volume")


def _pairs(items: list[str], what: str) -> dict[str, str]:
    from ..errors import InvalidArgumentError

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not key:
            raise InvalidArgumentError(f"invalid {what}: {item!r} (expected key=value)")
        out[key] = value
    return out


def _filters(items: list[str]) -> dict[str, list[str]]:
    from ..errors import InvalidArgumentError

    filters: dict[str, list[str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise InvalidArgumentError(f"bad format of filter (expected name=value): {item}")
        filters.setdefault(key, []).append(value)
    return filters


@volume_app.command("create")
def create(
    name: Annotated[Optional[str], typer.Argument(metavar="[VOLUME]")] = None,
    name_opt: Annotated[Optional[str], typer.Option("--name", help="Specify volume name.")] = None,
    driver: Annotated[str, typer.Option("--driver", "-d", help="Specify volume driver name.")] = "local",
    label: Annotated[list[str], typer.Option("--label", help="Set metadata for a volume.")] = [],
    opt: Annotated[list[str], typer.Option("--opt", "-o", help="Set driver specific options (type=, device=, o=).")] = [],
) -> None:
    """Create a volume (or return the existing one of that name)."""
    from ..errors import InvalidArgumentError

    if name and name_opt and name != name_opt:
        raise InvalidArgumentError(
            "conflicting options: either specify --name or provide positional arg, not both")
    volume = engine().volumes.create(name or name_opt, driver=driver,
                                     labels=_pairs(label, "label"), options=_pairs(opt, "opt"))
    typer.echo(volume.name)


@volume_app.command("ls")
@volume_app.command("list", hidden=True)
def ls(
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only display volume names.")] = False,
    filter: Annotated[list[str], typer.Option(
        "--filter", "-f", help="Filter: name=, label=, dangling=true|false, driver=.")] = [],
    format: Annotated[Optional[str], typer.Option("--format", help=FORMAT_HELP)] = None,
) -> None:
    """List volumes."""
    import sys

    from .formatter import is_custom, render_listing
    from .render import VOLUME_HEADER, render_table, row_context

    volumes = engine().volumes.list(_filters(filter))
    if is_custom(format):  # a custom format wins over -q, as in the docker CLI
        assert format is not None
        contexts = []
        for volume in volumes:
            attrs = volume.attrs
            labels = attrs["Labels"] or {}
            contexts.append(row_context("*formatter.volumeContext", {
                "Availability": "N/A", "Driver": attrs["Driver"], "Group": "N/A",
                "Labels": ",".join(f"{k}={v}" for k, v in labels.items()), "Links": "N/A",
                "Mountpoint": attrs["Mountpoint"], "Name": attrs["Name"],
                "Scope": attrs["Scope"], "Size": "N/A", "Status": "N/A"}, labels))
        sys.stdout.write(render_listing(format, contexts, VOLUME_HEADER))
    elif quiet:
        for volume in volumes:
            typer.echo(volume.name)
    else:
        typer.echo(render_table(["DRIVER", "VOLUME NAME"],
                                [["local", v.name] for v in volumes]))


@volume_app.command("inspect")
def inspect(
    names: Annotated[list[str], typer.Argument(metavar="VOLUME...")],
    format: Annotated[Optional[str], typer.Option(
        "--format", "-f", help="Format the output using a Go template ('{{.Mountpoint}}'), "
        "or 'json'.")] = None,
) -> None:
    """Display detailed information on one or more volumes."""
    import sys

    from ..errors import BarqueError
    from .errors import report
    from .formatter import inspect_lines

    found, failed = [], False
    for name in names:
        try:
            found.append(engine().volumes.get(name).attrs)
        except BarqueError as e:
            report(e)
            failed = True
    if format in (None, "", "json"):
        typer.echo(json.dumps(found, indent=4))
    else:
        sys.stdout.write(inspect_lines(format, found))
    if failed:
        raise typer.Exit(1)


@volume_app.command("rm")
@volume_app.command("remove", hidden=True)
def rm(
    names: Annotated[list[str], typer.Argument(metavar="VOLUME...")],
    force: Annotated[bool, typer.Option(
        "--force", "-f", help="Force the removal of one or more volumes (not of one a running "
        "container uses).")] = False,
) -> None:
    """Remove one or more volumes; one in use by a container cannot be removed."""
    from ..errors import BarqueError
    from .errors import report

    failed = False
    for name in names:
        try:
            engine().volumes.remove(name, force=force)
            typer.echo(name)
        except BarqueError as e:
            report(e)
            failed = True
    if failed:
        raise typer.Exit(1)


@volume_app.command("prune")
def prune(
    all: Annotated[bool, typer.Option(
        "--all", "-a", help="Remove all unused volumes, not just anonymous ones.")] = False,
    filter: Annotated[list[str], typer.Option("--filter", help="Filter: label=.")] = [],
    force: Annotated[bool, typer.Option("--force", "-f", help="Do not prompt for confirmation.")
    ] = False,
) -> None:
    """Remove unused local volumes (anonymous ones only, unless --all)."""
    from ..humanize import human_size

    if not force:
        typer.echo("WARNING! This will remove all local volumes not used by at least one "
                   "container." if all else "WARNING! This will remove anonymous local volumes "
                   "not used by at least one container.")
        if not typer.confirm("Are you sure you want to continue?", default=False):
            return
    removed, reclaimed = engine().volumes.prune(all=all, filters=_filters(filter))
    if removed:
        typer.echo("Deleted Volumes:")
        for name in removed:
            typer.echo(name)
        typer.echo("")
    typer.echo(f"Total reclaimed space: {human_size(reclaimed)}")
