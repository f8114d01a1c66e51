"""Every recording in cassettes/ is replayed by some test, and each one loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from .replay import CASSETTES, load

HERE = Path(__file__).resolve().parent
RECORDINGS = sorted(p.relative_to(CASSETTES).as_posix() for p in CASSETTES.glob("*/*.yaml"))


def test_there_are_recordings_of_all_three_providers() -> None:
    assert {r.split("/")[0] for r in RECORDINGS} == {"openai", "anthropic", "gemini"}
    assert len(RECORDINGS) >= 42


@pytest.mark.parametrize("recording", RECORDINGS)
def test_each_recording_is_replayed_by_a_test(recording: str) -> None:
    name = Path(recording).name
    sources = "".join(
        p.read_text() for p in HERE.glob("test_*.py") if p.name != Path(__file__).name
    )
    assert name in sources or name.removesuffix(".yaml") in sources, f"no test replays {recording}"
    assert load(recording), f"{recording} has no interactions"
