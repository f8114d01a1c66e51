"""A recording keeps no rate limits: what was left of the caller's budgets when it was
recorded says nothing about them at replay, and would change a cassette at every
re-recording. Recordings made before rate limits existed load as they did."""

from __future__ import annotations

import json
from pathlib import Path

from llmgine.llm import LLMResponse, RateLimit, ResponseMeta, TextPart, Usage, get_model
from llmgine.recording import Cassette
from tests.llm.replay import CassetteTransport
from tests.recording.helpers import scripted, streamed

NEARLY_USED_UP = RateLimit(
    requests_limit=50, requests_remaining=0, requests_reset_s=1.2, tokens_remaining=900
)


def answer(text: str) -> LLMResponse:
    return LLMResponse(
        parts=[TextPart(text=text)],
        usage=Usage(input_tokens=5, output_tokens=2),
        rate_limit=NEARLY_USED_UP,
    )


async def test_live_answers_carry_rate_limits_and_recordings_do_not(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    model = scripted(path, "read-write", answer("Paris."), answer("Lima."))
    live = await model.generate("Capital of France?")
    items, streamed_live = await streamed(model, "Capital of Peru?")
    assert live.rate_limit == NEARLY_USED_UP  # the live caller sees them
    assert streamed_live.rate_limit == NEARLY_USED_UP
    assert any(isinstance(i, ResponseMeta) and i.rate_limit is not None for i in items)

    text = path.read_text(encoding="utf-8")
    assert "rate_limit" not in text
    assert "requests_remaining" not in text

    again = scripted(path, "replay")
    replayed = await again.generate("Capital of France?")
    items, replayed_stream = await streamed(again, "Capital of Peru?")
    assert (replayed.text, replayed_stream.text) == ("Paris.", "Lima.")
    assert replayed.cache_hit
    assert replayed.rate_limit is None
    assert replayed_stream.rate_limit is None
    assert all(getattr(i, "rate_limit", None) is None for i in items)


async def test_a_recorded_provider_stream_keeps_no_rate_limit_item(tmp_path: Path) -> None:
    # Real traffic whose headers report rate limits: the adapter's first item carries
    # only them, and a recording keeps nothing of it.
    transport = CassetteTransport.of("anthropic/messages_stream_text__stdvcr.yaml")
    path = tmp_path / "c.jsonl"
    model = get_model(
        "anthropic:claude-sonnet-4-20250514",
        api_key="sk-ant-test",
        http_client=transport.client(),
        recording=Cassette(path),
        retry=False,
    )
    items, live = await streamed(model, "Say hello", temperature=1.0, max_tokens=8192)
    assert items[0] == ResponseMeta(rate_limit=live.rate_limit)
    assert live.rate_limit is not None

    [line] = path.read_text(encoding="utf-8").splitlines()
    kept = json.loads(line)["items"]
    assert len(kept) == len(items) - 1
    assert all(item != {"kind": "meta", "t": item["t"]} for item in kept)
    assert "ratelimit" not in line
    assert "rate_limit" not in line


async def test_a_recording_made_before_rate_limits_loads() -> None:
    notebook_cassette = Path(__file__).parents[2] / "notebooks" / "06-record-and-replay.jsonl"
    [recording] = await Cassette(notebook_cassette).recordings()
    response = recording.llm_response()
    assert response.text.startswith("The three primary colours")
    assert response.rate_limit is None
    assert any(isinstance(item, ResponseMeta) for _, item in recording.stream_items())
