"""Every span and metric name llmgine writes, in one place.

The GenAI names follow the OpenTelemetry GenAI semantic conventions (still "development"
status upstream); when the spec renames something, this file is the one to change. Names
under ``llmgine.`` are our own.
"""

from __future__ import annotations

from typing import Final

# -- GenAI spans (https://opentelemetry.io/docs/specs/semconv/gen-ai/gen-ai-spans/) ---------
OPERATION_NAME: Final = "gen_ai.operation.name"
PROVIDER_NAME: Final = "gen_ai.provider.name"
CONVERSATION_ID: Final = "gen_ai.conversation.id"
REQUEST_MODEL: Final = "gen_ai.request.model"
REQUEST_TEMPERATURE: Final = "gen_ai.request.temperature"
REQUEST_TOP_P: Final = "gen_ai.request.top_p"
REQUEST_MAX_TOKENS: Final = "gen_ai.request.max_tokens"
REQUEST_SEED: Final = "gen_ai.request.seed"
REQUEST_STOP_SEQUENCES: Final = "gen_ai.request.stop_sequences"
REQUEST_CHOICE_COUNT: Final = "gen_ai.request.choice.count"
OUTPUT_TYPE: Final = "gen_ai.output.type"
RESPONSE_MODEL: Final = "gen_ai.response.model"
RESPONSE_ID: Final = "gen_ai.response.id"
RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
USAGE_CACHE_CREATION_INPUT_TOKENS: Final = "gen_ai.usage.cache_creation.input_tokens"
USAGE_REASONING_OUTPUT_TOKENS: Final = "gen_ai.usage.reasoning.output_tokens"
TOOL_NAME: Final = "gen_ai.tool.name"
TOOL_CALL_ID: Final = "gen_ai.tool.call.id"
TOOL_TYPE: Final = "gen_ai.tool.type"
TOOL_DESCRIPTION: Final = "gen_ai.tool.description"
# Content: recorded only when capture is on, and then redacted.
SYSTEM_INSTRUCTIONS: Final = "gen_ai.system_instructions"
INPUT_MESSAGES: Final = "gen_ai.input.messages"
OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
TOOL_CALL_ARGUMENTS: Final = "gen_ai.tool.call.arguments"
TOOL_CALL_RESULT: Final = "gen_ai.tool.call.result"

# gen_ai.operation.name values
OP_CHAT: Final = "chat"
OP_GENERATE_CONTENT: Final = "generate_content"
OP_TEXT_COMPLETION: Final = "text_completion"
OP_EMBEDDINGS: Final = "embeddings"
OP_EXECUTE_TOOL: Final = "execute_tool"
OP_INVOKE_AGENT: Final = "invoke_agent"

# -- general conventions --------------------------------------------------------------------
ERROR_TYPE: Final = "error.type"
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
SERVICE_NAME: Final = "service.name"

# -- GenAI metrics (https://opentelemetry.io/docs/specs/semconv/gen-ai/gen-ai-metrics/) ----
METRIC_TOKEN_USAGE: Final = "gen_ai.client.token.usage"
METRIC_OPERATION_DURATION: Final = "gen_ai.client.operation.duration"
TOKEN_TYPE: Final = "gen_ai.token.type"  # "input" or "output"
# The spec's advisory bucket boundaries.
TOKEN_USAGE_BUCKETS: Final = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip
DURATION_BUCKETS: Final = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip

# -- llmgine's own ----------------------------------------------------------------------------
COST_USD: Final = "llmgine.cost.usd"
TIME_TO_FIRST_TOKEN_MS: Final = "llmgine.llm.time_to_first_token_ms"
CACHE_HIT: Final = "llmgine.cache.hit"  # answered from a recording (llmgine.recording)
CACHE_ORIGINAL_COST_USD: Final = "llmgine.cache.original_cost_usd"  # what the recorded call cost
CACHE_SOURCE: Final = "llmgine.cache.source"  # the store a hit was replayed from
CACHE_DRIFT: Final = "llmgine.cache.drift"  # compare mode: same, changed or new
SESSION_ID: Final = "llmgine.session.id"
SESSION_NAME: Final = "llmgine.session.name"
SESSION_JOINED: Final = "llmgine.session.joined"  # a session another process opened
COMMAND_TYPE: Final = "llmgine.command.type"
COMMAND_ID: Final = "llmgine.command.id"
COMMAND_SUCCESS: Final = "llmgine.command.success"
COMMAND_ATTEMPTS: Final = "llmgine.command.attempts"
SPAN_KIND: Final = "llmgine.span.kind"  # "session", "command", "llm", "tool": for colouring
BUS_NAME: Final = "llmgine.bus"

METRIC_BUS_PUBLISHED: Final = "llmgine.bus.events.published"
METRIC_BUS_DELIVERED: Final = "llmgine.bus.events.handled"
METRIC_BUS_HANDLER_FAILURES: Final = "llmgine.bus.handler.failures"
METRIC_BUS_DROPPED: Final = "llmgine.bus.events.dropped"
METRIC_BUS_REJECTED: Final = "llmgine.bus.events.rejected"
METRIC_BUS_COMMANDS: Final = "llmgine.bus.commands.executed"
METRIC_BUS_COMMANDS_FAILED: Final = "llmgine.bus.commands.failed"
METRIC_BUS_QUEUE_DEPTH: Final = "llmgine.bus.queue.depth"
METRIC_BUS_HANDLER_LATENCY: Final = "llmgine.bus.handler.latency"
QUANTILE: Final = "llmgine.quantile"

# -- switches -----------------------------------------------------------------------------
CAPTURE_CONTENT_ENV: Final = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
# Where spans go over OTLP, if either is set (the traces one wins for traces).
OTLP_ENDPOINT_ENV: Final = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
