"""A conversation as typed parts: what every provider's messages map to and from.

Parts carry a ``kind`` discriminator, so a conversation serialises to JSON and comes back
as the same classes, and can be replayed on another provider. Provider-only details
(an opaque thinking signature, a Responses API item id) ride along in the part that owns
them, so they can be sent back next turn.
"""

from __future__ import annotations

import base64
import json
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from llmgine.bus import Payload

__all__ = [
    "ChatMessage",
    "Conversation",
    "FilePart",
    "ImagePart",
    "Part",
    "ReasoningPart",
    "Role",
    "TextPart",
    "ToolCallPart",
    "ToolResultPart",
]

Role = Literal["system", "user", "assistant", "tool"]


class TextPart(Payload):
    """Plain text, from the user, the system or the model."""

    kind: Literal["text"] = "text"
    text: str


class _Media(Payload):
    data: bytes | None = None
    url: str | None = None
    media_type: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> _Media:
        if (self.data is None) == (self.url is None):
            raise ValueError(
                f"a {type(self).__name__} needs exactly one of data= (bytes) or url=; "
                f"got {'both' if self.data is not None else 'neither'}"
            )
        if self.data is not None and self.media_type is None:
            raise ValueError(
                f"a {type(self).__name__} given as bytes needs media_type= (e.g. 'image/png')"
            )
        return self

    def base64(self) -> str:
        """The bytes as standard base64 (what the provider APIs want)."""
        if self.data is None:
            raise ValueError(f"this {type(self).__name__} is a URL, not bytes")
        return base64.b64encode(self.data).decode()


class ImagePart(_Media):
    """An image, as bytes (with its media type) or a URL."""

    kind: Literal["image"] = "image"


class FilePart(_Media):
    """A file (a PDF, audio, ...), as bytes (with its media type) or a URL."""

    kind: Literal["file"] = "file"
    name: str | None = None


class ReasoningPart(Payload):
    """The model's reasoning ("thinking"). ``signature`` is the provider's opaque token that
    must be sent back with it on the next turn (Anthropic ``signature``, Gemini
    ``thoughtSignature``, OpenAI encrypted reasoning); ``provider`` says whose it is, so it
    is only sent back to that provider. ``redacted`` marks reasoning the provider returned
    encrypted only (the text is then empty)."""

    kind: Literal["reasoning"] = "reasoning"
    text: str = ""
    signature: str | None = None
    provider: str | None = None
    redacted: bool = False
    provider_data: dict[str, Any] | None = None


class ToolCallPart(Payload):
    """The model asks for a tool: ``arguments`` is the parsed JSON object it sent.

    If the model sent arguments that are not a JSON object, ``arguments`` is empty and
    ``invalid_arguments`` holds the text, so the tool loop can tell the model what is wrong.
    ``signature`` is Gemini's thought signature on a function call (sent back next turn).
    """

    kind: Literal["tool_call"] = "tool_call"
    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    invalid_arguments: str | None = None
    signature: str | None = None
    provider: str | None = None
    provider_data: dict[str, Any] | None = None

    @classmethod
    def from_json_arguments(cls, id: str, name: str, text: str, **more: Any) -> ToolCallPart:
        """Build from arguments as JSON text, as every provider streams them."""
        try:
            parsed = json.loads(text) if text.strip() else {}
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            return cls(id=id, name=name, arguments=parsed, **more)
        return cls(id=id, name=name, invalid_arguments=text, **more)

    @property
    def arguments_json(self) -> str:
        """The arguments as compact JSON text (what the OpenAI wire format wants)."""
        if self.invalid_arguments is not None:
            return self.invalid_arguments
        return json.dumps(self.arguments, separators=(",", ":"), ensure_ascii=False)


class ToolResultPart(Payload):
    """What a tool returned (``content``, as text or JSON-able data), for call ``call_id``;
    ``is_error`` when the tool failed and ``content`` says why."""

    kind: Literal["tool_result"] = "tool_result"
    call_id: str
    name: str | None = None
    content: Any = None
    is_error: bool = False

    @property
    def text(self) -> str:
        """The content as text: strings as they are, anything else as JSON."""
        if isinstance(self.content, str):
            return self.content
        return json.dumps(self.content, ensure_ascii=False, default=str)


Part = Annotated[
    TextPart | ImagePart | FilePart | ReasoningPart | ToolCallPart | ToolResultPart,
    Field(discriminator="kind"),
]


class ChatMessage(Payload):
    """One turn: a role and its parts.

    ``system`` holds instructions; ``user`` text, images and files; ``assistant`` text,
    reasoning and tool calls; ``tool`` the results of tool calls.

    Example:
        ChatMessage.user("What is the capital of France?")
        ChatMessage.user([TextPart(text="What is this?"), ImagePart(url="https://...")])
    """

    role: Role
    parts: list[Part]

    @classmethod
    def system(cls, text: str) -> ChatMessage:
        return cls(role="system", parts=[TextPart(text=text)])

    @classmethod
    def user(cls, content: str | list[Part]) -> ChatMessage:
        parts: list[Part] = [TextPart(text=content)] if isinstance(content, str) else content
        return cls(role="user", parts=parts)

    @classmethod
    def assistant(cls, content: str | list[Part]) -> ChatMessage:
        parts: list[Part] = [TextPart(text=content)] if isinstance(content, str) else content
        return cls(role="assistant", parts=parts)

    @classmethod
    def tool_results(cls, results: list[ToolResultPart]) -> ChatMessage:
        return cls(role="tool", parts=list(results))

    @property
    def text(self) -> str:
        """The text parts joined (reasoning excluded)."""
        return "".join(p.text for p in self.parts if isinstance(p, TextPart))

    @property
    def tool_calls(self) -> list[ToolCallPart]:
        return [p for p in self.parts if isinstance(p, ToolCallPart)]


class Conversation(Payload):
    """A list of messages that serialises to JSON and replays on any provider."""

    messages: list[ChatMessage] = Field(default_factory=list)

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str | bytes) -> Conversation:
        return cls.model_validate_json(text)
