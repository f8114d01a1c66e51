"""A sweep whose work is CPU-bound in the model's handler: one process against two worker
processes over NATS.

The model is ``burn:cpu`` (``burn_worker.py``): each call burns a fixed number of chained
SHA-256 hashes in a Python loop (about 20 ms of an idle core) and answers with the digest.
The same `Sweep` (``calls`` prompts, one model, ``stream=False``, a fresh `SQLiteCache` a
round so every call is live, ``progress=False``, the default 8 calls at once) runs:

* ``one_process``: on a private in-process bus, the model called in this process;
* ``two_workers``: on a `MessageBus` over a local NATS server (from the wheel), with no
  other change: its live calls go to two ``llmgine worker burn_worker:setup`` processes,
  started once before the rounds and stopped by their process after them.

Rounds alternate which side goes first; each side's rows are checked to be the same
(texts). The figures are each side's median wall time, the speed-up (one process's median
over the two workers'), the median of each round's own ratio, and how many calls each
worker answered. Bar: a speed-up above 1.0. On 2 cores the ceiling is below 2: the
notebook's own work per row (the store, the events, the replies) shares the cores with
the workers.

The ceiling on this machine now, in the same rounds: the same burns by plain processes
with no llmgine at all, one process doing every call against two doing half each at once
(``plain_speedup``). On a shared machine whose other work keeps the cores busy, that is
well below 2, and the sweep's speed-up is best read against it.

Run: ``python benchmarks/run.py --only distributed`` (``--quick``: fewer calls and rounds).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import burn_worker
from report_file import save_report  # benchmarks/ is on sys.path: these run as scripts

from llmgine.bus import MessageBus
from llmgine.bus.nats import NatsServer, NatsTransport
from llmgine.sweep import Sweep

HERE = Path(__file__).resolve().parent
DEFAULT_JSON = HERE / "results" / "distributed_sweep.json"
MODEL = "burn:cpu"
WORKERS = 2
CONCURRENCY = 32  # calls at once: enough to keep both workers busy while replies travel
SPEEDUP_BAR = 1.0
STARTS_WITHIN = 120.0  # seconds for a worker to say it serves


def prompts(count: int) -> list[str]:
    return [f"Question {i}: what is the capital of France?" for i in range(count)]


async def one_side(texts: list[str], store: Path, bus: MessageBus | None) -> dict[str, Any]:
    """The sweep, timed from construction to its DataFrame; its texts in row order."""
    started = time.perf_counter()
    result = await Sweep(texts, [MODEL], store=store, bus=bus, stream=False, progress=False).run()
    seconds = time.perf_counter() - started
    df = result.df
    if df["error"].notna().any() or df["cache_hit"].any():
        raise RuntimeError(f"the sweep had errors or cache hits: {df['error'].dropna()[:3]}")
    return {"seconds": seconds, "texts": list(df["text"])}


async def start_workers(url: str, stream: str, prefix: str) -> list[asyncio.subprocess.Process]:
    root = HERE.parent
    path = os.pathsep.join(p for p in (str(HERE), str(root), os.environ.get("PYTHONPATH")) if p)
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "llmgine",
            "worker",
            "burn_worker:setup",
            "--url",
            url,
            "--stream",
            stream,
            "--subject-prefix",
            prefix,
            "--durable",
            "burners",
            cwd=HERE,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": path},
        )
        for _ in range(WORKERS)
    ]
    try:
        for process in workers:
            assert process.stdout is not None
            line = await asyncio.wait_for(process.stdout.readline(), STARTS_WITHIN)
            if b"serving commands" not in line:
                raise RuntimeError(f"a worker did not start: {line!r}")
    except BaseException:
        await stop_workers(workers)
        raise
    return workers


async def stop_workers(workers: list[asyncio.subprocess.Process]) -> list[int]:
    """Stop each worker by its process; how many commands each answered."""
    answered = []
    for process in workers:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(process.communicate(), STARTS_WITHIN)
        said = re.search(rb"stopped \((\d+) command\(s\) answered\)", out or b"")
        answered.append(int(said.group(1)) if said else -1)
    return answered


async def measure(url: str, calls: int, rounds: int, folder: Path) -> dict[str, Any]:
    texts = prompts(calls)
    name = uuid.uuid4().hex[:10]
    transport = NatsTransport(url, stream=f"D{name}", subject_prefix=f"d{name}")
    samples: dict[str, list[float]] = {
        "one_process": [],
        "two_workers": [],
        "plain_one": [],
        "plain_two": [],
    }
    async with MessageBus(transport=transport) as bus:  # creates the stream first
        workers = await start_workers(url, transport.stream, transport.prefix)
        try:
            buses: dict[str, MessageBus | None] = {"one_process": None, "two_workers": bus}
            await one_side(texts[:16], folder / "warm-a.sqlite3", None)  # imports, connections
            await one_side(texts[:16], folder / "warm-b.sqlite3", bus)
            for round_ in range(rounds):
                sides = list(buses) if round_ % 2 == 0 else list(buses)[::-1]
                rows = {}
                for side in sides:
                    store = folder / f"{side}-{round_}.sqlite3"
                    done = await one_side(texts, store, buses[side])
                    samples[side].append(done["seconds"])
                    rows[side] = done["texts"]
                if rows["one_process"] != rows["two_workers"]:
                    raise RuntimeError("the two sides' rows differ")
                for processes in (1, 2) if round_ % 2 == 0 else (2, 1):
                    plain = "plain_one" if processes == 1 else "plain_two"
                    samples[plain].append(await plain_burn(processes, calls))
        finally:
            answered = await stop_workers(workers)
    return {"seconds": samples, "answered": answered}


_PLAIN = (
    "import sys, burn_worker\n"
    "print('ready', flush=True)\n"
    "sys.stdin.readline()\n"
    "for i in range(int(sys.argv[1])): burn_worker.burn(f'Question {i}')\n"
)


async def plain_burn(processes: int, calls: int) -> float:
    """Wall seconds for ``processes`` plain processes to burn ``calls`` calls between them,
    from the moment they are told to start (their start-up is not counted)."""
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _PLAIN,
            str(calls // processes),
            cwd=HERE,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        for _ in range(processes)
    ]
    for child in children:  # imported: only the burning is timed
        assert child.stdout is not None
        await asyncio.wait_for(child.stdout.readline(), STARTS_WITHIN)
    started = time.perf_counter()
    await asyncio.gather(*(child.communicate(b"go\n") for child in children))
    return time.perf_counter() - started


def cpu_ms_per_call(samples: int = 20) -> float:
    """What one call's burn costs this process, in CPU milliseconds (median)."""
    costs = []
    for i in range(samples):
        started = time.process_time()
        burn_worker.burn(f"calibration {i}")
        costs.append((time.process_time() - started) * 1000)
    return statistics.median(costs)


def run(*, quick: bool = False, json_path: Path = DEFAULT_JSON) -> dict[str, Any]:
    calls, rounds = (80, 3) if quick else (240, 5)
    os.environ.pop("LLMGINE_BUS_URL", None)  # one_process is in-process, whatever is set
    burn_worker.register()
    with tempfile.TemporaryDirectory() as folder, NatsServer.start() as server:
        measured = asyncio.run(measure(server.url, calls, rounds, Path(folder)))
    seconds = measured["seconds"]
    medians = {side: statistics.median(values) for side, values in seconds.items()}
    speedup = medians["one_process"] / medians["two_workers"]
    pairs = zip(seconds["one_process"], seconds["two_workers"], strict=True)
    plain_speedup = medians["plain_one"] / medians["plain_two"]
    report: dict[str, Any] = {
        "benchmark": "distributed_sweep",
        "quick": quick,
        "calls": calls,
        "rounds": rounds,
        "workers": WORKERS,
        "cpu_ms_per_call": cpu_ms_per_call(),
        "cores": os.cpu_count(),
        "load_average": os.getloadavg()[0],
        "seconds": seconds,
        "median_seconds": medians,
        "speedup": speedup,
        "median_round_speedup": statistics.median(a / b for a, b in pairs),
        "answered_by_worker": measured["answered"],
        "plain_speedup": plain_speedup,
        "share_of_plain_speedup": (speedup - 1) / (plain_speedup - 1)
        if plain_speedup > 1
        else None,
        "bars": {"two_workers_faster_than_one_process": speedup > SPEEDUP_BAR},
    }
    print(format_table(report))
    save_report(report, json_path)
    return report


def format_table(report: dict[str, Any]) -> str:
    medians = report["median_seconds"]
    calls = report["calls"]
    lines = [
        f"a sweep of {calls} CPU-bound calls (~{report['cpu_ms_per_call']:.0f} ms CPU each "
        f"here), {report['rounds']} rounds, {report['cores']} cores, load "
        f"{report['load_average']:.1f} (median wall seconds, calls/s)",
        f"  one process                  {medians['one_process']:>7.2f} s "
        f"{calls / medians['one_process']:>7.1f}/s",
        f"  over NATS, {report['workers']} worker processes {medians['two_workers']:>7.2f} s "
        f"{calls / medians['two_workers']:>7.1f}/s",
        f"  speed-up {report['speedup']:>26.2f}x (median of each round's: "
        f"{report['median_round_speedup']:.2f}x)",
        f"  calls answered by each worker: {report['answered_by_worker']}",
        f"ceiling now: plain processes, the same burns, no llmgine: one "
        f"{medians['plain_one']:.2f} s, two {medians['plain_two']:.2f} s, "
        f"{report['plain_speedup']:.2f}x",
    ]
    met = report["bars"]["two_workers_faster_than_one_process"]
    lines.append(
        f"bar: {report['workers']} workers faster than one process: {'met' if met else 'MISSED'}"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    run(quick="--quick" in sys.argv)
