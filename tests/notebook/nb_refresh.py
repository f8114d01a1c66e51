"""Run the notebooks offline and save them with their outputs, fit to commit.

    .venv/bin/python -m tests.notebook.nb_refresh            # every notebook
    .venv/bin/python -m tests.notebook.nb_refresh 04-tools   # some of them

Each notebook is executed by ``jupyter nbconvert --execute`` without provider keys,
``LLMGINE_MODEL`` or OpenTelemetry export settings, so on llmgine's default: the local
model where it is installed (as in the development environment), else the demo model;
`for_commit` then drops what should not be committed (saved widget state, widget views
without it, timestamps), and `problems` checks the result: no errors, no stderr, nothing
of this machine (paths, host name, keys). A notebook that fails a check is not written.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.notebook.nb_support import (
    NOTEBOOKS,
    execute_command,
    for_commit,
    isolated_dirs,
    notebook_paths,
    offline_env,
    problems,
    read_notebook,
    write_notebook,
)


def refresh(path: Path, scratch: Path) -> list[str]:
    """Execute ``path`` and, when it is fit to commit, save it; returns what is wrong."""
    executed = scratch / path.name
    env = offline_env(isolated_dirs(scratch / "state"))
    ran = subprocess.run(
        execute_command([sys.executable, "-m", "jupyter"], [path], output_dir=scratch, timeout=300),
        env=env,
        cwd=path.parent,
        check=False,
    )
    if ran.returncode != 0:
        return [f"jupyter nbconvert --execute failed (exit status {ran.returncode}); see above"]
    notebook = for_commit(read_notebook(executed))
    wrong = problems(notebook)
    if not wrong:
        write_notebook(path, notebook)
    return wrong


def main(names: list[str]) -> int:
    paths = [NOTEBOOKS / f"{n.removesuffix('.ipynb')}.ipynb" for n in names] or notebook_paths()
    failed = 0
    with tempfile.TemporaryDirectory() as scratch:
        for path in paths:
            started = time.perf_counter()
            wrong = refresh(path, Path(scratch))
            took = time.perf_counter() - started
            if wrong:
                failed += 1
                print(f"{path.name}: NOT saved ({took:.1f} s):", *wrong, sep="\n  ")
            else:
                print(f"{path.name}: saved with its outputs ({took:.1f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
