"""Tab 5: training-loss curves, one per sweep point."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import TabPane

from toysup.engine.analysis.series import loss_bands
from toysup.engine.errors import RunDataError
from toysup.engine.results import Results
from toysup_tui.render import charts
from toysup_tui.widgets.chart import Chart
from toysup_tui.widgets.legend import Legend


class LossTab(TabPane):
    """Median training loss over seeds per sweep point, with the IQR of the highlighted row's point."""

    def compose(self) -> ComposeResult:
        yield Chart(id="loss-chart")
        yield Legend("", id="loss-legend")

    def draw(self, results: Results, point: int | None = None) -> None:
        """``point``: the sweep point of the table's highlighted row, the only curve drawn with its IQR."""
        plot = self.query_one("#loss-chart", Chart)
        try:
            bands = loss_bands(results)
        except RunDataError as exc:
            plot.message(str(exc))
            return
        colours = plot.colours
        labels = [b.label for b in bands]
        chosen = results.points[point].label(short=True) if point is not None and point < len(results.points) else ""
        highlight = labels.index(chosen) if chosen in labels else (0 if len(bands) == 1 else None)
        ordered = charts.one_ordered_axis(results.spec.axes)
        plot.show(lambda plt, size: charts.draw_loss_curves(plt, bands, colours=colours, ordered=ordered,
                                                            iqr=highlight is not None, highlight=highlight))
        names = ", ".join(a.name for a in results.spec.axes)
        self.query_one("#loss-legend", Legend).show([b.label for b in bands], title=names, ordered=ordered)
