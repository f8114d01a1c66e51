"""Message types: `Message`, `Command` (one handler, a result) and `Event` (any handlers).

Every message is a pydantic model with an id, a UTC timestamp, a session id (``None`` for
bus-level messages) and free-form metadata. Each concrete class registers itself under a
type name so that a message serialised to JSON comes back as the same class (see
`to_json` / `from_json`), which is what lets a transport carry messages between processes.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import traceback
import typing
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, TypeVar

import pydantic_core
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from llmgine._redact import redact_text
from llmgine.errors import CommandFailedError, MessageSerializationError, UnknownMessageTypeError

__all__ = [
    "Command",
    "CommandFailed",
    "CommandResult",
    "ErrorInfo",
    "Event",
    "EventHandlerFailed",
    "Message",
    "Payload",
    "SessionEnded",
    "SessionStarted",
    "from_json",
    "message_type_name",
    "to_json",
]

R = TypeVar("R")


class _Ids:
    """Unique message ids: a random per-process prefix and a counter.

    Four times cheaper than `uuid4()` on the hot path and still globally unique (the 64-bit
    prefix is drawn again in a forked child, so parent and child never share it).
    """

    prefix = os.urandom(8).hex()
    counter = itertools.count()

    @classmethod
    def reseed(cls) -> None:
        cls.prefix = os.urandom(8).hex()
        cls.counter = itertools.count()

    @classmethod
    def next(cls) -> str:
        return f"{cls.prefix}{next(cls.counter):016x}"


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_Ids.reseed)


def _now() -> datetime:
    return datetime.now(UTC)


_REGISTRY: dict[str, type[Message]] = {}


def message_type_name(cls: type[Message]) -> str:
    """The name a message class is registered and serialised under."""
    return cls.__dict__.get("__message_type__") or f"{cls.__module__}.{cls.__qualname__}"


# bytes as base64 and NaN/inf as JSON constants, so every value survives a round trip.
_LOSSLESS_JSON = ConfigDict(
    ser_json_bytes="base64",
    val_json_bytes="base64",
    ser_json_inf_nan="constants",
)


class Payload(BaseModel):
    """Base for models nested inside messages: the same lossless JSON as messages.

    A nested model with a ``bytes`` field must read JSON bytes as base64, as this class
    does; `to_json` refuses one that would read them back as UTF-8 text. Other nested
    models (any pydantic model) work as they are.
    """

    model_config = ConfigDict(extra="forbid", **_LOSSLESS_JSON)


class Message(BaseModel):
    """Base of every message on the bus.

    Subclasses are registered by their module and qualified name (or by a class attribute
    ``__message_type__ = "name"``); a class defined again under the same name, as when a
    notebook cell runs twice, replaces the earlier one. Nested models may be any pydantic
    model; one that carries ``bytes`` should subclass `Payload`.
    """

    model_config = ConfigDict(extra="forbid", **_LOSSLESS_JSON)

    id: str = Field(default_factory=_Ids.next)
    timestamp: datetime = Field(default_factory=_now)
    session_id: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        # Parametrised generics such as Command[int] are not concrete message types.
        if cls.__pydantic_generic_metadata__["origin"] is None:
            _REGISTRY[message_type_name(cls)] = cls


class Event(Message):
    """Something that happened. Any number of handlers (including none) receive it."""


class Command(Message, Generic[R]):
    """A request for one thing to be done. Exactly one handler runs it and returns ``R``.

    Example:
        class Add(Command[int]):
            a: int
            b: int

        bus.on_command(Add, lambda cmd: cmd.a + cmd.b)
        result = await bus.execute(Add(a=1, b=2))   # CommandResult[int], result.value == 3
    """

    # True when the handler opens the span that traces the command itself (as `Generate`'s
    # does: its GenAI span carries the command's id), so tracing opens no second one.
    traced_by_handler: ClassVar[bool] = False


class ErrorInfo(BaseModel):
    """A JSON-safe description of an exception: its type, message and traceback."""

    model_config = ConfigDict(frozen=True)

    type: str
    message: str
    traceback: str = ""

    @classmethod
    def from_exception(cls, exc: BaseException) -> ErrorInfo:
        """Describe ``exc``, with secrets (API keys, tokens) redacted from the message and
        traceback: this is what events, logs and results carry. The exception itself is
        kept apart (e.g. `CommandResult.exception`)."""
        return cls(
            type=f"{type(exc).__module__}.{type(exc).__qualname__}",
            message=redact_text(str(exc)),
            traceback=redact_text("".join(traceback.format_exception(exc))),
        )


class CommandResult(BaseModel, Generic[R]):
    """The outcome of `MessageBus.execute`: a value on success, an error otherwise.

    The original exception is kept on ``.exception`` (not serialised); ``unwrap()`` returns
    the value or raises it.
    """

    command_id: str
    command_type: str
    success: bool
    value: R | None = None
    error: ErrorInfo | None = None
    attempts: int = 1
    duration_ms: float = 0.0
    session_id: str | None = None

    _exception: BaseException | None = PrivateAttr(default=None)

    @property
    def exception(self) -> BaseException | None:
        return self._exception

    def unwrap(self) -> R:
        """Return the value, or raise the command's exception if it failed."""
        if self.success:
            return self.value  # type: ignore[return-value]
        if self._exception is not None:
            raise self._exception
        error = self.error or ErrorInfo(type="unknown", message="no error recorded")
        raise CommandFailedError(f"{self.command_type} failed: {error.type}: {error.message}")


class SessionStarted(Event):
    """Published when a session opens."""

    name: str


class SessionEnded(Event):
    """Published when a session closes, before its handlers are removed."""

    name: str
    error: ErrorInfo | None = None


class CommandFailed(Event):
    """Published whenever a command fails for good (after any retries)."""

    command_id: str
    command_type: str
    error: ErrorInfo
    attempts: int


class EventHandlerFailed(Event):
    """Published when an event handler raises; the other handlers still run."""

    event_id: str
    event_type: str
    handler: str
    error: ErrorInfo


_ENVELOPE_KEYS = {"type", "data"}


def _model_types(annotation: Any) -> typing.Iterator[type[BaseModel]]:
    """The pydantic model classes an annotation mentions (``list[X]``, ``X | None``, ...)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        return
    for arg in typing.get_args(annotation):
        yield from _model_types(arg)


def _mentions(annotation: Any, kinds: tuple[type, ...]) -> bool:
    if annotation is Any:
        return True
    if isinstance(annotation, type):
        return issubclass(annotation, kinds)
    return any(_mentions(arg, kinds) for arg in typing.get_args(annotation))


def _is_lossless(cls: type[BaseModel]) -> bool:
    return all(cls.model_config.get(k) == v for k, v in _LOSSLESS_JSON.items())


@dataclass(frozen=True, slots=True)
class _JsonPlan:
    """How `to_json` serialises one message class, worked out once per class."""

    utf8_bytes_field: str | None  # "Model.field": bytes that JSON would read back as text
    python_dump: bool  # a nested model's own config would lose NaN/inf or bytes
    head: str = ""  # the envelope up to the data: '{"type": "name", "data": '


def _walk(cls: type[BaseModel], seen: set[type[BaseModel]]) -> _JsonPlan:
    lossless = _is_lossless(cls)
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
    head = f'{{"type": {json.dumps(message_type_name(cls))}, "data": '
    return _JsonPlan(plan.utf8_bytes_field, plan.python_dump, head)


def to_json(message: Message) -> str:
    """Serialise a message with its concrete type, so `from_json` rebuilds the same class."""
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
        if plan.python_dump:
            # Dumped as Python values and encoded in one place, so the bytes and NaN/inf
            # rules hold inside nested models too, whatever their own model_config says.
            data = pydantic_core.to_json(
                message.model_dump(mode="python", round_trip=True),
                bytes_mode="base64",
                inf_nan_mode="constants",
            )
        else:
            data = cls.__pydantic_serializer__.to_json(message)
    except Exception as exc:  # pydantic raises several kinds for unserialisable values
        raise MessageSerializationError(
            f"cannot serialise {cls.__name__} to JSON: {exc}. Give its fields "
            "JSON-compatible types (or pydantic field serializers)."
        ) from exc
    return f"{plan.head}{data.decode()}}}"


def from_json(text: str | bytes) -> Message:
    """Rebuild a message serialised by `to_json`, as an instance of its original class."""
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
    cls = _REGISTRY.get(name) if isinstance(name, str) else None
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
