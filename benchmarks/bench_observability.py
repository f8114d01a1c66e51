"""The observability benchmark: what observing costs the bus, and how fast spans_df is.

1. The bus benchmark's sequential-awaited and fire-and-forget figures with observability
   on (in-memory span buffer and event log, plus a JSONL handler writing every span and
   every event) against off, in the same run, rounds alternating which goes first.
   Budget: under 5% slower (ratio on/off >= 0.95).
2. `spans_df()` over 100,000 buffered LLM-call spans (15 attributes each). Bar: < 1 s.
3. Memory held per buffered span, and so what the default buffer holds at most.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path
from time import perf_counter_ns
from typing import Any

from bench_bus import QUICK, Sink, Sizes, flood, sequential
from report_file import save_report  # benchmarks/ is on sys.path: these run as scripts

from llmgine import observability
from llmgine.bus import MessageBus
from llmgine.observability import llm_span
from llmgine.observability._buffer import DEFAULT_SPAN_CAPACITY
from llmgine.observability._events import DEFAULT_EVENT_CAPACITY

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "observability.json"
FULL = Sizes()


async def bus_side(
    scenario: str, sizes: Sizes, observed: bool, jsonl: Path, *, warm: bool = True
) -> dict[str, float]:
    """One side of one round. ``warm`` first sends enough events to fill the event log, as
    in a session that has run a while; both sides do it, so they stay alike."""
    from bench_bus import Ping

    sink, bus = Sink(), MessageBus()
    bus.on_event(Ping, sink.handle)
    if observed:
        observability.enable(bus, jsonl=jsonl)  # spans to the file, events in memory
    await bus.start()
    warm_up = DEFAULT_EVENT_CAPACITY if warm else 0
    for i in range(warm_up):
        await bus.publish(Ping(n=i), wait=True)
    if scenario == "seq":
        figures = await sequential(lambda e: bus.publish(e, wait=True), sizes)
        expected = sizes.sequential + sizes.latency
    else:
        figures, expected = await flood(bus.publish, bus.drain, "fire", sizes), sizes.fire
    await bus.stop()
    expected += warm_up
    if observed:
        obs = observability.current()
        assert obs is not None
        assert obs.jsonl is not None
        if obs.events_seen != expected:
            raise RuntimeError(f"observed {obs.events_seen} events of {expected}")
        obs.flush()
        observability.disable()
    if sink.seen != expected:
        raise RuntimeError(f"handler saw {sink.seen} events, expected {expected}")
    return figures


def measure_overhead(
    sizes: Sizes, folder: Path, rounds: dict[str, int], *, warm: bool = True
) -> dict[str, Any]:
    """Each round runs both sides back to back (alternating which goes first); the verdict
    is the median of the per-round ratios, which shrugs off a slow moment on a shared box."""
    values: dict[str, dict[str, list[float]]] = {"off": {}, "on": {}}
    print("warm-up round (not counted)", flush=True)
    for observed in (False, True):
        for scenario in ("seq", "fire"):
            asyncio.run(bus_side(scenario, QUICK, observed, folder / "warm.jsonl"))
    for r in range(max(rounds.values())):
        print(f"round {r + 1}/{max(rounds.values())}", flush=True)
        order = (False, True) if r % 2 == 0 else (True, False)
        for scenario in ("seq", "fire"):
            if r >= rounds[scenario]:
                continue
            for observed in order:
                gc.collect()
                path = folder / f"r{r}-{scenario}.jsonl"
                figures = asyncio.run(bus_side(scenario, sizes, observed, path, warm=warm))
                side = values["on" if observed else "off"]
                for key, value in figures.items():
                    side.setdefault(key, []).append(value)
    out: dict[str, Any] = {}
    for key in ("seq_eps", "fire_eps", "seq_p99_ms"):
        if key not in values["on"]:
            continue
        on, off = values["on"][key], values["off"][key]
        paired = [a / b for a, b in zip(on, off, strict=True)]
        ratio = statistics.median(paired)
        out[key] = {
            "off": {"rounds": off, "median": statistics.median(off)},
            "on": {"rounds": on, "median": statistics.median(on)},
            "paired_ratios": paired,
            "ratio": ratio,  # on / off, median of the rounds' ratios
            "pass": ratio >= 0.95 if key.endswith("_eps") else None,
        }
    return out


def fill_buffer(count: int) -> observability.Observability:
    obs = observability.enable(span_capacity=count)
    for i in range(count):
        with llm_span(
            provider="openai",
            model="gpt-4o-mini",
            session_id=f"session-{i % 50}",
            server_address="api.openai.com",
            temperature=0.2,
            max_tokens=512,
        ) as call:
            call.response(
                model="gpt-4o-mini-2024-07-18",
                response_id=f"chatcmpl-{i}",
                finish_reasons=["stop"],
                input_tokens=100 + i % 7,
                output_tokens=20 + i % 5,
                cost_usd=0.0001,
            )
    return obs


def measure_frames(count: int, rounds: int) -> dict[str, Any]:
    obs = fill_buffer(count)
    assert len(obs.buffer) == count
    times: list[float] = []
    for _ in range(rounds):
        gc.collect()
        started = perf_counter_ns()
        frame = obs.spans_df()
        times.append((perf_counter_ns() - started) / 1e9)
        assert len(frame) == count
    columns = len(frame.columns)
    observability.disable()
    median = statistics.median(times)
    return {"spans": count, "columns": columns, "seconds": times, "median_s": median,
            "pass": median < 1.0}  # fmt: skip


def measure_memory(count: int) -> dict[str, Any]:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    obs = fill_buffer(count)
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    observability.disable()
    del obs
    per_span = held / count
    return {
        "spans": count,
        "bytes_per_span": per_span,
        "default_capacity": DEFAULT_SPAN_CAPACITY,
        "default_capacity_mb": per_span * DEFAULT_SPAN_CAPACITY / 1e6,
    }


def run(*, quick: bool = False, json_path: Path = DEFAULT_JSON) -> dict[str, Any]:
    sizes = QUICK if quick else FULL
    with tempfile.TemporaryDirectory() as folder:
        # Sequential rounds are short, so they get more of them: the box is noisy.
        rounds = {"seq": 4, "fire": 2} if quick else {"seq": 31, "fire": 15}
        overhead = measure_overhead(sizes, Path(folder), rounds)
        # For the record: the first events after enable(), while the log fills memory.
        cold_rounds = {"seq": 4, "fire": 0} if quick else {"seq": 31, "fire": 0}
        cold = measure_overhead(sizes, Path(folder), cold_rounds, warm=False)
    frames = measure_frames(10_000 if quick else 100_000, 2 if quick else 3)
    memory = measure_memory(2_000 if quick else 10_000)
    report = {
        "benchmark": "observability",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "quick": quick,
        "overhead": overhead,
        "overhead_cold_seq": cold["seq_eps"],
        "spans_df": frames,
        "memory": memory,
    }
    print(format_table(report))
    save_report(report, json_path)
    return report


def format_table(report: dict[str, Any]) -> str:
    lines = ["figure                      off            on             on/off  budget"]
    labels = {"seq_eps": "1 sequential awaited", "fire_eps": "2 fire-and-forget"}
    for key, label in labels.items():
        fig = report["overhead"][key]
        verdict = "PASS" if fig["pass"] else "FAIL"
        lines.append(
            f"{label:<27} {fig['off']['median']:>10,.0f}/s  {fig['on']['median']:>10,.0f}/s"
            f"  {fig['ratio']:.3f}   >= 0.95 {verdict}"
        )
    p99 = report["overhead"]["seq_p99_ms"]
    lines.append(
        f"{'1 awaited latency p99':<27} {p99['off']['median']:>9.4f} ms  "
        f"{p99['on']['median']:>9.4f} ms  {p99['ratio']:.3f}"
    )
    cold = report["overhead_cold_seq"]
    lines.append(
        f"{'1 cold (log filling)':<27} {cold['off']['median']:>10,.0f}/s  "
        f"{cold['on']['median']:>10,.0f}/s  {cold['ratio']:.3f}   (no budget: one-off)"
    )
    frames, memory = report["spans_df"], report["memory"]
    lines.append(
        f"spans_df of {frames['spans']:,} spans ({frames['columns']} columns): "
        f"{frames['median_s']:.3f} s median  < 1 s {'PASS' if frames['pass'] else 'FAIL'}"
    )
    lines.append(
        f"memory: {memory['bytes_per_span']:,.0f} bytes per buffered span; the default "
        f"{memory['default_capacity']:,} spans hold ~{memory['default_capacity_mb']:.0f} MB"
    )
    lines.append("on = enable(bus, jsonl=...): span buffer, event log, JSONL file of spans")
    lines.append("ratio = median over rounds of (on / off), both sides run back to back;")
    lines.append(f"both sides first send {DEFAULT_EVENT_CAPACITY:,} events (a full event log)")
    return "\n".join(lines)
