"""``pull``: the one implementation behind both command-line parsers (typer's, and the
launcher's fast path), free of typer so the fast path does not import it. A cold ``barque
pull`` spent about 0.3 s building typer's app (importing the CLI, reading 70 commands'
annotations) before it sent its first request."""

from __future__ import annotations

import sys
from typing import Optional

from .context import engine


def pull_image(reference: str, quiet: bool = False, platform: Optional[str] = None) -> None:
    """Pull ``reference``, showing Docker's progress (or nothing with ``quiet``), then print
    the full reference."""
    from ..progress import NullProgress
    from ..reference import Reference
    from .progress import PullRenderer

    renderer = None if quiet else PullRenderer(sys.stdout)
    try:
        engine().images.pull(reference, platform=platform, progress=renderer or NullProgress())
    finally:
        if renderer is not None:
            renderer.close()
    ref = Reference.parse(reference)
    sys.stdout.write(f"{ref if (ref.tag or ref.digest) else ref.with_tag('latest')}\n")
    sys.stdout.flush()
