"""A one-line legend for charts: plotext's own legend covers the top-left corner, where curves start."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widgets import Static

from toysup_tui.render.charts import series_style


def legend_text(labels: Sequence[str], title: str = "") -> Text:
    """``title: ━ a  ━ b ...`` with each mark in its series' colour."""
    text = Text(f"{title}: " if title else "", style="dim")
    for i, label in enumerate(labels):
        colour, _ = series_style(i)
        style = f"rgb({colour[0]},{colour[1]},{colour[2]})" if colour else ""
        text.append("━━ ", style=style)
        text.append(f"{label}  ")
    return text


class Legend(Static):
    """Shows :func:`legend_text`; ``show`` replaces its contents."""

    def show(self, labels: Sequence[str], title: str = "") -> None:
        self.update(legend_text(labels, title))
