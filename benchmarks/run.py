"""Run every benchmark: ``python benchmarks/run.py [--quick] [--json PATH]``.

Today there is one, the bus benchmark (`bench_bus`). Results are measurements, not tests:
this exits 0 even when a bar fails, and says so plainly in its output.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import bench_bus  # run.py is run as a script, so its own folder is on sys.path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run llmgine's benchmarks.")
    parser.add_argument(
        "--quick", action="store_true", help="a short smoke run (fewer events and rounds)"
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=bench_bus.DEFAULT_JSON,
        help=f"where to write the bus results (default: {bench_bus.DEFAULT_JSON})",
    )
    args = parser.parse_args(argv)
    print(f"== bus benchmark (python {sys.version.split()[0]}) ==", flush=True)
    bench_bus.run(quick=args.quick, json_path=args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
