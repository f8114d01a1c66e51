"""Invalid tool arguments: without content capture no value the model sent reaches a span,
an event, the JSONL file, the console, a log, the error or the model's error result; the
errors still name each field and what is wrong. With capture the values are shown,
redacted like any content (whole under keys such as ``password``)."""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import pytest
from pydantic import AfterValidator, BaseModel, ValidationError, model_validator

from llmgine import observability
from llmgine.bus import Event, MessageBus
from llmgine.llm import ToolCallPart, ToolResultPart
from llmgine.observability import REDACTED
from llmgine.tools import ToolArgumentsError, ToolCallFailed, ToolManager, tool

# Values with no secret's shape: only where they sit (or nothing) can keep them out.
SENSITIVE = {
    "password": "hunter2-horse-battery",
    "authorization": "opensesame-tuesday",
    "client_secret": "cs-7f3a9q-plain",
}
PLAIN = {"count": "seventeen-or-so"}
ECHOED = "call me at 5551234"  # a validator below repeats it in its own words
VALUES = (*SENSITIVE.values(), *PLAIN.values(), ECHOED, "4567-half-json")


def no_digits(value: str) -> str:
    if any(c.isdigit() for c in value):
        raise ValueError(f"{value!r} has digits; spell numbers out")
    return value


@tool
def login(
    password: int,
    authorization: int,
    client_secret: int,
    count: int,
    note: Annotated[str, AfterValidator(no_digits)] = "",
) -> str:
    """Log in (every argument here is sent wrong)."""
    return "in"


def calls() -> list[ToolCallPart]:
    return [
        ToolCallPart(id="bad", name="login", arguments={**SENSITIVE, **PLAIN, "note": ECHOED}),
        ToolCallPart.from_json_arguments("half", "login", '{"password": "4567-half-json"'),
    ]


def text_of(df: pd.DataFrame) -> str:
    return df.astype(str).to_csv()


async def run_observed(
    bus: MessageBus, tmp_path: Path, caplog: pytest.LogCaptureFixture, *, capture: bool
) -> tuple[list[ToolResultPart], dict[str, str]]:
    """Run the bad calls with every output on; return the results and each output's text."""
    console = io.StringIO()
    jsonl = tmp_path / "trace.jsonl"
    obs = observability.enable(
        bus, console=console, jsonl=jsonl, jsonl_events=True, capture_content=capture
    )
    seen: list[Event] = []
    bus.on_event(Event, seen.append)
    errors: list[str] = []
    try:
        with caplog.at_level(logging.DEBUG):
            async with bus.session("privacy") as session:
                manager = ToolManager([login], session=session)
                results = await manager.execute_all(calls())
                for call in calls():
                    with pytest.raises(ToolArgumentsError) as caught:
                        await login.run(call.arguments, show_values=capture)
                    errors.append(f"{caught.value} {caught.value.errors}")
            await bus.drain()
        spans, events = text_of(obs.spans_df()), text_of(obs.events_df())
    finally:
        observability.disable()  # flushes the JSONL file
    failed = [e for e in seen if isinstance(e, ToolCallFailed)]
    assert [f.error_kind for f in failed] == ["invalid_arguments", "invalid_arguments"]
    return results, {
        "spans_df": spans,
        "events_df": events,
        "JSONL": jsonl.read_text(),
        "console": console.getvalue(),
        "log": caplog.text,
        "events": " ".join(f.model_dump_json() for f in failed),
        "errors": " ".join(errors),
        "results": " ".join(r.text for r in results),
    }


async def test_without_capture_no_value_appears_anywhere_and_fields_are_named(
    bus: MessageBus, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    results, outputs = await run_observed(bus, tmp_path, caplog, capture=False)
    for where, text in outputs.items():
        for value in VALUES:
            assert value not in text, f"{value!r} leaked into {where}"
    invalid, half = (r.text for r in results)
    for field in ("password", "authorization", "client_secret", "count"):
        assert f"{field}: Input should be a valid integer" in invalid
    assert "note: Value error, '<value hidden>' has digits; spell numbers out" in invalid
    assert "are not a JSON object (but 29 characters of other text)" in half


async def test_with_capture_values_are_shown_redacted_like_content(
    bus: MessageBus, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    results, outputs = await run_observed(bus, tmp_path, caplog, capture=True)
    for where, text in outputs.items():
        for value in SENSITIVE.values():
            assert value not in text, f"{value!r} leaked into {where} despite redaction"
    invalid = results[0].text
    parse = "Input should be a valid integer, unable to parse string as an integer"
    assert f'password: {parse} (got "{REDACTED}")' in invalid
    assert f'client_secret: {parse} (got "{REDACTED}")' in invalid
    assert f'(got "{PLAIN["count"]}")' in invalid  # not secret: shown, as content is
    assert repr(ECHOED) in invalid
    assert f'not a JSON object: \'{{"password": "{REDACTED}"\'' in results[1].text


class Credentials(BaseModel):
    password: int
    scopes: list[str]

    @model_validator(mode="before")
    @classmethod
    def no_admin(cls, data: Any) -> Any:
        if "admin-scope" in data.get("scopes", []):
            raise ValueError(f"scopes {data['scopes']} include admin; use {data['password']}")
        return data


@tool
def connect(credentials: Credentials) -> str:
    """Connect with nested credentials."""
    return "ok"


async def test_nested_values_are_hidden_or_redacted_where_they_sit() -> None:
    sent = {"password": "nested-secret-pw", "scopes": ["admin-scope", "read-only"]}
    with pytest.raises(ToolArgumentsError) as caught:
        await connect.run({"credentials": sent})
    [error] = caught.value.errors
    assert error["msg"] == (
        "Value error, scopes ['<value hidden>', '<value hidden>'] include admin; use <value hidden>"
    )
    assert caught.value.__cause__ is None  # pydantic's text would repeat the validator's
    # Values shown (as a ToolManager shows them when its tracer captures content):
    with pytest.raises(ToolArgumentsError) as caught:
        await connect.run(
            {"credentials": {"password": "nested-secret-pw", "scopes": []}}, show_values=True
        )
    [error] = caught.value.errors
    assert (error["loc"], error["input"]) == (["credentials", "password"], f'"{REDACTED}"')
    assert isinstance(caught.value.__cause__, ValidationError)
    assert "nested-secret-pw" not in str(caught.value.__cause__)  # inputs hidden there
    with pytest.raises(ToolArgumentsError) as caught:
        await connect.run({"credentials": sent}, show_values=True)
    assert "nested-secret-pw" not in str(caught.value)  # whole dict: password redacted
    assert "admin-scope" in str(caught.value)
