"""The local model server's own process: ``python -m llmgine.local._serve ...``.

It loads the GGUF into llama.cpp's OpenAI-compatible HTTP server (`xllamacpp.Server`),
prints one JSON line on stdout when it listens (``{"url": ..., "pid": ...}``) or fails
(``{"error": ...}``), writes its record for other processes of the same user to find
(`llmgine.local._state`), and serves until it is told to stop:

* ``--until-stdin-closes``: when its standard input reaches end of file, which happens when
  the process that started it exits, however it exits (even killed): no orphan servers;
* SIGTERM or SIGINT (Ctrl-C, ``llmgine local stop``).

llama.cpp's own log goes to stderr, which the starter sends to a log file.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

from llmgine.local import _state


def _say(**fields: object) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def _params(args: argparse.Namespace) -> object:
    import xllamacpp  # type: ignore[import-untyped]

    params = xllamacpp.CommonParams()
    params.model.path = args.model
    params.model_alias = {args.alias}
    params.hostnames = [args.host]
    params.port = args.port
    params.n_ctx = args.context * args.parallel  # every slot gets the full context
    params.n_parallel = args.parallel
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.threads
    # A request without max_tokens stops here, not when the context is full: a small model
    # can repeat itself for thousands of tokens (finish_reason "length" says it stopped).
    params.n_predict = args.max_tokens
    params.use_jinja = True  # the template renders tools; llama.cpp parses calls back
    params.warmup = False  # the first request warms up; starting sooner matters more
    if args.template:
        params.chat_template = Path(args.template).read_text("utf-8")
    return params


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llmgine.local._serve")
    parser.add_argument("--model", required=True)
    parser.add_argument("--alias", required=True)
    parser.add_argument("--template")
    parser.add_argument("--context", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-tokens", type=int, default=1024)
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--key", required=True, help="what other processes reuse it by")
    parser.add_argument("--state-dir", help="where to record it for others to reuse")
    parser.add_argument("--until-stdin-closes", action="store_true")
    args = parser.parse_args(argv)

    stop = threading.Event()
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: stop.set())
    try:
        import xllamacpp

        server = xllamacpp.Server(_params(args))
        url = str(server.listening_address)
    except Exception as exc:  # reported to the starter, which raises a clear error
        _say(error=f"{type(exc).__name__}: {exc}")
        return 3
    record = _state.ServerRecord(
        pid=os.getpid(),
        url=url,
        key=args.key,
        model=args.alias,
        model_path=args.model,
        threads=args.threads,
        context=args.context,
        started_at=time.time(),
        log=os.environ.get("LLMGINE_LOCAL_LOG", ""),
    )
    state = _state.StateDir(Path(args.state_dir)) if args.state_dir else None
    if state is not None:
        state.write(record)
    _say(url=url, pid=os.getpid())
    if args.until_stdin_closes:

        def watch() -> None:
            # Until end of file: the starter has exited. On the raw descriptor: a thread
            # blocked in sys.stdin's buffered read holds its lock, and an exit for another
            # reason (SIGTERM) then aborts in the interpreter's shutdown (exit code -6).
            while os.read(sys.stdin.fileno(), 65536):
                pass
            stop.set()

        threading.Thread(target=watch, daemon=True, name="llmgine-watch-starter").start()
    try:
        while not stop.wait(3600):
            pass
    finally:
        if state is not None:
            state.remove(record.pid)
        del server  # stops llama.cpp's HTTP loop and frees the model
    return 0


if __name__ == "__main__":
    sys.exit(main())
