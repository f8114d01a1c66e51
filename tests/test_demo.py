"""The main job's demo runs and shows each feature it promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from llmgine import __main__ as cli
from llmgine.__main__ import lab_command, main
from llmgine._demo import run_demo
from tests.deadline import DEADLINE


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
        [sys.executable, "-m", "llmgine", "demo"], capture_output=True, text=True, timeout=DEADLINE
    )
    assert done.returncode == 0, done.stderr
    assert "5. Stats:" in done.stdout


def test_the_cli_needs_a_command() -> None:
    with pytest.raises(SystemExit) as exited:
        main([])
    assert exited.value.code == 2


def test_lab_starts_jupyterlab_on_localhost_on_the_notebooks(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    started: list[list[str]] = []

    def run_child(command: list[str], what: str) -> int:
        started.append(command)
        return 0

    monkeypatch.setattr(cli, "run_child", run_child)
    for name in ("LLMGINE_MODEL", "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    assert main(["lab", str(tmp_path), "--port", "9999", "--ServerApp.token=x"]) == 0
    assert started == [lab_command(tmp_path.resolve(), 9999, ["--ServerApp.token=x"])]
    assert "--ServerApp.ip=127.0.0.1" in started[0]
    assert "--no-browser" in started[0]
    assert "offline demo model" in capsys.readouterr().out


def test_lab_refuses_a_folder_that_does_not_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["lab", str(tmp_path / "missing")]) == 2
    assert "no directory" in capsys.readouterr().err


def test_the_cli_hands_dashboard_options_to_the_dashboard(monkeypatch: pytest.MonkeyPatch) -> None:
    from llmgine.notebook import _dashboard_server

    seen: list[list[str]] = []

    def fake(argv: list[str]) -> int:
        seen.append(argv)
        return 0

    monkeypatch.setattr(_dashboard_server, "main_dashboard", fake)
    assert main(["dashboard", "--port", "5999"]) == 0
    assert seen == [["--port", "5999"]]
