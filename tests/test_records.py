"""barque.records: the start-up-lean stand-in for dataclasses that every record type uses."""

from __future__ import annotations

import pytest
from barque.records import FrozenInstanceError, field, fields, record, replace


@record(frozen=True)
class Point:
    x: int
    y: int = 0
    tags: list[str] = field(default_factory=list, compare=False)
    secret: str = field(default="", repr=False)


@record
class Mutable:
    name: str
    items: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("empty name")


@record(frozen=True)
class Point3(Point):
    z: int = 0


def test_init_defaults_factories_and_positional() -> None:
    p = Point(1)
    assert (p.x, p.y, p.tags, p.secret) == (1, 0, [], "")
    assert Point(1, 2).y == 2 and Point(x=1, y=3).y == 3
    a, b = Mutable("a"), Mutable("b")
    a.items.append(1)
    assert b.items == []  # a fresh list each time
    assert fields(Point) == ("x", "y", "tags", "secret")


def test_bad_arguments_raise_type_error() -> None:
    with pytest.raises(TypeError, match="missing required argument: 'x'"):
        Point()
    with pytest.raises(TypeError, match="unexpected keyword argument 'w'"):
        Point(1, w=2)
    with pytest.raises(TypeError, match="multiple values"):
        Point(1, x=2)
    with pytest.raises(TypeError, match="positional"):
        Point(1, 2, [], "", 5)
    with pytest.raises(TypeError, match="non-default field"):
        @record
        class Bad:
            a: int = 1
            b: int


def test_frozen_equality_hash_and_repr() -> None:
    p = Point(1, 2, ["t"], "hidden")
    with pytest.raises(FrozenInstanceError):
        p.x = 3  # type: ignore[misc]
    assert isinstance(FrozenInstanceError(), AttributeError)
    assert p == Point(1, 2, ["other"], "hidden") and p != Point(1, 3)  # tags not compared
    assert hash(Point(1, 2)) == hash(Point(1, 2, ["x"]))
    assert repr(p) == "Point(x=1, y=2, tags=['t'])"  # secret hidden
    with pytest.raises(TypeError):
        hash(Mutable("a"))  # mutable records are unhashable, as dataclasses


def test_post_init_replace_and_inheritance() -> None:
    with pytest.raises(ValueError):
        Mutable("")
    p = Point3(1, z=5)
    assert fields(p) == ("x", "y", "tags", "secret", "z") and p.z == 5
    q = replace(p, y=7)
    assert (q.x, q.y, q.z) == (1, 7, 5) and type(q) is Point3
    with pytest.raises(TypeError, match="no field 'w'"):
        replace(p, w=1)
    with pytest.raises(ValueError):
        replace(Mutable("a"), name="")  # checks run again
