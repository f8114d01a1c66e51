"""A sweep slows down when answers say a rate limit is nearly used up, before any 429.

`Budget` plays a provider's request budget on the sweep's injected clock: each answer
says, as OpenAI's and Anthropic's headers do, how many requests are left and when the
budget is whole again; a call over it is refused with a 429. No real sleeps: the clock
moves only when the sweep sleeps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmgine.errors import RateLimitedError
from llmgine.llm import LLMRequest, LLMResponse, RateLimit, TextPart, Usage, get_model
from llmgine.sweep import AdaptiveLimit, Sweep
from tests.conftest import FakeTime


class Budget:
    """``size`` requests, refilled at an even pace to whole in ``window`` seconds, as
    OpenAI's and Anthropic's budgets are; ``tell=False`` answers without saying what is
    left (as Gemini does), so only 429s can slow a caller down."""

    def __init__(self, time: FakeTime, size: int, window: float, *, tell: bool = True) -> None:
        self.time, self.size, self.window, self.tell = time, size, window, tell
        self.left = float(size)
        self.last = 0.0
        self.refused = 0

    def answer(self, request: LLMRequest) -> LLMResponse:
        now = self.time.now
        pace = self.size / self.window  # requests back per second
        self.left = min(float(self.size), self.left + (now - self.last) * pace)
        self.last = now
        if self.left < 1 - 1e-9:  # float dust from the refill arithmetic is not a refusal
            self.refused += 1
            raise RateLimitedError("429: too many requests", retry_after=(1 - self.left) / pace)
        self.left -= 1
        said = RateLimit(
            requests_limit=self.size,
            requests_remaining=int(self.left),
            requests_reset_s=(self.size - self.left) / pace,  # until whole again
        )
        return LLMResponse(
            parts=[TextPart(text="echo " + request.messages[-1].text)],
            usage=Usage(input_tokens=3, output_tokens=2),
            rate_limit=said if self.tell else None,
        )


async def run(tmp_path: Path, budget: Budget, rows: int, concurrency: int) -> Any:
    model = get_model("test:s", responses=[budget.answer] * (3 * rows), retry=False)
    return await Sweep(
        [f"p{i}" for i in range(rows)],
        [model],
        store=tmp_path / "c.sqlite3",
        concurrency=concurrency,
        progress=False,
        sleep=budget.time.sleep,
        clock=budget.time.clock,
    ).run()


async def test_a_sweep_waits_for_the_reset_instead_of_being_refused(tmp_path: Path) -> None:
    time = FakeTime()
    budget = Budget(time, size=3, window=10.0)
    result = await run(tmp_path, budget, rows=8, concurrency=1)

    assert result.df["error_type"].isna().all()
    assert sorted(result.df["text"]) == sorted(f"echo p{i}" for i in range(8))
    assert budget.refused == 0  # slowed down before the provider had to refuse
    # Three at once, then one request back every 10/3 s: the sweep waited only for the one
    # request it needed each time, not for the budget to be whole (10 s).
    assert len(time.sleeps) == 5
    assert all(abs(s - 10 / 3) < 1e-6 for s in time.sleeps)


async def test_without_the_headers_the_same_sweep_is_refused(tmp_path: Path) -> None:
    # The control: the same provider, answers that say nothing; only 429s slow it down.
    time = FakeTime()
    budget = Budget(time, size=3, window=10.0, tell=False)
    result = await run(tmp_path, budget, rows=8, concurrency=1)

    assert result.df["error_type"].isna().all()  # a throttled sweep still finishes
    assert budget.refused == 5


async def test_calls_in_flight_count_against_what_is_left(tmp_path: Path) -> None:
    time = FakeTime()
    budget = Budget(time, size=6, window=5.0)
    result = await run(tmp_path, budget, rows=20, concurrency=4)

    assert result.df["error_type"].isna().all()
    assert len(result.df) == 20
    assert budget.refused == 0
    assert time.sleeps  # it did wait for resets


async def test_nearly_used_up_halves_the_limit_and_pauses_until_the_reset() -> None:
    time = FakeTime()
    limit = AdaptiveLimit(8, increase_every=2, sleep=time.sleep, clock=time.clock)
    for _ in range(3):
        await limit.acquire()
    # Three calls in flight, three requests left: enough, each success counts.
    await limit.succeeded(RateLimit(requests_remaining=3, requests_reset_s=9.0))
    assert (limit.limit, limit.forewarned, limit.resume_at) == (8, 0, 0.0)
    # Two left for three calls in flight: the next one would be refused.
    await limit.succeeded(RateLimit(requests_remaining=2, requests_reset_s=9.0))
    assert (limit.limit, limit.forewarned, limit.resume_at) == (4, 1, 9.0)
    # Another answer of the same pause: not halved again; a later reset extends it.
    await limit.succeeded(RateLimit(requests_remaining=0, requests_reset_s=12.0))
    assert (limit.limit, limit.forewarned, limit.resume_at) == (4, 2, 12.0)
    assert limit.throttled == 0  # no 429 was seen
    for _ in range(3):
        await limit.release()
    await limit.acquire()  # waits out the pause on the injected clock
    assert time.sleeps == [12.0]
    await limit.release()
    for _ in range(2):  # and climbs back as after a 429
        await limit.succeeded(RateLimit(requests_remaining=100, requests_reset_s=1.0))
    assert limit.limit == 5


async def test_tokens_left_are_measured_in_calls_of_this_size() -> None:
    time = FakeTime()
    limit = AdaptiveLimit(8, sleep=time.sleep, clock=time.clock)
    await limit.acquire()
    await limit.acquire()
    plenty = RateLimit(tokens_remaining=1000, tokens_reset_s=4.0)
    await limit.succeeded(plenty, call_tokens=400)  # two calls of 400 fit in 1000
    assert limit.forewarned == 0
    await limit.succeeded(plenty, call_tokens=600)  # two of 600 do not
    assert (limit.limit, limit.resume_at) == (4, 4.0)


async def test_with_the_budgets_size_the_wait_is_the_share_that_refills_what_is_needed() -> None:
    time = FakeTime()
    limit = AdaptiveLimit(8, sleep=time.sleep, clock=time.clock)
    for _ in range(4):
        await limit.acquire()
    # 100 tokens a call, 4 in flight: 400 needed, 100 left; 900 more refill in 360 s, so
    # the 300 missing are back in 120 s (not the 360 s until the budget is whole).
    said = RateLimit(tokens_limit=1000, tokens_remaining=100, tokens_reset_s=360.0)
    await limit.succeeded(said, call_tokens=100)
    assert limit.resume_at == 120.0


async def test_no_reset_given_halves_without_a_pause() -> None:
    time = FakeTime()
    limit = AdaptiveLimit(8, sleep=time.sleep, clock=time.clock)
    await limit.acquire()
    await limit.succeeded(RateLimit(requests_remaining=0))
    assert (limit.limit, limit.resume_at) == (4, 0.0)
    await limit.release()
    await limit.acquire()
    assert time.sleeps == []
