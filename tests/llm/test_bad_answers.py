"""Answers that are not what the API documents, from a real HTTP server on 127.0.0.1.

Each provider's SDK reads them over its own HTTP stack. Whatever arrives, the caller gets an
`llmgine.errors` error: a body or an event that cannot be read is a
`MalformedResponseError` quoting it (secrets redacted); a stream that stops before the
API's end marker is an `IncompleteResponseError` carrying what arrived, never a whole
answer with ``finish_reason="stop"``; a stream that reports no usage leaves it unknown.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from llmgine.errors import IncompleteResponseError, LLMError, MalformedResponseError
from llmgine.llm import LLMRetryPolicy, Model, TextDelta, get_model
from tests.llm.scripted_server import Answer, ScriptedServer, recorded_events, scripted_server

KEY = "sk-test-bad-answers-0123456789"


@dataclass(frozen=True)
class Api:
    """One provider API: how to reach it on the scripted server, and a real recorded
    stream of it with the index of its end marker."""

    name: str
    spec: str
    suffix: str
    options: dict[str, Any]
    cassette: str
    index: int
    is_end: Callable[[bytes], bool]  # the event that makes the answer whole

    def model(self, server: ScriptedServer, **options: Any) -> Model:
        return get_model(
            self.spec,
            api_key=KEY,
            base_url=server.url + self.suffix,
            **{"retry": False, **self.options, **options},
        )

    def events(self) -> list[bytes]:
        return recorded_events(self.cassette, self.index)

    def cut(self) -> list[bytes]:
        """The recorded stream, stopped just before its end marker."""
        events = self.events()
        end = next(i for i, event in enumerate(events) if self.is_end(event))
        return events[:end]


APIS = [
    Api(
        "chat",
        "openai:gpt-4o-mini",
        "/v1",
        {},
        "openai/chat_stream_tool_call_then_text_usage.yaml",
        1,
        lambda e: b'"finish_reason":"' in e,
    ),
    Api(
        "responses",
        "openai:gpt-4o-mini",
        "/v1",
        {"api": "responses"},
        "openai/responses_stream_tool_call_then_text.yaml",
        1,
        lambda e: e.startswith(b"event: response.completed"),
    ),
    Api(
        "anthropic",
        "anthropic:claude-haiku-4-5",
        "",
        {},
        "anthropic/messages_stream_text__stdvcr.yaml",
        0,
        lambda e: e.startswith(b"event: message_delta"),
    ),
    Api(
        "gemini",
        "gemini:gemini-2.0-flash",
        "",
        {},
        "gemini/stream_text.yaml",
        0,
        lambda e: b'"finishReason"' in e,
    ),
]
IDS = [api.name for api in APIS]


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with scripted_server() as running:
        yield running


async def read(model: Model) -> str:
    text = ""
    async with model.stream("hello") as stream:
        async for item in stream:
            if isinstance(item, TextDelta):
                text += item.text
    return text


@pytest.mark.parametrize("api", APIS, ids=IDS)
async def test_the_whole_recorded_stream_is_read_as_a_whole_answer(
    api: Api, server: ScriptedServer
) -> None:
    # The control: the same recording, unbroken, is an answer (so the cuts below are
    # what makes the difference).
    server.events(api.events())
    model = api.model(server)
    async with model.stream("hello") as stream:
        response = await stream.get_response()
    assert response.text
    assert response.finish_reason in ("stop", "tool_calls")
    await model.aclose()


@pytest.mark.parametrize("api", APIS, ids=IDS)
async def test_a_stream_cut_before_its_end_marker_is_incomplete_not_whole(
    api: Api, server: ScriptedServer
) -> None:
    server.events(api.cut())
    model = api.model(server)
    with pytest.raises(IncompleteResponseError, match="end marker") as caught:
        await read(model)
    error = caught.value
    assert error.retryable
    assert error.provider == api.spec.split(":")[0]
    assert error.partial is not None  # what did arrive is kept
    assert error.partial.text  # each recording has text before its end marker
    await model.aclose()


async def test_an_anthropic_stream_needs_its_message_stop() -> None:
    # message_delta carries the stop reason, but only message_stop ends the message.
    api = APIS[IDS.index("anthropic")]
    events = api.events()
    assert events[-1].startswith(b"event: message_stop")
    with scripted_server() as server:
        server.events(events[:-1])
        model = api.model(server)
        with pytest.raises(IncompleteResponseError):
            await read(model)
        await model.aclose()


@pytest.mark.parametrize("api", APIS, ids=IDS)
async def test_generate_retries_a_cut_stream_and_returns_the_whole_answer(
    api: Api, server: ScriptedServer
) -> None:
    # generate(stream=True) assembles the stream: a cut one is retried like any transient
    # failure, and the second, whole answer is what the caller gets.
    server.events(api.cut())
    server.events(api.events())
    model = api.model(server, retry=LLMRetryPolicy(attempts=2, initial=0, jitter=0))
    response = await model.generate("hello", stream=True)
    assert response.text
    assert len(server.received) == 2
    await model.aclose()


def _broken(events: list[bytes], garbage: bytes) -> list[bytes]:
    """The first two events, then one that is not JSON."""
    return [*events[:2], garbage]


@pytest.mark.parametrize("api", APIS, ids=IDS)
async def test_a_stream_event_that_is_not_json_is_a_malformed_response(
    api: Api, server: ScriptedServer
) -> None:
    marker = api.events()[1].split(b"\n")[0]  # a content event's name line, if it has one
    head = marker + b"\n" if marker.startswith(b"event:") else b""
    server.events(_broken(api.events(), head + b"data: {not json, key " + KEY.encode() + b"\n\n"))
    model = api.model(server)
    with pytest.raises(MalformedResponseError, match="could not be read") as caught:
        await read(model)
    error = caught.value
    assert "not json" in error.snippet
    assert KEY not in str(error)
    assert KEY not in error.snippet
    assert error.__cause__ is not None  # the original parse error is kept
    await model.aclose()


@pytest.mark.parametrize("api", APIS, ids=IDS)
async def test_an_event_of_the_wrong_shape_is_a_malformed_response(
    api: Api, server: ScriptedServer
) -> None:
    # Valid JSON, but not what the API sends: fields of the wrong type.
    first = api.events()[0]
    name = first.split(b"\n")[0] if first.startswith(b"event:") else b""
    shapes: dict[str, dict[str, Any]] = {
        "chat": {"id": 5, "choices": "none", "model": []},
        "responses": {"type": "response.created", "response": "none"},
        "anthropic": {"type": "message_start", "message": 42},
        "gemini": {"candidates": [{"content": {"parts": "none"}}]},
    }
    shaped = shapes[api.name]
    event = (name + b"\n" if name else b"") + b"data: " + json.dumps(shaped).encode() + b"\n\n"
    server.events([event])
    model = api.model(server)
    with pytest.raises(MalformedResponseError) as caught:
        await read(model)
    assert "none" in caught.value.snippet or "42" in caught.value.snippet
    await model.aclose()


@pytest.mark.parametrize("api", APIS, ids=IDS)
@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"<html><body>Welcome to nginx</body></html>", "text/html"),
        (b"<html><body>proxy login</body></html>", "application/json"),
        (b"[1, 2, 3]", "application/json"),
        (b"", "application/json"),
    ],
    ids=["html", "html-as-json", "array", "empty"],
)
async def test_a_200_whose_body_is_not_the_apis_answer_is_a_malformed_response(
    api: Api, server: ScriptedServer, body: bytes, content_type: str
) -> None:
    server.answer(Answer(200, body, {"content-type": content_type}))
    model = api.model(server)
    with pytest.raises(MalformedResponseError, match="base_url") as caught:
        await model.generate("hello")
    # Every adapter reads the answer's JSON itself: the snippet is what the server sent.
    assert caught.value.snippet == body[:200].decode()
    await model.aclose()


async def test_a_stream_without_usage_leaves_usage_unknown(server: ScriptedServer) -> None:
    # OpenAI-compatible servers send no usage unless asked (and some never do). Unknown
    # stays unknown: None on the response, no token counts on the span, no cost.
    api = APIS[IDS.index("chat")]
    events = [e for e in api.events() if b'"usage":{' not in e]
    server.events(events)
    model = api.model(server)
    async with model.stream("hello") as stream:
        response = await stream.get_response()
    assert response.text
    assert response.usage.input_tokens is None
    assert response.usage.output_tokens is None
    assert response.usage.total_tokens is None
    assert response.cost_usd is None
    await model.aclose()


async def test_errors_never_leave_as_raw_exceptions(server: ScriptedServer) -> None:
    # A sweep over every way an answer can go wrong here: each is an LLMError.
    for api in APIS:
        for answer in (
            Answer(200, b"\x00\xff garbage", {"content-type": "application/octet-stream"}),
            Answer(200, headers={"content-type": "text/event-stream"}, chunks=[b"data: [\n\n"]),
            Answer(200, headers={"content-type": "text/event-stream"}, chunks=[]),
        ):
            server.answer(answer)
            model = api.model(server)
            call = model.generate("hello") if answer.chunks is None else read(model)
            with pytest.raises(LLMError):
                await call
            await model.aclose()
