"""Events through llmgine over NATS JetStream against raw nats-py, in the same run.

One local server from the wheel (file storage). Each side publishes ``events`` events one
at a time, each publish awaiting the server's ack, while a pull consumer in the same
process fetches up to 64 at a time and acks each after handling it; the time runs from
the first publish until the last event is acked.

* ``llmgine``: ``await bus.publish(Tick(n=i))`` on a `MessageBus` over `NatsTransport`,
  one handler counting, then ``await bus.drain()``;
* ``raw``: ``await js.publish(...)`` of the same JSON bytes with a ``Nats-Msg-Id``, and a
  durable pull consumer (explicit ack, at most 64 unacked, as the transport's) that
  decodes each message with ``json.loads`` and acks it.

Rounds alternate which side goes first, each on a fresh stream; the figures are medians
of events per second (and the median of each round's ratio, the two sides having run
back to back), and the bar is llmgine at least 0.8x raw (issue 19), on the medians. ``wire_us``
is what the wire's redaction and content rule add per event: `wire_event` against plain
`to_json`, on an event holding no secret.

Run: ``python benchmarks/run.py --only nats`` (``--quick``: fewer events and rounds).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import uuid
from collections.abc import Callable
from pathlib import Path
from time import perf_counter_ns
from typing import Any

import nats
from nats.js import api
from report_file import save_report  # benchmarks/ is on sys.path: these run as scripts

from llmgine.bus import Event, MessageBus, to_json
from llmgine.bus.nats import NatsServer, NatsTransport
from llmgine.bus.nats._wire import wire_event

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "nats.json"
RATIO_BAR = 0.8
BATCH = 64


class Tick(Event):
    n: int
    note: str = "an ordinary event, with nothing to hide in it"


async def _llmgine(url: str, events: int) -> float:
    name = uuid.uuid4().hex[:10]
    transport = NatsTransport(url, stream=f"B{name}", subject_prefix=f"b{name}", batch=BATCH)
    handled = 0

    def count(event: Tick) -> None:
        nonlocal handled
        handled += 1

    async with MessageBus(transport=transport) as bus:
        bus.on_event(Tick, count)
        started = perf_counter_ns()
        for i in range(events):
            await bus.publish(Tick(n=i))
        await bus.drain()
        elapsed = (perf_counter_ns() - started) / 1e9
    assert handled == events, f"llmgine handled {handled} of {events}"
    return events / elapsed


async def _raw(url: str, events: int) -> float:
    name = uuid.uuid4().hex[:10]
    stream, subject = f"R{name}", f"r{name}.event.Tick"
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        await js.add_stream(name=stream, subjects=[f"r{name}.event.>"], duplicate_window=120)
        config = api.ConsumerConfig(
            durable_name="raw",
            ack_policy=api.AckPolicy.EXPLICIT,
            deliver_policy=api.DeliverPolicy.NEW,
            max_ack_pending=BATCH,
        )
        sub = await js.pull_subscribe(subject, durable="raw", stream=stream, config=config)
        payloads = [(str(i), to_json(Tick(n=i)).encode()) for i in range(events)]
        done = asyncio.Event()
        handled = 0

        async def consume() -> None:
            nonlocal handled
            while handled < events:
                try:
                    messages = await sub.fetch(BATCH, timeout=5.0)
                except nats.errors.TimeoutError:
                    continue
                for msg in messages:
                    json.loads(msg.data)
                    await msg.ack()
                    handled += 1
            done.set()

        started = perf_counter_ns()
        consumer = asyncio.create_task(consume())
        for msg_id, data in payloads:
            await js.publish(subject, data, stream=stream, headers={"Nats-Msg-Id": msg_id})
        await done.wait()
        elapsed = (perf_counter_ns() - started) / 1e9
        await consumer
    finally:
        await nc.close()
    return events / elapsed


def _wire_cost_us(count: int) -> dict[str, float]:
    events = [Tick(n=i) for i in range(count)]
    costs = {}
    encoders: dict[str, Callable[[Event], bytes]] = {
        "to_json": lambda e: to_json(e).encode(),
        "wire_event": lambda e: wire_event(e, capture_content=False)[0],
    }
    for label, encode in encoders.items():
        started = perf_counter_ns()
        for event in events:
            encode(event)
        costs[label] = (perf_counter_ns() - started) / 1e3 / count
    return costs


async def measure(url: str, events: int, rounds: int) -> dict[str, Any]:
    await _llmgine(url, 200)  # warm up: imports, connections, the first stream
    await _raw(url, 200)
    samples: dict[str, list[float]] = {"llmgine": [], "raw": []}
    for round_ in range(rounds):
        sides = [("llmgine", _llmgine), ("raw", _raw)]
        for name, side in sides if round_ % 2 == 0 else sides[::-1]:
            samples[name].append(await side(url, events))
    return samples


def run(*, quick: bool = False, json_path: Path = DEFAULT_JSON) -> dict[str, Any]:
    events, rounds = (500, 3) if quick else (3_000, 5)
    with NatsServer.start() as server:
        samples = asyncio.run(measure(server.url, events, rounds))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    ratio = medians["llmgine"] / medians["raw"]
    # Each round's two sides ran back to back, under the same load: their ratio is less
    # moved by a busy machine than the ratio of the medians.
    pairs = zip(samples["llmgine"], samples["raw"], strict=True)
    paired = statistics.median(a / b for a, b in pairs)
    report: dict[str, Any] = {
        "benchmark": "nats",
        "quick": quick,
        "events_per_round": events,
        "rounds": rounds,
        "events_per_s": samples,
        "median_events_per_s": medians,
        "ratio_llmgine_to_raw": ratio,
        "median_round_ratio": paired,
        "wire_us": _wire_cost_us(2_000 if quick else 20_000),
        "bars": {"llmgine_at_least_0.8x_raw": ratio >= RATIO_BAR},
    }
    print(format_table(report))
    save_report(report, json_path)
    return report


def format_table(report: dict[str, Any]) -> str:
    medians, wire = report["median_events_per_s"], report["wire_us"]
    lines = [
        f"published and handled, {report['events_per_round']:,} events a round, "
        f"{report['rounds']} rounds (median events/s)",
        f"  llmgine over NATS (bus.publish + handler + ack) {medians['llmgine']:>10,.0f}",
        f"  raw nats-py (js.publish + fetch + ack)          {medians['raw']:>10,.0f}",
        f"  ratio llmgine / raw {report['ratio_llmgine_to_raw']:>38.2f}",
        f"  median of each round's ratio {report['median_round_ratio']:>29.2f}",
        f"serialising one event: to_json {wire['to_json']:.1f} us, "
        f"wire_event (redacted, content rule) {wire['wire_event']:.1f} us",
    ]
    met = report["bars"]["llmgine_at_least_0.8x_raw"]
    lines.append(f"bar: llmgine at least {RATIO_BAR:g}x raw: {'met' if met else 'MISSED'}")
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    run(quick="--quick" in sys.argv)
