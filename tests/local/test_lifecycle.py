"""Servers outlive no one and are shared: a second process of the same user reuses the
server the first started, and when the first is killed (SIGKILL: no clean-up of its own),
its server exits too and its record goes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from llmgine.local import StateDir, running_servers
from llmgine.local._state import pid_alive
from tests.deadline import DEADLINE
from tests.local.conftest import Lines, kill_if_alive, wait_gone

# A process using the local model as users do (default servers, shared through the records
# folder $LLMGINE_LOCAL_DIR): it answers one prompt, says which server answered, and then
# waits for its standard input to close if told to hold on.
USER = textwrap.dedent(
    """
    import asyncio, json, sys
    from llmgine.llm import get_model
    from llmgine.local import default_servers

    async def main():
        model = get_model("local:smollm2", temperature=0, max_tokens=4, retry=False)
        answer = await model.generate("Say hi.")
        (server,) = default_servers().running()
        await model.aclose()
        print(json.dumps({"pid": server.pid, "owned": server.owned, "text": answer.text}))

    asyncio.run(main())
    sys.stdout.flush()
    if sys.argv[1:] == ["hold"]:
        sys.stdin.read()
    """
)


def user_env(state: Path) -> dict[str, str]:
    return {**os.environ, "LLMGINE_LOCAL_DIR": str(state), "LLMGINE_LOCAL_THREADS": "1"}


def test_a_second_process_reuses_the_server_and_none_outlives_its_starter(
    installed: None, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    first = subprocess.Popen(
        [sys.executable, "-c", USER, "hold"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=user_env(state),
    )
    server_pid = None
    try:
        started = json.loads(Lines(first).until('"pid"'))
        server_pid = started["pid"]
        assert started["owned"]
        assert started["text"]
        (record,) = running_servers(StateDir(state))
        assert record.pid == server_pid
        assert record.model == "smollm2"

        second = subprocess.run(
            [sys.executable, "-c", USER],
            capture_output=True,
            text=True,
            env=user_env(state),
            timeout=DEADLINE,
            check=True,
        )
        reused = json.loads(second.stdout.splitlines()[-1])
        assert reused["pid"] == server_pid  # the same server ...
        assert not reused["owned"]  # ... found, not started
        assert [r.pid for r in running_servers(StateDir(state))] == [server_pid]
        assert pid_alive(server_pid)  # the second one's exit left it running

        os.kill(first.pid, signal.SIGKILL)  # the starter dies without a word
        first.wait(timeout=DEADLINE)
        wait_gone(server_pid)  # its server follows it
        assert not list(StateDir(state).servers.glob("*.json"))  # and removed its record
    finally:
        kill_if_alive(first.pid, signal.SIGKILL)
        first.wait(timeout=DEADLINE)
        for pipe in (first.stdin, first.stdout):
            if pipe is not None:
                pipe.close()
        if server_pid is not None:
            kill_if_alive(server_pid, signal.SIGKILL)
