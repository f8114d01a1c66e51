"""Models and their wrappers: defaults, structured output, retry, fallback, the registry."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from pydantic import BaseModel

from llmgine.errors import (
    AuthenticationError,
    InvalidRequestError,
    LLMConfigurationError,
    RateLimitedError,
    ServerUnavailableError,
    StructuredOutputError,
    UnknownProviderError,
)
from llmgine.llm import (
    DEFAULT_MODEL,
    LOCAL_MODEL,
    ChatMessage,
    Fallback,
    LLMRequest,
    LLMResponse,
    LLMRetryPolicy,
    Model,
    ProviderModel,
    Retrying,
    ScriptedProvider,
    TextDelta,
    TextPart,
    Usage,
    default_model,
    get_model,
    list_providers,
    provider_info,
    register_provider,
)
from llmgine.tools import ToolManager, run_tool_loop, tool
from tests.deadline import DEADLINE


class Sleeps:
    """A fake sleep that records what it was asked to wait."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def scripted(*responses: Any, name: str = "m") -> tuple[ProviderModel, ScriptedProvider]:
    provider = ScriptedProvider(responses)
    return ProviderModel(provider, name), provider


async def test_model_accepts_a_string_messages_or_a_request_and_applies_defaults() -> None:
    inner, provider = scripted("a", "b", "c")
    model = Model(inner, defaults={"temperature": 0.2, "max_tokens": 50})
    await model.generate("hi")
    await model.generate([ChatMessage.system("s"), ChatMessage.user("u")], temperature=0.9)
    await model.generate(LLMRequest(messages=[ChatMessage.user("x")], max_tokens=7))
    first, second, third = provider.requests
    assert (first.temperature, first.max_tokens, first.model) == (0.2, 50, "m")
    assert [m.role for m in second.messages] == ["system", "user"]
    assert second.temperature == 0.9
    assert (third.max_tokens, third.temperature) == (7, 0.2)  # the request's own field wins
    with pytest.raises(TypeError, match="unknown request fields"):
        model.request("x", temprature=1)
    with pytest.raises(TypeError, match="unknown request defaults"):
        Model(inner, defaults={"colour": "red"})


async def test_cost_is_added_from_the_price_table_and_unknown_models_cost_none() -> None:
    usage = Usage(input_tokens=1000, output_tokens=500)
    known, _ = scripted(LLMResponse(parts=[TextPart(text="x")], usage=usage), name="gpt-4o-mini")
    known._provider.name = "openai"  # priced as OpenAI's model
    reply = await known.generate(LLMRequest(messages=[ChatMessage.user("q")]))
    assert reply.cost_usd == pytest.approx(0.00045)  # 1000 x $0.15/M + 500 x $0.60/M
    unknown, _ = scripted("x", name="no-such-model")
    assert (await unknown.generate(LLMRequest(messages=[]))).cost_usd is None


class City(BaseModel):
    name: str
    population: int


async def test_structured_output_validates_and_asks_again_with_the_errors() -> None:
    inner, provider = scripted('{"name": "Paris"}', '{"name": "Paris", "population": 2100000}')
    model = Model(inner)
    reply = await model.generate_structured("Biggest French city?", City)
    assert reply.parsed == City(name="Paris", population=2100000)
    first, second = provider.requests
    assert first.response_format is not None
    assert first.response_format.name == "City"
    assert first.response_format.json_schema["required"] == ["name", "population"]
    assert [m.role for m in second.messages] == ["user", "assistant", "user"]
    assert "population" in second.messages[-1].text
    assert "Field required" in second.messages[-1].text


async def test_structured_output_gives_up_with_a_clear_error() -> None:
    inner, _ = scripted("not json", "still not")
    with pytest.raises(StructuredOutputError, match=r"in 2 attempt\(s\)"):
        await Model(inner).generate_structured("?", City, max_attempts=2)


async def test_retry_waits_backoff_or_retry_after_whichever_is_longer() -> None:
    sleeps = Sleeps()
    inner, provider = scripted(
        RateLimitedError("slow down", retry_after=7.0),
        ServerUnavailableError("overloaded"),
        "ok",
    )
    policy = LLMRetryPolicy(attempts=3, initial=0.5, jitter=0.0, sleep=sleeps)
    reply = await Retrying(inner, policy).generate(LLMRequest(messages=[]))
    assert reply.text == "ok"
    assert sleeps.waits == [7.0, 1.0]  # retry_after, then 0.5 * 2**1
    assert len(provider.requests) == 3


async def test_retry_stops_at_the_limit_and_never_retries_permanent_errors() -> None:
    sleeps = Sleeps()
    inner, provider = scripted(*(ServerUnavailableError("down") for _ in range(3)))
    policy = LLMRetryPolicy(attempts=3, jitter=0.0, sleep=sleeps)
    with pytest.raises(ServerUnavailableError):
        await Retrying(inner, policy).generate(LLMRequest(messages=[]))
    assert len(provider.requests) == 3
    inner, provider = scripted(AuthenticationError("bad key"))
    with pytest.raises(AuthenticationError):
        await Retrying(inner, policy).generate(LLMRequest(messages=[]))
    assert len(provider.requests) == 1
    inner, provider = scripted(RateLimitedError("come back tomorrow", retry_after=86400))
    with pytest.raises(RateLimitedError):  # far longer than max_retry_after: not waited for
        await Retrying(inner, policy).generate(LLMRequest(messages=[]))
    assert len(provider.requests) == 1


async def test_a_stream_is_retried_only_before_its_first_item() -> None:
    sleeps = Sleeps()
    inner, provider = scripted(ServerUnavailableError("down"), "hello world")
    policy = LLMRetryPolicy(attempts=2, jitter=0.0, sleep=sleeps)
    stream = Retrying(inner, policy).stream(LLMRequest(messages=[]))
    texts = [item.text async for item in stream if isinstance(item, TextDelta)]
    assert "".join(texts) == "hello world"
    assert len(texts) > 1
    assert stream.response is not None
    assert stream.response.text == "hello world"
    assert len(provider.requests) == 2


async def test_fallback_moves_to_the_next_model_on_chosen_errors_only() -> None:
    first, _ = scripted(RateLimitedError("busy"), name="big")
    second, _ = scripted("from the second", name="small")
    fallback = Fallback([first, second])
    assert fallback.name == "big"
    assert (await fallback.generate(LLMRequest(messages=[]))).text == "from the second"
    first, _ = scripted(AuthenticationError("bad key"))
    second, p2 = scripted("unused")
    with pytest.raises(AuthenticationError):
        await Fallback([first, second]).generate(LLMRequest(messages=[]))
    assert p2.requests == []
    first, _ = scripted(ServerUnavailableError("down"))
    second, _ = scripted("streamed fallback")
    stream = Fallback([first, second]).stream(LLMRequest(messages=[]))
    assert (await stream.get_response()).text == "streamed fallback"
    with pytest.raises(ValueError, match="at least one"):
        Fallback([])


async def test_get_model_parses_specs_and_splits_defaults_from_provider_options() -> None:
    model = get_model("test:m1", responses=["hi"], temperature=0.1)
    assert model.spec == "test:m1"
    assert model.defaults == {"temperature": 0.1}
    assert (await model.generate("x")).text == "hi"
    for bad in ("no-colon", ":model", "openai:"):
        with pytest.raises(LLMConfigurationError, match="provider:model"):
            get_model(bad)
    with pytest.raises(UnknownProviderError, match=r"known providers: .*openai"):
        get_model("nope:x")
    with pytest.raises(LLMConfigurationError, match="does not take these options"):
        get_model("demo:x", colour="red")


def test_the_model_comes_from_configuration_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMGINE_MODEL", "test:configured")
    assert get_model().spec == "test:configured"
    monkeypatch.delenv("LLMGINE_MODEL")
    assert get_model(trace=False).spec == default_model()


def test_without_configuration_the_local_model_else_the_demo(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LLMGINE_MODEL", raising=False)
    monkeypatch.setattr("llmgine.local.local_model_installed", lambda name="smollm2": True)
    assert default_model() == LOCAL_MODEL == "local:smollm2"
    monkeypatch.setattr("llmgine.local.local_model_installed", lambda name="smollm2": False)
    assert default_model() == DEFAULT_MODEL == "demo:llmgine-demo"
    assert get_model().spec == "demo:llmgine-demo"


def test_providers_are_listed_with_what_they_need(monkeypatch: pytest.MonkeyPatch) -> None:
    names = [p.name for p in list_providers()]
    assert {"openai", "anthropic", "gemini", "demo", "test"} <= set(names)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    assert not provider_info("anthropic").has_key
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-x")
    assert provider_info("anthropic").has_key
    assert provider_info("demo").offline
    assert provider_info("demo").has_key


async def test_third_party_providers_register_and_refuse_duplicates() -> None:
    register_provider("echo", lambda **o: ScriptedProvider([lambda r: r.messages[-1].text]))
    try:
        assert (await get_model("echo:any").generate("parrot")).text == "parrot"
        with pytest.raises(ValueError, match="already registered"):
            register_provider("echo", ScriptedProvider)
        with pytest.raises(ValueError, match="without ':'"):
            register_provider("a:b", ScriptedProvider)
    finally:
        from llmgine.llm import _registry

        _registry._PROVIDERS.pop("echo")


async def test_an_exhausted_script_says_how_to_add_more() -> None:
    model = get_model("test:x")
    with pytest.raises(LLMConfigurationError, match="no scripted answer left"):
        await model.generate("?")


def test_openai_compatible_servers_are_providers_of_their_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OLLAMA_API_KEY", raising=False)
    model = get_model("ollama:llama3.2")  # a local server: no key needed
    assert model.spec == "ollama:llama3.2"
    assert provider_info("ollama").extra == "openai"
    assert {"vllm", "llamacpp"} <= {p.name for p in list_providers()}


async def test_a_rate_limit_that_says_waiting_will_not_help_is_not_retried() -> None:
    quota = RateLimitedError("out of quota", retry_after=1.0)
    quota.retryable = False  # how an adapter marks an exhausted quota
    inner, provider = scripted(quota, "unused")
    policy = LLMRetryPolicy(attempts=3, jitter=0.0, sleep=Sleeps())
    with pytest.raises(RateLimitedError):
        await Retrying(inner, policy).generate(LLMRequest(messages=[]))
    assert len(provider.requests) == 1


def test_retry_after_headers_in_every_form() -> None:
    from datetime import UTC, datetime, timedelta
    from email.utils import format_datetime

    from llmgine.llm._provider import retry_after_seconds

    assert retry_after_seconds({"retry-after-ms": "1500"}) == 1.5
    assert retry_after_seconds({"retry-after": "7"}) == 7.0
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 < (retry_after_seconds({"retry-after": later}) or 0) <= 30
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({}) is None


def test_the_llm_layer_needs_neither_pandas_nor_opentelemetry() -> None:
    """`pip install "llmgine[openai]"` has no observability extra: nothing may need it."""
    import subprocess
    import sys

    code = (
        "import asyncio, sys\n"
        "from llmgine.llm import get_model\n"
        "reply = asyncio.run(get_model('demo:x', latency=0).generate('hi'))\n"
        "assert reply.text\n"
        "heavy = [m for m in ('pandas', 'opentelemetry') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=DEADLINE
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


async def test_a_request_that_asks_to_stream_is_streamed_even_through_generate() -> None:
    inner, provider = scripted("streamed answer")
    reply = await Model(inner).generate("x", stream=True)
    assert reply.text == "streamed answer"
    assert reply.time_to_first_token_ms is not None  # only a stream measures it
    assert provider.requests[0].stream


# -- every field a Model takes is validated before a provider sees it ----------------------


class Answer(BaseModel):
    value: int


def _entry_points(model: Model) -> dict[str, Callable[..., Awaitable[Any]]]:
    """Each way to call a model, taking a prompt and request fields."""

    async def streamed(prompt: Any, **params: Any) -> Any:
        async with model.stream(prompt, **params) as stream:
            return [item async for item in stream]

    async def structured(prompt: Any, **params: Any) -> Any:
        return await model.generate_structured(prompt, Answer, **params)

    async def looped(prompt: Any, **params: Any) -> Any:
        return await run_tool_loop(model, prompt, [], **params)

    return {
        "generate": model.generate,
        "stream": streamed,
        "generate_structured": structured,
        "run_tool_loop": looped,
    }


@pytest.mark.parametrize("entry", ["generate", "stream", "generate_structured", "run_tool_loop"])
@pytest.mark.parametrize("as_request", [True, False])
async def test_overrides_are_validated_like_the_request_on_every_entry_point(
    entry: str, as_request: bool
) -> None:
    inner, provider = scripted('{"value": 1}')
    model = Model(inner)
    call = _entry_points(model)[entry]
    prompt = LLMRequest(messages=[ChatMessage.user("x")]) if as_request else "x"
    with pytest.raises(InvalidRequestError) as caught:
        await call(prompt, temperature="hot", max_tokens=-5)
    error = caught.value
    assert isinstance(error, ValueError)
    message = str(error)
    assert message.startswith("invalid request for test:m: temperature: Input should be a valid")
    assert "max_tokens: Value error, must be positive" in message
    assert [e["loc"] for e in error.errors] == [["temperature"], ["max_tokens"]]
    assert provider.requests == []  # nothing reached the provider
    # Valid overrides are converted as the request itself would be.
    await call(prompt, temperature="0.5", max_tokens=7)
    assert (provider.requests[0].temperature, provider.requests[0].max_tokens) == (0.5, 7)


async def test_model_defaults_are_validated_when_the_model_is_made() -> None:
    with pytest.raises(InvalidRequestError, match=r"invalid model defaults for test:m.*top_p"):
        get_model("test:m", top_p="most")
    with pytest.raises(InvalidRequestError, match="timeout: Value error, must be positive"):
        Model(scripted()[0], defaults={"timeout": 0})
    with pytest.raises(TypeError, match="output_type must be a pydantic model class"):
        await get_model("test:m", responses=["{}"]).generate_structured("x", dict)  # type: ignore[type-var]


def test_an_empty_spec_is_an_error_and_only_no_argument_means_the_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LLMGINE_MODEL", "test:configured")
    for empty in ("", "   ", "\n"):
        with pytest.raises(LLMConfigurationError, match=r"the model spec is empty.*get_model\(\)"):
            get_model(empty)
    assert get_model().spec == "test:configured"
    assert get_model(None).spec == "test:configured"


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def plain_function(city: str) -> str:
    return city


async def test_tools_take_tool_functions_tools_specs_managers_and_none() -> None:
    inner, provider = scripted("a", "b", "c", "d")
    model = Model(inner, defaults={"tools": [get_weather]})
    spec = get_weather.spec()
    await model.generate("x")
    await model.generate(LLMRequest(messages=[ChatMessage.user("x")]), tools=None)
    await model.generate("x", tools=ToolManager([get_weather]))
    await model.generate(LLMRequest(messages=[ChatMessage.user("x")]), tools=get_weather)
    assert [r.tools for r in provider.requests] == [[spec], [], [spec], [spec]]
    plain = r"tools: Value error, tools\[0\] is the plain function 'plain_function'"
    with pytest.raises(InvalidRequestError, match=plain):
        await model.generate("x", tools=[plain_function])
    with pytest.raises(InvalidRequestError, match=r"decorate it with @tool"):
        get_model("test:m", tools=[plain_function])
    with pytest.raises(InvalidRequestError, match="tools is a list of tools"):
        await model.generate("x", tools=3)
