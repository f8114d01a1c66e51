"""Secrets never travel: what a NatsTransport puts on the stream, read back raw.

Each test publishes events through a bus, then reads every message stored in the stream
with a plain nats-py client (``$JS.API.STREAM.MSG.GET``: data and headers as the server
keeps them) and searches the bytes.
"""

from __future__ import annotations

import json
import secrets

import nats
import pytest
from pydantic import Field

from llmgine import observability
from llmgine._redact import REDACTED, add_credential
from llmgine._semconv import CAPTURE_CONTENT_ENV
from llmgine.bus import Event, MessageBus, from_json
from llmgine.bus.nats import NatsServer, NatsTransport
from llmgine.bus.nats._wire import wire_event
from llmgine.errors import MessageSerializationError, UnknownMessageTypeError
from llmgine.llm import LLMStreamDelta
from tests.bus.conftest import nats_transport


class Said(Event):
    content_fields = ("text",)
    text: str = ""
    note: str = ""
    headers: dict[str, str] = Field(default_factory=dict)
    per_key: dict[str, int] = Field(default_factory=dict)


class Counted(Event):
    token: int


def _key_shapes() -> dict[str, str]:
    """Fresh secrets of every shape the redactor knows, random so no test sees another's."""
    handed = f"opaque{secrets.token_hex(6)}"  # no known shape: only add_credential knows it
    assert add_credential(handed)
    return {
        "openai": f"sk-proj-{secrets.token_urlsafe(24)}",
        "anthropic": f"sk-ant-api03-{secrets.token_urlsafe(24)}",
        "google": f"AIza{secrets.token_hex(18)}",
        "bearer": secrets.token_hex(12),
        "handed": handed,
        "short-header": secrets.token_hex(4),  # 8 characters: caught only by its key
    }


async def _stored(transport: NatsTransport) -> list[bytes]:
    """Every message in the transport's stream, raw: headers and data."""
    nc = await nats.connect(transport.url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(transport.stream)
        stored = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await js.get_msg(transport.stream, seq)
            headers = "".join(f"{k}: {v}\n" for k, v in (msg.headers or {}).items())
            stored.append(headers.encode() + (msg.data or b""))
        return stored
    finally:
        await nc.close()


def _events(keys: dict[str, str], content: str) -> list[Event]:
    return [
        Said(
            text=f"{content} {keys['openai']}",
            note=(
                f"keys {keys['openai']} {keys['anthropic']} {keys['google']} "
                f"{keys['handed']}; Authorization: Bearer {keys['bearer']}"
            ),
            headers={"x-api-key": keys["short-header"], "accept": "json"},
            per_key={keys["anthropic"]: 3},  # a secret as a key
            metadata={"authorization": f"Bearer {keys['bearer']}", "run": "nightly"},
        ),
        LLMStreamDelta(call_id="c1", text=content, reasoning=f"{content} reasons", deltas=3),
    ]


@pytest.mark.parametrize("capture", [False, True], ids=["capture-off", "capture-on"])
async def test_no_secret_reaches_the_stream_and_content_only_with_capture(
    nats_server: NatsServer, capture: bool
) -> None:
    keys = _key_shapes()
    content = f"the recipe is {secrets.token_hex(5)}"
    transport = nats_transport(nats_server, capture_content=capture)
    received: list[Event] = []
    async with MessageBus(transport=transport) as bus:
        bus.on_event(Said, received.append)
        bus.on_event(LLMStreamDelta, received.append)
        for event in _events(keys, content):
            await bus.publish(event)
        await bus.drain()

    stored = _stored_bytes = await _stored(transport)
    assert len(stored) == 2
    raw = b"\n".join(_stored_bytes)
    for shape, key in keys.items():
        assert key.encode() not in raw, f"the {shape} key is on the stream"
    assert raw.count(REDACTED.encode()) >= 7
    assert b'"run": "nightly"' in raw or b'"run":"nightly"' in raw  # the rest travels
    assert (content.encode() in raw) is capture
    assert (b"Llmgine-Withheld: text,reasoning" in raw) is not capture

    said, delta = received  # the receiving bus reads what travelled
    assert isinstance(said, Said)
    assert isinstance(delta, LLMStreamDelta)
    assert said.headers == {"x-api-key": REDACTED, "accept": "json"}
    assert said.metadata == {"authorization": REDACTED, "run": "nightly"}
    assert said.per_key == {REDACTED: 3}
    assert keys["google"] not in said.note
    assert said.note.count(REDACTED) == 5, said.note
    assert delta.deltas == 3
    if capture:
        assert said.text == f"{content} {REDACTED}"
        assert delta.text == content
    else:
        assert (said.text, delta.text, delta.reasoning) == ("", "", "")


async def test_a_secret_in_a_field_that_cannot_hold_the_placeholder_is_refused(
    nats_server: NatsServer,
) -> None:
    async with MessageBus(transport=nats_transport(nats_server)) as bus:
        with pytest.raises(MessageSerializationError, match="Counted holds a secret"):
            await bus.publish(Counted(token=12345678))
        await bus.publish(Counted(token=0))  # nothing under the key to hide: it travels
        await bus.drain()


def test_a_secret_that_json_escapes_is_redacted_too() -> None:
    quoted = f'pa"ss\\{secrets.token_hex(4)}'  # a quote and a backslash: escaped in JSON
    assert add_credential(quoted)
    data, _ = wire_event(Said(note=f"it is {quoted}"), capture_content=True)
    assert quoted.encode() not in data
    assert json.dumps(quoted)[1:-1].encode() not in data
    assert json.loads(data)["data"]["note"] == f"it is {REDACTED}"


def test_content_capture_follows_the_environment_and_observability(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    event = LLMStreamDelta(call_id="c", text="the answer", deltas=1)
    monkeypatch.delenv(CAPTURE_CONTENT_ENV, raising=False)
    assert NatsTransport(capture_content=None).capture_content is None  # follows observability
    assert wire_event(event, capture_content=None)[1] == ("text",)
    monkeypatch.setenv(CAPTURE_CONTENT_ENV, "true")
    assert NatsTransport().capture_content is True
    assert NatsTransport(capture_content=False).capture_content is False
    obs = observability.enable(capture_content=True)
    try:
        assert obs.capture_content
        data, withheld = wire_event(event, capture_content=None)
        assert withheld == ()
        assert b"the answer" in data
    finally:
        observability.disable()
    assert b"the answer" not in wire_event(event, capture_content=None)[0]


def test_from_json_reads_to_json_in_one_pass_and_other_layouts_the_long_way(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    event = Said(text="hello", note="a note", headers={"x": "1"}, per_key={"a": 2})
    sent = wire_event(event, capture_content=True)[0]
    with monkeypatch.context() as patched:
        # to_json's own layout is validated from its bytes: the envelope is never parsed.
        def parsed(*args: object, **kwargs: object) -> object:
            raise AssertionError("the envelope was parsed: the one-pass read was not taken")

        patched.setattr(json, "loads", parsed)
        assert from_json(sent) == event
        assert type(from_json(sent)) is Said
        assert from_json(sent.decode()) == event
    # Another writer's layout (compact separators, other key order): the full reader.
    envelope = json.loads(sent)
    for other in (
        json.dumps(envelope, separators=(",", ":")).encode(),
        json.dumps({"data": envelope["data"], "type": envelope["type"]}).encode(),
    ):
        assert from_json(other) == event
    # An envelope with more in it than the data is refused.
    extra = sent[:-1] + b', "more": 1}'
    with pytest.raises(MessageSerializationError, match="type"):
        from_json(extra)
    unknown = sent.replace(b'"type": "', b'"type": "nowhere.', 1)
    with pytest.raises(UnknownMessageTypeError):
        from_json(unknown)
    with pytest.raises(MessageSerializationError):
        from_json(sent.replace(b'"text":"hello"', b'"text":5'))
