"""The LLM benchmark: what the unified layer adds to each call.

A loopback server (``loopback_server.py``, its own process, like a real server) answers
OpenAI Chat Completions and Responses, Anthropic Messages and Gemini generateContent
requests at once, as JSON or, for a streamed call, as server-sent events (seven chunks of
text). Each case makes its calls through the raw official SDK as its users write it
(``create()``, ``generate_content()``, their ``stream`` forms) and through llmgine (a
`Generate` command on a bus with observability on: span buffer, event log, metrics; the
provider adapter, tracing and retry wrappers, cost), interleaved one by one so that both
sides meet the same machine (it is shared and noisy). The two non-streamed Chat and
Messages cases also time the SDK call as llmgine's adapters make it (the client's ``post``
with the wire JSON, the answer read as JSON). Per-call medians; the median over rounds of
the difference. Budget: llmgine adds at most 5% or 100 µs per call, whichever is larger.

Run: ``PYTHONPATH=. python benchmarks/bench_llm.py [--quick] [--only CASE ...]``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import subprocess
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter_ns
from typing import Any

from report_file import save_report  # benchmarks/ is on sys.path: these run as scripts

from llmgine import observability
from llmgine.bus import MessageBus
from llmgine.llm import ChatMessage, Generate, LLMRequest, LLMService, get_model
from llmgine.llm.providers.openai import OpenAIOptions

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "llm.json"
PROMPT = "What is the capital of France? Answer in one sentence."
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-sonnet-4-5", "gemini": "gemini-2.5-flash"}
KEYS = {"openai": "sk-bench", "anthropic": "sk-ant-bench", "gemini": "bench-key"}


@dataclass(frozen=True)
class Case:
    """One kind of call: a provider, its API, streamed or not."""

    name: str
    provider: str
    api: str
    stream: bool
    label: str


CASES = {
    case.name: case
    for case in (
        Case("openai", "openai", "chat", False, "OpenAI Chat Completions"),
        Case("openai-stream", "openai", "chat", True, "OpenAI Chat Completions, streamed"),
        Case("responses", "openai", "responses", False, "OpenAI Responses"),
        Case("responses-stream", "openai", "responses", True, "OpenAI Responses, streamed"),
        Case("anthropic", "anthropic", "messages", False, "Anthropic Messages"),
        Case("anthropic-stream", "anthropic", "messages", True, "Anthropic Messages, streamed"),
        Case("gemini", "gemini", "generate", False, "Gemini generateContent"),
        Case("gemini-stream", "gemini", "generate", True, "Gemini generateContent, streamed"),
    )
}


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
Close = Callable[[], Awaitable[None]]


def base_url(provider: str, url: str) -> str:
    return f"{url}/v1" if provider == "openai" else url


def raw_calls(case: Case, url: str) -> tuple[dict[str, Call], Close]:
    """The raw SDK call as its users write it (``raw``) and, for the non-streamed Chat and
    Messages cases, the SDK call as llmgine's adapters make it (``sdk_json``: the client's
    own ``post`` with the wire JSON, its answer read as JSON; the same body, byte for
    byte, as llmgine sends); and how to close the client."""
    if case.provider == "openai":
        return _openai(case, url)
    if case.provider == "anthropic":
        return _anthropic(case, url)
    return _gemini(case, url)


def _openai(case: Case, url: str) -> tuple[dict[str, Call], Close]:
    import httpx2
    import openai

    oa = openai.AsyncOpenAI(api_key=KEYS["openai"], base_url=base_url("openai", url), max_retries=0)
    model = MODELS["openai"]
    if case.api == "responses":

        async def responses() -> str:
            if not case.stream:
                reply = await oa.responses.create(model=model, input=PROMPT, max_output_tokens=256)
                return reply.output_text
            text = []
            events = await oa.responses.create(
                model=model, input=PROMPT, max_output_tokens=256, stream=True
            )
            async for event in events:
                if event.type == "response.output_text.delta":
                    text.append(event.delta)
            return "".join(text)

        return {"raw": responses}, oa.close
    params: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_completion_tokens": 256,
        "stream": case.stream,
    }
    if case.stream:
        params["stream_options"] = {"include_usage": True}

        async def chat_stream() -> str:
            text = []
            async for chunk in await oa.chat.completions.create(**params):
                if chunk.choices and chunk.choices[0].delta.content:
                    text.append(chunk.choices[0].delta.content)
            return "".join(text)

        return {"raw": chat_stream}, oa.close

    async def chat() -> str:
        reply = await oa.chat.completions.create(**params)
        return reply.choices[0].message.content or ""

    async def chat_json() -> str:
        http = await oa.post(
            "/chat/completions",
            cast_to=httpx2.Response,
            body=params,
            options={"security": {"bearer_auth": True}},
        )
        text: str = json.loads(http.content)["choices"][0]["message"]["content"]
        return text

    return {"raw": chat, "sdk_json": chat_json}, oa.close


def _anthropic(case: Case, url: str) -> tuple[dict[str, Call], Close]:
    import anthropic
    import httpx2

    an = anthropic.AsyncAnthropic(api_key=KEYS["anthropic"], base_url=url, max_retries=0)
    body: dict[str, Any] = {
        "model": MODELS["anthropic"],
        "max_tokens": 256,
        "messages": [{"role": "user", "content": [{"type": "text", "text": PROMPT}]}],
        "stream": case.stream,
    }
    if case.stream:

        async def messages_stream() -> str:
            text = []
            async for event in await an.messages.create(**body):
                if event.type == "content_block_delta" and event.delta.type == "text_delta":
                    text.append(event.delta.text)
            return "".join(text)

        return {"raw": messages_stream}, an.close

    async def messages() -> str:
        reply = await an.messages.create(**body)
        block = reply.content[0]
        return block.text if block.type == "text" else ""

    async def messages_json() -> str:
        http = await an.post("/v1/messages", cast_to=httpx2.Response, body=body)
        text: str = json.loads(http.content)["content"][0]["text"]
        return text

    return {"raw": messages, "sdk_json": messages_json}, an.close


def _gemini(case: Case, url: str) -> tuple[dict[str, Call], Close]:
    from google import genai
    from google.genai import types

    client = genai.Client(
        api_key=KEYS["gemini"], http_options=types.HttpOptions(base_url=url, api_version="v1beta")
    )
    config = types.GenerateContentConfig(max_output_tokens=256)
    model = MODELS["gemini"]

    async def generate() -> str:
        if not case.stream:
            reply = await client.aio.models.generate_content(
                model=model, contents=PROMPT, config=config
            )
            return reply.text or ""
        text = []
        chunks = await client.aio.models.generate_content_stream(
            model=model, contents=PROMPT, config=config
        )
        async for chunk in chunks:
            text.append(chunk.text or "")
        return "".join(text)

    return {"raw": generate}, client.aio.aclose


async def measure(case: Case, url: str, calls: int) -> dict[str, dict[str, float]]:
    """One round: ``calls`` calls on each side, interleaved one by one (rotating which goes
    first), so every side sees the same machine at the same time."""
    sides, close = raw_calls(case, url)
    bus = MessageBus()
    observability.enable(bus)
    model = get_model(
        f"{case.provider}:{MODELS[case.provider]}",
        api_key=KEYS[case.provider],
        base_url=base_url(case.provider, url),
        max_tokens=256,
    )
    LLMService(bus, model).install()
    options = [OpenAIOptions(api="responses")] if case.api == "responses" else []
    request = LLMRequest(messages=[ChatMessage.user(PROMPT)], options=options)
    command_stream = case.stream
    execute = bus.execute

    async def ours() -> str:
        return (await execute(Generate(request=request, stream=command_stream))).unwrap().text

    sides["llmgine"] = ours
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
                raise RuntimeError(f"{case.name}: unexpected answer {text!r}")
        obs = observability.current()
        assert obs is not None
        if len(obs.buffer) < calls:
            raise RuntimeError("observability did not record the calls")
    finally:
        await bus.stop()
        observability.disable()
        await model.aclose()
        await close()
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


def run(
    *,
    quick: bool = False,
    json_path: Path = DEFAULT_JSON,
    only: Sequence[str] = (),
    calls: int | None = None,
    rounds: int | None = None,
) -> dict[str, Any]:
    default_calls, default_rounds = (300, 3) if quick else (2_000, 5)
    calls, rounds = calls or default_calls, rounds or default_rounds
    server, url = start_server()
    results: dict[str, Any] = {}
    try:
        for case in CASES.values():
            if only and case.name not in only:
                continue
            per: list[dict[str, dict[str, float]]] = []
            for r in range(rounds):
                print(f"{case.name} round {r + 1}/{rounds}", flush=True)
                per.append(asyncio.run(measure(case, url, calls)))
            raw = statistics.median(x["raw"]["p50_us"] for x in per)
            ours = statistics.median(x["llmgine"]["p50_us"] for x in per)
            added = statistics.median(x["llmgine"]["p50_us"] - x["raw"]["p50_us"] for x in per)
            allowed = max(0.05 * raw, 100.0)
            result: dict[str, Any] = {
                "label": case.label,
                "calls": calls,
                "rounds": per,
                "raw_us": raw,
                "llmgine_us": ours,
                "added_us": added,
                "ratio": ours / raw,
                "allowed_us": allowed,
                "pass": added <= allowed,
            }
            if "sdk_json" in per[0]:
                result["sdk_json_us"] = statistics.median(x["sdk_json"]["p50_us"] for x in per)
                result["layers_us"] = statistics.median(
                    x["llmgine"]["p50_us"] - x["sdk_json"]["p50_us"] for x in per
                )
            results[case.name] = result
    finally:
        server.terminate()
        server.wait()
    report = {"benchmark": "llm", "quick": quick, "results": results}
    print(format_table(report))
    save_report(report, json_path)
    return report


def format_table(report: dict[str, Any]) -> str:
    lines = [
        "case               raw SDK/call  llmgine/call  added     ratio  budget              "
        "SDK+JSON/call  llmgine layers"
    ]
    for name, r in report["results"].items():
        verdict = "PASS" if r["pass"] else "FAIL"
        line = (
            f"{name:<18} {r['raw_us']:>9.0f} µs  {r['llmgine_us']:>9.0f} µs  "
            f"{r['added_us']:>+6.0f} µs  {r['ratio']:.3f}  <= {r['allowed_us']:.0f} µs {verdict}"
        )
        if "sdk_json_us" in r:
            line += f"    {r['sdk_json_us']:>9.0f} µs  {r['layers_us']:>+6.0f} µs"
        lines.append(line)
    calls = next(iter(report["results"].values()))["calls"]
    lines.append(
        "llmgine = Generate command on a bus with observability on; SDK+JSON = the SDK call "
        "with its body read as JSON, as llmgine's adapters do (layers = llmgine - SDK+JSON); "
        f"per-call medians, {calls:,} calls a side interleaved one by one, median of rounds"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="What llmgine adds to an LLM call.")
    parser.add_argument("--quick", action="store_true", help="300 calls a side, 3 rounds")
    parser.add_argument("--only", nargs="+", choices=sorted(CASES), default=(), help="cases")
    parser.add_argument("--calls", type=int, help="calls a side per round")
    parser.add_argument("--rounds", type=int, help="rounds")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write results")
    args = parser.parse_args(argv)
    report = run(
        quick=args.quick, json_path=args.json, only=args.only, calls=args.calls, rounds=args.rounds
    )
    return 0 if all(r["pass"] for r in report["results"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
