"""The summary table at 80, 120 and 200 columns (toysup_tui/render/tables.py): the scale-free columns first,
no column empty at every point, no cell cut (a column is dropped instead)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from toysup.engine.analysis.series import Band
from toysup.engine.results import Results
from toysup.engine.run.folder import Run
from toysup.engine.runner import run_sweep
from toysup_tui.render import charts
from toysup_tui.render.tables import summary_metrics, summary_table
from toysup_tui.report import print_report

from helpers import make_spec, run_options

WIDTHS = (80, 120, 200)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Results:
    """relu_output, n=5 in m=2, p in {1, 0.1}, 2 seeds: a ReLU on the outputs only, so the neuron columns
    (polysemantic_neurons) are empty at every point."""
    spec = make_spec({"n_features": 5, "n_hidden": 2, "steps": 200, "batch_size": 64, "eval_batch_size": 256,
                      "seeds": 2}, {"feature_probability": [1.0, 0.1]})
    outcome = run_sweep(spec, tmp_path_factory.mktemp("summary"), run_options())
    assert outcome.status == "completed"
    return Results.open(Run(outcome.run_dir))


def table_text(results: Results, width: int) -> str:
    console = Console(record=True, width=width, file=io.StringIO(), color_system=None)
    console.print(summary_table(results, summary_metrics(results, width), compact=width < 125))
    return console.export_text()


@pytest.mark.parametrize("width", WIDTHS)
def test_the_scale_free_columns_come_first_and_no_column_is_empty(results: Results, width: int):
    metrics = summary_metrics(results, width)
    assert metrics[:2] == ["features_per_dim", "mean_dimensionality"]
    assert {r["polysemantic_neurons"] for r in results.rows} == {""}  # the premise: empty at every point
    assert "polysemantic_neurons" not in metrics
    text = table_text(results, width)
    assert "—" not in text
    assert text.index("features_per") < text.index("loss")


@pytest.mark.parametrize("width", WIDTHS)
def test_no_cell_is_cut_a_column_is_dropped_instead(results: Results, width: int):
    text = table_text(results, width)
    assert "…" not in text
    assert max(len(line.rstrip()) for line in text.splitlines()) <= width
    if width >= 125:  # the percentile cells are whole: [q25-q75] with both ends
        assert text.count("[") == text.count("]") >= 2 * len(results.stats(["loss"]))
    narrow, wide = summary_metrics(results, 80), summary_metrics(results, 200)
    assert len(narrow) < len(wide)  # columns left out at 80, not squeezed


def test_the_report_draws_the_loss_iqr_for_a_lone_series_or_on_request(results: Results):
    def loss_title(iqr: bool) -> str:
        console = Console(record=True, width=120, file=io.StringIO(), color_system="truecolor", force_terminal=True)
        print_report(console, results.run, iqr=iqr)
        return next(line for line in console.export_text().splitlines() if "training loss" in line)

    assert "IQR" not in loss_title(False)  # two series: medians only
    assert "IQR" in loss_title(True)


def test_summary_of_toysup_run_at_80_columns(results: Results, tmp_path: Path):
    from toysup_tui.summaries import print_summary

    console = Console(record=True, width=80, file=io.StringIO(), color_system=None)
    print_summary(console, results.run)
    text = console.export_text()
    assert "features_per" in text and "…" not in text and "—" not in text


def test_the_loss_chart_draws_the_iqr_of_the_highlighted_series_only():
    """Seven series' IQRs were 21 dotted lines; with a highlighted series only its two IQR lines are drawn."""
    bands = []
    for k in range(7):
        band = Band(f"p={k}", n=4)
        for step in (1, 10, 100):
            band.add(step, (1.0 / (step + k), 0.9 / (step + k), 1.1 / (step + k)))
        bands.append(band)

    class Recorder:
        def __init__(self) -> None:
            self.calls: list[tuple[str, tuple, dict]] = []

        def __getattr__(self, name: str):
            return lambda *args, **kwargs: self.calls.append((name, args, kwargs))

    def iqr_lines(**kwargs) -> tuple[int, str]:
        plt = Recorder()
        charts.draw_loss_curves(plt, bands, **kwargs)
        title = next(args[0] for name, args, _ in plt.calls if name == "title")
        return sum(1 for name, _, kw in plt.calls if name == "plot" and kw.get("marker") == charts.IQR_MARKER), title

    assert iqr_lines()[0] == 14  # every series: the old clutter
    lines, title = iqr_lines(highlight=2)
    assert lines == 2 and "IQR of p=2" in title
