"""The unified LLM interface: one request/response contract for every provider.

Example:
    from llmgine.llm import get_model

    model = get_model("openai:gpt-4o-mini")   # or "anthropic:...", "gemini:...", "demo:x"
    reply = await model.generate("Name three primes.")
    print(reply.text, reply.usage, reply.cost_usd)

Reference
=========

The unified LLM interface
-------------------------

```python
from llmgine.llm import ChatMessage, get_model

model = get_model("openai:gpt-4o-mini", temperature=0.2)   # or "anthropic:claude-sonnet-4-5",
reply = await model.generate("Name three primes.")        # "gemini:gemini-2.5-flash", "demo:x"
print(reply.text, reply.usage, reply.cost_usd, reply.finish_reason)

async with model.stream([ChatMessage.system("Be brief."), ChatMessage.user("Hi")]) as stream:
    async for item in stream:          # TextDelta, ReasoningDelta, ToolCallDelta, ...
        ...
print(stream.response)                                    # the same LLMResponse generate() gives
```

**Switching provider is configuration**: change the string, or leave it out and set
`LLMGINE_MODEL=anthropic:claude-sonnet-4-5` (with nothing set, `get_model()` is the offline
demo; an empty or blank spec, `get_model("")`, is an `LLMConfigurationError`, not the
default). Keys come from `OPENAI_API_KEY`, `ANTHROPIC_API_KEY`, `GEMINI_API_KEY` /
`GOOGLE_API_KEY`, `<NAME>_API_KEY` for OpenAI-compatible servers (`LLAMACPP_API_KEY`, ...),
or `api_key=`; a missing one is a `MissingCredentialsError` naming the variable. Every key
llmgine is handed, whatever its shape, is known to the redactor from that moment, so a
server that echoes it cannot put it in a span, event, log or error (keys under 6
characters cannot be redacted safely: a warning says so). Addresses come from `base_url=`,
else the environment (`OPENAI_BASE_URL`, `OLLAMA_BASE_URL`, `VLLM_BASE_URL`,
`LLAMACPP_BASE_URL`, `ANTHROPIC_BASE_URL`, `GOOGLE_GEMINI_BASE_URL`), else the usual one,
so `LLMGINE_MODEL=llamacpp:qwen LLAMACPP_BASE_URL=http://127.0.0.1:8081/v1` reaches a server
on any port with no code (spans record the `server.address` and `server.port` actually
called). Keyword arguments to `get_model` that are request fields (`temperature`,
`max_tokens`, `tools`, ...) become defaults; the rest go to the provider (`api_key`,
`base_url`, `timeout`, `http_client`). `list_providers()` says which exist and which have a key.
Defaults, and the request fields a call passes (`generate`, `stream`, `generate_structured`,
the tool loop, also over a ready `LLMRequest`), are validated as `LLMRequest` validates them
before anything reaches the provider: `temperature="hot"` is an `InvalidRequestError` (a
`ValueError`) naming each wrong field.

**Contracts** (`llmgine.llm`, pydantic models): a conversation is `ChatMessage`s (`system`,
`user`, `assistant`, `tool`) of typed parts with a `kind` discriminator: `TextPart`,
`ImagePart` / `FilePart` (bytes or URL), `ReasoningPart` (with the provider's opaque
`signature`, sent back to that provider next turn), `ToolCallPart` (id, name, parsed JSON
arguments; unparseable ones kept in `invalid_arguments`), `ToolResultPart` (content,
`is_error`). `Conversation` serialises to JSON and replays on another provider.
`LLMRequest` has model, messages, tools (`ToolSpec`s; `@tool` functions, `Tool`s, a
`ToolManager`, dicts or `None` are taken too, and a plain function is refused with how to
make it a tool), `tool_choice` (`"auto"`, `"none"`, `"required"`,
`ToolName("x")`), `parallel_tool_calls`, `response_format`, temperature, max tokens, top-p,
stop, seed, `reasoning` (effort and/or token budget), timeout and typed provider
`options`. `LLMResponse` has the parts, `finish_reason` normalised (`stop`, `length`,
`tool_calls`, `content_filter`, `error`, `other`) and `raw_finish_reason`, `usage`,
`cost_usd`, provider, model, response id, latency, time to first token, `rate_limit` and
`raw` (the provider's response as plain JSON, kept aside). `rate_limit` is a `RateLimit`:
what the answer's headers said is left of the caller's budgets (`requests_remaining`,
`tokens_remaining`, their `*_limit`, and `*_reset_s`, seconds until each is whole again),
read from OpenAI's `x-ratelimit-*` and Anthropic's `anthropic-ratelimit-*` headers (of
Anthropic's token budgets, the tightest); `None` where none are sent (Gemini, local
servers) and on a replayed answer. Only those numbers are read, no other header, and a
value that does not parse is left `None`, never an error. `Usage` is one shape streamed or not:
input (cached included), output, cache read, cache write, reasoning tokens, total. A count
the provider did not report is `None` (a stream from a server that sends no usage has
`Usage()` with every count `None`, no token attributes on its span, and no cost), never a
made-up 0.

**Cost** comes from [genai-prices](https://pypi.org/project/genai-prices/)' maintained table
(cache and tiered prices included; checked against `genai_prices.calc_price` to the last
digit) and is `None` for a model it does not know, never a guess.

**Providers** (`llmgine.llm.providers`, one file each, SDKs imported lazily with an error
naming the extra): `openai` (Chat Completions and the Responses API, chosen per model or by
`OpenAIOptions(api=...)`), `ollama` / `vllm` / `llamacpp` (any OpenAI-compatible server, by
`base_url`), `anthropic` (Messages: system, tools, thinking with signatures, prompt-cache
usage), `gemini` (generateContent and streaming, function calling, thought parts and
thought signatures, response schemas). Each adapter is a translator of the API's wire JSON
(`llmgine/llm/providers/README.md`): the request out as the body, sent with the SDK
client's own raw call; each stream event and a whole answer parsed into the same items for
the one `StreamAssembler` every provider shares, so a streamed answer and the same answer
unstreamed are equal `LLMResponse`s. Tools with
every `tool_choice` and parallel calls; structured output from a pydantic model with
`model.generate_structured(prompt, MyModel)` (native JSON schema, adapted to each provider's
schema rules, validated, re-asked with the errors up to `max_attempts`, result in
`response.parsed`); images and files in. Provider-specific features go through typed
options (`OpenAIOptions`, `AnthropicOptions`, `GeminiOptions`, each with `extra_body` for
anything else); a request can carry options for several providers, and each reads only
its own, so switching providers never breaks a request. Anthropic has no `seed`: it is
ignored with a logged warning rather than failing the switch.

**One error tree, one table** (drawn in `llmgine/errors.py`; the table is
`llmgine/llm/_error_table.py`, the same for every provider): `AuthenticationError` 401,
`PermissionDeniedError` 403, `ModelNotFoundError` 404 naming a model, `EndpointNotFoundError`
404 from a path where no API is (a wrong `base_url`), `BadRequestError` 400/413/422 (with
`ContextTooLongError` and `ContentFilteredError`, from the body's codes and words: OpenAI's
`context_length_exceeded`, llama.cpp's `exceed_context_size_error`, Anthropic's and
Gemini's messages), `RateLimitedError` 429 (with `retry_after` from `retry-after-ms`,
`retry-after` seconds or date, Google's `RetryInfo`, or "try again in 1.5s"; an exhausted
quota is not retryable), `ServerUnavailableError` 5xx/529/overloaded and error events
mid-stream (`server_error`, `overloaded_error`, `UNAVAILABLE`), `LLMTimeoutError` (no
answer, or a 408), `LLMConnectionError`. Messages give the status once, the provider's
words, and a hint naming what was actually used: the variable the key came from (or that
no key was sent), the `base_url` called. Two more say an answer was not what the API
documents: `MalformedResponseError` (a body or stream event that is not JSON or not the
API's shape, a 200 from a web page or proxy; `.snippet` quotes what arrived, redacted) and
`IncompleteResponseError` (a stream that ended before the API's end marker: Chat's
`finish_reason`, Anthropic's `message_stop`, the Responses API's `response.completed`,
Gemini's `finishReason`; `.partial` holds what arrived). A truncated answer never passes
for a whole one: the error is retryable, so `generate()` asks again, and a stream already
being read raises it to the reader. SDK
exceptions are translated at one boundary (`Provider`) with the original as `__cause__`.
**Wrappers.** Cross-cutting concerns wrap a model through one base, `WrapperModel`: it
holds the model it wraps (`wrapped`) and forwards everything, so a wrapper overrides only
what it changes (a wrapper that overrides only `generate` still streams). `find(kind)`
reaches a layer underneath (`model.find(ProviderModel)`, `model.find(Traced)`) and
`innermost` the bottom one. `get_model` builds `Model(Retrying(Traced(ProviderModel)))`;
`Model` is a wrapper too, so the models you hold go wherever a `LanguageModel` goes.
**Retry** (`Retrying`, on by default in `get_model`) backs off and honours
`retry_after`; the SDKs' own retries are off, so they never stack. A stream is retried only
before its first item. **Fallback** takes the models you hold and moves on for chosen
errors: `Model(Fallback([get_model("openai:gpt-4o-mini"), get_model("anthropic:...")]))`
(each keeps its own defaults, retry and tracing). **Tracing** (`Traced`) makes each call a
GenAI span with the `CallTracer` it is given (`get_model(..., tracer=...)`), never found
in a global: by default the slot `llmgine.observability.enable()` plugs its tracer into,
so calls are traced whenever observability is on; `tracer_for(bus)` is a bus's slot,
plugged while observability observes that bus, which `LLMService`, a `ToolManager` on a
bus and the tool loop give what they make, so a bus that is not observed records nothing;
`NO_TRACER` records nothing.

**Offline**: `demo:` is a labelled simulation with no model behind it: its answer says so,
says how to get real answers, and echoes what a model would have received (messages and
roles, input tokens, system prompt, tools, settings). It is deterministic, streams at a
realistic pace with plausible token usage, calls a tool the prompt names (or `tool_choice`
forces) with valid arguments, returns a valid instance for structured output, stops at
`max_tokens`, through the same code paths, marked `response.demo = True` (and free);
`test:` answers from a script
(`get_model("test:m", responses=["hi", RateLimitedError(...), fn])`) and records requests.

**On the bus**: `LLMService(bus, "openai:gpt-4o-mini").install()` answers
`Generate(request=..., model=..., stream=...)` commands and publishes `LLMCallStarted`,
`LLMStreamDelta` (batched: at most every 50 ms or 400 characters), `LLMCallCompleted`
(usage, cost, latency, time to first token) or `LLMCallFailed`, with the session id. The
call's GenAI span is the command's span (it carries the command's id).

**In worker processes**: over NATS (`llmgine.bus.nats`), `llmgine worker llmgine.llm:worker`
runs a process whose `WorkerService` answers `Generate` for any model spec with the
worker's own keys and settings (each model made once, closed when the worker stops; its
models do not retry: the caller does). `Model(RemoteModel(bus, "openai:gpt-4o-mini"))`
is a model whose calls such workers make: each is a `Generate` the bus sends to one of
them; an `LLMError` raised there is raised here as the same class (a 429 keeps its
``retry_after``), and no worker serving is a `NoWorkerError` that says what to start. A
distributed `llmgine.sweep.Sweep` calls its models this way.

**Tested against real recorded traffic**: `tests/llm/cassettes/` holds 42 real HTTP
recordings of the three APIs (copied with their attribution, `SOURCES.md`); every one is
replayed through the official SDK over an httpx transport and the unified responses
asserted: text, tool calls and arguments, parallel calls, thinking and signatures sent
back, structured output, usage with cache and reasoning tokens, finish reasons, error
classes for the 4xx recordings, and stream = non-stream.
"""

from llmgine._tracing import (
    NO_TRACER,
    CallTracer,
    LLMCallSpan,
    ToolCallSpan,
    TracerSlot,
    tracer_for,
)
from llmgine.llm._cost import cost_usd
from llmgine.llm._demo import DemoProvider
from llmgine.llm._model import LanguageModel, Model, Prompt, ProviderModel, WrapperModel
from llmgine.llm._parts import (
    ChatMessage,
    Conversation,
    FilePart,
    ImagePart,
    Part,
    ReasoningPart,
    Role,
    TextPart,
    ToolCallPart,
    ToolResultPart,
)
from llmgine.llm._provider import Provider, import_sdk, resolve_api_key
from llmgine.llm._rate_limit import RateLimit
from llmgine.llm._registry import (
    DEFAULT_MODEL,
    LOCAL_MODEL,
    MODEL_VARIABLE,
    ProviderInfo,
    default_model,
    get_model,
    list_providers,
    provider_info,
    register_provider,
)
from llmgine.llm._request import (
    LLMRequest,
    ProviderOptions,
    Reasoning,
    ResponseFormat,
    ToolChoice,
    ToolName,
    ToolSpec,
)
from llmgine.llm._response import FinishReason, LLMResponse, Usage
from llmgine.llm._service import (
    Generate,
    LLMCallCompleted,
    LLMCallFailed,
    LLMCallStarted,
    LLMService,
    LLMStreamDelta,
)
from llmgine.llm._stream import (
    Finish,
    ReasoningDelta,
    ResponseMeta,
    ResponseStream,
    StreamAssembler,
    StreamItem,
    TextDelta,
    ToolCallDelta,
    UsageUpdate,
    items_from_parts,
)
from llmgine.llm._testing import ScriptedProvider
from llmgine.llm._worker import RemoteModel, WorkerService, worker
from llmgine.llm._wrappers import Fallback, LLMRetryPolicy, Retrying, Traced

__all__ = [  # noqa: RUF022 - plainly sorted, as tests/test_public_api.py checks
    "CallTracer",
    "ChatMessage",
    "Conversation",
    "DEFAULT_MODEL",
    "DemoProvider",
    "Fallback",
    "FilePart",
    "Finish",
    "FinishReason",
    "Generate",
    "ImagePart",
    "LLMCallCompleted",
    "LLMCallFailed",
    "LLMCallSpan",
    "LLMCallStarted",
    "LLMRequest",
    "LLMResponse",
    "LLMRetryPolicy",
    "LLMService",
    "LLMStreamDelta",
    "LOCAL_MODEL",
    "LanguageModel",
    "MODEL_VARIABLE",
    "Model",
    "NO_TRACER",
    "Part",
    "Prompt",
    "Provider",
    "ProviderInfo",
    "ProviderModel",
    "ProviderOptions",
    "RateLimit",
    "Reasoning",
    "ReasoningDelta",
    "ReasoningPart",
    "RemoteModel",
    "ResponseFormat",
    "ResponseMeta",
    "ResponseStream",
    "Retrying",
    "Role",
    "ScriptedProvider",
    "StreamAssembler",
    "StreamItem",
    "TextDelta",
    "TextPart",
    "ToolCallDelta",
    "ToolCallPart",
    "ToolCallSpan",
    "ToolChoice",
    "ToolName",
    "ToolResultPart",
    "ToolSpec",
    "Traced",
    "TracerSlot",
    "Usage",
    "UsageUpdate",
    "WorkerService",
    "WrapperModel",
    "cost_usd",
    "default_model",
    "get_model",
    "import_sdk",
    "items_from_parts",
    "list_providers",
    "provider_info",
    "register_provider",
    "resolve_api_key",
    "tracer_for",
    "worker",
]
