"""A cassette or cache never holds a credential: keys are planted, then the files grepped."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from llmgine.recording import Cassette, RecordingStore, SQLiteCache

from .helpers import openai_model

HANDED = "handed-credential-7f3a9c2e"  # api_key= given to the model: no known key shape
ENV_SECRET = "environment-secret-41b8d0"  # in a variable named like a credential
KEY_SHAPED = "sk-proj-" + "Q7x2" * 10  # the shape of an OpenAI key, in the prompt
PASSWORD = "tool-argument-password-99"  # under a sensitive name in a tool call
PLANTED = (HANDED, ENV_SECRET, KEY_SHAPED, PASSWORD)


def echo(body: dict[str, Any]) -> dict[str, Any]:
    """A server that repeats everything: the prompt, and a tool call with a password."""
    prompt = " ".join(str(m["content"]) for m in body["messages"])
    arguments = json.dumps({"user": "ada", "password": PASSWORD, "note": prompt})
    return {
        "role": "assistant",
        "content": f"You said: {prompt}",
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "login", "arguments": arguments},
            }
        ],
    }


def stored(folder: Path) -> tuple[list[str], bytes]:
    """The names of the files in ``folder`` (the store, SQLite's -wal and -shm), and all
    their bytes."""
    files = sorted(p for p in folder.iterdir() if p.is_file())
    return [p.name for p in files], b"".join(p.read_bytes() for p in files)


@pytest.mark.parametrize("kind", ["cassette", "sqlite"])
async def test_no_planted_key_reaches_the_files(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACME_SERVICE_API_KEY", ENV_SECRET)
    store: RecordingStore = (
        Cassette(tmp_path / "c.jsonl") if kind == "cassette" else SQLiteCache(tmp_path / "c.db")
    )
    model = openai_model(store, "read-write", api_key=HANDED, answer=echo)
    prompt = f"My keys are {HANDED}, {ENV_SECRET} and {KEY_SHAPED}; keep them safe."
    live = await model.generate(prompt)
    assert HANDED in live.text  # the live answer is the server's (redaction is for storage)

    replayed = await model.generate(prompt)
    assert replayed.cache_hit
    assert "[REDACTED]" in replayed.text
    [call] = replayed.tool_calls
    assert call.arguments["password"] == "[REDACTED]"
    assert call.arguments["user"] == "ada"
    if isinstance(store, SQLiteCache):
        store.close()

    files, everything = stored(tmp_path)
    assert files
    assert b"[REDACTED]" in everything
    for secret in PLANTED:
        assert secret.encode() not in everything, f"{secret} is in {files}"
    assert b"authorization" not in everything.lower()  # no headers at all
    assert b"Bearer" not in everything
