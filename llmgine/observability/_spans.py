"""Span helpers for LLM calls and tool executions, named by the GenAI conventions.

`CallSpans` is one `Observability`'s `llmgine.llm.CallTracer`: `enable()` plugs it into
the slots the LLM layer and the tools hold (see `llmgine._tracing`), so they are handed
it rather than finding it. The module-level `start_llm_call`, `llm_span` and `tool_span`
are the same for code of yours, on the enabled observability; with observability off they
cost a function call and record nothing. Content (prompts, completions, tool arguments and
results) is recorded only when capture is on, and then redacted.
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Required, TypedDict

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from typing_extensions import Unpack

from llmgine import _semconv as sc
from llmgine.observability import _state

if TYPE_CHECKING:
    from llmgine.observability._setup import Observability

__all__ = [
    "CallSpans",
    "LLMCall",
    "LLMCallArgs",
    "ToolCall",
    "error_type",
    "llm_span",
    "start_llm_call",
    "tool_span",
]


def error_type(exc: BaseException) -> str:
    """The ``error.type`` of an exception: its fully qualified class name, as in
    `llmgine.bus.ErrorInfo` (``builtins.ValueError``, ``openai.RateLimitError``)."""
    cls = type(exc)
    return f"{cls.__module__}.{cls.__qualname__}"


def _content(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, default=_jsonable, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def _jsonable(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    return repr(value)


class _Call:
    """What `LLMCall` and `ToolCall` share: a span (or none), content capture, failure."""

    def __init__(self, span: Span | None, obs: Observability | None) -> None:
        self.span = span
        self._obs = obs if span is not None else None
        self.capture = self._obs is not None and self._obs.capture_content

    def _set(self, key: str, value: Any) -> None:
        if self.span is not None and value is not None:
            self.span.set_attribute(key, value)

    def _set_content(self, key: str, value: Any) -> None:
        obs = self._obs
        if self.capture and value is not None and obs is not None:
            self._set(key, obs.redactor.text(_content(value)))

    def _fail(self, exc: BaseException) -> str:
        kind = error_type(exc)
        obs = self._obs
        if self.span is not None and obs is not None:
            message = obs.redactor.text(str(exc))
            self.span.set_attribute(sc.ERROR_TYPE, kind)
            self.span.set_status(Status(StatusCode.ERROR, message))
            self.span.add_event(
                "exception",
                {
                    "exception.type": kind,
                    "exception.message": message,
                    "exception.stacktrace": obs.redactor.text(
                        "".join(traceback.format_exception(exc))
                    ),
                },
            )
        return kind


class LLMCall(_Call):
    """One model call's span: record the request content, the first token, the response."""

    def __init__(
        self,
        span: Span | None,
        obs: Observability | None,
        metric_attrs: dict[str, Any],
        started: float,
    ) -> None:
        super().__init__(span, obs)
        self._metric_attrs = metric_attrs
        self._started = started
        self.time_to_first_token_ms: float | None = None
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None

    def input(self, messages: Any, *, system: Any = None) -> None:
        """The conversation sent (recorded only when content capture is on)."""
        self._set_content(sc.SYSTEM_INSTRUCTIONS, system)
        self._set_content(sc.INPUT_MESSAGES, messages)

    def first_token(self, ms: float | None = None) -> None:
        """Mark the arrival of the first streamed token now, or ``ms`` after the call
        started (the first mark counts)."""
        if self.time_to_first_token_ms is None:
            now = (time.perf_counter() - self._started) * 1000
            self.time_to_first_token_ms = now if ms is None else ms
            self._set(sc.TIME_TO_FIRST_TOKEN_MS, self.time_to_first_token_ms)

    def response(
        self,
        *,
        model: str | None = None,
        response_id: str | None = None,
        finish_reasons: Sequence[str] = (),
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cache_read_tokens: int | None = None,
        cache_write_tokens: int | None = None,
        reasoning_tokens: int | None = None,
        cost_usd: float | None = None,
        output: Any = None,
        server_address: str | None = None,
        server_port: int | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> None:
        """What came back. Counts that are unknown stay unset (never a made-up zero).
        ``server_address``/``server_port``: where the call went, when that was only known
        once it was made (a local server started by the call). ``attributes`` are added
        as they are (a replayed answer's ``llmgine.cache.*``)."""
        if model is not None:
            self._metric_attrs[sc.RESPONSE_MODEL] = model
        if server_address is not None:
            self._metric_attrs[sc.SERVER_ADDRESS] = server_address
        if server_port is not None:
            self._metric_attrs[sc.SERVER_PORT] = server_port
        values = {
            sc.SERVER_ADDRESS: server_address,
            sc.SERVER_PORT: server_port,
            sc.RESPONSE_MODEL: model,
            sc.RESPONSE_ID: response_id,
            sc.RESPONSE_FINISH_REASONS: list(finish_reasons) if finish_reasons else None,
            sc.USAGE_INPUT_TOKENS: input_tokens,
            sc.USAGE_OUTPUT_TOKENS: output_tokens,
            sc.USAGE_CACHE_READ_INPUT_TOKENS: cache_read_tokens,
            sc.USAGE_CACHE_CREATION_INPUT_TOKENS: cache_write_tokens,
            sc.USAGE_REASONING_OUTPUT_TOKENS: reasoning_tokens,
            sc.COST_USD: cost_usd,
            **(attributes or {}),
        }
        if self.span is not None:  # one call: the SDK takes its lock once, not per value
            self.span.set_attributes({k: v for k, v in values.items() if v is not None})
        self._set_content(sc.OUTPUT_MESSAGES, output)
        self.input_tokens, self.output_tokens = input_tokens, output_tokens

    def end(self, error: BaseException | None = None) -> None:
        """End the span (an error status and ``error.type`` if ``error``) and record the
        GenAI metrics. Only the first call counts."""
        span, self.span = self.span, None
        if span is None:
            return
        if error is not None:
            self.span = span  # _fail writes to it
            self._metric_attrs[sc.ERROR_TYPE] = self._fail(error)
            self.span = None
        else:
            span.set_status(Status(StatusCode.OK))
        span.end()
        obs = self._obs
        if obs is not None:
            obs.metrics.record_llm_call(
                self._metric_attrs,
                time.perf_counter() - self._started,
                self.input_tokens,
                self.output_tokens,
            )


class ToolCall(_Call):
    """One tool execution's span: record its result."""

    def result(self, value: Any) -> None:
        """The tool's result (recorded only when content capture is on)."""
        self._set_content(sc.TOOL_CALL_RESULT, value)


def _parent(obs: Observability, session_id: str | None) -> Context | None:
    """The current span if there is one (a command's), else the session's span, else root."""
    current = trace.get_current_span()
    if current.get_span_context().is_valid:
        return None  # start_span uses the current context
    if session_id is not None:
        session_span = obs.session_span(session_id)
        if session_span is not None:
            return trace.set_span_in_context(session_span)
    return None


def _session_of(session_id: str | None) -> str | None:
    if session_id is not None:
        return session_id
    attrs = getattr(trace.get_current_span(), "attributes", None) or {}
    value = attrs.get(sc.SESSION_ID)
    return value if isinstance(value, str) else None


class LLMCallArgs(TypedDict, total=False):
    """What `start_llm_call` and `llm_span` take (``provider`` and ``model`` required)."""

    provider: Required[str]
    model: Required[str]
    operation: str
    session_id: str | None
    server_address: str | None
    server_port: int | None
    temperature: float | None
    max_tokens: int | None
    top_p: float | None
    seed: int | None
    stop: Sequence[str] | None
    output_type: str | None
    attributes: Mapping[str, Any] | None


class CallSpans:
    """The `llmgine.llm.CallTracer` of one `Observability` (``obs.call_tracer``): spans on
    its tracer, content redacted by its redactor, GenAI metrics to its metrics."""

    def __init__(self, obs: Observability) -> None:
        self._obs = obs

    @property
    def capture_content(self) -> bool:
        return self._obs.capture_content

    def start_llm_call(
        self,
        *,
        provider: str,
        model: str,
        operation: str = sc.OP_CHAT,
        session_id: str | None = None,
        server_address: str | None = None,
        server_port: int | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        stop: Sequence[str] | None = None,
        output_type: str | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> LLMCall:
        """Start an LLM call's span without making it current; ``call.end(error)`` ends it
        (see the module-level `start_llm_call`)."""
        obs = self._obs
        started = time.perf_counter()
        session = _session_of(session_id)
        attrs: dict[str, Any] = {
            sc.OPERATION_NAME: operation,
            sc.PROVIDER_NAME: provider,
            sc.REQUEST_MODEL: model,
            sc.SPAN_KIND: "llm",
        }
        metric_attrs = dict(attrs)
        del metric_attrs[sc.SPAN_KIND]
        optional = {
            sc.CONVERSATION_ID: session,
            sc.SESSION_ID: session,
            sc.SERVER_ADDRESS: server_address,
            sc.SERVER_PORT: server_port,
            sc.REQUEST_TEMPERATURE: temperature,
            sc.REQUEST_MAX_TOKENS: max_tokens,
            sc.REQUEST_TOP_P: top_p,
            sc.REQUEST_SEED: seed,
            sc.REQUEST_STOP_SEQUENCES: list(stop) if stop else None,
            sc.OUTPUT_TYPE: output_type,
        }
        attrs.update({k: v for k, v in optional.items() if v is not None})
        if attributes:
            attrs.update(attributes)
        if server_address is not None:
            metric_attrs[sc.SERVER_ADDRESS] = server_address
        if server_port is not None:
            metric_attrs[sc.SERVER_PORT] = server_port
        span = obs.tracer.start_span(
            f"{operation} {model}",
            context=_parent(obs, session),
            kind=SpanKind.CLIENT,
            attributes=attrs,
        )
        return LLMCall(span, obs, metric_attrs, started)

    @contextmanager
    def tool_span(
        self,
        name: str,
        *,
        call_id: str | None = None,
        arguments: Any = None,
        description: str | None = None,
        session_id: str | None = None,
    ) -> Iterator[ToolCall]:
        """A span around one tool execution (see the module-level `tool_span`)."""
        obs = self._obs
        session = _session_of(session_id)
        attrs: dict[str, Any] = {
            sc.OPERATION_NAME: sc.OP_EXECUTE_TOOL,
            sc.TOOL_NAME: name,
            sc.TOOL_TYPE: "function",
            sc.SPAN_KIND: "tool",
        }
        optional = {
            sc.TOOL_CALL_ID: call_id,
            sc.TOOL_DESCRIPTION: description,
            sc.CONVERSATION_ID: session,
            sc.SESSION_ID: session,
        }
        attrs.update({k: v for k, v in optional.items() if v is not None})
        span = obs.tracer.start_span(
            f"{sc.OP_EXECUTE_TOOL} {name}", context=_parent(obs, session), attributes=attrs
        )
        call = ToolCall(span, obs)
        call._set_content(sc.TOOL_CALL_ARGUMENTS, arguments)
        try:
            with trace.use_span(
                span, end_on_exit=False, record_exception=False, set_status_on_exception=False
            ):
                yield call
        except BaseException as exc:
            call._fail(exc)
            raise
        else:
            span.set_status(Status(StatusCode.OK))
        finally:
            span.end()

    def __repr__(self) -> str:
        return f"<CallSpans of {self._obs!r}>"


def start_llm_call(**call: Unpack[LLMCallArgs]) -> LLMCall:
    """Start an LLM call's span, on the enabled observability, without making it current;
    ``call.end(error)`` ends it. With observability off it records nothing.

    For calls that outlive one block, such as a stream read item by item. `llm_span` is
    the same as a context manager that also makes the span current. ``attributes`` are
    added to the span as they are (e.g. the id of the command the call answers).
    """
    obs = _state.current
    if obs is None:
        return LLMCall(None, None, {}, time.perf_counter())
    return obs.call_tracer.start_llm_call(**call)


@contextmanager
def llm_span(**call: Unpack[LLMCallArgs]) -> Iterator[LLMCall]:
    """A CLIENT span named ``"{operation} {model}"`` around one model call.

    Example:
        with llm_span(provider="openai", model="gpt-4o-mini", session_id=sid) as call:
            call.input(messages)
            reply = await client.chat(...)
            call.response(model=reply.model, response_id=reply.id, input_tokens=12, ...)

    Takes the arguments of `start_llm_call`. An exception leaving the block sets
    ``error.type`` and an error status (its message redacted) and is re-raised. Duration
    and token usage also go to the GenAI metrics.
    """
    started = start_llm_call(**call)
    if started.span is None:
        yield started
        return
    try:
        with trace.use_span(
            started.span, end_on_exit=False, record_exception=False, set_status_on_exception=False
        ):
            yield started
    except BaseException as exc:
        started.end(exc)
        raise
    else:
        started.end()


@contextmanager
def tool_span(
    name: str,
    *,
    call_id: str | None = None,
    arguments: Any = None,
    description: str | None = None,
    session_id: str | None = None,
) -> Iterator[ToolCall]:
    """A span named ``"execute_tool {name}"`` around one tool execution, on the enabled
    observability (with it off, nothing is recorded).

    ``arguments`` are recorded (redacted) only when content capture is on; so is the value
    given to ``call.result(...)``. An exception sets ``error.type`` and is re-raised.
    """
    obs = _state.current
    if obs is None:
        yield ToolCall(None, None)
        return
    with obs.call_tracer.tool_span(
        name, call_id=call_id, arguments=arguments, description=description, session_id=session_id
    ) as call:
        yield call
