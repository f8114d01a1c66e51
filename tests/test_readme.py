"""README.md: every block is either run by the suite or is a shell command.

pytest-markdown-docs (``--markdown-docs`` in pyproject.toml) runs each ```python block
as a script. This file checks that no block escapes that: every fence is ```python
(run there), ```ipython (a notebook, run here in a fresh kernel, offline), ```bash (the
two commands; the suite *is* the second one) or a plain fence (the file tree).
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from markdown_it import MarkdownIt
from nbclient import NotebookClient

from tests.deadline import DEADLINE
from tests.notebook.nb_support import ROOT, isolated_dirs, offline_env

README = ROOT / "README.md"
KINDS = {"python", "ipython", "bash", ""}


def _fences() -> list[tuple[str, str, int]]:
    """(language, code, line number) of each fenced block of the README."""
    tokens = MarkdownIt("commonmark").parse(README.read_text("utf-8"))
    found = []
    for token in tokens:
        if token.type == "fence":
            line = token.map[0] + 1 if token.map else 0
            found.append((token.info.strip().split(" ")[0], token.content, line))
    return found


def _notebook_cells(code: str) -> list[str]:
    """The cells of an ```ipython block: `# %%` starts each one, as in VS Code."""
    cells: list[list[str]] = []
    for line in code.splitlines():
        if line.strip() == "# %%":
            cells.append([])
        elif cells:
            cells[-1].append(line)
        elif line.strip():
            raise AssertionError(f"text before the first '# %%' of a notebook block: {line!r}")
    return ["\n".join(lines).strip() for lines in cells]


def _text(output: dict[str, object]) -> str:
    if output["output_type"] == "stream":
        return str(output["text"])
    data = output.get("data")
    if isinstance(data, dict):
        return "\n".join(str(v) for k, v in data.items() if k.startswith("text/"))
    return ""


def test_every_block_is_run_by_the_suite_or_is_a_shell_command() -> None:
    fences = _fences()
    assert sum(1 for kind, _, _ in fences if kind == "python") >= 5
    assert any(kind == "ipython" for kind, _, _ in fences)
    unknown = [(kind, line) for kind, _, line in fences if kind not in KINDS]
    assert not unknown, (
        f"README blocks of a kind nothing runs: {unknown}; use ```python for a script "
        "(pytest-markdown-docs runs it) or ```ipython with '# %%' cells for a notebook"
    )
    # A plain fence is not run, so it must not be code in disguise.
    plain = [line for kind, code, line in fences if kind == "" and "import " in code]
    assert not plain, f"plain README fences holding Python at lines {plain}: label them"


@pytest.mark.timeout(int(DEADLINE) + 60)
def test_the_notebook_blocks_run_in_a_fresh_kernel_offline(tmp_path: Path) -> None:
    """A fresh kernel of this environment, with no keys and no LLMGINE_MODEL: exactly
    what a new user without keys gets in the JupyterLab the main job starts."""
    blocks = [(code, line) for kind, code, line in _fences() if kind == "ipython"]
    for code, line in blocks:
        cells = _notebook_cells(code)
        assert cells, f"the notebook block at README line {line} has no '# %%' cells"
        # nbformat ships no type hints.
        notebook = nbformat.v4.new_notebook()  # type: ignore[no-untyped-call]
        notebook.cells = [
            nbformat.v4.new_code_cell(source)  # type: ignore[no-untyped-call]
            for source in cells
        ]
        client = NotebookClient(
            notebook,
            kernel_name="python3",
            timeout=int(DEADLINE),
            startup_timeout=int(DEADLINE),
            resources={"metadata": {"path": str(tmp_path)}},
        )
        client.execute(env=offline_env(isolated_dirs(tmp_path)))
        for number, cell in enumerate(notebook.cells, start=1):
            errors = [o for o in cell.outputs if o["output_type"] == "error"]
            assert not errors, (
                f"README line {line}, cell {number} ({cell.source.splitlines()[0]!r}) "
                f"failed: {errors[0]['ename']}: {errors[0]['evalue']}"
            )
        texts = ["\n".join(_text(o) for o in cell.outputs) for cell in notebook.cells]
        # What the README says these cells show: each %%llmgine cell answers on the demo
        # model (which says it is the offline demo); a model without a key fails in its
        # own column, saying what to set, while the demo's column answers; and
        # `%llmgine trace` draws the last cell's calls.
        for source, text in zip(cells, texts, strict=True):
            first = source.splitlines()[0]
            if first.startswith("%%llmgine"):
                assert "Offline demo" in text, f"{first!r} showed no demo answer:\n{text}"
            models = first.split()[1:] if first.startswith("%%llmgine") else []
            if len(models) > 1:
                assert f"{len(models)} models, done" in text, text
                for model in models:
                    assert f"== {model} (" in text, f"no column for {model}:\n{text}"
                if "openai:gpt-4o-mini" in models:
                    assert "== openai:gpt-4o-mini (failed (MissingCredentialsError))" in text
                    assert "set OPENAI_API_KEY" in text
            if first == "%llmgine trace":
                assert "TraceView" in text, text
                assert "session compare" in text, text
