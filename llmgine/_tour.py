"""``python -m llmgine demo``: a short, offline tour of the bus (commands, events, sessions,
retry and stats) and of an LLM call on it, traced."""

from __future__ import annotations

from collections.abc import Callable

from llmgine.bus import (
    Command,
    CommandFailed,
    CommandPolicy,
    Event,
    MessageBus,
    RetryPolicy,
    SessionEnded,
)


class Ask(Command[str]):
    question: str


class Answered(Event):
    question: str
    answer: str


class Flaky(Command[str]):
    pass


class Forgotten(Command[None]):
    pass


async def run_tour(out: list[str] | None = None) -> list[str]:
    """Run the tour, printing as it goes; returns the printed lines."""
    lines = out if out is not None else []

    def say(text: str) -> None:
        lines.append(text)
        print(text)

    async with MessageBus() as bus:
        bus.on_command(Ask, lambda cmd: f"{cmd.question.rstrip('?')}: 42")
        bus.on_event(Answered, lambda e: say(f"  [bus handler] {e.question} -> {e.answer}"))
        bus.on_event(CommandFailed, lambda e: say(f"  [bus handler] failed: {e.error.message}"))

        say("1. A command has one handler and returns a result:")
        result = await bus.execute(Ask(question="The answer?"))
        say(f"  success={result.success} value={result.value!r} in {result.duration_ms:.3f} ms")

        say("2. Sessions scope handlers; they see their session's end, then are gone.")
        say("   (q1 is queued; q2 is published with wait=True so it is delivered at once;")
        say("   q1 still reaches the session's handler before the session ends.)")
        async with bus.session("chat") as session:
            session.on_event(Answered, lambda e: say(f"  [session handler] {e.answer}"))
            session.on_event(SessionEnded, lambda e: say(f"  [session handler] {e.name} ends"))
            await session.publish(Answered(question="q1", answer="a1"))
            await session.publish(Answered(question="q2", answer="a2"), wait=True)
        await bus.publish(Answered(question="q3", answer="only the bus hears this"), wait=True)

        say("3. Retry with backoff, then success:")
        calls = 0

        def flaky(cmd: Flaky) -> str:
            nonlocal calls
            calls += 1
            if calls < 3:
                raise ConnectionError(f"attempt {calls} failed")
            return "ok on attempt 3"

        bus.on_command(Flaky, flaky)
        bus.set_policy(Flaky, CommandPolicy(retry=RetryPolicy(attempts=3, initial=0.01)))
        flaky_result = await bus.execute(Flaky())
        say(f"  value={flaky_result.value!r} attempts={flaky_result.attempts}")

        say("4. A command with no handler fails cleanly and waits in the dead-letter queue:")
        orphan = await bus.execute(Forgotten())
        say(f"  success={orphan.success}")

        await bus.drain()
        stats = bus.stats()
        say(
            f"5. Stats: published={stats.published} delivered={stats.delivered} "
            f"commands={stats.commands_executed} failed={stats.commands_failed} "
            f"dead letters={stats.dead_letters} event p99={stats.event_latency.p99_ms:.3f} ms"
        )
        await _llm_tour(bus, say)
    return lines


async def _llm_tour(bus: MessageBus, say: Callable[[str], None]) -> None:
    """An LLM call on the bus, on the offline demo model, traced, shown as a DataFrame."""
    say("6. An LLM call on the bus (the offline demo model: no key), traced:")
    try:
        from llmgine import observability
    except ImportError:  # pandas or the OpenTelemetry SDK is missing
        say('  (pip install "llmgine[observability]" to see this part)')
        return
    from llmgine.llm import ChatMessage, Generate, LLMRequest, LLMService

    obs = observability.enable(bus)
    try:
        LLMService(bus, "demo:llmgine-demo", latency=0).install()
        async with bus.session("tour") as session:
            request = LLMRequest(messages=[ChatMessage.user("What is a message bus?")])
            reply = (await session.execute(Generate(request=request, stream=True))).unwrap()
        first_line = reply.text.splitlines()[0]
        say(f"  [demo] {first_line} ({reply.usage.output_tokens} tokens)")
        spans = obs.spans_df(session=session.id)[["name", "kind", "duration_ms"]]
        for row in spans.itertuples(index=False):
            say(f"  span {row.name!r} ({row.kind}) {row.duration_ms:.2f} ms")
    finally:
        observability.disable()
