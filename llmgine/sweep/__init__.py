"""Sweeps: every prompt of a dataset x models x request parameters x repeats, as rows.

A `Sweep` sends each input to each model with each parameter set, ``repeats`` times, and
returns a `SweepResult` whose ``df`` has one row per call. It needs the ``sweep`` extra
(``pip install "llmgine[sweep]"``: pandas, pyarrow and tqdm).

Example:
    import asyncio
    from llmgine.sweep import Sweep

    async def main() -> None:
        sweep = Sweep(
            [{"text": "cat", "lang": "French"}, {"text": "dog", "lang": "German"}],
            ["demo:llmgine-demo", "openai:gpt-4o-mini"],
            template="Translate {text} to {lang}",
            grid={"temperature": [0.0, 0.7], "system": ["Be brief.", "Answer in one word."]},
            repeats=3,
            budget_usd=0.50,
        )
        print(await sweep.preflight())   # calls, tokens, cost, time: before any call
        result = await sweep.run()       # the preflight, a progress bar, then the calls
        print(result)                    # rows done, errors, cached, spent, why it stopped
        result.to_parquet("sweep.parquet")

    asyncio.run(main())

Inputs (``data``):
    - a list of strings: each is a prompt (its input field is ``text``);
    - a list of dicts filled into ``template`` with `str.format` (``"Translate {text} to
      {lang}"``); a field the template names and a row lacks is a `ValueError` naming the
      field, the row and the fields it has. Without a template each dict's ``"prompt"``;
    - a pandas DataFrame: ``column=`` names the prompt column, or ``template=`` over its
      columns;
    - the path of a ``.csv`` or ``.jsonl`` file, read as a DataFrame.
    Every field of a row (``expected`` too) is kept as an ``input.<name>`` column and is
    what scorers see, with ``"prompt"``, the rendered text.

Models: specs (``"openai:gpt-4o-mini"``; ``model_options=`` go to `get_model`) or `Model`
objects. ``grid``: a dict of lists of request fields (``temperature``, ``max_tokens``,
...), every combination a parameter set; ``system`` is a system prompt put before the
prompt. A value that is not a list is the one value of its key.

Running: every call is a `Generate` command in the sweep's own bus session
(``result.session_id``): on ``bus=`` or on a private bus made for the run, as
`llmgine.notebook.CompareView` does. So each call publishes ``LLMCallStarted`` /
``LLMCallCompleted`` (``LLMStreamDelta`` too: calls are streamed unless ``stream=False``,
which is what gives ``ttft_ms``), and, with observability on (`observability.enable(bus)`,
or ``enable()`` for the private bus), is a GenAI span whose ``trace_id`` and ``span_id``
are in its row (None when observability is off, and for a `Model` you pass, which keeps
the tracer it was made with).

Distributed: on a bus that carries commands to other processes (NATS: ``bus=MessageBus(
transport=NatsTransport(url))``, or ``LLMGINE_BUS_URL=nats://host:4222`` for the private
bus; `MessageBus.distributed` says which), the same sweep sends its live calls to worker
processes, with no change to its code. Start a NATS server (``NatsServer.start()``, or
``nats-server -js``) and one or more workers where the keys are:
``LLMGINE_BUS_URL=nats://host:4222 llmgine worker llmgine.llm:worker`` (each answers
`Generate` for any model spec with its own keys and settings; see `llmgine.llm.worker`).
Each live call of a model given as a spec is then a ``Generate(model=spec)`` executed on
the bus outside the sweep's session, which the bus hands to one of the workers. What stays
here: the store (a stored row is answered from it, and never leaves this process; a live
answer is stored here as it arrives, so resume works as in one process), the concurrency
limits, rate-limit backoff (a worker's 429 comes back with its ``retry_after``), budget,
progress bar, scorers, ``on_row`` and the rows, which look as they do in one process
(``latency_ms`` and ``ttft_ms`` are what the worker measured). The sweep's session events
(``LLMCallStarted`` / ``LLMCallCompleted``) are published here, once a call; the workers
publish none for these calls. A live row's ``span_id`` is a ``command Generate`` span made
here, current while the worker runs the call, so the worker's GenAI span (shipped by its
own observability, e.g. to an OTLP collector) is its child: one GenAI span a call. Not
distributed: models given as `Model` objects (they cannot travel: they run here), and
``model_options`` that configure the provider (``base_url``, keys: a warning says they are
not sent; configure the workers). With no worker serving, `Sweep.run` raises
`llmgine.errors.NoWorkerError` saying what to start, after the calls in flight; no error
rows are made. A worker killed (or stuck) mid-call never answers: after the transport's
``command_timeout`` (60 s by default) the row is asked again, like any transient error
(``retries``, default 2), and another worker answers it. So a call longer than
``command_timeout`` is retried, then a ``CommandTimeoutError`` row: raise it for long
answers.

Concurrency is per provider: at most ``concurrency`` calls at once (default 8), an
`AdaptiveLimit`. A `RateLimitedError` (a 429) halves the provider's limit (once per
pause), pauses its new calls for the error's ``retry_after`` (else 2, 4, 8... s, at most
60) and retries the row: a throttled sweep slows down, it does not fail. Only a row
refused ``rate_limit_retries`` times in a row (default 50) becomes an error row, so a
server that never stops refusing cannot hold the sweep for ever; an exhausted quota
(OpenAI's ``insufficient_quota``, not ``retryable``) is an error row at once. It slows
down before the 429 too: an answer's ``rate_limit`` (what OpenAI's and Anthropic's headers
say is left; Gemini sends none) with fewer requests left than calls in flight, or fewer
tokens than the calls in flight would take at that answer's size, halves the limit the
same way and pauses new calls until enough of that budget is back (see `AdaptiveLimit`; a
replayed answer has none, so a resumed sweep is never held up by old limits). Each
``increase_every`` successes (default 10) raise the limit by one, back to
``concurrency``. Other transient errors (``retryable``) are retried ``retries`` times
(default 2; 1 s, 2 s, ...). Models made from specs have `get_model`'s own retry off
(``retry=False``), so retries are never stacked; a `Model` you pass keeps its own retry
policy, and the sweep only sees what is left after it: make it with ``retry=False``. Any
other error is data: its row has ``error_type`` (the exception's class name) and
``error`` (its message), and the sweep goes on. ``sleep`` and ``clock`` are injectable.

Preflight (`Sweep.preflight`; `Sweep.run` prints it above its progress bar): the number
of calls, how many are already stored (free), tokens estimated as 4 characters a token in
and ``max_tokens`` (else 256) out, the cost from llmgine's price table (a model it does
not know is named as unpriced and not counted; the demo costs nothing), and a rough time
at the configured concurrency with ``seconds_per_call`` (default 2 s) a call.

Budget: with ``budget_usd``, no call starts when what was spent, plus the estimates of
the calls in flight, plus the next call's estimate would pass it (an unpriced model's
calls are estimated at what its calls have cost so far). The calls in flight finish and
are kept; ``result.stopped == "budget"`` and ``result.reason`` says so in a sentence.

Resume: every call goes through a recording store (`llmgine.recording`, read-write):
``store=`` a `SQLiteCache`, a `Cassette` or a path (default: the user's SQLite cache).
An answer is stored as it arrives, so a sweep interrupted (a cancelled task, Ctrl-C, a
crash) and run again with the same arguments calls only what is missing, and a finished
sweep run again costs nothing. Repeat 0 of a request shares the store's ordinary key (a
call made elsewhere with the same request is reused); repeat r > 0 is stored under
``key#repeat=r``, so each repeat is a call of its own. A stored row has ``cache_hit``
True, ``cost_usd`` 0 and ``original_cost_usd`` what it cost when it was made. Failed
calls are not stored, so a re-run retries them.

Scorers (``scorers=``; `llmgine.sweep`'s scorers, or any object with a ``name``, an
``extra_columns`` tuple and ``async score(row, response)`` returning a float, None or a
``Scored(value, extras)``) run on each row as it completes; a failed call's scores are
NaN, and a scorer that raises gives NaN with the failure in ``result.scorer_errors``.

Progress: a tqdm bar (`tqdm.auto`: a widget in a notebook, text in a terminal) with
done/total, the rate and ETA, the spend so far and the errors; ``progress=False`` for
none.

The result: ``df`` has, in order, ``prompt_id`` (int64), ``prompt``, ``input.<name>``
(each input field, its dtype inferred), ``model`` (``"provider:name"``), ``params`` (the
parameter set as JSON, ``"{}"`` for none), ``param.<name>``, ``repeat`` (int64, from 0),
``text``, ``tool_calls`` (JSON, ``"[]"``), ``finish_reason``, ``input_tokens``,
``output_tokens``, ``cached_tokens``, ``reasoning_tokens`` (Int64), ``cost_usd``
(float64, NaN when unknown), ``latency_ms``, ``ttft_ms`` (float64), ``error_type``,
``error``, ``cache_hit`` (boolean), ``original_cost_usd`` (float64), ``trace_id``,
``span_id``, then ``score.<name>`` (float64) and each scorer's extra columns. Text
columns are pandas' ``str`` dtype (missing values NaN), so ``to_parquet`` and
``pd.read_parquet`` give the same dtypes back. Rows are in input order (prompt, model,
parameter set, repeat); a stopped sweep has only the rows it did (``result.total`` says
how many it had). ``to_parquet(path)``, ``to_csv(path)``, ``spent_usd``, ``cached``.
"""

from __future__ import annotations

from llmgine._extras import require as _require

_require("sweep", "llmgine.sweep")  # else a bare "No module named tqdm"

from llmgine.sweep._judge import JudgeScorer, JudgeVerdict, PassFailVerdict, llm_judge  # noqa: E402
from llmgine.sweep._limits import AdaptiveLimit  # noqa: E402 - after the extra's check
from llmgine.sweep._result import SweepResult  # noqa: E402
from llmgine.sweep._run import Preflight, Sweep  # noqa: E402
from llmgine.sweep._scorers import (  # noqa: E402
    FunctionScorer,
    Scored,
    Scorer,
    contains,
    exact_match,
    json_valid,
    numeric_close,
    parse_scorer,
    regex,
    scorer,
)
from llmgine.sweep._stats import PairedComparison, paired_comparison, summarize  # noqa: E402

__all__ = [
    "AdaptiveLimit",
    "FunctionScorer",
    "JudgeScorer",
    "JudgeVerdict",
    "PairedComparison",
    "PassFailVerdict",
    "Preflight",
    "Scored",
    "Scorer",
    "Sweep",
    "SweepResult",
    "contains",
    "exact_match",
    "json_valid",
    "llm_judge",
    "numeric_close",
    "paired_comparison",
    "parse_scorer",
    "regex",
    "scorer",
    "summarize",
]
