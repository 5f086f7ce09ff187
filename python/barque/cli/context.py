"""The CLI's shared state: the global options and the one Engine a command uses.

Free of typer, so the launcher's fast path (:mod:`barque.cli.launcher`) can use it too.
"""

from __future__ import annotations

from pathlib import Path

TYPE_CHECKING = False  # typing itself costs start-up time; checkers see the imports
if TYPE_CHECKING:
    from ..engine import Engine


class Options:
    root: Path | None = None
    config: Path | None = None
    engine: Engine | None = None


def engine() -> "Engine":
    if Options.engine is None:
        from ..engine import Engine

        Options.engine = Engine(root=Options.root, config_file=Options.config)
    return Options.engine
