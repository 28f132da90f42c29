"""`toysup report`: the chart data (pure functions with known answers), the drawn charts, and the
report on whole, partial and damaged run folders."""

from __future__ import annotations

import io
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from toysup.engine.analysis import geometry, orientation, selection, series
from toysup.engine.errors import RunDataError, SpecError
from toysup.engine.results import Results
from toysup.engine.run.folder import Run
from toysup.engine.runner import run_sweep
from toysup.engine.spec import Spec, resolve
from toysup_tui.render import charts, tables
from toysup_tui.render.heatmap import heatmap, overlap_heatmap
from toysup_tui.render.tables import summary_table
from toysup_tui.report import print_report
from toysup_tui.summaries import json_summary

from helpers import Nudge, assert_user_error, invoke, make_fixture_run, run_options

TINY = {"model": "relu_output",
        "params": {"n_features": 5, "n_hidden": 2, "steps": 300, "batch_size": 64, "eval_batch_size": 256,
                   "seeds": 3},
        "sweep": {"feature_probability": "1,0.05"}}


def pentagon(radius: float = 1.0) -> np.ndarray:
    angles = 2 * np.pi * np.arange(5) / 5
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def report_text(run: Run, width: int = 100, **kwargs) -> str:
    console = Console(record=True, width=width, file=io.StringIO(), color_system=None)
    print_report(console, run, **kwargs)
    return console.export_text()


def flat(text: str) -> str:
    """Text with its line wrapping undone, to look for messages."""
    return " ".join(text.split())


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 2-point x 3-seed sweep (about a second of training), shared read-only."""
    outcome = run_sweep(resolve(TINY), tmp_path_factory.mktemp("report"), run_options())
    assert outcome.status == "completed"
    return outcome.run_dir


@pytest.fixture
def copy_of_run(run_dir: Path, tmp_path: Path) -> Run:
    """A private copy of the finished run, for tests that damage it."""
    return Run(Path(shutil.copytree(run_dir, tmp_path / run_dir.name)))


# --- data preparation ----------------------------------------------------------------------------


def test_curve_bands_median_and_quartiles_per_step():
    curves = [{"instance": i, "step": s, "loss": loss}
              for i, losses in enumerate([[1.0, 0.5], [2.0, 0.25], [3.0, 1.0], [4.0, 1.0]])
              for s, loss in zip([1, 10], losses)]
    (a, b) = series.curve_bands(curves, [("first", [0, 1, 2]), ("last", [3])])
    assert (a.label, a.n, a.x) == ("first", 3, [1, 10])
    assert a.median == [2.0, 0.5]
    assert a.q25 == [1.5, 0.375] and a.q75 == [2.5, 0.75]
    assert (b.median, b.q25, b.q75) == ([4.0, 1.0], [4.0, 1.0], [4.0, 1.0])


def test_curve_bands_skip_groups_without_curves_and_missing_steps():
    curves = [{"instance": 0, "step": 1, "loss": 1.0}, {"instance": 0, "step": 2, "loss": 0.5},
              {"instance": 1, "step": 1, "loss": 3.0}]  # instance 1 diverged after step 1
    bands = series.curve_bands(curves, [("a", [0, 1]), ("nothing yet", [7, 8])])
    assert [b.label for b in bands] == ["a"]
    assert bands[0].median == [2.0, 0.5]


def results_of(spec: Spec, rows: list[dict]) -> Results:
    """Results of hand-made rows, numbered as the spec's instances (points in order, seeds innermost)."""
    return Results(spec, ["instance", *rows[0]], [{"instance": i, **r} for i, r in enumerate(rows)])


def test_metric_bands_one_series_per_value_of_the_other_axis():
    spec = resolve({"model": "relu_output", "params": {"seeds": 2},
                    "sweep": {"feature_probability": "1,0.1", "dropout": "0,0.5"}})
    rows = [{"feature_probability": p, "dropout": q, "loss": p + q + s}
            for p in (1.0, 0.1) for q in (0.0, 0.5) for s in (0.0, 1.0)]
    bands = series.metric_bands(results_of(spec, rows), "feature_probability", "loss")
    assert [b.label for b in bands] == ["dropout=0", "dropout=0.5"]
    assert bands[0].x == [1.0, 0.1]
    assert bands[0].median == pytest.approx([1.5, 0.6])
    assert bands[1].q25 == pytest.approx([1.75, 0.85]) and bands[1].q75 == pytest.approx([2.25, 1.35])
    # A third axis is pooled with the seeds.
    spec3 = resolve({"model": "relu_output", "params": {"seeds": 2},
                     "sweep": {"feature_probability": "1,0.1", "dropout": "0,0.5", "lr": "0.001,0.01"}})
    rows3 = [{"feature_probability": p, "dropout": q, "lr": lr, "loss": p + q + s + lr}
             for p in (1.0, 0.1) for q in (0.0, 0.5) for lr in (0.001, 0.01) for s in (0.0, 1.0)]
    first, _ = series.metric_bands(results_of(spec3, rows3), "feature_probability", "loss")
    assert first.n == 8 and first.median == pytest.approx([1.5055, 0.6055])


def test_metric_bands_skip_empty_cells_and_count_booleans():
    spec = resolve({"model": "relu_output", "params": {"seeds": 2}, "sweep": {"feature_probability": "1,0.1"}})
    rows = [{"feature_probability": 1.0, "collapsed": True}, {"feature_probability": 1.0, "collapsed": False},
            {"feature_probability": 0.1, "collapsed": ""}]
    (band,) = series.metric_bands(results_of(spec, rows), "feature_probability", "collapsed")
    assert band.x == [1.0] and band.median == [0.5]


def test_choose_axis_defaults_to_the_first_and_rejects_unswept_parameters():
    spec = resolve({"model": "relu_output", "sweep": {"feature_probability": "1,0.1", "dropout": "0,0.5"}})
    assert series.choose_axis(spec).name == "feature_probability"
    assert series.choose_axis(spec, "dropout").name == "dropout"
    with pytest.raises(SpecError, match=r"n_features.*swept: feature_probability, dropout"):
        series.choose_axis(spec, "n_features")
    assert series.choose_axis(resolve({"model": "relu_output"})) is None
    with pytest.raises(SpecError, match="sweeps nothing"):
        series.choose_axis(resolve({"model": "relu_output"}), "dropout")


def test_orientation_stats_evenly_spread_angles_look_uniform():
    angles = (np.arange(200) + 0.5) * 45 / 200
    st = orientation.orientation_stats(angles.tolist())
    assert st.p_value > 0.99
    assert st.median == pytest.approx(22.5)
    assert st.near_axis == pytest.approx(5 / 45, abs=0.01)
    assert st.excluded == 0


def test_orientation_stats_angles_on_the_axes_are_not_uniform():
    st = orientation.orientation_stats([0.0] * 30)
    assert st.p_value < 1e-10
    assert st.near_axis == 1.0


def test_orientation_stats_exclude_collapsed_and_count_near_axis():
    st = orientation.orientation_stats([1.0, 4.0, 6.0, 30.0, 2.0], collapsed=[False, False, False, False, True])
    assert st.excluded == 1
    assert st.angles == [1.0, 4.0, 6.0, 30.0]
    assert st.near_axis == 0.5
    empty = orientation.orientation_stats([3.0], collapsed=[True])
    assert empty.excluded == 1 and math.isnan(empty.p_value)


def test_null_counts_and_hidden_dims():
    assert orientation.null_counts(90, 9, 45.0, 2) == pytest.approx([10.0] * 9)
    counts = orientation.null_counts(100, 9, orientation.max_axis_angle(4), 4)
    assert sum(counts) == pytest.approx(100, abs=0.5) and counts[0] < counts[-3]  # few random directions near an axis
    assert [orientation.hidden_dims(orientation.max_axis_angle(m)) for m in (2, 3, 5, 20)] == [2, 3, 5, 20]


def test_histogram_and_sparkline():
    counts = orientation.histogram([0.0, 1.0, 4.9, 5.0, 44.9, 45.0, 50.0], 9, 0.0, 45.0)
    assert counts == [3, 1, 0, 0, 0, 0, 0, 0, 3]
    line = tables.sparkline(counts)
    assert len(line) == 9 and line[0] == "█" and line[2] == " " and line[1] != " "
    assert tables.sparkline([0, 0]) == "  "


def test_log_ticks_are_round_numbers_inside_the_range():
    ticks, labels = charts.log_ticks(1, 2000)
    assert ticks == [1, 10, 100, 1000] and labels == ["1", "10", "100", "1k"]
    ticks, _ = charts.log_ticks(0.01, 1)
    assert ticks == [0.01, 0.1, 1]
    ticks, _ = charts.log_ticks(0.3, 4)
    assert min(ticks) >= 0.3 and max(ticks) <= 4 and len(ticks) >= 3
    assert charts.log_ticks(0, 1) == ([], [])


def test_overlap_matrix_and_feature_vectors_of_a_pentagon():
    W = pentagon()
    overlaps = np.array(geometry.overlap_matrix(W))
    assert np.allclose(np.diag(overlaps), 1.0)
    assert overlaps[0, 1] == pytest.approx(math.cos(2 * math.pi / 5))
    assert geometry.feature_vectors(W)[1] == pytest.approx((math.cos(2 * math.pi / 5), math.sin(2 * math.pi / 5)))
    with pytest.raises(ValueError, match="n, 2"):
        geometry.feature_vectors(np.zeros((5, 3)))


def test_neuron_counts_use_the_carry_threshold():
    W = np.array([[1.0, 0.0], [0.0, 1.0], [0.9, 0.6], [0.1, 0.0]])  # feature 3 is not represented
    assert geometry.neuron_counts(W, 0.5) == [2, 2]
    assert geometry.neuron_counts(W, 0.7) == [2, 1]


def test_representatives_are_the_lowest_loss_seed_at_each_end_of_the_first_axis():
    spec = resolve({"model": "relu_output", "params": {"seeds": 2}, "sweep": {"feature_probability": "1,0.3,0.01"}})
    rows = [{"seed": i % 2, "feature_probability": p, "loss": loss}
            for i, (p, loss) in enumerate([(1.0, 0.2), (1.0, 0.1), (0.3, 0.0), (0.3, 0.0), (0.01, 0.05),
                                           (0.01, 0.07)])]
    sparsest, densest = selection.representatives(results_of(spec, rows))
    assert (sparsest.role, sparsest.row["instance"], sparsest.seeds) == ("sparsest", 4, 2)
    assert (densest.role, densest.row["instance"]) == ("densest", 1)
    assert sparsest.label == "feature_probability=0.01"


def test_representatives_of_a_choice_axis_are_named_by_value():
    spec = resolve({"model": "relu_output", "sweep": {"optimizer": "adam,sgd"}})
    rows = [{"optimizer": "adam", "loss": 0.1}, {"optimizer": "sgd", "loss": 0.2}]
    assert [r.role for r in selection.representatives(results_of(spec, rows))] == ["optimizer=adam", "optimizer=sgd"]


def test_summary_counts_flags_instead_of_taking_their_median():
    spec = resolve({"model": "relu_output", "params": {"seeds": 3}, "sweep": {"dropout": "0,0.9"}})
    rows = [{"dropout": q, "loss": 0.1, "collapsed": c}
            for q, c in [(0.0, False)] * 3 + [(0.9, True), (0.9, False), (0.9, True)]]
    console = Console(record=True, width=120, file=io.StringIO(), color_system=None)
    console.print(summary_table(results_of(spec, rows), ["loss", "collapsed"], compact=True))
    text = console.export_text()
    assert "2/3" in text and "3 seeds per point" in flat(text)


def test_feature_table_reads_one_instance_in_feature_order():
    rows = [{"instance": 1, "feature": 1, "norm": 0.5, "interference": 0.2},
            {"instance": 1, "feature": 0, "norm": 1.0, "interference": 0.0},
            {"instance": 0, "feature": 0, "norm": 9.0, "interference": 9.0}]
    assert geometry.feature_table(rows, 1) == {"norm": [1.0, 0.5], "interference": [0.0, 0.2]}
    with pytest.raises(RunDataError, match="no rows for instance 5"):
        geometry.feature_table(rows, 5)


# --- drawing --------------------------------------------------------------------------------------


def test_feature_vector_plot_of_a_pentagon_has_five_tips_and_labels():
    text = charts.render(charts.draw_feature_vectors, geometry.feature_vectors(pentagon(1.15)), title="pentagon",
                         aspect=charts.plot_aspect(50, 25), width=50, height=25, color=False)
    assert text.count(charts.TIP_MARKER) == 5
    assert "pentagon" in text
    plot_area = "\n".join(line[8:] for line in text.splitlines()[1:-2])  # without the tick labels
    for label in "01234":
        assert label in plot_area


def test_feature_vector_plot_keeps_circles_round():
    """In a wide area the x range is widened so one data unit spans as many pixels both ways."""
    # x range / cols == y range / (2 rows): with aspect 4 the x range is twice the y range
    text = charts.render(charts.draw_feature_vectors, pentagon(), aspect=4.0, width=60, height=18, color=False)
    x_ticks, y_ticks = text.splitlines()[-1].split(), [line[:5].strip() for line in text.splitlines()[2:-2]]
    assert x_ticks[0] == "-2.5" and x_ticks[-1] == "2.5"
    assert "-1.25" in y_ticks and "1.25" in y_ticks


def test_rendered_charts_carry_titles_and_labels_and_no_colour_when_asked():
    band = series.Band("0.1", [1, 10, 100], [1.0, 0.1, 0.01], [0.9, 0.09, 0.009], [1.1, 0.11, 0.011], n=3)
    text = charts.render(charts.draw_loss_curves, [band], width=70, height=18, color=False)
    assert "training loss" in text and "step" in text and "\x1b[" not in text
    assert max(len(line) for line in text.splitlines()) <= 70
    metric = series.Band("loss", [1.0, 0.1, 0.01], [0.03, 0.01, 0.001], [0.02, 0.01, 0.001], [0.04, 0.01, 0.001])
    text = charts.render(charts.draw_metric, [metric], "dims_per_feature", "feature_probability", True,
                         width=70, height=15, color=False)
    assert "dims_per_feature" in text and "feature_probability" in text
    coloured = charts.render(charts.draw_metric, [metric], "loss", "p", width=70, height=15, color=True)
    assert "\x1b[" in coloured


def test_bar_charts_and_histogram_draw_their_titles():
    text = charts.render(charts.draw_feature_norms, [1.0, 0.8, 0.0], [0.0, 0.5, 1.0], width=40, height=12,
                         color=False)
    assert "feature norms" in text and "feature" in text.splitlines()[-1]
    text = charts.render(charts.draw_neuron_counts, [3, 1], width=40, height=12, color=False)
    assert "features per neuron" in text
    st = orientation.orientation_stats([1.0, 2.0, 40.0])
    text = charts.render(charts.draw_orientation_hist, st, width=70, height=14, color=False)
    assert "orientation" in text and "45" in text


def test_draw_functions_work_on_a_textual_plotext_figure():
    """The TUI passes its PlotextPlot widget's .plt: every draw function must use only what both offer."""
    from textual_plotext.plot import Plot

    band = series.Band("0.1", [1, 10, 100], [1.0, 0.1, 0.01], [0.9, 0.09, 0.009], [1.1, 0.11, 0.011], n=3)
    draws = [
        (charts.draw_loss_curves, ([band],), {}),
        (charts.draw_metric, ([band], "loss", "feature_probability", True), {"log_y": True}),
        (charts.draw_feature_vectors, (geometry.feature_vectors(pentagon()),), {"aspect": 2.0}),
        (charts.draw_orientation_hist, (orientation.orientation_stats([1.0, 20.0, 40.0]),), {}),
        (charts.draw_feature_norms, ([1.0, 0.5], [0.0, 1.0]), {}),
        (charts.draw_neuron_counts, ([2, 1],), {}),
    ]
    for draw, args, kwargs in draws:
        plt = Plot()
        draw(plt, *args, **kwargs)
        plt.plotsize(60, 18)
        text = plt.uncolorize(plt.build())
        assert len(text.splitlines()) == 18, draw.__name__


def test_render_is_wider_than_the_terminal_when_asked():
    band = series.Band("x", [1, 10], [1.0, 0.5], [1.0, 0.5], [1.0, 0.5], n=1)
    text = charts.render(charts.draw_loss_curves, [band], width=230, height=14, color=False)
    assert max(len(line) for line in text.splitlines()) == 230


def test_use_color_honours_no_color(monkeypatch: pytest.MonkeyPatch):
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert charts.use_color(Tty()) is True
    assert charts.use_color(io.StringIO()) is False
    monkeypatch.setenv("NO_COLOR", "1")
    assert charts.use_color(Tty()) is False


def test_overlap_heatmap_shows_numbers_or_signed_cells():
    console = Console(record=True, width=80, file=io.StringIO(), color_system=None)
    console.print(overlap_heatmap(geometry.overlap_matrix(pentagon()), 80))
    text = console.export_text()
    assert "1.00" in text and "-0.81" in text and "0.31" in text
    big = np.zeros((60, 60))
    big[0, 1] = big[1, 0] = -1.0
    big[2, 2] = 1.0
    console = Console(record=True, width=80, file=io.StringIO(), color_system=None)
    console.print(overlap_heatmap(big.tolist(), 80))
    text = console.export_text()
    assert "first 38 of 60 features" in text and "--" in text and "++" in text
    console = Console(record=True, width=80, file=io.StringIO(), color_system=None)
    console.print(overlap_heatmap(big[:20, :20].tolist(), 80))  # 3-character cells fit
    rows = console.export_text().splitlines()[2:]
    assert len(rows) == 20 and rows[0].split() == ["0", "·", "--", *["·"] * 18]


def ansi(renderable: object, width: int) -> str:
    """What a truecolor terminal would receive, styles included."""
    console = Console(record=True, width=width, file=io.StringIO(), color_system="truecolor", force_terminal=True)
    console.print(renderable)
    return console.export_text(styles=True)


def one_ulp(matrix: np.ndarray, direction: np.ndarray) -> list[list[float]]:
    """Each entry moved by one unit in the last place of its dtype, up where ``direction`` > 0, down where < 0."""
    target = np.where(direction > 0, np.inf, np.where(direction < 0, -np.inf, matrix)).astype(matrix.dtype)
    return np.nextafter(matrix, target).tolist()


def test_colour_levels_are_a_grid_with_exact_ends():
    assert charts.colour_level(1.0) == charts.colour_level(math.nextafter(1.0, 0.0)) == 1.0
    assert charts.colour_level(-7.0) == -1.0 and charts.colour_level(0.0) == 0.0
    assert charts.colour_level(0.3) == round(0.3 * charts.COLOUR_LEVELS) / charts.COLOUR_LEVELS
    assert charts.interference_colour(0.5) == charts.interference_colour(math.nextafter(0.5, 0.0)) == (255, 200, 70)
    assert charts.interference_colour(2.0) == charts.interference_colour(1.0) == (255, 50, 70)


@pytest.mark.parametrize("width", [80, 16], ids=["numbers", "signs"])
def test_heatmap_colours_do_not_depend_on_the_last_bits(width: int):
    """The diagonal of W^T W for a pentagon holds one number five times; another machine's BLAS may give
    some of them one ulp less (#dc3c3c vs #db3c3c on the largest). Every cell keeps its colour and text."""
    overlaps = np.array(geometry.overlap_matrix(pentagon(1.15)), dtype=np.float32)  # weights are float32
    shown = ansi(heatmap(overlaps.tolist(), width), width)
    assert "48;2;220;60;60" in shown  # the largest overlaps: the top of the scale, rgb(220, 60, 60)
    rng = np.random.default_rng(0)
    for direction in (np.ones_like(overlaps), -np.ones_like(overlaps), rng.choice([-1.0, 1.0], overlaps.shape),
                      np.diag([-1.0, 0, 0, 0, 0])):  # the first diagonal entry alone one ulp short of the scale
        assert ansi(heatmap(one_ulp(overlaps, direction), width), width) == shown, direction


def test_the_report_of_the_fixture_run_does_not_depend_on_the_last_bits(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch):
    """The fixture run with its weights and every number computed from them one ulp off (up, down, either
    way) gives the same report, in colour, and the same W^T W heatmap for every instance."""

    def pictures(nudge: Nudge) -> list[str]:
        (tmp_path / str(nudge)).mkdir()
        monkeypatch.chdir(tmp_path / str(nudge))  # the same relative run folder each time
        run = make_fixture_run(Path("runs"), nudge=nudge)
        texts = []
        for width in (80, 170):
            console = Console(record=True, width=width, file=io.StringIO(), color_system="truecolor",
                              force_terminal=True)
            print_report(console, run)
            texts.append(console.export_text(styles=True))
        texts += [ansi(overlap_heatmap(geometry.overlap_matrix(run.instance_weights(i)["W"].numpy()), 100), 100)
                  for i in range(12)]
        return texts

    exact = pictures(None)
    assert "W^T W of instance" in exact[0] and "\x1b[" in exact[0]
    for nudge in ("up", "down", "mixed"):
        for i, (want, got) in enumerate(zip(exact, pictures(nudge))):
            assert got == want, f"picture {i} changes with the numbers nudged {nudge}"


# --- the report on runs ---------------------------------------------------------------------------


def test_report_of_a_finished_run(run_dir: Path):
    run = Run(run_dir)
    text = report_text(run, width=100)
    for fragment in (run.id, "completed", "training loss", "dims_per_feature", "feature_probability",
                     "orientation of the largest feature", "KS p", "sparsest", "densest", "W^T W of instance",
                     "features per neuron"):
        assert fragment in text, fragment
    assert max(len(line) for line in text.splitlines()) <= 100


@pytest.mark.parametrize("width", [80, 170])
def test_report_fits_its_width(run_dir: Path, width: int):
    text = report_text(Run(run_dir), width=width)
    assert max(len(line.rstrip()) for line in text.splitlines()) <= width
    assert "sparsest" in text


def test_report_width_may_exceed_the_console(run_dir: Path):
    console = Console(record=True, width=80, file=io.StringIO(), color_system=None)
    print_report(console, Run(run_dir), width=170)
    assert max(len(line.rstrip()) for line in console.export_text().splitlines()) > 100
    assert console.width == 80


def test_report_x_must_be_a_swept_parameter(run_dir: Path):
    console = Console(record=True, width=80, file=io.StringIO(), color_system=None)
    with pytest.raises(SpecError, match=r"n_features.*feature_probability"):
        print_report(console, Run(run_dir), x="n_features")
    assert console.export_text() == ""  # the error comes before any output
    assert "feature_probability" in report_text(Run(run_dir), x="feature_probability")


def test_report_without_results_csv_prints_a_message(copy_of_run: Run):
    (copy_of_run.path / "results.csv").unlink()
    text = report_text(copy_of_run)
    assert "results.csv is missing" in flat(text)
    assert "Traceback" not in text


def test_report_without_weights_or_features_keeps_the_rest(copy_of_run: Run):
    shutil.rmtree(copy_of_run.path / "weights")
    (copy_of_run.path / "features.csv").unlink()
    text = report_text(copy_of_run)
    assert "training loss" in text and "orientation of the largest feature" in text
    assert "instance geometry" in text and "no weights" in text


def test_report_of_a_model_without_an_embedding_matrix(run_dir: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(Run, "instance_weights", lambda self, i: {"W1": np.zeros((3, 4)), "b": np.zeros(3)})
    text = report_text(Run(run_dir))
    assert "no feature embedding W" in text and "W^T W" not in text
    assert geometry.embedding({"W": np.zeros((2, 3, 4))}) is None
    assert geometry.embedding({"W": np.ones((5, 2))}).shape == (5, 2)


def test_report_without_config_prints_a_message(copy_of_run: Run):
    (copy_of_run.path / "config.toml").unlink()
    assert "config.toml is missing" in report_text(copy_of_run)


def test_report_of_a_running_run_shows_what_finished(copy_of_run: Run):
    copy_of_run.update_record(status="running", instances_done=3)
    header, rows = copy_of_run.results()
    copy_of_run.write_results(header, rows[:3])  # only the first point finished
    text = report_text(copy_of_run)
    assert "running: showing the 3 of 6 instances that finished" in text
    assert "sparsest" not in text and "densest" in text  # the sparse end has no results yet
    (copy_of_run.path / "results.csv").write_text(",".join(header) + "\n")
    assert "no results yet" in report_text(copy_of_run)


def test_report_of_a_run_without_axes(tmp_path: Path):
    spec = resolve({"model": "relu_output", "params": {**TINY["params"], "steps": 100, "seeds": 2}})
    outcome = run_sweep(spec, tmp_path, run_options())
    text = report_text(Run(outcome.run_dir), width=100)
    assert "single sweep point" in text
    assert "training loss" in text and "only point" in text
    assert "orientation, 2 seeds" in text  # one point: the histogram is drawn as a chart too
    with pytest.raises(SpecError, match="sweeps nothing"):
        report_text(Run(outcome.run_dir), x="dropout")


def test_report_damaged_run_json_is_reported_in_the_header(copy_of_run: Run):
    (copy_of_run.path / "run.json").write_text("{not json")
    text = report_text(copy_of_run)
    assert "damaged" in text and "training loss" in text


def test_cli_report_bad_x_is_one_line_and_exit_2(run_dir: Path):
    result = invoke("report", run_dir, "--x", "lr")
    assert_user_error(result.exit_code, result.stderr, result.stdout, "--x", "feature_probability")


def test_cli_report_width(run_dir: Path):
    result = invoke("report", run_dir, "--width", "90", env={"NO_COLOR": "1"})
    assert result.exit_code == 0, result.stderr
    assert "training loss" in result.stdout
    assert json.loads((run_dir / "run.json").read_text())["status"] == "completed"


def test_best_of_k_keeps_the_lowest_loss_seed_per_point_only_when_asked(run_dir: Path):
    run = Run(run_dir)
    _, rows = run.results()
    every = flat(report_text(run))
    assert "best-of-k" not in every and "3 seeds per point" in every
    best = flat(report_text(run, best_of=0))
    assert "best-of-k selection" in best and "1 seed per point" in best
    lowest = min(r["loss"] for r in rows if r["feature_probability"] == 0.05)
    assert f"{lowest:.3g}" in best


# --- a sweep point whose value does not survive the CSV ---------------------------------------------

THIRD = 0.3333333333333333  # written to results.csv as 0.333333333, which is not the value trained with


@pytest.fixture(scope="module")
def third_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    spec = resolve({**TINY, "params": {**TINY["params"], "seeds": 2}, "sweep": {"feature_probability": [THIRD, 0.1]}})
    outcome = run_sweep(spec, tmp_path_factory.mktemp("third"), run_options())
    assert outcome.status == "completed"
    return Run(outcome.run_dir)


def test_report_shows_a_point_whose_value_the_csv_rounds_in_every_table_and_chart(third_run: Run):
    _, rows = third_run.results()
    assert {r["feature_probability"] for r in rows} == {0.333333333, 0.1}  # 1/3 is not among them
    console = Console(record=True, width=100, file=io.StringIO(), color_system="truecolor")
    print_report(console, third_run)
    text = console.export_text()
    lines = text.splitlines()
    assert summary_points(text) == ["0.333", "0.1"]
    assert any("feature_probability:" in x and "0.333" in x and "0.1" in x for x in lines)  # the loss legend
    start = text.index("(median; bars: IQR over seeds)")
    metric_charts = text[start:text.index("orientation of the largest feature")]
    charted = text.count("(median; bars: IQR over seeds)")
    assert charted >= 5 and metric_charts.count("●") == 2 * charted  # every metric chart: a marker per point
    orientation = [x.split("│")[1].strip() for x in lines if x.count("│") > 5 and "%" in x]
    assert orientation == ["0.333", "0.1"]
    assert "sparsest: instance" in text and "densest: instance" in text and "feature_probability=0.333" in text
    best = report_text(third_run, best_of=0)
    assert summary_points(best) == ["0.333", "0.1"] and "1 seed per point" in flat(best)


def summary_points(text: str) -> list[str]:
    """The first cell of each row of a report's summary table (the table ends with its caption)."""
    lines = text.splitlines()
    table = lines[:next(i for i, x in enumerate(lines) if "median over seeds" in x)]
    return [cells[0] for cells in map(str.split, table) if cells and is_number(cells[0])]


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def test_cli_report_and_json_summary_of_the_rounded_point(third_run: Run):
    result = invoke("report", third_run.path, "--width", "120", env={"NO_COLOR": "1"})
    assert result.exit_code == 0, result.stderr
    assert "densest: instance" in result.stdout and "0.333" in result.stdout
    summary = json_summary(third_run)
    assert [(p["point"], p["feature_probability"], p["seeds"]) for p in summary["points"]] == [
        (0, THIRD, 2), (1, 0.1, 2)]


def test_a_bug_in_a_section_is_never_shown_as_cannot_be_drawn(run_dir: Path, monkeypatch: pytest.MonkeyPatch):
    """Missing or damaged run data costs a section one line; a programming error propagates."""
    def broken(results):
        raise TypeError("a bug")

    monkeypatch.setattr(orientation, "orientation_points", broken)
    with pytest.raises(TypeError, match="a bug"):
        report_text(Run(run_dir))


def test_damaged_data_costs_a_section_one_line(copy_of_run: Run):
    (copy_of_run.path / "curves.csv").write_text("instance,step,loss\n0,1\n")
    text = flat(report_text(copy_of_run))
    assert "loss curves: cannot be drawn: curves.csv line 2 has 2 cells, expected 3" in text
    assert "orientation of the largest feature" in text  # the other sections go on
