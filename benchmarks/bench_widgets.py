"""The widget benchmark: what an open `EventStream` costs the bus, and whether it keeps up.

1. The bus benchmark's sequential-awaited and fire-and-forget figures with an EventStream
   attached (its throttled flusher running on the same loop) against none, in the same
   run, rounds alternating which goes first; the verdict is the median of the per-round
   ratios. Budget: at most 10% slower (ratio attached/none >= 0.90).
2. A paced 50,000 events/s for a few seconds with the stream attached: renders per second
   (about ten), the longest flush (how long the loop was held), the flusher's share of the
   loop's time, and the worst lateness of a 10 ms heartbeat timer against the same run
   without the widget (the kernel must not freeze).

The widget's comm is replaced by one that JSON-encodes every message as a kernel would
(no front end is connected), so the cost of sending rows is counted too.
"""

from __future__ import annotations

import asyncio
import gc
import json
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from time import perf_counter
from typing import Any

import comm
from bench_bus import QUICK, Ping, Sink, Sizes, flood, sequential
from comm.base_comm import BaseComm
from report_file import save_report  # benchmarks/ is on sys.path: these run as scripts

from llmgine.bus import MessageBus
from llmgine.notebook import EventStream
from llmgine.notebook._event_feed import DEFAULT_CAPACITY

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "widgets.json"
# Floods long enough for the flusher to run several times a round (at 0.1 s a flush, the
# bus benchmark's 10,000-event quick flood would finish before the first one).
FULL = Sizes(fire=300_000)
QUICK_FLOOD = Sizes(sequential=5_000, latency=500, fire=100_000, rounds=2)
BUDGET = 0.90  # attached / none


class JsonComm(BaseComm):
    """A comm with no front end that still pays for JSON-encoding every message."""

    sent_bytes = 0
    messages = 0

    def publish_msg(self, msg_type: str, data: Any = None, metadata: Any = None,
                    buffers: Any = None, **keys: Any) -> None:  # fmt: skip
        JsonComm.sent_bytes += len(json.dumps(data, default=str))
        JsonComm.messages += 1


@contextmanager
def json_comms() -> Iterator[None]:
    previous = comm.create_comm
    comm.create_comm = JsonComm
    try:
        yield
    finally:
        comm.create_comm = previous


async def bus_side(scenario: str, sizes: Sizes, attached: bool) -> dict[str, float]:
    """One side of one round. Both sides first send ``DEFAULT_CAPACITY`` events, so the
    stream's buffer is full (as after a while in a notebook) and the GC sees it."""
    sink, bus = Sink(), MessageBus()
    bus.on_event(Ping, sink.handle)
    stream = EventStream(bus) if attached else None
    await bus.start()
    for i in range(DEFAULT_CAPACITY):
        await bus.publish(Ping(n=i))
    await bus.drain()
    if stream is not None:
        await stream.next_flush()
        ticks_before = stream.ticks
    if scenario == "seq":
        figures = await sequential(lambda e: bus.publish(e, wait=True), sizes)
        expected = sizes.sequential + sizes.latency
    else:
        figures, expected = await flood(bus.publish, bus.drain, "fire", sizes), sizes.fire
    await bus.stop()
    expected += DEFAULT_CAPACITY
    if stream is not None:
        figures[f"{scenario}_ticks"] = stream.ticks - ticks_before
        stream.flush()
        if stream.seen != expected or len(stream.rows) != stream.feed.max_rows:
            raise RuntimeError(f"the stream saw {stream.seen} events of {expected}")
        stream.close()
    if sink.seen != expected:
        raise RuntimeError(f"handler saw {sink.seen} events, expected {expected}")
    return figures


def measure_overhead(sizes: Sizes, rounds: dict[str, int]) -> dict[str, Any]:
    values: dict[str, dict[str, list[float]]] = {"none": {}, "attached": {}}
    print("warm-up round (not counted)", flush=True)
    for attached in (False, True):
        for scenario in ("seq", "fire"):
            asyncio.run(bus_side(scenario, QUICK, attached))
    for r in range(max(rounds.values())):
        print(f"round {r + 1}/{max(rounds.values())}", flush=True)
        order = (False, True) if r % 2 == 0 else (True, False)
        for scenario in ("seq", "fire"):
            if r >= rounds[scenario]:
                continue
            for attached in order:
                gc.collect()
                figures = asyncio.run(bus_side(scenario, sizes, attached))
                side = values["attached" if attached else "none"]
                for key, value in figures.items():
                    side.setdefault(key, []).append(value)
    out: dict[str, Any] = {}
    for key in ("seq_eps", "fire_eps", "seq_p99_ms"):
        on, off = values["attached"][key], values["none"][key]
        paired = [a / b for a, b in zip(on, off, strict=True)]
        ratio = statistics.median(paired)
        out[key] = {
            "none": {"rounds": off, "median": statistics.median(off)},
            "attached": {"rounds": on, "median": statistics.median(on)},
            "paired_ratios": paired,
            "ratio": ratio,
            "pass": ratio >= BUDGET if key.endswith("_eps") else None,
        }
    for key in ("seq_ticks", "fire_ticks"):
        out[key] = statistics.median(values["attached"][key])
    return out


async def paced_side(rate: int, seconds: float, attached: bool) -> dict[str, float]:
    """Publish ``rate`` events a second, in bursts every 10 ms, while a 10 ms heartbeat
    timer notes how late it fires (how long the loop was held)."""
    sink, bus = Sink(), MessageBus()
    bus.on_event(Ping, sink.handle)
    stream = EventStream(bus) if attached else None
    await bus.start()
    loop = asyncio.get_running_loop()
    lateness: list[float] = []
    beat = 0.01
    stopped = False

    def heartbeat(due: float) -> None:
        lateness.append(loop.time() - due)
        if not stopped:
            loop.call_at(due + beat, heartbeat, due + beat)

    loop.call_at(loop.time() + beat, heartbeat, loop.time() + beat)
    burst = int(rate * beat)
    total = int(rate * seconds)
    started = perf_counter()
    sent = 0
    while sent < total:
        for _ in range(burst):
            await bus.publish(Ping(n=sent))
            sent += 1
        await asyncio.sleep(max(0.0, started + sent / rate - perf_counter()))
    await bus.drain()
    elapsed = perf_counter() - started
    stopped = True
    await bus.stop()
    figures = {
        "achieved_eps": sent / elapsed,
        "heartbeat_max_late_ms": max(lateness) * 1000,
        "heartbeat_p99_late_ms": sorted(lateness)[int(len(lateness) * 0.99)] * 1000,
    }
    if stream is not None:
        await stream.next_flush()
        if stream.seen != sent:
            raise RuntimeError(f"the stream saw {stream.seen} events of {sent}")
        figures.update(
            renders_per_s=stream.renders / elapsed,
            longest_flush_ms=stream._ticker.longest * 1000,
            flusher_share=stream._ticker.busy / elapsed,
            comm_kb_per_s=JsonComm.sent_bytes / 1024 / elapsed,
        )
        stream.close()
    return figures


def measure_paced(rate: int, seconds: float, rounds: int) -> dict[str, Any]:
    sides: dict[str, list[dict[str, float]]] = {"none": [], "attached": []}
    for r in range(rounds):
        for attached in (False, True) if r % 2 == 0 else (True, False):
            gc.collect()
            JsonComm.sent_bytes = 0
            sides["attached" if attached else "none"].append(
                asyncio.run(paced_side(rate, seconds, attached))
            )
    out: dict[str, Any] = {"rate": rate, "seconds": seconds, "rounds": rounds}
    for side, results in sides.items():
        out[side] = {k: statistics.median(r[k] for r in results) for k in results[0]}
    return out


def run(*, quick: bool = False, json_path: Path = DEFAULT_JSON) -> dict[str, Any]:
    sizes = QUICK_FLOOD if quick else FULL
    with json_comms():
        rounds = {"seq": 4, "fire": 3} if quick else {"seq": 31, "fire": 15}
        overhead = measure_overhead(sizes, rounds)
        paced = measure_paced(50_000, 1.0 if quick else 3.0, 2 if quick else 5)
    report = {
        "benchmark": "widgets",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "quick": quick,
        "overhead": overhead,
        "paced": paced,
    }
    print(format_table(report))
    save_report(report, json_path)
    return report


def format_table(report: dict[str, Any]) -> str:
    overhead, paced = report["overhead"], report["paced"]
    lines = ["figure                      none           attached       ratio   budget"]
    labels = {"seq_eps": "1 sequential awaited", "fire_eps": "2 fire-and-forget"}
    for key, label in labels.items():
        fig = overhead[key]
        verdict = "PASS" if fig["pass"] else "FAIL"
        lines.append(
            f"{label:<27} {fig['none']['median']:>10,.0f}/s  "
            f"{fig['attached']['median']:>10,.0f}/s  {fig['ratio']:.3f}   >= {BUDGET} {verdict}"
        )
    p99 = overhead["seq_p99_ms"]
    lines.append(
        f"{'1 awaited latency p99':<27} {p99['none']['median']:>9.4f} ms  "
        f"{p99['attached']['median']:>9.4f} ms  {p99['ratio']:.3f}"
    )
    lines.append(
        f"flushes while measured: {overhead['seq_ticks']:.0f} (sequential), "
        f"{overhead['fire_ticks']:.0f} (fire-and-forget), medians per round"
    )
    on, off = paced["attached"], paced["none"]
    lines.append(
        f"paced {paced['rate']:,} events/s for {paced['seconds']:.0f} s "
        f"(achieved {on['achieved_eps']:,.0f}/s): {on['renders_per_s']:.1f} renders/s, "
        f"longest flush {on['longest_flush_ms']:.1f} ms, flusher "
        f"{on['flusher_share']:.1%} of the loop, {on['comm_kb_per_s']:,.0f} KB/s to the comm"
    )
    lines.append(
        f"10 ms heartbeat lateness, max / p99: {off['heartbeat_max_late_ms']:.1f} / "
        f"{off['heartbeat_p99_late_ms']:.1f} ms without the widget, "
        f"{on['heartbeat_max_late_ms']:.1f} / {on['heartbeat_p99_late_ms']:.1f} ms with it"
    )
    lines.append("attached = an EventStream(bus) open, its flusher on the same loop;")
    lines.append("ratio = median over rounds of (attached / none), both sides back to back;")
    lines.append(f"both sides first send {DEFAULT_CAPACITY:,} events (a full stream buffer)")
    return "\n".join(lines)
