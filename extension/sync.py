"""Ship the widget front end: copy ``extension/src/*`` to ``llmgine/notebook/static/``.

    python extension/sync.py           # copy (after editing a source)
    python extension/sync.py --check   # exit 1 if the shipped copy differs from the source

There is no bundler: the sources are plain ES modules and CSS with no imports, shipped
byte for byte. tests/notebook/test_events.py runs the same check, so they never drift.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

SOURCES = Path(__file__).resolve().parent / "src"
STATIC = Path(__file__).resolve().parent.parent / "llmgine" / "notebook" / "static"
SHIPPED_SUFFIXES = (".js", ".css")


def differences(sources: Path = SOURCES, static: Path = STATIC) -> list[str]:
    """What differs between the sources and the shipped copy (empty when in step)."""
    problems = []
    wanted = {p.name for p in sources.iterdir() if p.suffix in SHIPPED_SUFFIXES}
    shipped = {p.name for p in static.iterdir() if p.suffix in SHIPPED_SUFFIXES}
    for name in sorted(wanted - shipped):
        problems.append(f"{name}: not shipped")
    for name in sorted(shipped - wanted):
        problems.append(f"{name}: shipped but has no source")
    for name in sorted(wanted & shipped):
        if (sources / name).read_bytes() != (static / name).read_bytes():
            problems.append(f"{name}: shipped copy differs from the source")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare only, copy nothing")
    args = parser.parse_args(argv)
    if args.check:
        problems = differences()
        for problem in problems:
            print(problem)
        return 1 if problems else 0
    STATIC.mkdir(parents=True, exist_ok=True)
    for source in sorted(SOURCES.iterdir()):
        if source.suffix in SHIPPED_SUFFIXES:
            shutil.copyfile(source, STATIC / source.name)
            print(f"shipped {source.name}")
    for stale in sorted(STATIC.iterdir()):
        if stale.suffix in SHIPPED_SUFFIXES and not (SOURCES / stale.name).exists():
            stale.unlink()
            print(f"removed {stale.name} (no source)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
