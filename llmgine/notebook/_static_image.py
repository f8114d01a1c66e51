"""Static images of the workbench's charts, so a saved notebook shows them without a kernel.

GitHub and nbviewer cannot run plotly's JavaScript or a widget: they show an output's
``image/png`` (or its ``text/html``). So every chart the workbench displays carries a PNG
beside its interactive view, drawn by plotly.js itself through ``kaleido`` (plotly's own
static export), which drives a headless Chrome or Chromium: it finds one on ``PATH``
(Debian's ``chromium``) or at ``$BROWSER_PATH``. The browser starts with the first image
(about 3 s), then stays for this process's next images (a tenth of a second each) and is
closed when the process exits.

Without kaleido or a browser (Binder has none), charts stay interactive and simply carry no
image: one line says so, once per process, and nothing raises.

`chart(fig)` does this for any plotly figure, e.g. a DataFrame plot:
``chart(px.bar(df, x="model", y="cost"))``.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import importlib
import io
import json
import sys
import threading
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

__all__ = ["Chart", "chart", "close", "figure_png", "png_html"]

PLOTLY_MIME = "application/vnd.plotly.v1+json"
RENDER_TIMEOUT = 90.0  # seconds for one image (the first includes starting the browser)
DEFAULT_WIDTH = 800  # pixels, for a figure that does not set its width

_lock = threading.Lock()
_state: dict[str, Any] = {"kaleido": None, "loop": None, "thread": None, "broken": None}


def _note(reason: str) -> None:
    """The one line, once per process, that says why charts carry no static image."""
    if _state["broken"] is None:
        _state["broken"] = reason
        print(
            f"llmgine: charts stay interactive but get no static image for saved notebooks "
            f"(GitHub, nbviewer): {reason}",
            file=sys.stderr,
        )


def _open() -> Any:
    """The kaleido renderer, started on first use on a loop thread of its own (the
    kernel's loop is busy running the cell that displays the chart)."""
    if _state["kaleido"] is not None:
        return _state["kaleido"]
    # Typed where installed, absent where not: imported by name, so mypy sees Any either way.
    kaleido = importlib.import_module("kaleido")

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="llmgine-static-images", daemon=True)
    thread.start()

    async def start() -> Any:
        # mathjax=False: no script from a CDN (the page loads plotly.js from the plotly
        # package); the charts have no LaTeX.
        renderer = kaleido.Kaleido(n=1, mathjax=False, timeout=RENDER_TIMEOUT)
        await renderer.open()
        return renderer

    try:
        renderer = asyncio.run_coroutine_threadsafe(start(), loop).result(RENDER_TIMEOUT)
    except BaseException:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(RENDER_TIMEOUT)
        loop.close()
        raise
    _state.update(kaleido=renderer, loop=loop, thread=thread)
    atexit.register(close)
    return renderer


def close() -> None:
    """Close the browser behind the images (it is opened again on the next image)."""
    with _lock:
        renderer, loop, thread = _state["kaleido"], _state["loop"], _state["thread"]
        _state.update(kaleido=None, loop=None, thread=None)
    if renderer is None:
        return
    try:
        asyncio.run_coroutine_threadsafe(renderer.close(), loop).result(RENDER_TIMEOUT)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(RENDER_TIMEOUT)
        loop.close()


def figure_png(fig: Any) -> bytes | None:
    """A PNG of the plotly figure ``fig`` (a ``Figure``, ``FigureWidget`` or its dict), or
    None, after a one-line note, where no image can be made here."""
    if _state["broken"] is not None:
        return None
    import plotly.graph_objects as go  # type: ignore[import-untyped]

    # Through plotly.py, so the default template applies as in the interactive view.
    spec = go.Figure(fig).to_plotly_json()
    layout = spec.get("layout", {})
    opts = {"format": "png", "width": layout.get("width") or DEFAULT_WIDTH}
    if layout.get("height"):
        opts["height"] = layout["height"]
    with _lock:
        try:
            renderer = _open()
            future = asyncio.run_coroutine_threadsafe(
                renderer.calc_fig(spec, opts=opts), _state["loop"]
            )
            png = future.result(RENDER_TIMEOUT)
        except ImportError:
            _note('kaleido is not installed (pip install "llmgine[notebook]")')
            return None
        except FutureTimeout:
            _note(f"kaleido drew nothing within {RENDER_TIMEOUT:.0f} s")
            return None
        except Exception as exc:  # no browser, or it failed: the chart itself is shown
            if type(exc).__name__ == "ChromeNotFoundError":
                _note("no Chrome or Chromium found (install chromium, or set BROWSER_PATH)")
            else:
                _note(f"kaleido failed: {type(exc).__name__}: {exc}".splitlines()[0])
            return None
    return _small(bytes(png)) if isinstance(png, bytes | bytearray) else None


def _small(png: bytes) -> bytes:
    """``png`` with a palette of 64 colours (a chart has few; edges stay smooth enough):
    a fifth of the size, which a saved notebook carries twice (image/png and its HTML)."""
    try:
        from PIL import Image
    except ImportError:  # pillow comes with the notebook extra; without it, as drawn
        return png
    out = io.BytesIO()
    image = Image.open(io.BytesIO(png)).convert("RGB")
    image.quantize(64, Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
        out, "PNG", optimize=True
    )
    return out.getvalue()


def png_html(png: bytes | None, alt: str) -> str:
    """An ``<img>`` of ``png`` for an output's HTML ("" for None): renderers that prefer an
    output's ``text/html`` to its ``image/png`` (nbviewer, GitHub) then show the chart too."""
    if png is None:
        return ""
    data = base64.b64encode(png).decode("ascii")
    alt = alt.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
    return f'<img src="data:image/png;base64,{data}" alt="{alt}" style="max-width:100%"/>'


class Chart:
    """A plotly figure that displays interactively and carries a PNG of itself for saved
    notebooks (see `chart`)."""

    def __init__(self, fig: Any) -> None:
        import plotly.graph_objects as go

        self.figure = go.Figure(fig)
        self._png: tuple[str, bytes | None] | None = None

    def png(self) -> bytes | None:
        """The figure's PNG (made once per version of the figure), or None."""
        key = json.dumps(self.figure.to_plotly_json(), sort_keys=True, default=str)
        if self._png is None or self._png[0] != key:
            self._png = (key, figure_png(self.figure))
        return self._png[1]

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        import plotly.io as pio  # type: ignore[import-untyped]

        bundle: dict[str, Any] = {
            PLOTLY_MIME: json.loads(pio.to_json(self.figure, validate=False)),
            "text/plain": repr(self),
        }
        png = self.png()
        if png is not None:
            bundle["image/png"] = base64.b64encode(png).decode("ascii")
        return bundle

    def __repr__(self) -> str:
        title = self.figure.layout.title.text
        return f"<Chart: {title}>" if title else "<Chart>"


def chart(fig: Any) -> Chart:
    """Show the plotly figure ``fig`` interactively, with a static PNG of it in the output,
    so that a saved notebook shows it on GitHub and nbviewer.

    Example:
        chart(px.scatter(calls, x="output_tokens", y="duration_ms", color="model"))
    """
    return Chart(fig)
