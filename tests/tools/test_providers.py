"""The same tool loop on OpenAI, Anthropic and Gemini, over their recorded traffic.

Each case replays a real multi-round tool conversation (``tests/llm/cassettes``) through
the official SDK: Python tools named and shaped like the recorded ones run in the real
loop, and what the loop sent each round is compared with what was recorded (the
conversation exactly as the provider needs it: tool call ids, thinking signatures, Gemini
thought signatures, results in call order).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from llmgine.llm import ChatMessage, Reasoning, ReasoningPart, get_model
from llmgine.llm.providers.gemini import GeminiOptions
from llmgine.tools import Tool, ToolLoopResult, run_tool_loop, stream_tool_loop, tool
from tests.llm.replay import CassetteTransport
from tests.llm.test_gemini import canon_contents, norm
from tests.llm.test_openai import canon

# -- tools shaped like the recorded ones ---------------------------------------------------


def weather_tools() -> list[Tool]:
    @tool(strict=True)
    def get_weather(city: str) -> str:
        return f"sunny in {city}"

    return [get_weather]


def file_tools() -> list[Tool]:
    @tool(strict=True)
    def create_file(path: str) -> str:
        return "Success"

    @tool(strict=True)
    def delete_file(path: str) -> bool:
        return True

    return [create_file, delete_file]


def capital_tools() -> list[Tool]:
    @tool(strict=True)
    def get_capital(country: str) -> str:
        return {"UK": "London"}[country]

    return [get_capital]


def country_tools(final: bool = True) -> list[Tool]:
    def get_user_country() -> str:
        return "Mexico"

    def final_result(city: str, country: str) -> dict[str, str]:
        """The final response which ends this conversation"""
        return {"city": city, "country": country}

    made = [Tool.from_function(get_user_country)]
    if final:
        made.append(Tool.from_function(final_result, ends_loop=True))
    return made


def family_tools() -> list[Tool]:
    facts = {
        "Alice": "alice is bob's wife",
        "Bob": "bob is alice's husband",
        "Charlie": "charlie is alice's son",
        "Daisy": "daisy is bob's daughter and charlie's younger sister",
    }

    @tool
    def retrieve_entity_info(name: str) -> str:
        """Get the knowledge about the given entity."""
        return facts[name]

    return [retrieve_entity_info]


def pelican_tools() -> list[Tool]:
    names = itertools.cycle(["Charles", "Sammy"])

    @tool
    async def pelican_name_generator() -> str:
        return next(names)

    return [pelican_name_generator]


def joke_tools() -> list[Tool]:
    topics = itertools.cycle(["cars", "penguins"])

    @tool
    async def generate_topic() -> str:  # async: runs on the loop, in call order
        return next(topics)

    @tool(ends_loop=True, description="The final response which ends this conversation")
    def final_result(response: list[str]) -> list[str]:
        return response

    return [generate_topic, final_result]


def geography_tools() -> list[Tool]:
    @tool
    def get_capital(country: str) -> str:
        """Get the capital of a country.

        Args:
            country: The country name.
        """
        return {"France": "Paris"}[country]

    @tool
    def get_temperature(city: str) -> str:
        """Get the temperature in a city.

        Args:
            city: The city name.
        """
        return {"Paris": "30°C"}[city]

    return [get_capital, get_temperature]


# -- the cases -----------------------------------------------------------------------------


@dataclass
class Case:
    cassette: str
    model: str
    prompt: list[ChatMessage]
    tools: Callable[[], list[Tool]]
    rounds: int
    stop_reason: str
    check: Callable[[ToolLoopResult], bool]
    params: dict[str, Any] = field(default_factory=dict)
    stream: bool = False
    used: int | None = None  # recordings the loop uses (None: all of them)
    same_tools: bool = True  # the tools' wire schemas equal the recorded ones

    @property
    def provider(self) -> str:
        return self.model.partition(":")[0]


JOKES = "Tell three jokes. Generate topics with the generate_topic tool."
FAMILY_SYSTEM = (
    "\n    Use the `retrieve_entity_info` tool to get information about a specific person.\n"
    "    If you need to use `retrieve_entity_info` to get information about multiple people, "
    "try\n    to call them in parallel as much as possible.\n"
    "    Think step by step and then provide a single most probable concise answer.\n    "
)
COUNTRY = "What is the largest city in the user country?"

CASES = {
    "openai-tool-call": Case(
        "openai/chat_tool_call_result_then_multiturn.yaml",
        "openai:gpt-4o",
        [ChatMessage.user("What is the weather in Paris? Use the tool.")],
        weather_tools,
        rounds=2,
        stop_reason="answered",
        check=lambda r: r.text == "The weather in Paris is sunny.",
        params={"tool_choice": "auto"},
        used=2,
    ),
    "openai-parallel": Case(
        "openai/chat_parallel_tool_calls_with_results.yaml",
        "openai:gpt-4o",
        [
            ChatMessage.system("Just call tools without asking for confirmation."),
            ChatMessage.user("Delete the file `.env` and create `test.txt`"),
        ],
        file_tools,
        rounds=2,
        stop_reason="answered",
        check=lambda r: r.text.startswith("The file `.env` has been deleted"),
        params={"tool_choice": "auto"},
    ),
    "openai-streamed": Case(
        "openai/chat_stream_tool_call_then_text_usage.yaml",
        "openai:gpt-4o-mini",
        [ChatMessage.user("What is the capital of the UK? Use the tool, then answer.")],
        capital_tools,
        rounds=2,
        stop_reason="answered",
        check=lambda r: "London" in r.text,
        params={"tool_choice": "auto"},
        stream=True,
    ),
    "anthropic-tool-use": Case(
        "anthropic/messages_tool_use_then_tool_result.yaml",
        "anthropic:claude-sonnet-4-5",
        [ChatMessage.user(COUNTRY)],
        country_tools,
        rounds=2,
        stop_reason="final_tool",
        check=lambda r: r.tool_results[-1].content == {"city": "Mexico City", "country": "Mexico"},
        params={"tool_choice": "required"},
        same_tools=False,  # the recording's output tool had a title and no additionalProperties
    ),
    "anthropic-parallel": Case(
        "anthropic/messages_parallel_tool_use_with_results.yaml",
        "anthropic:claude-haiku-4-5",
        [
            ChatMessage.system(FAMILY_SYSTEM),
            ChatMessage.user("Alice, Bob, Charlie and Daisy are a family. Who is the youngest?"),
        ],
        family_tools,
        rounds=2,
        stop_reason="answered",
        check=lambda r: "Daisy is the youngest" in r.text,
        params={"tool_choice": "auto"},
    ),
    "anthropic-thinking": Case(
        "anthropic/messages_tool_use_with_thinking.yaml",
        "anthropic:claude-sonnet-4-0",
        [ChatMessage.user(COUNTRY)],
        lambda: country_tools(final=False),
        rounds=2,
        stop_reason="answered",
        check=lambda r: (
            "Mexico City" in r.text
            and isinstance(r.responses[0].parts[0], ReasoningPart)
            and r.responses[0].parts[0].signature is not None
        ),
        params={"tool_choice": "auto", "reasoning": Reasoning(budget_tokens=3000)},
    ),
    "anthropic-streamed": Case(
        "anthropic/messages_stream_tool_use_then_result__stdvcr_gzip.yaml",
        "anthropic:claude-haiku-4-5-20251001",
        [ChatMessage.user("Two names for a pet pelican")],
        pelican_tools,
        rounds=2,
        stop_reason="answered",
        check=lambda r: (
            [t.content for t in r.tool_results] == ["Charles", "Sammy"] and "Charles" in r.text
        ),
        params={"temperature": 1.0, "max_tokens": 8192},
        stream=True,
        same_tools=False,  # recorded by another client, without additionalProperties
    ),
    "gemini-function-call": Case(
        "gemini/function_call_then_response.yaml",
        "gemini:gemini-2.0-flash",
        [ChatMessage.user(COUNTRY)],
        country_tools,
        rounds=2,
        stop_reason="final_tool",
        check=lambda r: r.tool_results[-1].content == {"city": "Mexico City", "country": "Mexico"},
        params={
            "tool_choice": "required",
            "options": [GeminiOptions(allowed_function_names=["get_user_country", "final_result"])],
        },
        same_tools=False,
    ),
    "gemini-parallel-multistep": Case(
        "gemini/parallel_function_calls_multistep.yaml",
        "gemini:gemini-3-flash-preview",
        [ChatMessage.system(JOKES), ChatMessage.user("")],
        joke_tools,
        rounds=5,
        stop_reason="final_tool",
        check=lambda r: (
            r.tool_results[-1].content[0] == "What kind of car does a sheep drive? A Lamborghini!"
        ),
        params={
            "tool_choice": "required",
            "options": [
                GeminiOptions(
                    response_modalities=["TEXT"],
                    allowed_function_names=["generate_topic", "final_result"],
                )
            ],
        },
        same_tools=False,
    ),
    "gemini-streamed": Case(
        "gemini/stream_function_calls_multistep.yaml",
        "gemini:gemini-2.0-flash",
        [
            ChatMessage.system("You are a helpful chatbot."),
            ChatMessage.user("What is the temperature of the capital of France?"),
        ],
        geography_tools,
        rounds=3,
        stop_reason="answered",
        check=lambda r: r.text == "The temperature in Paris is 30°C.\n",
        stream=True,
        same_tools=False,
    ),
}


# -- what went over the wire ---------------------------------------------------------------


def _anthropic_canon(messages: list[Any]) -> list[Any]:
    # Clients differ in sending ``is_error: false`` on a tool result (it means the same),
    # and simonw/llm-anthropic put a " " text block before tool calls the model sent alone.
    out = []
    for message in messages:
        content = message["content"]
        if isinstance(content, list):
            content = [
                {k: v for k, v in block.items() if not (k == "is_error" and v is False)}
                for block in content
                if not (block["type"] == "text" and not block["text"].strip())
            ]
        out.append({**message, "content": content})
    return out


def assert_sent_as_recorded(case: Case, transport: CassetteTransport, index: int) -> None:
    sent, recorded = transport.sent_json(index), transport.recorded_json(index)
    if case.provider == "openai":
        assert canon(sent["messages"]) == canon(recorded["messages"])
        assert sent["tools"] == recorded["tools"]
    elif case.provider == "anthropic":
        assert _anthropic_canon(sent["messages"]) == _anthropic_canon(recorded["messages"])
        if case.same_tools:
            assert sent["tools"] == recorded["tools"]
        assert sent.get("thinking") == recorded.get("thinking")
    else:
        sent, recorded = norm(sent), norm(recorded)
        assert canon_contents(sent["contents"]) == canon_contents(recorded["contents"])
        assert sent.get("toolConfig") == recorded.get("toolConfig")
        assert sent.get("systemInstruction") == recorded.get("systemInstruction")
    if case.provider != "gemini":
        assert sent.get("tool_choice") == recorded.get("tool_choice")


@pytest.mark.parametrize("name", list(CASES))
async def test_the_tool_loop_replays_each_providers_recorded_conversation(name: str) -> None:
    case = CASES[name]
    transport = CassetteTransport.of(case.cassette)
    model = get_model(case.model, api_key="test-key", http_client=transport.client(), retry=False)
    try:
        if case.stream:
            async with stream_tool_loop(model, case.prompt, case.tools(), **case.params) as loop:
                result = await loop.get_result()
        else:
            result = await run_tool_loop(model, case.prompt, case.tools(), **case.params)
    finally:
        await model.aclose()

    assert (result.rounds, result.stop_reason) == (case.rounds, case.stop_reason)
    assert case.check(result), result.text
    assert not any(r.is_error for r in result.tool_results), result.tool_results
    assert [m.role for m in result.messages[-2:]] == (
        ["assistant", "tool"] if case.stop_reason == "final_tool" else ["tool", "assistant"]
    )
    assert result.response.provider == case.provider
    used = case.used if case.used is not None else len(transport.interactions)
    assert len(transport.sent) == used == case.rounds
    for index in range(used):
        assert_sent_as_recorded(case, transport, index)
