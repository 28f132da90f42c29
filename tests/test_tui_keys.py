"""Keys a newcomer finds: ``?`` lists the screen's own keys first, the palette runs every action, escape
closes the innermost thing, tabs switch after a filter, the filter takes the headers as shown, the form
asks before throwing edits away and jumps to any field, and a stopped run resumes from its results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.command import CommandPalette
from textual.widgets import Input
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

from toysup.engine.models import get_model
from toysup.engine.options import OPTIONS
from toysup.engine.run.folder import Run
from toysup.engine.runner import run_sweep
from toysup_tui.live import LiveRun
from toysup_tui.screens.compare import CompareScreen
from toysup_tui.screens.confirm import ConfirmScreen
from toysup_tui.screens.presets import PresetsScreen
from toysup_tui.screens.run import RunScreen
from toysup_tui.screens.runs import RunsScreen
from toysup_tui.table_filter import compile_filter
from toysup_tui.widgets.keys import EVERYWHERE, KeysPanel, key_sections, own_bindings

from helpers import fixture_spec, make_fixture_run, make_spec, run_options


def own_descriptions(screen: Any) -> list[str]:
    """The screen's own bindings' descriptions, one per action, in declaration order, where the key works now."""
    active = {(a.binding.key, a.binding.action) for a in screen.active_bindings.values() if a.node is screen}
    out: list[str] = []
    for binding in own_bindings(screen):
        if (binding.key, binding.action) in active and binding.description not in out:
            out.append(binding.description)
    return out


async def palette(pilot: Any, app: Any, query: str) -> None:
    """Open the command palette, search, and run the best match."""
    await pilot.press("ctrl+p")
    await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette))
    await pilot.press(*query)
    await pilot.pause(0.5)
    await pilot.press("enter")
    await wait_for(pilot, lambda: not isinstance(app.screen, CommandPalette))
    await pilot.pause()


# --- ? ------------------------------------------------------------------------------------------------------


@run_async
async def test_keys_panel_lists_the_screens_own_keys_first(tui_dirs: tuple[Path, Path]) -> None:
    run = make_fixture_run(tui_dirs[0])
    app = make_app(tui_dirs)
    async with app.run_test(size=SIZE) as pilot:
        for opens_results in (False, True):
            screen = await open_results(pilot, app, run.path) if opens_results else app.screen
            await pilot.press("question_mark")
            await wait_for(pilot, lambda s=screen: bool(s.query(KeysPanel)))
            await pilot.pause()
            sections = key_sections(screen)
            title, rows = sections[0]
            assert title == screen.title
            assert [r.description for r in rows] == own_descriptions(screen)
            assert sections[1][0] == EVERYWHERE and "Quit" in [r.description for r in sections[1][1]]
            text = rendered(screen.query_one("#keys-table"))
            lines = [line.strip() for line in text.splitlines() if line.strip()]
            assert lines[0] == screen.title
            assert lines[1].split(None, 1)[1] == rows[0].description  # key, then what it does
            # Escape closes the panel first, and only the panel.
            await pilot.press("escape")
            await pilot.pause()
            assert not screen.query(KeysPanel) and app.screen is screen
        results_rows = key_sections(app.screen)[0][1]
        assert results_rows[0].keys == "e" and "Cursor up" not in [r.description for r in results_rows]


@run_async
async def test_f1_shows_the_forms_keys_where_question_mark_is_typed(tui_dirs: tuple[Path, Path]) -> None:
    app = make_app(tui_dirs)
    async with app.run_test(size=SIZE) as pilot:
        form = await open_form(pilot, app)
        await pilot.press("f1")
        await wait_for(pilot, lambda: bool(form.query(KeysPanel)))
        title, rows = key_sections(form)[0]
        assert title == form.title and [r.description for r in rows][:3] == ["Launch", "Save preset", "Back"]
        await pilot.press("escape")  # closes the panel; nothing was edited, and the form stays
        await pilot.pause()
        assert app.screen is form and not form.query(KeysPanel)


# --- the command palette ----------------------------------------------------------------------------------


@run_async
async def test_the_palette_finds_a_screens_action_and_runs_it(tui_dirs: tuple[Path, Path]) -> None:
    run = make_fixture_run(tui_dirs[0])
    app = make_app(tui_dirs)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_results(pilot, app, run.path)
        titles = {c.title for c in app.get_system_commands(screen)}
        # every action the screen declares, those of other tabs too, and the app's
        assert {"Export", "Export to…", "Metric", "Prev metric", "X axis", "Loss tab", "Reload", "Back", "Presets",
                "Runs", "Keys"} <= titles
        assert "Resume" not in titles  # a completed run
        await palette(pilot, app, "loss tab")
        assert app.screen is screen and screen._active_tab() == "loss"


@run_async
async def test_the_form_palette_has_the_app_actions_its_letter_keys_cannot_run(tui_dirs: tuple[Path, Path]) -> None:
    app = make_app(tui_dirs)
    async with app.run_test(size=SIZE) as pilot:
        form = await open_form(pilot, app)
        titles = {c.title for c in app.get_system_commands(form)}
        assert {"Launch", "Save preset", "Runs", "Back", "Keys"} <= titles
        await palette(pilot, app, "runs")
        assert isinstance(app.screen, RunsScreen)


# --- escape, tabs and the filter -----------------------------------------------------------------------


@run_async
async def test_escape_closes_the_filter_bar_then_the_results(tui_dirs: tuple[Path, Path]) -> None:
    run = make_fixture_run(tui_dirs[0])
    app = make_app(tui_dirs)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_first_run(pilot, app)
        box = screen.query_one("#results-filter", Input)
        for submit in (False, True):  # typing in the bar, or applied and back in the table
            await pilot.press("slash", *"p<0.5", *(["enter"] if submit else []))
            await pilot.pause()
            assert box.display and len(screen.view) == 8
            await pilot.press("escape")
            await pilot.pause()
            assert app.screen is screen and not box.display
            assert len(screen.view) == 12 and screen.filter_text == ""
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        assert run.path.exists()


@run_async
async def test_escape_goes_back_from_every_screen_and_never_leaves_the_first(tui_dirs: tuple[Path, Path]) -> None:
    make_fixture_run(tui_dirs[0])
    make_fixture_run(tui_dirs[0], "20240103-030405-fixture")
    app = make_app(tui_dirs)
    async with app.run_test(size=SIZE) as pilot:
        presets = app.screen
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is presets
        await pilot.press("b")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        runs = app.screen
        await pilot.press("space", "down", "c")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen))
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is runs)
        await app.push_screen(RunScreen(LiveRun(fixture_spec())))
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is runs)
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is presets)


@run_async
async def test_number_keys_switch_tabs_after_filtering(tui_dirs: tuple[Path, Path]) -> None:
    run = make_fixture_run(tui_dirs[0])
    app = make_app(tui_dirs)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_results(pilot, app, run.path)
        await pilot.press("slash", *"p<0.5", "enter")
        await pilot.pause()
        for key, tab in (("2", "metrics"), ("1", "table"), ("5", "loss"), ("3", "geometry"), ("1", "table")):
            await pilot.press(key)
            await pilot.pause(0.2)
            assert screen._active_tab() == tab, key
        assert len(screen.view) == 8  # the filter still holds


def test_the_filter_takes_column_headers_as_shown() -> None:
    short = {"feature_probability": "p", "dims_per_feature": "D*", "features_represented": "repr"}
    columns = ["instance", "feature_probability", "dims_per_feature", "features_represented", "loss"]
    rows = [{"instance": i, "feature_probability": p, "dims_per_feature": d, "features_represented": r, "loss": 0.1}
            for i, (p, d, r) in enumerate([(1.0, 0.5, 2), (0.1, 1.0, 4), (0.01, 0.4, 5)])]

    def kept(text: str) -> list[int]:
        keep = compile_filter(text, columns, short)
        return [r["instance"] for r in rows if keep(r)]

    assert kept("p<0.5") == kept("feature_probability<0.5") == [1, 2]
    assert kept("D*>=1") == kept("dims_per_feature>=1") == [1]
    assert kept("repr>3 p<0.05") == [2]
    try:
        compile_filter("q<1", columns, short)
    except ValueError as exc:
        assert "no column 'q'" in str(exc) and "feature_probability (p)" in str(exc)
    else:
        raise AssertionError("an unknown column was accepted")


@run_async
async def test_the_results_filter_takes_short_headers(tui_dirs: tuple[Path, Path]) -> None:
    run = make_fixture_run(tui_dirs[0])
    app = make_app(tui_dirs)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_results(pilot, app, run.path)
        views: dict[str, list[int]] = {}
        for text in ("p<0.5 D*>0.4", "feature_probability<0.5 dims_per_feature>0.4"):
            box = screen.query_one("#results-filter", Input)
            await pilot.press("slash", "ctrl+u", *text, "enter")
            await pilot.pause()
            assert box.value == text
            views[text] = [r["instance"] for r in screen.view]
        short, full = views.values()
        assert short == full and len(short) == 4  # the p=0.1 seeds: D* 0.5 (p=0.01: 0.31)
        assert "[red]" not in str(screen.query_one("#table-status").content)


# --- the form -----------------------------------------------------------------------------------------------


@run_async
async def test_the_form_asks_before_escape_throws_edits_away(tui_dirs: tuple[Path, Path]) -> None:
    app = make_app(tui_dirs)
    async with app.run_test(size=SIZE) as pilot:
        form = await open_form(pilot, app)
        await pilot.press("escape")  # nothing edited: no question
        await wait_for(pilot, lambda: isinstance(app.screen, PresetsScreen))
        form = await open_form(pilot, app)
        await set_field(pilot, form, "steps", "123")
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("escape")  # the dialog's escape: keep editing
        await wait_for(pilot, lambda: app.screen is form)
        assert form.query_one("#input-steps", Input).value == "123"
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: isinstance(app.screen, PresetsScreen))


@run_async
async def test_the_field_jump_reaches_every_field(tui_dirs: tuple[Path, Path]) -> None:
    app = make_app(tui_dirs)
    async with app.run_test(size=SIZE) as pilot:
        form = await open_form(pilot, app)
        names = [name for name, _ in form.jump_targets()]
        shown = [o.name for o in OPTIONS if not o.backend]
        assert names == ["name", "description", "model", *get_model("relu_output").param_table(), *shown]
        commands = {c.title for c in app.get_system_commands(form)}
        assert {f"Field: {n}" for n in names} <= commands
        last = shown[-1]
        await palette(pilot, app, last)
        assert app.focused is form.query_one(f"#input-option-{last}")
        await palette(pilot, app, "feature_probability")  # a swept field
        assert app.focused is form.query_one("#input-feature_probability")
        await palette(pilot, app, "description")
        assert app.focused is form.query_one("#form-description")


# --- resume from the results ------------------------------------------------------------------------------


@run_async
async def test_an_interrupted_runs_results_resume_with_one_key(tui_dirs: tuple[Path, Path]) -> None:
    spec = make_spec({"n_features": 5, "n_hidden": 2, "steps": 30, "batch_size": 16, "eval_batch_size": 64,
                      "seeds": 2}, {"feature_probability": [1.0, 0.1, 0.01]})
    budget = 2 * get_model("relu_output").bytes_per_instance(spec.instances()[0].config)  # 2 instances a chunk
    finished: list[int] = []
    cut = run_sweep(spec, tui_dirs[0], run_options(max_memory_bytes=budget), should_stop=lambda: bool(finished),
                    emit=lambda e: finished.append(1) if type(e).__name__ == "ChunkFinished" else None)
    assert cut.status == "interrupted"
    run = Run(cut.run_dir)
    app = make_app(tui_dirs)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_results(pilot, app, run.path)
        assert "R resumes" in str(screen.query_one("#results-header").render())
        assert "resume" in {a.binding.action for a in screen.active_bindings.values()}
        await pilot.press("R")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen))
        await wait_for(pilot, lambda: app.live is not None and app.live.status == "completed", timeout=120)
        await wait_for_worker_exit(pilot, app)
    assert run.status() == "completed" and run.record().instances_done == spec.n_instances


@run_async
async def test_a_completed_runs_results_do_not_offer_resume(tui_dirs: tuple[Path, Path]) -> None:
    run = make_fixture_run(tui_dirs[0])
    app = make_app(tui_dirs)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_results(pilot, app, run.path)
        assert "resumes" not in str(screen.query_one("#results-header").render())
        await pilot.press("R")
        await pilot.pause()
        assert app.screen is screen and app.live is None
