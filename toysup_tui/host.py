"""The app as its screens see it: the type of a screen's ``self.app``.

Screens need the app's folders, its run options and its sweep actions; the app (app.py)
needs the screens to navigate between them. This class, below both, declares what the screens use, and
:class:`~toysup_tui.app.ToysupApp` implements it, so the screens never import app.py.
"""

from __future__ import annotations

from pathlib import Path

from textual.app import App

from toysup.engine.options import RunOptions
from toysup.engine.run.folder import Run
from toysup.engine.spec import Spec


class ToysupHost(App[None]):
    """Textual's app with what toysup's screens use of it (ToysupApp, in app.py, fills it in)."""

    runs_dir: Path  # where runs are listed and launched
    user_presets_dir: Path  # where the form saves presets
    options: RunOptions  # how launched sweeps train unless the form changes it

    async def launch(self, spec: Spec, options: RunOptions | None = None) -> None:
        """Start ``spec`` detached and show it in the live view."""
        raise NotImplementedError

    async def resume_run(self, run: Run) -> None:
        """Resume an interrupted, failed or killed run, and watch it."""
        raise NotImplementedError

    async def attach(self, run: Run) -> None:
        """Show a run that trains in another process live."""
        raise NotImplementedError

    def ask_cancel_run(self) -> None:
        """Stop the watched sweep after a confirmation."""
        raise NotImplementedError

    def open_results(self, run_dir: str | Path) -> None:
        """Show a run's results."""
        raise NotImplementedError

    def presets_changed(self) -> None:
        """A preset was saved: the presets screen lists it."""
        raise NotImplementedError
