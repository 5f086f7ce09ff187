"""Checks of the Python API's arguments at its entry points (``Engine``, ``images.*``,
``containers.*``, ``volumes.*``): a caller's mistake becomes one barque error naming the
argument -- :class:`~barque.errors.InvalidArgumentTypeError` (also a ``TypeError``) for a wrong
type -- instead of an ``AttributeError`` from deep inside, or a silently wrong container (a
string command iterated into one-letter arguments).

Every check is an ``isinstance`` or two, as they sit on ``engine.containers.run``'s path, which
is measured against crun.
"""

from __future__ import annotations

import os

from .errors import InvalidArgumentError, InvalidArgumentTypeError

TYPE_CHECKING = False  # typing itself costs start-up time; checkers see the imports
if TYPE_CHECKING:
    from typing import Any, TypeVar

    from .containers import CreateOptions
    from .runtime.spec import RunOptions

    T = TypeVar("T")


def wrong_type(name: str, expected: str, value: object) -> InvalidArgumentTypeError:
    """The one-line error for an argument of the wrong type: ``NAME must be EXPECTED, not
    TYPE (value)``."""
    shown = f" ({value!r})" if isinstance(value, (str, int, float)) else ""
    return InvalidArgumentTypeError(
        f"{name} must be {expected}, not {type(value).__name__}{shown}")


def text(value: Any, name: str) -> str:
    if isinstance(value, str):
        return value
    raise wrong_type(name, "a string", value)


def optional_text(value: Any, name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise wrong_type(name, "a string or None", value)


def optional_path(value: Any, name: str) -> str | os.PathLike[str] | None:
    if value is None or isinstance(value, (str, os.PathLike)):
        return value
    raise wrong_type(name, "a path (str or os.PathLike) or None", value)


def strings(value: Any, name: str) -> list[str]:
    """A list (or tuple) of strings. A lone string is refused: iterated, it would become
    one-letter items."""
    if type(value) is list and not value:  # most options' default: skip the generator
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
        return list(value)
    if isinstance(value, (list, tuple)):
        bad = next(item for item in value if not isinstance(item, str))
        raise wrong_type(f"every item of {name}", "a string", bad)
    raise wrong_type(name, "a list of strings", value)


def optional_strings(value: Any, name: str) -> list[str] | None:
    return None if value is None else strings(value, name)


def command(value: Any, name: str) -> list[str] | None:
    """A command as a list of arguments; a string is split as a POSIX shell would, as Docker's
    Python SDK does (``"sh -c 'echo hi'"`` is three arguments)."""
    if value is None or (isinstance(value, list) and all(isinstance(a, str) for a in value)):
        return value
    if isinstance(value, str):
        import shlex

        try:
            return shlex.split(value)
        except ValueError as e:  # an unclosed quote
            raise InvalidArgumentError(f"{name} {value!r} cannot be split: {e}") from None
    return strings(value, name)


def string_map(value: Any, name: str) -> dict[str, str] | None:
    """None, or a dict of string keys and values (labels, driver options)."""
    if value is None:
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or not isinstance(item, str):
                raise wrong_type(f"{name}[{key!r}]", "a string key with a string value",
                             key if not isinstance(key, str) else item)
        return value
    raise wrong_type(name, "a dict of strings", value)


def filters(value: Any, name: str = "filters") -> dict[str, list[str]] | None:
    """None, or Docker's filters: a dict of names to lists of values."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise wrong_type(name, "a dict of lists of strings", value)
    for key, items in value.items():
        strings(items, f"{name}[{key!r}]")
    return value


def mount_specs(value: Any, name: str, *, mapping: bool = False) -> Any:
    """None, or a list of mount specs (strings or dicts, parsed later); with ``mapping``,
    docker-py's dict form too. A lone string is refused: iterated, it would be one mount
    per character."""
    if value is None or isinstance(value, (list, tuple)) or (mapping and isinstance(value, dict)):
        return value
    raise wrong_type(name, "a list" + (" or a dict" if mapping else "") + " of mount specs", value)


def number(value: Any, name: str) -> float | None:
    """None, or an int or float (a bool is no number here)."""
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return value
    raise wrong_type(name, "a number or None", value)


def integer(value: Any, name: str) -> int | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise wrong_type(name, "an int or None", value)


def descriptor(value: Any, name: str, *, optional: bool = False) -> int | None:
    """A file descriptor number (``stdout=1``), or None when ``optional``."""
    if (value is None and optional) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise wrong_type(name, "a file descriptor (int)" + (" or None" if optional else ""), value)


def time_point(value: Any, name: str) -> float | str | None:
    """None, seconds since the epoch, or Docker's ``--since`` text (``10m``, a timestamp)."""
    if value is None or isinstance(value, str):
        return value
    return number(value, name)


def signal(value: Any, name: str = "sig") -> int | str:
    if isinstance(value, (int, str)) and not isinstance(value, bool):
        return value
    raise wrong_type(name, "a signal number or name", value)


def optional_instance(value: object, cls: type[T], name: str, expected: str) -> T | None:
    if value is None or isinstance(value, cls):
        return value
    raise wrong_type(name, f"{expected} or None", value)


def run_options(options: object) -> RunOptions | None:
    """``options`` of ``containers.create``/``run``: None or a RunOptions whose fields have
    the types the spec builder reads."""
    from .runtime.spec import RunOptions

    checked = optional_instance(options, RunOptions, "options", "a barque.runtime.spec.RunOptions")
    if checked is None:
        return None
    options = checked
    cmd = command(options.command, "options.command")
    entrypoint = command(options.entrypoint, "options.entrypoint")
    strings(options.env, "options.env")
    optional_text(options.workdir, "options.workdir")
    optional_text(options.user, "options.user")
    optional_text(options.hostname, "options.hostname")
    text(options.network, "options.network")
    strings(options.group_add, "options.group_add")
    strings(options.cap_add, "options.cap_add")
    strings(options.cap_drop, "options.cap_drop")
    strings(options.security_opt, "options.security_opt")
    if not (options.memory is None or isinstance(options.memory, str)):
        integer(options.memory, "options.memory")
    integer(options.pids_limit, "options.pids_limit")
    number(options.cpus, "options.cpus")
    if cmd is not options.command or entrypoint is not options.entrypoint:
        from msgspec.structs import replace

        options = replace(options, command=cmd, entrypoint=entrypoint)
    return options


def create_options(create: object) -> CreateOptions | None:
    """``create`` of ``containers.create``/``run``: None or a CreateOptions (its mounts are
    checked where they are parsed)."""
    from .containers import CreateOptions

    checked = optional_instance(create, CreateOptions, "create",
                                "a barque.containers.CreateOptions")
    if checked is None:
        return None
    create = checked
    optional_text(create.name, "create.name")
    string_map(create.labels, "create.labels")
    optional_text(create.stop_signal, "create.stop_signal")
    text(create.log_driver, "create.log_driver")
    string_map(create.log_opts, "create.log_opts")
    strings(create.volumes_from, "create.volumes_from")
    mount_specs(create.volumes, "create.volumes", mapping=True)
    mount_specs(create.mounts, "create.mounts")
    mount_specs(create.tmpfs, "create.tmpfs", mapping=True)
    return create
