"""``toysup compare``: the config diff, the medians side by side per point, and overlaid metric charts."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.text import Text

from toysup.engine import comparison
from toysup.engine.analysis.columns import charted_metrics
from toysup.engine.results import Results
from toysup_tui.render import charts
from toysup_tui.render.compare import config_diff_table, overlaid_bands, side_by_side_table
from toysup_tui.render.legend import legend_text


def print_comparison(console: Console, run_ids: Sequence[str], results: Sequence[Results], x: str | None) -> None:
    """Print the comparison: what differs, the medians per point, then each shared charted metric against ``x``."""
    console.print(config_diff_table(comparison.config_diff([r.spec for r in results]), run_ids))
    metrics = comparison.shared_metrics(results)
    if not metrics:
        console.print("[dim]no summary metric in common (or a run has no results yet)[/]")
        return
    console.print(side_by_side_table(comparison.side_by_side(results, metrics), run_ids, metrics))
    if x is None:
        console.print("[dim]overlaid charts: the runs share no swept parameter[/]")
        return
    colours = charts.colours_of(console.color_system, console.no_color)
    color = colours is not charts.Colours.NONE
    shown = [m for m in charted_metrics(results[0].spec.model, metrics)]
    log_x = any(a.log_scale for r in results for a in r.axes if a.name == x)
    labels: list[str] = []
    for metric in shown:
        bands = overlaid_bands(run_ids, results, x, metric)
        if not bands:
            continue
        labels = [b.label for b in bands]
        text = charts.render(charts.draw_metric, bands, metric, x, log_x, title=f"{metric}: median over seeds",
                             colours=colours, width=console.width, height=max(12, min(20, console.width // 5)),
                             color=color)
        console.print(Text.from_ansi(text, no_wrap=True, overflow="crop"), crop=False)
    if labels:
        console.print(legend_text(labels, "runs", colours))
