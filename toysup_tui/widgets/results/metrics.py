"""Tab 2: a metric against a swept parameter (or the phase grid, for a phase column)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static, TabPane

from toysup.engine.analysis.series import metric_bands
from toysup.engine.results import Results
from toysup_tui.render import charts
from toysup_tui.render.phase import phase_table
from toysup_tui.widgets.chart import Chart
from toysup_tui.widgets.legend import Legend


class MetricsTab(TabPane):
    """The chosen metric's median and IQR over seeds against the chosen axis, one line per value of
    another axis."""

    def compose(self) -> ComposeResult:
        yield Static("", id="metric-choice")
        yield Chart(id="metric-chart")
        yield Static("", id="phase-grid")
        yield Legend("", id="metric-legend")

    def draw(self, results: Results, metrics: list[str], metric_index: int, x_index: int,
             phase_selection: str = "best") -> None:
        plot = self.query_one("#metric-chart", Chart)
        choice = self.query_one("#metric-choice", Static)
        legend = self.query_one("#metric-legend", Legend)
        axes = results.spec.axes
        if not axes or not results.rows or not metrics:
            choice.update("[dim]this run has a single sweep point (no axes) or no results yet: see the table[/]")
            plot.show(None)
            return
        axis = axes[x_index % len(axes)]
        metric = metrics[metric_index % len(metrics)]
        grid = self.query_one("#phase-grid", Static)
        phase = phase_table(results, phase_selection) if metric == "phase" else None
        grid.display, plot.display = phase is not None, phase is None
        if phase is not None:  # the phase diagram reads best as its coloured grid, not as a line
            grid.update(phase)
            choice.update(f"metric [b]phase[/] ({metric_index % len(metrics) + 1}/{len(metrics)}, "
                          f"m/M): the phase diagram, seeds by [b]{phase_selection}[/] (k: best-of-k or the "
                          "paper's drop-worst majority)")
            legend.display = False
            return
        bands = metric_bands(results, axis.name, metric, max_series=len(charts.PALETTE))
        colours = plot.colours
        split = next((a for a in axes if a.name != axis.name), None)
        ordered = split is not None and charts.is_ordered(split.values)
        plot.show(lambda plt, size: charts.draw_metric(plt, bands, metric, axis.name, log_x=axis.log_scale,
                                                      colours=colours, ordered=ordered))
        choice.update(f"metric [b]{metric}[/] ({metric_index % len(metrics) + 1}/{len(metrics)}, "
                      f"m/M) against [b]{axis.name}[/]{' (log)' if axis.log_scale else ''} (x)")
        legend.show([b.label for b in bands] if split else [], title=split.name if split else "", ordered=ordered)
        legend.display = split is not None
