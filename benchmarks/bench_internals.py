"""What using only public APIs of asyncio and OpenTelemetry costs llmgine, measured.

llmgine once read or wrote internals of both; issue 15 replaced them with public APIs
where the cost allowed. This benchmark keeps the decisions honest:

1. ``running_loop``: finding the running loop (or none) as the span fan-out does for every
   span start and end: the public ``asyncio.get_running_loop()`` in a try/except against
   the private ``asyncio._get_running_loop()``, in a loop and in a thread without one (ns
   per call).
2. ``spans``: one LLM-like span (15 attributes, started and ended) through llmgine's fan-out
   into the span buffer, from llmgine's `LiteTracer` (its finished span a public
   ``ReadableSpan``) and from the OpenTelemetry SDK's own tracer provider (everything
   public, sampler and limits included), in a thread without a loop (handed over at once)
   and in a loop (held for the idle turn; the caller's cost and the hand-over's).
3. ``idle``: what `llmgine._idle.when_idle` (which reads asyncio's private ready queue, kept
   in that one module) buys over the public ``loop.call_soon``: the latency of one OpenAI
   call through llmgine (a `Generate` command, observability on, against the loopback
   server of ``bench_llm.py``) with llmgine's deferred work handed to one or the other,
   switched call by call.

Medians of rounds; both sides of each comparison run in the same round.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import threading
from collections.abc import Callable
from pathlib import Path
from time import perf_counter_ns
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from report_file import save_report  # benchmarks/ is on sys.path: these run as scripts

from llmgine._redact import default_redactor
from llmgine.observability._buffer import RedactingFanout, SpanBuffer
from llmgine.observability._tracer import LiteTracer

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "internals.json"

ATTRIBUTES: dict[str, Any] = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
    "gen_ai.response.id": "chatcmpl-123",
    "gen_ai.response.finish_reasons": ["stop"],
    "gen_ai.usage.input_tokens": 12,
    "gen_ai.usage.output_tokens": 7,
    "gen_ai.request.temperature": 0.2,
    "gen_ai.request.max_tokens": 256,
    "server.address": "127.0.0.1",
    "server.port": 8080,
    "llmgine.session.id": "session-1",
    "llmgine.cost.usd": 0.00012,
    "llmgine.latency.ms": 412.5,
}


# -- 1. the running loop ---------------------------------------------------------------


def _public_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _private_loop() -> asyncio.AbstractEventLoop | None:
    return asyncio._get_running_loop()  # the alternative measured, not used by llmgine


def _ns_per_call(fn: Callable[[], object], calls: int) -> float:
    t0 = perf_counter_ns()
    for _ in range(calls):
        fn()
    return (perf_counter_ns() - t0) / calls


def measure_running_loop(calls: int, rounds: int) -> dict[str, Any]:
    out: dict[str, dict[str, list[float]]] = {
        where: {"public": [], "private": []} for where in ("no_loop", "in_loop")
    }

    async def in_loop() -> None:
        for side, fn in (("public", _public_loop), ("private", _private_loop)):
            out["in_loop"][side].append(_ns_per_call(fn, calls))

    for r in range(rounds):
        sides = [("public", _public_loop), ("private", _private_loop)]
        for side, fn in sides if r % 2 == 0 else sides[::-1]:
            out["no_loop"][side].append(_ns_per_call(fn, calls))
        asyncio.run(in_loop())
    return {
        where: {side: statistics.median(v) for side, v in sides_.items()}
        for where, sides_ in out.items()
    }


# -- 2. spans --------------------------------------------------------------------------


def _lite(fanout: RedactingFanout) -> Any:
    return LiteTracer(fanout, Resource.create({"service.name": "bench"}))


def _sdk(fanout: RedactingFanout) -> Any:
    provider = TracerProvider(resource=Resource.create({"service.name": "bench"}))
    provider.add_span_processor(fanout)
    return provider.get_tracer("llmgine")


def _one_side(make: Callable[[RedactingFanout], Any], spans: int) -> dict[str, float]:
    """µs per span in a thread without a loop, and in a loop (caller, then hand-over)."""
    buffer = SpanBuffer(spans * 2)
    fanout = RedactingFanout(default_redactor, [buffer])
    tracer = make(fanout)
    empty = Context()

    def burst() -> int:
        t0 = perf_counter_ns()
        for _ in range(spans):
            tracer.start_span("chat gpt-4o-mini", empty, attributes=ATTRIBUTES).end()
        return perf_counter_ns() - t0

    out: dict[str, float] = {}
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(burst()))
    thread.start()
    thread.join()
    out["no_loop_us"] = result[0] / spans / 1000

    async def in_loop() -> None:
        caller = 0
        handing = 0
        # Bursts below the fan-out's hold limit, so each is held and handed over once.
        for _ in range(spans // 100):
            t0 = perf_counter_ns()
            for _ in range(100):
                tracer.start_span("chat gpt-4o-mini", empty, attributes=ATTRIBUTES).end()
            t1 = perf_counter_ns()
            fanout.hand_over()
            caller += t1 - t0
            handing += perf_counter_ns() - t1
        out["in_loop_caller_us"] = caller / spans / 1000
        out["in_loop_hand_over_us"] = handing / spans / 1000

    asyncio.run(in_loop())
    assert len(buffer) == spans + spans // 100 * 100, "spans went missing"
    fanout.close()
    return out


def measure_spans(spans: int, rounds: int) -> dict[str, Any]:
    sides = {"lite": _lite, "sdk": _sdk}
    per: dict[str, list[dict[str, float]]] = {side: [] for side in sides}
    for r in range(rounds):
        order = list(sides.items())
        for side, make in order if r % 2 == 0 else order[::-1]:
            gc.collect()
            per[side].append(_one_side(make, spans))
    return {
        side: {key: statistics.median(x[key] for x in rounds_) for key in rounds_[0]}
        for side, rounds_ in per.items()
    }


# -- 3. the idle turn ------------------------------------------------------------------


def _next_turn(loop: asyncio.AbstractEventLoop, fn: Callable[[], object]) -> None:
    """The public alternative to `when_idle`: the loop's next turn, busy or not."""
    loop.call_soon(fn)


Scheduler = Callable[[asyncio.AbstractEventLoop, Callable[[], object]], None]


async def _idle_round(url: str, calls: int) -> dict[str, float]:
    """One round: ``calls`` OpenAI calls through llmgine (observability on, as in
    bench_llm.py) per side, the side switched call by call so both meet the same machine;
    the per-call median (µs) of each side."""
    import bench_llm  # run as a script from benchmarks/, as run.py is

    from llmgine import observability
    from llmgine._idle import when_idle
    from llmgine.bus import MessageBus, _transport
    from llmgine.llm import ChatMessage, Generate, LLMRequest, LLMService, get_model
    from llmgine.observability import _buffer

    def use(schedule: Scheduler) -> None:
        for module in (_transport, _buffer):  # the two users of when_idle
            vars(module)["when_idle"] = schedule

    bus = MessageBus()
    observability.enable(bus)
    model = get_model(
        "openai:gpt-4o-mini", api_key="sk-bench", base_url=f"{url}/v1", max_tokens=256
    )
    LLMService(bus, model).install()
    request = LLMRequest(messages=[ChatMessage.user(bench_llm.PROMPT)])
    sides: dict[str, Scheduler] = {"when_idle": when_idle, "call_soon": _next_turn}
    samples: dict[str, list[int]] = {side: [] for side in sides}
    try:
        for i in range(calls * 2 + 100):
            side = "when_idle" if i % 2 == 0 else "call_soon"
            use(sides[side])
            t0 = perf_counter_ns()
            result = await bus.execute(Generate(request=request))
            elapsed = perf_counter_ns() - t0
            await bus.drain()  # this call's deferred work is done before the next starts
            if "Paris" not in result.unwrap().text:
                raise RuntimeError("unexpected answer from the loopback server")
            if i >= 100:  # the first 100 warm the pools and the code paths
                samples[side].append(elapsed)
    finally:
        use(when_idle)
        await bus.stop()
        observability.disable()
        await model.aclose()
    return {side: statistics.median(v) / 1000 for side, v in samples.items()}


def measure_idle(calls: int, rounds: int) -> dict[str, Any]:
    """Per-call µs of an OpenAI call through llmgine with its deferred work (bus delivery,
    span hand-over) on `when_idle` against on ``call_soon``; medians over rounds."""
    import bench_llm

    server, url = bench_llm.start_server()
    try:
        per = [asyncio.run(_idle_round(url, calls)) for _ in range(rounds)]
    finally:
        server.terminate()
        server.wait()
    return {
        "rounds": per,
        "when_idle_us": statistics.median(r["when_idle"] for r in per),
        "call_soon_us": statistics.median(r["call_soon"] for r in per),
        "saved_us": statistics.median(r["call_soon"] - r["when_idle"] for r in per),
    }


# -- report ----------------------------------------------------------------------------


def run(*, quick: bool = False, json_path: Path = DEFAULT_JSON) -> dict[str, Any]:
    calls, spans, rounds = (100_000, 2_000, 3) if quick else (1_000_000, 20_000, 7)
    report: dict[str, Any] = {
        "benchmark": "internals",
        "quick": quick,
        "running_loop_ns": measure_running_loop(calls, rounds),
        "spans_us": measure_spans(spans, rounds),
        "idle_us": measure_idle(300 if quick else 2_000, 3 if quick else 5),
    }
    print(format_table(report))
    save_report(report, json_path)
    return report


def format_table(report: dict[str, Any]) -> str:
    loop = report["running_loop_ns"]
    lines = ["finding the running loop     public (try/except)  private   (ns per call)"]
    for where, label in (("in_loop", "in a loop"), ("no_loop", "in a thread without one")):
        lines.append(
            f"  {label:<26} {loop[where]['public']:>10.0f}  {loop[where]['private']:>10.0f}"
        )
    spans = report["spans_us"]
    lines.append(
        "one LLM span (µs)            no loop  in loop: caller  hand-over   (into the buffer)"
    )
    for side, label in (("lite", "llmgine LiteTracer"), ("sdk", "OpenTelemetry SDK tracer")):
        s = spans[side]
        lines.append(
            f"  {label:<26} {s['no_loop_us']:>7.2f}  {s['in_loop_caller_us']:>15.2f}  "
            f"{s['in_loop_hand_over_us']:>9.2f}"
        )
    idle = report["idle_us"]
    lines.append(
        "one OpenAI call through llmgine (µs, p50), deferred work on: when_idle "
        f"{idle['when_idle_us']:.0f}, call_soon {idle['call_soon_us']:.0f}; when_idle "
        f"saves {idle['saved_us']:+.0f} µs a call"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    run(quick="--quick" in sys.argv)
