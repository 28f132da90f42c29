"""SVG snapshots of the main screens, at 80x24 and on a larger terminal.

Deterministic by construction: the results come from the fixed fixture run of
helpers.py, the live view from synthetic events, paths are relative to a
temporary working directory, and text cursors do not blink. The same on any
machine: the fixture's weights are exact, and the results screens look the same
when every float computed from them is one ulp off, as another machine's BLAS may
compute it (tested below). After an intended
layout change, look at the new screens and accept them with
``pytest tests/test_tui_snapshots.py --snapshot-update``. (Adding a bundled
preset or a parameter changes the presets and form snapshots too.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from toysup.engine import events as ev
from toysup_tui.app import ToysupApp
from toysup_tui.live import LiveRun
from toysup_tui.screens.form import FormScreen
from toysup_tui.screens.run import RunScreen
from toysup_tui.widgets.chart import Chart

from helpers import FIXTURE_ID, Nudge, fixture_spec, make_fixture_run

WIDE = (140, 42)
RESULTS_TABS = "12345"


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ToysupApp:
    """An app on a runs folder holding the fixture run, shown as the relative path ``runs``."""
    monkeypatch.chdir(tmp_path)
    make_fixture_run(Path("runs"))
    return ToysupApp(Path("runs"), presets_dir=Path("presets"), device="cpu")


async def _settle(pilot: Pilot) -> None:
    """No blinking cursor, and every chart built (they build in a thread)."""
    await pilot.pause(0.3)
    for field in pilot.app.screen.query(Input):
        field.cursor_blink = False
    for _ in range(100):
        if not any(chart.busy for chart in pilot.app.screen.query(Chart)):
            break
        await pilot.pause(0.05)
    await pilot.pause()


def steps(*actions: Callable[[Pilot], Awaitable[Any]] | str) -> Callable[[Pilot], Awaitable[None]]:
    """A run_before that presses keys (strings) or awaits callables in order, then settles the screen."""

    async def run(pilot: Pilot) -> None:
        await pilot.pause(0.3)
        for action in actions:
            if isinstance(action, str):
                await pilot.press(action)
                await pilot.pause(0.2)
            else:
                await action(pilot)
        await _settle(pilot)

    return run


async def open_results(pilot: Pilot) -> None:
    pilot.app.open_results(Path("runs") / FIXTURE_ID)
    await pilot.pause(0.5)


async def open_intro_form(pilot: Pilot) -> None:
    app = pilot.app
    index = next(i for i, e in enumerate(app.screen.entries) if e.name == "tms-intro")
    for _ in range(index):
        await pilot.press("down")
    await pilot.press("enter")
    while not isinstance(app.screen, FormScreen):
        await pilot.pause(0.05)
    await pilot.pause(0.3)


async def type_bad_steps(pilot: Pilot) -> None:
    field = pilot.app.screen.query_one("#input-steps", Input)
    field.focus()
    field.value = "-3"
    await pilot.pause(0.2)


async def show_live_run(pilot: Pilot) -> None:
    """The live view mid-run, fed with synthetic events (no process, fixed numbers)."""
    app = pilot.app
    live = LiveRun(fixture_spec(), requested_device="cpu")
    live.apply(ev.RunStarted(run_id=FIXTURE_ID, run_dir="runs/" + FIXTURE_ID, name="fixture", device="cpu",
                             instances=12, chunks=1, instance_steps=12000))
    live.apply(ev.ChunkStarted(chunk=0, instances=list(range(12)), steps=1000))
    steps_done = [1, 2, 3, 5, 8, 13, 20, 30, 50, 80, 130, 200, 300, 450, 600]
    losses = [[0.02 + (0.1 + 0.05 * (i // 4) + 0.002 * (i % 4)) * 200 / (200 + s) for i in range(12)]
              for s in steps_done]
    live.apply(ev.Progress(chunk=0, step=600, steps=1000, instance_steps_done=7200, elapsed_s=6.0,
                           curve_steps=steps_done, curve_losses=losses))
    app.live = live
    await app.push_screen(RunScreen(live))
    await pilot.pause(1.2)


def test_presets_screen(app: ToysupApp, snap_compare: Any) -> None:
    assert snap_compare(app, run_before=steps())


def test_form_screen(app: ToysupApp, snap_compare: Any) -> None:
    assert snap_compare(app, run_before=steps(open_intro_form))


def test_form_rejects_a_value_inline(app: ToysupApp, snap_compare: Any) -> None:
    assert snap_compare(app, run_before=steps(open_intro_form, type_bad_steps))


def test_live_run_view(app: ToysupApp, snap_compare: Any) -> None:
    assert snap_compare(app, run_before=steps(show_live_run))


def test_results_table(app: ToysupApp, snap_compare: Any) -> None:
    assert snap_compare(app, run_before=steps(open_results))


def test_results_metric_chart(app: ToysupApp, snap_compare: Any) -> None:
    assert snap_compare(app, run_before=steps(open_results, "2"))


def test_results_pentagon(app: ToysupApp, snap_compare: Any) -> None:
    assert snap_compare(app, run_before=steps(open_results, "3"))


def test_results_pentagon_wide(app: ToysupApp, snap_compare: Any) -> None:
    assert snap_compare(app, run_before=steps(open_results, "3"), terminal_size=WIDE)


def test_results_instance_wide(app: ToysupApp, snap_compare: Any) -> None:
    assert snap_compare(app, run_before=steps(open_results, "4"), terminal_size=WIDE)


def test_runs_browser(app: ToysupApp, snap_compare: Any) -> None:
    assert snap_compare(app, run_before=steps("b"))


def test_results_loss_curves_without_colour(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, snap_compare: Any) -> None:
    """NO_COLOR: each loss curve drawn with its own marker, and the legend shows the same markers."""
    monkeypatch.setenv("NO_COLOR", "1")  # read when the app is made
    monkeypatch.chdir(tmp_path)
    make_fixture_run(Path("runs"))
    app = ToysupApp(Path("runs"), presets_dir=Path("presets"), device="cpu")
    assert snap_compare(app, run_before=steps(open_results, "5"))


async def _results_tabs(app: ToysupApp, size: tuple[int, int]) -> list[str]:
    """Each results tab of the fixture run as an SVG screenshot."""
    shots = []
    async with app.run_test(size=size) as pilot:
        await open_results(pilot)
        for key in RESULTS_TABS:
            await pilot.press(key)
            await _settle(pilot)
            shots.append(app.export_screenshot())
    return shots


@pytest.mark.parametrize("size", [(80, 24), WIDE], ids=["80x24", "wide"])
def test_results_screens_do_not_depend_on_the_last_bits_of_the_numbers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: tuple[int, int]) -> None:
    """With the weights and every number computed from them one ulp up, down, or either way, every
    results tab looks exactly as with the exact fixture: the snapshots hold on any machine."""
    shots: dict[Nudge, list[str]] = {}
    for nudge in (None, "up", "down", "mixed"):
        folder = tmp_path / str(nudge)
        folder.mkdir()
        monkeypatch.chdir(folder)
        make_fixture_run(Path("runs"), nudge=nudge)
        app = ToysupApp(Path("runs"), presets_dir=Path("presets"), device="cpu")
        shots[nudge] = asyncio.run(_results_tabs(app, size))
    for nudge, tabs in shots.items():
        for key, exact, moved in zip(RESULTS_TABS, shots[None], tabs):
            assert moved == exact, f"tab {key} changes when the numbers are nudged {nudge}"
