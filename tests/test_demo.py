"""The main job's demo runs and shows each feature it promises."""

from __future__ import annotations

import subprocess
import sys

import pytest

from llmgine.__main__ import main
from llmgine._demo import run_demo


async def test_the_demo_tours_the_bus(capsys: pytest.CaptureFixture[str]) -> None:
    lines = await run_demo()
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


def test_the_cli_runs_the_demo_in_a_fresh_interpreter() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "llmgine", "demo"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "5. Stats:" in done.stdout


def test_the_cli_needs_a_command() -> None:
    with pytest.raises(SystemExit) as exited:
        main([])
    assert exited.value.code == 2
