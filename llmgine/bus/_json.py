"""`to_json` / `from_json`: a message as JSON and back, exactly, or refused with the fix.

The README promises that a message read back is the message written: the same classes and
the same values. Where pydantic's JSON alone would break that quietly, `to_json` refuses
and names the field and what to change: bytes in a nested model that reads JSON bytes as
UTF-8 text (by class, once), and what `_roundtrip.check_message` finds by value (a value in
an ``Any`` field that is not plain JSON; a subclass in a field declared as its base, or a
value of a union whose members JSON does not tell apart, that would come back different).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import typing
from typing import Any, get_args

import pydantic_core
from pydantic import BaseModel, ValidationError

from llmgine.bus._messages import Message, message_type_name, registered_message_type
from llmgine.bus._roundtrip import Lossy, check_message, difference, explain, is_lossless
from llmgine.errors import MessageSerializationError, UnknownMessageTypeError

__all__ = ["from_json", "to_json"]

_ENVELOPE_KEYS = {"type", "data"}


# -- by class: bytes that would come back as text, values that need a Python dump -------


def _model_types(annotation: Any) -> typing.Iterator[type[BaseModel]]:
    """The pydantic model classes an annotation mentions (``list[X]``, ``X | None``, ...)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        return
    for arg in get_args(annotation):
        yield from _model_types(arg)


def _mentions(annotation: Any, kinds: tuple[type, ...]) -> bool:
    if annotation is Any:
        return True
    if isinstance(annotation, type):
        return issubclass(annotation, kinds)
    return any(_mentions(arg, kinds) for arg in get_args(annotation))


# `to_json`'s envelope around the data: '{"type": "<name>", "data": <data>}'; `from_json`
# reads this layout in one pass.
_TYPE_KEY, _DATA_KEY = '{"type": ', ', "data": '
_HEAD, _MIDDLE = f'{_TYPE_KEY}"'.encode(), f'"{_DATA_KEY}'.encode()


@dataclasses.dataclass(frozen=True, slots=True)
class _JsonPlan:
    """How `to_json` serialises one message class, worked out once per class."""

    utf8_bytes_field: str | None  # "Model.field": bytes that JSON would read back as text
    python_dump: bool  # a nested model's own config would lose NaN/inf or bytes
    head: str = ""  # the envelope up to the data: '{"type": "name", "data": '


def _walk(cls: type[BaseModel], seen: set[type[BaseModel]]) -> _JsonPlan:
    lossless = is_lossless(cls)
    utf8: str | None = None
    python_dump = False
    seen.add(cls)
    for name, info in cls.model_fields.items():
        if not lossless:
            reads_utf8 = cls.model_config.get("val_json_bytes") != "base64"
            if utf8 is None and reads_utf8 and _mentions(info.annotation, (bytes, bytearray)):
                utf8 = f"{cls.__qualname__}.{name}"
            python_dump = python_dump or _mentions(info.annotation, (float, bytes, bytearray))
        for nested in _model_types(info.annotation):
            if nested not in seen:
                plan = _walk(nested, seen)
                utf8 = utf8 or plan.utf8_bytes_field
                python_dump = python_dump or plan.python_dump
    return _JsonPlan(utf8, python_dump)


@functools.cache
def _json_plan(cls: type[Message]) -> _JsonPlan:
    plan = _walk(cls, set())
    head = f"{_TYPE_KEY}{json.dumps(message_type_name(cls))}{_DATA_KEY}"
    return _JsonPlan(plan.utf8_bytes_field, plan.python_dump, head)


def _read_back(cls: type[Message], message: Message, data: bytes) -> None:
    try:
        back = cls.model_validate_json(data)
    except ValidationError as exc:
        raise MessageSerializationError(
            f"cannot serialise {cls.__name__} losslessly: its JSON would not read back "
            f"({exc.errors()[0]['msg']} at {'.'.join(map(str, exc.errors()[0]['loc']))}). "
            "A field holds a value its declared type does not accept from JSON: declare "
            "that field's type to match what it holds."
        ) from exc
    found = difference(message, back)
    if found is not None:
        path, wrote, read = found
        raise MessageSerializationError(
            f"cannot serialise {cls.__name__} losslessly: {cls.__name__}{path} "
            f"{explain(wrote, read)}"
        )


# -- the public pair -----------------------------------------------------------------------


def to_json(message: Message) -> str:
    """Serialise a message with its concrete type, so `from_json` rebuilds the same class
    with the same values.

    Raises:
        MessageSerializationError: the message holds something JSON would not bring back
            as it is; the message names the field and the fix.
    """
    cls = type(message)
    plan = _json_plan(cls)
    if plan.utf8_bytes_field is not None:
        raise MessageSerializationError(
            f"cannot serialise {cls.__name__} losslessly: {plan.utf8_bytes_field} is bytes in "
            "a model that reads JSON bytes as UTF-8. Make that model subclass "
            "llmgine.bus.Payload (or set val_json_bytes='base64' and ser_json_bytes='base64' "
            "in its model_config)."
        )
    try:
        verify = check_message(message)
    except Lossy as exc:
        path = "".join(reversed(exc.path))
        raise MessageSerializationError(
            f"cannot serialise {cls.__name__} losslessly: {cls.__name__}{path} {exc.problem}. "
            f"{exc.fix}"
        ) from None
    try:
        if plan.python_dump:
            # Dumped as Python values and encoded in one place, so the bytes and NaN/inf
            # rules hold inside nested models too, whatever their own model_config says.
            data = pydantic_core.to_json(
                message.model_dump(mode="python", round_trip=True),
                bytes_mode="base64",
                inf_nan_mode="constants",
            )
        else:
            # round_trip: leave out computed fields, which reading back would refuse.
            data = cls.__pydantic_serializer__.to_json(message, round_trip=True)
    except Exception as exc:  # pydantic raises several kinds for unserialisable values
        raise MessageSerializationError(
            f"cannot serialise {cls.__name__} to JSON: {exc}. Give its fields "
            "JSON-compatible types (or pydantic field serializers)."
        ) from exc
    if verify:
        _read_back(cls, message, data)
    return f"{plan.head}{data.decode()}}}"


def from_json(text: str | bytes) -> Message:
    """Rebuild a message serialised by `to_json`, as an instance of its original class.

    What `to_json` wrote is validated straight from the bytes of its data, without
    parsing the envelope and writing the data out again; anything else (another writer's
    spacing or key order, an escaped type name, data that does not validate) is read the
    long way, which reads it or raises the error that says why not.

    Raises:
        MessageSerializationError: the text is not a serialised message, or its data does
            not validate (`UnknownMessageTypeError` when no class has its type name).
    """
    data = text.encode() if isinstance(text, str) else text
    if data.startswith(_HEAD) and data.endswith(b"}"):
        end = data.find(_MIDDLE, len(_HEAD))
        name = data[len(_HEAD) : end] if end > 0 else b""
        if name and b"\\" not in name and b'"' not in name:
            cls = registered_message_type(name.decode(errors="replace"))
            if cls is not None:
                try:
                    return cls.model_validate_json(data[end + len(_MIDDLE) : -1])
                except ValueError:
                    pass  # the long way below gives the reason, or reads another layout
    try:
        envelope = json.loads(text)
    except ValueError as exc:
        raise MessageSerializationError(f"message is not valid JSON: {exc}") from exc
    if not isinstance(envelope, dict) or set(envelope) != _ENVELOPE_KEYS:
        raise MessageSerializationError(
            'a serialised message is a JSON object {"type": ..., "data": ...}; got '
            f"{str(envelope)[:80]!r}"
        )
    name = envelope["type"]
    cls = registered_message_type(name) if isinstance(name, str) else None
    if cls is None:
        raise UnknownMessageTypeError(
            f"no message class is registered as {name!r}; import the module that defines it "
            "before reading its messages."
        )
    try:
        # Validate in JSON mode, where base64 bytes and the like are read back.
        return cls.model_validate_json(json.dumps(envelope["data"]))
    except ValidationError as exc:
        raise MessageSerializationError(f"invalid data for {name}: {exc}") from exc
