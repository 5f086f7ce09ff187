"""``push``, ``login``, ``logout`` and ``search``: thin commands over
:class:`barque.images.ImageService` (``push``, ``login``, ``logout``, ``search``,
``list_tags``)."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from .main import QuietOpt, app, engine, image_app


@app.command("push")
@image_app.command("push")
def push(
    reference: Annotated[str, typer.Argument(metavar="NAME[:TAG]")],
    quiet: QuietOpt = False,
) -> None:
    """Upload an image to a registry."""
    from ..progress import NullProgress
    from .progress import PullRenderer

    renderer = NullProgress() if quiet else PullRenderer(sys.stdout)
    result = engine().images.push(reference, progress=renderer)
    if quiet:
        typer.echo(result.reference)
        return
    tag = result.reference.rpartition(":")[2]
    typer.echo(f"{tag}: digest: {result.digest} size: {result.size}")


@app.command("login")
def login(
    server: Annotated[Optional[str], typer.Argument(metavar="[SERVER]")] = None,
    username: Annotated[Optional[str], typer.Option("--username", "-u", help="Username.")] = None,
    password: Annotated[Optional[str], typer.Option("--password", "-p", help="Password.")] = None,
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="Take the password from stdin.")] = False,
) -> None:
    """Log in to a registry (Docker Hub by default); the login is saved in Docker's config."""
    from ..errors import InvalidArgumentError

    if password is not None and password_stdin:
        raise InvalidArgumentError("--password and --password-stdin are mutually exclusive")
    if password_stdin:
        if not username:
            raise InvalidArgumentError("Must provide --username with --password-stdin")
        password = sys.stdin.read().removesuffix("\n").removesuffix("\r")
    elif password is not None:
        sys.stderr.write("WARNING! Using --password via the CLI is insecure. "
                         "Use --password-stdin.\n")
    registry = server or "docker.io"
    if username is None:
        username = _prompt("Username: ")
    if not username.strip():
        raise InvalidArgumentError("Non-null Username Required")
    if password is None:
        password = _prompt("Password: ", secret=True)
    if not password:
        raise InvalidArgumentError("Password Required")
    engine().images.login(registry, username.strip(), password)
    typer.echo("Login Succeeded")


@app.command("logout")
def logout(
    server: Annotated[Optional[str], typer.Argument(metavar="[SERVER]")] = None,
) -> None:
    """Log out from a registry (remove its saved credentials)."""
    registry = server or "docker.io"
    if engine().images.logout(registry):
        typer.echo(f"Removing login credentials for {_shown(registry)}")
    else:
        typer.echo(f"Not logged in to {_shown(registry)}")


@app.command("search")
def search(
    term: Annotated[str, typer.Argument(metavar="TERM")],
    limit: Annotated[Optional[int], typer.Option(
        "--limit", min=1, help="Max number of results (default 25; all tags with --list-tags).")
    ] = None,
    format: Annotated[Optional[str], typer.Option(
        "--format", help="'table' (default) or 'json' (one JSON object per line).")] = None,
    no_trunc: Annotated[bool, typer.Option("--no-trunc", help="Don't truncate output.")] = False,
    list_tags: Annotated[bool, typer.Option(
        "--list-tags", help="List the tags of repository TERM instead.")] = False,
) -> None:
    """Search Docker Hub (or HOST/TERM: a registry's catalog) for repositories."""
    import json

    from .render import render_table

    if format not in (None, "table", "json"):
        raise typer.BadParameter(f"unsupported format {format!r}: use 'table' or 'json'",
                                 param_hint="--format")
    images = engine().images
    if list_tags:
        from ..reference import Reference

        name = Reference.parse(term, default_tag=None)
        tags = images.list_tags(term, limit=limit)
        if format == "json":
            for tag in tags:
                typer.echo(json.dumps({"Name": name.familiar_name, "Tag": tag},
                                      separators=(",", ":")))
        elif tags:
            typer.echo(render_table(["NAME", "TAG"], [[name.familiar_name, t] for t in tags]))
        return
    results = images.search(term, limit=limit or 25)
    if format == "json":
        for r in results:
            typer.echo(json.dumps({"Name": r.name, "Description": r.description,
                                   "StarCount": r.star_count, "IsOfficial": r.is_official,
                                   "IsAutomated": r.is_automated}, separators=(",", ":")))
        return
    rows = [[r.name, _description(r.description, no_trunc), str(r.star_count),
             "[OK]" if r.is_official else ""] for r in results]
    typer.echo(render_table(["NAME", "DESCRIPTION", "STARS", "OFFICIAL"], rows))


def _description(text: str, no_trunc: bool) -> str:
    one_line = " ".join(text.split())
    if no_trunc or len(one_line) <= 45:
        return one_line
    return one_line[:44] + "…"  # Docker's Ellipsis: 45 characters in all


def _shown(registry: str) -> str:
    from ..registry.login import auth_key

    return auth_key(registry)


def _prompt(label: str, secret: bool = False) -> str:
    from ..errors import InvalidArgumentError

    if not sys.stdin.isatty():
        raise InvalidArgumentError("Cannot perform an interactive login from a non TTY device")
    if secret:
        import getpass

        return getpass.getpass(label)
    sys.stdout.write(label)
    sys.stdout.flush()
    return sys.stdin.readline().rstrip("\r\n")
