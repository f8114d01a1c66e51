"""The notebooks in ``notebooks/``: committed run and clean, and run again by nbval.

nbval runs in a child pytest (``pytest --nbval-lax``), because the suite's own run
collects ``tests/`` and README.md, not notebooks: each notebook runs top to bottom in a
fresh kernel of this virtual environment (``--nbval-current-env``), offline (no provider
keys, no ``LLMGINE_MODEL``: the local model, which this environment has), and the cells
marked ``# NBVAL_CHECK_OUTPUT`` must give their committed output again, after
`nbval_sanitize.cfg` has masked ids, times and costs. What a model samples (its answers,
token counts) is never in a checked cell: those print what holds whatever it says (which
tool was called, which roles a trimmed history keeps). To refresh the committed outputs:
``python -m tests.notebook.nb_refresh``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.deadline import DEADLINE
from tests.notebook.nb_support import (
    EXPECTED,
    NOTEBOOKS,
    ROOT,
    RUN_MARKER,
    SANITIZE,
    code_cells,
    isolated_dirs,
    left_running,
    notebook_paths,
    offline_env,
    problems,
    processes_of_run,
    read_notebook,
)

PATHS = [NOTEBOOKS / f"{name}.ipynb" for name in EXPECTED]
IDS = list(EXPECTED)
# Notebooks that call no model (the bus across processes): no answers to attribute.
NO_MODEL = ("08-scale-out",)
REFRESH = "python -m tests.notebook.nb_refresh"
CHECK = "# NBVAL_CHECK_OUTPUT"  # nbval's marker, alone on its line
MAX_BYTES = 250_000  # a notebook that grows past this saved something it should not


def test_the_notebooks_are_the_documented_ones() -> None:
    assert [p.stem for p in notebook_paths()] == list(EXPECTED)


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_committed_notebook_ran_top_to_bottom_and_is_clean(path: Path) -> None:
    notebook = read_notebook(path)
    cells = code_cells(notebook)
    counts = [cell["execution_count"] for cell in cells]
    assert counts == list(range(1, len(cells) + 1)), (
        f"{path.name} was not run top to bottom in one kernel before it was saved; "
        f"run {REFRESH} {path.stem}"
    )
    first_lines = ["".join(cell["source"]).split("\n", 1)[0] for cell in cells]
    unanswered = [
        line
        for line, cell in zip(first_lines, cells, strict=True)
        if line.startswith(("%llmgine", "%%llmgine"))
        if not cell["outputs"]
    ]
    assert not unanswered, f"magic cells saved without their output: {unanswered}"
    assert problems(notebook) == [], f"run {REFRESH} {path.stem}"
    assert notebook["metadata"]["kernelspec"]["name"] == "python3"
    checked = [cell for cell in cells if CHECK in "".join(cell["source"]).splitlines()]
    assert checked, f"no cell of {path.name} is marked {CHECK!r}: nbval would check nothing"
    assert path.stat().st_size < MAX_BYTES


@pytest.mark.parametrize(
    "path",
    [p for p in PATHS if p.stem not in NO_MODEL],
    ids=[i for i in IDS if i not in NO_MODEL],
)
def test_committed_answers_come_from_the_local_model(path: Path) -> None:
    # Saved without keys where the local model is installed: its answers, said to be its.
    text = json.dumps(read_notebook(path), ensure_ascii=False)
    assert "local:smollm2" in text, f"no local model in {path.name}; run {REFRESH} {path.stem}"
    assert "local model, offline" in text
    assert "demo provider, offline" not in text  # the footer's old words: saved before


def _summary(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    return lines[-1] if lines else ""


@pytest.mark.timeout(240 + DEADLINE)
@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_notebook_runs_offline_under_nbval(path: Path, tmp_path: Path) -> None:
    expected = sum(1 for cell in code_cells(read_notebook(path)) if "".join(cell["source"]))
    run = uuid.uuid4().hex  # marks every process the run starts, to find what it left
    command = [
        sys.executable,
        "-m",
        "pytest",
        "--nbval-lax",
        "--nbval-current-env",
        "--nbval-sanitize-with",
        str(SANITIZE),
        "--nbval-cell-timeout=120",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:pytest_cov",  # the suite's --cov must not measure the child (nor its kernels)
        "-q",
        str(path.relative_to(ROOT)),
    ]
    try:
        ran = subprocess.run(
            command,
            cwd=ROOT,
            env=offline_env({**isolated_dirs(tmp_path), RUN_MARKER: run}),
            capture_output=True,
            text=True,
            timeout=220,
            check=False,
        )
    finally:  # a run that timed out leaves its kernel, server and workers: stop them too
        left = left_running(run, DEADLINE)
    output = ran.stdout + ran.stderr
    summary = _summary(ran.stdout)
    assert ran.returncode == 0, f"nbval failed on {path.name}:\n{output}"
    # Every code cell was collected and passed: none skipped, none failed, no warnings.
    assert re.fullmatch(rf"=*\s*{expected} passed in [\d.]+s( \(.*\))?\s*=*", summary), (
        f"expected {expected} cells to pass, got: {summary}\n{output}"
    )
    # Nothing it started (a kernel, a server, a worker) outlives it; what did was killed.
    if left is None:
        print("no /proc here: cannot check which processes the notebook left running")
    assert not left, f"{path.name} left these running (now killed): {left}"


def test_what_a_run_left_running_is_found_by_its_mark_and_killed() -> None:
    run = uuid.uuid4().hex
    marked = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)"], env={**os.environ, RUN_MARKER: run}
    )
    try:
        if processes_of_run(run) is None:
            pytest.skip("no /proc here: which processes a run left cannot be told")
        assert processes_of_run(uuid.uuid4().hex) == []  # another run's mark: nothing
        left = left_running(run, 0)
        assert left is not None
        assert [line.split(":")[0] for line in left] == [str(marked.pid)]
        assert "time.sleep(600)" in left[0]
        assert marked.wait(timeout=DEADLINE) == -signal.SIGKILL
    finally:
        if marked.poll() is None:
            marked.kill()
            marked.wait()
