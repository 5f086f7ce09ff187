"""The package's layout: no module reaches into another's private names, and the services do
not import each other in a circle.

Both are read from the source with ``ast`` (nothing is imported). A private name is one with a
leading underscore that is not a dunder; using one across modules ties the two modules'
insides together, so what is shared gets a public name in one home instead. A cycle among the
services means none of them can be understood, tested or initialised without the others; they
reach each other at run time through the :class:`~barque.Engine` instead (``engine.py`` is the
hub and is not one of them).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "python" / "barque"

#: The modules that must not import each other in a circle: the services and what they are
#: built on (registry and store are packages: every module in them counts).
SERVICES = ("barque.images", "barque.containers", "barque.volumes", "barque.system",
            "barque.archives", "barque.changes", "barque.layers")
SERVICE_PACKAGES = ("barque.registry", "barque.store")

#: (importing module, imported module, private name) -> why it may stay.
ALLOWED_PRIVATE = {
    ("*", "barque", "_native"): "the Rust extension is barque._native by design; every module "
                                "imports it where it is used (README: typed and lazy)",
}

#: Sorted module names of an import cycle -> why it may stay. Empty: there is none.
ALLOWED_CYCLES: dict[tuple[str, ...], str] = {}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def is_service(name: str) -> bool:
    return name in SERVICES or any(name == pkg or name.startswith(pkg + ".")
                                   for pkg in SERVICE_PACKAGES)


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


class Import:
    def __init__(self, importer: str, module: str, name: str | None, node: ast.stmt,
                 type_only: bool) -> None:
        self.importer = importer
        self.module = module      # the module imported from (or the module imported)
        self.name = name          # the name taken from it; None for `import x`
        self.line = node.lineno
        self.type_only = type_only

    def where(self) -> str:
        return f"{MODULES[self.importer].relative_to(PACKAGE.parent)}:{self.line}"


def _type_checking_nodes(tree: ast.Module) -> set[int]:
    """Nodes under ``if TYPE_CHECKING:``: annotations only, never run."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) \
                and node.test.id == "TYPE_CHECKING":
            inside.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    return inside


def _absolute(importer: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = importer.split(".")
    if MODULES[importer].name != "__init__.py":
        package.pop()
    if node.level > 1:
        package = package[:len(package) - (node.level - 1)]
    return ".".join(package + ([node.module] if node.module else []))


def imports(importer: str) -> Iterator[Import]:
    """Every import of a barque module in ``importer``, at module level or in a function."""
    tree = ast.parse(MODULES[importer].read_text())
    type_only = _type_checking_nodes(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = _absolute(importer, node)
            if base != "barque" and not base.startswith("barque."):
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in MODULES:  # `from . import containers`: the module itself
                    yield Import(importer, sub, None, node, id(node) in type_only)
                    if is_private(alias.name):
                        yield Import(importer, base, alias.name, node, id(node) in type_only)
                else:
                    yield Import(importer, base, alias.name, node, id(node) in type_only)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("barque."):
                    yield Import(importer, alias.name, None, node, id(node) in type_only)


def _module_aliases(importer: str) -> dict[str, str]:
    """Local names bound to barque modules in ``importer`` (``from . import procfs``,
    ``import barque.x as y``)."""
    tree = ast.parse(MODULES[importer].read_text())
    out: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = _absolute(importer, node)
            for alias in node.names:
                if f"{base}.{alias.name}" in MODULES:
                    out[alias.asname or alias.name] = f"{base}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname and alias.name in MODULES:
                    out[alias.asname] = alias.name
    return out


def private_uses() -> Iterator[tuple[str, str, str, str]]:
    """(importer, module, name, where) for every private name one module takes from another."""
    for importer in MODULES:
        for imp in imports(importer):
            if imp.name is not None and is_private(imp.name) and imp.module != importer:
                yield importer, imp.module, imp.name, imp.where()
        aliases = _module_aliases(importer)
        tree = ast.parse(MODULES[importer].read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                    and node.value.id in aliases and is_private(node.attr) \
                    and aliases[node.value.id] != importer:
                where = f"{MODULES[importer].relative_to(PACKAGE.parent)}:{node.lineno}"
                yield importer, aliases[node.value.id], node.attr, where


#: What an :class:`~barque.Engine` hands out: one service (or the store) reaching another.
ENGINE_PARTS = frozenset({"store", "registry", "images", "containers", "volumes", "system"})


def private_service_attributes(source: str) -> Iterator[tuple[int, str]]:
    """``engine.containers._load(...)``-style uses in ``source``: a private attribute of a
    service reached through the engine (or any ``.containers``, ``.store``... attribute)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and is_private(node.attr) \
                and isinstance(node.value, ast.Attribute) and node.value.attr in ENGINE_PARTS:
            yield node.lineno, f"{node.value.attr}.{node.attr}"


def private_service_uses() -> Iterator[str]:
    for importer, path in MODULES.items():
        for line, use in private_service_attributes(path.read_text()):
            yield f"{path.relative_to(PACKAGE.parent)}:{line}: {importer} uses {use}"


def _allowed_private(importer: str, module: str, name: str) -> bool:
    return (importer, module, name) in ALLOWED_PRIVATE or ("*", module, name) in ALLOWED_PRIVATE


def service_graph() -> dict[str, set[str]]:
    """Service module -> the service modules it imports when it runs (module level or in a
    function). Imports under ``if TYPE_CHECKING:`` are left out: they never execute, so they
    cannot make one service load or initialise another; they only name its types."""
    graph: dict[str, set[str]] = {name: set() for name in MODULES if is_service(name)}
    for importer in graph:
        for imp in imports(importer):
            if not imp.type_only and imp.module in graph and imp.module != importer:
                graph[importer].add(imp.module)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[tuple[str, ...]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[tuple[str, ...]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph[node]):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(tuple(sorted(component)))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_checks_see_the_package() -> None:
    # A wrong PACKAGE path would make every check below pass vacuously.
    assert {"barque.containers", "barque.volumes", "barque.overlay", "barque.procfs",
            "barque.store.metadata", "barque.registry.client"} <= set(MODULES)
    graph = service_graph()
    assert "barque.store.metadata" in graph["barque.layers"]
    assert "barque.registry.manifest" in graph["barque.registry.client"]


def test_no_module_uses_another_modules_private_names() -> None:
    found = [f"{where}: {importer} uses {module}.{name}"
             for importer, module, name, where in private_uses()
             if not _allowed_private(importer, module, name)]
    assert not found, "private names used across modules (give them a public home):\n" + \
        "\n".join(found)


def test_no_service_reaches_into_another_through_the_engine() -> None:
    found = list(private_service_uses())
    assert not found, "private attributes of another service (give them a public home):\n" + \
        "\n".join(found)


def test_every_allowed_private_name_has_a_reason() -> None:
    assert all(reason.strip() for reason in ALLOWED_PRIVATE.values())
    assert all(reason.strip() for reason in ALLOWED_CYCLES.values())


def test_the_services_import_each_other_without_a_cycle() -> None:
    graph = service_graph()
    found = [cycle for cycle in cycles(graph) if cycle not in ALLOWED_CYCLES]
    shown = ["  " + " <-> ".join(cycle) + ": " +
             "; ".join(f"{a} imports {', '.join(sorted(graph[a] & set(cycle)))}" for a in cycle)
             for cycle in found]
    assert not found, "import cycles among the services:\n" + "\n".join(shown)


def test_the_checks_find_what_they_look_for() -> None:
    source = "def f(self):\n    return self._engine.containers._load(x), self.images.get(y)\n"
    assert list(private_service_attributes(source)) == [(2, "containers._load")]


def test_the_cycle_check_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [("a", "b", "c")]
