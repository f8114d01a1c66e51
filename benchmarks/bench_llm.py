"""The LLM benchmark: what the unified layer adds to each call.

A loopback server (``loopback_server.py``, its own process, like a real server) answers
OpenAI Chat Completions and Anthropic Messages requests at once. Each round makes 2,000
calls through the raw official SDK and 2,000 calls with the same request body through
llmgine (a `Generate` command on a bus with observability on: span buffer, event log,
metrics; the provider adapter, tracing and retry wrappers, cost), interleaved one by one so
that both sides meet the same machine (it is shared and noisy). Per-call medians; the
median over rounds of the difference. Budget: llmgine adds at most 5% or 100 µs per call,
whichever is larger.
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


Call = Callable[[], Awaitable[str]]


def raw_call(provider: str, url: str) -> tuple[Call, Call, Any]:
    """The raw SDK call as its users write it; the SDK call as llmgine's adapters make it
    (the client's own ``post`` with the wire JSON, its answer read as JSON: no ``create``
    transform, no response models); and the client. The request body is the same, byte for
    byte, as llmgine's adapters send for this call."""
    import httpx2  # the HTTP client both SDKs are built on

    if provider == "openai":
        import openai

        oa = openai.AsyncOpenAI(api_key="sk-bench", base_url=f"{url}/v1", max_retries=0)
        params: dict[str, Any] = {
            "model": MODELS["openai"],
            "messages": [{"role": "user", "content": PROMPT}],
            "max_completion_tokens": 256,
            "stream": False,
        }

        async def call_openai() -> str:
            reply = await oa.chat.completions.create(**params)
            return reply.choices[0].message.content or ""

        async def call_openai_json() -> str:
            http = await oa.post(
                "/chat/completions",
                cast_to=httpx2.Response,
                body=params,
                options={"security": {"bearer_auth": True}},
            )
            text: str = json.loads(http.content)["choices"][0]["message"]["content"]
            return text

        return call_openai, call_openai_json, oa
    import anthropic

    an = anthropic.AsyncAnthropic(api_key="sk-ant-bench", base_url=url, max_retries=0)
    body: dict[str, Any] = {
        "model": MODELS["anthropic"],
        "max_tokens": 256,
        "messages": [{"role": "user", "content": [{"type": "text", "text": PROMPT}]}],
        "stream": False,
    }

    async def call_anthropic() -> str:
        reply = await an.messages.create(**body)
        block = reply.content[0]
        return block.text if block.type == "text" else ""

    async def call_anthropic_json() -> str:
        http = await an.post("/v1/messages", cast_to=httpx2.Response, body=body)
        text: str = json.loads(http.content)["content"][0]["text"]
        return text

    return call_anthropic, call_anthropic_json, an


async def measure(provider: str, url: str, calls: int) -> dict[str, dict[str, float]]:
    """One round: ``calls`` calls on each side (raw SDK, SDK with the body read as JSON,
    llmgine), interleaved one by one (rotating which goes first), so every side sees the
    same machine at the same time."""
    raw, raw_json, client = raw_call(provider, url)
    bus = MessageBus()
    observability.enable(bus)
    base_url = f"{url}/v1" if provider == "openai" else url
    key = {"openai": "sk-bench", "anthropic": "sk-ant-bench"}[provider]
    model = get_model(
        f"{provider}:{MODELS[provider]}", api_key=key, base_url=base_url, max_tokens=256
    )
    LLMService(bus, model).install()
    request = LLMRequest(messages=[ChatMessage.user(PROMPT)])
    execute = bus.execute

    async def ours() -> str:
        return (await execute(Generate(request=request))).unwrap().text

    sides = {"raw": raw, "sdk_json": raw_json, "llmgine": ours}
    samples: dict[str, list[int]] = {side: [] for side in sides}
    try:
        for _ in range(50):  # warm the connection pools and the code paths
            for call in sides.values():
                assert "Paris" in await call()
        gc.collect()
        order = list(sides.items())
        for _ in range(calls):
            order = order[1:] + order[:1]
            for side, call in order:
                t0 = perf_counter_ns()
                text = await call()
                samples[side].append(perf_counter_ns() - t0)
            if "Paris" not in text:
                raise RuntimeError(f"{provider}: unexpected answer {text!r}")
        obs = observability.current()
        assert obs is not None
        if len(obs.buffer) < calls:
            raise RuntimeError("observability did not record the calls")
    finally:
        await bus.stop()
        observability.disable()
        await model.aclose()
        await client.close()
    out = {}
    for side, values in samples.items():
        values.sort()
        kept = values[: len(values) * 95 // 100]  # the slowest 5%: the machine, not the code
        out[side] = {
            "mean_us": sum(kept) / len(kept) / 1000,
            "p50_us": values[len(values) // 2] / 1000,
            "p99_us": values[len(values) * 99 // 100] / 1000,
        }
    return out


def run(*, quick: bool = False, json_path: Path = DEFAULT_JSON) -> dict[str, Any]:
    calls, rounds = (300, 3) if quick else (2_000, 5)
    server, url = start_server()
    results: dict[str, Any] = {}
    try:
        for provider in MODELS:
            per: list[dict[str, dict[str, float]]] = []
            for r in range(rounds):
                print(f"{provider} round {r + 1}/{rounds}", flush=True)
                per.append(asyncio.run(measure(provider, url, calls)))
            raw = statistics.median(x["raw"]["p50_us"] for x in per)
            ours = statistics.median(x["llmgine"]["p50_us"] for x in per)
            added = statistics.median(x["llmgine"]["p50_us"] - x["raw"]["p50_us"] for x in per)
            sdk_json = statistics.median(x["sdk_json"]["p50_us"] for x in per)
            layers = statistics.median(
                x["llmgine"]["p50_us"] - x["sdk_json"]["p50_us"] for x in per
            )
            allowed = max(0.05 * raw, 100.0)
            results[provider] = {
                "calls": calls,
                "rounds": per,
                "raw_us": raw,
                "llmgine_us": ours,
                "added_us": added,
                "ratio": ours / raw,
                "sdk_json_us": sdk_json,
                "layers_us": layers,
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
    lines = [
        "provider   raw SDK/call  llmgine/call  added     ratio  budget              "
        "SDK+JSON/call  llmgine layers"
    ]
    for provider, r in report["results"].items():
        verdict = "PASS" if r["pass"] else "FAIL"
        lines.append(
            f"{provider:<10} {r['raw_us']:>9.0f} µs  {r['llmgine_us']:>9.0f} µs  "
            f"{r['added_us']:>+6.0f} µs  {r['ratio']:.3f}  <= {r['allowed_us']:.0f} µs {verdict}"
            f"    {r['sdk_json_us']:>9.0f} µs  {r['layers_us']:>+6.0f} µs"
        )
    calls = next(iter(report["results"].values()))["calls"]
    lines.append(
        "llmgine = Generate command on a bus with observability on; SDK+JSON = the SDK call "
        "with its body read as JSON, as llmgine's adapters do (layers = llmgine - SDK+JSON); "
        f"per-call medians, {calls:,} calls a side interleaved one by one, median of rounds"
    )
    return "\n".join(lines)
