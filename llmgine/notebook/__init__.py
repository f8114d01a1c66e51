"""The Jupyter workbench: ``%load_ext llmgine`` magics and live widgets.

    %load_ext llmgine
    %%llmgine demo:llmgine-demo
    Tell me about volcanoes.

Widgets: `EventStream` (the bus's events, live), `TraceView` (a session's spans as a
waterfall), `CompareView` (one prompt, several models, side by side), `SweepView` (a
sweep's grid of scores, filled live), and `dashboard` (the first three in a Panel app).
Every widget also renders as text/HTML, for saved notebooks, and every chart carries a
PNG of itself (`chart(fig)` does it for any plotly figure).
Needs the ``notebook`` extra: ``pip install "llmgine[notebook]"``.

Reference
=========

The Jupyter workbench
---------------------

```
%load_ext llmgine

%%llmgine demo:llmgine-demo -o reply --system "Be brief."
Tell me about {topic}.                 # {var} from your namespace; {In[3]} / {Out[3]} too

%%llmgine openai:gpt-4o-mini,anthropic:claude-sonnet-4-5,demo:x     # several: side by side
Explain backpressure in one paragraph.

%llmgine events        # the bus's events, live
%llmgine trace         # the last cell's waterfall
%llmgine spans         # spans as a DataFrame
%llmgine models        # who has a key, who is offline

%llmgine sweep questions --models demo:a,demo:b --score exact -o result   # a DataFrame
%%llmgine sweep --models demo:a,demo:b --score contains:Paris             # a prompt a line
What is the capital of France?
Which city is on the Seine?
```

**`%%llmgine [MODEL[,MODEL...]]`** sends the cell as a prompt and **streams** the answer
into the output as it arrives (rendered as markdown by default; `-f text|code|json|html`,
where `code` offers the answer's code as the next cell), `-o NAME` keeps the `LLMResponse`,
`--system`, `--temperature`, `--max-tokens`, `--tools a,b` (functions or `Tool`s from your
namespace, run through the tool loop; `--tool-choice required` or a tool's name forces the
first round's call), `--session NAME` (later cells in the same session continue the
conversation). A model is a `provider:model` spec or a `Model` in your namespace; with
none, the default (`%llmgine use ...`, else `$LLMGINE_MODEL`, else the local model where it
is installed, else the offline demo). In the prompt, `{name}`, `{obj.attr}` and `{In[3]}`
are filled in from your namespace; one that does not resolve (a typo) is sent as written,
after a warning in the cell's output naming the closest defined name; `{{name}}` sends
`{name}` on purpose, and other braces (JSON, code) are text. Line commands: `models`,
`use`, `events`, `trace [session]` (default: the last cell that called a model, a
comparison included; an unknown session is an error listing the recorded ones), `spans`,
`events-df`, `compare "prompt" m1 m2 ...`, `sessions`, `reset`, `local` (this user's local
model servers: model, address, pid, memory, age; `local start [MODEL]`, `local stop
[PID]`), `sweep`, `help`. **`%llmgine sweep DATA --models M,M --score SPEC ... -o NAME`**
runs an `llmgine.sweep.Sweep` of DATA (a DataFrame, whose prompts are its `prompt`,
`question`, `text` or `input` column unless `--column` or `--template` says; a list; a
`.csv`/`.jsonl` path) over the models, scored by each `--score` (`parse_scorer`'s forms:
`exact`, `exact:COLUMN`, `contains`, `contains:TEXT`, `regex:PATTERN`, `json`,
`close[:TOL]`, `judge:MODEL`), and shows it as a `SweepView` filling live; `-o` keeps the
`SweepResult`. `%%llmgine sweep --models ...` sweeps the cell's lines, a prompt each, or
with `--data NAME` fills the cell, a template, from each row of NAME. Also `--temperature
0,0.7` (a grid), `--system`, `--max-tokens`, `--repeats`, `--budget USD`, `--store PATH`
(answers are kept, by default in the user's cache, so a sweep run again is free).

An error (no key, unknown model, a provider's error, a rate limit) shows
as a short message saying what to do next, with no traceback, and **fails the cell**, so
automated runs catch it. Comparing several models (joined by commas or spaces), a model
that fails, however it fails, shows that message in its own column and the others answer;
the cell fails only when every model fails, when there is nothing to compare. Outputs carry
provenance in their metadata (`{"llmgine": {provider, model, usage, cost, demo}}`), and the
line under an answer names its model, and says whether it came from the local model (`local
model, offline`) or the demo (`demo, simulated`). In a terminal IPython the answer prints
as text as it arrives.

How it runs: in a Jupyter kernel an asyncio loop is already running in the main thread, so
a magic cannot `asyncio.run()`; the magics own one event loop on a background thread,
with their own bus (every call is a `Generate` command, with its events and span), submit
each cell's work there, and apply display updates from the cell's own thread, at most ten
a second, until the answer is complete (the pattern of `jupyter_core`'s `run_sync`; no
`nest_asyncio`).

**Widgets** (`llmgine.notebook`): `EventStream(bus)` shows the bus's events live (type,
session, time, summary; click a row for its redacted JSON), with filters by type and
session, pause, and a bounded buffer whose drops are counted; its observer only appends to
a bounded deque, and a throttled flusher on the kernel's loop renders at most about ten
times a second, formatting only the rows shown. `TraceView(session)` draws a session's
spans as a plotly waterfall coloured by kind (session, command, LLM call, tool), each
name left-aligned and indented under its parent, the legend below the time axis, with
model, tokens, cost and latency on hover, updating while spans still run.
`CompareView(models, prompt)` sends one prompt to several models at once, streams each
answer into its own column, and shows latency, time to first token, tokens and cost per
model with a bar chart; a failed model (no key, unknown provider, a provider's error, a
timeout) shows its error in its column, marked failed in the table and the chart, and
`await view.run()` returns its exception as its value (it never raises for a model's
failure, even if all fail), without stopping the
others. `SweepView(sweep)` runs a sweep (`await view.run()`, returning its `SweepResult`;
`SweepView.from_result(result)` shows a finished one) as a grid: a row per prompt, a
column per model and parameter set, each cell the mean score of its calls (n with
repeats), red (0) to green (1), grey and struck through when its calls failed, empty while
pending; a click on a cell shows its calls in full (answer, scores, error, tokens, cost,
latency) and its call's span as a `TraceView` (or why there is none: observability off,
or a `Model` passed in, which keeps its own tracer). Below it, once finished: the summary
(`summarize`), mean cost per call against mean score with the Pareto front (the lowest
cost for each score level) in red, and each model's latencies as boxes. The grid stays
responsive at any size: it is an anywidget sent one page of 50 prompts at a time, a row
is taken in at O(1), and a redraw (ten a second at most) draws only that page.
Every widget also renders as HTML/text, so a saved notebook shows something useful
on GitHub. The dashboard (`llmgine.notebook.dashboard(bus)`, or `llmgine dashboard` /
`python -m llmgine dashboard --port 5006`) puts the three views in a Panel app. A page
keeps up with its own traffic for as long as it stays open: each update (five a second)
sends only the tab shown and what changed (new event rows are streamed; the trace, its
newest 100 spans, is redrawn at most once a second and only while shown; the filters'
choices only when they change), and a closed page's dashboard leaves the bus and the
server (`benchmarks/README.md` has ten minutes of it measured in Chromium).

`EventStream`'s front end is an anywidget: one import-free ES module in `extension/src/`,
shipped byte for byte in the package (a test checks the two match), so there is no build
step, no Jupyter extension to install, and nothing from a CDN; it works offline and on
Binder. `TraceView` uses plotly's own `FigureWidget`, whose plotly.js ships in the plotly
package. The Panel dashboard uses Panel's own components (Tabulator, a Plotly pane) over
the same data: embedding ipywidgets in `panel serve` needs `ipywidgets_bokeh`, which we do
not add for this.

Where the code lives: each widget in a module named after it (`_event_stream`,
`_trace_view`, `_compare_view`, `_sweep_view` (with `_sweep_grid`, its state,
`_sweep_detail` and `_sweep_charts`), `_dashboard_view`; `_dashboard_server` serves the
dashboard and is ``llmgine dashboard``), over the plain feeds the widgets and the dashboard
share (`_event_feed`, `_span_feed`), with `_ticker` (the throttled flush) and
`_static_html` (saved-notebook HTML, the shipped front end) and `_static_image` (charts'
PNGs for saved notebooks, `chart`). The magics are the `magics` package; its docstring
maps its modules.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmgine.notebook._compare_view import CompareView
    from llmgine.notebook._dashboard_view import dashboard
    from llmgine.notebook._event_stream import EventStream
    from llmgine.notebook._static_image import chart
    from llmgine.notebook._sweep_view import SweepView
    from llmgine.notebook._trace_view import TraceView
    from llmgine.notebook.magics import load_ipython_extension, unload_ipython_extension

__all__ = [
    "CompareView",
    "EventStream",
    "SweepView",
    "TraceView",
    "chart",
    "dashboard",
    "load_ipython_extension",
    "unload_ipython_extension",
]

# Loaded on first use: importing llmgine.notebook must not pull in ipywidgets, plotly and
# panel for a program that only wants one of them.
_HOMES = {
    "CompareView": "llmgine.notebook._compare_view",
    "EventStream": "llmgine.notebook._event_stream",
    "SweepView": "llmgine.notebook._sweep_view",
    "TraceView": "llmgine.notebook._trace_view",
    "chart": "llmgine.notebook._static_image",
    "dashboard": "llmgine.notebook._dashboard_view",
    "load_ipython_extension": "llmgine.notebook.magics",
    "unload_ipython_extension": "llmgine.notebook.magics",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'llmgine.notebook' has no attribute {name!r}")
    from llmgine._extras import require

    require("notebook", f"llmgine.notebook.{name}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value
