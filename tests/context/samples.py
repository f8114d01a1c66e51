"""Conversations the store tests write and compare, shared with the worker processes."""

from __future__ import annotations

from llmgine.llm import (
    ChatMessage,
    FilePart,
    ImagePart,
    ReasoningPart,
    TextPart,
    ToolCallPart,
    ToolResultPart,
)


def every_part_kind() -> list[ChatMessage]:
    """One conversation holding every part kind, with the awkward values: bytes that are
    not UTF-8, non-ASCII text, nested JSON, infinity, invalid tool arguments."""
    return [
        ChatMessage.system('You are terse. Ünïcødé 🚀 and "quotes" and \\ backslashes.'),
        ChatMessage.user(
            [
                TextPart(text="What is in these?"),
                ImagePart(data=bytes(range(256)), media_type="image/png"),
                ImagePart(url="https://example.com/cat.jpg"),
                FilePart(data=b"%PDF-1.7\x00\xff\xfe", media_type="application/pdf", name="r.pdf"),
                FilePart(url="https://example.com/a.mp3", media_type="audio/mpeg"),
            ]
        ),
        ChatMessage.assistant(
            [
                ReasoningPart(text="Look closely.", signature="c2lnbmF0dXJl", provider="anthropic"),
                ReasoningPart(
                    redacted=True,
                    provider="openai",
                    provider_data={"encrypted_content": "gAAAA", "id": "rs_1"},
                ),
                TextPart(text="Let me check."),
                ToolCallPart(
                    id="call_1",
                    name="lookup",
                    arguments={"q": "cat", "n": 2, "nested": {"list": [1, 2.5, None, True]}},
                    signature="thought",
                    provider="gemini",
                ),
                ToolCallPart.from_json_arguments("call_2", "broken", "{not json"),
            ]
        ),
        ChatMessage.tool_results(
            [
                ToolResultPart(
                    call_id="call_1",
                    name="lookup",
                    content={"hits": [1, 2], "score": float("inf"), "empty": {}},
                ),
                ToolResultPart(call_id="call_2", name="broken", content="not JSON", is_error=True),
            ]
        ),
        ChatMessage.assistant("A cat, twice."),
    ]


def numbered_turn(writer: str, index: int) -> list[ChatMessage]:
    """One append of a concurrency test: two messages that must stay together, in order."""
    return [
        ChatMessage.user(f"{writer}:{index}:question"),
        ChatMessage.assistant(f"{writer}:{index}:answer"),
    ]


def check_numbered(messages: list[ChatMessage], writers: dict[str, int]) -> None:
    """Every writer's turns are present exactly once, each whole, in the writer's order."""
    texts = [message.text for message in messages]
    assert len(texts) == 2 * sum(writers.values()), f"{len(texts)} messages"
    seen: dict[str, list[int]] = {writer: [] for writer in writers}
    for question, answer in zip(texts[::2], texts[1::2], strict=True):
        writer, index, kind = question.split(":")
        assert kind == "question"
        assert answer == f"{writer}:{index}:answer", (question, answer)
        seen[writer].append(int(index))
    for writer, count in writers.items():
        assert seen[writer] == list(range(count)), writer
