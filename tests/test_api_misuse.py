"""The Python API's entry points met with wrong arguments: barque's own errors, which also are
the builtin a caller would catch (TypeError for a wrong type), naming the argument; nothing
half made. And what Docker's SDK accepts: a command given as one string, shell-split."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import barque
from barque.containers import CreateOptions
from barque.errors import BarqueError, InvalidArgumentError, InvalidArgumentTypeError
from barque.runtime.spec import RunOptions
from helpers import SHARED

BUSYBOX_TAR = SHARED / "fixtures" / "images" / "busybox-1.35.docker.tar"
IMAGE = "barque-fixtures/busybox:1.35"


def test_errors_is_reachable_as_an_attribute_of_a_fresh_barque() -> None:
    # In a fresh interpreter: here barque.errors is imported already, which hid the bug.
    probe = "import barque; print(barque.errors.BarqueError.__name__, barque.errors is " \
            "__import__('barque.errors').errors)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=60)
    assert (out.returncode, out.stdout, out.stderr) == (0, "BarqueError True\n", "")


def _assert_type_error(excinfo: pytest.ExceptionInfo[BaseException], argument: str) -> None:
    error = excinfo.value
    assert isinstance(error, InvalidArgumentTypeError)
    assert isinstance(error, BarqueError) and isinstance(error, TypeError)
    assert str(error).startswith(f"{argument} must be "), str(error)


@pytest.mark.parametrize(("argument", "make"), [
    ("root", lambda: barque.Engine(root=123)),
    ("config_file", lambda: barque.Engine(config_file=["x"])),
    ("settings", lambda: barque.Engine(settings={"root": "/tmp"})),
])
def test_engine_arguments(argument, make) -> None:
    with pytest.raises(TypeError) as excinfo:
        make()
    _assert_type_error(excinfo, argument)


@pytest.fixture
def engine(settings):  # type: ignore[no-untyped-def]
    with barque.Engine(settings=settings) as eng:
        yield eng


CALLS = [
    ("name", lambda e: e.images.get(None)),
    ("name", lambda e: e.images.exists(42)),
    ("name", lambda e: e.images.remove(b"busybox")),
    ("target", lambda e: e.images.tag("busybox", None)),
    ("reference", lambda e: e.images.pull(None)),
    ("platform", lambda e: e.images.pull("busybox", platform=64)),
    ("reference", lambda e: e.images.push(["busybox"])),
    ("name_or_id", lambda e: e.containers.get(None)),
    ("name_or_id", lambda e: e.containers.remove(7)),
    ("filters", lambda e: e.containers.list(filters=["status=exited"])),
    ("image", lambda e: e.containers.run(None, ["true"])),
    ("image", lambda e: e.containers.create(Path("busybox"))),
    ("command", lambda e: e.containers.run(IMAGE, 42)),
    ("every item of command", lambda e: e.containers.run(IMAGE, ["echo", 1])),
    ("options", lambda e: e.containers.run(IMAGE, options={"cpus": 1})),
    ("options.cpus", lambda e: e.containers.run(IMAGE, options=RunOptions(cpus="abc"))),
    ("options.memory", lambda e: e.containers.run(IMAGE, options=RunOptions(memory=1.5))),
    ("options.env", lambda e: e.containers.run(IMAGE, options=RunOptions(env="A=1"))),
    ("create", lambda e: e.containers.create(IMAGE, create={"name": "x"})),
    ("create.labels['a']", lambda e: e.containers.create(
        IMAGE, create=CreateOptions(labels={"a": 1}))),
    ("stdout", lambda e: e.containers.run(IMAGE, ["true"], stdout=None)),
    ("volumes", lambda e: e.containers.run(IMAGE, ["true"], volumes="data:/data")),
    ("mounts", lambda e: e.containers.create(IMAGE, mounts="type=tmpfs,target=/t")),
    ("create.tmpfs", lambda e: e.containers.create(IMAGE, create=CreateOptions(tmpfs="/t"))),
    ("sig", lambda e: e.containers.kill("c", None)),
    ("timeout", lambda e: e.containers.stop("c", timeout="10")),
    ("tail", lambda e: e.containers.logs("c", tail="5")),
    ("new_name", lambda e: e.containers.rename("c", None)),
    ("name", lambda e: e.volumes.create(123)),
    ("labels", lambda e: e.volumes.create("v", labels=["a=b"])),
    ("name", lambda e: e.volumes.get(None)),
    ("name", lambda e: e.volumes.exists(None)),
    ("name", lambda e: e.volumes.remove(None)),
    ("filters", lambda e: e.volumes.list(filters="dangling=true")),
]


@pytest.mark.parametrize(("argument", "call"), CALLS)
def test_service_arguments(engine, argument, call) -> None:
    with pytest.raises(TypeError) as excinfo:
        call(engine)
    _assert_type_error(excinfo, argument)
    assert engine.containers.list(all=True) == [] and engine.volumes.list() == []


@pytest.fixture(scope="module")
def busybox_engine(tmp_path_factory):  # type: ignore[no-untyped-def]
    if os.geteuid() != 0:
        pytest.skip("containers need root (namespaces, mounts)")
    if not BUSYBOX_TAR.is_file():
        pytest.skip("shared fixtures missing")
    from barque.archives import load

    with barque.Engine(root=tmp_path_factory.mktemp("misuse") / "root") as eng:
        with open(BUSYBOX_TAR, "rb") as f:
            load(eng, f)
        yield eng


def _output(engine, tmp_path: Path, *args, **kwargs) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    out = tmp_path / "out"
    with open(out, "wb") as f:
        code = engine.containers.run(*args, stdout=f.fileno(), **kwargs)
    return code, out.read_text()


def test_a_string_command_is_shell_split_as_dockers_sdk_does(busybox_engine, tmp_path) -> None:
    create = CreateOptions(auto_remove=True)
    assert _output(busybox_engine, tmp_path, IMAGE, "echo 'two  words' three",
                   create=create) == (0, "two  words three\n")
    # a string entrypoint in the options likewise
    options = RunOptions(entrypoint="sh -c", command=["echo from-entrypoint"])
    assert _output(busybox_engine, tmp_path, IMAGE, options=options, create=create) == (
        0, "from-entrypoint\n")
    with pytest.raises(InvalidArgumentError, match="command"):
        busybox_engine.containers.run(IMAGE, "echo 'unclosed", create=create)
    assert busybox_engine.containers.list(all=True) == []


def test_exec_takes_a_string_command_too(busybox_engine) -> None:
    container = busybox_engine.containers.run(IMAGE, ["sleep", "60"], detach=True)
    try:
        read, write = os.pipe()
        try:
            code = container.exec("sh -c 'echo in exec'", stdout=write)
        finally:
            os.close(write)
        with os.fdopen(read) as f:
            assert (code, f.read()) == (0, "in exec\n")
        with pytest.raises(TypeError) as excinfo:
            container.exec(["true"], env="A=1")
        _assert_type_error(excinfo, "env")
    finally:
        container.remove(force=True)
