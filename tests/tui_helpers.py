"""Shared helpers of the TUI tests (Pilot): the app, waits, and the form's fields, as a user drives them."""

from __future__ import annotations

import asyncio
import functools
import io
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from textual.widgets import Static

from toysup.engine.options import OPTION
from toysup_tui.app import ToysupApp
from toysup_tui.screens.form import FormScreen
from toysup_tui.screens.presets import PresetsScreen
from toysup_tui.screens.results import ResultsScreen
from toysup_tui.screens.runs import RunsScreen

SIZE = (80, 24)


def run_async(test: Callable[..., Any]) -> Callable[..., Any]:
    """Run an async test on its own event loop (no pytest-asyncio needed)."""

    @functools.wraps(test)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return asyncio.run(test(*args, **kwargs))

    return wrapper


def make_app(dirs: tuple[Path, Path]) -> ToysupApp:
    return ToysupApp(dirs[0], presets_dir=dirs[1], device="cpu")


async def wait_for(pilot: Any, condition: Callable[[], bool], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the app")
        await pilot.pause(0.05)


def process_gone(run_dir: Path) -> bool:
    """Whether the process that trained a run (it is detached: not the app's child) has exited."""
    pid = json.loads((run_dir / "run.json").read_text())["pid"]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def wait_for_worker_exit(pilot: Any, app: ToysupApp) -> None:
    """The run reports its end just before its process exits; let it exit before the test's folder goes."""
    if app.live is not None and app.live.run_dir:
        await wait_for(pilot, lambda: process_gone(Path(app.live.run_dir)), timeout=30)  # type: ignore[union-attr]
    await pilot.pause(0.2)


async def open_form(pilot: Any, app: ToysupApp, preset: str = "tms-intro") -> FormScreen:
    screen = app.screen
    assert isinstance(screen, PresetsScreen)
    index = next(i for i, e in enumerate(screen.entries) if e.name == preset)
    for _ in range(index):
        await pilot.press("down")
    await pilot.press("enter")
    await wait_for(pilot, lambda: isinstance(app.screen, FormScreen))
    await pilot.pause()
    return app.screen  # type: ignore[return-value]


async def set_field(pilot: Any, form: FormScreen, name: str, text: str) -> None:
    """Focus a field, clear it and type, as a user would."""
    field = form.query_one(f"#form-{name}" if name in ("name", "description") else
                           f"#input-option-{name}" if name in OPTION else f"#input-{name}")
    field.focus()
    await pilot.press("ctrl+u", "end", "ctrl+u")
    await pilot.press(*text)
    await pilot.pause()


def rendered(widget: Static, width: int = 200) -> str:
    """A Static's content (markup, or a rich table) as plain text."""
    console = Console(record=True, width=width, file=io.StringIO(), color_system=None)
    console.print(widget.content)
    return console.export_text()


async def open_first_run(pilot: Any, app: ToysupApp) -> ResultsScreen:
    """From the presets screen: the runs browser (b), then the results of the run under the cursor (enter)."""
    await pilot.press("b")
    await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
    await pilot.press("enter")
    await wait_for(pilot, lambda: isinstance(app.screen, ResultsScreen))
    return app.screen  # type: ignore[return-value]


async def open_results(pilot: Any, app: ToysupApp, run_dir: Path) -> ResultsScreen:
    """The results screen of the run in ``run_dir``, opened as the runs browser opens it."""
    app.open_results(run_dir)
    await wait_for(pilot, lambda: isinstance(app.screen, ResultsScreen))
    await pilot.pause()
    return app.screen  # type: ignore[return-value]
