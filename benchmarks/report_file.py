"""Where each benchmark's report goes: one JSON file in ``benchmarks/results/`` (git-ignored)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def save_report(report: dict[str, Any], json_path: Path) -> None:
    """Write ``report`` as indented JSON to ``json_path`` (its folder made if need be), and
    say where."""
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {json_path}")
