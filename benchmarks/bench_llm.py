"""The LLM benchmark: what the unified layer adds to each call.

A loopback server (``loopback_server.py``, its own process, like a real server) answers
OpenAI Chat Completions and Anthropic Messages requests at once. In one run, 2,000 calls go
through the raw official SDK, and 2,000 identical calls through llmgine: a `Generate`
command on a bus with observability on (span buffer, event log, metrics), the provider
adapter, tracing and retry wrappers and cost. Rounds alternate which side goes first;
medians of rounds. Budget: llmgine adds at most 5% or 100 µs per call, whichever is larger.
"""

from __future__ import annotations

import asyncio
import gc
import json
import statistics
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from time import perf_counter_ns
from typing import Any

from llmgine import observability
from llmgine.bus import MessageBus
from llmgine.llm import ChatMessage, Generate, LLMRequest, LLMService, get_model

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "llm.json"
PROMPT = "What is the capital of France? Answer in one sentence."
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-sonnet-4-5"}


def start_server() -> tuple[subprocess.Popen[bytes], str]:
    script = Path(__file__).with_name("loopback_server.py")
    server = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE)
    assert server.stdout is not None
    port = server.stdout.readline().decode().strip()  # the server prints it once bound
    if not port.isdigit():
        server.kill()
        raise RuntimeError("the loopback server did not start")
    return server, f"http://127.0.0.1:{port}"


def raw_call(provider: str, url: str) -> tuple[Callable[[], Awaitable[str]], Any]:
    if provider == "openai":
        import openai

        oa = openai.AsyncOpenAI(api_key="sk-bench", base_url=f"{url}/v1", max_retries=0)

        async def call_openai() -> str:
            reply = await oa.chat.completions.create(
                model=MODELS["openai"], messages=[{"role": "user", "content": PROMPT}]
            )
            return reply.choices[0].message.content or ""

        return call_openai, oa
    import anthropic

    an = anthropic.AsyncAnthropic(api_key="sk-ant-bench", base_url=url, max_retries=0)

    async def call_anthropic() -> str:
        reply = await an.messages.create(
            model=MODELS["anthropic"],
            max_tokens=256,
            messages=[{"role": "user", "content": PROMPT}],
        )
        block = reply.content[0]
        return block.text if block.type == "text" else ""

    return call_anthropic, an


async def measure(provider: str, side: str, url: str, calls: int) -> dict[str, float]:
    closer: Any = None
    bus: MessageBus | None = None
    model: Any = None
    if side == "raw":
        call, closer = raw_call(provider, url)
    else:
        bus = MessageBus()
        observability.enable(bus)
        base_url = f"{url}/v1" if provider == "openai" else url
        spec = f"{provider}:{MODELS[provider]}"
        key = {"openai": "sk-bench", "anthropic": "sk-ant-bench"}[provider]
        model = get_model(spec, api_key=key, base_url=base_url, max_tokens=256)
        LLMService(bus, model).install()
        request = LLMRequest(messages=[ChatMessage.user(PROMPT)])
        execute = bus.execute

        async def call() -> str:
            return (await execute(Generate(request=request))).unwrap().text

    for _ in range(50):  # warm the connection pool and the code paths
        assert await call()
    gc.collect()
    samples: list[int] = []
    started = perf_counter_ns()
    for _ in range(calls):
        t0 = perf_counter_ns()
        text = await call()
        samples.append(perf_counter_ns() - t0)
    elapsed = perf_counter_ns() - started
    if "Paris" not in text:
        raise RuntimeError(f"{side} {provider}: unexpected answer {text!r}")
    if bus is not None:
        obs = observability.current()
        assert obs is not None
        if len(obs.buffer) < calls:
            raise RuntimeError("observability did not record the calls")
        await bus.stop()
        observability.disable()
        await model.aclose()
    if closer is not None:
        await closer.close()
    samples.sort()
    return {
        "per_call_us": elapsed / calls / 1000,
        "p50_us": samples[len(samples) // 2] / 1000,
        "p99_us": samples[int(len(samples) * 0.99)] / 1000,
    }


def run(*, quick: bool = False, json_path: Path = DEFAULT_JSON) -> dict[str, Any]:
    calls, rounds = (200, 2) if quick else (2_000, 5)
    server, url = start_server()
    results: dict[str, Any] = {}
    try:
        for provider in MODELS:
            per: dict[str, list[dict[str, float]]] = {"raw": [], "llmgine": []}
            for r in range(rounds):
                print(f"{provider} round {r + 1}/{rounds}", flush=True)
                order = ("raw", "llmgine") if r % 2 == 0 else ("llmgine", "raw")
                for side in order:
                    per[side].append(asyncio.run(measure(provider, side, url, calls)))
            raw = statistics.median(x["per_call_us"] for x in per["raw"])
            ours = statistics.median(x["per_call_us"] for x in per["llmgine"])
            added = ours - raw
            allowed = max(0.05 * raw, 100.0)
            results[provider] = {
                "calls": calls,
                "rounds": per,
                "raw_us": raw,
                "llmgine_us": ours,
                "added_us": added,
                "ratio": ours / raw,
                "allowed_us": allowed,
                "pass": added <= allowed,
            }
    finally:
        server.terminate()
        server.wait()
    report = {"benchmark": "llm", "quick": quick, "results": results}
    print(format_table(report))
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {json_path}")
    return report


def format_table(report: dict[str, Any]) -> str:
    lines = ["provider   raw SDK/call  llmgine/call  added     ratio  budget"]
    for provider, r in report["results"].items():
        verdict = "PASS" if r["pass"] else "FAIL"
        lines.append(
            f"{provider:<10} {r['raw_us']:>9.0f} µs  {r['llmgine_us']:>9.0f} µs  "
            f"{r['added_us']:>+6.0f} µs  {r['ratio']:.3f}  <= {r['allowed_us']:.0f} µs {verdict}"
        )
    lines.append(
        "llmgine = Generate command on a bus with observability on; medians of rounds of "
        f"{next(iter(report['results'].values()))['calls']:,} sequential calls"
    )
    return "\n".join(lines)
