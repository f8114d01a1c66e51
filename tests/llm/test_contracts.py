"""The provider-neutral contracts: parts, conversations, requests, usage, the assembler."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from llmgine.bus import from_json, to_json
from llmgine.llm import (
    ChatMessage,
    Conversation,
    FilePart,
    Finish,
    ImagePart,
    LLMRequest,
    LLMResponse,
    Part,
    ProviderOptions,
    ReasoningDelta,
    ReasoningPart,
    ResponseMeta,
    StreamAssembler,
    StreamItem,
    TextDelta,
    TextPart,
    ToolCallDelta,
    ToolCallPart,
    ToolResultPart,
    ToolSpec,
    Usage,
    UsageUpdate,
    items_from_parts,
)
from llmgine.llm._service import Generate
from llmgine.tools import ToolManager, tool


def conversation() -> Conversation:
    return Conversation(
        messages=[
            ChatMessage.system("Be brief."),
            ChatMessage.user(
                [
                    TextPart(text="What is in this picture?"),
                    ImagePart(data=b"\x89PNG\r\n\x1a\n\x00", media_type="image/png"),
                    FilePart(url="https://example.test/a.pdf", media_type="application/pdf"),
                ]
            ),
            ChatMessage.assistant(
                [
                    ReasoningPart(text="Look first.", signature="sig==", provider="anthropic"),
                    TextPart(text="Let me check."),
                    ToolCallPart(id="call_1", name="lookup", arguments={"q": "png", "n": 2}),
                ]
            ),
            ChatMessage.tool_results(
                [ToolResultPart(call_id="call_1", name="lookup", content={"found": [1, 2]})]
            ),
        ]
    )


def test_a_conversation_round_trips_through_json_with_its_part_classes() -> None:
    original = conversation()
    back = Conversation.from_json(original.to_json())
    assert back == original
    kinds = [type(p).__name__ for m in back.messages for p in m.parts]
    assert kinds == [
        "TextPart",
        "TextPart",
        "ImagePart",
        "FilePart",
        "ReasoningPart",
        "TextPart",
        "ToolCallPart",
        "ToolResultPart",
    ]
    assert back.messages[1].parts[1].data == b"\x89PNG\r\n\x1a\n\x00"  # type: ignore[union-attr]


def test_requests_travel_on_the_bus_losslessly() -> None:
    command = Generate(request=LLMRequest(messages=conversation().messages, temperature=0.3))
    back = from_json(to_json(command))
    assert isinstance(back, Generate)
    assert back.request == command.request


def test_media_needs_exactly_one_source_and_bytes_a_media_type() -> None:
    with pytest.raises(ValidationError, match="exactly one of data"):
        ImagePart()
    with pytest.raises(ValidationError, match="exactly one of data"):
        ImagePart(data=b"x", url="https://x.test", media_type="image/png")
    with pytest.raises(ValidationError, match="needs media_type"):
        ImagePart(data=b"x")
    assert ImagePart(data=b"hi", media_type="image/png").base64() == "aGk="


def test_tool_call_arguments_from_json_text_keep_what_is_not_an_object() -> None:
    good = ToolCallPart.from_json_arguments("c", "t", '{"a": 1}')
    assert good.arguments == {"a": 1}
    assert good.arguments_json == '{"a":1}'
    empty = ToolCallPart.from_json_arguments("c", "t", "")
    assert empty.arguments == {}
    assert empty.invalid_arguments is None
    bad = ToolCallPart.from_json_arguments("c", "t", '{"a": ')
    assert bad.arguments == {}
    assert bad.invalid_arguments == '{"a": '
    assert bad.arguments_json == '{"a": '
    listed = ToolCallPart.from_json_arguments("c", "t", "[1]")
    assert listed.invalid_arguments == "[1]"


def test_tool_result_text() -> None:
    assert ToolResultPart(call_id="c", content="plain").text == "plain"
    assert ToolResultPart(call_id="c", content={"a": [1]}).text == '{"a": [1]}'


def test_request_validation_says_what_is_wrong() -> None:
    with pytest.raises(ValidationError, match="must be positive"):
        LLMRequest(messages=[], max_tokens=0)
    with pytest.raises(ValidationError, match="ProviderOptions"):
        LLMRequest(messages=[], options=[{"provider": "openai"}])
    with pytest.raises(ValidationError, match="Extra inputs"):
        LLMRequest(messages=[], temprature=0.2)  # type: ignore[call-arg]


def test_request_tools_take_none_tool_functions_specs_and_dicts() -> None:
    @tool
    def lookup(term: str) -> str:
        """Look a term up."""
        return term

    spec = lookup.spec()
    as_dict = {"name": "other", "parameters": {"type": "object", "properties": {}}}
    assert LLMRequest(messages=[], tools=None).tools == []
    assert LLMRequest(messages=[], tools=lookup).tools == [spec]
    assert LLMRequest(messages=[], tools=ToolManager([lookup])).tools == [spec]
    made = LLMRequest(messages=[], tools=(lookup, spec, as_dict)).tools
    assert made == [spec, spec, ToolSpec(name="other", parameters=as_dict["parameters"])]
    with pytest.raises(ValidationError, match=r"plain function 'print'.*decorate it with @tool"):
        LLMRequest(messages=[], tools=[print])
    with pytest.raises(ValidationError, match=r"tools\[1\] is a int; a tool is an @tool"):
        LLMRequest(messages=[], tools=[spec, 3])
    with pytest.raises(ValidationError, match="tools is a list of tools"):
        LLMRequest(messages=[], tools="lookup")


class FakeOptions(ProviderOptions):
    provider: str = "fake"
    knob: int = 0


class OtherOptions(ProviderOptions):
    provider: str = "other"


def test_each_provider_reads_only_its_own_options() -> None:
    request = LLMRequest(messages=[], options=[FakeOptions(knob=3), OtherOptions()])
    assert request.options_for("fake", FakeOptions).knob == 3
    assert request.options_for("absent", FakeOptions).knob == 0  # defaults
    with pytest.raises(TypeError, match="must be FakeOptions"):
        request.options_for("other", FakeOptions)


def test_usage_adds_and_keeps_unknown_counts_unknown() -> None:
    a = Usage(input_tokens=10, output_tokens=5, cache_read_tokens=4)
    b = Usage(input_tokens=1, output_tokens=2)
    total = a + b
    assert (total.input_tokens, total.output_tokens, total.total_tokens) == (11, 7, 18)
    assert total.cache_read_tokens == 4
    assert total.reasoning_tokens is None


def test_the_assembler_builds_parts_in_first_seen_order() -> None:
    assembler = StreamAssembler("p", "m")
    items: list[StreamItem] = [
        ResponseMeta(model="m-2024", response_id="r1"),
        ReasoningDelta(key=0, text="think "),
        ReasoningDelta(key=0, text="hard"),
        ReasoningDelta(key=0, signature="sig"),
        TextDelta(key=1, text="Hel"),
        ToolCallDelta(key=0, id="c1", name="a", arguments='{"x":'),
        TextDelta(key=1, text="lo"),
        ToolCallDelta(key=1, id="c2", name="b", arguments="{}"),
        ToolCallDelta(key=0, arguments="1}"),
        UsageUpdate(usage=Usage(input_tokens=3, output_tokens=1)),
        UsageUpdate(usage=Usage(input_tokens=3, output_tokens=9)),  # replaces
        Finish(reason="tool_calls", raw="tool_use"),
    ]
    for item in items:
        assembler.add(item)
    response = assembler.response()
    assert [type(p).__name__ for p in response.parts] == [
        "ReasoningPart",
        "TextPart",
        "ToolCallPart",
        "ToolCallPart",
    ]
    assert response.reasoning[0].text == "think hard"
    assert response.reasoning[0].signature == "sig"
    assert response.reasoning[0].provider == "p"
    assert response.text == "Hello"
    assert [(c.id, c.arguments) for c in response.tool_calls] == [("c1", {"x": 1}), ("c2", {})]
    assert response.usage.output_tokens == 9
    assert (response.finish_reason, response.raw_finish_reason) == ("tool_calls", "tool_use")
    assert (response.model, response.response_id) == ("m-2024", "r1")


def test_parts_round_trip_through_stream_items() -> None:
    parts: list[Part] = [
        ReasoningPart(text="r", signature="s", provider="p"),
        TextPart(text="t"),
        ToolCallPart(id="c", name="n", arguments={"k": [1, 2]}, provider="p"),
    ]
    assembler = StreamAssembler("p", "m")
    for item in items_from_parts(parts):
        assembler.add(item)
    assert assembler.parts() == parts
    with pytest.raises(TypeError, match="cannot contain a ToolResultPart"):
        items_from_parts([ToolResultPart(call_id="c")])


def test_without_a_finish_item_tool_calls_mean_tool_calls() -> None:
    assembler = StreamAssembler("p", "m")
    assembler.add(ToolCallDelta(id="c", name="n", arguments="{}"))
    assert assembler.response().finish_reason == "tool_calls"


def test_same_content_ignores_timings_and_raw() -> None:
    a = LLMResponse(parts=[TextPart(text="x")], latency_ms=1, raw={"a": 1})
    b = LLMResponse(parts=[TextPart(text="x")], latency_ms=2, time_to_first_token_ms=1)
    assert a.same_content(b)
    assert not a.same_content(LLMResponse(parts=[TextPart(text="y")]))


async def test_a_provider_called_without_a_model_says_to_name_one() -> None:
    from llmgine.errors import LLMConfigurationError
    from llmgine.llm._demo import DemoProvider

    provider = DemoProvider()
    request = LLMRequest(messages=[ChatMessage.user("hi")])
    with pytest.raises(LLMConfigurationError, match=r"LLMRequest\(model=\.\.\.\)"):
        await provider.generate(request)
    with pytest.raises(LLMConfigurationError, match="names no model"):
        provider.stream(request)
