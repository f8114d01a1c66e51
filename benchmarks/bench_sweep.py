"""The sweep benchmark: `llmgine.sweep.Sweep` at scale, four bars.

1. ``throughput``: 10,000 prompts x 2 models (20,000 calls) against the loopback server
   (``loopback_server.py``, its own process), at most 64 calls at once, by a `Sweep`
   (``openai:`` models with ``base_url`` at the server, ``stream=False``, a fresh
   `SQLiteCache` a round so nothing is cached, ``progress=False``) and by what one writes
   by hand over the raw official ``openai`` SDK: ``asyncio.gather`` of every call, each
   under an ``asyncio.Semaphore(64)``, keeping each answer's text and tokens. Rounds
   alternate which side goes first; each side runs in a fresh event loop. Bar: the
   sweep's calls per second, median over rounds, at least 0.9x the raw SDK's.
2. ``memory``: a 100,000-row sweep of the offline demo model (``latency=0``), in a child
   process of its own so its peak resident memory is the sweep's. Bar: peak RSS under
   1 GB; reported: bytes per row (peak less the process before the sweep, over rows).
3. ``rerun``: a 10,000-row sweep of the demo model, run again over the same store, so
   every row is a cache hit. Bar: the second run under 10 s.
4. ``throttle``: a sweep against the loopback server throttled to N requests a second
   (``--rate``: a 429 with ``retry-after-ms`` beyond it). Bar: every row done with no
   error, and the rate the sweep achieves over the second half of its rows (rows done /
   seconds, after it has settled) within 20% of N.

Run: ``python benchmarks/run.py --only sweep [--quick]`` or ``PYTHONPATH=. python
benchmarks/bench_sweep.py [--quick] [--only NAME ...]``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import resource
import select
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from report_file import save_report  # benchmarks/ is on sys.path: these run as scripts

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "sweep.json"
MODELS = ("gpt-4o-mini", "gpt-4.1-mini")
KEY = "sk-bench"
CONCURRENCY = 64
THROUGHPUT_BAR = 0.9
MEMORY_BAR_BYTES = 1 << 30
RERUN_BAR_S = 10.0
THROTTLE_TOLERANCE = 0.2
# The throttled server's bucket holds a tenth of a second of requests. With room for one
# only, every millisecond a refused call spends getting its 429 back and its retry to
# the server is a millisecond the bucket sits full and wastes: the rate reached would
# measure the loopback's latency under load, not the sweep's pacing. Real limits are
# counted over a minute (OpenAI's), which is far more forgiving than this.
BURST_SECONDS = 0.1
STARTS_WITHIN = 60.0  # seconds for the loopback server to print its port


@dataclass(frozen=True)
class Sizes:
    prompts: int  # the throughput's prompts (each sent to both models)
    rounds: int  # the throughput's rounds
    memory: int  # rows of the memory sweep
    rerun: int  # rows of the re-run sweep
    rate: float  # the throttled server's requests a second
    throttle_rows: int  # rows of the throttled sweep


FULL = Sizes(prompts=10_000, rounds=3, memory=100_000, rerun=10_000, rate=100, throttle_rows=3_000)
QUICK = Sizes(prompts=1_000, rounds=3, memory=20_000, rerun=2_000, rate=50, throttle_rows=500)


def start_server(*args: str) -> tuple[subprocess.Popen[bytes], str]:
    """The loopback server in its own process (``args``: e.g. ``--rate 100``) and its URL."""
    script = Path(__file__).with_name("loopback_server.py")
    server = subprocess.Popen([sys.executable, str(script), *args], stdout=subprocess.PIPE)
    assert server.stdout is not None
    ready, _, _ = select.select([server.stdout], [], [], STARTS_WITHIN)
    port = server.stdout.readline().decode().strip() if ready else ""
    if not port.isdigit():  # the server prints its port once it listens
        server.kill()
        server.wait()
        raise RuntimeError(f"the loopback server did not start within {STARTS_WITHIN:g} s")
    return server, f"http://127.0.0.1:{port}"


def server_stats(url: str) -> dict[str, int]:
    with urllib.request.urlopen(f"{url}/stats") as reply:
        stats: dict[str, int] = json.loads(reply.read())
    return stats


def prompts(count: int) -> list[str]:
    return [f"Question {i}: what is the capital of France?" for i in range(count)]


# -- 1. throughput ---------------------------------------------------------------------


async def raw_sdk_side(url: str, texts: list[str]) -> dict[str, float]:
    """Every call by hand: ``asyncio.gather`` under a ``Semaphore(64)``, the raw SDK."""
    import openai

    client = openai.AsyncOpenAI(api_key=KEY, base_url=f"{url}/v1", max_retries=0)
    limit = asyncio.Semaphore(CONCURRENCY)
    rows: list[tuple[int, str, str | None, int | None, int | None]] = []

    async def one(index: int, text: str, model: str) -> None:
        async with limit:
            reply = await client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": text}]
            )
        usage = reply.usage
        rows.append(
            (
                index,
                model,
                reply.choices[0].message.content,
                usage.prompt_tokens if usage else None,
                usage.completion_tokens if usage else None,
            )
        )

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one(i, t, m) for i, t in enumerate(texts) for m in MODELS))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    await client.close()
    if len(rows) != len(texts) * len(MODELS) or any(r[2] is None for r in rows):
        raise RuntimeError("the raw SDK side lost answers")
    return {"calls": len(rows), "seconds": wall, "cpu_seconds": cpu}


async def sweep_side(url: str, texts: list[str], store: Path) -> dict[str, float]:
    """The same calls as a `Sweep` (its construction, preflight and DataFrame included)."""
    from llmgine.recording import SQLiteCache
    from llmgine.sweep import Sweep

    cache = SQLiteCache(store)
    wall, cpu = time.perf_counter(), time.process_time()
    result = await Sweep(
        texts,
        [f"openai:{m}" for m in MODELS],
        store=cache,
        concurrency=CONCURRENCY,
        stream=False,
        progress=False,
        model_options={"api_key": KEY, "base_url": f"{url}/v1"},
    ).run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    cache.close()
    errors = int(result.df["error_type"].notna().sum())
    if result.done != len(texts) * len(MODELS) or errors or result.cached:
        raise RuntimeError(
            f"the sweep did {result.done} rows, {errors} errors, {result.cached} hits"
        )
    return {"calls": result.done, "seconds": wall, "cpu_seconds": cpu}


def throughput(count: int, rounds: int) -> dict[str, Any]:
    texts = prompts(count)
    server, url = start_server()
    per: list[dict[str, dict[str, float]]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="llmgine-bench-sweep-") as folder:
            asyncio.run(raw_sdk_side(url, texts[:200]))  # warm: imports, connections
            asyncio.run(sweep_side(url, texts[:100], Path(folder) / "warm.sqlite3"))
            for r in range(rounds):
                sides = ["raw_sdk", "sweep"] if r % 2 == 0 else ["sweep", "raw_sdk"]
                figures: dict[str, dict[str, float]] = {}
                for side in sides:
                    gc.collect()
                    if side == "raw_sdk":
                        figures[side] = asyncio.run(raw_sdk_side(url, texts))
                    else:
                        store = Path(folder) / f"round{r}.sqlite3"  # fresh: nothing cached
                        figures[side] = asyncio.run(sweep_side(url, texts, store))
                    f = figures[side]
                    f["calls_per_s"] = f["calls"] / f["seconds"]
                    f["cpu_ms_per_call"] = f["cpu_seconds"] * 1000 / f["calls"]
                ratio = figures["sweep"]["calls_per_s"] / figures["raw_sdk"]["calls_per_s"]
                per.append(figures)
                print(
                    f"throughput round {r + 1}/{rounds}: raw SDK "
                    f"{figures['raw_sdk']['calls_per_s']:.0f} calls/s, sweep "
                    f"{figures['sweep']['calls_per_s']:.0f} calls/s ({ratio:.2f}x)",
                    flush=True,
                )
    finally:
        server.terminate()
        server.wait()
    raw = statistics.median(x["raw_sdk"]["calls_per_s"] for x in per)
    ours = statistics.median(x["sweep"]["calls_per_s"] for x in per)
    ratios = [x["sweep"]["calls_per_s"] / x["raw_sdk"]["calls_per_s"] for x in per]
    return {
        "calls_per_round": count * len(MODELS),
        "rounds": per,
        "raw_sdk_calls_per_s": raw,
        "sweep_calls_per_s": ours,
        "ratio": ours / raw,
        "median_round_ratio": statistics.median(ratios),
        "raw_sdk_cpu_ms_per_call": statistics.median(x["raw_sdk"]["cpu_ms_per_call"] for x in per),
        "sweep_cpu_ms_per_call": statistics.median(x["sweep"]["cpu_ms_per_call"] for x in per),
        "pass": ours / raw >= THROUGHPUT_BAR,
    }


# -- 2 and 3. memory and re-run (the demo model, offline) -------------------------------


def _rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


async def demo_sweep(rows: int, store: Path) -> Any:
    from llmgine.sweep import Sweep

    return await Sweep(
        prompts(rows),
        "demo:llmgine-demo",
        store=store,
        concurrency=CONCURRENCY,
        stream=False,
        progress=False,
        model_options={"latency": 0},
    ).run()


def memory_child(rows: int, store: Path) -> dict[str, Any]:
    """In the child process: one sweep of ``rows`` rows; its peak RSS."""
    import pandas  # noqa: F401 - imported before the baseline, as the sweep's result needs it

    import llmgine.sweep  # noqa: F401

    before = _rss_bytes()
    started = time.perf_counter()
    result = asyncio.run(demo_sweep(rows, store))
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    errors = int(result.df["error_type"].notna().sum())
    return {
        "rows": result.done,
        "errors": errors,
        "seconds": seconds,
        "rss_before_bytes": before,
        "peak_rss_bytes": peak,
        "df_bytes": int(result.df.memory_usage(deep=True).sum()),
    }


def memory(rows: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="llmgine-bench-sweep-") as folder:
        child = subprocess.run(
            [sys.executable, __file__, "--memory-child", str(rows), f"{folder}/m.sqlite3"],
            capture_output=True,
            text=True,
            check=False,
        )
    if child.returncode != 0:
        raise RuntimeError(f"the memory child failed:\n{child.stderr}")
    figures: dict[str, Any] = json.loads(child.stdout.strip().splitlines()[-1])
    if figures["rows"] != rows or figures["errors"]:
        raise RuntimeError(
            f"the memory sweep did {figures['rows']} rows, {figures['errors']} errors"
        )
    grown = figures["peak_rss_bytes"] - figures["rss_before_bytes"]
    figures["bytes_per_row"] = grown / rows
    figures["pass"] = figures["peak_rss_bytes"] < MEMORY_BAR_BYTES
    return figures


def rerun(rows: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="llmgine-bench-sweep-") as folder:
        store = Path(folder) / "r.sqlite3"
        started = time.perf_counter()
        first = asyncio.run(demo_sweep(rows, store))
        first_s = time.perf_counter() - started
        started = time.perf_counter()
        second = asyncio.run(demo_sweep(rows, store))
        second_s = time.perf_counter() - started
    if second.cached != rows or int(second.df["error_type"].notna().sum()):
        raise RuntimeError(f"the re-run had {second.cached} of {rows} rows from the store")
    return {
        "rows": rows,
        "first_run_s": first_s,
        "first_run_cached": first.cached,
        "rerun_s": second_s,
        "rerun_rows_per_s": rows / second_s,
        "pass": second_s < RERUN_BAR_S,
    }


# -- 4. throttling -----------------------------------------------------------------------


async def throttled_sweep(url: str, rows: int) -> tuple[Any, list[float]]:
    """A sweep of ``rows`` rows against ``url``; each row's completion time."""
    from llmgine.sweep import Sweep

    done_at: list[float] = []
    with tempfile.TemporaryDirectory(prefix="llmgine-bench-sweep-") as folder:
        result = await Sweep(
            prompts(rows),
            f"openai:{MODELS[0]}",
            store=Path(folder) / "t.sqlite3",
            concurrency=CONCURRENCY,
            stream=False,
            progress=False,
            model_options={"api_key": KEY, "base_url": f"{url}/v1"},
        ).run(on_row=lambda _: done_at.append(time.perf_counter()))
    return result, done_at


def throttle(rate: float, rows: int) -> dict[str, Any]:
    burst = max(1, round(rate * BURST_SECONDS))
    server, url = start_server("--rate", str(rate), "--burst", str(burst))
    try:
        started = time.perf_counter()
        result, done_at = asyncio.run(throttled_sweep(url, rows))
        seconds = time.perf_counter() - started
        stats = server_stats(url)
    finally:
        server.terminate()
        server.wait()
    errors = int(result.df["error_type"].notna().sum())
    half = len(done_at) // 2
    second_half = (len(done_at) - 1 - half) / (done_at[-1] - done_at[half])
    return {
        "rate": rate,
        "burst": burst,
        "rows": rows,
        "done": result.done,
        "errors": errors,
        "seconds": seconds,
        "answered": stats["answered"],
        "throttled_429": stats["throttled"],
        "second_half_rate": second_half,
        "ratio_to_rate": second_half / rate,
        "pass": result.done == rows
        and errors == 0
        and abs(second_half / rate - 1) <= THROTTLE_TOLERANCE,
    }


# -- the run -----------------------------------------------------------------------------

PARTS = ("throughput", "memory", "rerun", "throttle")


def run(
    *, quick: bool = False, json_path: Path = DEFAULT_JSON, only: Sequence[str] = ()
) -> dict[str, Any]:
    sizes = QUICK if quick else FULL
    results: dict[str, Any] = {}
    for part in PARTS:
        if only and part not in only:
            continue
        print(f"sweep: {part}", flush=True)
        if part == "throughput":
            results[part] = throughput(sizes.prompts, sizes.rounds)
        elif part == "memory":
            results[part] = memory(sizes.memory)
        elif part == "rerun":
            results[part] = rerun(sizes.rerun)
        else:
            results[part] = throttle(sizes.rate, sizes.throttle_rows)
    report = {"benchmark": "sweep", "quick": quick, "results": results}
    print(format_table(report))
    save_report(report, json_path)
    return report


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def format_table(report: dict[str, Any]) -> str:
    results = report["results"]
    lines = []
    if "throughput" in results:
        t = results["throughput"]
        lines.append(
            f"throughput, {t['calls_per_round']:,} calls at {CONCURRENCY} at once "
            f"(medians of {len(t['rounds'])} rounds): raw SDK {t['raw_sdk_calls_per_s']:.0f} "
            f"calls/s, Sweep {t['sweep_calls_per_s']:.0f} calls/s, {t['ratio']:.2f}x "
            f"(per-round median {t['median_round_ratio']:.2f}x); CPU a call: raw "
            f"{t['raw_sdk_cpu_ms_per_call']:.2f} ms, Sweep {t['sweep_cpu_ms_per_call']:.2f} ms"
            f" -- >= {THROUGHPUT_BAR}x {_verdict(t['pass'])}"
        )
    if "memory" in results:
        m = results["memory"]
        lines.append(
            f"memory, {m['rows']:,} rows of the demo model in {m['seconds']:.1f} s: peak RSS "
            f"{m['peak_rss_bytes'] / 2**20:.0f} MiB ({m['rss_before_bytes'] / 2**20:.0f} MiB "
            f"before), {m['bytes_per_row']:,.0f} bytes a row (the DataFrame: "
            f"{m['df_bytes'] / m['rows']:,.0f}) -- < 1 GiB {_verdict(m['pass'])}"
        )
    if "rerun" in results:
        r = results["rerun"]
        lines.append(
            f"re-run, {r['rows']:,} rows all from the store: {r['rerun_s']:.2f} s "
            f"({r['rerun_rows_per_s']:,.0f} rows/s; the first run {r['first_run_s']:.2f} s)"
            f" -- < {RERUN_BAR_S:g} s {_verdict(r['pass'])}"
        )
    if "throttle" in results:
        h = results["throttle"]
        lines.append(
            f"throttled to {h['rate']:g} requests/s: {h['done']:,} of {h['rows']:,} rows, "
            f"{h['errors']} errors, {h['throttled_429']:,} 429s answered; second half at "
            f"{h['second_half_rate']:.1f} rows/s ({h['ratio_to_rate']:.2f}x the rate) -- "
            f"within {THROTTLE_TOLERANCE:.0%} {_verdict(h['pass'])}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Sweeps at scale: four bars.")
    parser.add_argument("--quick", action="store_true", help="smaller sweeps, a smoke run")
    parser.add_argument("--only", nargs="+", choices=PARTS, default=(), help="parts to run")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write results")
    parser.add_argument(
        "--memory-child", nargs=2, metavar=("ROWS", "STORE"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.memory_child:
        rows, store = args.memory_child
        print(json.dumps(memory_child(int(rows), Path(store))))
        return 0
    report = run(quick=args.quick, json_path=args.json, only=args.only)
    return 0 if all(r["pass"] for r in report["results"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
