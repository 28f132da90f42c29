"""Publication figures (`toysup plot`, toysup_tui/figures.py), the report saved as a file, and the TUI's figure key.

Each chart is built from a small seeded run and its drawn data read back from matplotlib's artists
before saving: what the figure shows is the run's numbers (engine.analysis), not just some picture.
"""

from __future__ import annotations

import math
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from textual.widgets import Input
from tui_helpers import SIZE, make_app, open_results, run_async, wait_for

from toysup.engine.analysis import geometry, orientation, phase, series
from toysup.engine.results import Results
from toysup.engine.run.folder import Run
from toysup_tui import figures
from toysup_tui.screens.confirm import PromptScreen

from helpers import assert_user_error, invoke, make_fixture_run

pytest.importorskip("matplotlib")

PNG = b"\x89PNG\r\n\x1a\n"


def results_of(run_dir: Path) -> Results:
    return Results.open(Run(run_dir))


def assert_format(path: Path) -> None:
    """The file is what its suffix says: PNG's signature, an SVG document, a PDF header."""
    data = path.read_bytes()
    if path.suffix == ".png":
        assert data.startswith(PNG)
    elif path.suffix == ".svg":
        assert ET.fromstring(data).tag.endswith("svg")
    else:
        assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")


def trained(tmp_path: Path, preset: str, *args: str) -> Path:
    root = tmp_path / "runs"
    result = invoke("run", preset, "--runs-dir", root, "--device", "cpu", "--quiet", *args)
    assert result.exit_code == 0, result.stderr
    return Path(result.stdout.strip())


def written(fig: Any, tmp_path: Path, suffix: str) -> Any:
    """Save ``fig`` in the format of ``suffix`` and check the file; the figure back, to read its artists."""
    target = tmp_path / f"figure{suffix}"
    figures.save(fig, target)
    assert_format(target)
    return fig


def test_a_figure_is_written_in_the_format_of_its_suffix(tiny_run: Path, tmp_path: Path) -> None:
    results = results_of(tiny_run)
    assert figures.available(results) == ["loss", "metrics", "geometry", "dimensionality", "orientation"]
    fig = figures.build(results, ["loss", "geometry"])
    for suffix in (".png", ".svg", ".pdf"):
        written(fig, tmp_path, suffix)
    with pytest.raises(figures.UserError, match=r"name the file \.png, \.svg or \.pdf"):
        figures.save(fig, tmp_path / "figure.jpeg")


def test_loss_curves_are_the_runs_medians_with_iqr_bands(tiny_run: Path, tmp_path: Path) -> None:
    results = results_of(tiny_run)
    ax = written(figures.build(results, ["loss"]), tmp_path, ".png").axes[0]
    bands = series.loss_bands(results)
    assert len(ax.lines) == len(bands) == 2
    for line, band in zip(ax.lines, bands):
        assert list(line.get_xdata()) == band.x and np.allclose(line.get_ydata(), band.median)
        assert line.get_label() == band.label
    (low, high) = ax.collections[0].get_paths()[0].vertices[:, 1].min(), max(bands[0].q75)
    assert math.isclose(low, min(bands[0].q25)) and high >= max(bands[0].median)
    assert ax.get_yscale() == "log"


def test_metric_charts_are_the_runs_medians_against_the_axis(tiny_run: Path, tmp_path: Path) -> None:
    results = results_of(tiny_run)
    fig = written(figures.build(results, ["metrics"], metrics=["loss", "features_per_dim"]), tmp_path, ".svg")
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["loss", "features_per_dim"]
    for ax in visible:
        band = series.metric_bands(results, "feature_probability", ax.get_title())[0]
        assert np.allclose(ax.lines[0].get_xdata(), band.x) and np.allclose(ax.lines[0].get_ydata(), band.median)


def test_geometry_draws_each_feature_vector_coloured_by_importance(tiny_run: Path, tmp_path: Path) -> None:
    results = results_of(tiny_run)
    fig = written(figures.build(results, ["geometry"], instances=[0, 3]), tmp_path, ".pdf")
    axes = [ax for ax in fig.axes if ax.get_visible() and ax.lines]
    assert len(axes) == 2
    for ax, inst in zip(axes, (0, 3)):
        W = geometry.embedding(results.weights(inst))
        features = [line for line in ax.lines if line.get_label().startswith("feature ")]
        ends = np.array([line.get_xydata()[1] for line in features])
        starts = np.array([line.get_xydata()[0] for line in features])
        assert np.allclose(ends, W) and np.allclose(starts, 0)
        colours = [line.get_color() for line in features]
        assert colours[0] != colours[-1]  # importance 1 and 0.9^4: the ends of the colour scale apart
        assert f"#{inst}" in ax.get_title()
    with pytest.raises(figures.UserError, match="--instance 99 is not a finished instance"):
        figures.build(results, ["geometry"], instances=[99])


def test_dimensionality_plots_each_features_d_i_against_one_over_p_with_the_fraction_lines(
        tiny_run: Path, tmp_path: Path) -> None:
    results = results_of(tiny_run)
    ax = written(figures.build(results, ["dimensionality"]), tmp_path, ".png").axes[0]
    drawn = sorted(map(tuple, np.round(ax.collections[0].get_offsets(), 9)))
    p = {pt.index: pt.values["feature_probability"] for pt in results.points}
    expected = sorted((round(1 / p[results.point_of(int(r["instance"])).index], 9), round(r["dimensionality"], 9))
                      for r in results.features())
    assert drawn == expected and len(drawn) == 4 * 5  # every feature of every instance
    d_star = next(line for line in ax.lines if line.get_label().startswith("D*"))
    band = series.metric_bands(results, "feature_probability", "dims_per_feature")[0]
    assert sorted(zip(d_star.get_xdata(), d_star.get_ydata())) == sorted(
        (1 / x, y) for x, y in zip(band.x, band.median))
    fractions = sorted(line.get_ydata()[0] for line in ax.lines if line.get_linestyle() == "--")
    assert np.allclose(fractions, [3 / 8, 2 / 5, 1 / 2, 2 / 3, 3 / 4, 1])
    assert ax.get_xscale() == "log"


def test_orientation_histograms_count_the_runs_angles(tiny_run: Path, tmp_path: Path) -> None:
    results = results_of(tiny_run)
    fig = written(figures.build(results, ["orientation"]), tmp_path, ".svg")
    axes = [ax for ax in fig.axes if ax.get_visible()]
    stats = orientation.orientation_points(results)
    assert len(axes) == len(stats) == 2
    for ax, (_, st) in zip(axes, stats):
        heights = [patch.get_height() for patch in ax.patches]
        assert heights == orientation.histogram(st.angles, orientation.ORIENTATION_BINS, 0.0, st.max_angle)
        assert sum(heights) == len(st.angles)


def test_phase_diagram_cells_are_the_runs_phases_with_the_theory_drawn(tmp_path: Path) -> None:
    run_dir = trained(tmp_path, "tms-phase", "-s", "steps=60", "-s", "seeds=2", "-s", "batch_size=32",
                      "--sweep", "feature_probability=1,0.1", "--sweep", "importance_decay=0.3,3")
    results = results_of(run_dir)
    assert "phase" in figures.available(results)
    ax = written(figures.build(results, ["phase"]), tmp_path, ".pdf").axes[0]
    mesh = ax.collections[0]
    grid = phase.phase_grid(results, "importance_decay", "feature_probability")
    index = {name: k for k, name in enumerate(phase.PHASES)}
    # grid rows run from the largest density down; the mesh's from the smallest up
    expected = [[index[c.best] for c in row] for row in reversed(grid.cells)]  # type: ignore[union-attr]
    assert np.array(mesh.get_array()).reshape(2, 2).tolist() == expected
    assert len(ax.collections) > 1  # the theoretical boundaries (n=2, m=1: the paper gives them)


def test_sae_recovery_and_incidental_rate_charts(tmp_path: Path) -> None:
    sae = results_of(trained(tmp_path, "sae-recovery", "-s", "steps=40", "--sweep", "n_ground_truth=16",
                             "--sweep", "dict_ratio=1", "--sweep", "l1=0.001,0.01"))
    assert "recovery" in figures.available(sae) and "geometry" not in figures.available(sae)
    ax = written(figures.build(sae, ["recovery"]), tmp_path, ".png").axes[0]
    counts = [int(patch.get_path().vertices[:, 1].max() > 0) for patch in ax.patches]
    assert len(ax.patches) == 2 and all(counts)
    total = sum(1 for f in sae.features() if isinstance(f.get("max_cosine"), float))
    drawn = sum(sum(h.datavalues) for h in ax.containers) if ax.containers else None
    assert drawn in (None, total)
    incidental = results_of(trained(tmp_path, "incidental-l1", "-s", "steps=60", "-s", "seeds=2", "-s", "n_features=16",
                                    "--sweep", "n_hidden=16", "--sweep", "l1=0.1"))
    assert "rate" in figures.available(incidental)
    ax = written(figures.build(incidental, ["rate"]), tmp_path, ".svg").axes[0]
    from toysup.engine.analysis.sparsification import rate_points

    (point,) = rate_points(incidental)
    assert np.allclose(ax.lines[0].get_xdata(), point.steps) and np.allclose(ax.lines[0].get_ydata(), point.median)


def test_plot_command_writes_the_file_and_says_so(tiny_run: Path, tmp_path: Path) -> None:
    target = tmp_path / "fig.svg"
    result = invoke("plot", tiny_run, "loss", "geometry", "-o", target)
    assert result.exit_code == 0, result.stderr
    assert_format(target)
    assert "wrote loss, geometry" in result.stderr
    svg = ET.fromstring(target.read_bytes())
    paths = svg.iter("{http://www.w3.org/2000/svg}path")
    assert sum(1 for _ in paths) > 10


@pytest.mark.parametrize(("args", "fragments"), [
    (["-o", "fig.jpg"], ["cannot tell the figure format", ".png, .svg or .pdf"]),
    (["phase", "-o", "fig.png"], ["this run has no phase chart"]),
    (["nonsense", "-o", "fig.png"], ["unknown chart 'nonsense'"]),
])
def test_plot_mistakes_are_one_line(tiny_run: Path, tmp_path: Path, args: list[str], fragments: list[str]) -> None:
    result = invoke("plot", tiny_run, *[str(tmp_path / a) if a.startswith("fig.") else a for a in args])
    assert_user_error(result.exit_code, result.stderr, result.stdout, *fragments)


def test_plot_without_matplotlib_says_how_to_install_it(tiny_run: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    result = invoke("plot", tiny_run, "-o", tmp_path / "fig.png")
    assert_user_error(result.exit_code, result.stderr, result.stdout, "matplotlib", "toysup[figures]")
    assert not (tmp_path / "fig.png").exists()


@pytest.mark.parametrize("suffix", [".html", ".svg", ".txt"])
def test_report_saves_as_it_looks(tiny_run: Path, tmp_path: Path, suffix: str) -> None:
    target = tmp_path / f"report{suffix}"
    result = invoke("report", tiny_run, "--save", target)
    assert result.exit_code == 0, result.stderr
    text = target.read_text()
    assert result.stdout == ""
    if suffix == ".txt":
        assert text.startswith(tiny_run.name) and "training loss" in text and "\x1b[" not in text
    elif suffix == ".svg":
        assert ET.fromstring(text).tag.endswith("svg") and "training" in text
    else:
        assert text.lstrip().lower().startswith("<!doctype html") and "color: #" in text
    bad = invoke("report", tiny_run, "--save", tmp_path / "report.pdf")
    assert_user_error(bad.exit_code, bad.stderr, bad.stdout, "--save", ".html, .svg or .txt")


@run_async
async def test_the_results_screen_saves_the_chart_on_screen(tui_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    run = make_fixture_run(tui_dirs[0])
    app = make_app(tui_dirs)
    target = tmp_path / "loss.png"
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_results(pilot, app, run.path)
        await wait_for(pilot, lambda: app.focused is not None and app.focused.id == "results-table")
        await pilot.press("5")  # the loss tab
        await wait_for(pilot, lambda: screen.figure_request()[0] == ["loss"])
        await pilot.press("f")
        await wait_for(pilot, lambda: isinstance(app.screen, PromptScreen))
        assert app.screen.query_one(Input).value.endswith(f"{run.id}-loss.png")
        app.screen.query_one(Input).value = str(target)
        await pilot.press("enter")
        await wait_for(pilot, lambda: target.exists() and target.stat().st_size > 0, timeout=30)
        await pilot.press("3")  # geometry: the chosen instance
        await wait_for(pilot, lambda: screen.figure_request()[0] == ["geometry"])
        assert screen.figure_request()[1]["instances"] == [screen.instance] and screen.instance is not None
    assert target.read_bytes().startswith(PNG)
