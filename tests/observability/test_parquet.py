"""spans_df() to Parquet and back: every column keeps its dtype, every value its value."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from llmgine import observability
from llmgine.observability import llm_span, semconv, tool_span

FIXTURE = Path(__file__).parent / "fixtures" / "openai_v2.otlp.jsonl"


def frame() -> pd.DataFrame:
    """llmgine's own spans (a session, a call, a failed tool, a running span) and spans of
    OpenTelemetry's OpenAI instrumentation, in one frame: text, whole and other numbers,
    yes/no, lists and missing values in attribute columns."""
    obs = observability.enable()
    with obs.tracer.start_as_current_span("session chat", attributes={semconv.SESSION_ID: "s1"}):
        with llm_span(provider="openai", model="gpt-4o-mini", temperature=0.5) as call:
            call.response(finish_reasons=["stop"], input_tokens=12, output_tokens=40,
                          cost_usd=0.0001)  # fmt: skip
        with (
            pytest.raises(ValueError, match="no weather"),
            tool_span("get_weather", call_id="call_1"),
        ):
            raise ValueError("no weather")
        span = obs.tracer.start_span("flags", attributes={"ok": True, "tags": ["a", "b"]})
        span.end()
        obs.tracer.start_span("still running")
    obs.load(FIXTURE)
    return obs.spans_df()


def test_spans_df_round_trips_through_parquet(tmp_path: Path) -> None:
    pytest.importorskip(
        "pyarrow", reason="Parquet needs pyarrow: pip install 'llmgine[observability]'"
    )
    df = frame()
    dtypes = {c: str(t) for c, t in df.dtypes.items()}
    assert dtypes["start_time"] == dtypes["end_time"] == "datetime64[ns, UTC]"
    assert dtypes[f"attributes.{semconv.USAGE_INPUT_TOKENS}"] == "Int64"
    assert dtypes[f"attributes.{semconv.REQUEST_TEMPERATURE}"] == "float64"
    assert dtypes["attributes.ok"] == "boolean"
    assert dtypes[f"attributes.{semconv.OPERATION_NAME}"] == "str"
    path = tmp_path / "spans.parquet"
    df.to_parquet(path)
    back = pd.read_parquet(path)
    assert back.dtypes.equals(df.dtypes)
    # Lists come back as arrays of the same items (pandas' Parquet reader); all else equal.
    lists = [c for c, t in dtypes.items() if t == "object"]
    assert f"attributes.{semconv.RESPONSE_FINISH_REASONS}" in lists
    pd.testing.assert_frame_equal(back.drop(columns=lists), df.drop(columns=lists))
    for column in lists:
        for before, after in zip(df[column], back[column], strict=True):
            assert (None if after is None else list(after)) == before
    assert df["end_time"].isna().sum() == 1  # the running span: NaT survives too
