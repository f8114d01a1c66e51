"""`DemoProvider` ("demo:"): an offline, clearly labelled simulation of a model, for
notebooks, Binder and the main job when no key is set.

A demo that pretended to answer would read as a broken model ("Name three primes." got
filler and no primes), so its text says what it is and how to get real answers, then
echoes what a model would have received: the messages and their roles, the input tokens,
the system prompt, the tools and settings. Everything else behaves like a real model,
through the real request/response code: answers stream at a realistic pace and report
plausible token usage, a tool named by the prompt (or forced by ``tool_choice``) is
called with valid example arguments so tool loops run, structured output is a valid
instance of the schema, reasoning comes when asked. The same request always gets the
same answer; every response is marked ``demo=True`` so views can label it, and is free.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from llmgine.llm._parts import ReasoningPart, TextPart, ToolCallPart, ToolResultPart
from llmgine.llm._provider import Provider
from llmgine.llm._request import LLMRequest, ToolName, ToolSpec
from llmgine.llm._response import LLMResponse, Usage
from llmgine.llm._stream import ResponseStream, StreamAssembler, StreamItem
from llmgine.llm._testing import estimate_tokens, response_items

__all__ = ["DemoProvider"]

_WORD = re.compile(r"[A-Za-z][A-Za-z'-]+")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_STOP = {
    "what", "which", "who", "how", "why", "when", "where", "the", "a", "an", "is", "are",
    "of", "in", "on", "for", "to", "and", "or", "me", "please", "can", "you", "tell",
    "about", "give", "explain", "does", "do", "with", "it", "this", "that", "my", "your",
}  # fmt: skip
_QUOTED = 80  # characters of the prompt quoted back
_LISTED = 5  # tools named before "and N more"
_SETTINGS = ("temperature", "max_tokens", "top_p", "seed", "stop")
REAL_ANSWERS = (
    "For real answers, set a provider's key (OPENAI_API_KEY, ANTHROPIC_API_KEY, "
    "GEMINI_API_KEY) or LLMGINE_MODEL, or name a real model such as openai:gpt-4o-mini."
)


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def _topic(text: str) -> str:
    words = [w for w in _WORD.findall(text) if w.lower() not in _STOP]
    return " ".join(words[:4]) or "your question"


def _example(schema: dict[str, Any], name: str, prompt: str, numbers: list[str]) -> Any:
    """A value that satisfies a (simple) JSON schema, drawn from the prompt where it can."""
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return _example(options[0], name, prompt, numbers)
    kind = schema.get("type", "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "object":
        props = schema.get("properties", {})
        return {k: _example(v, k, prompt, numbers) for k, v in props.items()}
    if kind == "array":
        return [_example(schema.get("items", {}), name, prompt, numbers)]
    if kind in ("integer", "number"):
        if numbers:
            value = float(numbers.pop(0))
            return int(value) if kind == "integer" else value
        return 1 if kind == "integer" else 1.0
    if kind == "boolean":
        return True
    capitalised = [w for w in _WORD.findall(prompt) if w[0].isupper()]
    return capitalised[-1] if capitalised else _topic(prompt)


def _pick_tools(request: LLMRequest, prompt: str) -> list[ToolSpec]:
    """The tools to call: the one ``tool_choice`` names, else those the prompt mentions
    (by name, or by a word of the name), else with ``"required"`` the first one."""
    tools, choice = request.tools, request.tool_choice
    if not tools or choice == "none":
        return []
    if isinstance(choice, ToolName):
        chosen = [t for t in tools if t.name == choice.name]
        if chosen:
            return chosen
    lowered = prompt.lower()
    named = [t for t in tools if t.name.lower().replace("_", " ") in lowered.replace("_", " ")]
    if named:
        return named
    for tool in tools:  # a tool whose name shares a word with the prompt
        words = set(tool.name.lower().split("_"))
        if words & set(_WORD.findall(lowered)):
            return [tool]
    return tools[:1] if choice == "required" or isinstance(choice, ToolName) else []


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def _quote(text: str) -> str:
    line = " ".join(text.split())
    if len(line) > _QUOTED:
        line = line[: _QUOTED - 1].rstrip() + "…"
    return f"“{line}”"


def _received(request: LLMRequest, input_tokens: int) -> list[str]:
    """The request's shape, one short line each: what a model would have been sent."""
    messages = request.messages
    roles = Counter(m.role for m in messages)
    mix = ", ".join(f"{count} {role}" for role, count in roles.items())
    if len(messages) == 1:
        mix = messages[0].role
    lines = [f"{_plural(len(messages), 'message')} ({mix}), about {input_tokens:,} input tokens"]
    system = sum(len(m.text) for m in messages if m.role == "system")
    lines.append(
        f"a system prompt ({_plural(system, 'character')})" if system else "no system prompt"
    )
    tools = request.tools
    if tools:
        names = ", ".join(t.name for t in tools[:_LISTED])
        if len(tools) > _LISTED:
            names += f" and {len(tools) - _LISTED} more"
        if request.tool_choice == "none":
            why = "tool_choice is none"
        else:
            word = max(tools[0].name.split("_"), key=len)
            why = f"the demo calls one whose name the prompt mentions, like “{word}”"
        lines.append(f"{_plural(len(tools), 'tool')} ({names}), none called: {why}")
    else:
        lines.append("no tools")
    settings = [
        f"{name} {value}" for name in _SETTINGS if (value := getattr(request, name)) is not None
    ]
    if settings:
        lines.append("settings: " + ", ".join(settings))
    return lines


def _cut(parts: list[Any], max_tokens: int) -> tuple[list[Any], str]:
    """Text cut to ``max_tokens`` (about four characters a token), as a real model stops:
    finish reason "length" when it had more to say."""
    limit = max(1, max_tokens) * 4
    cut: list[Any] = []
    finish = "stop"
    for part in parts:
        if isinstance(part, TextPart) and len(part.text) > limit:
            part, finish = TextPart(text=part.text[:limit]), "length"
        cut.append(part)
    return cut, finish


def _as_demo(response: LLMResponse) -> LLMResponse:
    return response.model_copy(update={"demo": True, "cost_usd": 0.0})


class DemoProvider(Provider):
    """The offline demo model. ``latency`` scales its pacing (0 for none, in tests)."""

    name = "demo"
    offline: ClassVar[bool] = True

    def __init__(self, *, latency: float = 1.0) -> None:
        if latency < 0:
            raise ValueError(f"latency is a scale factor and cannot be negative, got {latency}")
        self.latency = latency

    def answer(self, request: LLMRequest, model: str) -> LLMResponse:
        """The demo's answer to ``request`` (deterministic: same request, same answer)."""
        messages = request.messages
        last = messages[-1] if messages else None
        prompt = next((m.text for m in reversed(messages) if m.role == "user" and m.text), "")
        asked = _quote(prompt) if prompt else "the request"
        seed = _digest(f"{model}|{prompt}")
        input_tokens = estimate_tokens(" ".join(m.text for m in messages)) + 8 * len(request.tools)
        parts: list[Any] = []
        if request.reasoning is not None:
            parts.append(
                ReasoningPart(
                    text=f"Offline demo: this stands in for a model's reasoning about {asked}; "
                    "nothing was reasoned.",
                    signature=f"demo-{seed:016x}",
                    provider=self.name,
                )
            )
        results = [p for p in (last.parts if last else []) if isinstance(p, ToolResultPart)]
        tools = [] if results else _pick_tools(request, prompt)
        finish = "stop"
        if results:
            found = "; ".join(f"{r.name or 'tool'} returned {r.text}" for r in results)
            parts.append(
                TextPart(
                    text=f"Offline demo: {found}. A real model would write its answer from "
                    "these results; the demo only reports them."
                )
            )
        elif tools:
            numbers = _NUMBER.findall(prompt)
            for index, tool in enumerate(tools):
                arguments = _example(tool.parameters, tool.name, prompt, numbers)
                parts.append(
                    ToolCallPart(
                        id=f"call_demo_{seed % 10_000:04d}_{index}",
                        name=tool.name,
                        arguments=arguments if isinstance(arguments, dict) else {},
                        provider=self.name,
                    )
                )
            finish = "tool_calls"
        elif request.response_format is not None:
            schema = request.response_format.json_schema
            value = _example(schema, "output", prompt, _NUMBER.findall(prompt))
            parts.append(TextPart(text=json.dumps(value, ensure_ascii=False)))
        else:
            received = "\n".join(f"- {line}" for line in _received(request, input_tokens))
            parts.append(
                TextPart(
                    text=f"Offline demo: no language model is behind this reply, so {asked} "
                    f"gets no real answer here.\n{REAL_ANSWERS}\n\n"
                    f"What a model would have received:\n{received}"
                )
            )
        if request.max_tokens is not None and finish == "stop" and not request.response_format:
            parts, finish = _cut(parts, request.max_tokens)
        text = " ".join(p.text for p in parts if isinstance(p, TextPart | ReasoningPart))
        return LLMResponse(
            parts=parts,
            finish_reason=finish,
            raw_finish_reason=finish,
            usage=Usage(
                input_tokens=input_tokens,
                output_tokens=estimate_tokens(text) + 12 * len(tools),
                reasoning_tokens=estimate_tokens(parts[0].text) if request.reasoning else None,
            ),
            provider=self.name,
            model=model,
            response_id=f"demo-{seed:016x}",
            demo=True,
            cost_usd=0.0,
        )

    async def _generate(self, request: LLMRequest, model: str) -> LLMResponse:
        answer = self.answer(request, model)
        await asyncio.sleep(self.latency * (0.2 + 0.002 * (answer.usage.output_tokens or 0)))
        assembler = StreamAssembler(self.name, model)
        for item in response_items(answer):
            assembler.add(item)
        return _as_demo(assembler.response())

    def stream(self, request: LLMRequest) -> ResponseStream:
        return super().stream(request).then(_as_demo)

    async def _stream(self, request: LLMRequest, model: str) -> AsyncIterator[StreamItem]:
        answer = self.answer(request, model)
        await asyncio.sleep(self.latency * 0.2)  # time to first token
        for item in response_items(answer, chunk=6):
            await asyncio.sleep(self.latency * 0.012)
            yield item
