"""`to_json` writes what `from_json` brings back exactly, or refuses with the fix.

Each case here used to come back quietly changed: a subclass as its base, one union member
as another, bytes or tuples in ``metadata`` as strings or lists.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, Field, ValidationError, computed_field

from llmgine.bus import Event, Payload, Polymorphic, from_json, to_json
from llmgine.errors import MessageSerializationError


class Shape(Payload):
    name: str


class Circle(Shape):
    radius: float


class Square(Shape):
    side: float


class Drawn(Event):
    shape: Shape | None = None
    shapes: list[Shape] = Field(default_factory=list)


class Any1(BaseModel):
    x: int


class Any2(BaseModel):
    x: int


class LookAlike(Event):
    value: Any1 | Any2


class Tagged1(Payload):
    kind: Literal["one"] = "one"
    x: int


class Tagged2(Payload):
    kind: Literal["two"] = "two"
    x: int


class Discriminated(Event):
    value: Annotated[Tagged1 | Tagged2, Field(discriminator="kind")]
    values: list[Annotated[Tagged1 | Tagged2, Field(discriminator="kind")]] = Field(
        default_factory=list
    )


class Different1(BaseModel):
    x: int


class Different2(BaseModel):
    label: str


class TextOrBlob(Event):
    value: str | bytes
    choice: Literal["auto", "none"] | Different2 | None = None
    either: Different1 | Different2 | None = None


class Polymorphs(Event):
    one: Polymorphic[Shape]
    many: list[Polymorphic[Shape]] = Field(default_factory=list)
    maybe: Polymorphic[Shape] | None = None


class Colour(enum.Enum):
    RED = "red"


def round_trip(event: Event) -> Event:
    text = to_json(event)
    back = from_json(text)
    assert type(back) is type(event)
    assert back == event
    # Stable on a second trip too (compared as values: a set's JSON order may differ).
    assert from_json(to_json(back)) == event
    return back


# -- subclasses in fields declared as their base ------------------------------------------


def test_a_subclass_in_a_base_typed_field_is_refused_with_the_fix() -> None:
    with pytest.raises(MessageSerializationError) as caught:
        to_json(Drawn(shape=Circle(name="c", radius=2)))
    message = str(caught.value)
    assert "Drawn.shape" in message
    assert "subclass of the declared Shape" in message
    assert "Polymorphic[Shape]" in message
    round_trip(Drawn(shape=Shape(name="plain")))  # the declared class itself is fine


def test_the_refusal_names_where_in_a_list_the_subclass_is() -> None:
    event = Drawn(shapes=[Shape(name="a"), Square(name="b", side=1)])
    with pytest.raises(MessageSerializationError, match=r"Drawn\.shapes\[1\] holds Square"):
        to_json(event)


def test_polymorphic_fields_keep_every_subclass_and_its_fields() -> None:
    event = Polymorphs(
        one=Circle(name="c", radius=1.5),
        many=[Square(name="s", side=2), Shape(name="plain"), Circle(name="d", radius=0)],
        maybe=Square(name="m", side=float("inf")),
    )
    back = round_trip(event)
    assert isinstance(back, Polymorphs)
    assert [type(s) for s in back.many] == [Square, Shape, Circle]
    assert isinstance(back.one, Circle)
    assert back.one.radius == 1.5
    data = json.loads(to_json(event))["data"]
    assert data["one"] == {
        "type": f"{__name__}.Circle",
        "data": {"name": "c", "radius": 1.5},
    }
    # Python dumps carry the class too, so pydantic's own round trip keeps it.
    assert Polymorphs.model_validate(event.model_dump()) == event


def test_polymorphic_refuses_what_is_not_the_base_and_names_unknown_classes() -> None:
    with pytest.raises(ValidationError, match="expected a Shape"):
        Polymorphs(one={"name": "x"})
    text = to_json(Polymorphs(one=Shape(name="x"))).replace(f"{__name__}.Shape", "gone.Shape")
    with pytest.raises(MessageSerializationError, match="import the module"):
        from_json(text)
    with pytest.raises(TypeError, match="pydantic model class"):
        Polymorphic[int]


# -- unions ---------------------------------------------------------------------------------


def test_a_union_of_look_alike_models_is_refused_with_the_fix() -> None:
    round_trip(LookAlike(value=Any1(x=1)))  # the first member comes back as itself
    with pytest.raises(MessageSerializationError) as caught:
        to_json(LookAlike(value=Any2(x=1)))
    assert "LookAlike.value holds Any2(x=1), which JSON reads back as Any1(x=1)" in str(
        caught.value
    )
    assert "discriminator" in str(caught.value)


def test_discriminated_unions_and_unions_json_tells_apart_round_trip() -> None:
    round_trip(Discriminated(value=Tagged2(x=1), values=[Tagged1(x=2), Tagged2(x=3)]))
    round_trip(TextOrBlob(value="text", choice="none", either=Different2(label="l")))
    round_trip(TextOrBlob(value="text", choice=Different2(label="c"), either=Different1(x=1)))


def test_a_union_whose_members_json_writes_alike_is_refused_by_value() -> None:
    with pytest.raises(MessageSerializationError, match=r"TextOrBlob\.value holds b'raw'"):
        to_json(TextOrBlob(value=b"raw"))


# -- Any fields (metadata) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "path", "comes_back"),
    [
        (b"\x00\xff", "['blob']", "base64 string"),
        ((1, 2), "['blob']", "a list"),
        ({1, 2}, "['blob']", "a list"),
        (datetime(2026, 1, 1, tzinfo=UTC), "['blob']", "a string"),
        (Any1(x=1), "['blob']", "a dict"),
        (Colour.RED, "['blob']", "its plain value"),
        ({"deep": [1, {"bytes": b"x"}]}, "['blob']['deep'][1]['bytes']", "base64 string"),
        ({"k": {1: "int key"}}, "['blob']['k']", "turns into a string"),
    ],
)
def test_metadata_that_json_would_change_is_refused_with_the_fix(
    value: Any, path: str, comes_back: str
) -> None:
    event = Drawn(metadata={"blob": value})
    with pytest.raises(MessageSerializationError) as caught:
        to_json(event)
    message = str(caught.value)
    assert f"Drawn.metadata{path}" in message
    assert comes_back in message
    assert "JSON-compatible values only" in message


def test_json_metadata_round_trips() -> None:
    metadata = {"s": "x", "n": [1, 2.5, None, True, float("inf")], "d": {"k": {"v": []}}}
    back = round_trip(Drawn(metadata=metadata))
    assert back.metadata == metadata


def test_computed_fields_are_left_out_so_the_json_reads_back() -> None:
    class Area(Event):
        side: float

        @computed_field  # type: ignore[prop-decorator]
        @property
        def area(self) -> float:
            return self.side**2

    back = round_trip(Area(side=3))
    assert isinstance(back, Area)
    assert back.area == 9


# -- the declared types a message may use ------------------------------------------------


@dataclasses.dataclass
class Cell:
    row: int


@dataclasses.dataclass
class WideCell(Cell):
    width: int = 1


class Zoo(Event):
    pair: tuple[int, Any] = (0, None)
    row: tuple[Any, ...] = ()
    bare_list: list = Field(default_factory=list)  # type: ignore[type-arg]
    bare_dict: dict = Field(default_factory=dict)  # type: ignore[type-arg]
    queue: collections.deque[int] = Field(default_factory=collections.deque)
    seq: Sequence[Any] = Field(default_factory=list)
    names: frozenset[str] = frozenset()
    counts: Mapping[str, int] = Field(default_factory=dict)
    cell: Cell | None = None
    colour_or_point: Colour | Any1 = Colour.RED
    number_or_text: int | str = 0
    ints_or_map: list[int] | dict[str, int] = Field(default_factory=list)
    when: datetime | None = None
    loose: int | Any = 0


def test_every_kind_of_declared_type_round_trips() -> None:
    round_trip(Zoo())
    round_trip(
        Zoo(
            pair=(1, {"k": [1, "v"]}),
            row=(1, "two", None),
            bare_list=[1, {"a": [2]}],
            bare_dict={"k": [1]},
            queue=collections.deque([1, 2]),
            seq=[1, "x"],
            names=frozenset({"a", "b"}),
            counts={"a": 1},
            cell=Cell(row=3),
            colour_or_point=Any1(x=1),
            number_or_text="5",
            ints_or_map={"a": 1},
            when=datetime(2026, 1, 1, tzinfo=UTC),
            loose="text",
        )
    )


@pytest.mark.parametrize(
    ("fields", "where", "says"),
    [
        ({"pair": (1, b"x")}, "Zoo.pair[1]", "base64 string"),
        ({"row": ({1},)}, "Zoo.row[0]", "a list"),
        ({"bare_list": [(1,)]}, "Zoo.bare_list[0]", "a list"),
        ({"bare_dict": {"k": Colour.RED}}, "Zoo.bare_dict['k']", "its plain value"),
        ({"seq": [(1, 2)]}, "Zoo.seq[0]", "a list"),
        ({"seq": (1, 2)}, "Zoo.seq", "store a list there"),  # a tuple in a Sequence
        ({"cell": WideCell(row=1, width=2)}, "Zoo.cell", "reads back as"),
        ({"loose": b"x"}, "Zoo.loose", "reads back as"),
    ],
)
def test_what_would_come_back_changed_is_refused_where_it_is(
    fields: dict[str, Any], where: str, says: str
) -> None:
    zoo = Zoo(**fields)
    with pytest.raises(MessageSerializationError) as caught:
        to_json(zoo)
    message = str(caught.value)
    assert f"{where} " in message
    assert says in message
