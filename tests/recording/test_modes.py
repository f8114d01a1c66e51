"""`Recorded`'s modes, hits and misses, streamed and not, pace, cost and provenance."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmgine.errors import LLMConfigurationError, RecordingMissError
from llmgine.llm import (
    ChatMessage,
    LLMRequest,
    LLMResponse,
    ProviderModel,
    ScriptedProvider,
    TextDelta,
    TextPart,
    Usage,
    get_model,
)
from llmgine.llm._testing import response_items
from llmgine.recording import Cassette, Recorded, Recording, canonical_request, request_key
from tests.conftest import FakeTime

from .helpers import provider, scripted, streamed

ANSWER = LLMResponse(
    parts=[TextPart(text="Two, three and five.")],
    usage=Usage(input_tokens=12, output_tokens=6),
)


async def test_read_write_calls_and_records_a_miss_then_serves_the_hit(tmp_path: Path) -> None:
    cassette = tmp_path / "c.jsonl"
    model = scripted(cassette, "read-write", ANSWER)
    live = await model.generate("Name three primes.")
    assert (live.cache_hit, live.replayed_from) == (False, None)
    assert provider(model).pending == 0
    assert len(provider(model).requests) == 1

    hit = await model.generate("Name three primes.")
    assert len(provider(model).requests) == 1  # no second call: the script is empty anyway
    assert hit.replayed_from == str(cassette)
    assert hit.cache_hit is True
    assert (hit.cost_usd, hit.original_cost_usd) == (0.0, live.cost_usd)  # see test_spans
    assert (hit.text, hit.usage, hit.finish_reason) == (live.text, live.usage, live.finish_reason)
    assert hit.response_id == live.response_id
    assert hit.model == live.model
    assert hit.same_content(live)
    assert live.same_content(hit)
    assert not hit.same_content(live.model_copy(update={"cost_usd": 1.0}))
    assert not hit.same_content(live.model_copy(update={"parts": [TextPart(text="Two.")]}))


async def test_replay_answers_from_recordings_and_never_calls_the_model(tmp_path: Path) -> None:
    cassette = tmp_path / "c.jsonl"
    await scripted(cassette, "record", ANSWER).generate("Name three primes.")
    model = scripted(cassette, "replay", "a scripted answer that must not be used")
    hit = await model.generate("Name three primes.")
    assert hit.text == ANSWER.text
    assert hit.cache_hit
    with pytest.raises(RecordingMissError):
        await model.generate("Name four primes.")
    assert provider(model).requests == []
    assert provider(model).pending == 1


async def test_record_always_calls_and_overwrites(tmp_path: Path) -> None:
    cassette = tmp_path / "c.jsonl"
    await scripted(cassette, "read-write", "first answer").generate("Hi")
    recorder = scripted(cassette, "record", "second answer")
    again = await recorder.generate("Hi")
    assert again.text == "second answer"
    assert again.cache_hit is False
    assert len(provider(recorder).requests) == 1
    assert len(cassette.read_text().splitlines()) == 1  # replaced, not added
    hit = await scripted(cassette, "replay").generate("Hi")
    assert hit.text == "second answer"


async def test_off_calls_every_time_and_records_nothing(tmp_path: Path) -> None:
    cassette = tmp_path / "c.jsonl"
    await scripted(cassette, "read-write", "recorded").generate("Hi")
    before = cassette.read_text()
    model = scripted(cassette, "off", "live 1", "live 2")
    assert [(await model.generate("Hi")).text for _ in range(2)] == ["live 1", "live 2"]
    assert cassette.read_text() == before
    # "off" adds no wrapper at all: the answer does not claim a store was asked.
    plain = scripted(cassette, "off", "live 3")
    assert (await plain.generate("Hi")).cache_hit is None
    assert plain.find(Recorded) is None


async def test_a_failed_call_is_not_recorded(tmp_path: Path) -> None:
    cassette = tmp_path / "c.jsonl"
    model = scripted(cassette, "read-write", ValueError("the provider broke"))
    with pytest.raises(ValueError, match="provider broke"):
        await model.generate("Hi")
    assert await Cassette(cassette).count() == 0


async def test_a_miss_in_replay_shows_the_nearest_request_and_each_difference(
    tmp_path: Path,
) -> None:
    cassette = tmp_path / "c.jsonl"
    recorder = scripted(cassette, "read-write", "a", "b")
    await recorder.generate("Name three primes.", temperature=0.2)
    await recorder.generate("Tell me a joke about cats and dogs.", temperature=0.2)

    model = scripted(cassette, "replay")
    with pytest.raises(RecordingMissError) as caught:
        await model.generate("Name three primes.", temperature=0.7, seed=3)
    error = caught.value
    message = str(error)
    assert f"no recording of this test:scripted request in {cassette}" in message
    assert "2 recording(s) there" in message
    assert "differs in 2 field(s)" in message
    assert "  - seed: recorded (unset), this request 3" in message
    assert "  - temperature: recorded 0.2, this request 0.7" in message
    assert "recording_mode='read-write'" in message  # what to do
    assert error.nearest is not None
    assert error.nearest["messages"][0]["parts"][0]["text"] == "Name three primes."
    assert error.differences == [
        "seed: recorded (unset), this request 3",
        "temperature: recorded 0.2, this request 0.7",
    ]
    assert error.store == str(cassette)
    assert error.provider == "test"
    assert not isinstance(error, LLMConfigurationError)  # not retried, not a config error

    empty = scripted(tmp_path / "empty.jsonl", "replay")
    with pytest.raises(RecordingMissError, match="holds no recordings"):
        await empty.generate("Hi")


async def test_streamed_and_unstreamed_calls_share_one_recording(tmp_path: Path) -> None:
    cassette = tmp_path / "c.jsonl"
    # Recorded streamed: an unstreamed call of the same request is a hit.
    model = scripted(cassette, "read-write", ANSWER)
    live_items, live = await streamed(model, "Name three primes.")
    assert len([i for i in live_items if isinstance(i, TextDelta)]) > 1  # chunked
    hit = await model.generate("Name three primes.")
    assert hit.cache_hit
    assert hit.same_content(live)
    # ...and a streamed hit replays the very items that were streamed.
    items, replayed = await streamed(model, "Name three primes.")
    assert items == live_items
    assert replayed.cache_hit
    assert replayed.same_content(live)
    assert replayed.time_to_first_token_ms is not None
    assert len(provider(model).requests) == 1

    # Recorded unstreamed: a streamed hit replays the items its answer would have streamed.
    other = scripted(cassette, "read-write", ANSWER)
    whole = await other.generate("Name five primes.")
    items, replayed = await streamed(other, "Name five primes.")
    assert items == response_items(whole)
    assert replayed.same_content(whole)
    assert replayed.cache_hit
    assert len(provider(other).requests) == 1


async def test_a_stream_closed_early_is_not_recorded(tmp_path: Path) -> None:
    cassette = tmp_path / "c.jsonl"
    model = scripted(cassette, "read-write", ANSWER)
    async with model.stream("Name three primes.") as stream:
        async for _ in stream:
            break
    assert await Cassette(cassette).count() == 0


async def test_a_streamed_replay_keeps_the_recorded_pace_or_none(tmp_path: Path) -> None:
    store = Cassette(tmp_path / "c.jsonl")
    inner = ProviderModel(ScriptedProvider(), "paced")
    request_items = response_items(ANSWER)
    timed = [(100.0, request_items[0]), *((250.0, item) for item in request_items[1:])]
    request = LLMRequest(messages=[ChatMessage.user("Name three primes.")])
    canonical = canonical_request(request, "test:paced")
    await store.put(Recording.of(request_key(canonical), canonical, ANSWER, timed, streamed=True))

    time = FakeTime(start=100.0)
    paced = Recorded(
        inner, store, mode="replay", pace="recorded", sleep=time.sleep, clock=time.clock
    )
    response = await paced.stream(request).get_response()
    assert response.text == ANSWER.text
    assert time.sleeps == pytest.approx([0.1, 0.15])  # 100 ms, then to 250 ms; no more
    assert time.now == pytest.approx(100.25)

    time = FakeTime(start=100.0)
    instant = Recorded(inner, store, mode="replay", sleep=time.sleep, clock=time.clock)
    assert (await instant.stream(request).get_response()).text == ANSWER.text
    assert time.sleeps == []


def test_bad_modes_and_paces_say_what_works(tmp_path: Path) -> None:
    inner = ProviderModel(ScriptedProvider(), "x")
    with pytest.raises(LLMConfigurationError, match="one of off, read-write, replay, record"):
        Recorded(inner, tmp_path / "c.jsonl", mode="replya")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="instant, recorded"):
        Recorded(inner, tmp_path / "c.jsonl", pace="fast")  # type: ignore[arg-type]
    with pytest.raises(LLMConfigurationError, match="recording_mode is 'sometimes'"):
        get_model("test:x", recording=tmp_path / "c.jsonl", recording_mode="sometimes")
