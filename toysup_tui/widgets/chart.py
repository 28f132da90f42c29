"""A plotext chart widget that redraws from a function on every render.

Why not draw once into a ``PlotextPlot``: plotext applies a log scale to the
stored data *in place* when it builds a figure, so a log-scaled chart that is
rendered a second time (a resize, a theme change, a panel opening) takes the log
of a log and fails. Drawing from scratch before each build avoids that, and lets
charts that care about their shape (the feature vectors, which keep circles
round) see the size they are drawn at.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual.app import RenderResult
from textual.geometry import Size
from textual_plotext import PlotextPlot

Draw = Callable[[Any, Size], None]


class Chart(PlotextPlot):
    """Shows whatever ``draw(plt, size)`` last given to :meth:`show` draws; a failing draw shows its error."""

    _draw: Draw | None = None
    _message: str = ""
    _built: tuple[tuple[Any, ...], RenderResult] | None = None

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)

    def show(self, draw: Draw | None) -> None:
        """Draw with ``draw`` from now on (None: an empty frame)."""
        self._draw, self._message, self._built = draw, "", None
        self.refresh()

    def message(self, text: str) -> None:
        """No chart but a sentence saying why (wrapped to the widget, unlike a plotext title)."""
        self._draw, self._message, self._built = None, text, None
        self.refresh()

    def render(self) -> RenderResult:
        if self._message:
            return Text(self._message, style="dim", justify="center")
        # Building costs tens of ms for busy charts: reuse the last build while nothing it depends on changed.
        key = (self.size, self.app.theme, self.theme)
        if self._built is not None and self._built[0] == key:
            return self._built[1]
        plt = self.plt
        plt.clear_figure()
        result: RenderResult
        try:
            if self._draw is not None:
                self._draw(plt, self.size)
            result = super().render()
        except Exception as exc:  # a chart must never take the app down
            result = Text(f"chart failed: {type(exc).__name__}: {exc}", style="red")
        self._built = (key, result)
        return result
