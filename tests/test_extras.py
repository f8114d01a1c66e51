"""Each extra's absence: a feature that needs it says which extra to install.

Every case runs in a fresh Python process in which the extra's packages cannot be
imported (an import hook refuses them, as if they were never installed), and checks the
message names ``llmgine[<extra>]`` instead of a bare ``No module named 'pandas'``.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from llmgine._extras import EXTRAS
from tests.deadline import DEADLINE

# Refuses the listed top-level packages, as a machine without them would.
BLOCK = """
import sys
BLOCKED = {blocked!r}

class Absent:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, Absent())
"""


CASES = {
    "observability": ({"pandas"}, "from llmgine import observability"),
    "observability-otel": ({"opentelemetry"}, "from llmgine import observability"),
    "notebook": ({"anywidget"}, "from llmgine.notebook import EventStream"),
    "notebook-magics": ({"IPython"}, "import llmgine; llmgine.load_ipython_extension(None)"),
    "sweep": ({"tqdm"}, "from llmgine.sweep import Sweep"),
    "context": ({"sqlalchemy"}, "from llmgine.context import open_store; open_store('x.db')"),
    "postgres": (
        {"asyncpg"},
        "from llmgine.context import SQLContextStore; SQLContextStore('postgresql://h/db')",
    ),
    "mcp": (
        {"mcp"},
        """
        import asyncio
        from llmgine.tools import McpServer

        async def connect():
            async with McpServer.http("http://127.0.0.1:9/mcp"):
                pass

        asyncio.run(connect())
        """,
    ),
    "openai": (
        {"openai"},
        "from llmgine.llm import get_model; get_model('openai:m', api_key='k' * 9)",
    ),
    "anthropic": (
        {"anthropic"},
        "from llmgine.llm import get_model; get_model('anthropic:m', api_key='k' * 9)",
    ),
    "gemini": (
        {"google"},
        "from llmgine.llm import get_model; get_model('gemini:m', api_key='k' * 9)",
    ),
    "local": ({"xllamacpp"}, "from llmgine.llm import get_model; get_model('local:smollm2')"),
    "nats": ({"nats"}, "from llmgine.bus.nats import NatsTransport"),
}


def run(blocked: set[str], code: str, *args: str) -> subprocess.CompletedProcess[str]:
    program = BLOCK.format(blocked=sorted(blocked)) + textwrap.dedent(code)
    return subprocess.run(
        [sys.executable, "-c", program, *args],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_feature_without_its_extra_names_the_extra(case: str) -> None:
    blocked, code = CASES[case]
    extra = case.partition("-")[0]
    done = run(blocked, code)
    assert done.returncode != 0, "the feature worked without its packages: the block failed"
    last = done.stderr.strip().splitlines()[-1]
    assert f"llmgine[{extra}]" in last, done.stderr
    assert not last.startswith("ModuleNotFoundError"), last


def test_the_extras_table_matches_pyproject() -> None:
    import tomllib
    from pathlib import Path

    declared = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    extras = declared["project"]["optional-dependencies"]
    for extra in EXTRAS:
        assert extra in extras, f"_extras names {extra!r}, which pyproject.toml does not declare"


@pytest.mark.parametrize(
    ("command", "blocked"),
    [(["dashboard", "--port", "0"], {"panel"}), (["lab"], {"jupyterlab"})],
    ids=["dashboard", "lab"],
)
def test_the_command_line_says_which_extra_to_install(
    command: list[str], blocked: set[str]
) -> None:
    done = run(blocked, "from llmgine.__main__ import main; raise SystemExit(main())", *command)
    assert done.returncode == 2
    assert 'pip install "llmgine[notebook]"' in done.stderr
    assert "Traceback" not in done.stderr
