"""What a message looks like on the wire: serialised with its class, every secret redacted,
and an event's content left out where content capture is off (a command is sent whole:
the worker needs its prompt, but never a credential; its reply is redacted the same way).

The stream is a record kept on a server (on disk, replicated, read by every process with
access to it), so an event leaves the process by the rules observability applies to what
it records:

* **credentials never travel**, whatever the settings: the JSON goes through the redactor
  (`Redactor.json`: the values of known secrets and of ``add_credential``'s credentials,
  the shapes of common keys such as ``sk-...``, ``AIza...`` and bearer tokens, and
  whatever is stored under a key such as ``authorization`` or ``api_key``);
* **content travels only where content capture is on**: the fields an event class lists
  in `Event.content_fields` (`LLMStreamDelta`'s ``text`` and ``reasoning``) are sent at
  their defaults, and the ``Llmgine-Withheld`` header names them.

Content capture is the transport's ``capture_content=`` if given, else
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``, read when the transport is made,
or the setting of the enabled observability (``enable(capture_content=True)``), read at
each publish.
"""

from __future__ import annotations

import os
from typing import Any

from llmgine import _semconv as sc
from llmgine._redact import default_redactor
from llmgine._tracing import tracer_for
from llmgine.bus._json import from_json, to_json
from llmgine.bus._messages import Command, Event
from llmgine.errors import MessageSerializationError

__all__ = [
    "DELIVERED_HEADER",
    "WITHHELD_HEADER",
    "capture_from_env",
    "wire_event",
    "wire_message",
    "wire_reply",
]

WITHHELD_HEADER = "Llmgine-Withheld"
# On an event its publisher already delivered here (publish(wait=True)): the consumer of
# that name acks it unhandled, so no bus sharing that consumer handles it twice.
DELIVERED_HEADER = "Llmgine-Delivered-By"
_TRUE = {"1", "true", "yes", "on"}


def capture_from_env() -> bool:
    """Whether ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` turns capture on."""
    return os.environ.get(sc.CAPTURE_CONTENT_ENV, "").strip().lower() in _TRUE


def wire_event(event: Event, *, capture_content: bool | None) -> tuple[bytes, tuple[str, ...]]:
    """The bytes to publish for ``event`` and the content fields left out of them.

    ``capture_content`` None follows the enabled observability's setting.

    Raises:
        MessageSerializationError: the event cannot be serialised, or a secret sits in a
            field whose type cannot hold the placeholder that replaces it.
    """
    capture = tracer_for(None).capture_content if capture_content is None else capture_content
    withheld: tuple[str, ...] = ()
    if not capture and event.content_fields:
        fields = type(event).model_fields
        withheld = tuple(
            name
            for name in event.content_fields
            if getattr(event, name) != fields[name].get_default(call_default_factory=True)
        )
        if withheld:
            defaults = {n: fields[n].get_default(call_default_factory=True) for n in withheld}
            event = event.model_copy(update=defaults)
    return wire_message(event), withheld


def wire_message(message: Event | Command[Any]) -> bytes:
    """The bytes to send for ``message`` (an event or a command), its secrets redacted.
    Commands are sent whole (a worker needs the prompt), never with a credential.

    Raises:
        MessageSerializationError: as `wire_event`.
    """
    text = to_json(message)
    redacted = default_redactor.json(text)
    if redacted is not text:
        try:
            from_json(redacted)  # a rare path: check the receivers can read it
        except MessageSerializationError as exc:
            raise MessageSerializationError(
                f"{type(message).__name__} holds a secret where the redacted placeholder is "
                f"not a valid value ({exc}); secrets never leave the process, so carry it "
                "in a str field, or keep it out of the message"
            ) from None
    return redacted.encode()


def wire_reply(text: str) -> bytes:
    """A command's reply (its value or its error, as JSON) with every secret redacted."""
    return default_redactor.json(text).encode()
