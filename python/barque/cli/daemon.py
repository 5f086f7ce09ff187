"""``barque daemon``: serve the Docker Engine API (:mod:`barque.api`) in the foreground.

The daemon uses the same store and services as the CLI (``--root``, ``--config``), so what
one front door does the other sees. Logs go to stderr; SIGTERM or SIGINT stops it and
removes its socket.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .main import app


@app.command("daemon")
def daemon(
    hosts: Annotated[Optional[list[str]], typer.Option(
        "--host", "-H", help="Socket to listen on, unix:///path (repeatable; default "
        "unix:///run/barque/barque.sock).")] = None,
    debug: Annotated[bool, typer.Option(
        "--debug", "-D", help="Log every request.")] = False,
) -> None:
    """Serve the Docker Engine API (the docker CLI, docker-py) on a Unix socket."""
    import logging

    from ..api.server import DEFAULT_HOST, serve
    from .context import engine

    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO,
                        format="%(asctime)s barque daemon: %(levelname)s %(message)s")
    logger = logging.getLogger("barque.api")
    serve(engine(), hosts or [DEFAULT_HOST], ready=lambda: logger.info("ready"))
