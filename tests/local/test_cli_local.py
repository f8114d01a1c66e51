"""``llmgine local serve | status | stop`` from a terminal: serve runs a server until it is
stopped, status lists it, stop stops it by its process, and serve then exits cleanly."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmgine.local import StateDir, running_servers
from tests.deadline import DEADLINE
from tests.local.conftest import Lines, kill_if_alive, wait_gone


def llmgine_local(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmgine", "local", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "LLMGINE_LOCAL_DIR": str(state)},
        timeout=DEADLINE,
        check=False,
    )


class Serving:
    """``llmgine local serve --threads 1`` running, and the pid of its server."""

    def __init__(self, state: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "llmgine", "local", "serve", "--threads", "1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "LLMGINE_LOCAL_DIR": str(state)},
            start_new_session=True,  # a process group of its own, as a terminal's job
        )
        self.lines = Lines(self.process)
        line = self.lines.until("serving")
        found = re.search(
            r"serving local:smollm2 at (http://127\.0\.0\.1:\d+/v1) \(pid (\d+),", line
        )
        assert found, line
        self.url, self.server_pid = found[1], int(found[2])

    def exit_code(self) -> int:
        return self.process.wait(timeout=DEADLINE)

    def stderr(self) -> str:
        """What it wrote on stderr (once it has exited)."""
        assert self.process.stderr is not None
        return self.process.stderr.read()

    def close(self) -> None:
        kill_if_alive(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=DEADLINE)
        kill_if_alive(self.server_pid, signal.SIGKILL)
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def serving(installed: None, tmp_path: Path) -> Iterator[Serving]:
    started = Serving(tmp_path / "state")
    try:
        yield started
    finally:
        started.close()


def test_serve_status_and_stop(serving: Serving, tmp_path: Path) -> None:
    state = tmp_path / "state"
    status = llmgine_local(state, "status")
    assert status.returncode == 0, status.stderr
    (line,) = status.stdout.splitlines()
    assert line.startswith(
        f"local:smollm2  {serving.url.removesuffix('/v1')}  pid {serving.server_pid}"
    )
    assert "1 thread(s)" in line
    assert " MB " in line

    again = llmgine_local(state, "serve", "--threads", "1")  # a second serve reuses it
    assert again.returncode == 0, again.stderr
    assert f"already running: local:smollm2 at {serving.url} (pid {serving.server_pid})" in (
        again.stdout
    )

    stop = llmgine_local(state, "stop")
    assert stop.returncode == 0, stop.stderr
    assert stop.stdout.strip() == f"llmgine: stopped local:smollm2 (pid {serving.server_pid})"
    wait_gone(serving.server_pid)
    assert serving.exit_code() == 0, serving.stderr()
    assert "llmgine: local model server stopped" in serving.lines.rest()
    assert running_servers(StateDir(state)) == []

    after = llmgine_local(state, "status")
    assert after.returncode == 0
    assert "no local model server is running" in after.stdout
    unknown = llmgine_local(state, "stop", "--pid", str(serving.server_pid))
    assert unknown.returncode == 1
    assert f"no running local model server with pid {serving.server_pid}" in unknown.stdout


def test_ctrl_c_stops_serve_and_its_server(serving: Serving, tmp_path: Path) -> None:
    os.killpg(serving.process.pid, signal.SIGINT)  # as a terminal's Ctrl-C: to the group
    assert serving.exit_code() == 0, serving.stderr()
    assert "Traceback" not in serving.stderr()
    wait_gone(serving.server_pid)
    assert "llmgine: local model server stopped" in serving.lines.rest()
    assert running_servers(StateDir(tmp_path / "state")) == []


def test_serve_names_a_missing_model_file(installed: None, tmp_path: Path) -> None:
    missing = tmp_path / "absent.gguf"
    done = llmgine_local(tmp_path / "state", "serve", str(missing), "--threads", "1")
    assert done.returncode == 2
    assert f"the model file {missing} does not exist" in done.stderr
    assert "Traceback" not in done.stderr
