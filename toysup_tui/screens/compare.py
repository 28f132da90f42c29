"""Two runs' metric curves on one chart, against a swept parameter both runs share."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Footer, Header, Static

from engine.analysis.columns import charted_metrics
from engine.analysis.series import Band, metric_bands
from engine.errors import RunDataError
from engine.results import Results
from engine.store import Run
from toysup_tui.render import charts
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

    def __init__(self, first: Run, second: Run) -> None:
        super().__init__()
        self.runs = (first, second)
        self.results: list[Results] = []
        self.metrics: list[str] = []
        self.shared_axes: list[str] = []
        self.metric_index = 0
        self.x_index = 0

    def compose(self) -> ComposeResult:
        yield Header()
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
        names = [[a.name for a in r.axes] for r in self.results]
        self.shared_axes = [n for n in names[0] if n in names[1]]
        metric_lists = [charted_metrics(r.spec.model, list(r.rows[0])) if r.rows else [] for r in self.results]
        self.metrics = [m for m in metric_lists[0] if m in metric_lists[1]]
        self.call_after_refresh(self.draw)

    def draw(self) -> None:
        choice = self.query_one("#compare-choice", Static)
        plot = self.query_one("#compare-chart", Chart)
        if not self.shared_axes or not self.metrics:
            why = "no swept parameter in common" if not self.shared_axes else "no metric in common (or no results)"
            choice.update(f"[yellow]cannot compare {esc(self.runs[0].id)} and {esc(self.runs[1].id)}: "
                          f"{why}[/]")
            plot.show(None)
            return
        x = self.shared_axes[self.x_index % len(self.shared_axes)]
        metric = self.metrics[self.metric_index % len(self.metrics)]
        bands: list[Band] = []
        log_x = False
        for run, results in zip(self.runs, self.results):
            axis = next(a for a in results.axes if a.name == x)
            log_x = log_x or axis.log_scale
            for band in metric_bands(results, x, metric, max_series=len(charts.PALETTE)):
                band.label = run.id if band.label == metric else f"{run.id} {band.label}"
                bands.append(band)
        colours = plot.colours
        plot.show(lambda plt, size: charts.draw_metric(plt, bands, metric, x, log_x=log_x,
                                                      title=f"{metric}: median over seeds, two runs",
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
