"""Running a sweep: every call a `Generate` command in the sweep's own bus session."""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llmgine._tracing import tracer_for
from llmgine.bus import MessageBus
from llmgine.errors import NoWorkerError, RateLimitedError
from llmgine.llm import ChatMessage, Generate, LLMResponse, Model, Usage, get_model
from llmgine.llm._cost import cost_usd
from llmgine.recording import (
    Recorded,
    RecordingStore,
    canonical_request,
    open_store,
    request_key,
)
from llmgine.sweep._distributed import WORKER_KEY, worker_callers
from llmgine.sweep._grid import expand_grid
from llmgine.sweep._inputs import InputRow, input_fields, load_inputs
from llmgine.sweep._limits import AdaptiveLimit
from llmgine.sweep._result import SweepResult, param_names, rows_frame, score_columns
from llmgine.sweep._wiring import RepeatStore, Service, SpanCatcher

__all__ = ["Preflight", "Sweep"]

DEFAULT_OUTPUT_TOKENS = 256  # the preflight's guess when no max_tokens is set


@dataclass
class Preflight:
    """What a sweep will do, estimated before its first call (tokens: 4 characters a
    token, plus ``max_tokens`` or 256 out; time: rough, from ``seconds_per_call`` at the
    configured concurrency)."""

    calls: int
    cached: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    unpriced: list[str]
    seconds: float
    concurrency: int

    def __str__(self) -> str:
        cost = f"about ${self.cost_usd:.4f}"
        if self.unpriced:
            cost += f" (no price known for {', '.join(self.unpriced)}: not counted)"
        return (
            f"{self.calls} calls ({self.cached} already in the store, free), about "
            f"{self.input_tokens:,} tokens in and {self.output_tokens:,} out, {cost}; "
            f"roughly {self.seconds:.0f} s at {self.concurrency} calls at once per provider "
            "(a rough guess)"
        )


@dataclass
class _Row:
    prompt_id: int
    inputs: InputRow
    model: int
    params: dict[str, Any]
    repeat: int
    estimate: float | None = 0.0  # None: the price table does not know the model
    cached: bool = False


class Sweep:
    """A sweep: every input x model x parameter set x repeat, as rows (see `llmgine.sweep`)."""

    def __init__(
        self,
        data: Any,
        models: Sequence[str | Model] | str | Model,
        *,
        template: str | None = None,
        column: str | None = None,
        grid: Mapping[str, Any] | None = None,
        repeats: int = 1,
        scorers: Sequence[Any] = (),
        store: RecordingStore | str | Any = None,
        bus: MessageBus | None = None,
        concurrency: int = 8,
        increase_every: int = 10,
        budget_usd: float | None = None,
        retries: int = 2,
        rate_limit_retries: int = 50,
        stream: bool = True,
        progress: bool = True,
        seconds_per_call: float = 2.0,
        model_options: Mapping[str, Any] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if repeats < 1:
            raise ValueError(f"repeats is at least 1; got {repeats}")
        if concurrency < 1:
            raise ValueError(f"concurrency is at least 1; got {concurrency}")
        self.inputs = load_inputs(data, template=template, column=column)
        entries = [models] if isinstance(models, str | Model) else list(models)
        if not entries:
            raise ValueError("give at least one model (a spec such as 'demo:x', or a Model)")
        self.store = open_store(store)
        self._tracer = SpanCatcher(tracer_for(bus))
        self._specs = [None if isinstance(e, Model) else e for e in entries]
        self._model_options = model_options
        # One caller per model and repeat, answering through the store (read-write).
        self._callers: list[list[Model]] = []
        self._made: list[Model] = []
        for entry in entries:
            stores = [RepeatStore(self.store, r) for r in range(repeats)]
            if isinstance(entry, Model):
                self._callers.append([Model(Recorded(entry, s)) for s in stores])
            else:  # retry=False: the sweep retries itself, so retries are never stacked
                made = [
                    get_model(
                        entry,
                        retry=False,
                        tracer=self._tracer,
                        recording=s,
                        recording_mode="read-write",
                        **(model_options or {}),
                    )
                    for s in stores
                ]
                self._made.extend(made)
                self._callers.append(made)
        self.models: list[Model] = [
            e if isinstance(e, Model) else c[0] for e, c in zip(entries, self._callers, strict=True)
        ]
        self.param_sets = expand_grid(grid)
        self.repeats = repeats
        self.scorers = list(scorers)
        self.bus = bus
        self.concurrency = concurrency
        self.increase_every = increase_every
        self.budget_usd = budget_usd
        self.retries = retries
        self.rate_limit_retries = rate_limit_retries
        self.stream = stream
        self.progress = progress
        self.seconds_per_call = seconds_per_call
        self.session_id = uuid.uuid4().hex
        self._sleep = sleep
        self._clock = clock
        self._rows = [
            _Row(p, inputs, m, params, r)
            for p, inputs in enumerate(self.inputs)
            for m in range(len(self.models))
            for params in self.param_sets
            for r in range(repeats)
        ]

    def _request(self, row: _Row) -> Any:
        params = dict(row.params)
        system = params.pop("system", None)
        text = str(row.inputs["prompt"])
        messages = [ChatMessage.user(text)]
        if system is not None:
            messages.insert(0, ChatMessage.system(str(system)))
        return self.models[row.model].request(messages, **params)

    def _estimate(self, row: _Row, request: Any) -> tuple[int, int, float | None]:
        model = self.models[row.model]
        tokens_in = sum(len(m.text) for m in request.messages) // 4 + 1
        tokens_out = request.max_tokens or DEFAULT_OUTPUT_TOKENS
        usage = Usage(input_tokens=tokens_in, output_tokens=tokens_out)
        # The demo is a free simulation; otherwise the price table's, or None (unknown).
        price = 0.0 if model.provider == "demo" else cost_usd(model.provider, model.name, usage)
        return tokens_in, tokens_out, price

    async def preflight(self) -> Preflight:
        """Count the calls, estimate tokens, cost and time; look up what is stored."""
        tokens_in = tokens_out = cached = 0
        cost = 0.0
        unpriced: set[str] = set()
        for row in self._rows:
            request = self._request(row)
            model = self.models[row.model]
            key = request_key(canonical_request(request, model.spec))
            row.cached = await RepeatStore(self.store, row.repeat).contains(key)
            t_in, t_out, price = self._estimate(row, request)
            row.estimate = 0.0 if row.cached else price
            if row.cached:
                cached += 1
                continue
            tokens_in, tokens_out = tokens_in + t_in, tokens_out + t_out
            if price is None:
                unpriced.add(model.spec)
            else:
                cost += price
        live = len(self._rows) - cached
        providers = {self.models[r.model].provider for r in self._rows if not r.cached}
        per_provider = live / max(1, len(providers))
        seconds = math.ceil(per_provider / self.concurrency) * self.seconds_per_call
        return Preflight(
            calls=len(self._rows),
            cached=cached,
            input_tokens=tokens_in,
            output_tokens=tokens_out,
            cost_usd=cost,
            unpriced=sorted(unpriced),
            seconds=seconds,
            concurrency=self.concurrency,
        )

    async def run(self, *, on_row: Callable[[dict[str, Any]], object] | None = None) -> SweepResult:
        """Run every row not yet stored (stored ones are answered from the store).

        ``on_row``, if given, is called with each row (a dict with the ``df``'s columns:
        ``prompt_id``, ``model``, ``params``, ``repeat``, ``text``, the scores...) as soon as
        it is complete and scored, in the order rows complete; `llmgine.notebook.SweepView`
        fills its grid from it. An exception it raises stops the sweep and is raised here.
        """
        plan = await self.preflight()
        bar = _progress_bar(len(self._rows), self.progress)
        if bar is not None:
            bar.write(f"preflight: {plan}")
        bus = self.bus if self.bus is not None else MessageBus()
        records: list[dict[str, Any] | None] = [None] * len(self._rows)
        keys = {
            (m, r): f"sweep{m}.{r}" for m in range(len(self.models)) for r in range(self.repeats)
        }
        registered = {keys[m, r]: self._callers[m][r] for (m, r) in keys}
        # Over a bus that carries commands to other processes, workers make the live calls.
        workers = (
            worker_callers(
                bus, self._specs, self.repeats, self.store, self._tracer, self._model_options
            )
            if bus.distributed
            else {}
        )
        registered.update({WORKER_KEY.format(key=keys[mr]): c for mr, c in workers.items()})
        if bar is not None and workers:
            specs = ", ".join(sorted({s for s in self._specs if s is not None}))
            bar.write(f"live calls of {specs} go to worker processes over the bus")
        state = _State()
        limits: dict[str, AdaptiveLimit] = {}
        queues: dict[str, deque[int]] = {}
        for index, row in enumerate(self._rows):
            provider = self.models[row.model].provider
            queues.setdefault(provider, deque()).append(index)
            if provider not in limits:
                limits[provider] = AdaptiveLimit(
                    self.concurrency,
                    increase_every=self.increase_every,
                    sleep=self._sleep,
                    clock=self._clock,
                )
        try:
            if self.bus is None:
                await bus.start()
            async with bus.session("sweep", session_id=self.session_id) as session:
                Service(bus, registered, session=session).install()

                async def one(index: int, limit: AdaptiveLimit) -> None:
                    row = self._rows[index]
                    budget = self.budget_usd
                    estimate = row.estimate
                    if estimate is None:  # unpriced: what its calls have cost so far
                        estimate = state.mean_cost(row.model)
                    if budget is not None and state.spent + state.reserved + estimate > budget:
                        state.stop(
                            "budget",
                            f"the next call (about ${estimate:.4f}) would take the spend "
                            f"(${state.spent:.4f}, ${state.reserved:.4f} more in flight) past "
                            f"the budget of ${budget:.4f}",
                        )
                        return
                    state.reserved += estimate
                    try:
                        key = keys[row.model, row.repeat]
                        to_worker = (row.model, row.repeat) in workers
                        record, answer = await self._call(session, row, key, limit, to_worker)
                    except NoWorkerError as exc:  # every live row would fail the same way
                        state.stop("no_worker", str(exc))
                        state.fatal = exc
                        return
                    finally:
                        state.reserved -= estimate
                    cost = record.get("cost_usd")
                    if isinstance(cost, float) and not math.isnan(cost):
                        state.spent += cost
                        if not record["cache_hit"]:
                            state.costs.setdefault(row.model, []).append(cost)
                    state.errors += record["error_type"] is not None
                    state.cached += bool(record["cache_hit"])
                    await self._score(row, record, answer, state)
                    records[index] = record
                    if on_row is not None:
                        on_row(dict(record))  # a copy: the row in the df stays as made
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(spent=f"${state.spent:.4f}", errors=state.errors)

                async def worker(queue: deque[int], limit: AdaptiveLimit) -> None:
                    while queue and state.stopped is None:
                        index = queue.popleft()
                        await limit.acquire()
                        try:
                            if state.stopped is None:
                                await one(index, limit)
                        finally:
                            await limit.release()

                await asyncio.gather(
                    *(
                        worker(queue, limits[provider])
                        for provider, queue in queues.items()
                        for _ in range(min(self.concurrency, len(queue)))
                    )
                )
        finally:
            if bar is not None:
                bar.close()
            for model in self._made:
                await model.aclose()
            if self.bus is None:
                await bus.stop()
        if state.fatal is not None:
            raise state.fatal
        done = [r for r in records if r is not None]
        columns = [c for s in self.scorers for c in score_columns(s)]
        frame = rows_frame(done, input_fields(self.inputs), param_names(self.param_sets), columns)
        return SweepResult(
            df=frame,
            total=len(self._rows),
            spent_usd=state.spent,
            stopped=state.stopped,
            reason=state.reason,
            cached=state.cached,
            session_id=self.session_id,
            scorer_errors=state.scorer_errors,
        )

    async def _call(
        self, session: Any, row: _Row, key: str, limit: AdaptiveLimit, to_worker: bool = False
    ) -> tuple[dict[str, Any], LLMResponse | None]:
        """One row's call, retried: a rate limit slows the provider down and is retried
        until it goes through; another transient error is retried ``retries`` times. An
        answer whose rate limits are nearly used up slows the provider down too.

        ``to_worker``: an answer not in the store is asked of the model's worker caller
        (see `_distributed`); a stored one of the in-process caller, which replays it."""
        request = self._request(row)
        if to_worker:
            spec = self.models[row.model].spec
            stored = RepeatStore(self.store, row.repeat)
            if not await stored.contains(request_key(canonical_request(request, spec))):
                key = WORKER_KEY.format(key=key)
        attempt = throttled = 0
        response: LLMResponse | None = None
        error: Exception | None = None
        while True:
            command = Generate(request=request, model=key, stream=self.stream)
            result = await session.execute(command)
            try:
                response = result.unwrap()
            except RateLimitedError as exc:
                if not exc.retryable:  # an exhausted quota: waiting does not add credit
                    error = exc
                    break
                if throttled >= self.rate_limit_retries:
                    error = RateLimitedError(
                        f"{exc} The sweep waited out {throttled} rate limits for this row "
                        "and gave up on it; run the sweep again later to do what is "
                        "missing, or raise rate_limit_retries=.",
                        provider=exc.provider,
                        model=exc.model,
                        status_code=exc.status_code,
                        retry_after=exc.retry_after,
                    )
                    break
                throttled += 1
                wait = exc.retry_after if exc.retry_after is not None else min(60.0, 2.0**throttled)
                limit.rate_limited(wait)
                await limit.release()
                await limit.acquire()  # waits out the pause, at the lowered limit
                continue
            except NoWorkerError:
                raise
            except Exception as exc:
                # A provider's transient error, or a worker that never answered
                # (CommandTimeoutError): asked again, it may well answer.
                if getattr(exc, "retryable", False) and attempt < self.retries:
                    attempt += 1
                    await self._sleep(min(30.0, 2.0 ** (attempt - 1)))
                    continue
                error = exc
            break
        if response is not None:  # a live answer's rate limits may say to slow down now
            live = response.rate_limit if not response.cache_hit else None
            await limit.succeeded(live, call_tokens=response.usage.total_tokens)
        span = self._tracer.ids.pop(command.id, None)
        return self._record(row, response, error, span), response

    def _record(
        self,
        row: _Row,
        response: LLMResponse | None,
        error: Exception | None,
        span: tuple[str, str] | None,
    ) -> dict[str, Any]:
        record: dict[str, Any] = {
            "prompt_id": row.prompt_id,
            "prompt": row.inputs["prompt"],
            **{f"input.{k}": v for k, v in row.inputs.items() if k != "prompt"},
            "model": self.models[row.model].spec,
            "params": json.dumps(row.params, sort_keys=True, default=str),
            **{f"param.{k}": v for k, v in row.params.items()},
            "repeat": row.repeat,
            "trace_id": span[0] if span else None,
            "span_id": span[1] if span else None,
            "error_type": type(error).__name__ if error is not None else None,
            "error": str(error) if error is not None else None,
            "tool_calls": "[]",
            "cache_hit": False,
        }
        if response is not None:
            usage = response.usage
            calls = [c.model_dump(mode="json") for c in response.tool_calls]
            record.update(
                text=response.text,
                tool_calls=json.dumps(calls, sort_keys=True),
                finish_reason=response.finish_reason,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cached_tokens=usage.cache_read_tokens,
                reasoning_tokens=usage.reasoning_tokens,
                cost_usd=_nan(response.cost_usd),
                latency_ms=_nan(response.latency_ms),
                ttft_ms=_nan(response.time_to_first_token_ms),
                cache_hit=bool(response.cache_hit),
                original_cost_usd=_nan(
                    response.original_cost_usd if response.cache_hit else response.cost_usd
                ),
            )
        return record

    async def _score(
        self, row: _Row, record: dict[str, Any], answer: LLMResponse | None, state: _State
    ) -> None:
        """Each scorer's value (and extras) on the row's answer; NaN for a failed call."""
        if answer is None:
            return
        for scorer in self.scorers:
            name = f"score.{scorer.name}"
            try:
                value = await scorer.score(dict(row.inputs), answer)
            except Exception as exc:
                state.scorer_errors.append(f"row {row.prompt_id} ({record['model']}): {exc}")
                record[name] = math.nan
                continue
            extras = getattr(value, "extras", None)
            if extras is not None and hasattr(value, "value"):
                record.update(extras)
                value = value.value
            record[name] = math.nan if value is None else float(value)


@dataclass
class _State:
    spent: float = 0.0
    reserved: float = 0.0
    errors: int = 0
    cached: int = 0
    stopped: str | None = None
    reason: str = ""
    fatal: Exception | None = None  # raised by run() once the calls in flight are done

    def __post_init__(self) -> None:
        self.scorer_errors: list[str] = []
        self.costs: dict[int, list[float]] = {}  # live calls' costs, by model

    def mean_cost(self, model: int) -> float:
        """What a live call of ``model`` has cost on average so far (0 before any)."""
        costs = self.costs.get(model)
        return sum(costs) / len(costs) if costs else 0.0

    def stop(self, why: str, reason: str) -> None:
        if self.stopped is None:
            self.stopped, self.reason = why, reason


def _nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _progress_bar(total: int, show: bool) -> Any:
    if not show:
        return None
    from tqdm.auto import tqdm  # type: ignore[import-untyped]

    return tqdm(total=total, unit="call", desc="sweep")
