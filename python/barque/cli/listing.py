"""``ps``: one implementation behind both parsers (typer's and the launcher's fast path)."""

from __future__ import annotations

import sys

from .context import engine

TYPE_CHECKING = False  # typing itself costs start-up time; checkers see the imports
if TYPE_CHECKING:
    from typing import Any

    from ..containers import Container


def ps(*, all: bool = False, quiet: bool = False, no_trunc: bool = False,
       format: str | None = None, filter: list[str] | None = None, size: bool = False) -> None:
    from ..errors import InvalidArgumentError
    from ..humanize import human_size
    from .formatter import check_template, is_custom, render_listing
    from .render import CONTAINER_HEADER, container_context, container_rows, print_container_table

    filters: dict[str, list[str]] = {}
    for item in filter or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise InvalidArgumentError(f"bad format of filter (expected name=value): {item}")
        filters.setdefault(key, []).append(value)
    size_used = False
    if format:
        # As the docker CLI: the template is checked on an empty row before anything is
        # listed, and a template that shows .Size turns on -s.
        def note_size() -> str:
            nonlocal size_used
            size_used = True
            return ""

        check_template(format, container_context(None, {}, note_size))
        if quiet:
            sys.stderr.write("WARNING: Ignoring custom format, because both --format and "
                             "--quiet are set.\n")
    service = engine().containers
    containers = service.list(all=all, filters=filters)
    rows = container_rows(containers, no_trunc, sizes=service.sizes if size else None)
    if quiet:
        sys.stdout.write("".join(row["ID"] + "\n" for row in rows))
    elif is_custom(format):
        assert format is not None
        contexts = []
        for c, row in zip(containers, rows):
            def container_size(c: Container = c, row: dict[str, Any] = row) -> str:
                if "Size" in row:
                    return str(row["Size"])
                if not size_used:
                    return "0B"  # what Docker shows when it did not ask for sizes
                rw, virtual = service.sizes(c)
                return f"{human_size(rw)} (virtual {human_size(virtual)})"

            contexts.append(container_context(row, c.model.config.labels or {},
                                              container_size))
        sys.stdout.write(render_listing(format, contexts, CONTAINER_HEADER))
    else:
        print_container_table(rows)
