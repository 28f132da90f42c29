"""Tab 3: the chosen instance's feature vectors, and the orientation angles over seeds."""

from __future__ import annotations

import math
from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Static, TabPane

from toysup.engine.analysis.geometry import feature_vectors
from toysup.engine.analysis.orientation import orientation_points
from toysup.engine.results import Results
from toysup_tui.render import charts
from toysup_tui.render.tables import orientation_table, plural
from toysup_tui.widgets.chart import COMPUTING, Chart


class GeometryTab(TabPane):
    """Feature vectors W_i of one instance (m = 2) beside the orientation histogram of its sweep point."""

    def compose(self) -> ComposeResult:
        yield Static("", classes="instance-info")
        with VerticalScroll(id="geometry-scroll"):
            with Horizontal(classes="pair"):
                yield Chart(id="feature-chart")
                yield Chart(id="orientation-chart")
            yield Static("", id="orientation-summary")

    def computing(self) -> None:
        """Shown until :meth:`draw`: loading the weights and the orientation statistics take seconds on a big run."""
        for chart in self.query(Chart).results(Chart):
            chart.message(COMPUTING)

    def draw(self, results: Results, W: Any | None, why: str, instance: int | None, step: int | None,
             row: dict[str, Any] | None) -> None:
        """``W``: the instance's embedding (None: ``why`` not); ``step``: the snapshot's step (None: final
        weights); ``row``: the instance's results row, whose sweep point the orientation chart shows."""
        feature_plot = self.query_one("#feature-chart", Chart)
        if W is not None and W.shape[-1] == 2:
            at = f", step {step}" if step is not None else ""
            vectors, title = feature_vectors(W), f"feature vectors W_i, instance {instance}{at}"
            colours = feature_plot.colours
            feature_plot.show(lambda plt, size: charts.draw_feature_vectors(
                plt, vectors, title=title, aspect=charts.plot_aspect(size.width, size.height), colours=colours))
        elif W is not None:
            feature_plot.message(f"Feature vectors are drawn for a 2-D hidden space; this W is "
                                 f"{W.shape[0]}×{W.shape[1]}. The orientation angles are on the right.")
        else:
            feature_plot.message(why)
        self._draw_orientation(results, row)

    def _draw_orientation(self, results: Results, row: dict[str, Any] | None) -> None:
        plot = self.query_one("#orientation-chart", Chart)
        summary = self.query_one("#orientation-summary", Static)
        if not results.rows or "orientation_angle_deg" not in results.rows[0]:
            summary.update("[dim]this model has no orientation metric[/]")
            plot.show(None)
            return
        points = orientation_points(results)
        here = next(((p, st) for p, st in points if row is not None and p.index == row["point"]),
                    points[0] if points else None)
        if here is not None:
            point, chosen = here
            label = point.label(short=True) if row is not None else ""
            p = "n/a" if math.isnan(chosen.p_value) else f"{chosen.p_value:.2g}"
            title = f"angle at {label or 'all'}, {plural(len(chosen.angles), 'seed')}, p={p}"
            plot.show(lambda plt, size: charts.draw_orientation_hist(plt, chosen, title=title))
        else:
            plot.show(None)
        names = " x ".join(a.name for a in results.spec.axes)
        summary.update(orientation_table(points, names) if points else "")
