"""The Textual TUI, driven headlessly with App.run_test and Pilot.

Runs launched here are real: a detached process trains a tiny sweep (tens of
steps on a handful of instances), which the app follows through its event log.
Results views open a fixture run folder with fixed contents (see
:func:`helpers.make_fixture_run`), which the snapshot tests share.
"""

from __future__ import annotations

import csv
import io
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rich.console import Console
from textual.widgets import DataTable, Input, Static
from tui_helpers import (
    SIZE,
    make_app,
    open_first_run,
    open_form,
    open_results,
    rendered,
    run_async,
    set_field,
    wait_for,
    wait_for_worker_exit,
)

from toysup.engine.analysis import selection
from toysup.engine.models import get_model
from toysup.engine.options import RunOptions
from toysup.engine.run.export import export
from toysup.engine.run.folder import Run
from toysup.engine.runner import run_sweep
from toysup.engine.spec import resolve
from toysup_tui.app import ToysupApp
from toysup_tui.live import LiveRun
from toysup_tui.render.phase import phase_table
from toysup_tui.screens.compare import CompareScreen
from toysup_tui.screens.confirm import ConfirmScreen, PromptScreen
from toysup_tui.screens.form import FormScreen
from toysup_tui.screens.presets import PresetsScreen
from toysup_tui.screens.quit import QuitRunScreen
from toysup_tui.screens.results import EXPORT_NAME, ResultsScreen
from toysup_tui.screens.run import RunScreen
from toysup_tui.screens.runs import RunsScreen
from toysup_tui.table_filter import compile_filter
from toysup_tui.widgets.chart import Chart

from helpers import FIXTURE_ID, fixture_spec, invoke, make_fixture_run, run_options

TINY_FIELDS = {"steps": "40", "batch_size": "16", "seeds": "2", "eval_batch_size": "64",
               "feature_probability": "1,0.05"}


# --- launching, refusing, cancelling ----------------------------------------------------------


@run_async
async def test_launch_tiny_sweep_from_form_and_see_it_complete(tui_dirs: tuple[Path, Path]) -> None:
    app = make_app(tui_dirs)
    async with app.run_test(size=SIZE) as pilot:
        form = await open_form(pilot, app)
        for name, text in {**TINY_FIELDS, "threads": "1", "max_memory": "0.5", "checkpoint_every": "45"}.items():
            await set_field(pilot, form, name, text)
        summary = str(form.query_one("#form-summary").render())
        assert "2 point(s) × 2 seed(s) = 4 instances" in summary
        assert "160 instance-steps" in summary
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen))
        await wait_for(pilot, lambda: app.live is not None and app.live.finished)
        await pilot.pause(0.4)
        live = app.live
        assert live is not None and live.status == "completed", live.error
        assert live.done_work == live.total_work == 160
        assert [b.label for b in live.loss_bands()] == ["1", "0.05"]
        assert "completed" in str(app.screen.query_one("#run-header").render())
        run = Run(Path(live.run_dir))
        assert run.record().status == "completed"
        # the worker got the form's run options as data, and the run recorded them
        assert run.record().options == {**RunOptions().to_dict(), "device": "cpu", "threads": 1,
                                         "max_memory": 0.5, "checkpoint_every": 45.0}
        _, rows = run.results()
        assert len(rows) == 4 and {r["feature_probability"] for r in rows} == {1.0, 0.05}
        await pilot.press("o")
        await wait_for(pilot, lambda: isinstance(app.screen, ResultsScreen))
        assert len(app.screen.view) == 4
        await wait_for_worker_exit(pilot, app)


@run_async
async def test_invalid_value_is_refused_inline_with_its_message(tui_dirs: tuple[Path, Path]) -> None:
    app = make_app(tui_dirs)
    async with app.run_test(size=SIZE) as pilot:
        form = await open_form(pilot, app)
        await set_field(pilot, form, "steps", "-3")
        field = form.query_one("#field-steps")
        assert field.error == "steps=-3 is out of range: expected an integer in [1, 10000000]"
        assert field.has_class("-invalid")
        assert "steps=-3 is out of range" in str(field.query_one(".param-help").render())
        await set_field(pilot, form, "feature_probability", "log:1:0:5")
        assert "log ranges need positive START and STOP" in form.query_one("#field-feature_probability").error
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert app.live is None and app.attached is None and isinstance(app.screen, FormScreen)
        assert "log ranges need positive START and STOP (and 1 more)" in str(form.query_one("#form-summary").render())
        await set_field(pilot, form, "steps", "300")
        await set_field(pilot, form, "feature_probability", "0.1")
        assert not form.query_one("#field-steps").error
        assert form.spec is not None and form.spec.params["steps"] == 300 and not form.spec.axes


@run_async
async def test_cancelling_a_run_keeps_finished_chunks(tui_dirs: tuple[Path, Path]) -> None:
    app = make_app(tui_dirs)
    async with app.run_test(size=SIZE) as pilot:
        form = await open_form(pilot, app)
        for name, text in {**TINY_FIELDS, "feature_probability": "0.1", "steps": "20,1000000"}.items():
            await set_field(pilot, form, name, text)
        await pilot.press("ctrl+r")
        live = app.live
        assert live is not None
        await wait_for(pilot, lambda: live.chunks_done >= 1 and live.running.get(1, (0, 0))[0] > 0)
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: live.finished, timeout=30)
        await pilot.pause(0.4)
        assert live.status == "interrupted"
        run = Run(Path(live.run_dir))
        (saved,) = run.record().checkpoints  # the chunk in training was saved at the step it stopped at
        assert saved["chunk"] == 1 and 0 < saved["step"] < 1_000_000
        assert f"stopped: kept 1/2 chunks and chunk 1 at step {saved['step']:,}/1,000,000" in \
            str(app.screen.query_one("#run-stats").render())
        assert run.record().status == "interrupted"
        _, rows = run.results()
        assert len(rows) == 2 and {r["instance"] for r in rows} == {0, 1}
        await wait_for_worker_exit(pilot, app)


async def quit_during_a_long_sweep(pilot: Any, app: ToysupApp) -> None:
    """Launch a sweep that would train for a long time, press q while it runs, and wait for the question."""
    form = await open_form(pilot, app)
    for name, text in {**TINY_FIELDS, "steps": "1000000"}.items():
        await set_field(pilot, form, name, text)
    await pilot.press("ctrl+r")
    await wait_for(pilot, lambda: app.live is not None and app.live.status == "running")
    await pilot.press("q")
    await wait_for(pilot, lambda: isinstance(app.screen, QuitRunScreen))


@run_async
async def test_quit_with_a_running_sweep_asks_first(tui_dirs: tuple[Path, Path]) -> None:
    """Quitting asks: stay (escape), stop the sweep and quit (s), or quit and leave it training (l)."""
    app = make_app(tui_dirs)
    async with app.run_test(size=SIZE) as pilot:
        await quit_during_a_long_sweep(pilot, app)
        await pilot.press("escape")
        await pilot.pause()
        assert app.sweep_running and app.is_running
        await pilot.press("q")
        await wait_for(pilot, lambda: isinstance(app.screen, QuitRunScreen))
        await pilot.press("s")
        await wait_for(pilot, lambda: not app.is_running or (app.live is not None and app.live.finished), timeout=30)
    assert app.live is not None and app.live.status == "interrupted"
    assert Run(Path(app.live.run_dir)).record().status == "interrupted"


@run_async
async def test_quitting_can_leave_the_sweep_training(tui_dirs: tuple[Path, Path]) -> None:
    app = make_app(tui_dirs)
    async with app.run_test(size=SIZE) as pilot:
        await quit_during_a_long_sweep(pilot, app)
        await pilot.press("l")
        await wait_for(pilot, lambda: not app.is_running, timeout=10)
    assert app.live is not None
    run = Run(Path(app.live.run_dir))
    try:
        time.sleep(1.0)
        assert run.status() == "running"  # the app is gone; the sweep is not
    finally:
        assert invoke("stop", run.path).exit_code == 0
    assert run.status() == "interrupted"


@run_async
async def test_save_the_edited_sweep_as_a_preset(tui_dirs: tuple[Path, Path]) -> None:
    app = make_app(tui_dirs)
    async with app.run_test(size=SIZE) as pilot:
        form = await open_form(pilot, app)
        await set_field(pilot, form, "name", "my-sweep")
        await set_field(pilot, form, "seeds", "3")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, PromptScreen))  # the name, the form's to start with
        await pilot.press("enter")
        await pilot.pause()
        saved = tui_dirs[1] / "my-sweep.toml"
        assert saved.is_file()
        spec = resolve(tomllib.loads(saved.read_text()))
        assert spec.seeds == 3 and [a.name for a in spec.axes] == ["feature_probability"]
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, PresetsScreen))
        entry = next(e for e in app.screen.entries if e.name == "my-sweep")
        assert entry.source == "user" and entry.spec == spec
        await pilot.press("ctrl+s")  # not on the form: nothing happens
        form = await open_form(pilot, app, "my-sweep")
        await set_field(pilot, form, "seeds", "5")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, PromptScreen))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))  # replacing asks first
        await pilot.press("y")
        await pilot.pause()
        assert resolve(tomllib.loads(saved.read_text())).seeds == 5


@run_async
async def test_changing_the_model_regenerates_the_fields(tui_dirs: tuple[Path, Path]) -> None:
    app = make_app(tui_dirs)
    async with app.run_test(size=SIZE) as pilot:
        form = await open_form(pilot, app)
        assert form.query("#field-dropout")
        form.query_one("#form-model").value = "sae"
        wanted = set(get_model("sae").param_table())
        await wait_for(pilot, lambda: {f.param.name for f in form.fields} == wanted, timeout=20)
        await pilot.pause()
        assert not form.query("#field-dropout")
        assert form.spec is not None and form.spec.model == "sae"


@run_async
async def test_an_adaptive_preset_stays_adaptive_through_the_form(tui_dirs: tuple[Path, Path]) -> None:
    """The form has no fields for [adaptive]; the sweep it launches keeps the preset's."""
    app = make_app(tui_dirs)
    async with app.run_test(size=SIZE) as pilot:
        form = await open_form(pilot, app, preset="tms-phase-adaptive")
        spec = form.resolve_form()
        assert spec.adaptive is not None and spec.adaptive.classify == "phase" and spec.adaptive.rounds == 2


@run_async
async def test_the_form_launches_on_the_chosen_backend(tui_dirs: tuple[Path, Path],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Choosing ray shows the Ray fields (address, GPU share); launch hands the options to the detached run."""
    from toysup_tui import detach
    from toysup_tui.detach import Launch

    launched: list[Launch] = []

    def start(launch: Launch) -> Path:
        launched.append(launch)
        raise OSError("not started in this test")

    monkeypatch.setattr(detach, "start", start)
    app = make_app(tui_dirs)
    async with app.run_test(size=SIZE) as pilot:
        form = await open_form(pilot, app)
        ray_only = [form.query_one("#option-address"), form.query_one("#option-gpus_per_chunk")]
        assert not any(f.display for f in ray_only)  # local: no address to give
        form.query_one("#input-option-backend").value = "ray"
        await pilot.pause()
        assert all(f.display for f in ray_only)
        await set_field(pilot, form, "address", "ray://head:10001")
        await set_field(pilot, form, "gpus_per_chunk", "0.25")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: bool(launched), timeout=20)
    assert launched[0].options == RunOptions(device="cpu", backend="ray", address="ray://head:10001",
                                             gpus_per_chunk=0.25)


# --- results, export, runs browser ------------------------------------------------------------


@run_async
async def test_open_existing_run_results_and_export(tui_dirs: tuple[Path, Path]) -> None:
    run = make_fixture_run(tui_dirs[0])
    app = make_app(tui_dirs)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_first_run(pilot, app)
        assert len(screen.view) == 12
        # the chosen instance starts at the sparsest point's lowest-loss seed: the pentagon
        assert screen.instance == 8
        await pilot.press("3")
        await pilot.pause(0.3)
        assert screen.query_one("#feature-chart").plt is not None
        await pilot.press("e")
        await pilot.pause()
        exported = run.path / EXPORT_NAME
        assert exported.is_file()
        with open(exported, newline="") as f:
            got = list(csv.reader(f))
        with open(run.path / "results.csv", newline="") as f:
            want = list(csv.reader(f))
        assert got[0] == ["run_id", *want[0]] or got[0][:4] == ["run_id", "instance", "point", "seed"]
        assert sorted(got[0][1:]) == sorted(want[0])  # the same columns, the join keys first (export_tables.py)
        order = [want[0].index(c) for c in got[0][1:]]
        booleans = {"true": "1", "false": "0"}
        assert [r[1:] for r in got[1:]] == [[booleans.get(r[k], r[k]) for k in order] for r in want[1:]]
        assert all(r[0] == FIXTURE_ID for r in got[1:])


@run_async
async def test_results_table_sorts_and_filters(tui_dirs: tuple[Path, Path]) -> None:
    run = make_fixture_run(tui_dirs[0])
    app = make_app(tui_dirs)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_results(pilot, app, run.path)
        await pilot.press("slash", *"feature_probability<0.5", "enter")
        await pilot.pause()
        assert len(screen.view) == 8
        assert all(r["feature_probability"] < 0.5 for r in screen.view)
        screen._sort_by("loss")
        assert [r["loss"] for r in screen.view] == sorted(r["loss"] for r in screen.view)
        screen._sort_by("loss")
        assert [r["loss"] for r in screen.view] == sorted((r["loss"] for r in screen.view), reverse=True)


def test_filter_terms() -> None:
    rows = [{"p": 0.1, "collapsed": False, "name": "a"}, {"p": 1.0, "collapsed": True, "name": "b"}]
    assert [r["name"] for r in rows if compile_filter("p<0.5", ["p", "collapsed", "name"])(r)] == ["a"]
    assert [r["name"] for r in rows if compile_filter("collapsed=yes", ["p", "collapsed", "name"])(r)] == ["b"]
    assert [r["name"] for r in rows if compile_filter("B", ["p", "collapsed", "name"])(r)] == ["b"]
    with pytest.raises(ValueError, match="no column 'q'"):
        compile_filter("q<1", ["p"])


@run_async
async def test_runs_browser_deletes_after_confirmation(tui_dirs: tuple[Path, Path]) -> None:
    run = make_fixture_run(tui_dirs[0])
    app = make_app(tui_dirs)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("b")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")
        await pilot.pause()
        assert run.path.exists()
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await pilot.pause()
        assert not run.path.exists()
        assert app.screen.runs == []


@run_async
async def test_export_to_a_chosen_path(tui_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    run = make_fixture_run(tui_dirs[0])
    app = make_app(tui_dirs)
    target = tmp_path / "chosen.csv"
    async with app.run_test(size=SIZE) as pilot:
        await open_results(pilot, app, run.path)
        await pilot.press("E")
        await wait_for(pilot, lambda: isinstance(app.screen, PromptScreen))
        app.screen.query_one(Input).value = str(target)
        await pilot.press("enter")
        await wait_for(pilot, target.exists)
    assert target.read_text().splitlines()[1].startswith(FIXTURE_ID + ",")



async def chart_text(pilot: Any, chart: Chart) -> str:
    await wait_for(pilot, lambda: bool(chart.text) and not chart.busy)
    return chart.text


THIRD = 0.3333333333333333  # written to results.csv as 0.333333333, which is not the value trained with


@pytest.fixture
def third_run(tui_dirs: tuple[Path, Path]) -> Run:
    """A finished sweep over feature_probability = [1/3, 0.1], 2 seeds each."""
    spec = resolve({"name": "third", "model": "relu_output",
                    "params": {"n_features": 5, "n_hidden": 2, "steps": 60, "batch_size": 32, "eval_batch_size": 128,
                               "seeds": 2},
                    "sweep": {"feature_probability": [THIRD, 0.1]}})
    outcome = run_sweep(spec, tui_dirs[0], run_options())
    assert outcome.status == "completed"
    return Run(outcome.run_dir)


@run_async
async def test_a_point_whose_value_the_csv_rounds_shows_in_every_results_tab(
        tui_dirs: tuple[Path, Path], third_run: Run) -> None:
    app = make_app(tui_dirs)
    async with app.run_test(size=(120, 40)) as pilot:
        app.open_results(third_run.path)
        await wait_for(pilot, lambda: isinstance(app.screen, ResultsScreen) and app.screen.instance is not None)
        screen = app.screen
        assert screen.instance in (2, 3)  # the sparsest point's lowest-loss seed
        roles = {r.role: r.point.values for r in selection.representatives(screen.results)}
        assert roles == {"sparsest": {"feature_probability": 0.1}, "densest": {"feature_probability": THIRD}}
        await pilot.press("2")
        chart = screen.query_one("#metric-chart", Chart)
        await chart_text(pilot, chart)
        await wait_for(pilot, lambda: chart.text.count("●") == 2, timeout=30)  # one marker per sweep point
        screen.instance = 0  # a seed of the 1/3 point
        await pilot.press("3")
        orientation = await chart_text(pilot, screen.query_one("#orientation-chart", Chart))
        # Every seed of the 1/3 point that learned something (collapsed ones have no orientation).
        learned = sum(not r["collapsed"] for r in screen.results.rows if r["point"] == 0)
        assert learned >= 1 and f"angle at 0.333, {learned} seed" in orientation
        table = rendered(screen.query_one("#orientation-summary", Static))
        assert [line.split("│")[1].strip() for line in table.splitlines() if "%" in line] == ["0.333", "0.1"]
        assert "feature_probability=0.333" in str(screen.query_one(".instance-info").render())


@run_async
async def test_a_killed_run_shows_killed_in_the_runs_browser_and_results_header(tui_dirs: tuple[Path, Path]) -> None:
    """run.json still says running, but its process is gone: the TUI says killed, as ``toysup runs`` does."""
    run = make_fixture_run(tui_dirs[0])
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        run.update_record(status="running", host=socket.gethostname(), pid=process.pid)
        app = make_app(tui_dirs)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("b")
            await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
            table = app.screen.query_one(DataTable)
            assert table.get_cell(run.id, "status").plain == "running"
            process.kill()
            process.wait()
            # The browser notices a death on its own: run.json does not change when a process is killed.
            await wait_for(pilot, lambda: table.get_cell(run.id, "status").plain == "killed", timeout=10)
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, ResultsScreen))
            header = str(app.screen.query_one("#results-header").render())
            assert "killed" in header and "running" not in header
    finally:
        process.kill()
        process.wait()
    assert "killed" in invoke_runs(tui_dirs[0])


def invoke_runs(root: Path) -> str:
    from typer.testing import CliRunner

    from toysup_tui.cli import app

    result = CliRunner().invoke(app, ["runs", "--runs-dir", str(root)], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0
    return result.stdout


@run_async
async def test_compare_two_runs_on_one_chart(tui_dirs: tuple[Path, Path]) -> None:
    make_fixture_run(tui_dirs[0])
    make_fixture_run(tui_dirs[0], "20240103-030405-fixture")
    app = make_app(tui_dirs)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("b")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        await pilot.press("space", "down", "c")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen))
        await pilot.pause(0.3)
        screen = app.screen
        assert screen.shared_axes == ["feature_probability"] and screen.metrics[0] == "loss"
        legend = str(screen.query_one("#compare-legend").render())
        assert "20240103-030405-fixture" in legend and FIXTURE_ID in legend
        await pilot.press("m")
        assert screen.metric_index == 1


@run_async
async def test_live_view_folds_events_into_chart_data() -> None:
    from toysup.engine import events as ev

    live = LiveRun(fixture_spec())
    live.apply(ev.RunStarted(run_id="r", run_dir="/x", name="fixture", device="cpu", instances=12, chunks=1,
                             instance_steps=12000))
    live.apply(ev.ChunkStarted(chunk=0, instances=list(range(12)), steps=1000))
    live.apply(ev.Progress(chunk=0, step=2, steps=1000, instance_steps_done=24, elapsed_s=1.0, curve_steps=[1, 2],
                           curve_losses=[[0.5 + i for i in range(12)], [0.4 + i for i in range(12)]]))
    bands = live.loss_bands()
    assert [b.label for b in bands] == ["1", "0.1", "0.01"]
    assert bands[0].x == [1, 2] and bands[0].median == [2.0, 1.9]  # seeds 0.5..3.5 -> median 2.0
    assert live.rate == 24.0 and live.eta_s == pytest.approx((12000 - 24) / 24)


def test_live_view_follows_chunks_training_side_by_side() -> None:
    """On a cluster chunks interleave: each chunk's losses go to its own instances, in any order."""
    from toysup.engine import events as ev

    live = LiveRun(fixture_spec())
    live.apply(ev.RunStarted(run_id="r", run_dir="/x", name="fixture", device="ray: 2 x cpu", instances=12,
                             chunks=2, instance_steps=12000))
    live.apply(ev.ChunkStarted(chunk=0, instances=[0, 1, 2, 3, 4, 5], steps=1000))  # points 0 and 1
    live.apply(ev.ChunkStarted(chunk=1, instances=[6, 7, 8, 9, 10, 11], steps=1000))  # points 1 and 2
    assert live.chunk_label() == "2 chunks"
    live.apply(ev.Progress(chunk=1, step=500, steps=1000, instance_steps_done=3000, elapsed_s=1.0, curve_steps=[1],
                           curve_losses=[[9.0] * 6]))
    live.apply(ev.Progress(chunk=0, step=250, steps=1000, instance_steps_done=4500, elapsed_s=1.5, curve_steps=[1],
                           curve_losses=[[1.0] * 6]))
    assert live.chunk_fraction == pytest.approx(0.375)
    bands = {b.label: b for b in live.loss_bands()}
    assert bands["1"].median == [1.0] and bands["0.01"].median == [9.0]
    assert bands["0.1"].n == 4 and bands["0.1"].median == [5.0]  # two seeds from each chunk
    live.apply(ev.ChunkFinished(chunk=1, elapsed_s=2.0))
    assert live.chunks_done == 1 and live.chunk_label() == "chunk 1/2"


@run_async
async def test_command_palette_lists_the_screen_keys(tui_dirs: tuple[Path, Path]) -> None:
    app = make_app(tui_dirs)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        titles = {c.title for c in app.get_system_commands(app.screen)}
        assert {"Edit & launch", "Run as is", "Runs", "Theme", "Keys"} <= titles


@run_async
async def test_theme_toggles_between_dark_and_light(tui_dirs: tuple[Path, Path]) -> None:
    app = make_app(tui_dirs)
    async with app.run_test(size=SIZE) as pilot:
        dark = app.current_theme.dark
        await pilot.press("ctrl+t")
        assert app.current_theme.dark is not dark


def test_export_rows_match_results(tmp_path: Path) -> None:
    run = make_fixture_run(tmp_path / "runs")
    path = tmp_path / "out.csv"
    assert export(run, path) == 12
    got = list(csv.DictReader(io.StringIO(path.read_text())))
    want = list(csv.DictReader(io.StringIO((run.path / "results.csv").read_text())))
    booleans = {"true": "1", "false": "0"}  # exports write booleans as 1/0 (engine/export_tables.py)
    assert [{k: v for k, v in r.items() if k != "run_id"} for r in got] == [
        {k: booleans.get(v, v) for k, v in r.items()} for r in want]



@run_async
async def test_phase_runs_show_the_phase_grid_in_the_metrics_tab(tui_dirs: tuple[Path, Path]) -> None:
    spec = resolve({"name": "phase", "model": "relu_output_phase",
                    "params": {"steps": 150, "batch_size": 64, "eval_batch_size": 128, "seeds": 2},
                    "sweep": {"importance_decay": "0.1,10", "feature_probability": "1,0.05"}})
    outcome = run_sweep(spec, tui_dirs[0], run_options())
    app = make_app(tui_dirs)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_results(pilot, app, outcome.run_dir)
        await pilot.press("2")
        screen.metric_index = screen.metrics.index("phase")
        screen._draw_metrics()
        await pilot.pause()
        grid = screen.query_one("#phase-grid")
        assert grid.display and not screen.query_one("#metric-chart").display
        drawn = Console(width=120, file=io.StringIO(), color_system=None)
        drawn.print(phase_table(screen.results))
        text = drawn.file.getvalue()  # the 2 x 2 grid with the paper's theoretical boundary drawn over it
        assert "feature_probability \\ importance_decay" in text and text.count("/2") == 4
        assert "┃" in text and "theoretical boundaries" in text
        await pilot.press("k")  # the paper's selection: the phase most seeds have, the worst dropped
        await pilot.pause()
        assert screen.phase_selection == "majority" and "majority" in str(screen.query_one("#metric-choice").render())
        shown = Console(width=120, file=io.StringIO(), color_system=None)
        shown.print(grid.content)
        shown_text = shown.file.getvalue()
        assert "the paper's drop-worst mean" in " ".join(shown_text.split())
        assert shown_text.count("/1") == 4  # 2 seeds a point, the worst dropped
        await pilot.press("k")
        assert screen.phase_selection == "best"
        screen.metric_index = screen.metrics.index("loss")
        screen._draw_metrics()
        await pilot.pause()
        assert not grid.display and screen.query_one("#metric-chart").display


@run_async
async def test_geometry_steps_through_weight_snapshots(tui_dirs: tuple[Path, Path]) -> None:
    spec = resolve({"name": "snaps", "model": "relu_output",
                    "params": {"steps": 200, "batch_size": 64, "eval_batch_size": 128, "snapshots": 3,
                               "feature_probability": 0.05}})
    outcome = run_sweep(spec, tui_dirs[0], run_options())
    app = make_app(tui_dirs)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_results(pilot, app, outcome.run_dir)
        await pilot.press("3")
        await pilot.pause()
        final, _ = screen._instance_weights()
        assert screen._snapshot_steps() == [0, 1, 14, 200]
        await pilot.press("t")
        await pilot.pause()
        assert screen.snapshot == 0 and "step 0" in screen._instance_caption()
        initial, _ = screen._instance_weights()
        assert not np.allclose(initial, final)  # the initial weights, not the trained ones
        for _ in range(4):
            await pilot.press("t")
        await pilot.pause()
        assert screen.snapshot is None and "final" in screen._instance_caption()


def test_the_first_time_estimate_is_within_2x_of_the_measured_runs(tmp_path: Path) -> None:
    """With no run to learn from, the form's estimate against `toysup run PRESET --threads 1` measured on the
    shared 2-core CPU (process wall time; docs/guides/tui.md): within 2x of each, and it grows with the work
    where the old per-instance-step figure did not (abs-value's 10 instances cost as much as tms-intro's 56)."""
    import socket

    from toysup.engine.spec import load
    from toysup_tui.estimate import estimate_seconds, measured_speed, training_seconds

    speed = measured_speed(tmp_path / "no-runs-yet")
    assert "rough guess" in speed.basis and speed.scale == 1.0
    measured = {("tms-intro",): 12.8, ("abs-value",): 12.6, ("compute-functions",): 8.2,
                ("tms-intro", "seeds=64"): 73.1}
    for (name, *sets), seconds in measured.items():
        assert 0.5 <= estimate_seconds(load(name, sets), speed) / seconds <= 2.0, name
    # A finished run here twice as slow as the model makes every estimate's modelled part twice as long.
    run = make_fixture_run(tmp_path / "runs")
    run.update_record(host=socket.gethostname(), wall_time_s=2 * training_seconds(run.spec()))
    here = measured_speed(tmp_path / "runs")
    assert here.scale == pytest.approx(2.0) and run.id in here.basis
