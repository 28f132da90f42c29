"""Tab 4: the chosen instance's feature norms, features per neuron and W^T W."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Static, TabPane

from toysup.engine.analysis.geometry import feature_table, neuron_counts, overlap_matrix
from toysup.engine.errors import RunDataError
from toysup.engine.models import get_kind
from toysup.engine.results import Results
from toysup_tui.render import charts
from toysup_tui.render.heatmap import overlap_heatmap
from toysup_tui.widgets.chart import Chart


class InstanceTab(TabPane):
    """Bars per feature and per neuron, and the overlap heatmap, of one instance."""

    def compose(self) -> ComposeResult:
        yield Static("", classes="instance-info")
        with VerticalScroll(id="instance-scroll"):
            with Horizontal(classes="pair"):
                yield Chart(id="norms-chart")
                yield Chart(id="neurons-chart")
            yield Static("", id="overlap-heatmap")

    def draw(self, results: Results, W: Any | None, why: str, instance: int | None, width: int) -> None:
        """``W``: the instance's embedding (None: ``why`` not); ``width``: the heatmap's width."""
        norms_plot = self.query_one("#norms-chart", Chart)
        neurons_plot = self.query_one("#neurons-chart", Chart)
        heatmap = self.query_one("#overlap-heatmap", Static)
        if W is None or instance is None:
            heatmap.update("")
            norms_plot.message(why)
            neurons_plot.show(None)
            return
        table: dict[str, list[float]] = {}
        try:
            table = feature_table(results.features(), instance)
        except RunDataError as exc:
            norms_plot.message(str(exc))
        else:
            norms, interference = table["norm"], table.get("interference", [0.0] * len(table["norm"]))
            # Without colour (NO_COLOR) the bars cannot show interference, so the title does not say they do.
            title = "feature norms" + ("" if norms_plot.colours is charts.Colours.NONE else " (colour: interference)")
            norms_plot.show(lambda plt, size: charts.draw_feature_norms(plt, norms, interference, title=title))
        config = results.instance_config(instance)
        # The same rule as the report and results.csv: neuron counts only where the basis is privileged,
        # counting the weights that drive each neuron (engine.models' neuron_sense).
        sense = get_kind(results.spec.model).neuron_sense(config)
        if sense is None:
            neurons_plot.message("features per neuron: not shown, the hidden layer has no privileged basis "
                                 "here (any rotation is an equally good solution)")
        else:
            counts = neuron_counts(W, float(config.get("carry_threshold", 0.5)), table.get("represented"), sense)
            neurons_plot.show(lambda plt, size: charts.draw_neuron_counts(plt, counts))
        heatmap.update(overlap_heatmap(overlap_matrix(W), width, title=f"W^T W of instance {instance}"))
