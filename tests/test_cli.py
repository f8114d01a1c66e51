"""The command line: what each command starts (in-process), and the commands as a person
uses them: real processes, stopped with Ctrl-C.

A terminal's Ctrl-C sends SIGINT to the whole foreground process group, so each command
runs in its own group here and the group gets the signal. The command must stop, say so,
exit 0, and print no traceback.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from llmgine import __main__ as cli
from llmgine.__main__ import lab_command, main
from tests.deadline import DEADLINE

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=DEADLINE) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def until(ready: Callable[[], bool], process: subprocess.Popen[str], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not ready():
        if process.poll() is not None:
            pytest.fail(f"{what}: the process exited first ({process.returncode})")
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {DEADLINE:.0f} s")
        time.sleep(0.2)  # a polling interval, not a wait for something to happen


def interrupted(command: list[str], ready_url: str, tmp_path: Path) -> tuple[int, str]:
    """Start ``command`` in its own process group, wait until ``ready_url`` answers, send
    the group Ctrl-C (SIGINT), and return its exit status and everything it printed."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),
        "JUPYTER_DATA_DIR": str(tmp_path / "jupyter-data"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter-runtime"),
        "IPYTHONDIR": str(tmp_path / "ipython"),
    }
    log = (tmp_path / "output.log").open("w+")
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        until(lambda: answers(ready_url), process, "serving")
        os.killpg(process.pid, signal.SIGINT)
        status = process.wait(timeout=DEADLINE)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=DEADLINE)
        log.seek(0)
        output = log.read()
        log.close()
    return status, output


def dev_py_start() -> list[str]:
    """``python3 .ci/dev.py start`` on this environment, if dev.py made it (its stamp is
    there, so it installs nothing); else the test cannot run it as a user would."""
    stamp = Path(sys.prefix) / ".llmgine-installed"
    if not stamp.exists():
        pytest.skip(
            f"{sys.prefix} was not made by .ci/dev.py (no {stamp.name}): run the suite "
            "with python3 .ci/dev.py test to include the main job's Ctrl-C test"
        )
    return [sys.executable, str(ROOT / ".ci" / "dev.py"), "start"]


@pytest.mark.timeout(2 * DEADLINE + 60)  # slow: starts JupyterLab (seconds, more when busy)
@pytest.mark.parametrize("how", ["llmgine lab", "dev.py start"])
def test_ctrl_c_stops_the_main_job_cleanly_and_says_so(
    tmp_path: Path, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    if how == "dev.py start":
        monkeypatch.setenv("LLMGINE_VENV", sys.prefix)  # the environment this test runs in
        command = [*dev_py_start(), "--port", str(port)]
    else:
        command = [sys.executable, "-m", "llmgine", "lab", str(ROOT / "notebooks")]
        command += ["--port", str(port)]
    command.append("--ServerApp.token=t0ken-for-the-test")
    url = f"http://127.0.0.1:{port}/api/status?token=t0ken-for-the-test"
    status, output = interrupted(command, url, tmp_path)
    assert status == 0, output
    assert "JupyterLab stopped" in output
    assert "Traceback" not in output
    assert "KeyboardInterrupt" not in output


@pytest.mark.timeout(2 * DEADLINE + 60)  # slow: starts the Panel dashboard server
def test_ctrl_c_stops_the_dashboard_cleanly_and_says_so(tmp_path: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "llmgine", "dashboard", "--port", str(port)]
    status, output = interrupted(command, f"http://127.0.0.1:{port}/", tmp_path)
    assert status == 0, output
    assert "stopped" in output
    assert "Traceback" not in output


@pytest.mark.parametrize("command", [[], ["lab"], ["demo"], ["dashboard"]])
def test_help_is_plain_text(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    assert "usage: llmgine" in text
    assert "``" not in text  # no reST markup in what a terminal shows


def test_the_cli_needs_a_command() -> None:
    with pytest.raises(SystemExit) as exited:
        main([])
    assert exited.value.code == 2


@pytest.mark.parametrize(
    ("installed", "said"),
    [
        (True, "notebooks use the local model, local:smollm2 (a real small model"),
        (False, "notebooks use the offline demo model, demo:llmgine-demo (a labelled"),
    ],
    ids=["local-model", "demo"],
)
def test_lab_starts_jupyterlab_on_localhost_on_the_notebooks(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    installed: bool,
    said: str,
) -> None:
    import llmgine.local

    monkeypatch.setattr(llmgine.local, "local_model_installed", lambda *_: installed)
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
    assert f"llmgine: no API keys set, so {said}" in capsys.readouterr().out


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
