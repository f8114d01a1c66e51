"""What a recorded answer costs: a cache hit end to end against a demo-model call.

Everything goes through ``get_model`` with observability on, so every call, hit or not,
is a real span (``Model → Retrying → Traced → Recorded → provider``):

1. ``per_call``: the median time of one ``generate`` call answered by the offline demo
   model (``demo:x``, ``latency=0``: no pacing, just llmgine's request, assembly and span
   path) and by a recording of the same call, from a `Cassette` and from a `SQLiteCache`
   (and a streamed hit from a cassette). Rounds alternate which side goes first; each
   figure is the median of every call of every round. Bar: a hit under 1 ms.
2. ``bulk``: 10,000 hits in a row (100 distinct recorded requests, cycled), from each
   store. Bar: under 5 s.

Run: ``python benchmarks/run.py --only recording`` (``--quick``: fewer calls).
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from time import perf_counter_ns
from typing import Any

from report_file import save_report  # benchmarks/ is on sys.path: these run as scripts

from llmgine import observability
from llmgine.llm import Model, get_model
from llmgine.recording import Cassette, SQLiteCache

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "recording.json"
HIT_BAR_MS = 1.0
BULK_HITS = 10_000
BULK_BAR_S = 5.0
DISTINCT = 100
PROMPT = "Name three primes."


async def _timed(call: Callable[[], Awaitable[Any]], calls: int) -> list[float]:
    """Milliseconds of each of ``calls`` awaits of ``call()``."""
    samples = []
    for _ in range(calls):
        started = perf_counter_ns()
        await call()
        samples.append((perf_counter_ns() - started) / 1e6)
    return samples


async def _stream_once(model: Model) -> None:
    async with model.stream(PROMPT) as stream:
        async for _ in stream:
            pass


async def measure(calls: int, rounds: int, folder: Path) -> dict[str, Any]:
    demo = get_model("demo:x", latency=0)
    cassette = get_model(
        "demo:x", latency=0, recording=Cassette(folder / "bench.jsonl"), recording_mode="read-write"
    )
    sqlite_store = SQLiteCache(folder / "bench.sqlite3")
    sqlite = get_model("demo:x", latency=0, recording=sqlite_store, recording_mode="read-write")
    prompts = [f"{PROMPT} ({i})" for i in range(DISTINCT)]
    for model in (cassette, sqlite):  # record every request once (the misses)
        await model.generate(PROMPT)
        for prompt in prompts:
            await model.generate(prompt)
    check = await cassette.generate(PROMPT)
    assert check.cache_hit, "the benchmark's requests must be hits"

    sides: dict[str, Callable[[], Awaitable[Any]]] = {
        "demo": lambda: demo.generate(PROMPT),
        "cassette_hit": lambda: cassette.generate(PROMPT),
        "sqlite_hit": lambda: sqlite.generate(PROMPT),
        "cassette_stream_hit": lambda: _stream_once(cassette),
    }
    for call in sides.values():  # warm up: imports, caches, the first span
        await _timed(call, 20)
    samples: dict[str, list[float]] = {name: [] for name in sides}
    order = list(sides)
    for round_ in range(rounds):
        for name in order if round_ % 2 == 0 else order[::-1]:
            samples[name] += await _timed(sides[name], calls)
    per_call = {name: statistics.median(values) for name, values in samples.items()}

    bulk: dict[str, float] = {}
    for name, model in (("cassette", cassette), ("sqlite", sqlite)):
        started = perf_counter_ns()
        for i in range(BULK_HITS):
            response = await model.generate(prompts[i % DISTINCT])
        bulk[name] = (perf_counter_ns() - started) / 1e9
        assert response.cache_hit
    sqlite_store.close()
    return {"per_call_ms": per_call, "bulk_s": bulk}


def run(*, quick: bool = False, json_path: Path = DEFAULT_JSON) -> dict[str, Any]:
    calls, rounds = (200, 3) if quick else (1_000, 5)
    obs = observability.enable()  # every call is a real span, hit or not
    try:
        with tempfile.TemporaryDirectory(prefix="llmgine-bench-recording-") as folder:
            figures = asyncio.run(measure(calls, rounds, Path(folder)))
        obs.buffer.clear()
    finally:
        observability.disable()
    per_call = figures["per_call_ms"]
    report: dict[str, Any] = {
        "benchmark": "recording",
        "quick": quick,
        "calls_per_round": calls,
        "rounds": rounds,
        **figures,
        "ratio_to_demo": {
            name: per_call[name] / per_call["demo"] for name in per_call if name != "demo"
        },
        "bars": {
            "hit_under_1_ms": all(per_call[n] < HIT_BAR_MS for n in ("cassette_hit", "sqlite_hit")),
            "10000_hits_under_5_s": all(v < BULK_BAR_S for v in figures["bulk_s"].values()),
        },
    }
    print(format_table(report))
    save_report(report, json_path)
    return report


def format_table(report: dict[str, Any]) -> str:
    per_call, ratio, bulk = report["per_call_ms"], report["ratio_to_demo"], report["bulk_s"]
    lines = ["one generate() through get_model, observability on (median ms)   ratio to demo"]
    labels = {
        "demo": "demo:x, latency=0 (a live call)",
        "cassette_hit": "hit from a Cassette",
        "sqlite_hit": "hit from a SQLiteCache",
        "cassette_stream_hit": "streamed hit from a Cassette",
    }
    for name, label in labels.items():
        shown = "" if name == "demo" else f"{ratio[name]:>8.2f}x"
        lines.append(f"  {label:<40} {per_call[name]:>9.3f}   {shown}")
    for name, seconds in bulk.items():
        lines.append(f"  {BULK_HITS:,} hits from the {name}: {seconds:.2f} s")
    bars = report["bars"]
    lines.append(
        f"bars: a hit under {HIT_BAR_MS:g} ms: {'met' if bars['hit_under_1_ms'] else 'MISSED'}; "
        f"{BULK_HITS:,} hits under {BULK_BAR_S:g} s: "
        f"{'met' if bars['10000_hits_under_5_s'] else 'MISSED'}"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    run(quick="--quick" in sys.argv)
