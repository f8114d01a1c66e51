"""Command line: ``python -m llmgine demo`` (or the ``llmgine`` script)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llmgine", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="run a short, offline demo of the message bus")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from llmgine._demo import run_demo

        logging.basicConfig(
            level=logging.WARNING, format="  (log) %(levelname)s %(message)s", stream=sys.stdout
        )
        asyncio.run(run_demo())
    return 0


if __name__ == "__main__":
    sys.exit(main())
