"""Record classes without the start-up cost of :mod:`dataclasses`.

Importing ``dataclasses`` costs about 30 ms (it pulls in ``inspect``, ``ast`` and more) and
each class another millisecond (every generated method is compiled with ``exec``): over 50 ms
on each CLI command, more than a whole container lifecycle. :func:`record` keeps the same
declarations -- annotated fields with defaults, ``field(default_factory=...)``, ``frozen`` --
and builds ``__init__``, ``__repr__``, ``__eq__`` and ``__hash__`` from plain closures. Type
checkers treat it as a dataclass (PEP 681). ``replace`` is ``dataclasses.replace``'s
counterpart.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar, dataclass_transform

    T = TypeVar("T")
else:
    def dataclass_transform(**_kwargs):  # noqa: D103 - a no-op outside type checking
        return lambda decorator: decorator

_MISSING = object()


class FrozenInstanceError(AttributeError):
    """Assignment to a field of a frozen record."""


class _Field:
    __slots__ = ("default", "default_factory", "repr", "compare", "hash")

    def __init__(self, default: Any, default_factory: Any, repr: bool, compare: bool,
                 hash: bool | None) -> None:
        self.default = default
        self.default_factory = default_factory
        self.repr = repr
        self.compare = compare
        self.hash = compare if hash is None else hash


def field(*, default: Any = _MISSING, default_factory: Callable[[], Any] | None = None,
          repr: bool = True, compare: bool = True, hash: bool | None = None) -> Any:
    """A field's default (or a factory for a fresh mutable default), whether ``repr`` shows
    it, whether ``==`` uses it and whether ``hash`` does (default: as ``==``), as
    ``dataclasses.field``."""
    return _Field(default, default_factory, repr, compare, hash)


@dataclass_transform(field_specifiers=(field,))
def record(cls: Any = None, *, frozen: bool = False) -> Any:
    """Decorate a class whose annotated attributes are its fields, in order (those of a
    record base class first)."""
    if cls is None:
        return lambda c: _build(c, frozen)
    return _build(cls, frozen)


def fields(obj: Any) -> tuple[str, ...]:
    """The field names of a record class or instance, in declaration order."""
    names: tuple[str, ...] = obj.__record_fields__
    return names


def replace(obj: T, **changes: Any) -> T:
    """A copy of ``obj`` with ``changes`` applied (through ``__init__``, so checks rerun)."""
    values = {name: getattr(obj, name) for name in fields(obj)}
    unknown = set(changes) - set(values)
    if unknown:
        raise TypeError(f"{type(obj).__name__} has no field {sorted(unknown)[0]!r}")
    values.update(changes)
    return type(obj)(**values)


def _build(cls: Any, frozen: bool) -> Any:
    names: list[str] = list(getattr(cls, "__record_fields__", ()))
    defaults: dict[str, Any] = dict(getattr(cls, "__record_defaults__", {}))
    factories: dict[str, Callable[[], Any]] = dict(getattr(cls, "__record_factories__", {}))
    hidden: set[str] = set(getattr(cls, "__record_hidden__", ()))
    uncompared: set[str] = set(getattr(cls, "__record_uncompared__", ()))
    unhashed: set[str] = set(getattr(cls, "__record_unhashed__", ()))
    for name, annotation in cls.__dict__.get("__annotations__", {}).items():
        if str(annotation).startswith(("ClassVar", "typing.ClassVar")):
            continue
        if name not in names:
            names.append(name)
        value = cls.__dict__.get(name, _MISSING)
        if isinstance(value, _Field):
            if not value.repr:
                hidden.add(name)
            if not value.compare:
                uncompared.add(name)
            if not value.hash:
                unhashed.add(name)
            if value.default_factory is not None:
                factories[name] = value.default_factory
                delattr(cls, name)
            elif value.default is not _MISSING:
                defaults[name] = value.default
                setattr(cls, name, value.default)
            else:
                delattr(cls, name)
        elif value is not _MISSING:
            defaults[name] = value
        elif name in defaults or name in factories:
            raise TypeError(f"{cls.__name__}: field {name!r} redeclared without a default")
    seen_default = False
    for name in names:
        if name in defaults or name in factories:
            seen_default = True
        elif seen_default:
            raise TypeError(f"{cls.__name__}: non-default field {name!r} follows a default")

    order = tuple(names)
    compared = tuple(n for n in order if n not in uncompared)
    hashed = tuple(n for n in order if n not in unhashed)
    post_init = getattr(cls, "__post_init__", None)
    set_field = object.__setattr__
    qualname = cls.__qualname__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if len(args) > len(order):
            raise TypeError(f"{qualname}() takes {len(order)} positional arguments "
                            f"but {len(args)} were given")
        for name, value in zip(order, args):
            set_field(self, name, value)
        for name in order[len(args):]:
            if name in kwargs:
                value = kwargs.pop(name)
            elif name in defaults:
                value = defaults[name]
            elif name in factories:
                value = factories[name]()
            else:
                raise TypeError(f"{qualname}() missing required argument: {name!r}")
            set_field(self, name, value)
        if kwargs:
            name = next(iter(kwargs))
            kind = "multiple values for" if name in order else "an unexpected keyword"
            raise TypeError(f"{qualname}() got {kind} argument {name!r}")
        if post_init is not None:
            post_init(self)

    def __repr__(self: Any) -> str:
        shown = ", ".join(f"{n}={getattr(self, n)!r}" for n in order if n not in hidden)
        return f"{qualname}({shown})"

    def __eq__(self: Any, other: Any) -> Any:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in compared)

    cls.__init__ = __init__
    cls.__repr__ = __repr__
    cls.__eq__ = __eq__
    if frozen:
        def __setattr__(self: Any, name: str, value: Any) -> None:
            raise FrozenInstanceError(f"cannot assign to field {name!r}")

        def __delattr__(self: Any, name: str) -> None:
            raise FrozenInstanceError(f"cannot delete field {name!r}")

        def __hash__(self: Any) -> int:
            return hash(tuple(getattr(self, n) for n in hashed))

        cls.__setattr__ = __setattr__
        cls.__delattr__ = __delattr__
        cls.__hash__ = __hash__
    else:
        cls.__hash__ = None  # mutable and compared by value: unhashable, as dataclasses do
    cls.__record_fields__ = order
    cls.__record_defaults__ = defaults
    cls.__record_factories__ = factories
    cls.__record_hidden__ = frozenset(hidden)
    cls.__record_uncompared__ = frozenset(uncompared)
    cls.__record_unhashed__ = frozenset(unhashed)
    # setattr: mypy refuses a plain assignment to __match_args__ outside a class body.
    setattr(cls, "__match_args__", order)
    return cls
