"""The dashboard soak: ten minutes of ``llmgine dashboard --demo 0.3`` with a page open in
headless Chromium, reported minute by minute with medians.

The measurements and the verdict are the suite's soak (``tests/browser/dashboard_soak.py``
says what each sample holds and what "flat" means); the suite runs it for 75 s, this for
the ten minutes after which the first dashboard could no longer switch tabs. Per minute:
the median JavaScript round trip in the page (and its 90th percentile), the median JS
heap after a forced GC, the DOM's nodes, the server's resident memory. Then the tab
switches, a fresh page opened at the end, and the Events table's blank checks.

Needs Debian's chromium (``apt-get install chromium``); without it this says so and
measures nothing.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run.py runs as a script: the soak lives with the tests
    sys.path.insert(0, str(ROOT))

from report_file import save_report  # noqa: E402 - benchmarks/ is on sys.path (scripts)

from tests.browser.browser_support import CHROMIUM, chromium, dashboard_process  # noqa: E402
from tests.browser.dashboard_soak import Sample, Soak, soak  # noqa: E402

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "dashboard_soak.json"
DEMO = 0.3  # a short session with a demo LLM call every 0.3 s, as in the report
FULL_SECONDS, QUICK_SECONDS = 600.0, 60.0
WARMUP = 30.0  # the table and the trace are full within about 10 s at this rate


def run(*, quick: bool = False, json_path: Path = DEFAULT_JSON) -> dict[str, Any]:
    if not CHROMIUM.is_file():
        print(f"skipped: the dashboard soak needs Debian's chromium at {CHROMIUM}")
        return {}
    seconds = QUICK_SECONDS if quick else FULL_SECONDS
    warmup = min(WARMUP, seconds / 3)
    print(
        f"{seconds:.0f} s of --demo {DEMO} traffic with a page open, llmgine from {ROOT} ...",
        flush=True,
    )
    with (
        tempfile.TemporaryDirectory() as folder,
        chromium() as browser,
        dashboard_process(Path(folder), demo=DEMO) as (url, server),
    ):
        result = soak(browser, url, server, seconds=seconds, demo=DEMO, warmup=warmup)
    report = {
        "benchmark": "dashboard_soak",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "quick": quick,
        "llmgine": str(ROOT),
        "minutes": per_minute(result),
        **result.as_json(),
    }
    print(format_table(result, report["minutes"]))
    save_report(report, json_path)
    return report


def per_minute(result: Soak) -> list[dict[str, float]]:
    minutes: dict[int, list[Sample]] = {}
    for sample in result.samples:
        minutes.setdefault(int(sample.t // 60), []).append(sample)
    return [
        {
            "minute": minute + 1,
            "round_trip_ms": statistics.median(s.round_trip_ms for s in samples),
            "round_trip_ms_p90": sorted(s.round_trip_ms for s in samples)[
                round(0.9 * (len(samples) - 1))
            ],
            "heap_mb": statistics.median(s.heap_mb for s in samples),
            "nodes": statistics.median(s.nodes for s in samples),
            "server_rss_mb": statistics.median(s.server_rss_mb for s in samples),
        }
        for minute, samples in sorted(minutes.items())
    ]


def format_table(result: Soak, minutes: list[dict[str, float]]) -> str:
    lines = ["minute  round trip (median / p90)  JS heap  DOM nodes  server RSS"]
    for m in minutes:
        lines.append(
            f"{m['minute']:>6.0f}  {m['round_trip_ms']:>10.1f} / {m['round_trip_ms_p90']:>6.1f} ms"
            f"   {m['heap_mb']:>5.1f} MB  {m['nodes']:>9,.0f}  {m['server_rss_mb']:>7.1f} MB"
        )
    s = result.summary()
    lines.append(
        f"tab switches: median {s['switch_ms_median']:.0f} ms, longest {s['switch_ms_max']:.0f} "
        f"ms ({len(result.switches_ms)}); a fresh page at the end: loaded in "
        f"{s['fresh_page_load_ms']:.0f} ms, switched tabs in {s['fresh_page_switch_ms']:.0f} ms, "
        f"round trip {s['fresh_page_round_trip_ms']:.1f} ms"
    )
    lines.append(
        f"JS heap after the warm-up: {s['heap_mb_first_third']:.1f} MB (first third) -> "
        f"{s['heap_mb_last_third']:.1f} MB (last third); DOM nodes "
        f"{s['nodes_first_third']:,.0f} -> {s['nodes_last_third']:,.0f}"
    )
    lines.append(
        f"Events table: {s['blank_checks']:,} checks in the page, {s['blank_frames']} found it "
        f"blank, the longest spell {s['blank_longest_ms']} ms"
    )
    problems = result.problems()
    lines.append("verdict: PASS" if not problems else "verdict: FAIL\n  " + "\n  ".join(problems))
    return "\n".join(lines)


if __name__ == "__main__":
    run(quick="--quick" in sys.argv[1:])
