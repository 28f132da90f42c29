"""The one-line key printed under a chart, for ``toysup report`` and the TUI alike: plotext's own legend
would cover the chart's top-left corner, where loss curves start."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text

from toysup_tui.render.charts import Colours, series_style


def legend_text(labels: Sequence[str], title: str = "", colours: Colours = Colours.FULL, ordered: bool = False
                ) -> Text:
    """``title: ━━ a  ━━ b ...``: each series' swatch drawn as its line is (:func:`series_style`), with the
    same colour and marker; only the title is dimmed (a dimmed swatch no longer matches its line). ``ordered``:
    the labels are an ordered axis's points, in order (as the chart was drawn with)."""
    text = Text()
    if title:
        text.append(f"{title}: ", style="dim")
    for i, label in enumerate(labels):
        style = series_style(i, colours, len(labels) if ordered else 0)
        colour = f"rgb({style.colour[0]},{style.colour[1]},{style.colour[2]})" if style.colour else ""
        text.append(style.swatch, style=colour)
        text.append(f" {label}  ")
    return text
