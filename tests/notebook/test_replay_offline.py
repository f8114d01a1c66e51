"""The record-and-replay notebook re-runs with no network at all and gets its recorded
answers.

The kernel runs with a ``sitecustomize`` (`_NO_NETWORK`) whose audit hook refuses every
connection, datagram and name lookup that is not this machine's loopback (or a Unix
socket), and writes each refusal to a log. The kernel's own channels are loopback
(and ZeroMQ's, in C, never reach the hook), so the notebook runs; any call that tried to
reach a provider, a DNS server or a model download would fail its cell, and be logged.
A probe first shows the hook is in force in that environment: outside addresses and
names are refused, loopback is not.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.deadline import DEADLINE
from tests.notebook.nb_support import (
    NOTEBOOKS,
    ROOT,
    code_cells,
    execute_command,
    isolated_dirs,
    offline_env,
    read_notebook,
    write_notebook,
)

NAME = "06-record-and-replay"
CHECK = "# NBVAL_CHECK_OUTPUT"

_NO_NETWORK = '''
"""Refuse any network use but loopback (installed by tests/notebook/test_replay_offline.py)."""
import ipaddress
import os
import sys

_LOG = os.environ["LLMGINE_TEST_NO_NETWORK_LOG"]
_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def _loopback(host):
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    host = str(host).strip("[]")
    if host in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _names_a_host(host):
    """Whether looking ``host`` up would ask a resolver: a name, not an address."""
    if _loopback(host):
        return False
    text = host.decode(errors="replace") if isinstance(host, bytes) else str(host)
    try:
        ipaddress.ip_address(text.strip("[]").split("%")[0])
    except ValueError:
        return True
    return False  # an address: its connect() is what the hook refuses


def _refuse(what):
    with open(_LOG, "a", encoding="utf-8") as log:
        log.write(what + "\\n")
    raise ConnectionRefusedError(f"refused by the no-network test: {what}")


def _hook(event, args):
    if event in ("socket.connect", "socket.sendto"):
        address = args[1] if event == "socket.connect" else args[-1]
        if isinstance(address, tuple) and not _loopback(address[0]):
            _refuse(f"{event} {address!r}")
    elif event in ("socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr"):
        if _names_a_host(args[0]):
            _refuse(f"{event} {args[0]!r}")


sys.addaudithook(_hook)
'''

_PROBE = """
import socket

listener = socket.create_server(("127.0.0.1", 0))
socket.create_connection(listener.getsockname(), timeout=5).close()  # loopback: allowed
for attempt in (
    lambda: socket.create_connection(("192.0.2.1", 443), timeout=5),
    lambda: socket.getaddrinfo("api.openai.com", 443),
):
    try:
        attempt()
    except ConnectionRefusedError as exc:
        print(exc)
"""


_KERNEL_REFUSAL = "socket.connect ('192.0.2.7', 80)"
_KERNEL_PROBE = """
import socket

try:
    socket.create_connection(("192.0.2.7", 80), timeout=5)
except ConnectionRefusedError as exc:
    print(exc)
"""


def _no_network_env(tmp_path: Path) -> tuple[dict[str, str], Path]:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(_NO_NETWORK, "utf-8")
    log = tmp_path / "refused.log"
    extra = isolated_dirs(tmp_path / "state")
    paths = [str(site), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    extra.update(
        PYTHONPATH=os.pathsep.join(paths),
        LLMGINE_TEST_NO_NETWORK_LOG=str(log),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
    )
    env = offline_env(extra)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        env.pop(name, None)
    return env, log


def _stream_text(cell: dict[str, object]) -> str:
    outputs = cell.get("outputs")
    assert isinstance(outputs, list)
    return "".join("".join(o["text"]) for o in outputs if o.get("output_type") == "stream")


def test_the_replay_notebook_runs_with_no_network(tmp_path: Path) -> None:
    env, log = _no_network_env(tmp_path)

    probe = subprocess.run(
        [sys.executable, "-c", _PROBE],
        env=env,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.splitlines() == [
        "refused by the no-network test: socket.connect ('192.0.2.1', 443)",
        "refused by the no-network test: socket.getaddrinfo 'api.openai.com'",
    ]
    log.unlink()

    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(NOTEBOOKS / f"{NAME}.jsonl", work)
    notebook = read_notebook(NOTEBOOKS / f"{NAME}.ipynb")
    notebook["cells"].append(  # the kernel itself runs with the hook: shown last
        {
            "cell_type": "code",
            "execution_count": None,
            "id": "no-network-probe",
            "metadata": {},
            "outputs": [],
            "source": _KERNEL_PROBE,
        }
    )
    write_notebook(work / f"{NAME}.ipynb", notebook)
    ran = subprocess.run(
        execute_command(
            [sys.executable, "-m", "jupyter"],
            [work / f"{NAME}.ipynb"],
            output_dir=tmp_path / "out",
            timeout=DEADLINE,
        ),
        env=env,
        cwd=work,
        capture_output=True,
        text=True,
        timeout=DEADLINE * 2,
        check=False,
    )
    assert ran.returncode == 0, f"the notebook failed with no network:\n{ran.stderr[-3000:]}"
    refused = log.read_text("utf-8") if log.exists() else ""
    assert refused == f"{_KERNEL_REFUSAL}\n", f"the notebook tried to reach the network:\n{refused}"

    *executed, probe_cell = code_cells(read_notebook(tmp_path / "out" / f"{NAME}.ipynb"))
    assert _stream_text(probe_cell) == f"refused by the no-network test: {_KERNEL_REFUSAL}\n"
    committed = code_cells(read_notebook(NOTEBOOKS / f"{NAME}.ipynb"))
    recorded = json.loads((NOTEBOOKS / f"{NAME}.jsonl").read_text("utf-8").splitlines()[0])
    answer = recorded["response"]["parts"][0]["text"]
    shown = json.dumps([cell["outputs"] for cell in executed], ensure_ascii=False)
    assert answer in shown  # the recorded answer, in the %%llmgine cell and the prints
    assert "replayed from 06-record-and-replay.jsonl" in shown
    assert '"output_type": "error"' not in shown
    checked = [
        (_stream_text(new), _stream_text(old))
        for new, old in zip(executed, committed, strict=True)
        if CHECK in "".join(old["source"]).splitlines()
    ]
    assert len(checked) >= 6
    for new, old in checked:
        assert new == old  # replayed exactly: the same text as the committed run
