"""Message types: `Message`, `Command` (one handler, a result) and `Event` (any handlers).

Every message is a pydantic model with an id, a UTC timestamp, a session id (``None`` for
bus-level messages) and free-form metadata. Each concrete class registers itself under a
type name so that a message serialised to JSON comes back as the same class (see `to_json`
/ `from_json` in `_json`), which is what lets a transport carry messages between processes.
"""

from __future__ import annotations

import importlib
import itertools
import os
import sys
import traceback
import weakref
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from llmgine._redact import redact_text
from llmgine.errors import CommandFailedError

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
    "message_type_name",
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
# Each class's name once known for good (asked on every command and event); weakly, so a
# class defined again in a notebook is not kept alive by it.
_NAMES: weakref.WeakKeyDictionary[type[Message], str] = weakref.WeakKeyDictionary()


def message_type_name(cls: type[Message]) -> str:
    """The name a message class is registered and serialised under.

    ``__message_type__`` if the class sets one; for llmgine's own classes, the public
    package that exports them (``llmgine.llm.Generate``, not the private module that
    defines it), so names read well in DataFrames and logs and survive files moving;
    else ``module.QualifiedName``.
    """
    name = _NAMES.get(cls)
    if name is not None:
        return name
    explicit: str | None = cls.__dict__.get("__message_type__")
    name = explicit or _public_name(cls)
    if name is None:
        name = f"{cls.__module__}.{cls.__qualname__}"
        if cls.__module__.startswith("llmgine."):
            return name  # its package is still being imported: its public name may come
    _NAMES[cls] = name
    return name


def _public_name(cls: type[Message]) -> str | None:
    module = cls.__module__
    if not module.startswith("llmgine.") or "._" not in f".{module}":
        return None
    parts = module.split(".")
    for end in range(len(parts) - 1, 0, -1):
        if any(part.startswith("_") for part in parts[:end]):
            continue
        package = sys.modules.get(".".join(parts[:end]))  # only what is already imported
        if (
            package is not None
            and cls.__name__ in getattr(package, "__all__", ())
            and getattr(package, cls.__name__, None) is cls
        ):
            name = f"{package.__name__}.{cls.__qualname__}"
            _REGISTRY.setdefault(name, cls)
            return name
    return None  # its package is still being imported: asked again next time


def registered_message_type(name: str) -> type[Message] | None:
    """The message class registered as ``name``. An llmgine class named by its public
    package is found even before anything named it so (the package is imported)."""
    cls = _REGISTRY.get(name)
    if cls is None and name.startswith("llmgine.") and "._" not in name:
        package, _, attribute = name.rpartition(".")
        try:
            found = getattr(importlib.import_module(package), attribute, None)
        except ImportError:
            return None
        if isinstance(found, type) and issubclass(found, Message):
            message_type_name(found)  # registers the public name
            cls = _REGISTRY.get(name)
    return cls


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
    """Something that happened. Any number of handlers (including none) receive it.

    ``content_fields`` names the fields that hold message content (prompt or completion
    text, tool arguments): where content capture is off, a transport that carries events
    out of the process (`llmgine.bus.nats`) sends them with those fields at their
    defaults, as spans leave content out. Each must have a default.
    """

    content_fields: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        for name in cls.content_fields:
            field = cls.model_fields.get(name)
            if field is None or field.is_required():
                raise TypeError(
                    f"{cls.__name__}.content_fields names {name!r}, which is not a field "
                    "with a default: content left out of an event is set to its default, "
                    f'so give {name!r} one (e.g. {name}: str = "").'
                )


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

    @classmethod
    def failure(
        cls,
        exception: BaseException,
        *,
        command_id: str,
        command_type: str,
        attempts: int = 1,
        duration_ms: float = 0.0,
        session_id: str | None = None,
    ) -> CommandResult[R]:
        """A failed result that keeps ``exception`` (for ``.exception`` and ``unwrap()``),
        described (redacted) in ``error``."""
        result = cls(
            command_id=command_id,
            command_type=command_type,
            success=False,
            error=ErrorInfo.from_exception(exception),
            attempts=attempts,
            duration_ms=duration_ms,
            session_id=session_id,
        )
        result._exception = exception
        return result

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
