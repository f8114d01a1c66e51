"""The unified LLM interface: one request/response contract for every provider.

Example:
    from llmgine.llm import get_model

    model = get_model("openai:gpt-4o-mini")   # or "anthropic:...", "gemini:...", "demo:x"
    reply = await model.generate("Name three primes.")
    print(reply.text, reply.usage, reply.cost_usd)
"""

from llmgine.llm._cost import cost_usd
from llmgine.llm._demo import DemoProvider
from llmgine.llm._model import LanguageModel, Model, Prompt, ProviderModel
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
from llmgine.llm._registry import (
    DEFAULT_MODEL,
    MODEL_VARIABLE,
    ProviderInfo,
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
from llmgine.llm._wrappers import Fallback, LLMRetryPolicy, Retrying, Traced

__all__ = [  # noqa: RUF022 - plainly sorted, as tests/test_public_api.py checks
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
    "LLMCallStarted",
    "LLMRequest",
    "LLMResponse",
    "LLMRetryPolicy",
    "LLMService",
    "LLMStreamDelta",
    "LanguageModel",
    "MODEL_VARIABLE",
    "Model",
    "Part",
    "Prompt",
    "Provider",
    "ProviderInfo",
    "ProviderModel",
    "ProviderOptions",
    "Reasoning",
    "ReasoningDelta",
    "ReasoningPart",
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
    "ToolChoice",
    "ToolName",
    "ToolResultPart",
    "ToolSpec",
    "Traced",
    "Usage",
    "UsageUpdate",
    "cost_usd",
    "get_model",
    "import_sdk",
    "items_from_parts",
    "list_providers",
    "provider_info",
    "register_provider",
    "resolve_api_key",
]
