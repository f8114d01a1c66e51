"""Traces that travel: `save` writes OTLP JSON in the Collector file exporter's format,
`load` reads it back, from llmgine or from OpenTelemetry's own OpenAI instrumentation."""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from llmgine import observability
from llmgine.errors import ObservabilityError
from llmgine.observability import Observability, llm_span, semconv, tool_span
from llmgine.observability._otlp_file import SPANS_PER_LINE

FIXTURES = Path(__file__).parent / "fixtures"
OPENAI_V2 = FIXTURES / "openai_v2.otlp.jsonl"  # see make_openai_v2_fixture.py


def record_a_turn(obs: Observability) -> None:
    with obs.tracer.start_as_current_span("session chat", attributes={semconv.SESSION_ID: "s1"}):
        with llm_span(provider="openai", model="gpt-4o-mini", temperature=0.5) as call:
            call.response(
                model="gpt-4o-mini-2024-07-18",
                response_id="r1",
                finish_reasons=["stop"],
                input_tokens=12,
                output_tokens=40,
                cost_usd=0.0001,
            )
        with (
            pytest.raises(ValueError, match="no weather"),
            tool_span("get_weather", call_id="call_1", arguments={"city": "Paris"}),
        ):
            raise ValueError("no weather today")


def spans_of(path: Path) -> list[dict[str, Any]]:
    return [
        span
        for line in path.read_text().splitlines()
        for resource in json.loads(line)["resourceSpans"]
        for scope in resource["scopeSpans"]
        for span in scope["spans"]
    ]


def attributes_of(span: dict[str, Any]) -> dict[str, Any]:
    return {a["key"]: a["value"] for a in span.get("attributes", [])}


def test_save_writes_the_collector_file_format(tmp_path: Path) -> None:
    obs = observability.enable(service_name="travel-test")
    record_a_turn(obs)
    path = tmp_path / "trace.jsonl"
    assert observability.save(path) == 3
    lines = path.read_text().splitlines()
    assert len(lines) == 1
    line = json.loads(lines[0])
    [resource_spans] = line["resourceSpans"]
    resource = attributes_of(resource_spans["resource"])
    assert resource["service.name"] == {"stringValue": "travel-test"}
    assert resource_spans["scopeSpans"][0]["scope"]["name"] == "llmgine"
    frame = obs.spans_df().set_index("name")
    spans = {s["name"]: s for s in spans_of(path)}
    llm = spans["chat gpt-4o-mini"]
    # Ids in hex (OTLP/JSON), not protobuf's base64; times and int64 as strings; enums as
    # integers (3 = SPAN_KIND_CLIENT, 2 = STATUS_CODE_ERROR); values typed.
    assert llm["traceId"] == frame.loc["chat gpt-4o-mini", "trace_id"]
    assert llm["spanId"] == frame.loc["chat gpt-4o-mini", "span_id"]
    assert llm["parentSpanId"] == frame.loc["session chat", "span_id"]
    assert llm["kind"] == 3
    start = frame["start_time"]["chat gpt-4o-mini"]
    assert llm["startTimeUnixNano"] == str(pd.Timestamp(start).value)
    values = attributes_of(llm)
    assert values[semconv.USAGE_INPUT_TOKENS] == {"intValue": "12"}
    assert values[semconv.REQUEST_TEMPERATURE] == {"doubleValue": 0.5}
    assert values[semconv.RESPONSE_FINISH_REASONS] == {
        "arrayValue": {"values": [{"stringValue": "stop"}]}
    }
    tool = spans["execute_tool get_weather"]
    assert tool["status"] == {"code": 2, "message": "no weather today"}
    assert tool["events"][0]["name"] == "exception"
    # protobuf's own parser reads the line once ids are in its base64.
    for span in line["resourceSpans"][0]["scopeSpans"][0]["spans"]:
        for key in ("traceId", "spanId", "parentSpanId"):
            if key in span:
                span[key] = base64.b64encode(bytes.fromhex(span[key])).decode()
    request = json_format.ParseDict(line, ExportTraceServiceRequest())
    assert len(request.resource_spans[0].scope_spans[0].spans) == 3


def test_a_saved_trace_loads_back_with_the_same_rows(tmp_path: Path) -> None:
    obs = observability.enable()
    record_a_turn(obs)
    path = tmp_path / "trace.jsonl"
    obs.save(path)
    loaded = observability.load(path)
    assert loaded is not obs
    assert observability.current() is obs
    before, after = obs.spans_df(), loaded.spans_df()
    assert list(after.columns) == list(before.columns)
    assert after.dtypes.equals(before.dtypes)
    assert after.drop(columns="attributes.gen_ai.response.finish_reasons").equals(
        before.drop(columns="attributes.gen_ai.response.finish_reasons")
    )
    llm = after[after["name"] == "chat gpt-4o-mini"].iloc[0]
    assert llm["attributes.gen_ai.response.finish_reasons"] == ["stop"]
    assert loaded.buffer.finished()[-1].events == obs.buffer.finished()[-1].events
    assert loaded.load(path) == 0  # the same spans again: nothing new


def test_save_can_keep_one_session_and_leaves_running_spans_out(tmp_path: Path) -> None:
    obs = observability.enable()
    record_a_turn(obs)
    with obs.tracer.start_as_current_span("session other", attributes={semconv.SESSION_ID: "s2"}):
        running = obs.tracer.start_span("still running")
        assert obs.save(tmp_path / "s1.jsonl", session="s1") == 3
        assert obs.save(tmp_path / "all.jsonl") == 3  # "session other" is running too
    running.end()
    assert {s["name"] for s in spans_of(tmp_path / "s1.jsonl")} == {
        "session chat",
        "chat gpt-4o-mini",
        "execute_tool get_weather",
    }


def test_many_spans_are_written_in_batches_of_lines(tmp_path: Path) -> None:
    obs = observability.enable()
    for i in range(SPANS_PER_LINE + 5):
        obs.tracer.start_span(f"s{i}").end()
    path = tmp_path / "many.jsonl"
    assert obs.save(path) == SPANS_PER_LINE + 5
    assert len(path.read_text().splitlines()) == 2
    assert len(observability.load(path).buffer) == SPANS_PER_LINE + 5


def test_the_official_openai_instrumentation_trace_loads(tmp_path: Path) -> None:
    """Spans written by opentelemetry-instrumentation-openai-v2 and the SDK's own file
    exporter (make_openai_v2_fixture.py) read as llmgine's own: rows, kinds, tokens."""
    obs = observability.load(OPENAI_V2)
    df = obs.spans_df().set_index("name")
    assert sorted(df.index) == ["answer weather question", *["chat gpt-4o-mini"] * 3]
    calls = df.loc["chat gpt-4o-mini"]
    assert set(calls["kind"]) == {"client"}
    assert set(calls["parent_id"]) == {df.loc["answer weather question", "span_id"]}
    assert set(calls[f"attributes.{semconv.SPAN_KIND}"]) == {"llm"}  # added on load
    assert str(calls[f"attributes.{semconv.USAGE_INPUT_TOKENS}"].dtype) == "Int64"
    assert sorted(calls[f"attributes.{semconv.USAGE_INPUT_TOKENS}"].dropna()) == [31, 52]
    assert list(calls["status"]).count("error") == 1
    assert (calls["duration_ms"] > 0).all()
    # Saved again by llmgine, the spans say what the instrumentation's file said.
    again = tmp_path / "again.jsonl"
    assert obs.save(again) == 4
    original = {s["spanId"]: s for s in spans_of(OPENAI_V2)}
    for span in spans_of(again):
        source = original[span["spanId"]]
        for key in ("traceId", "parentSpanId", "name", "kind", "flags", "status"):
            assert span.get(key) == source.get(key), key
        for key in ("startTimeUnixNano", "endTimeUnixNano"):
            assert span[key] == source[key]
        attributes = attributes_of(span)
        attributes.pop(semconv.SPAN_KIND, None)
        assert attributes == attributes_of(source)


def test_a_trace_view_draws_a_loaded_trace() -> None:
    pytest.importorskip("ipywidgets", reason="TraceView needs the notebook extra")
    from llmgine.notebook import TraceView

    view = TraceView(obs=observability.load(OPENAI_V2))
    try:
        assert [(bar.record.name, bar.kind, bar.depth) for bar in view.bars] == [
            ("answer weather question", "other", 0),
            *[("chat gpt-4o-mini", "llm", 1)] * 3,
        ]
        assert "tokens: 52 in / 17 out" in view.bars[1].hover()
    finally:
        view.close()


# Bokeh 3.9 turns a DataFrame into table data with reset_index(inplace=True), which pandas
# 3.1 deprecates (as in tests/notebook/test_dashboard.py); nothing of ours passes inplace.
@pytest.mark.filterwarnings(
    "ignore:The inplace keyword in DataFrame.reset_index:pandas.errors.Pandas4Warning"
)
async def test_the_dashboard_shows_a_loaded_trace() -> None:
    pytest.importorskip("panel", reason="the dashboard needs the notebook extra")
    from llmgine.bus import MessageBus
    from llmgine.notebook import dashboard

    seen = observability.load(OPENAI_V2)
    board = dashboard(MessageBus(), obs=seen, interval=None)
    try:
        board.refresh()
        assert [bar.kind for bar in board.spans.bars()] == ["other", "llm", "llm", "llm"]
    finally:
        board.close()
        seen.close()


def test_load_into_an_enabled_observability_joins_its_spans() -> None:
    obs = observability.enable()
    record_a_turn(obs)
    heard: list[str] = []
    obs.buffer.subscribe(lambda what, record: heard.append(f"{what} {record.name}"))
    assert observability.load(OPENAI_V2, into=obs) is obs
    assert len(obs.spans_df()) == 3 + 4
    assert heard.count("end chat gpt-4o-mini") == 3
    assert obs.load(OPENAI_V2) == 0


def write_lines(path: Path, *lines: dict[str, Any]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def foreign_span(**attributes: Any) -> dict[str, Any]:
    def value(v: Any) -> dict[str, Any]:
        if isinstance(v, bool):
            return {"boolValue": v}
        if isinstance(v, int):
            return {"intValue": str(v)}
        if isinstance(v, dict):
            return {
                "kvlistValue": {"values": [{"key": k, "value": value(x)} for k, x in v.items()]}
            }
        return {"stringValue": v}

    return {
        "resourceSpans": [
            {
                "resource": {},
                "scopeSpans": [
                    {
                        "scope": {"name": "foreign"},
                        "spans": [
                            {
                                "traceId": "5B8EFFF798038103D269B633813FC60C",
                                "spanId": "EEE19B7EC3C1B174",
                                "name": "llm call",
                                "kind": "SPAN_KIND_CLIENT",
                                "startTimeUnixNano": 1544712660000000000,
                                "endTimeUnixNano": "1544712661000000000",
                                "attributes": [
                                    {"key": k, "value": value(v)} for k, v in attributes.items()
                                ],
                            }
                        ],
                    }
                ],
            }
        ]
    }


def test_other_conventions_are_mapped_and_kept(tmp_path: Path) -> None:
    """Older GenAI names and OpenInference's get today's names added; nothing is removed.
    Upper-case hex ids, enum names and numbers for int64 are read, as OTLP/JSON allows."""
    path = write_lines(
        tmp_path / "foreign.jsonl",
        foreign_span(
            **{
                "gen_ai.system": "openai",
                "gen_ai.usage.prompt_tokens": 7,
                "openinference.span.kind": "LLM",
                "llm.model_name": "gpt-4o",
                "extra": {"a": 1},
            }
        ),
    )
    [record] = observability.load(path).buffer.finished()
    assert record.trace_id == 0x5B8EFFF798038103D269B633813FC60C
    assert record.kind == "client"
    assert record.duration_ms == 1000
    assert record.attributes[semconv.PROVIDER_NAME] == "openai"
    assert record.attributes["gen_ai.system"] == "openai"
    assert record.attributes[semconv.USAGE_INPUT_TOKENS] == 7
    assert record.attributes[semconv.REQUEST_MODEL] == "gpt-4o"
    assert record.attributes[semconv.SPAN_KIND] == "llm"
    assert record.attributes["extra"] == '{"a": 1}'  # a map is kept as JSON text


def test_a_key_in_a_foreign_file_or_the_resource_never_lands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "sk-proj-" + "Q" * 40
    path = write_lines(tmp_path / "leaky.jsonl", foreign_span(prompt=f"use {key} please"))
    loaded = observability.load(path)
    assert key not in loaded.spans_df().to_csv()
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", f"deployment.token={key}")
    obs = observability.enable(service_name="leak-test")
    obs.load(path)
    record_a_turn(obs)
    out = tmp_path / "out.jsonl"
    obs.save(out)
    text = out.read_text()
    assert "deployment.token" in text
    assert "leak-test" in text
    assert key not in text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"resourceMetrics": []}\n', "line 1 holds metrics, not traces"),
        (b'\n{"resourceSpans": []}\nnot json\n', "line 3 is not JSON"),
        (b'{"resourceSpans": [{"scopeSpans": 3}]}\n', "line 1 is not valid OTLP JSON"),
        (b'{"resourceSpans": ["x"]}\n', "line 1 is not valid OTLP JSON"),
        (b"\x28\xb5\x2f\xfd\x00", "zstd-compressed"),
        (b"\x0a\xff\xfe\x00", "Binary OTLP"),
    ],
)
def test_a_file_that_is_not_otlp_json_says_what_it_is(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    with pytest.raises(ObservabilityError, match=message):
        observability.load(path)


def test_a_gzipped_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "trace.jsonl.gz"
    path.write_bytes(gzip.compress(OPENAI_V2.read_bytes()))
    assert len(observability.load(path).buffer) == 4


def test_missing_file_and_observability_off_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ObservabilityError, match="no trace file"):
        observability.load(tmp_path / "nowhere.jsonl")
    with pytest.raises(ObservabilityError, match="enable"):
        observability.save(tmp_path / "x.jsonl")
