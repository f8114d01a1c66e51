"""The ``python -m llmgine demo`` tour runs and shows each feature it promises."""

from __future__ import annotations

import subprocess
import sys

import pytest

from llmgine._tour import run_tour
from tests.deadline import DEADLINE


async def test_the_tour_shows_the_bus_and_a_traced_call(capsys: pytest.CaptureFixture[str]) -> None:
    lines = await run_tour()
    text = "\n".join(lines)
    assert "value='The answer: 42'" in text
    assert "[session handler] chat ends" in text
    assert "only the bus hears this" in text
    assert "[session handler] only the bus" not in text
    assert "attempts=3" in text
    assert "success=False" in text
    assert "dead letters=1" in text
    assert "[demo]" in text
    assert "span 'chat llmgine-demo' (client)" in text
    assert "span 'session tour' (internal)" in text
    assert capsys.readouterr().out.count("\n") == len(lines)


def test_the_cli_runs_the_tour_in_a_fresh_interpreter() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "llmgine", "demo"], capture_output=True, text=True, timeout=DEADLINE
    )
    assert done.returncode == 0, done.stderr
    assert "5. Stats:" in done.stdout
