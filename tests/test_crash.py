"""Crash reports: a bug in the CLI or the TUI leaves a report file and one line, exit 1, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Static
from tui_helpers import SIZE, make_app, run_async

from toysup_tui.app import ToysupApp

from helpers import invoke

SECRET = "a-local-value-that-must-not-be-reported"


def planted_bug(*args: object, **kwargs: object) -> None:
    secret = SECRET  # a local value: the report names the line, never the value
    raise RuntimeError(f"planted bug near {len(secret)}")


def reported(line: str) -> str:
    """The report file the one line names, read."""
    assert line.startswith("error: toysup crashed on an unexpected RuntimeError; report written to ")
    path = Path(line.split("report written to ", 1)[1].split(" (please", 1)[0])
    return path.read_text(encoding="utf-8")


def test_a_bug_in_a_command_is_one_line_and_a_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from toysup.engine.run import layout

    monkeypatch.setenv("TOYSUP_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setattr(layout, "runs_dir", planted_bug)
    result = invoke("runs", "--status", "completed")
    assert result.exit_code == 1
    assert result.stdout == "" and len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr
    text = reported(result.stderr.strip())
    assert str(tmp_path / "state" / "crashes") in result.stderr
    assert "command: toysup runs --status completed" in text
    assert "Traceback (most recent call last)" in text and "RuntimeError: planted bug near 39" in text
    assert "in planted_bug" in text and SECRET not in text
    for name in ("python:", "toysup:", "torch:", "textual:"):
        assert f"\n{name} " in text


def test_a_user_error_is_still_one_line_and_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOYSUP_STATE_DIR", str(tmp_path / "state"))
    result = invoke("report", "no-such-run", "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 2 and result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "state").exists()  # no crash report for a user's mistake


class BrokenScreen(Screen[None]):
    def compose(self) -> ComposeResult:
        yield Static("about to fail")

    def on_mount(self) -> None:
        planted_bug()


@run_async
async def test_a_bug_in_a_screen_ends_the_app_with_a_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            tui_dirs: tuple[Path, Path]) -> None:
    monkeypatch.setenv("TOYSUP_STATE_DIR", str(tmp_path / "state"))
    app = make_app(tui_dirs)
    with pytest.raises(RuntimeError, match="planted bug"):  # Pilot re-raises it, so a crashing test still fails
        async with app.run_test(size=SIZE) as pilot:
            await app.push_screen(BrokenScreen())
            await pilot.pause()
    assert app.return_code == 1 and app.crash_report is not None
    text = app.crash_report.read_text(encoding="utf-8")
    assert "RuntimeError: planted bug" in text and "in on_mount" in text and "textual: " in text


def test_toysup_tui_prints_one_line_after_a_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole path: the app (headless here) crashes, exits, and the command prints the line, exit 1."""
    monkeypatch.setenv("TOYSUP_STATE_DIR", str(tmp_path / "state"))
    run = ToysupApp.run
    monkeypatch.setattr(ToysupApp, "get_default_screen", lambda self: BrokenScreen())
    monkeypatch.setattr(ToysupApp, "run", lambda self, **kw: run(self, headless=True, size=SIZE))
    result = invoke("tui", "--runs-dir", tmp_path / "runs", "--device", "cpu")
    assert result.exit_code == 1, result.output
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.output
    assert "RuntimeError: planted bug" in reported(result.stderr.strip())
