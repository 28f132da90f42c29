"""A plotext chart widget that draws from a function, off the interface's event loop.

Why not draw once into a ``PlotextPlot``: plotext applies a log scale to the
stored data *in place* when it builds a figure, so a log-scaled chart that is
rendered a second time (a resize, a theme change, a panel opening) takes the log
of a log and fails. So every build starts from a fresh figure and the chart's
``draw(plt, size)`` function, which also lets charts that care about their shape
(feature vectors, which keep circles round) see the size they are drawn at.

Why in a thread: building a figure of several series is pure Python and takes
tens of milliseconds; on the event loop that is a visible hitch once a second
while the live chart updates. In a worker thread the loop still gets the GIL
every few milliseconds, so keys and scrolling answer at once. The last build is
shown until the next one is ready.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual.app import App, RenderResult
from textual.geometry import Size
from textual_plotext import PlotextPlot
from textual_plotext.plot import Plot

from toysup.engine.errors import ToysupError
from toysup_tui.render.charts import Colours, colours_of

Draw = Callable[[Any, Size], None]
COMPUTING = "computing…"
_BUILD_LOCK = threading.Lock()  # one figure build at a time: plotext was not written with threads in mind


def app_colours(app: App[Any]) -> Colours:
    """How many colours ``app``'s terminal shows: Textual's console decides from TERM and COLORTERM (TERM=xterm:
    16), and NO_COLOR turns colours into greys, which cannot tell series apart either."""
    return colours_of(app.console.color_system, app.no_color)


def build_figure(draw: Draw, size: Size, theme: str) -> Text:
    """Draw into a fresh figure and build it as text (any thread)."""
    with _BUILD_LOCK:
        plot = Plot()
        draw(plot, size)
        plot.plotsize(size.width, size.height)
        plot._set_size(size.width, size.height)  # as textual-plotext does: plotsize alone does not always stick
        plot.theme(theme)
        return Text.from_ansi(plot.build())


class Chart(PlotextPlot):
    """Shows whatever the ``draw(plt, size)`` last given to :meth:`show` draws; a draw that meets missing or
    damaged run data (a ToysupError) shows its message."""

    _draw: Draw | None = None
    _message: str = ""
    _generation = 0  # grows with every show(): a build for an older one is thrown away
    _built: tuple[tuple[Any, ...], RenderResult] | None = None
    _wanted: tuple[Any, ...] | None = None  # the key of the build under way

    @property
    def colours(self) -> Colours:
        """How many colours this chart is shown in: draw functions take it to choose their series' style."""
        return app_colours(self.app)

    def show(self, draw: Draw | None) -> None:
        """Draw with ``draw`` from now on (None: an empty frame)."""
        self._draw, self._message = draw, ""
        self._generation += 1
        self.refresh()

    def message(self, text: str) -> None:
        """No chart but a sentence saying why (wrapped to the widget, unlike a plotext title)."""
        self._draw, self._message = None, text
        self._generation += 1
        self.refresh()

    @property
    def busy(self) -> bool:
        """A build is under way (tests and screenshots wait for it)."""
        return self._wanted is not None

    @property
    def text(self) -> str:
        """What the chart shows now as plain text: the last build, or the message ("" before either)."""
        if self._message:
            return self._message
        shown = self._built[1] if self._built is not None else None
        return shown.plain if isinstance(shown, Text) else ""

    def _key(self) -> tuple[Any, ...]:
        return (self._generation, self.size, self.app.theme, self.theme)

    def render(self) -> RenderResult:
        if self._message:
            return Text(self._message, style="dim", justify="center")
        key = self._key()
        if self._built is not None and self._built[0] == key:
            return self._built[1]
        if self._wanted != key and self.size.area > 0:
            self._wanted = key
            draw = self._draw or (lambda plt, size: None)
            theme = self._get_plotext_theme_name(self.app.theme)
            # A bug in a draw function stops the app with its traceback (exit_on_error), never hidden in a chart.
            self.run_worker(lambda: self._build(draw, key, theme), thread=True, exclusive=True, group="chart")
        if self._built is None:  # the first build is under way: say so rather than show a blank frame
            return Text(COMPUTING if self._wanted is not None else "", style="dim", justify="center")
        return self._built[1]

    def _build(self, draw: Draw, key: tuple[Any, ...], theme: str) -> None:
        try:
            result: RenderResult = build_figure(draw, key[1], theme)
        except ToysupError as exc:  # missing or damaged run data: the chart says so; anything else is a bug
            result = Text(f"chart failed: {exc}", style="red")
        with contextlib.suppress(RuntimeError):  # the app closed while building
            self.app.call_from_thread(self._built_one, key, result)

    def _built_one(self, key: tuple[Any, ...], result: RenderResult) -> None:
        if self._wanted == key:
            self._wanted = None
        if key == self._key():
            self._built = (key, result)
            self.refresh()
        elif self._wanted is None:
            self.refresh()  # things moved on while building: build again for the current state
