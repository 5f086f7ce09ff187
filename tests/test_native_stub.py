"""_native.pyi against the built barque._native: mypy checks every native call against the
stub, so a name or a parameter the stub gets wrong is a type error hidden or invented. Compared
here by reading the stub's syntax and the module PyO3 built (both as installed: the stub is
python/barque/_native.pyi, shipped beside the module)."""

from __future__ import annotations

import ast
import builtins
import errno
import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest

from barque import _native

STUB = Path(_native.__file__).with_name("_native.pyi")


def stub_tree() -> ast.Module:
    return ast.parse(STUB.read_text(), filename=str(STUB))


def decorator_names(node: ast.ClassDef | ast.FunctionDef) -> set[str]:
    return {d.id for d in node.decorator_list if isinstance(d, ast.Name)}


def is_type_only(node: ast.stmt) -> bool:
    """A name the stub declares for the checker only: a @type_check_only class or an alias."""
    if isinstance(node, ast.ClassDef):
        return "type_check_only" in decorator_names(node)
    return isinstance(node, ast.AnnAssign) and ast.unparse(node.annotation) == "TypeAlias"


def stub_definitions() -> dict[str, ast.stmt]:
    """The stub's run-time names (classes, functions), by name."""
    found: dict[str, ast.stmt] = {}
    for node in stub_tree().body:
        if is_type_only(node):
            continue
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            found[node.name] = node
    return found


def stub_all() -> list[str]:
    for node in stub_tree().body:
        if isinstance(node, ast.Assign) and [ast.unparse(t) for t in node.targets] == ["__all__"]:
            return list(ast.literal_eval(node.value))
    raise AssertionError("the stub has no __all__")


def test_every_stub_name_exists_and_every_module_name_is_stubbed():
    stubbed = set(stub_definitions())
    public = {name for name in dir(_native) if not name.startswith("_")}
    assert stubbed - public == set(), "in the stub but not in barque._native"
    assert public - stubbed == set(), "exported by barque._native but missing from the stub"
    assert sorted(stub_all()) == sorted(_native.__all__)


def test_type_only_names_do_not_exist_at_run_time():
    # Code that imports one outside TYPE_CHECKING would fail at run time.
    names = []
    for node in stub_tree().body:
        if isinstance(node, ast.ClassDef) and is_type_only(node):
            names.append(node.name)
        elif isinstance(node, ast.AnnAssign) and is_type_only(node):
            names.append(ast.unparse(node.target))
    assert {"IngestResult", "LayerDigests"} <= set(names)
    assert [n for n in names if hasattr(_native, n)] == []


def stub_parameters(func: ast.FunctionDef) -> list[tuple[str, str, object]]:
    """(name, kind, default) of each parameter; default is `...` where the stub writes it,
    inspect.Parameter.empty where there is none."""
    args = func.args
    out: list[tuple[str, str, object]] = []
    positional = args.posonlyargs + args.args
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults))
    defaults += args.defaults
    for i, (arg, default) in enumerate(zip(positional, defaults)):
        kind = "POSITIONAL_ONLY" if i < len(args.posonlyargs) else "POSITIONAL_OR_KEYWORD"
        out.append((arg.arg, kind, literal(default)))
    for arg, kw_default in zip(args.kwonlyargs, args.kw_defaults):
        out.append((arg.arg, "KEYWORD_ONLY", literal(kw_default)))
    return out


def literal(node: ast.expr | None) -> object:
    if node is None:
        return inspect.Parameter.empty
    if isinstance(node, ast.Constant) and node.value is Ellipsis:
        return ...
    return ast.literal_eval(node)


def runtime_parameters(obj: object) -> list[tuple[str, str, object]]:
    # PyO3 shows `...` for a default it cannot render (a Rust constant, Vec::new()).
    return [(p.name, p.kind.name, p.default) for p in inspect.signature(obj).parameters.values()]


def signatures() -> list[tuple[str, object, ast.FunctionDef]]:
    """(label, run-time callable, stub def) for every function, constructor and method."""
    out = []
    for name, node in stub_definitions().items():
        runtime = getattr(_native, name)
        if isinstance(node, ast.FunctionDef):
            out.append((name, runtime, node))
            continue
        assert isinstance(node, ast.ClassDef)
        for member in node.body:
            if not isinstance(member, ast.FunctionDef) or "property" in decorator_names(member):
                continue
            if member.name == "__new__":
                out.append((f"{name}()", runtime, member))
            elif not member.name.startswith("__"):
                out.append((f"{name}.{member.name}", getattr(runtime, member.name), member))
    return out


@pytest.mark.parametrize("runtime, stub", [pytest.param(r, s, id=label)
                                           for label, r, s in signatures()])
def test_signature_matches(runtime, stub):
    expected = stub_parameters(stub)
    actual = runtime_parameters(runtime)
    if stub.name == "__new__":
        expected = expected[1:]  # cls; the class's own signature has none
    elif expected and expected[0][0] == "self":
        # PyO3 shows a method's receiver as positional-only; the stub writes it plainly.
        expected, actual = expected[1:], actual[1:]
    assert expected == actual


def test_class_members_match():
    for name, node in stub_definitions().items():
        if not isinstance(node, ast.ClassDef):
            continue
        runtime = getattr(_native, name)
        for base in node.bases:
            if isinstance(base, ast.Name) and hasattr(builtins, base.id):
                assert issubclass(runtime, getattr(builtins, base.id)), (name, base.id)
        stubbed = {m.name for m in node.body if isinstance(m, ast.FunctionDef)
                   and not m.name.startswith("__")}
        own = {m for m in vars(runtime) if not m.startswith("_")}
        assert stubbed == own, name
        for member in node.body:
            if isinstance(member, ast.FunctionDef) and "property" in decorator_names(member):
                assert inspect.isgetsetdescriptor(vars(runtime)[member.name]), member.name
        if "final" in decorator_names(node):
            with pytest.raises(TypeError):
                type("Sub", (runtime,), {})


def test_container_error_carries_the_stubbed_attributes():
    # Not our child: the kernel's ECHILD, raised as the stub describes it.
    with pytest.raises(_native.ContainerError) as caught:
        _native.wait(os.getpid())
    error = caught.value
    assert (error.exit_code, error.errno, type(error.path)) == (125, errno.ECHILD, str)


def test_stubtest_finds_no_difference():
    """mypy's own stub checker: parameter kinds, defaults, classes, against the module."""
    pytest.importorskip("mypy.stubtest", reason="mypy (the test extra) is not installed")
    result = subprocess.run([sys.executable, "-m", "mypy.stubtest", "barque._native"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
