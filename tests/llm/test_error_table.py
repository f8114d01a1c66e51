"""One error table for every provider: the same answer from a server is the same error.

Errors are served by a real HTTP server on 127.0.0.1 in each API's own body format, and
read by each provider's SDK over its own HTTP stack, as they would be from the real thing
(including a llama.cpp server's own words for its errors).
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from llmgine.errors import (
    AuthenticationError,
    BadRequestError,
    ContentFilteredError,
    ContextTooLongError,
    EndpointNotFoundError,
    LLMError,
    LLMTimeoutError,
    ModelNotFoundError,
    PermissionDeniedError,
    ProviderError,
    RateLimitedError,
    ServerUnavailableError,
)
from llmgine.llm import LLMRetryPolicy, Model, get_model
from llmgine.llm._error_table import retry_after_seconds
from tests.llm.scripted_server import Answer, ScriptedServer, scripted_server


@dataclass(frozen=True)
class Flavour:
    """A provider, and how its API words an error body."""

    name: str
    spec: str
    suffix: str

    def body(self, status: int, kind: str, message: str) -> dict[str, Any]:
        if self.name == "anthropic":
            return {"type": "error", "error": {"type": kind, "message": message}}
        if self.name == "gemini":
            return {"error": {"code": status, "message": message, "status": kind.upper()}}
        if self.name == "llamacpp":  # llama.cpp's server: the status again as the code
            return {"error": {"code": status, "message": message, "type": kind}}
        return {"error": {"message": message, "type": kind, "code": None, "param": None}}

    def model(self, server: ScriptedServer, **options: Any) -> Model:
        options = {"retry": False, **options}
        if self.name != "llamacpp":
            options.setdefault("api_key", "sk-test-error-table-0123456789")
        return get_model(self.spec, base_url=server.url + self.suffix, **options)


FLAVOURS = [
    Flavour("openai", "openai:gpt-4o-mini", "/v1"),
    Flavour("anthropic", "anthropic:claude-haiku-4-5", ""),
    Flavour("gemini", "gemini:gemini-2.0-flash", ""),
    Flavour("llamacpp", "llamacpp:qwen", "/v1"),
]
IDS = [f.name for f in FLAVOURS]

STATUSES: list[tuple[int, str, str, type[LLMError]]] = [
    (400, "invalid_request_error", "temperature must be at most 2", BadRequestError),
    (401, "authentication_error", "invalid credentials", AuthenticationError),
    (403, "permission_error", "not allowed here", PermissionDeniedError),
    (404, "not_found_error", "the model 'nope' does not exist", ModelNotFoundError),
    (408, "request_timeout", "timed out reading the request", LLMTimeoutError),
    (413, "request_too_large", "request body too large", BadRequestError),
    (422, "invalid_request_error", "unprocessable", BadRequestError),
    (429, "rate_limit_error", "slow down", RateLimitedError),
    (500, "api_error", "internal error", ServerUnavailableError),
    (503, "unavailable", "overloaded right now", ServerUnavailableError),
    (529, "overloaded_error", "Overloaded", ServerUnavailableError),
]


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with scripted_server() as running:
        yield running


async def failure(model: Model) -> LLMError:
    with pytest.raises(LLMError) as caught:
        await model.generate("hello")
    await model.aclose()
    return caught.value


@pytest.mark.parametrize("flavour", FLAVOURS, ids=IDS)
@pytest.mark.parametrize(("status", "kind", "said", "expected"), STATUSES)
async def test_the_same_status_is_the_same_error_from_every_provider(
    flavour: Flavour,
    server: ScriptedServer,
    status: int,
    kind: str,
    said: str,
    expected: type[LLMError],
) -> None:
    server.json(status, flavour.body(status, kind, said))
    error = await failure(flavour.model(server))
    assert type(error) is expected
    assert error.retryable == (
        expected in (LLMTimeoutError, RateLimitedError, ServerUnavailableError)
    )
    assert error.status_code == status
    assert said in str(error)
    words = str(error).replace(server.url, "<url>")  # a port may contain the digits
    assert words.count(str(status)) == 1, words  # the status once: never "400 400"
    assert error.provider == flavour.name


@pytest.mark.parametrize("flavour", FLAVOURS, ids=IDS)
async def test_a_timeout_the_server_reports_is_retried(
    flavour: Flavour, server: ScriptedServer
) -> None:
    server.json(408, flavour.body(408, "request_timeout", "timed out"))
    server.answer(Answer(500, b"{}"))  # then a failure that is not retried either way
    model = flavour.model(server, retry=LLMRetryPolicy(attempts=2, initial=0, jitter=0))
    with pytest.raises(ServerUnavailableError):
        await model.generate("hello")
    assert len(server.received) == 2  # the 408 was tried again
    await model.aclose()


@pytest.mark.parametrize("flavour", FLAVOURS, ids=IDS)
async def test_a_prompt_over_the_context_is_context_too_long(
    flavour: Flavour, server: ScriptedServer
) -> None:
    said = {
        "openai": "This model's maximum context length is 128000 tokens.",
        "anthropic": "prompt is too long: 210000 tokens > 200000 maximum",
        "gemini": "The input token count (1200000) exceeds the maximum number of tokens "
        "allowed (1048576).",
        "llamacpp": "the request exceeds the available context size, try increasing it",
    }[flavour.name]
    kind = "exceed_context_size_error" if flavour.name == "llamacpp" else "invalid_request_error"
    server.json(400, flavour.body(400, kind, said))
    error = await failure(flavour.model(server))
    assert isinstance(error, ContextTooLongError)
    assert "max_tokens" in str(error)  # what to do next


async def test_llamacpp_errors_name_what_was_used(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    llamacpp = FLAVOURS[IDS.index("llamacpp")]
    # No key set: the hint says this server wants one, and which variable to set.
    monkeypatch.delenv("LLAMACPP_API_KEY", raising=False)
    server.json(401, llamacpp.body(401, "authentication_error", "Invalid API Key"))
    error = await failure(llamacpp.model(server))
    assert isinstance(error, AuthenticationError)
    assert "LLAMACPP_API_KEY" in str(error)
    assert "OPENAI_API_KEY" not in str(error)
    # A key from the environment: the hint names the variable it was read from.
    monkeypatch.setenv("LLAMACPP_API_KEY", "local-key-for-llamacpp")
    server.json(401, llamacpp.body(401, "authentication_error", "Invalid API Key"))
    error = await failure(llamacpp.model(server))
    assert "key in LLAMACPP_API_KEY" in str(error)
    assert "OPENAI_API_KEY" not in str(error)
    assert "local-key-for-llamacpp" not in str(error)


@pytest.mark.parametrize("flavour", FLAVOURS, ids=IDS)
async def test_a_wrong_base_url_path_is_not_a_missing_model(
    flavour: Flavour, server: ScriptedServer
) -> None:
    # llama.cpp (and most web servers) answer an unknown path with a bare 404.
    server.json(404, flavour.body(404, "not_found_error", "File Not Found"))
    error = await failure(flavour.model(server))
    assert isinstance(error, EndpointNotFoundError)
    assert not isinstance(error, ModelNotFoundError)
    assert "base_url" in str(error)
    assert server.url in str(error)


@pytest.mark.parametrize("flavour", FLAVOURS, ids=IDS)
async def test_a_content_filter_refusal_is_content_filtered(
    flavour: Flavour, server: ScriptedServer
) -> None:
    server.json(400, flavour.body(400, "content_filter", "refused by the content filter"))
    assert isinstance(await failure(flavour.model(server)), ContentFilteredError)


async def test_an_exhausted_quota_is_a_rate_limit_that_waiting_does_not_fix(
    server: ScriptedServer,
) -> None:
    body = {"error": {"message": "You exceeded your quota", "type": "insufficient_quota"}}
    server.json(429, {**body, "code": "insufficient_quota"})
    error = await failure(FLAVOURS[0].model(server))
    assert isinstance(error, RateLimitedError)
    assert not error.retryable
    assert "credit" in str(error)


async def test_gemini_reports_a_bad_key_as_400_and_it_is_an_authentication_error(
    server: ScriptedServer,
) -> None:
    body = {
        "error": {
            "code": 400,
            "message": "API key not valid. Please pass a valid API key.",
            "status": "INVALID_ARGUMENT",
            "details": [
                {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}
            ],
        }
    }
    server.json(400, body)
    error = await failure(FLAVOURS[IDS.index("gemini")].model(server))
    assert isinstance(error, AuthenticationError)
    assert "api_key=" in str(error)  # the key was passed in code, and the hint says so


# -- errors inside a stream ------------------------------------------------------------------


def _event(data: Any, name: str | None = None) -> bytes:
    head = f"event: {name}\n".encode() if name else b""
    return head + b"data: " + json.dumps(data).encode() + b"\n\n"


MID_STREAM = {
    "openai": [_event({"error": {"message": "The server had an error", "type": "server_error"}})],
    "anthropic": [
        _event(
            {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
            "error",
        )
    ],
    "gemini": [
        _event(
            {"error": {"code": 503, "message": "The model is overloaded", "status": "UNAVAILABLE"}}
        )
    ],
    "responses": [
        _event(
            {
                "type": "response.failed",
                "sequence_number": 1,
                "response": {
                    "id": "resp_1",
                    "object": "response",
                    "created_at": 1,
                    "model": "gpt-4o-mini",
                    "status": "failed",
                    "output": [],
                    "error": {"code": "server_error", "message": "The server had an error"},
                },
            },
            "response.failed",
        )
    ],
}


@pytest.mark.parametrize("name", sorted(MID_STREAM))
async def test_a_server_error_in_the_middle_of_a_stream_is_retryable(
    name: str, server: ScriptedServer
) -> None:
    server.events(MID_STREAM[name])
    flavour = FLAVOURS[IDS.index("openai" if name == "responses" else name)]
    model = flavour.model(server, **({"api": "responses"} if name == "responses" else {}))
    with pytest.raises(ServerUnavailableError) as caught:
        async with model.stream("hello") as stream:
            await stream.get_response()
    assert caught.value.retryable
    assert "mid-answer" in str(caught.value) or "503" in str(caught.value)
    await model.aclose()


# -- retry-after, in all its forms ------------------------------------------------------------


def test_retry_after_is_read_in_every_form_providers_use() -> None:
    assert retry_after_seconds({"retry-after-ms": "1500"}) == 1.5
    assert retry_after_seconds({"retry-after": "7"}) == 7.0
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 < (retry_after_seconds({"retry-after": later}) or 0) <= 30
    google = {"error": {"details": [{"@type": "RetryInfo", "retryDelay": "12s"}]}}
    assert retry_after_seconds({}, google) == 12.0
    assert retry_after_seconds({}, None, "Please try again in 1.5s.") == 1.5
    assert retry_after_seconds({}, None, "Please try again in 250ms.") == 0.25
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({}, {"error": {}}, "no idea") is None


@pytest.mark.parametrize("flavour", FLAVOURS, ids=IDS)
async def test_a_rate_limit_says_how_long_to_wait(flavour: Flavour, server: ScriptedServer) -> None:
    server.json(429, flavour.body(429, "rate_limit_error", "slow down"), {"retry-after": "3"})
    error = await failure(flavour.model(server))
    assert isinstance(error, RateLimitedError)
    assert error.retry_after == 3.0
    assert "Wait 3 s" in str(error)


async def test_an_unlisted_status_is_still_a_provider_error(server: ScriptedServer) -> None:
    server.json(418, {"error": {"message": "I'm a teapot", "type": "teapot"}})
    error = await failure(FLAVOURS[0].model(server))
    assert type(error) is ProviderError
    assert "418" in str(error)
    assert "teapot" in str(error)
