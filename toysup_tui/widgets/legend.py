"""A one-line legend under a chart, in the app's colours (:func:`~toysup_tui.render.legend.legend_text`)."""

from __future__ import annotations

from collections.abc import Sequence

from textual.widgets import Static

from toysup_tui.render.legend import legend_text
from toysup_tui.widgets.chart import app_colours


class Legend(Static):
    """Shows :func:`legend_text` for the colours the app's terminal shows; ``show`` replaces its contents."""

    def show(self, labels: Sequence[str], title: str = "", ordered: bool = False) -> None:
        self.update(legend_text(labels, title, app_colours(self.app), ordered))
