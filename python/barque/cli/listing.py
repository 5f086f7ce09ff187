"""``ps``: one implementation behind both parsers (typer's and the launcher's fast path)."""

from __future__ import annotations

import sys

from .context import engine


def ps(*, all: bool = False, quiet: bool = False, no_trunc: bool = False,
       format: str | None = None, filter: list[str] | None = None, size: bool = False) -> None:
    from ..errors import InvalidArgumentError
    from .render import container_rows, print_container_table

    filters: dict[str, list[str]] = {}
    for item in filter or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise InvalidArgumentError(f"bad format of filter (expected name=value): {item}")
        filters.setdefault(key, []).append(value)
    service = engine().containers
    rows = container_rows(service.list(all=all, filters=filters), no_trunc,
                          sizes=service.sizes if size else None)
    if quiet:
        sys.stdout.write("".join(row["ID"] + "\n" for row in rows))
    elif format == "json":
        import json

        sys.stdout.write("".join(json.dumps(row, separators=(",", ":")) + "\n" for row in rows))
    else:
        print_container_table(rows)
