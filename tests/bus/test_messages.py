"""Message models: ids, timestamps, registration and lossless JSON."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest
from pydantic import BaseModel, Field, ValidationError

from llmgine.bus import (
    Command,
    CommandResult,
    ErrorInfo,
    Event,
    Payload,
    SessionEnded,
    from_json,
    message_type_name,
    to_json,
)
from llmgine.errors import CommandFailedError, MessageSerializationError, UnknownMessageTypeError


class Point(BaseModel):
    x: float
    y: float


class Moved(Event):
    who: str
    to: Point
    path: list[Point] = Field(default_factory=list)
    at: datetime | None = None
    raw: bytes = b""


class Resize(Command[int]):
    width: int


class Renamed(Event):
    __message_type__ = "example.renamed"
    name: str


def test_every_message_gets_a_unique_id_and_a_utc_timestamp() -> None:
    a, b = Moved(who="a", to=Point(x=0, y=0)), Moved(who="b", to=Point(x=0, y=0))
    assert a.id != b.id
    assert len(a.id) == 32
    assert a.timestamp.tzinfo is UTC
    assert a.session_id is None
    assert a.metadata == {}


def test_unknown_fields_are_rejected_so_typos_surface() -> None:
    with pytest.raises(ValidationError, match="who_"):
        Moved(who="a", to=Point(x=0, y=0), who_="typo")  # type: ignore[call-arg]


def test_json_round_trip_keeps_the_concrete_type_and_every_field() -> None:
    event = Moved(
        who="ada",
        to=Point(x=1.5, y=-2),
        path=[Point(x=0, y=0)],
        at=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        raw=b"\x00\xffbytes",
        session_id="s1",
        metadata={"trace": [1, 2, {"k": None}]},
    )
    back = from_json(to_json(event))
    assert type(back) is Moved
    assert back == event


def test_commands_round_trip_too() -> None:
    back = from_json(to_json(Resize(width=3)))
    assert isinstance(back, Resize)
    assert back.width == 3


def test_a_class_can_choose_its_wire_name() -> None:
    assert message_type_name(Renamed) == "example.renamed"
    assert '"type": "example.renamed"' in to_json(Renamed(name="x"))
    assert message_type_name(Moved) == f"{__name__}.Moved"


def test_redefining_a_class_replaces_it_as_in_a_rerun_notebook_cell() -> None:
    def define() -> type[Event]:
        class Cell(Event):
            value: int

        return Cell

    first, second = define(), define()
    back = from_json(to_json(first(value=1)))  # type: ignore[call-arg]
    assert type(back) is second


def test_unknown_type_names_say_to_import_the_module() -> None:
    with pytest.raises(UnknownMessageTypeError, match="import the module"):
        from_json('{"type": "nowhere.Nothing", "data": {}}')


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("not json", "not valid JSON"),
        ('["type", "data"]', "JSON object"),
        ('{"type": "x"}', "JSON object"),
        (f'{{"type": "{__name__}.Resize", "data": {{"width": "wide"}}}}', "invalid data"),
    ],
)
def test_malformed_json_raises_a_serialization_error(text: str, match: str) -> None:
    with pytest.raises(MessageSerializationError, match=match):
        from_json(text)


def test_unserialisable_metadata_is_a_clear_error() -> None:
    event = Renamed(name="x", metadata={"obj": object()})
    with pytest.raises(MessageSerializationError, match="JSON-compatible"):
        to_json(event)


def test_error_info_captures_type_message_and_traceback() -> None:
    try:
        raise KeyError("missing")
    except KeyError as exc:
        info = ErrorInfo.from_exception(exc)
    assert info.type == "builtins.KeyError"
    assert info.message == "'missing'"
    assert "test_error_info_captures" in info.traceback


def test_command_result_unwrap() -> None:
    ok = CommandResult[int](command_id="1", command_type="t", success=True, value=4)
    assert ok.unwrap() == 4
    failed = CommandResult[int](
        command_id="1",
        command_type="t",
        success=False,
        error=ErrorInfo(type="builtins.ValueError", message="bad"),
    )
    # Read back from JSON the original exception is gone, but unwrap still raises.
    restored = CommandResult[int].model_validate_json(failed.model_dump_json())
    with pytest.raises(CommandFailedError, match="ValueError: bad"):
        restored.unwrap()
    assert restored.exception is None


def test_built_in_events_serialise() -> None:
    ended = SessionEnded(name="s", session_id="x", error=ErrorInfo(type="E", message="m"))
    assert from_json(to_json(ended)) == ended


def test_ids_are_reseeded_in_a_forked_child() -> None:
    if not hasattr(os, "fork"):
        pytest.skip("os.fork is not available on this platform")
    parent_id = Renamed(name="p").id
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report one id and leave without running pytest's teardown
        os.close(read)
        os.write(write, Renamed(name="c").id.encode())
        os._exit(0)
    os.close(write)
    child_id = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert child_id[:16] != parent_id[:16]


class _Utf8Blob(BaseModel):
    data: bytes


class _Blob(Payload):
    data: bytes
    scale: float = 1.0


class _Carrier(Event):
    blobs: list[_Blob] = Field(default_factory=list)
    point: Point | None = None  # a plain model without bytes needs nothing special


class _Utf8Carrier(Event):
    utf8: dict[str, _Utf8Blob] | None = None


def test_nested_payload_bytes_and_infinities_round_trip() -> None:
    event = _Carrier(
        blobs=[_Blob(data=b"\xff\x00", scale=float("inf"))], point=Point(x=float("-inf"), y=0)
    )
    back = from_json(to_json(event))
    assert back == event


def test_nested_model_reading_bytes_as_utf8_is_refused_with_the_fix() -> None:
    # Refused by class, not by value: the same message type always serialises or never.
    event = _Utf8Carrier(utf8=None)
    with pytest.raises(MessageSerializationError, match=r"_Utf8Blob\.data .*Payload"):
        to_json(event)


def test_a_type_name_that_is_not_a_string_is_an_unknown_type() -> None:
    with pytest.raises(UnknownMessageTypeError):
        from_json('{"type": [], "data": {}}')
