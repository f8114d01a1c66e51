"""`DemoProvider` ("demo:"): plausible, deterministic answers offline, for notebooks and
Binder. Its answers stream with realistic pacing, report token usage, call the tools they
are given and honour structured output, all through the real request/response code; every
response is marked ``demo=True`` so views can label it, and it costs nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from llmgine.llm._parts import ReasoningPart, TextPart, ToolCallPart, ToolResultPart
from llmgine.llm._provider import Provider
from llmgine.llm._request import LLMRequest, ToolSpec
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
_OPENINGS = (
    "Here is a short overview of {topic}.",
    "Good question about {topic}. In brief:",
    "Let me break {topic} down into its main points.",
)
_POINTS = (
    "**What it is**: the core idea, stated plainly, before any detail.",
    "**Why it matters**: the problem it solves and who runs into that problem.",
    "**How it works**: the mechanism, one step at a time.",
    "**Trade-offs**: what you give up, and when another approach fits better.",
    "**Next step**: one small experiment that makes it concrete.",
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


def _pick_tools(tools: list[ToolSpec], prompt: str) -> list[ToolSpec]:
    lowered = prompt.lower()
    named = [t for t in tools if t.name.lower().replace("_", " ") in lowered.replace("_", " ")]
    if named:
        return named
    for tool in tools:  # a tool whose name shares a word with the prompt
        words = set(tool.name.lower().split("_"))
        if words & set(_WORD.findall(lowered)):
            return [tool]
    return []


def _as_demo(response: LLMResponse) -> LLMResponse:
    return response.model_copy(update={"demo": True, "cost_usd": 0.0})


class DemoProvider(Provider):
    """The offline demo model. ``latency`` scales its pacing (0 for none, in tests)."""

    name: ClassVar[str] = "demo"
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
        seed = _digest(f"{model}|{prompt}")
        parts: list[Any] = []
        if request.reasoning is not None:
            parts.append(
                ReasoningPart(
                    text=f"The user asks about {_topic(prompt)}. I will answer in short points.",
                    signature=f"demo-{seed:016x}",
                    provider=self.name,
                )
            )
        results = [p for p in (last.parts if last else []) if isinstance(p, ToolResultPart)]
        tools = _pick_tools(request.tools, prompt) if request.tool_choice != "none" else []
        if request.tool_choice == "required" and request.tools and not tools:
            tools = request.tools[:1]
        finish = "stop"
        if results:
            found = "; ".join(f"{r.name or 'tool'} returned {r.text}" for r in results)
            parts.append(TextPart(text=f"I checked with the tools: {found}. That answers it."))
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
            topic = _topic(prompt)
            opening = _OPENINGS[seed % len(_OPENINGS)].format(topic=topic)
            count = 3 + seed % 3
            points = [_POINTS[(seed + i) % len(_POINTS)] for i in range(count)]
            bullets = "\n".join(f"- {p}" for p in points)
            parts.append(TextPart(text=f"{opening}\n\n{bullets}"))
        text = " ".join(p.text for p in parts if isinstance(p, TextPart | ReasoningPart))
        conversation = " ".join(m.text for m in messages)
        return LLMResponse(
            parts=parts,
            finish_reason=finish,
            raw_finish_reason=finish,
            usage=Usage(
                input_tokens=estimate_tokens(conversation) + 8 * len(request.tools),
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

    def stream(self, request: LLMRequest, model: str) -> ResponseStream:
        return super().stream(request, model).then(_as_demo)

    async def _stream(self, request: LLMRequest, model: str) -> AsyncIterator[StreamItem]:
        answer = self.answer(request, model)
        await asyncio.sleep(self.latency * 0.2)  # time to first token
        for item in response_items(answer, chunk=6):
            await asyncio.sleep(self.latency * 0.012)
            yield item
