"""Where an answer came from shows: spans, cost; and how get_model and the environment
choose a recording."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmgine import observability
from llmgine.errors import LLMConfigurationError, MissingCredentialsError, RecordingMissError
from llmgine.llm import ProviderModel, Retrying, Traced, get_model
from llmgine.recording import Cassette, Recorded, SQLiteCache

from .helpers import openai_model


async def test_spans_say_whether_the_call_was_a_hit_and_what_it_cost(tmp_path: Path) -> None:
    cassette = tmp_path / "c.jsonl"
    obs = observability.enable()
    try:
        model = openai_model(cassette)
        live = await model.generate("Capital of France?")
        hit = await model.generate("Capital of France?")
        async with model.stream("Capital of France?") as stream:
            async for _ in stream:
                pass
        spans = [s for s in obs.buffer.finished() if s.name == "chat gpt-4o-mini"][-3:]
    finally:
        observability.disable()
    assert live.cost_usd is not None
    assert live.cost_usd > 0  # 1,000 + 500 tokens of gpt-4o-mini
    assert (hit.cost_usd, hit.original_cost_usd) == (0.0, live.cost_usd)
    first, second, third = (s.attributes for s in spans)
    assert first["llmgine.cache.hit"] is False
    assert first["llmgine.cost.usd"] == live.cost_usd
    assert "llmgine.cache.original_cost_usd" not in first
    for replayed in (second, third):
        assert replayed["llmgine.cache.hit"] is True
        assert replayed["llmgine.cost.usd"] == 0.0
        assert replayed["llmgine.cache.original_cost_usd"] == live.cost_usd
        assert replayed["llmgine.cache.source"] == str(cassette)
        assert replayed["gen_ai.usage.output_tokens"] == 500  # the recorded usage


def test_get_model_puts_the_recording_inside_the_tracing(tmp_path: Path) -> None:
    model = get_model("demo:x", latency=0, recording=tmp_path / "c.jsonl")
    chain = list(model.layers())
    kinds = [type(layer) for layer in chain]
    assert kinds[1:] == [Retrying, Traced, Recorded, ProviderModel]
    recorded = model.find(Recorded)
    assert recorded is not None
    assert isinstance(recorded.store, Cassette)
    assert recorded.mode == "read-write"
    sqlite = get_model("demo:x", recording=tmp_path / "c.sqlite3").find(Recorded)
    assert sqlite is not None
    assert isinstance(sqlite.store, SQLiteCache)
    assert get_model("demo:x").find(Recorded) is None  # nothing asked, nothing added


async def test_the_environment_names_the_cassette_and_the_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cassette = tmp_path / "notebook.jsonl"
    await openai_model(cassette, "read-write").generate("Capital of France?")

    # A fresh machine: no key at all, the cassette and the mode from the environment.
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("LLMGINE_CASSETTE", str(cassette))
    monkeypatch.setenv("LLMGINE_CASSETTE_MODE", "replay")
    model = get_model("openai:gpt-4o-mini")
    assert model.find(ProviderModel) is None  # no provider could be made, none is needed
    hit = await model.generate("Capital of France?")
    assert hit.text == "Paris."
    assert hit.replayed_from == str(cassette)
    with pytest.raises(RecordingMissError, match="Capital of Spain"):
        await model.generate("Capital of Spain?")

    # read-write: a hit still needs no key; a miss must call the model, and says why not.
    monkeypatch.setenv("LLMGINE_CASSETTE_MODE", "read-write")
    model = get_model("openai:gpt-4o-mini")
    assert (await model.generate("Capital of France?")).cache_hit
    with pytest.raises(MissingCredentialsError, match="OPENAI_API_KEY"):
        await model.generate("Capital of Spain?")

    # recording=False: the environment is ignored (and the missing key is an error again).
    with pytest.raises(MissingCredentialsError):
        get_model("openai:gpt-4o-mini", recording=False)
    monkeypatch.setenv("LLMGINE_CASSETTE_MODE", "off")
    with pytest.raises(MissingCredentialsError):
        get_model("openai:gpt-4o-mini")


def test_a_mode_without_a_cassette_or_a_wrong_mode_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LLMGINE_CASSETTE", raising=False)
    monkeypatch.setenv("LLMGINE_CASSETTE_MODE", "replay")
    with pytest.raises(LLMConfigurationError, match=r"set \$LLMGINE_CASSETTE"):
        get_model("demo:x")
    monkeypatch.setenv("LLMGINE_CASSETTE", str(tmp_path / "c.jsonl"))
    monkeypatch.setenv("LLMGINE_CASSETTE_MODE", "replays")
    with pytest.raises(LLMConfigurationError, match=r"\$LLMGINE_CASSETTE_MODE is 'replays'"):
        get_model("demo:x")
    # recording_mode= alone: the cache in the user's cache directory.
    monkeypatch.delenv("LLMGINE_CASSETTE")
    monkeypatch.delenv("LLMGINE_CASSETTE_MODE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    recorded = get_model("demo:x", recording_mode="read-write").find(Recorded)
    assert recorded is not None
    assert recorded.store.label == str(tmp_path / "xdg" / "llmgine" / "cache.sqlite3")
