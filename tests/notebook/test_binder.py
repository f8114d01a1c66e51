"""The Binder configuration (``binder/``, for repo2docker): ``start`` leaves the choice of
model to llmgine (without a key: the local model ``postBuild`` installs), and what
``requirements.txt`` and ``postBuild`` install is enough to run the quickstart on it.

The second test builds that environment for real: a fresh virtual environment, ``pip
install -r binder/requirements.txt``, then ``binder/postBuild`` run from a copy of the
repository (as repo2docker runs it: llmgine with its notebook, context, local and nats
extras, and the local model), then ``binder/start jupyter nbconvert --execute`` with a
kernel of that environment on the quickstart, whose answers come from the local model,
and on 08-scale-out, whose NATS server and workers come from that environment too. It
needs the package index that the test command's own installation uses, and takes a few
minutes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.deadline import DEADLINE
from tests.notebook.nb_support import (
    NOTEBOOKS,
    ROOT,
    code_cells,
    execute_command,
    isolated_dirs,
    offline_env,
    outputs,
    read_notebook,
    write_notebook,
)

BINDER = ROOT / "binder"
QUICKSTART = "01-quickstart.ipynb"
SCALE_OUT = "08-scale-out.ipynb"  # the nats extra: a server and worker processes
LOCAL = "local:smollm2"
# Not copied into the repository repo2docker would see: caches, environments, history.
_NOT_COPIED = shutil.ignore_patterns(
    ".venv", ".git", ".*_cache", ".hypothesis", ".coverage*", "__pycache__", "*.pyc", "artifacts"
)


def _start(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(BINDER / "start"), *command],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize(
    "given",
    [
        {},
        {"LLMGINE_MODEL": "anthropic:claude-sonnet-4-5"},
        {"OPENAI_API_KEY": "sk-test"},
        {"GEMINI_API_KEY": "AIza-test"},
    ],
    ids=["no-key", "model-chosen", "openai", "gemini"],
)
def test_start_leaves_the_model_to_llmgine(given: dict[str, str]) -> None:
    # Without a key llmgine itself picks the local model (postBuild installs it): start
    # must not pin the demo, nor anything else.
    ran = _start(
        [sys.executable, "-c", "import os; print(os.environ.get('LLMGINE_MODEL', ''))"],
        offline_env(given),
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == given.get("LLMGINE_MODEL", "")


def test_post_build_installs_the_local_model() -> None:
    lines = [
        line.strip()
        for line in (BINDER / "postBuild").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert 'python -m pip install -e ".[notebook,context,local,nats]"' in lines
    assert lines[-1] == "python -m llmgine local install"  # after llmgine is installed


def test_start_runs_the_command_it_is_given_and_passes_its_status_on() -> None:
    ran = _start(["sh", "-c", "echo started; exit 3"], offline_env())
    assert (ran.returncode, ran.stdout) == (3, "started\n")


def test_binder_files_are_executable_where_repo2docker_runs_them() -> None:
    for name in ("postBuild", "start"):
        assert os.access(BINDER / name, os.X_OK), f"chmod +x binder/{name}"
    assert (BINDER / "requirements.txt").is_file()


def _run(command: list[str], *, env: dict[str, str], cwd: Path, timeout: float) -> str:
    ran = subprocess.run(
        command, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    output = ran.stdout + ran.stderr
    assert ran.returncode == 0, f"{' '.join(command)} failed ({ran.returncode}):\n{output[-6000:]}"
    return output


def _probe_notebook(path: Path) -> None:
    """A notebook that says which Python runs its kernel and which llmgine it imports."""
    source = (
        "import json, os, sys\nimport llmgine\nfrom llmgine.llm import default_model\n"
        "print(json.dumps({'prefix': sys.prefix, 'llmgine': llmgine.__file__, "
        "'variable': os.environ.get('LLMGINE_MODEL'), 'model': default_model()}))"
    )
    cell: dict[str, object] = {"cell_type": "code", "execution_count": None, "metadata": {}}
    write_notebook(
        path,
        {
            "cells": [{**cell, "id": "probe", "outputs": [], "source": source}],
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
            "nbformat": 4,
            "nbformat_minor": 5,
        },
    )


@pytest.mark.timeout(900)
def test_what_binder_installs_runs_the_quickstart_and_the_workers(tmp_path: Path) -> None:
    repo, venv, out = tmp_path / "repo", tmp_path / "venv", tmp_path / "out"
    shutil.copytree(ROOT, repo, ignore=_NOT_COPIED)
    bin_dir = venv / "bin"
    started = time.perf_counter()
    # The base interpreter, as Binder's image has it: not this virtual environment's.
    _run([sys.executable, "-m", "venv", str(venv)], env=offline_env(), cwd=tmp_path, timeout=120)
    env = offline_env(
        {
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "VIRTUAL_ENV": str(venv),
            "PIP_QUIET": "1",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        }
    )
    for name in ("PYTHONPATH", "PYTHONHOME", "JUPYTER_PATH"):
        env.pop(name, None)
    requirements = str(repo / "binder" / "requirements.txt")
    _run(
        [str(bin_dir / "python"), "-m", "pip", "install", "--quiet", "-r", requirements],
        env=env,
        cwd=repo,
        timeout=600,
    )
    _run(["bash", "binder/postBuild"], env=env, cwd=repo, timeout=600)
    installed = time.perf_counter()

    # The notebooks run as on Binder: no settings, kernels or history of this machine's.
    (tmp_path / "home").mkdir()
    env |= {**isolated_dirs(tmp_path / "state"), "HOME": str(tmp_path / "home")}
    probe = tmp_path / "probe.ipynb"
    _probe_notebook(probe)
    quickstart, scale_out = repo / "notebooks" / QUICKSTART, repo / "notebooks" / SCALE_OUT
    assert quickstart.is_file(), f"{NOTEBOOKS / QUICKSTART} is missing"
    _run(
        execute_command(
            ["bash", "binder/start", "jupyter"],
            [probe, quickstart, scale_out],
            output_dir=out,
            timeout=int(DEADLINE),  # a cell
        ),
        env=env,
        cwd=repo,
        timeout=300 + DEADLINE,  # three notebooks, the scale-out one starting processes
    )
    ran = time.perf_counter()
    print(
        f"binder environment installed in {installed - started:.0f} s; "
        f"quickstart (on the local model) and scale-out executed in {ran - installed:.0f} s"
    )

    stream = next(o for o in outputs(read_notebook(out / "probe.ipynb")) if o.get("name"))
    facts = json.loads("".join(stream["text"]))
    assert Path(facts["prefix"]) == venv  # the kernel is the Binder environment's Python
    assert Path(facts["llmgine"]).is_relative_to(repo)  # llmgine installed from the copy
    assert facts["variable"] is None  # binder/start chose nothing
    assert facts["model"] == LOCAL  # llmgine's default: postBuild installed the local model

    executed = read_notebook(out / QUICKSTART)
    cells = code_cells(executed)
    assert all(cell["execution_count"] is not None for cell in cells)
    kinds = [o["output_type"] for o in outputs(executed)]
    assert "error" not in kinds
    text = json.dumps(executed, ensure_ascii=False)
    assert f"{LOCAL} · local model, offline" in text  # the answers came from the local model
    assert "llmgine: cells use local:smollm2 (local model, offline)" in text
    assert "CompareView: 2 models, done" in text

    scaled = read_notebook(out / SCALE_OUT)
    assert "error" not in [o["output_type"] for o in outputs(scaled)]
    last = "".join(code_cells(scaled)[-1]["outputs"][0]["text"])
    assert last == "{'worker-a': -9, 'worker-b': 0} False\n"  # killed, stopped; server too
