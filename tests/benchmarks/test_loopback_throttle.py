"""The benchmarks' loopback server throttled (``--rate``): a 429 with ``retry-after``
beyond the rate, and a sweep against it that slows down and finishes every row."""

from __future__ import annotations

import json
import select
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from llmgine.sweep import Sweep
from tests.deadline import DEADLINE

SERVER = Path(__file__).resolve().parents[2] / "benchmarks" / "loopback_server.py"
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Capital of France?"}]}


@contextmanager
def loopback(*args: str) -> Iterator[str]:
    """The loopback server in a process of its own, on a free port; its URL."""
    with subprocess.Popen([sys.executable, str(SERVER), *args], stdout=subprocess.PIPE) as server:
        try:
            assert server.stdout is not None
            ready, _, _ = select.select([server.stdout], [], [], DEADLINE)
            port = server.stdout.readline().decode().strip() if ready else ""
            assert port.isdigit(), f"the loopback server printed no port within {DEADLINE:g} s"
            yield f"http://127.0.0.1:{port}"
        finally:
            server.terminate()
            server.wait(DEADLINE)


def post(url: str) -> tuple[int, dict[str, str], dict[str, object]]:
    request = urllib.request.Request(
        f"{url}/v1/chat/completions",
        data=json.dumps(CHAT).encode(),
        headers={"content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=DEADLINE) as reply:
            return reply.status, dict(reply.headers.items()), json.loads(reply.read())
    except urllib.error.HTTPError as refused:
        return refused.code, dict(refused.headers.items()), json.loads(refused.read())


def stats(url: str) -> dict[str, int]:
    with urllib.request.urlopen(f"{url}/stats", timeout=DEADLINE) as reply:
        counts: dict[str, int] = json.loads(reply.read())
    return counts


def test_over_its_rate_the_server_answers_429_with_retry_after() -> None:
    # One request every 5 s, one at a time: the second, sent at once, is over the rate.
    with loopback("--rate", "0.2", "--burst", "1") as url:
        sent = time.monotonic()
        status, _, body = post(url)
        assert status == 200
        assert body["object"] == "chat.completion"
        status, headers, body = post(url)
        waited = time.monotonic() - sent
        assert status == 429
        assert body["error"]["code"] == "rate_limit_exceeded"  # type: ignore[index]
        # How long until the next token: 5 s after the first request, less the time since.
        retry_ms = int(headers["retry-after-ms"])
        assert 5000 - waited * 1000 - 50 <= retry_ms <= 5000
        assert headers["retry-after"] == str(-(-retry_ms // 1000))  # whole seconds, rounded up
        assert stats(url) == {"answered": 1, "throttled": 1}


def test_a_rate_the_server_cannot_keep_is_refused_at_start() -> None:
    refused = subprocess.run(
        [sys.executable, str(SERVER), "--rate", "0"],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )
    assert refused.returncode == 2
    assert "a rate is above 0" in refused.stderr
    assert refused.stdout == ""  # no port: nothing listens


async def test_a_throttled_sweep_finishes_every_row_without_error(tmp_path: Path) -> None:
    rows = 20
    with loopback("--rate", "20", "--burst", "1") as url:
        result = await Sweep(
            [f"Question {i}" for i in range(rows)],
            "openai:gpt-4o-mini",
            store=tmp_path / "c.sqlite3",
            concurrency=16,
            stream=False,
            progress=False,
            model_options={"api_key": "sk-test", "base_url": f"{url}/v1"},
        ).run()
        counts = stats(url)
    assert result.done == rows
    assert result.df["error_type"].isna().all(), result.df["error"].dropna().tolist()
    assert (result.df["text"] == "Paris is the capital of France.").all()
    assert counts["answered"] == rows  # each row answered once: no call made twice
    assert counts["throttled"] > 0  # 16 at once against room for one: it was throttled
