"""Run options (engine/options.py): declared once, checked once, the same answer from every entry point.

Each invalid value below must get the same one-line message and exit code 2 from ``toysup run``, ``toysup
resume``, ``toysup tui``, the TUI's worker process and the TUI's form, with nothing written.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from textual.widgets import Input, Select

import toysup
from toysup.engine.errors import SpecError, UserError
from toysup.engine.options import OPTION, OPTIONS, RunOptions, resume_options
from toysup.engine.run.folder import Run
from toysup.engine.runner import run_sweep
from toysup.engine.spec import load
from toysup_tui.app import ToysupApp
from toysup_tui.cli import app as cli_app
from toysup_tui.screens.form import FormScreen, device_choices
from toysup_tui.widgets.param_field import OptionField, option_text

from helpers import TINY_PRESET, assert_user_error, folder_state, invoke

# Option values that every entry point must refuse: by option name, as a user would type them.
INVALID: list[dict[str, str]] = [
    {"device": "tpu"},
    {"device": "cuda:x"},
    {"backend": "slurm"},
    {"address": "head:6379"},  # an address without the ray backend
    {"backend": "ray", "address": "head"},
    {"backend": "ray", "gpus_per_chunk": "0"},
    {"backend": "ray", "gpus_per_chunk": "1.5"},
    {"backend": "ray", "gpus_per_chunk": "nan"},
    {"gpus_per_chunk": "0.5"},  # a GPU share without the ray backend
    {"backend": "ray", "device": "cuda:1"},  # Ray picks the GPU
    {"threads": "0"},
    {"threads": "-2"},
    {"threads": "2.5"},
    {"threads": "many"},
    {"threads": "5000"},
    {"max_memory": "-1"},
    {"max_memory": "0"},
    {"max_memory": "nan"},
    {"max_memory": "inf"},
    {"max_memory": "lots"},
    {"checkpoint_every": "0"},
    {"checkpoint_every": "-1"},
    {"checkpoint_every": "nan"},
    {"checkpoint_every": "inf"},
    {"max_memory": "-1", "checkpoint_every": "0"},  # issue 12: resume accepted this
]
CASES = [pytest.param(values, id="-".join(f"{k}={v}" for k, v in values.items())) for values in INVALID]


def flags(values: dict[str, str]) -> list[str]:
    return [arg for name, text in values.items() for arg in (OPTION[name].flag, text)]


def message(values: dict[str, str]) -> str:
    """What the engine says about these values: every entry point must say exactly this."""
    with pytest.raises(SpecError) as caught:
        RunOptions.from_dict(values)
    return str(caught.value)


# --- the declaration and the object ------------------------------------------------------------


def test_every_option_is_declared_once_with_what_users_see() -> None:
    assert [o.name for o in OPTIONS] == list(RunOptions().to_dict())
    for option in OPTIONS:
        assert option.help and option.range_text() and option.flag == "--" + option.name.replace("_", "-")
        assert option.default is None or option.parse(option.default) == option.default
        assert (option.default is None) == bool(option.automatic)  # an unset option says what it means


def test_the_documented_table_matches_the_declarations() -> None:
    readme = (Path(__file__).parent.parent / "docs" / "guides" / "cli.md").read_text(encoding="utf-8")
    for o in OPTIONS:
        valid = ", ".join(o.choices) if o.kind == "choice" else o.range_text()
        cells = [f"`{o.flag} {o.metavar}`", o.default_text(), valid, o.help]
        row = "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"
        assert row in readme, row


@pytest.mark.parametrize("command, names", [("run", None), ("resume", None), ("tui", None),
                                            ("bench", ["device", "threads", "compile"])])
def test_the_commands_flags_come_from_the_declarations(command: str, names: list[str] | None) -> None:
    click_command = typer.main.get_command(cli_app).commands[command]  # type: ignore[attr-defined]
    declared = {p.name: p for p in click_command.params}
    for option in OPTIONS if names is None else [OPTION[n] for n in names]:
        flag = declared[option.name]
        assert flag.opts == [option.flag] and option.help[:20].lower() in (flag.help or "").lower()


def test_options_round_trip_through_json_and_coerce_text() -> None:
    options = RunOptions.from_dict({"device": "cpu", "threads": "3", "max_memory": "0.25", "checkpoint_every": "60",
                                    "backend": "ray", "address": "ray://head:10001", "gpus_per_chunk": "0.5"})
    assert options.threads == 3 and options.max_memory == 0.25 and options.gpus_per_chunk == 0.5
    assert options.max_memory_bytes == 2**28
    assert RunOptions.from_dict(json.loads(json.dumps(options.to_dict()))) == options
    assert RunOptions.from_dict({"threads": "", "max_memory": "auto", "address": None}) == RunOptions()
    with pytest.raises(SpecError, match="--checkpoint-every is empty: expected a number of seconds"):
        RunOptions.from_dict({"checkpoint_every": " "})
    with pytest.raises(SpecError, match="unknown run option 'thread'"):
        RunOptions.from_dict({"thread": 2})


def test_options_are_checked_however_they_are_made() -> None:
    with pytest.raises(SpecError, match="--threads 0 is out of range"):
        RunOptions(threads=0)
    with pytest.raises(SpecError, match="--max-memory nan is not valid"):
        RunOptions().with_values(max_memory=float("nan"))


def test_resume_keeps_the_runs_own_backend_unless_given() -> None:
    record = {"backend": "ray", "address": "head:6379", "gpus_per_chunk": 0.25}
    assert resume_options({}, record) == RunOptions(backend="ray", address="head:6379", gpus_per_chunk=0.25)
    assert resume_options({"threads": "2"}, record).backend == "ray"
    assert resume_options({"backend": "local"}, record) == RunOptions()
    assert resume_options({}, {"backend": "local", "address": ""}) == RunOptions()
    assert resume_options({}, {}) == RunOptions()  # a run from before backends were recorded


def test_the_python_api_refuses_bad_options_before_writing(tmp_path: Path) -> None:
    """``toysup.run_sweep(options=...)`` takes a RunOptions or a dict of its fields: a wrong one is one UserError
    line, as on the command line, and nothing is written."""
    for options, expected in (({"threads": 0}, "--threads 0 is out of range"),
                              ({"checkpoint_every": "nan"}, "--checkpoint-every nan is not valid"),
                              ({"device": "tpu"}, "--device 'tpu' is not valid"),
                              ({"gpus": 1}, "unknown run option 'gpus': valid: device, backend"),
                              ("cpu", "options must be a RunOptions or a dict of run options, not str")):
        with pytest.raises(UserError) as raised:
            toysup.run_sweep(TINY_PRESET, runs_dir=tmp_path / "runs", options=options, progress=False)
        assert str(raised.value).startswith(expected) and "\n" not in str(raised.value)
    with pytest.raises(UserError, match=r"^device is a run option: pass options=\{'device': \.\.\.\}"):
        toysup.run_sweep(TINY_PRESET, runs_dir=tmp_path / "runs", device="cpu", progress=False)  # the old keyword
    assert not (tmp_path / "runs").exists()


# --- every entry point refuses the same values the same way -------------------------------------


@pytest.mark.parametrize("values", CASES)
def test_run_refuses_bad_options(values: dict[str, str], runs_dir: Path) -> None:
    result = invoke("run", TINY_PRESET, *flags(values), "--runs-dir", runs_dir)
    line = assert_user_error(result.exit_code, result.stderr, result.stdout)
    assert line == f"error: {message(values)}"
    assert not runs_dir.exists()


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A runs directory holding one interrupted run of the tiny preset (stopped before its first chunk)."""
    root = tmp_path_factory.mktemp("stopped") / "runs"
    outcome = run_sweep(load(str(TINY_PRESET)), root, RunOptions(device="cpu"), should_stop=lambda: True)
    assert outcome.status == "interrupted"
    return root


@pytest.mark.parametrize("values", CASES)
def test_resume_refuses_what_run_refuses(values: dict[str, str], stopped_run: Path) -> None:
    before = folder_state(stopped_run)
    result = invoke("resume", "latest", *flags(values), "--runs-dir", stopped_run)
    line = assert_user_error(result.exit_code, result.stderr, result.stdout)
    assert line == f"error: {message(values)}"
    assert folder_state(stopped_run) == before  # run.json untouched


@pytest.mark.parametrize("values", CASES)
def test_tui_refuses_bad_options_before_it_opens(values: dict[str, str], runs_dir: Path) -> None:
    result = invoke("tui", *flags(values), "--runs-dir", runs_dir)
    line = assert_user_error(result.exit_code, result.stderr, result.stdout)
    assert line == f"error: {message(values)}"
    assert not runs_dir.exists()


@pytest.mark.parametrize("values", CASES)
def test_the_detached_trainer_refuses_bad_options(values: dict[str, str], runs_dir: Path, tmp_path: Path) -> None:
    request = {"spec": load(str(TINY_PRESET)).to_toml(), "runs_dir": str(runs_dir), "options": values}
    request_path = tmp_path / "request.json"
    request_path.write_text(json.dumps(request))
    done = subprocess.run([sys.executable, "-m", "toysup_tui.detach", str(request_path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert [json.loads(line) for line in done.stdout.splitlines()] == [{"type": "error", "message": message(values)}]
    assert not runs_dir.exists()


def test_the_form_refuses_bad_options_inline(tmp_path: Path) -> None:
    """Each value the form can be given (selects offer only their choices) gets the CLI's message, inline for a
    field's own value and in the summary for a combination; launch then starts nothing."""
    launched: list[Any] = []

    async def launch(*args: Any) -> None:
        launched.append(args)

    async def scenario() -> None:
        app = ToysupApp(tmp_path / "runs", presets_dir=tmp_path / "presets", options=RunOptions(device="cpu"))
        app.launch = launch  # type: ignore[method-assign,assignment]
        async with app.run_test(size=(80, 24)) as pilot:
            form = FormScreen({"name": "tiny", "model": "relu_output", "params": {"steps": 10}})
            await app.push_screen(form)
            await pilot.pause()
            typed = 0
            for values in INVALID:
                backend = values.get("backend", "local")
                if values.get("device", "cpu") not in device_choices() or backend not in ("local", "ray") or \
                        any(OPTION[name].backend not in ("", backend) for name in values):
                    continue  # not to be had from the form: its selects offer no such value, or the field is hidden
                for name, default in (("backend", "local"), ("device", "cpu")):
                    form.query_one(f"#input-option-{name}", Select).value = values.get(name, default)
                await pilot.pause()
                for option in OPTIONS:
                    if option.kind != "choice" and option.name != "device":
                        field = form.query_one(f"#input-option-{option.name}", Input)
                        field.value = values.get(option.name, option_text(option.default))
                await pilot.pause()
                expected = message(values)
                assert form.problem == expected, values
                assert form.options is None and expected in str(form.query_one("#form-summary").render())
                own = [name for name in values if name not in ("backend", "device")]
                if len(own) == 1:
                    assert form.query_one(f"#option-{own[0]}", OptionField).error == expected  # inline, under the field
                await pilot.press("ctrl+r")
                await pilot.pause()
                typed += 1
            assert typed >= 19 and launched == []
            for option in OPTIONS:
                if option.kind != "choice" and option.name != "device":
                    form.query_one(f"#input-option-{option.name}", Input).value = option_text(option.default)
            form.query_one("#input-option-backend", Select).value = "local"
            await pilot.pause()
            assert form.problem == "" and form.options == RunOptions(device="cpu")

    asyncio.run(scenario())


# --- valid options reach the run ---------------------------------------------------------------


def test_run_and_resume_record_the_options_they_used(stopped_run: Path, tmp_path: Path) -> None:
    result = invoke("run", TINY_PRESET, "--device", "cpu", "--threads", "1", "--max-memory", "0.5",
                    "--checkpoint-every", "60", "--runs-dir", tmp_path / "runs", "-q")
    assert result.exit_code == 0, result.stderr
    record = Run(Path(result.stdout.strip())).record()
    assert record.options == {**RunOptions().to_dict(), "device": "cpu", "threads": 1, "max_memory": 0.5,
                              "checkpoint_every": 60.0}

    root = tmp_path / "copy"
    shutil.copytree(stopped_run, root)
    result = invoke("resume", "latest", "--device", "cpu", "--threads", "1", "--checkpoint-every", "30",
                    "--runs-dir", root, "-q")
    assert result.exit_code == 0, result.stderr
    record = Run(Path(result.stdout.strip())).record()
    assert record.status == "completed" and record.backend == "local"
    assert record.options == {**RunOptions().to_dict(), "device": "cpu", "threads": 1, "checkpoint_every": 30.0}
