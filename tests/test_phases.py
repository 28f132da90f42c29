"""Every phase of a run is visible (ev.Phase): compiling, evaluating and writing, in the engine's events, the
CLI's output, the TUI's live view and the notebook bar of ``toysup.run_sweep``."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest
from rich.console import Console
from textual.app import App, ComposeResult
from textual.widgets import Static
from tui_helpers import make_app, run_async

import toysup
from toysup.engine import events as ev
from toysup.engine import fused
from toysup.engine.models import get_model
from toysup.engine.plan import plan
from toysup.engine.runner import run_sweep
from toysup.engine.train import train_chunk
from toysup_tui.live import LiveRun
from toysup_tui.progress import ProgressSink
from toysup_tui.screens.run import RunScreen
from toysup_tui.widgets.chart import Chart

from helpers import CPU, TINY_PRESET, fixture_spec, invoke, make_spec, run_options

TINY = {"n_features": 5, "n_hidden": 2, "steps": 30, "batch_size": 16, "eval_batch_size": 64}


def phases(events: list[ev.Event]) -> list[str]:
    return [e.label() for e in events if isinstance(e, ev.Phase)]


def test_an_eager_chunk_evaluates_in_counted_parts_and_never_compiles():
    events: list[ev.Event] = []
    chunk = plan(make_spec(TINY), CPU)[0]
    train_chunk(chunk, CPU, emit=events.append)
    assert phases(events) == ["evaluating 0/3", "evaluating 1/3", "evaluating 2/3", "evaluating 3/3"]
    last_step = max(i for i, e in enumerate(events) if isinstance(e, ev.Progress))
    assert isinstance(events[last_step + 1], ev.Phase)  # the evaluation starts after the last step


def test_a_compiled_chunk_says_compiling_around_its_first_step_only(monkeypatch: pytest.MonkeyPatch):
    """The compiler itself is stubbed out (a real compile takes ~20 s): what is tested is when the events come."""
    monkeypatch.setattr(fused, "unavailable_reason", lambda device: None)
    monkeypatch.setattr(get_model("relu_output"), "use_compiled_step", lambda self: None)
    events: list[ev.Event] = []
    train_chunk(plan(make_spec(TINY), CPU)[0], CPU, emit=events.append, step_path=fused.COMPILED)
    assert phases(events)[:3] == ["compiling", "training", "evaluating 0/3"]
    assert isinstance(events[0], ev.Phase) and events[0].phase == "compiling"  # before any step


def test_a_run_writes_each_chunk_after_evaluating_it_and_logs_the_phases(tmp_path: Path):
    events: list[ev.Event] = []
    outcome = run_sweep(make_spec(TINY, {"feature_probability": [1.0, 0.1]}), tmp_path,
                        run_options(max_memory_bytes=1), emit=events.append)  # one instance per chunk: two chunks
    assert outcome.status == "completed"
    chunks = [e.chunk for e in events if isinstance(e, ev.ChunkFinished)]
    assert len(chunks) >= 2
    for chunk in chunks:
        mine = [e for e in events if getattr(e, "chunk", None) == chunk
                and isinstance(e, ev.Phase | ev.ChunkFinished)]
        assert [e.label() if isinstance(e, ev.Phase) else "finished" for e in mine][-2:] == ["writing", "finished"]
    log = (outcome.run_dir / "events.jsonl").read_text().splitlines()
    logged = [ev.from_json(line) for line in log]
    assert phases(logged) == phases(events)
    for chunk in chunks:  # a chunk's held last step is logged before its evaluation, not after
        kinds = [e.type for e in logged if getattr(e, "chunk", None) == chunk]
        assert kinds.index("phase") > max(i for i, k in enumerate(kinds) if k == "progress")


def test_the_piped_cli_output_names_the_evaluating_and_writing_phases(tmp_path: Path):
    result = invoke("run", TINY_PRESET, "--runs-dir", tmp_path / "runs", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "chunk 0: evaluating…" in result.stdout
    assert "chunk 0: writing…" in result.stdout
    assert result.stdout.index("evaluating") < result.stdout.index(" completed: ")  # the summary's end line


@run_async
async def test_the_live_view_names_what_a_chunk_does_between_steps(tmp_path: Path) -> None:
    live = LiveRun(fixture_spec(), requested_device="cpu")
    app = make_app((tmp_path / "runs", tmp_path / "presets"))
    async with app.run_test(size=(100, 30)) as pilot:
        await app.push_screen(RunScreen(live))
        live.apply(ev.RunStarted(run_id="r", run_dir="", name="n", device="cpu", instances=4, chunks=1,
                                 instance_steps=400))
        live.apply(ev.ChunkStarted(chunk=0, instances=[0, 1, 2, 3], steps=100))
        live.apply(ev.Phase(chunk=0, phase="compiling"))
        await pilot.pause(0.6)
        stats = app.screen.query_one("#run-stats", Static)
        assert "chunk 1: compiling…" in str(stats.render())
        live.apply(ev.Phase(chunk=0, phase="training"))
        await pilot.pause(0.6)
        assert "compiling" not in str(stats.render())
        live.apply(ev.Phase(chunk=0, phase="evaluating", done=1, total=3))
        await pilot.pause(0.6)
        assert "chunk 1: evaluating 1/3…" in str(stats.render())


@pytest.mark.parametrize("progress", [True, False])
def test_the_notebook_bar_shows_the_run_unless_turned_off(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          progress: bool):
    run = toysup.run_sweep({"model": "relu_output", "params": TINY}, runs_dir=tmp_path,
                           options={"device": "cpu"}, progress=progress)
    assert run.status == "completed"
    out = capsys.readouterr()
    shown = out.out + out.err
    assert ("sweep: completed" in shown) is progress
    if not progress:
        assert shown == ""


@run_async
async def test_a_chart_says_computing_until_its_first_figure_is_built(tmp_path: Path) -> None:
    """The Geometry tab stood blank for ~5 s on a big run: its charts now say "computing…" meanwhile."""
    release = threading.Event()

    def slow(plt: object, size: object) -> None:
        release.wait(10)

    class One(App[None]):
        def compose(self) -> ComposeResult:
            yield Chart()

    app = One()
    async with app.run_test(size=(60, 20)) as pilot:
        chart = app.query_one(Chart)
        chart.show(slow)
        await pilot.pause(0.2)
        assert chart.busy and str(chart.render()) == "computing…"
        release.set()
        while chart.busy:
            await pilot.pause(0.05)
        assert "computing" not in str(chart.render())


def test_the_terminal_bar_names_the_phase_of_its_chunk():
    console = Console(file=io.StringIO(), force_terminal=True, width=120, color_system=None)
    with ProgressSink(console) as sink:
        sink(ev.RunStarted(run_id="r", run_dir="d", name="n", device="cpu", instances=4, chunks=1,
                           instance_steps=400))
        sink(ev.ChunkStarted(chunk=0, instances=[0, 1, 2, 3], steps=100))
        sink(ev.Progress(chunk=0, step=100, steps=100, instance_steps_done=400, elapsed_s=1.0))
        sink(ev.Phase(chunk=0, phase="evaluating", done=1, total=3))
        assert sink._progress is not None
        assert [t.description for t in sink._progress.tasks] == ["all chunks", "chunk 0: evaluating 1/3"]
