"""The ``barque`` command line: parse, call one service, render. Nothing else lives here.

Heavy modules (the store, the registry client, rich) are imported inside the commands that use
them, so ``barque --help`` or a quick ``barque images`` does not pay for a pull's imports.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from .flags import FORMAT_HELP as FORMAT_HELP  # the listing commands' (declared with ps's)
from .flags import PullArgs, typer_options

if TYPE_CHECKING:
    import click

    from ..engine import Engine

app = typer.Typer(
    name="barque",
    help="A container engine: pull, run and manage OCI images.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help and usage errors, as Docker prints them; rich's renderer alone cost ~0.3 s
    # on every `--help`.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
image_app = typer.Typer(help="Manage images.", no_args_is_help=True,
                        rich_markup_mode=None)
app.add_typer(image_app, name="image")


from .context import Options as _Options  # noqa: E402
from .context import engine as engine  # noqa: E402  (the command modules take it from here)


def _version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"barque version {__version__}")
        raise typer.Exit()


@app.callback()
def _global(
    root: Annotated[Optional[Path], typer.Option(
        "--root", help="Store root (default /var/lib/barque, or $BARQUE_ROOT).",
        envvar="BARQUE_ROOT")] = None,
    config: Annotated[Optional[Path], typer.Option(
        "--config", help="Config file (default /etc/barque/config.toml).")] = None,
    version: Annotated[bool, typer.Option(
        "--version", "-v", callback=_version, is_eager=True, help="Print the version.")] = False,
) -> None:
    _Options.root = root
    _Options.config = config


# -- pull ---------------------------------------------------------------------------------

QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Suppress verbose output.")]


@app.command("pull")
@image_app.command("pull")
@typer_options(PullArgs)
def pull(reference: Annotated[str, typer.Argument(metavar="NAME[:TAG|@DIGEST]")],
         **options: Any) -> None:
    """Download an image from a registry."""
    from .pulling import pull_image

    pull_image(reference, **options)


# -- images -------------------------------------------------------------------------------

@app.command("images")
@image_app.command("ls")
def images(
    repository: Annotated[Optional[str], typer.Argument(metavar="[REPOSITORY[:TAG]]")] = None,
    all: Annotated[bool, typer.Option("--all", "-a", help="Show all images.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only show image IDs.")] = False,
    digests: Annotated[bool, typer.Option("--digests", help="Show digests.")] = False,
    no_trunc: Annotated[bool, typer.Option("--no-trunc", help="Don't truncate output.")] = False,
    format: Annotated[Optional[str], typer.Option(
        "--format", help=FORMAT_HELP)] = None,
) -> None:
    """List images."""
    from .formatter import is_custom, render_listing
    from .render import IMAGE_HEADER, image_rows, print_image_table, row_context

    rows = image_rows(engine().images.list(all=all), repository, no_trunc)
    if is_custom(format):  # the docker CLI lets a custom format win over -q here
        assert format is not None
        if format.startswith("table") and digests and "{{.Digest}}" not in format:
            format += "\t{{.Digest}}"
        sys.stdout.write(render_listing(
            format, [row_context("*formatter.imageContext", r) for r in rows], IMAGE_HEADER))
    elif quiet:
        seen: list[str] = []
        for row in rows:
            if row["ID"] not in seen:
                seen.append(row["ID"])
        typer.echo("\n".join(seen)) if seen else None
    else:
        print_image_table(rows, digests)


# -- tag / rmi ----------------------------------------------------------------------------

@app.command("tag")
@image_app.command("tag")
def tag(
    source: Annotated[str, typer.Argument(metavar="SOURCE_IMAGE[:TAG]")],
    target: Annotated[str, typer.Argument(metavar="TARGET_IMAGE[:TAG]")],
) -> None:
    """Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE."""
    engine().images.tag(source, target)


@app.command("rmi")
@image_app.command("rm")
def rmi(
    names: Annotated[list[str], typer.Argument(metavar="IMAGE...")],
    force: Annotated[bool, typer.Option("--force", "-f", help="Force removal.")] = False,
) -> None:
    """Remove one or more images."""
    from ..errors import BarqueError
    from .errors import report

    failed = False
    for name in names:
        try:
            for entry in engine().images.remove(name, force=force):
                for key, value in entry.items():
                    typer.echo(f"{key}: {value}")
        except BarqueError as e:
            report(e)
            failed = True
    if failed:
        raise typer.Exit(1)


# -- inspect / history / prune ------------------------------------------------------------

@app.command("inspect")
@image_app.command("inspect")
def inspect(
    ctx: typer.Context,
    names: Annotated[list[str], typer.Argument(metavar="NAME|ID...")],
    format: Annotated[Optional[str], typer.Option(
        "--format", "-f", help="Format the output using a Go template ('{{.State.Status}}', "
        "'{{json .Config}}'), or 'json'.")] = None,
    size: Annotated[bool, typer.Option(
        "--size", "-s", help="Display total file sizes if the type is container.")] = False,
) -> None:
    """Display detailed information on containers or images (Docker-compatible JSON)."""
    import json

    from ..errors import BarqueError, ContainerNotFoundError
    from .errors import report
    from .formatter import inspect_lines

    group = ctx.parent.info_name if ctx.parent else None
    found, failed = [], False
    for name in names:
        try:
            if group != "image":
                try:
                    from ..models import to_builtins

                    found.append(to_builtins(engine().containers.get(name).inspect(size=size)))
                    continue
                except ContainerNotFoundError:
                    if group == "container":
                        raise
            found.append(engine().images.get(name).attrs)
        except BarqueError as e:
            report(e)
            failed = True
    if format in (None, "", "json"):
        typer.echo(json.dumps(found, indent=4))
    else:
        sys.stdout.write(inspect_lines(format, found))
    if failed:
        raise typer.Exit(1)


@app.command("history")
@image_app.command("history")
def history(
    name: Annotated[str, typer.Argument(metavar="IMAGE")],
    human: Annotated[bool, typer.Option(
        "--human", "-H", help="Print sizes and dates in human readable format.")] = True,
    no_trunc: Annotated[bool, typer.Option("--no-trunc", help="Don't truncate output.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only show image IDs.")] = False,
    format: Annotated[Optional[str], typer.Option("--format", help=FORMAT_HELP)] = None,
) -> None:
    """Show the history of an image."""
    from .formatter import is_custom, render_listing
    from .render import HISTORY_HEADER, history_rows, print_history, row_context

    image = engine().images.get(name)
    if is_custom(format):  # a custom format wins over -q, as in the docker CLI
        assert format is not None
        rows = history_rows(image, human=human, no_trunc=no_trunc)
        sys.stdout.write(render_listing(
            format, [row_context("*formatter.historyContext", r) for r in rows], HISTORY_HEADER))
        return
    print_history(image, human=human, no_trunc=no_trunc, quiet=quiet)


@image_app.command("prune")
def prune(
    all: Annotated[bool, typer.Option(
        "--all", "-a", help="Remove all unused images, not just dangling ones.")] = False,
    force: Annotated[bool, typer.Option("--force", "-f", help="Do not prompt for confirmation.")
    ] = False,
) -> None:
    """Remove unused images."""
    from ..humanize import human_size
    from .render import deleted_images_text

    warning = ("WARNING! This will remove all images without at least one container "
               "associated to them." if all else "WARNING! This will remove all dangling images.")
    if not force:
        typer.echo(warning)
        if not typer.confirm("Are you sure you want to continue?", default=False):
            return
    report = engine().images.prune(all=all)
    typer.echo(deleted_images_text(report.deleted), nl=False)
    typer.echo(f"Total reclaimed space: {human_size(report.space_reclaimed)}")


# -- info ---------------------------------------------------------------------------------

@app.command("info")
def info(
    format: Annotated[Optional[str], typer.Option(
        "--format", "-f", help="'json' for one JSON object (Docker's keys).")] = None,
) -> None:
    """Display system-wide information, and whether the forkserver's fast path is in use."""
    from .info import show

    show(engine, format)


# Registers run, create, start, ps, ... on `app` (after it exists: that module imports it).
from . import archives as _archives  # noqa: E402,F401  (save, load, import, commit...)
from . import containers as _containers  # noqa: E402,F401
from . import daemon as _daemon  # noqa: E402,F401  (the Engine API server)
from . import registry as _registry  # noqa: E402,F401  (push, login, logout, search)
from . import system as _system  # noqa: E402,F401  (system df, system prune)
from . import volumes as _volumes  # noqa: E402,F401  (volume create, ls, rm...)


def _command_name(argv: list[str]) -> str | None:
    """The subcommand in argv (skipping global options and the ``container`` group)."""
    skip_next = False
    for arg in argv:
        if skip_next:
            skip_next = False
        elif arg in ("--root", "--config"):
            skip_next = True
        elif not arg.startswith("-") and arg != "container":
            return arg
    return None


_click_command: click.Command | None = None


def click_command() -> click.Command:
    """The click command typer builds from ``app`` (~0.1 s), built once per process: the
    forkserver builds it before it forks, so no command pays for it there."""
    global _click_command
    if _click_command is None:
        _click_command = typer.main.get_command(app)
    return _click_command


def main() -> None:
    """Console entry point: run the app, turning barque's errors into one line and an exit code."""
    import click

    from .errors import USAGE_ERROR, exit_code, report, report_usage

    try:
        # Not standalone: click would print its usage block and exit 2 on a bad command line.
        code = click_command().main(standalone_mode=False)
    except KeyboardInterrupt:
        sys.stderr.write("\n")
        sys.exit(130)
    except click.exceptions.NoArgsIsHelpError as e:  # `barque`, `barque image`: the help
        e.show()
        sys.exit(e.exit_code)
    except click.UsageError as e:
        report_usage(e)
        sys.exit(USAGE_ERROR)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.Abort:  # a prompt (prune's "Are you sure") left with ^D or ^C
        sys.stderr.write("Aborted!\n")
        sys.exit(1)
    except Exception as e:  # noqa: BLE001 - mapped in one place, below
        code = exit_code(e, _command_name(sys.argv[1:]))
        if code is None:
            raise
        report(e)
        sys.exit(code)
    # Commands that raise typer.Exit come back with its code; the others return None.
    sys.exit(code if isinstance(code, int) else 0)
