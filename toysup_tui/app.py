"""The toysup Textual app: presets -> form -> live run -> results, and a runs browser.

The app owns the one sweep that may be running: a worker *process*
(:mod:`toysup_tui.worker`) whose JSON-line events an async task folds into a
:class:`~toysup_tui.live.LiveRun`. Screens only read that state, so no training
ever runs on the interface's event loop and screens can come and go mid-run.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import ClassVar, TypeVar

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.worker import Worker, WorkerCancelled, WorkerFailed

from engine.errors import SpecError
from engine.options import RunOptions
from engine.spec import Spec
from engine.store import Run
from toysup_tui.live import LiveRun, format_duration
from toysup_tui.screens.confirm import ConfirmScreen
from toysup_tui.screens.form import FormScreen
from toysup_tui.screens.presets import PresetsScreen
from toysup_tui.screens.run import RunScreen
from toysup_tui.user_presets import user_presets_dir
from toysup_tui.worker import Launch, SweepProcess

AnyScreen = TypeVar("AnyScreen", bound=Screen)
CANCEL_WAIT_S = 20.0  # how long quitting waits for a cancelled run to record itself


class ToysupApp(App[None]):
    """Sweep and visualise toy models of superposition."""

    TITLE = "toysup"
    CSS_PATH = "app.tcss"
    # Available everywhere; screens show the ones that matter there (the footer has 80 columns).
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("p", "presets", "Presets", show=False),
        Binding("b", "runs", "Runs", show=False),
        Binding("l", "live", "Live run", show=False),
        Binding("ctrl+t", "toggle_theme", "Dark/light theme", show=False),
        Binding("question_mark", "keys", "Keys", key_display="?", show=False),
    ]
    # Letter keys would be typed into the form's fields: keep them out of its footer.
    LETTER_ACTIONS = ("quit", "presets", "runs", "live")

    def __init__(self, runs_dir: Path, presets_dir: Path | None = None, options: RunOptions | None = None,
                 device: str | None = None) -> None:
        super().__init__()
        self.runs_dir = Path(runs_dir)
        self.user_presets_dir = presets_dir if presets_dir is not None else user_presets_dir()
        # How launched sweeps train unless the form changes it (``device``: a shorthand for options.device).
        self.options = (options or RunOptions()).with_values(device=device)
        self.live: LiveRun | None = None
        self.process: SweepProcess | None = None
        self._follower: Worker[None] | None = None

    def get_default_screen(self) -> Screen:
        return PresetsScreen()

    def on_mount(self) -> None:
        # torch, Textual and the engine leave ~10^6 long-lived objects; a full garbage collection walking
        # them all stalled the interface for 0.1-0.4 s. Frozen, they are never scanned again.
        self.call_after_refresh(gc.freeze)

    # --- the sweep ------------------------------------------------------------------------

    @property
    def sweep_running(self) -> bool:
        """A sweep is training (its process may outlive the run by a moment while it exits: that does not count)."""
        return (self.process is not None and self.process.running and self.live is not None
                and not self.live.finished)

    async def launch(self, spec: Spec, options: RunOptions | None = None) -> None:
        """Start ``spec`` in a worker process and show the live view (options: the app's unless given)."""
        if self.sweep_running:
            self.notify("a sweep is already running: press l to watch it, or cancel it first", severity="warning")
            return
        options = options or self.options
        device, backend = options.device, options.backend
        live = LiveRun(spec, requested_device=device if backend == "local" else f"{backend}: {device}")
        try:
            process = await SweepProcess.start(Launch(spec.to_toml(), self.runs_dir.resolve(), options))
        except OSError as exc:
            self.notify(f"could not start the worker: {exc}", severity="error")
            return
        self.live, self.process = live, process
        self._follower = self._follow(process, live)
        self.refresh_bindings()
        await self.goto(RunScreen, lambda: RunScreen(live), lambda s: s.live is live)

    @work(group="sweep", exit_on_error=False)
    async def _follow(self, process: SweepProcess, live: LiveRun) -> None:
        """Fold the worker's events into ``live`` until it exits, then say how it ended."""
        try:
            async for event in process.events():
                live.apply(event)
        finally:
            code = await process.wait()
            live.mark_ended_without_report(code, list(process.stderr_tail))
            self.refresh_bindings()
        took = format_duration(live.elapsed_s)
        if live.status == "completed":
            self.notify(f"{live.spec.name}: {live.instances:,} instances in {took}; o on the live view "
                        "opens the results", title="Run completed", timeout=8)
        elif live.status == "interrupted":
            self.notify(f"{live.spec.name}: cancelled; {live.chunks_done} finished chunk(s) kept",
                        title="Run cancelled", severity="warning", timeout=8)
        else:
            self.notify(live.error or "the run failed", title="Run failed", severity="error", timeout=12)

    def ask_cancel_run(self) -> None:
        """Cancel the running sweep after a confirmation; its finished chunks stay in the run folder."""
        if not self.sweep_running or self.process is None:
            return

        def answer(yes: bool | None) -> None:
            if yes and self.sweep_running and self.process is not None and self.live is not None:
                self.live.mark_cancelling()
                self.process.cancel()

        self.push_screen(ConfirmScreen("Cancel the running sweep? Finished chunks are kept.", yes="Cancel run",
                                       no="Keep running"), answer)

    async def stop_sweep(self) -> None:
        """Cancel and wait for the worker to record the run as interrupted (kill it if it hangs)."""
        if self.process is None or not self.process.running:
            return
        if self.live is not None:
            self.live.mark_cancelling()
        self.process.cancel()
        if await self.process.wait(CANCEL_WAIT_S) is None:
            self.process.kill()
            await self.process.wait()
        if self._follower is not None:
            with contextlib.suppress(WorkerCancelled, WorkerFailed):
                await self._follower.wait()  # the reader sees the end of the pipe and records the ending

    def open_results(self, run_dir: str | Path) -> None:
        from toysup_tui.screens.results import ResultsScreen

        try:
            run = Run.open(Path(run_dir))
        except SpecError as exc:
            self.notify(str(exc), severity="error")
            return
        self.push_screen(ResultsScreen(run))

    def presets_changed(self) -> None:
        for screen in self.screen_stack:
            if isinstance(screen, PresetsScreen):
                screen.reload()

    def on_unmount(self) -> None:
        # However the app ends, no worker process outlives it.
        if self.process is not None and self.process.running:
            self.process.kill()

    # --- navigation -----------------------------------------------------------------------

    async def goto(self, kind: type[AnyScreen], make: Callable[[], AnyScreen],
                   matches: Callable[[AnyScreen], bool] = lambda s: True) -> None:
        """Bring the screen of ``kind`` to the top: pop down to it if it is open, else push a new one."""
        for screen in reversed(self.screen_stack):
            if isinstance(screen, kind) and matches(screen):
                while self.screen is not screen:
                    await self.pop_screen()
                return
        await self.push_screen(make())

    async def action_presets(self) -> None:
        await self.goto(PresetsScreen, PresetsScreen)

    async def action_runs(self) -> None:
        from toysup_tui.screens.runs import RunsScreen

        await self.goto(RunsScreen, RunsScreen)

    async def action_live(self) -> None:
        live = self.live
        if live is None:
            return
        await self.goto(RunScreen, lambda: RunScreen(live), lambda s: s.live is live)

    def action_toggle_theme(self) -> None:
        self.theme = "textual-light" if self.current_theme.dark else "textual-dark"

    def action_keys(self) -> None:
        if self.screen.query("HelpPanel"):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()

    async def action_quit(self) -> None:
        """Quit; with a sweep running, ask first and cancel it cleanly (finished chunks kept)."""
        if not self.sweep_running:
            if self.process is not None and await self.process.wait(CANCEL_WAIT_S) is None:
                self.process.kill()  # a finished run's process that will not exit
            self.exit()
            return

        async def answer(yes: bool | None) -> None:
            if yes:
                self.notify("cancelling the sweep before quitting…", timeout=CANCEL_WAIT_S)
                await self.stop_sweep()
                self.exit()

        self.push_screen(ConfirmScreen("A sweep is running. Cancel it (finished chunks are kept) and quit?",
                                       yes="Cancel and quit", no="Stay"), answer)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in self.LETTER_ACTIONS and isinstance(self.screen, FormScreen):
            return False
        if action == "live":
            return self.live is not None and not isinstance(self.screen, RunScreen)
        if action == "presets":
            return not isinstance(self.screen, PresetsScreen)
        if action == "runs":
            from toysup_tui.screens.runs import RunsScreen

            return not isinstance(self.screen, RunsScreen)
        return True

    # --- command palette ------------------------------------------------------------------

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """The palette lists every key binding of the current screen (and the app's), with its key."""
        yield from super().get_system_commands(screen)
        seen: set[str] = {"quit"}
        for active in screen.active_bindings.values():
            binding = active.binding
            action = binding.action.removeprefix("app.")
            if not binding.description or action in seen or not active.enabled:
                continue
            if not isinstance(active.node, (App, Screen)):
                continue  # a focused widget's own keys (cursor movement and such) are not commands
            seen.add(action)
            yield SystemCommand(binding.description, f"key: {self.get_key_display(binding)}",
                                partial(active.node.run_action, binding.action))
        if isinstance(screen, FormScreen):
            for field in [*screen.fields, *screen.option_fields]:
                yield SystemCommand(f"Field: {field.param.name}", field.param.help,
                                    partial(screen.focus_field, field.param.name), discover=False)


def run_tui(runs_dir: Path, options: RunOptions | None = None) -> None:
    """Run the app until it quits; never leave a worker process behind."""
    app = ToysupApp(runs_dir, options=options)
    try:
        app.run()
    finally:
        if app.process is not None and app.process.running:
            app.process.kill()
