"""The stores: SQLite shared by processes at once; a cassette stable and diff-friendly."""

from __future__ import annotations

import asyncio
import difflib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from llmgine.llm import ChatMessage, LLMRequest, LLMResponse, TextPart
from llmgine.recording import (
    Cassette,
    Recording,
    SQLiteCache,
    canonical_request,
    default_cache_path,
    request_key,
)
from llmgine.recording._key import canonical_json
from tests.deadline import DEADLINE

from .helpers import scripted

ROOT = Path(__file__).resolve().parents[2]


def recording(prompt: str, answer: str, model: str = "test:x") -> Recording:
    canonical = canonical_request(LLMRequest(messages=[ChatMessage.user(prompt)]), model)
    response = LLMResponse(parts=[TextPart(text=answer)], provider="test", model="x")
    return Recording.of(request_key(canonical), canonical, response, [], streamed=False)


WRITER = """
import asyncio, sys
from llmgine.llm import ChatMessage, LLMRequest, LLMResponse, TextPart
from llmgine.recording import Recording, SQLiteCache, canonical_request, request_key

async def main(path: str, who: str, n: int) -> None:
    cache = SQLiteCache(path)
    for i in range(n):
        for prompt in (f"{who} {i}", "shared"):
            c = canonical_request(LLMRequest(messages=[ChatMessage.user(prompt)]), "test:x")
            answer = LLMResponse(parts=[TextPart(text=f"{who}-{i}")])
            await cache.put(Recording.of(request_key(c), c, answer, [], streamed=False))
            got = await cache.get(request_key(c))
            assert got is not None and got.key == request_key(c)
    cache.close()

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


def test_sqlite_is_safe_for_two_processes_writing_at_once(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    n = 150
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), who, str(n)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for who in ("a", "b")
    ]
    # Both finish (or are killed) before anything is asserted, so a failure leaves no child.
    outcomes: list[tuple[int | None, str]] = []
    for child in children:
        try:
            _, stderr = child.communicate(timeout=DEADLINE)
        finally:
            if child.poll() is None:
                child.kill()
                child.communicate()
        outcomes.append((child.returncode, stderr.decode()))
    for returncode, message in outcomes:
        assert returncode == 0, message

    async def check() -> None:
        cache = SQLiteCache(path)
        every = await cache.recordings()
        assert await cache.count() == len(every) == 2 * n + 1  # each row once, whole
        texts = {r.llm_response().text for r in every}
        assert {f"a-{i}" for i in range(n)} <= texts
        assert {f"b-{i}" for i in range(n)} <= texts
        shared = await cache.get(recording("shared", "").key)
        assert shared is not None
        assert shared.llm_response().text in {f"a-{n - 1}", f"b-{n - 1}"}  # the last write
        await cache.clear()
        assert await cache.count() == 0
        cache.close()

    asyncio.run(check())


def test_the_default_cache_is_in_the_users_cache_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_path() == tmp_path / "xdg" / "llmgine" / "cache.sqlite3"
    assert SQLiteCache().path == default_cache_path()
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_path() == Path.home() / ".cache" / "llmgine" / "cache.sqlite3"


async def test_a_sqlite_cache_serves_a_model(tmp_path: Path) -> None:
    cache = SQLiteCache(tmp_path / "deep" / "cache.sqlite3")  # the folder is made
    await scripted(cache, "read-write", "Paris.").generate("Capital of France?")
    hit = await scripted(cache, "replay").generate("Capital of France?")
    assert hit.text == "Paris."
    assert hit.replayed_from == str(tmp_path / "deep" / "cache.sqlite3")
    cache.close()


async def test_a_cassette_is_the_same_file_whatever_order_the_calls_ran_in(
    tmp_path: Path,
) -> None:
    prompts = {"Capital of France?": "Paris.", "Capital of Peru?": "Lima.", "2+2?": "4"}
    first, second = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    model = scripted(first, "read-write", *prompts.values())
    for prompt in prompts:
        await model.generate(prompt)
    reordered = list(prompts)[::-1]
    other = scripted(second, "read-write", *(prompts[p] for p in reordered))
    await asyncio.gather(*(other.generate(p) for p in reordered))  # concurrently, too

    def summary(path: Path) -> list[tuple[str, str]]:
        lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        return [(line["key"], line["response"]["parts"][0]["text"]) for line in lines]

    # The same interactions in the same places (timings and ids differ between runs).
    assert summary(first) == summary(second)
    # The same recordings written in another order make the very same bytes.
    same = [recording(p, a) for p, a in prompts.items()]
    one, two = Cassette(tmp_path / "a.jsonl"), Cassette(tmp_path / "b.jsonl")
    for item in same:
        await one.put(item)
    for item in same[::-1]:
        await two.put(item)
    assert one.path.read_bytes() == two.path.read_bytes()

    lines = first.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3  # one interaction per line
    for line in lines:
        assert canonical_json(json.loads(line)) == line  # keys sorted, nothing extra
    keys = [json.loads(line)["key"] for line in lines]
    assert keys == sorted(keys)  # in key order


async def test_recording_a_changed_answer_changes_one_line(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    model = scripted(path, "read-write", "Paris.", "Lima.", "4")
    for prompt in ("Capital of France?", "Capital of Peru?", "2+2?"):
        await model.generate(prompt)
    before = path.read_text(encoding="utf-8").splitlines()
    await scripted(path, "record", "Lima, Peru.").generate("Capital of Peru?")
    after = path.read_text(encoding="utf-8").splitlines()
    changed = [
        line
        for line in difflib.unified_diff(before, after, lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    assert len(changed) == 2  # one line out, one line in
    assert "Lima, Peru." in changed[1]


async def test_a_cassette_reads_what_another_writer_added(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    reader, writer = Cassette(path), Cassette(path)
    assert await reader.count() == 0
    await writer.put(recording("one", "1"))
    await writer.put(recording("two", "2"))
    found = await reader.get(recording("two", "").key)
    assert found is not None
    assert found.llm_response().text == "2"
    assert await reader.count() == 2
    await reader.clear()
    assert path.read_text() == ""
    assert await writer.get(recording("two", "").key) is None


async def test_a_damaged_cassette_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    await Cassette(path).put(recording("one", "1"))
    path.write_text(path.read_text() + '{"v": 1, "key": "oops"}\n')
    with pytest.raises(ValueError, match=r"c\.jsonl, line 2, is not a recording"):
        await Cassette(path).get("anything")
    path.write_text('{"v": 99}\n')
    with pytest.raises(ValueError, match="format version 99"):
        await Cassette(path).count()


async def test_a_sqlite_read_that_would_wait_is_done_in_a_worker_thread(tmp_path: Path) -> None:
    cache = SQLiteCache(tmp_path / "c.sqlite3")
    item = recording("one", "1")
    await cache.put(item)
    assert cache._get_now(item.key) == item.to_line()  # inline: no thread needed
    with cache._read_lock:  # another thread is reading: this one must not wait for it
        assert cache._get_now(item.key) is False
        found = await cache.get(item.key)
    assert found is not None
    assert found.key == item.key
    cache.close()


async def test_sqlite_commits_concurrent_puts_in_groups_each_put_returning_once_stored(
    tmp_path: Path,
) -> None:
    path = tmp_path / "c.sqlite3"
    cache = SQLiteCache(path)
    batches: list[int] = []
    write = cache._put_many

    def counted(rows: list[tuple[str, str, str]]) -> None:
        batches.append(len(rows))
        write(rows)

    cache._put_many = counted  # type: ignore[method-assign]
    items = [recording(f"prompt {i}", f"answer {i}") for i in range(100)]
    await asyncio.gather(*(cache.put(item) for item in items))
    assert sum(batches) == 100
    assert len(batches) < 100  # the puts that queued meanwhile went in together
    other = SQLiteCache(path)  # another connection sees every put that has returned
    assert await other.count() == 100
    found = await other.get(items[-1].key)
    assert found is not None
    assert found.llm_response().text == "answer 99"
    other.close()
    cache.close()


async def test_a_failed_sqlite_write_fails_each_put_of_its_group(tmp_path: Path) -> None:
    cache = SQLiteCache(tmp_path / "c.sqlite3")
    write = cache._put_many
    failures = ["disk I/O error"]

    def failing_once(rows: list[tuple[str, str, str]]) -> None:
        if failures:
            raise sqlite3.OperationalError(failures.pop())
        write(rows)

    cache._put_many = failing_once  # type: ignore[method-assign]
    with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
        await cache.put(recording("one", "1"))
    await cache.put(recording("two", "2"))  # the writer goes on after a failure
    assert await cache.get(recording("one", "").key) is None
    assert await cache.get(recording("two", "").key) is not None
    cache.close()


async def test_contains_says_whether_a_key_is_stored(tmp_path: Path) -> None:
    item = recording("one", "1")
    cache = SQLiteCache(tmp_path / "c.sqlite3")
    for store in (cache, Cassette(tmp_path / "c.jsonl")):
        assert not await store.contains(item.key)
        await store.put(item)
        assert await store.contains(item.key)
        assert not await store.contains(recording("two", "2").key)
    # SQLite answers from the row's existence without reading its JSON.
    raw = sqlite3.connect(cache.path)
    with raw:
        raw.execute("UPDATE recordings SET body = 'not json'")
    raw.close()
    assert await cache.contains(item.key)
    with pytest.raises(json.JSONDecodeError):
        await cache.get(item.key)
    cache.close()
