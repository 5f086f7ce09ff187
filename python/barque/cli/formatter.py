"""The docker CLI's ``--format`` handling around Go templates: the ``table`` and ``json``
keywords, a table's header row made from the column names, and its tabwriter layout.

Listing commands hand :func:`write_listing` their rows as :class:`~.gotemplate.GoStruct`
contexts (what the docker CLI calls ``*formatter.ContainerContext`` and so on) and the names of
the header columns; ``inspect -f`` uses :func:`inspect_lines` on the inspect JSON.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import TemplateError
from .gotemplate import (HEADER_FUNCTIONS, GoMap, GoObject, GoStruct, Template, display_width,
                         parse)

TABLE = "table"


def is_custom(format_text: str | None) -> bool:
    """A template of the user's, rather than the default table (none, or ``table``)."""
    return format_text not in (None, "", TABLE)


def _template(text: str, wording: str = "template parsing error") -> Template:
    try:
        return parse(text)
    except TemplateError as e:
        raise TemplateError(f"{wording}: {e}") from None


def render_listing(format_text: str, contexts: Iterable[GoStruct],
                   header: Mapping[str, str]) -> str:
    """What the docker CLI prints for ``--format FORMAT`` over these rows (its Context.Write):
    ``json`` is ``{{json .}}``; a ``table`` prefix adds a header row (the template run on the
    column names) and aligns the ``\\t`` columns; ``\\t`` and ``\\n`` typed in the format are
    a tab and a newline. Nothing is printed when a row fails: the error says why."""
    table = format_text.startswith(TABLE)
    text = format_text[len(TABLE):] if table else "{{json .}}" if format_text == "json" \
        else format_text
    text = text.strip(" ").replace("\\t", "\t").replace("\\n", "\n")
    template = _template(text)
    body = []
    for context in contexts:
        try:
            body.append(template.execute(context) + "\n")
        except TemplateError as e:
            raise TemplateError(f"template parsing error: {e}") from None
    if not table:
        return "".join(body)
    # Go ignores the header's own errors and keeps what it wrote before one (a column
    # such as {{.Label "k"}} has no name and ends the header there).
    names = template.execute(dict(header), functions=HEADER_FUNCTIONS, partial=True)
    return tabwrite(names + "\n" + "".join(body))


def check_template(format_text: str, empty_context: GoStruct) -> None:
    """``ps`` checks its template on an empty row before it lists anything, as the docker
    CLI does (so a bad field fails even with no containers), with its wording."""
    template = _template(format_text, "failed to parse template")
    try:
        template.execute(empty_context)
    except TemplateError as e:
        raise TemplateError(f"failed to execute template: {e}") from None


def tabwrite(text: str, minwidth: int = 10, padding: int = 3) -> str:
    """Go's text/tabwriter as the docker CLI sets it up (minwidth 10, padding 3, spaces):
    tab-terminated cells of adjacent lines form a column as wide as its widest cell plus the
    padding; the text after a line's last tab is not part of any column."""
    lines = [line.split("\t") for line in text.split("\n")]
    out: list[str] = []
    widths: list[int] = []

    def write(line0: int, line1: int) -> None:
        for cells in lines[line0:line1]:
            parts = []
            for j, cell in enumerate(cells):
                parts.append(cell)
                if j < len(widths):  # a line's trailing cell is past its columns' widths
                    parts.append(" " * (widths[j] - display_width(cell)))
            out.append("".join(parts))

    def format_block(line0: int, line1: int) -> None:
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            write(line0, this)
            line0 = this
            width = minwidth
            while this < line1 and column < len(lines[this]) - 1:
                width = max(width, display_width(lines[this][column]) + padding)
                this += 1
            widths.append(width)
            format_block(line0, this)
            widths.pop()
            line0 = this
        write(line0, line1)

    format_block(0, len(lines))
    return "\n".join(out)


#: Inspect fields that are Go maps in Docker's structs: a missing key there is
#: ``<no value>`` (``""`` with ``index``), not an error.
_MAP_FIELDS = frozenset({"Labels", "Options", "DriverOpts", "ExposedPorts", "Volumes",
                         "Networks", "Ports", "Annotations", "Sysctls", "StorageOpt", "Tmpfs",
                         "Data", "Config"})
#: Inspect fields that are Go slices: null prints as ``[]``, as a nil slice does.
_LIST_FIELDS = frozenset({"Cmd", "Entrypoint", "Env", "OnBuild", "Shell", "Mounts", "Binds",
                          "CapAdd", "CapDrop", "Dns", "DnsOptions", "DnsSearch", "ExtraHosts",
                          "SecurityOpt", "Links", "RepoTags", "RepoDigests", "Layers",
                          "GroupAdd", "VolumesFrom", "Devices", "Ulimits", "MaskedPaths",
                          "ReadonlyPaths", "Args", "Aliases"})


class _InspectStruct(GoObject):
    """One of Docker's inspect structs: its slice and map fields read as empty when the
    JSON leaves them out, as Go's zero values do."""

    zeros = {**dict.fromkeys(_LIST_FIELDS, []),
             **{name: GoMap() for name in _MAP_FIELDS - {"Config", "Data"}}}


def _typed(value: Any, key: str | None = None, parent: str | None = None) -> Any:
    """The inspect JSON with Docker's map fields marked and nil slices as []: Docker runs
    an inspect template on its typed structs first, and those print so."""
    if isinstance(value, dict):
        # "Config" is a map only under LogConfig; elsewhere it is a struct
        is_map = key in _MAP_FIELDS and not (key == "Config" and parent != "LogConfig") \
            and not (key == "Networks" and parent != "NetworkSettings") \
            and not (key == "Data" and parent != "GraphDriver")
        children = {k: _typed(v, k, key) for k, v in value.items()}
        return GoMap(children) if is_map else _InspectStruct(children)
    if isinstance(value, list):
        return [_typed(v) for v in value]
    if value is None and key in _LIST_FIELDS:
        return []
    if value is None and key in _MAP_FIELDS and key != "Config":
        return GoMap()
    return value


def inspect_lines(format_text: str, objects: Iterable[dict[str, Any]]) -> str:
    """``inspect -f FORMAT``: the template run on each object's inspect JSON, one result per
    line. A key missing from the JSON is an error (Docker's wording: ``map has no entry for
    key``), except in map fields such as ``Labels``."""
    template = _template(format_text)
    out = []
    for obj in objects:
        try:
            out.append(template.execute(_typed(obj), missing_key="error") + "\n")
        except TemplateError as e:
            raise TemplateError(f"template parsing error: {e}") from None
    return "".join(out)
