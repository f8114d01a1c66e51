"""llmgine's own messages go by their public names: ``llmgine.llm.Generate``, not the
private module that defines them, in JSON, DataFrames and logs."""

from __future__ import annotations

import json
import subprocess
import sys

from llmgine import observability
from llmgine.bus import MessageBus, from_json, message_type_name, to_json
from llmgine.llm import ChatMessage, Generate, LLMCallCompleted, LLMRequest, LLMService
from tests.deadline import DEADLINE


def test_llmgine_messages_are_named_by_their_public_package() -> None:
    assert message_type_name(Generate) == "llmgine.llm.Generate"
    assert message_type_name(LLMCallCompleted) == "llmgine.llm.LLMCallCompleted"
    command = Generate(request=LLMRequest(messages=[ChatMessage.user("hi")]))
    text = to_json(command)
    assert json.loads(text)["type"] == "llmgine.llm.Generate"
    assert from_json(text) == command


def test_json_written_under_the_private_name_is_still_read() -> None:
    command = Generate(request=LLMRequest(messages=[ChatMessage.user("hi")]))
    old = json.dumps(
        {"type": "llmgine.llm._service.Generate", "data": json.loads(to_json(command))["data"]}
    )
    assert from_json(old) == command


def test_a_public_name_is_read_in_a_process_that_never_imported_its_package() -> None:
    command = Generate(request=LLMRequest(messages=[ChatMessage.user("hi")]))
    program = (
        "import sys\n"
        "from llmgine.bus import from_json\n"
        "message = from_json(sys.stdin.read())\n"
        "print(type(message).__module__, type(message).__name__)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program],
        input=to_json(command),
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=True,
    )
    assert done.stdout.split() == ["llmgine.llm._service", "Generate"]


async def test_events_df_shows_public_type_names() -> None:
    bus = MessageBus()
    await bus.start()
    obs = observability.enable(bus)
    try:
        LLMService(bus, "demo:x", latency=0).install()
        async with bus.session("names") as session:
            await session.execute(Generate(request=LLMRequest(messages=[ChatMessage.user("hi")])))
        await bus.drain()
        types = set(obs.events_df()["type"])
    finally:
        observability.disable()
        await bus.stop()
    assert "llmgine.llm.LLMCallCompleted" in types
    assert "llmgine.bus.SessionStarted" in types
    assert not [name for name in types if "._" in name], types
