"""Runs compared: what differs in their configs (as `toysup compare` shows it), and their metric curves on one
chart against a swept parameter they share."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Footer, Header, Static

from toysup.engine.analysis.columns import charted_metrics
from toysup.engine.comparison import config_diff, shared_axes
from toysup.engine.errors import RunDataError
from toysup.engine.results import Results
from toysup.engine.run.folder import Run
from toysup_tui.render import charts
from toysup_tui.render.compare import config_diff_table, overlaid_bands
from toysup_tui.screens.base import ToysupScreen
from toysup_tui.widgets.chart import Chart
from toysup_tui.widgets.legend import Legend
from toysup_tui.widgets.markup import esc


class CompareScreen(ToysupScreen):
    """``m`` steps through the metrics both runs have, ``x`` through their shared axes."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("m", "metric(1)", "Metric"),
        Binding("M", "metric(-1)", "Prev metric", show=False),
        Binding("x", "x_axis", "X axis"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, *runs: Run) -> None:
        super().__init__()
        self.runs = runs
        self.results: list[Results] = []
        self.metrics: list[str] = []
        self.shared_axes: list[str] = []
        self.metric_index = 0
        self.x_index = 0

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="compare-diff")
        yield Static("", id="compare-choice")
        yield Chart(id="compare-chart")
        yield Legend("", id="compare-legend")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "compare runs"
        try:
            self.results = [Results.open(r) for r in self.runs]
        except RunDataError as exc:
            self.query_one("#compare-choice", Static).update(f"[red]{esc(str(exc))}[/]")
            return
        self.query_one("#compare-diff", Static).update(
            config_diff_table(config_diff([r.spec for r in self.results]), [r.id for r in self.runs]))
        self.shared_axes = shared_axes(self.results)
        metric_lists = [charted_metrics(r.spec.model, list(r.rows[0])) if r.rows else [] for r in self.results]
        self.metrics = [m for m in metric_lists[0] if all(m in other for other in metric_lists[1:])]
        self.call_after_refresh(self.draw)

    def draw(self) -> None:
        choice = self.query_one("#compare-choice", Static)
        plot = self.query_one("#compare-chart", Chart)
        if not self.shared_axes or not self.metrics:
            why = "no swept parameter in common" if not self.shared_axes else "no metric in common (or no results)"
            choice.update(f"[yellow]cannot chart {esc(', '.join(r.id for r in self.runs))} together: {why}[/]")
            plot.show(None)
            return
        x = self.shared_axes[self.x_index % len(self.shared_axes)]
        metric = self.metrics[self.metric_index % len(self.metrics)]
        log_x = any(a.log_scale for r in self.results for a in r.axes if a.name == x)
        bands = overlaid_bands([r.id for r in self.runs], self.results, x, metric)
        colours = plot.colours
        plot.show(lambda plt, size: charts.draw_metric(plt, bands, metric, x, log_x=log_x,
                                                      title=f"{metric}: median over seeds, {len(self.runs)} runs",
                                                      colours=colours))
        choice.update(f"metric [b]{metric}[/] (m/M) against [b]{x}[/] (x)")
        self.query_one("#compare-legend", Legend).show([b.label for b in bands])

    def action_metric(self, step: int) -> None:
        if self.metrics:
            self.metric_index = (self.metric_index + step) % len(self.metrics)
            self.draw()

    def action_x_axis(self) -> None:
        if self.shared_axes:
            self.x_index = (self.x_index + 1) % len(self.shared_axes)
            self.draw()
