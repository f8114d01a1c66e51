"""What the notebook tests and `nb_refresh` share: where the notebooks are, the offline
environment they run in, and what must never be saved in them."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import socket
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
SANITIZE = Path(__file__).with_name("nbval_sanitize.cfg")
EXPECTED = (
    "01-quickstart",
    "02-compare-providers",
    "03-traces-and-dataframes",
    "04-tools",
    "05-context",
    "06-record-and-replay",
    "07-sweeps",
    "08-scale-out",
)
RUN_MARKER = "LLMGINE_NOTEBOOK_RUN"  # environment variable: which run started a process
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"

# Provider keys, and what would make a run leave this machine or change its model:
# OTEL_EXPORTER_OTLP_* would export spans to a collector; PYTEST_ADDOPTS would reach the
# child pytest; COVERAGE_PROCESS_START would start coverage in every kernel.
_KEY_NAMES = frozenset({"GOOGLE_API_KEY", "GEMINI_API_KEY", "LLMGINE_MODEL", "PYTEST_ADDOPTS"})
_DROPPED_PREFIXES = ("OTEL_", "COV_CORE_", "COVERAGE_PROCESS_")

# Shapes of provider keys (OpenAI, Anthropic, Google), as llmgine's redactor knows them.
_KEY_SHAPES = re.compile(r"sk-(?:ant-)?[A-Za-z0-9_-]{20,}|AIza[0-9A-Za-z_-]{30,}")


def notebook_paths() -> list[Path]:
    """The notebooks in ``notebooks/``, in order."""
    return sorted(NOTEBOOKS.glob("*.ipynb"))


def offline_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without provider keys, ``LLMGINE_MODEL`` or
    OpenTelemetry export settings, plus ``extra``: the notebooks run on llmgine's default
    model (the local model where it is installed, else the demo) and nothing leaves the
    machine."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.endswith("_API_KEY")
        and name not in _KEY_NAMES
        and not name.startswith(_DROPPED_PREFIXES)
    }
    env.update(extra or {})
    return env


def isolated_dirs(root: Path) -> dict[str, str]:
    """Jupyter and IPython state (history, connection files, settings) under ``root``,
    so that a test run writes nothing to the home directory."""
    dirs = {
        "IPYTHONDIR": root / "ipython",
        "JUPYTER_RUNTIME_DIR": root / "jupyter-runtime",
        "JUPYTER_CONFIG_DIR": root / "jupyter-config",
        "JUPYTER_DATA_DIR": root / "jupyter-data",  # kernel specs: this environment's only
    }
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    return {name: str(path) for name, path in dirs.items()}


def execute_command(
    launcher: list[str], notebooks: list[Path], *, output_dir: Path, timeout: float
) -> list[str]:
    """``launcher`` (e.g. ``[sys.executable, "-m", "jupyter"]``) running ``nbconvert`` to
    execute ``notebooks`` into ``output_dir``, each cell given ``timeout`` seconds; widget
    state is not stored (it is the kernel's, not the notebook's)."""
    return [
        *launcher,
        "nbconvert",
        "--to",
        "notebook",
        "--execute",
        "--ExecutePreprocessor.store_widget_state=False",
        f"--ExecutePreprocessor.timeout={int(timeout)}",
        f"--output-dir={output_dir}",
        *(str(path) for path in notebooks),
    ]


def read_notebook(path: Path) -> dict[str, Any]:
    notebook: dict[str, Any] = json.loads(path.read_text("utf-8"))
    return notebook


def write_notebook(path: Path, notebook: Mapping[str, Any]) -> None:
    """Written as Jupyter writes notebooks (one-space indent, sorted keys), so that saving
    it again in JupyterLab changes nothing but what changed."""
    text = json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False)
    path.write_text(text + "\n", "utf-8")


def code_cells(notebook: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]


def outputs(notebook: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    for cell in code_cells(notebook):
        yield from cell.get("outputs", [])


def without_outputs(notebook: Mapping[str, Any]) -> dict[str, Any]:
    """A copy with no outputs and no execution counts (as if never run)."""
    copy: dict[str, Any] = json.loads(json.dumps(notebook))
    for cell in code_cells(copy):
        cell["outputs"] = []
        cell["execution_count"] = None
    return copy


def for_commit(notebook: Mapping[str, Any]) -> dict[str, Any]:
    """A copy fit to commit: widgets keep their text and HTML but lose the widget view
    (a saved view has no widget state to draw, so JupyterLab would show "Error
    displaying widget: model not found" instead of the HTML), no saved widget state
    (plotly's FigureWidget alone stores megabytes of JavaScript there), and no per-cell
    execution timestamps."""
    copy: dict[str, Any] = json.loads(json.dumps(notebook))
    copy["metadata"].pop("widgets", None)
    for cell in copy["cells"]:
        cell.get("metadata", {}).pop("execution", None)
        if cell["cell_type"] != "code":
            continue
        kept = []
        for output in cell["outputs"]:
            data = output.get("data")
            if data is not None and WIDGET_VIEW in data:
                del data[WIDGET_VIEW]
                if not data:
                    continue
            kept.append(output)
        cell["outputs"] = kept
    return copy


def machine_strings() -> list[str]:
    """Strings that would say where and by whom a notebook was run: this checkout's and
    the home directory's paths, the temporary directory, the host name, and the values of
    credential-like environment variables."""
    found = [str(ROOT), str(ROOT.parent) + os.sep, str(Path.home()) + os.sep]
    found.append(tempfile.gettempdir().rstrip(os.sep) + os.sep)
    host = socket.gethostname()
    if len(host) >= 6:  # a short name would match ordinary words
        found.append(host)
    secret = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD)", re.IGNORECASE)
    found += [v for k, v in os.environ.items() if secret.search(k) and len(v) >= 8]
    return sorted(set(found), key=len, reverse=True)


def leaks(text: str) -> list[str]:
    """What of `machine_strings` (or anything shaped like a provider key) ``text`` holds."""
    found = [s for s in machine_strings() if s in text]
    found += _KEY_SHAPES.findall(text)
    return found


def problems(notebook: Mapping[str, Any]) -> list[str]:
    """Why ``notebook`` is not fit to commit: errors or stderr in its outputs, saved
    widget state or views, or machine-specific text (see `machine_strings`)."""
    found = []
    if "widgets" in notebook["metadata"]:
        found.append("saved widget state in the notebook's metadata")
    for output in outputs(notebook):
        kind = output["output_type"]
        if kind == "error":
            found.append(f"an error output: {output['ename']}: {output['evalue']}")
        elif kind == "stream" and output["name"] == "stderr":
            found.append(f"stderr output: {''.join(output['text'])[:200]!r}")
        elif WIDGET_VIEW in output.get("data", {}):
            found.append("a widget view (the notebook was not saved by nb_refresh)")
    text = json.dumps(notebook, ensure_ascii=False)
    found += [f"machine-specific text: {s!r}" for s in leaks(text)]
    return found


def processes_of_run(token: str) -> list[int] | None:
    """The processes whose environment holds ``LLMGINE_NOTEBOOK_RUN=token``: every process a
    run given that variable started (its kernel, and the servers and workers a notebook
    starts inherit it), found by that mark rather than by a name another run could share.
    None where ``/proc`` cannot tell (not Linux)."""
    proc = Path("/proc")
    if not (proc / "self" / "environ").exists():
        return None
    mark = f"{RUN_MARKER}={token}".encode()
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone meanwhile, or another user's
            continue
        if mark in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def left_running(token: str, deadline: float) -> list[str] | None:
    """What the run marked ``token`` left running once ``deadline`` seconds have passed
    (a process may take a moment to exit after its parent), each killed by its pid and
    described by its command line; None where `processes_of_run` cannot tell."""
    end = time.monotonic() + deadline
    pids = processes_of_run(token)
    if pids is None:
        return None
    for pid in pids:  # wait for each to exit (a pidfd is readable once it has), not poll
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue  # exited already
        try:
            select.select([fd], [], [], max(0.0, end - time.monotonic()))
        finally:
            os.close(fd)
    pids = processes_of_run(token) or []
    left = []
    for pid in pids:
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            os.kill(pid, signal.SIGKILL)
        except (OSError, ProcessLookupError):
            continue  # it exited after all
        left.append(f"{pid}: {command.decode(errors='replace').strip()}")
    return left
