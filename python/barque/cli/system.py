"""System commands: system df, system prune (Docker's columns, prompt and output)."""

from __future__ import annotations

from typing import Annotated

import typer

from .main import app, engine

system_app = typer.Typer(help="Manage barque.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(system_app, name="system")


def _reclaimable(reclaimable: int, size: int, with_share: bool = True) -> str:
    """Docker's RECLAIMABLE cell: the size, and its integer share of SIZE when there is any."""
    from ..humanize import human_size

    text = human_size(reclaimable, 4)
    return f"{text} ({reclaimable * 100 // size}%)" if with_share and size > 0 else text


@system_app.command("df")
def df() -> None:
    """Show barque disk usage."""
    from ..humanize import human_size
    from .render import render_table

    rows = engine().system.df()
    typer.echo(render_table(
        ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"],
        [[r.type, str(r.total), str(r.active), human_size(r.size, 4),
          _reclaimable(r.reclaimable, r.size, with_share=r.type != "Build Cache")]
         for r in rows]))


@system_app.command("prune")
def prune(
    all: Annotated[bool, typer.Option(
        "--all", "-a", help="Remove all unused images not just dangling ones.")] = False,
    force: Annotated[bool, typer.Option("--force", "-f", help="Do not prompt for confirmation.")
    ] = False,
    volumes: Annotated[bool, typer.Option("--volumes", help="Prune anonymous volumes.")
    ] = False,
) -> None:
    """Remove unused data."""
    from ..humanize import human_size
    from .render import deleted_images_text

    if not force:
        # Docker's list, less what barque has not got (networks, build cache), plus the
        # partial downloads failed pulls left.
        lines = ["WARNING! This will remove:", "  - all stopped containers"]
        if volumes:
            lines.append("  - all anonymous volumes not used by at least one container")
        lines.append("  - all images without at least one container associated to them"
                     if all else "  - all dangling images")
        lines.append("  - partial downloads no pull is writing")
        typer.echo("\n".join(lines) + "\n")
        if not typer.confirm("Are you sure you want to continue?", default=False):
            return
    report = engine().system.prune(all=all, volumes=volumes)
    for title, items in (("Deleted Containers:", report.containers),
                         ("Deleted Volumes:", report.volumes)):
        if items:
            typer.echo(title)
            for item in items:
                typer.echo(item)
            typer.echo("")
    typer.echo(deleted_images_text(report.images), nl=False)
    typer.echo(f"Total reclaimed space: {human_size(report.space_reclaimed, 4)}")
