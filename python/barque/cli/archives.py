"""``save``, ``load``, ``import``, ``commit``, ``diff`` and ``cp``: each parses, makes one
call of :class:`barque.images.ImageService` or :class:`barque.containers.ContainerService`,
and prints what it returns."""

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
    service = engine().images
    if output is None:
        _refuse_terminal(sys.stdout, "save to")
        sys.stdout.flush()
        service.save(images, sys.stdout.buffer, format=format)
        return
    # Written beside the target and renamed: a failed save never leaves a partial archive.
    directory = os.path.dirname(os.path.abspath(output))
    import tempfile

    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".barque-save-")
    try:
        with os.fdopen(fd, "wb") as f:
            service.save(images, f, format=format)
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
    service = engine().images
    if input is None or input == "-":
        _refuse_terminal(sys.stdin, "read from")
        lines = service.load(sys.stdin.buffer)
    else:
        with open(input, "rb") as f:
            lines = service.load(f)
    if not quiet:
        for line in lines:
            typer.echo(line)



ChangeOpt = Annotated[Optional[list[str]], typer.Option(
    "--change", "-c", help="Apply a Dockerfile instruction (CMD, ENTRYPOINT, ENV, EXPOSE, "
    "LABEL, USER, VOLUME, WORKDIR) to the image's config.")]
MessageOpt = Annotated[str, typer.Option("--message", "-m", help="Set a commit message.")]
CompressionOpt = Annotated[str, typer.Option(
    "--compression", help="Compress the new layer with 'gzip' (default) or 'zstd' (an OCI "
    "manifest then, as Docker has no zstd media type).")]


@app.command("import")
@image_app.command("import")
def import_(
    source: Annotated[str, typer.Argument(metavar="file|URL|-")],
    reference: Annotated[Optional[str], typer.Argument(metavar="[REPOSITORY[:TAG]]")] = None,
    change: ChangeOpt = None,
    message: MessageOpt = "",
    compression: CompressionOpt = "gzip",
) -> None:
    """Import the contents from a tarball to create a filesystem image."""
    if source == "-":
        _refuse_terminal(sys.stdin, "read from")
    image_id = engine().images.import_(
        sys.stdin.buffer if source == "-" else source, reference, changes=change or [],
        message=message, compression=compression)
    typer.echo(image_id)


@app.command("commit")
@container_app.command("commit")
def commit(
    container: Annotated[str, typer.Argument(metavar="CONTAINER")],
    reference: Annotated[Optional[str], typer.Argument(metavar="[REPOSITORY[:TAG]]")] = None,
    message: MessageOpt = "",
    author: Annotated[str, typer.Option(
        "--author", "-a", help='Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")')
    ] = "",
    change: ChangeOpt = None,
    pause: Annotated[bool, typer.Option(
        "--pause/--no-pause", "-p", help="Pause the container during commit (default).")
    ] = True,
    compression: CompressionOpt = "gzip",
) -> None:
    """Create a new image from a container's changes."""
    image_id = engine().containers.commit(
        container, reference, message=message, author=author, changes=change or [],
        pause=pause, compression=compression)
    typer.echo(image_id)


@app.command("diff")
@container_app.command("diff")
def diff(container: Annotated[str, typer.Argument(metavar="CONTAINER")]) -> None:
    """Inspect changes to files or directories on a container's filesystem."""
    for change in engine().containers.diff(container):
        typer.echo(f"{change.kind} {change.path}")


@app.command("cp")
@container_app.command("cp")
def cp(
    source: Annotated[str, typer.Argument(metavar="SRC_PATH|CONTAINER:SRC_PATH|-")],
    destination: Annotated[str, typer.Argument(metavar="DEST_PATH|CONTAINER:DEST_PATH|-")],
    archive: Annotated[bool, typer.Option(
        "--archive", "-a", help="Archive mode (copy all uid/gid information).")] = False,
    follow_link: Annotated[bool, typer.Option(
        "--follow-link", "-L", help="Always follow symbol link in SRC_PATH.")] = False,
) -> None:
    """Copy files/folders between a container and the local filesystem.

    Use '-' as the source to read a tar archive from stdin and extract it to a directory
    destination in a container. Use '-' as the destination to stream a tar archive of a
    container source to stdout."""
    from ..errors import InvalidArgumentError

    src, dst = _container_side(source), _container_side(destination)
    service = engine().containers
    if src and not dst and destination == "-":
        sys.stdout.flush()
        stream, _ = service.get_archive(src[0], src[1], follow_link=follow_link)
        with stream:
            for chunk in stream:
                sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
    elif src and not dst:
        service.copy_from(src[0], src[1], destination, archive=archive,
                          follow_link=follow_link)
    elif dst and not src and source == "-":
        service.put_archive(dst[0], dst[1], sys.stdin.buffer, copy_uid_gid=archive)
    elif dst and not src:
        service.copy_to(source, dst[0], dst[1], archive=archive, follow_link=follow_link)
    else:
        raise InvalidArgumentError("copying between containers is not supported; "
                                   "exactly one side must be CONTAINER:PATH")


def _container_side(arg: str) -> tuple[str, str] | None:
    """``CONTAINER:PATH`` -> (container, path); a local path (absolute, ./, or no colon before
    the first slash) -> None, as Docker decides."""
    if arg.startswith(("/", ".")):
        return None
    head, sep, tail = arg.partition(":")
    if not sep or "/" in head or not head:
        return None
    return head, tail or "/"
