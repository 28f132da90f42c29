"""User presets and config.toml: one resolution for `toysup run NAME`, the TUI and toysup.run_sweep, a clear
rule when names clash, and `toysup config` saying where each setting comes from."""

from __future__ import annotations

import json
import tomllib
import warnings
from pathlib import Path
from typing import Any

import pytest
from tui_helpers import SIZE, make_app, run_async, set_field, wait_for

from toysup.engine import preset_sources, settings
from toysup.engine.errors import UserError
from toysup.engine.run.folder import Run
from toysup.engine.spec import load
from toysup_tui.screens.confirm import ConfirmScreen, PromptScreen
from toysup_tui.screens.form import FormScreen
from toysup_tui.screens.presets import PresetsScreen

from helpers import TINY_PRESET, assert_user_error, invoke, run_toysup


async def open_tiny_form(pilot: Any, app: Any, name: str = "tiny", edit: bool = True) -> FormScreen:
    """The form with the tiny preset, then edited as a user would (40 steps instead of 200)."""
    data = {**tomllib.loads(TINY_PRESET.read_text()), "name": name}
    await app.push_screen(FormScreen(data))
    await wait_for(pilot, lambda: isinstance(app.screen, FormScreen))
    form = app.screen
    if edit:
        await set_field(pilot, form, "steps", "40")
    return form


@pytest.fixture
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty config directory of this test's own (config.toml and presets/ in it)."""
    path = tmp_path / "config"
    (path / "presets").mkdir(parents=True)
    monkeypatch.setenv("TOYSUP_CONFIG_DIR", str(path))
    preset_sources._warned.clear()
    return path


@run_async
async def test_a_preset_saved_in_the_tui_runs_with_toysup_run(tmp_path: Path, config_dir: Path) -> None:
    runs, presets = tmp_path / "runs", config_dir / "presets"
    app = make_app((runs, presets))
    async with app.run_test(size=SIZE) as pilot:
        await open_tiny_form(pilot, app)
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, PromptScreen))  # the name is asked for
        await pilot.press("ctrl+u", "end", "ctrl+u", *"bad name!", "enter")
        await pilot.pause()
        assert not list(presets.iterdir())  # refused: a name is a file name and what `toysup run` takes
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, PromptScreen))
        await pilot.press("ctrl+u", "end", "ctrl+u", *"my-tiny", "enter")
        await wait_for(pilot, lambda: (presets / "my-tiny.toml").is_file())
    listed = invoke("presets", env={"COLUMNS": "200"})
    assert listed.exit_code == 0
    assert any(line.split()[:2] == ["my-tiny", "user"] for line in listed.stdout.splitlines()), listed.stdout
    result = invoke("run", "my-tiny", "--runs-dir", runs, "--device", "cpu", "--quiet")
    assert result.exit_code == 0, result.stderr
    run = Run(Path(result.stdout.strip()))
    assert run.status() == "completed"
    spec = run.spec()
    assert spec.name == "my-tiny" and spec.params["steps"] == 40 and spec.n_instances == 4
    assert [a.values for a in spec.axes] == [(1.0, 0.1)]


@run_async
async def test_saving_under_a_bundled_name_asks_before_shadowing_it(tmp_path: Path, config_dir: Path) -> None:
    presets = config_dir / "presets"
    app = make_app((tmp_path / "runs", presets))
    async with app.run_test(size=SIZE) as pilot:
        await open_tiny_form(pilot, app, name="tms-intro", edit=False)
        for answer in ("n", "y"):
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: isinstance(app.screen, PromptScreen))
            assert app.screen.query_one("#prompt-input").value == "tms-intro"  # the form's name to start with
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            assert "bundled:tms-intro" in app.screen.question
            await pilot.press(answer)
            await pilot.pause()
            assert (presets / "tms-intro.toml").exists() == (answer == "y")
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, PresetsScreen))
        shadowed = [e for e in app.screen.entries if e.name == "tms-intro"]
        assert [(e.source, e.shadowed_by) for e in shadowed] == [("bundled", "user"), ("user", "")]


def test_name_clashes_resolve_project_over_user_over_bundled_and_warn_once(
        tmp_path: Path, config_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tiny = TINY_PRESET.read_text()
    (config_dir / "presets" / "tms-intro.toml").write_text(tiny.replace('name = "tiny"', 'name = "mine"'))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert load("tms-intro").name == "mine"
        assert load("tms-intro").name == "mine"
    assert len(caught) == 1 and caught[0].category is preset_sources.PresetShadowed  # once per name
    assert "bundled:tms-intro" in str(caught[0].message)
    assert load("bundled:tms-intro").model == "relu_output" and load("bundled:tms-intro").name == "tms-intro"
    project = tmp_path / "project"
    (project / "presets").mkdir(parents=True)
    (project / "presets" / "tms-intro.toml").write_text(tiny.replace('name = "tiny"', 'name = "ours"'))
    monkeypatch.chdir(project)
    with warnings.catch_warnings(record=True):
        assert load("tms-intro").name == "ours"
    assert load("user:tms-intro").name == "mine"
    with pytest.raises(UserError, match="no user preset 'nothing'"):
        load("user:nothing")
    listed = invoke("presets", env={"COLUMNS": "200"})
    sources = [line.split("  ")[1:3] for line in listed.stdout.splitlines() if line.strip().startswith("tms-intro")]
    assert len(sources) == 3, listed.stdout
    dry = invoke("run", "tms-intro", "--dry-run", "--json")
    assert dry.exit_code == 0 and json.loads(dry.stdout)["name"] == "ours"


def test_a_real_process_warns_in_one_line_and_runs_the_winner(tmp_path: Path, config_dir: Path) -> None:
    (config_dir / "presets" / "abs-value.toml").write_text(TINY_PRESET.read_text())
    done = run_toysup("run", "abs-value", "--dry-run", env={"TOYSUP_CONFIG_DIR": str(config_dir)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("tiny (relu_output)")
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("warning: preset 'abs-value' resolves to the user one") and "bundled:abs-value" in line


def test_run_sweep_resolves_names_as_the_command_line_does(tmp_path: Path, config_dir: Path) -> None:
    import toysup

    (config_dir / "presets" / "mine.toml").write_text(TINY_PRESET.read_text())
    (config_dir / "config.toml").write_text(f'runs_dir = "{tmp_path / "configured"}"\ndevice = "cpu"\n')
    run = toysup.run_sweep("mine", params={"steps": 20})
    assert run.status == "completed" and run.path.parent == tmp_path / "configured"
    assert run.info["device"] == "cpu"


def test_config_shows_each_value_and_where_it_came_from(tmp_path: Path, config_dir: Path) -> None:
    (config_dir / "config.toml").write_text(f'runs_dir = "{tmp_path / "r"}"\nthreads = 3\ncompile = "off"\n')
    result = invoke("config", "--json", "--threads", "2", env={"TOYSUP_COMPILE": "on"})
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    found = {k: (v["value"], v["source"].split(" ")[0]) for k, v in data["settings"].items()}
    assert found["threads"] == ("2", "flag")
    assert found["compile"] == ("on", "environment")
    assert found["runs_dir"] == (str(tmp_path / "r"), "file")
    assert found["device"] == ("auto", "default")
    assert data["presets_dir"] == str(config_dir / "presets")
    assert settings.run_options({}).threads == 3 and settings.run_options({}).compile == "off"
    shown = invoke("config").stdout
    threads = next(line for line in shown.splitlines() if "threads" in line)
    assert [cell.strip() for cell in threads.split("│")][1:4] == ["threads", "3", "file"]


def test_config_file_sets_the_runs_directory_and_run_options(tmp_path: Path, config_dir: Path) -> None:
    root = tmp_path / "configured"
    (config_dir / "config.toml").write_text(f'runs_dir = "{root}"\ndevice = "cpu"\nthreads = 1\n')
    result = invoke("run", TINY_PRESET, "--quiet", "-s", "steps=20")
    assert result.exit_code == 0, result.stderr
    run_dir = Path(result.stdout.strip())
    assert run_dir.parent == root
    info = json.loads((run_dir / "run.json").read_text())
    assert info["device"] == "cpu"
    assert invoke("runs").stdout.count(run_dir.name) == 1  # found again without --runs-dir


@pytest.mark.parametrize(("text", "fragments"), [
    ("threads = 0\n", ["--threads 0", "config.toml"]),
    ("devise = 'cpu'\n", ["unknown setting 'devise'", "config.toml"]),
    ("device = \n", ["invalid TOML", "config.toml"]),
])
def test_a_bad_config_file_is_one_line_naming_it(config_dir: Path, text: str, fragments: list[str]) -> None:
    (config_dir / "config.toml").write_text(text)
    result = invoke("run", TINY_PRESET, "--dry-run")
    assert_user_error(result.exit_code, result.stderr, result.stdout, *fragments)


def test_saved_preset_file_round_trips(config_dir: Path) -> None:
    from toysup_tui.user_presets import save_preset

    path = save_preset(load(str(TINY_PRESET)), config_dir / "presets", "renamed")
    assert tomllib.loads(path.read_text())["name"] == "renamed"
    assert load("renamed") == load(str(TINY_PRESET)).__class__(**{**load(str(TINY_PRESET)).__dict__,
                                                                   "name": "renamed"})
