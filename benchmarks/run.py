"""Run every benchmark: ``python benchmarks/run.py [--quick] [--only NAME]``.

NAME is one of bus, observability, llm, widgets, internals, recording, sweep (about
fifteen minutes), local (the local model: about four minutes), dashboard (ten minutes in
Chromium), nats (events and command round trips over a local NATS server against raw
nats-py: about a minute and a half), distributed (a CPU-bound sweep in one process against
two NATS workers: about three minutes).

Results are measurements, not tests: this exits 0 even when a bar fails, and says so
plainly in its output. Each benchmark writes its JSON to ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import bench_bus  # run.py is run as a script, so its own folder is on sys.path
import bench_dashboard_soak
import bench_distributed_sweep
import bench_internals
import bench_llm
import bench_local
import bench_nats
import bench_observability
import bench_recording
import bench_sweep
import bench_widgets

BENCHMARKS = {
    "bus": bench_bus.run,
    "observability": bench_observability.run,
    "llm": bench_llm.run,
    "widgets": bench_widgets.run,
    "internals": bench_internals.run,
    "recording": bench_recording.run,
    "sweep": bench_sweep.run,
    "local": bench_local.run,
    "dashboard": bench_dashboard_soak.run,
    "nats": bench_nats.run,
    "distributed": bench_distributed_sweep.run,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run llmgine's benchmarks.")
    parser.add_argument(
        "--quick", action="store_true", help="a short smoke run (fewer events and rounds)"
    )
    parser.add_argument("--only", choices=sorted(BENCHMARKS), help="run just this one")
    args = parser.parse_args(argv)
    for name, run in BENCHMARKS.items():
        if args.only and name != args.only:
            continue
        print(f"== {name} benchmark (python {sys.version.split()[0]}) ==", flush=True)
        run(quick=args.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
