"""The bus benchmark: llmgine's `MessageBus` against a bare `asyncio.Queue` floor.

The floor runs in the same process and run, with the same event class built inside the
timed loop and the same handler, so the ratios say what the bus itself costs on this
machine rather than how fast the machine happens to be today. Each scenario and side gets
a fresh event loop; rounds alternate which side goes first, and medians are reported
because the box is shared and noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import math
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from time import perf_counter_ns
from typing import Any

from report_file import save_report  # benchmarks/ is on sys.path: these run as scripts

from llmgine.bus import Event, MessageBus

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "bus.json"
FLOOR_QUEUE_SIZE = 10_000  # the same bound as MessageBus's default queue_capacity


class Ping(Event):
    """A small event, as in the seed's measurement."""

    n: int


class Sink:
    """The one async handler both sides call; its count proves every event arrived."""

    __slots__ = ("seen",)

    def __init__(self) -> None:
        self.seen = 0

    async def handle(self, event: Ping) -> None:
        self.seen += 1


@dataclass(frozen=True)
class Sizes:
    sequential: int = 10_000  # awaited publishes timed as a whole
    latency: int = 1_000  # awaited publishes timed one by one
    fire: int = 100_000  # fire-and-forget publishes
    producers: int = 100  # concurrent producer tasks sharing `fire` events (must divide it)
    rounds: int = 5


FULL = Sizes()
QUICK = Sizes(sequential=1_000, latency=200, fire=10_000, rounds=2)

Figures = dict[str, float]


FIGURES = {  # key -> (label, unit); higher is better for events/s, lower for ms
    "seq_eps": ("1 sequential awaited", "events/s"),
    "seq_p50_ms": ("1 awaited latency p50", "ms"),
    "seq_p99_ms": ("1 awaited latency p99", "ms"),
    "fire_eps": ("2 fire-and-forget", "events/s"),
    "producers_eps": ("3 100 producers", "events/s"),
}


def _check(sink: Sink, expected: int, what: str) -> None:
    # A benchmark that lost events would be measuring something else: fail loudly.
    if sink.seen != expected:
        raise RuntimeError(f"{what}: handler saw {sink.seen} events, expected {expected}")


def _percentile_ms(samples_ns: Sequence[int], q: float) -> float:
    """Nearest-rank percentile: an observed sample, never an interpolation."""
    ordered = sorted(samples_ns)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] / 1e6


def _rate(events: int, elapsed_ns: int) -> float:
    return events / (elapsed_ns / 1e9)


# -- the timed loops, shared by both sides so that only `send` and `settle` differ --------

Send = Callable[[Ping], Awaitable[object]]


async def sequential(send: Send, sizes: Sizes) -> Figures:
    """Awaited sends one after another: throughput, then latency of each one."""
    gc.collect()  # setup garbage must not be collected on the clock
    started = perf_counter_ns()
    for i in range(sizes.sequential):
        await send(Ping(n=i))
    elapsed = perf_counter_ns() - started
    latencies: list[int] = []
    for i in range(sizes.latency):
        t0 = perf_counter_ns()
        await send(Ping(n=i))
        latencies.append(perf_counter_ns() - t0)
    return {
        "seq_eps": _rate(sizes.sequential, elapsed),
        "seq_p50_ms": _percentile_ms(latencies, 0.50),
        "seq_p99_ms": _percentile_ms(latencies, 0.99),
    }


async def flood(
    send: Send, settle: Callable[[], Awaitable[None]], scenario: str, sizes: Sizes
) -> Figures:
    """Producers send ``sizes.fire`` events without waiting (one producer for "fire"),
    then ``settle`` waits until all were handled; events/s over the whole."""
    producers = 1 if scenario == "fire" else sizes.producers
    each = sizes.fire // producers

    async def produce() -> None:
        for i in range(each):
            await send(Ping(n=i))

    gc.collect()
    started = perf_counter_ns()
    if producers == 1:
        await produce()  # in the caller's task, as a plain publishing loop would be
    else:
        await asyncio.gather(*(produce() for _ in range(producers)))
    await settle()
    return {f"{scenario}_eps": _rate(sizes.fire, perf_counter_ns() - started)}


# -- the two sides: one scenario each, on the fresh event loop asyncio.run gives it ------

SCENARIOS = ("seq", "fire", "producers")


async def llmgine_side(scenario: str, sizes: Sizes) -> Figures:
    sink, bus = Sink(), MessageBus()  # defaults: capacity 10,000, backpressure "block"
    bus.on_event(Ping, sink.handle)  # bus-scoped: the seed's single handler
    await bus.start()  # the floor's consumer task also exists before the clock starts
    if scenario == "seq":
        # A lambda (a plain call, no extra coroutine frame) adds wait=True to each publish.
        figures = await sequential(lambda e: bus.publish(e, wait=True), sizes)
        expected = sizes.sequential + sizes.latency
    else:
        figures, expected = await flood(bus.publish, bus.drain, scenario, sizes), sizes.fire
    await bus.stop()
    _check(sink, expected, f"llmgine {scenario}")
    return figures


async def floor_side(scenario: str, sizes: Sizes) -> Figures:
    sink = Sink()
    if scenario == "seq":
        # A round trip: the consumer resolves the future once the handler is done.
        loop = asyncio.get_running_loop()
        trips: asyncio.Queue[tuple[Ping, asyncio.Future[None]]] = asyncio.Queue()

        async def serve() -> None:
            while True:
                event, done = await trips.get()
                await sink.handle(event)
                done.set_result(None)

        async def round_trip(event: Ping) -> None:
            done = loop.create_future()
            await trips.put((event, done))
            await done

        consumer = asyncio.create_task(serve())
        figures = await sequential(round_trip, sizes)
        expected = sizes.sequential + sizes.latency
    else:
        queue: asyncio.Queue[Ping] = asyncio.Queue(maxsize=FLOOR_QUEUE_SIZE)

        async def consume() -> None:
            while True:
                event = await queue.get()
                await sink.handle(event)
                queue.task_done()

        consumer = asyncio.create_task(consume())
        figures, expected = await flood(queue.put, queue.join, scenario, sizes), sizes.fire
    consumer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await consumer
    _check(sink, expected, f"floor {scenario}")
    return figures


# -- running and reporting -------------------------------------------------------------

Rounds = dict[str, dict[str, list[float]]]  # side -> figure key -> one value per round


def run_round(sizes: Sizes, llmgine_first: bool) -> dict[str, Figures]:
    """One round of every scenario, each side on a fresh event loop."""
    result: dict[str, Figures] = {"llmgine": {}, "floor": {}}
    sides = (("llmgine", llmgine_side), ("floor", floor_side))
    for scenario in SCENARIOS:
        for side, measure in sides if llmgine_first else sides[::-1]:
            gc.collect()
            result[side].update(asyncio.run(measure(scenario, sizes)))
    return result


def measure_all(sizes: Sizes) -> Rounds:
    # Warm-up: imports, pydantic's first validations, the allocator; quick sizes suffice.
    print("warm-up round (not counted)", flush=True)  # flush: stdout may be a pipe (CI)
    run_round(QUICK, llmgine_first=True)
    rounds: Rounds = {"llmgine": {}, "floor": {}}
    for r in range(sizes.rounds):
        print(f"round {r + 1}/{sizes.rounds}", flush=True)
        # Alternate which side goes first, so drift on a shared box hits both alike.
        for side, figures in run_round(sizes, llmgine_first=r % 2 == 0).items():
            for key, value in figures.items():
                rounds[side].setdefault(key, []).append(value)
    return rounds


def _revision() -> str:
    """The commit measured (``-dirty`` with local changes): results are per code version."""
    git = ["git", "-C", str(Path(__file__).resolve().parent), "describe", "--always", "--dirty"]
    try:
        return subprocess.run(git, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def summarize(rounds: Rounds, sizes: Sizes) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for key, (label, unit) in FIGURES.items():
        pair = rounds["llmgine"][key], rounds["floor"][key]
        ours, floor = statistics.median(pair[0]), statistics.median(pair[1])
        figures[key] = {
            "label": label,
            "unit": unit,
            "llmgine": {"rounds": rounds["llmgine"][key], "median": ours},
            "floor": {"rounds": rounds["floor"][key], "median": floor},
            "ratio": ours / floor,  # llmgine / floor, for every figure
            # Per round, both sides ran back to back: these ratios shrug off slow rounds.
            "paired_ratios": [a / b for a, b in zip(*pair, strict=True)],
        }
    p99 = figures["seq_p99_ms"]["llmgine"]["median"]
    checks = {  # figure key -> (bar, rule, passed); a bar passes when all its checks do
        "seq_eps": (1, "ratio >= 0.65", figures["seq_eps"]["ratio"] >= 0.65),
        "seq_p99_ms": (1, "p99 < 0.05 ms", p99 < 0.05),
        "fire_eps": (2, "ratio >= 0.5", figures["fire_eps"]["ratio"] >= 0.5),
    }
    bars: list[dict[str, Any]] = []
    for number in (1, 2):
        mine = {k: {"rule": r, "pass": ok} for k, (n, r, ok) in checks.items() if n == number}
        rule = " and ".join(f"{k} {c['rule']}" for k, c in mine.items())
        ok = all(c["pass"] for c in mine.values())
        bars.append({"bar": number, "rule": rule, "checks": mine, "pass": ok})
    return {
        "benchmark": "bus",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": sys.version,
        "platform": platform.platform(),
        "llmgine_revision": _revision(),
        "sizes": asdict(sizes),
        "quick": sizes == QUICK,
        "figures": figures,
        "bars": bars,
        "all_bars_pass": all(bar["pass"] for bar in bars),
    }


def _fmt(value: float, unit: str) -> str:
    return f"{value:,.0f}/s" if unit == "events/s" else f"{value:.4f} ms"


def format_table(report: dict[str, Any]) -> str:
    verdicts = {
        key: f"bar {bar['bar']}: {check['rule']} {'PASS' if check['pass'] else 'FAIL'}"
        for bar in report["bars"]
        for key, check in bar["checks"].items()
    }
    head = ("figure", "llmgine", "floor", "ratio", "bar")
    rows = [head] + [
        (
            fig["label"],
            _fmt(fig["llmgine"]["median"], fig["unit"]),
            _fmt(fig["floor"]["median"], fig["unit"]),
            f"{fig['ratio']:.2f}x",
            verdicts.get(key, ""),
        )
        for key, fig in report["figures"].items()
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(f"medians of {report['sizes']['rounds']} rounds; ratio = llmgine / floor")
    for bar in report["bars"]:
        lines.append(f"BAR {bar['bar']} {'PASS' if bar['pass'] else 'FAIL'}: {bar['rule']}")
    if not report["all_bars_pass"]:
        lines.append("SOME BARS FAILED (a measurement, not a test: the exit status stays 0)")
    return "\n".join(line.rstrip() for line in lines)


def run(*, quick: bool = False, json_path: Path = DEFAULT_JSON) -> dict[str, Any]:
    """Measure, print the table and write the JSON report; returns the report."""
    sizes = QUICK if quick else FULL
    report = summarize(measure_all(sizes), sizes)
    print(format_table(report))
    save_report(report, json_path)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write JSON")
    args = parser.parse_args(argv)
    run(quick=args.quick, json_path=args.json)
    return 0  # a measurement, not a test: failed bars are reported, not an error


if __name__ == "__main__":
    raise SystemExit(main())
