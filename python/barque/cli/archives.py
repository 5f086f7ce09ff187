"""``save``, ``load``, ``import``, ``commit``, ``diff`` and ``cp``: thin commands over
:mod:`barque.archives`, :mod:`barque.layers` and :mod:`barque.changes`."""

from __future__ import annotations

import os
import sys
from typing import Annotated, Optional

import typer

from .containers import container_app
from .main import app, engine, image_app


def _refuse_terminal(stream: object, what: str) -> None:
    from ..errors import InvalidArgumentError

    if getattr(stream, "isatty", lambda: False)():
        raise InvalidArgumentError(f"cowardly refusing to {what} a terminal. Use the -"
                                   f"{'o' if what == 'save to' else 'i'} flag or redirect")


@app.command("save")
@image_app.command("save")
def save(
    images: Annotated[list[str], typer.Argument(metavar="IMAGE...")],
    output: Annotated[Optional[str], typer.Option(
        "--output", "-o", help="Write to a file, instead of STDOUT.")] = None,
    format: Annotated[str, typer.Option(
        "--format", help="'docker' (docker-archive, default) or 'oci' (OCI image layout).")
    ] = "docker",
) -> None:
    """Save one or more images to a tar archive (streamed to STDOUT by default)."""
    from ..archives import save as save_archive

    eng = engine()
    if output is None:
        _refuse_terminal(sys.stdout, "save to")
        sys.stdout.flush()
        save_archive(eng, images, sys.stdout.buffer, format=format)
        return
    # Written beside the target and renamed: a failed save never leaves a partial archive.
    directory = os.path.dirname(os.path.abspath(output))
    import tempfile

    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".barque-save-")
    try:
        with os.fdopen(fd, "wb") as f:
            save_archive(eng, images, f, format=format)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644 & ~_umask())
        os.replace(tmp, output)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@app.command("load")
@image_app.command("load")
def load(
    input: Annotated[Optional[str], typer.Option(
        "--input", "-i", help="Read from a tar archive file, instead of STDIN.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Suppress the load output.")
    ] = False,
) -> None:
    """Load images from a tar archive (docker-archive or OCI layout) or STDIN."""
    from ..archives import load as load_archive

    eng = engine()
    if input is None or input == "-":
        _refuse_terminal(sys.stdin, "read from")
        lines = load_archive(eng, sys.stdin.buffer)
    else:
        with open(input, "rb") as f:
            lines = load_archive(eng, f)
    if not quiet:
        for line in lines:
            typer.echo(line)

