"""`LLMRequest`: one provider-neutral request, and the pieces it is made of."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator

from llmgine.bus import Payload, Polymorphic
from llmgine.llm._parts import ChatMessage

__all__ = [
    "LLMRequest",
    "ProviderOptions",
    "Reasoning",
    "ResponseFormat",
    "ToolChoice",
    "ToolName",
    "ToolSpec",
]


class ToolSpec(Payload):
    """A tool the model may call: its name, what it does, and a JSON schema of its
    arguments (an object schema)."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: bool | None = None


class ToolName(Payload):
    """``tool_choice`` that forces one named tool."""

    name: str


ToolChoice = Literal["auto", "none", "required"] | ToolName


class ResponseFormat(Payload):
    """Structured output: the model must answer with JSON matching ``json_schema``."""

    name: str = "output"
    json_schema: dict[str, Any]
    description: str | None = None
    strict: bool = True


class Reasoning(Payload):
    """Ask for reasoning ("thinking"): an ``effort`` (OpenAI) and/or a token ``budget``
    (Anthropic, Gemini); each provider takes what it understands and derives the rest."""

    effort: Literal["minimal", "low", "medium", "high"] | None = None
    budget_tokens: int | None = None
    include_thoughts: bool = True


class ProviderOptions(Payload):
    """Base of each provider's typed options (``OpenAIOptions``, ``AnthropicOptions``, ...).

    A request may carry options for several providers at once, so switching provider by
    configuration needs no code change; each provider reads only its own (``provider``
    names it) and rejects unknown fields. ``extra_body`` is passed to the SDK verbatim.
    In `LLMRequest.options` each travels in JSON with its class name, so it comes back as
    the same class.
    """

    provider: str
    extra_body: dict[str, Any] = Field(default_factory=dict)


class LLMRequest(Payload):
    """Everything one model call needs, whatever the provider.

    Example:
        LLMRequest(messages=[ChatMessage.user("hi")], temperature=0.2, max_tokens=200)
    """

    # Provider options are subclasses of ProviderOptions: keep them as they are.
    model_config = ConfigDict(revalidate_instances="never")

    model: str | None = None  # the model's own name; the Model it is sent to supplies it
    messages: list[ChatMessage]
    tools: list[ToolSpec] = Field(default_factory=list)
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    stop: list[str] | None = None
    seed: int | None = None
    reasoning: Reasoning | None = None
    stream: bool = False
    timeout: float | None = None
    # Each item an OpenAIOptions, AnthropicOptions, ...: JSON carries its class by name.
    options: list[Polymorphic[ProviderOptions]] = Field(default_factory=list)

    @field_validator("tools", mode="before")
    @classmethod
    def _tool_specs(cls, value: Any) -> Any:
        """Take what callers obviously pass: None (no tools), one tool or an iterable of
        them (a list, a `ToolManager`); each a `ToolSpec`, a dict of its fields, or a
        `Tool` (an ``@tool`` function), declared by its ``spec()``."""
        if value is None:
            return []
        if isinstance(value, ToolSpec | Mapping) or _declares_spec(value) or callable(value):
            value = [value]
        elif isinstance(value, str | bytes) or not isinstance(value, Iterable):
            raise ValueError(
                f"tools is a list of tools (@tool functions, Tools, ToolSpecs), or None; got "
                f"{type(value).__name__}"
            )
        return [_tool_spec(item, index) for index, item in enumerate(value)]

    @field_validator("timeout", "max_tokens")
    @classmethod
    def _positive(cls, value: float | None) -> float | None:
        if value is not None and value <= 0:
            raise ValueError(f"must be positive, got {value}")
        return value

    def options_for(self, provider: str, cls: type[Any]) -> Any:
        """This request's options for ``provider`` (an instance of ``cls``), or defaults."""
        for item in self.options:
            if item.provider == provider:
                if not isinstance(item, cls):
                    raise TypeError(
                        f"options for {provider!r} must be {cls.__name__}, got "
                        f"{type(item).__name__}"
                    )
                return item
        return cls()

    @property
    def system_text(self) -> str | None:
        """The system messages' text joined, or None when there are none."""
        texts = [m.text for m in self.messages if m.role == "system"]
        return "\n\n".join(texts) if texts else None


def _declares_spec(value: Any) -> bool:
    return callable(getattr(value, "spec", None)) and isinstance(getattr(value, "name", None), str)


def _tool_spec(item: Any, index: int) -> Any:
    """One entry of ``tools`` as a `ToolSpec` (a dict is left to pydantic to validate)."""
    if isinstance(item, ToolSpec | Mapping):
        return item
    if _declares_spec(item):
        spec = item.spec()
        if isinstance(spec, ToolSpec):
            return spec
    if callable(item):
        name = getattr(item, "__name__", None) or type(item).__name__
        raise ValueError(
            f"tools[{index}] is the plain function {name!r}, not a tool: decorate it with "
            f"@tool (from llmgine.tools import tool), or pass Tool.from_function({name}); a "
            f"ToolManager or run_tool_loop also takes plain functions"
        )
    raise ValueError(
        f"tools[{index}] is a {type(item).__name__}; a tool is an @tool function, a Tool, a "
        f"ToolSpec or a dict of a ToolSpec's fields (name, description, parameters)"
    )
