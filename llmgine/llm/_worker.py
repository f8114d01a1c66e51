"""Model calls made by worker processes: `worker` (what ``llmgine worker llmgine.llm:worker``
runs) answers `Generate` for any model spec; `RemoteModel` is a model whose calls it makes.

Both ends of one small protocol live here, so they cannot drift apart:

* an error travels back as its type, message and traceback (`ErrorInfo`); the fields of an
  `LLMError` a caller acts on (``status_code``, ``retry_after``, ``retryable``) would be
  lost, so the worker adds them to the message's last line, and `RemoteModel` raises the
  same `llmgine.errors` class again with them (a 429 in a worker slows a sweep down as it
  does in one process);
* a caller that publishes the call's events itself (an `LLMService` in the caller's
  process, as a sweep's, in its session) marks its `Generate` so (``metadata``
  ``{"llmgine.events": "caller"}``), and the worker publishes none: no second
  `LLMCallStarted` / `LLMCallCompleted` per call, and no delta events, which would only
  load the stream (the caller gets the whole answer in the reply). A caller that streams
  still has the worker stream from the provider, so the answer has its time to first
  token.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractContextManager
from typing import Any

from llmgine import errors
from llmgine.bus import Event, MessageBus
from llmgine.errors import (
    LLMConfigurationError,
    LLMError,
    NoHandlerError,
    NoWorkerError,
    RemoteCommandError,
)
from llmgine.llm._request import LLMRequest
from llmgine.llm._response import LLMResponse
from llmgine.llm._service import Generate, LLMService
from llmgine.llm._stream import ResponseStream, StreamAssembler, StreamItem
from llmgine.llm._testing import response_items

__all__ = ["EVENTS", "RemoteModel", "WorkerService", "worker"]

EVENTS = "llmgine.events"  # a Generate's metadata: "caller": the worker publishes none
_FIELDS = "\nllmgine.error.fields: "  # the last line of a worker's LLMError message
_quiet: contextvars.ContextVar[bool] = contextvars.ContextVar("llmgine_quiet", default=False)


class WorkerService(LLMService):
    """An `LLMService` for a worker process: answers `Generate` for any model spec with
    the worker's own keys and settings (its environment; ``model_options`` go to
    `get_model`), each model made once and reused, and closed by `aclose`.

    Its models do not retry (``retry=False`` unless ``model_options`` say otherwise): the
    caller does, with the failure in hand (a sweep halves its concurrency on a 429; a bus
    `CommandPolicy` may send the command to another worker), so retries are never stacked.
    It publishes a call's events with the command's session, except for a `Generate`
    whose metadata has ``"llmgine.events": "caller"`` (a `RemoteModel`'s, a sweep's): its
    caller publishes them, so the worker publishes none.
    """

    def __init__(self, bus: MessageBus, **model_options: Any) -> None:
        super().__init__(bus, **{"retry": False, **model_options})

    async def handle(self, command: Generate) -> LLMResponse:
        token = _quiet.set(command.metadata.get(EVENTS) == "caller")
        try:
            return await super().handle(command)
        except LLMError as exc:
            _carry_fields(exc)
            raise
        finally:
            _quiet.reset(token)

    async def _publish(self, event: Event, session_id: str | None) -> None:
        if _quiet.get():  # the caller publishes this call's events
            return
        await super()._publish(event, session_id)

    async def aclose(self) -> None:
        """Close every model made so far (their HTTP clients)."""
        models, self._models = list(self._models.values()), {}
        for model in models:
            await model.aclose()


def worker(bus: MessageBus) -> Callable[[], Awaitable[None]]:
    """The setup of ``llmgine worker llmgine.llm:worker``: answer `Generate` for any model
    spec on ``bus`` with a `WorkerService`. Returns what closes its models, which the
    worker awaits once its bus has stopped (the handlers running finished first).

    Example (a shell per worker; the keys live in the workers' environment):
        LLMGINE_BUS_URL=nats://127.0.0.1:4222 OPENAI_API_KEY=... llmgine worker llmgine.llm:worker
    """
    service = WorkerService(bus)
    service.install()
    return service.aclose


def _carry_fields(exc: LLMError) -> None:
    """Add what a caller acts on to ``exc``'s message, once, as its last line."""
    message = str(exc)
    if _FIELDS in message or len(exc.args) != 1:
        return
    fields = {
        "status_code": exc.status_code,
        "retry_after": exc.retry_after,
        "retryable": bool(exc.retryable),
    }
    exc.args = (f"{message}{_FIELDS}{json.dumps(fields)}",)


def remote_error(exc: RemoteCommandError, provider: str, model: str) -> Exception:
    """The `llmgine.errors` class a worker raised, made again here with its message and
    fields (``exc`` as its cause); ``exc`` itself when it is not an `LLMError`."""
    module, _, name = exc.remote_type.rpartition(".")
    cls = getattr(errors, name, None) if module == errors.__name__ else None
    if not (isinstance(cls, type) and issubclass(cls, LLMError)):
        return exc
    message, marked, text = exc.remote_message.rpartition(_FIELDS)
    fields: dict[str, Any] = {}
    if marked:
        with contextlib.suppress(ValueError):
            fields = dict(json.loads(text))
    else:
        message = exc.remote_message
    if issubclass(cls, LLMConfigurationError):
        message += " (in the worker that answered: its environment and settings count)"
    try:
        error = cls(
            message,
            provider=provider,
            model=model,
            status_code=fields.get("status_code"),
            retry_after=fields.get("retry_after"),
        )
    except TypeError:  # a class that needs more than the message (InvalidRequestError)
        return exc
    retryable = fields.get("retryable")
    if isinstance(retryable, bool) and retryable != cls.retryable:
        error.retryable = retryable
    error.__cause__ = exc
    return error


def _no_worker(exc: NoHandlerError, bus: MessageBus, spec: str) -> NoWorkerError:
    start = (
        "start one or more where the keys are, on the same NATS server, e.g. "
        "`LLMGINE_BUS_URL=nats://host:4222 llmgine worker llmgine.llm:worker`"
    )
    if not bus.distributed:
        return NoWorkerError(
            f"{spec} is to be called by a worker, but this bus keeps its commands in this "
            "process (its transport is not NATS): make the bus with MessageBus(transport="
            f"NatsTransport(url)) or set LLMGINE_BUS_URL, and {start}"
        )
    return NoWorkerError(
        f"no worker serves Generate on this bus's NATS server, so {spec} cannot be "
        f"called: {start}, then run again ({exc})"
    )


Around = Callable[[Generate], AbstractContextManager[object]]


class RemoteModel:
    """A `LanguageModel` whose calls a worker process makes (`worker`): each call is a
    `Generate(model=spec)` executed on ``bus`` outside any session, which a bus over NATS
    with no handler of its own sends to a worker. Keys and provider settings are the
    worker's; the request (with the defaults a `Model` applied) travels whole.

    An error raised in the worker is raised here as its own `llmgine.errors` class (see
    the module docstring); no worker serving is a `NoWorkerError` saying what to start.
    ``around(command)`` wraps each call (a sweep's span, current while the worker runs,
    so the worker's spans are its children). A stream yields the answer's items once
    the whole answer is back: its ``time_to_first_token_ms`` is the one the worker
    measured, streaming from the provider.

    The worker publishes no events for these calls (``worker_events=False``): the
    `LLMService` that calls this model publishes them, in its session. With
    ``worker_events=True`` the worker publishes its own, without a session.

    Example:
        model = Model(RemoteModel(bus, "openai:gpt-4o-mini"))
        reply = await model.generate("Hi")   # made by a worker, with its key
    """

    def __init__(
        self,
        bus: MessageBus,
        spec: str,
        *,
        around: Around | None = None,
        worker_events: bool = False,
    ) -> None:
        provider, colon, name = spec.partition(":")
        if not colon or not provider or not name:
            raise ValueError(f"a model spec is 'provider:model'; got {spec!r}")
        self.bus = bus
        self.spec = spec
        self._provider, self._name = provider, name
        self._around = around
        self._metadata: dict[str, Any] = {} if worker_events else {EVENTS: "caller"}

    @property
    def provider(self) -> str:
        return self._provider

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"<RemoteModel {self.spec}>"

    async def generate(self, request: LLMRequest, /) -> LLMResponse:
        return await self._call(request, streamed=False)

    def stream(self, request: LLMRequest, /) -> ResponseStream:
        answered: list[LLMResponse] = []

        async def items() -> AsyncIterator[StreamItem]:
            response = await self._call(request, streamed=True)
            answered.append(response)
            for item in response_items(response):
                yield item

        def whole(assembled: LLMResponse) -> LLMResponse:
            # The worker's answer as it made it: its cost, latency and time to first token.
            return answered[0] if answered else assembled

        return ResponseStream(items(), StreamAssembler(self.provider, self.name)).then(whole)

    async def _call(self, request: LLMRequest, *, streamed: bool) -> LLMResponse:
        command = Generate(
            request=request,
            model=self.spec,
            stream=streamed,
            metadata=dict(self._metadata),
        )
        around = self._around(command) if self._around else contextlib.nullcontext()
        with around:
            result = await self.bus.execute(command)
            try:
                return result.unwrap()
            except NoHandlerError as exc:
                raise _no_worker(exc, self.bus, self.spec) from exc
            except RemoteCommandError as exc:
                error = remote_error(exc, self.provider, self.name)
                if error is exc:
                    raise
                raise error from exc

    async def aclose(self) -> None:
        """Nothing to close here: the worker holds the provider's client."""
