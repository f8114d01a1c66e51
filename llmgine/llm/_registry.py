"""Which providers exist, and `get_model("provider:model")`, the one way in.

Built-in providers register lazily (their SDKs import only when first used). Third-party
providers register with `register_provider`. The model may also come from configuration:
``get_model()`` reads ``LLMGINE_MODEL`` (e.g. ``LLMGINE_MODEL=anthropic:claude-sonnet-4-5``),
so switching provider needs no code change.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llmgine._tracing import CallTracer
from llmgine.errors import (
    LLMConfigurationError,
    MissingCredentialsError,
    ProviderNotInstalledError,
    UnknownProviderError,
)
from llmgine.llm._model import REQUEST_FIELDS, LanguageModel, Model, ProviderModel
from llmgine.llm._provider import Provider
from llmgine.llm._wrappers import LLMRetryPolicy, Retrying, Traced

if TYPE_CHECKING:
    from llmgine.recording._env import RecordingOption

__all__ = [
    "DEFAULT_MODEL",
    "LOCAL_MODEL",
    "MODEL_VARIABLE",
    "ProviderInfo",
    "default_model",
    "get_model",
    "list_providers",
    "provider_info",
    "register_provider",
]

MODEL_VARIABLE = "LLMGINE_MODEL"
_RECORDING_VARIABLES = frozenset({"LLMGINE_CASSETTE", "LLMGINE_CASSETTE_MODE"})
DEFAULT_MODEL = "demo:llmgine-demo"  # without keys and without the local model
LOCAL_MODEL = "local:smollm2"  # without keys, where the local model is installed


def default_model() -> str:
    """The model `get_model()` uses when none is named: ``$LLMGINE_MODEL``, else the local
    model where it is installed (a real model, offline), else the demo (a simulation)."""
    configured = os.environ.get(MODEL_VARIABLE)
    if configured:
        return configured
    from llmgine.local import local_model_installed

    return LOCAL_MODEL if local_model_installed() else DEFAULT_MODEL


ProviderFactory = Callable[..., Provider]


@dataclass(frozen=True)
class ProviderInfo:
    """A registered provider: how to make it, and what it needs."""

    name: str
    factory: ProviderFactory
    key_variables: tuple[str, ...] = ()
    extra: str | None = None  # the pip extra that installs its SDK
    offline: bool = False  # needs no key and no network
    server_address: str | None = None  # for spans, when the adapter has no base_url
    description: str = ""

    @property
    def has_key(self) -> bool:
        """Whether a key is available from the environment (always, for offline ones)."""
        return (
            self.offline
            or not self.key_variables
            or any(os.environ.get(v) for v in self.key_variables)
        )


_PROVIDERS: dict[str, ProviderInfo] = {}


def register_provider(
    name: str,
    factory: ProviderFactory,
    *,
    key_variables: tuple[str, ...] = (),
    extra: str | None = None,
    offline: bool = False,
    server_address: str | None = None,
    description: str = "",
    replace: bool = False,
) -> ProviderInfo:
    """Make ``"name:model"`` work in `get_model`. ``factory(**options)`` builds the provider.

    Registering a name again is an error unless ``replace=True``.
    """
    if ":" in name or not name:
        raise ValueError(f"a provider name is a non-empty word without ':', got {name!r}")
    if name in _PROVIDERS and not replace:
        raise ValueError(
            f"a provider named {name!r} is already registered; pass replace=True to replace it"
        )
    info = ProviderInfo(name, factory, key_variables, extra, offline, server_address, description)
    _PROVIDERS[name] = info
    return info


def list_providers() -> list[ProviderInfo]:
    """Every registered provider, in registration order."""
    return list(_PROVIDERS.values())


def provider_info(name: str) -> ProviderInfo:
    info = _PROVIDERS.get(name)
    if info is None:
        known = ", ".join(sorted(_PROVIDERS))
        raise UnknownProviderError(
            f"no provider named {name!r}; known providers: {known}. Third-party providers "
            "register with llmgine.llm.register_provider(...)",
            provider=name,
        )
    return info


def _parse(spec: str | None) -> tuple[str, str]:
    if spec is not None and not spec.strip():
        # An empty string is a mistake (an unset variable, a blank field), not a request
        # for the default: only leaving the argument out means that.
        raise LLMConfigurationError(
            f"the model spec is empty ({spec!r}); name a model as 'provider:model' (e.g. "
            f"'openai:gpt-4o-mini', 'demo:any'), or call get_model() without one for "
            f"${MODEL_VARIABLE}, else the local model or the offline demo"
        )
    spec = spec or default_model()
    provider, sep, model = spec.partition(":")
    if not sep or not provider or not model:
        raise LLMConfigurationError(
            f"a model is named 'provider:model' (e.g. 'openai:gpt-4o-mini', "
            f"'anthropic:claude-sonnet-4-5', 'gemini:gemini-2.5-flash', 'demo:any'); got {spec!r}"
        )
    return provider, model


def get_model(
    spec: str | None = None,
    *,
    retry: LLMRetryPolicy | bool = True,
    trace: bool = True,
    tracer: CallTracer | None = None,
    recording: RecordingOption = None,
    recording_mode: str | None = None,
    **options: Any,
) -> Model:
    """The model ``spec`` names (``"provider:model"``; by default ``$LLMGINE_MODEL``, else
    the local model where it is installed, else the offline demo; an empty spec is an
    `LLMConfigurationError`, not the default).

    ``options`` that are request fields (temperature, max_tokens, tools, options, ...)
    become the model's defaults; the rest go to the provider (api_key, base_url, timeout,
    http_client, ...). Transient failures are retried with backoff (``retry=False`` to turn
    that off, or an `LLMRetryPolicy`). Each call is traced by ``tracer`` (``trace=False``:
    not at all): by default the slot `llmgine.observability.enable` plugs its tracer into,
    so a call is a GenAI span whenever observability is on; ``tracer_for(bus)`` traces
    only while that bus is observed (what `LLMService` gives the models it makes).

    ``recording`` answers calls from recorded ones and records live answers
    (`llmgine.recording`): a `Cassette` or `SQLiteCache`, a path (``.jsonl``: a cassette),
    True (the cache in the user's cache directory) or False (none, whatever the
    environment says); ``recording_mode`` is ``read-write`` (the default), ``replay``,
    ``record``, ``compare`` (call live, compare with the recording) or ``off``. Without
    them, ``$LLMGINE_CASSETTE`` and ``$LLMGINE_CASSETTE_MODE`` are read. Recording sits
    inside the tracing, so a replayed call is a span too (``llmgine.cache.hit``). With a
    recording, a provider that cannot be made here (no key, no SDK) still replays; only a
    call that must reach it fails.

    Example:
        model = get_model("anthropic:claude-sonnet-4-5", temperature=0.2)
        reply = await model.generate("Hello!")
    """
    provider_name, model_name = _parse(spec)
    info = provider_info(provider_name)
    defaults = {k: v for k, v in options.items() if k in REQUEST_FIELDS}
    provider_options = {k: v for k, v in options.items() if k not in REQUEST_FIELDS}
    recorded = None
    asked = recording is not None or recording_mode is not None
    if asked or any(os.environ.get(name) for name in _RECORDING_VARIABLES):
        from llmgine.recording._env import recording_for

        recorded = recording_for(recording, recording_mode)
    model: LanguageModel
    adapter: Provider | None
    try:
        made = info.factory(**provider_options)
    except TypeError as exc:
        raise LLMConfigurationError(
            f"{provider_name} does not take these options: {exc}", provider=provider_name
        ) from exc
    except (MissingCredentialsError, ProviderNotInstalledError) as exc:
        if recorded is None:
            raise
        from llmgine.recording._env import Unavailable

        # Recorded answers need neither key nor SDK: only a call that misses fails.
        adapter, model = None, Unavailable(provider_name, model_name, exc)
    else:
        adapter, model = made, ProviderModel(made, model_name)
    if recorded is not None:
        from llmgine.recording import Recorded

        model = Recorded(model, recorded[0], mode=recorded[1])
    if trace:
        model = _traced(model, adapter, info, tracer)
    if retry is not False:
        model = Retrying(model, retry if isinstance(retry, LLMRetryPolicy) else None)
    return Model(model, defaults=defaults)


def _traced(
    model: LanguageModel, adapter: Provider | None, info: ProviderInfo, tracer: CallTracer | None
) -> Traced:
    # The address actually called (base_url, its environment variable, the default).
    host, port = adapter.server if adapter is not None else (None, None)
    server = None
    if adapter is not None and adapter.address_after_start:
        live = adapter
        server = lambda: live.server  # noqa: E731
    return Traced(
        model,
        tracer=tracer,
        server_address=host or info.server_address,
        server_port=port,
        server=server,
    )


def _lazy(module: str, attribute: str, **fixed: Any) -> ProviderFactory:
    def factory(**options: Any) -> Provider:
        cls = getattr(importlib.import_module(module), attribute)
        provider: Provider = cls(**{**fixed, **options})
        return provider

    return factory


def _register_builtins() -> None:
    register_provider(
        "openai",
        _lazy("llmgine.llm.providers.openai", "OpenAIProvider"),
        key_variables=("OPENAI_API_KEY",),
        extra="openai",
        server_address="api.openai.com",
        description="OpenAI (Chat Completions and the Responses API)",
    )
    register_provider(
        "anthropic",
        _lazy("llmgine.llm.providers.anthropic", "AnthropicProvider"),
        key_variables=("ANTHROPIC_API_KEY",),
        extra="anthropic",
        server_address="api.anthropic.com",
        description="Anthropic (Messages API)",
    )
    register_provider(
        "gemini",
        _lazy("llmgine.llm.providers.gemini", "GeminiProvider"),
        key_variables=("GEMINI_API_KEY", "GOOGLE_API_KEY"),
        extra="gemini",
        server_address="generativelanguage.googleapis.com",
        description="Google Gemini (Developer API)",
    )
    # OpenAI-compatible local servers, each its own provider ("ollama:llama3.2"); their
    # addresses come from base_url=, else <NAME>_BASE_URL (e.g. LLAMACPP_BASE_URL), else
    # the usual port (COMPATIBLE_SERVERS, with the adapter).
    for server, description in (
        ("ollama", "Ollama's OpenAI-compatible server (local, no key)"),
        ("vllm", "vLLM's OpenAI-compatible server (local)"),
        ("llamacpp", "llama.cpp's server (local)"),
    ):
        register_provider(
            server,
            _lazy("llmgine.llm.providers.openai", "OpenAICompatibleProvider", name=server),
            extra="openai",
            description=description,
        )
    register_provider(
        "local",
        _lazy("llmgine.llm.providers.local", "LocalProvider"),
        extra="local",
        offline=True,
        description="a real model on this machine (llama.cpp's server), offline, no key",
    )
    from llmgine.llm._demo import DemoProvider
    from llmgine.llm._testing import ScriptedProvider

    register_provider(
        "demo",
        DemoProvider,
        offline=True,
        description="offline demo: a labelled simulation, no model behind it",
    )
    register_provider(
        "test", ScriptedProvider, offline=True, description="offline scripted model for tests"
    )


_register_builtins()
