"""The toysup Textual app: presets -> form -> live run -> results, and a runs browser.

The app is a viewer: a sweep it launches trains in a detached process
(:mod:`toysup_tui.detach`) that outlives it, and the live view follows a run's
event log in its folder (:mod:`engine.runlog`), whoever started the run. An
async task folds the events into a :class:`~toysup_tui.live.LiveRun`; screens
only read that state, so screens can come and go mid-run.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import inspect
import time
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import ClassVar, TypeVar

from textual import work
from textual.actions import parse as parse_action
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.worker import Worker, WorkerCancelled, WorkerFailed

from toysup.engine.errors import SpecError, ToysupError
from toysup.engine.options import RunOptions, resume_options
from toysup.engine.run.folder import Run
from toysup.engine.run.status import Status
from toysup.engine.runlog import FOLLOW_POLL_S, LogReader
from toysup.engine.spec import Spec
from toysup.engine.stop_request import request_stop
from toysup_tui import detach
from toysup_tui.crash import crash_line, write_report
from toysup_tui.detach import Launch, Resume, WorkerError
from toysup_tui.host import ToysupHost
from toysup_tui.live import LiveRun, format_duration
from toysup_tui.printable import printable
from toysup_tui.screens.confirm import ConfirmScreen
from toysup_tui.screens.form import FormScreen
from toysup_tui.screens.presets import PresetsScreen
from toysup_tui.screens.quit import QuitRunScreen
from toysup_tui.screens.results import ResultsScreen
from toysup_tui.screens.run import RunScreen
from toysup_tui.screens.runs import RunsScreen
from toysup_tui.user_presets import user_presets_dir
from toysup_tui.widgets.keys import KeysPanel, by_action, keys_text, own_bindings

AnyScreen = TypeVar("AnyScreen", bound=Screen)
CANCEL_WAIT_S = 20.0  # how long quitting waits for a stopped run to record itself
STATUS_EVERY_S = 1.0  # how often a followed run's status is checked (a killed run writes no last event)
TORCH_MODULES = ("torch", "safetensors.torch")  # imported after the first paint, for the form and the results


class ToysupApp(ToysupHost):
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
        Binding("f1", "keys", "Keys", show=False),  # where ? is typed into a field (the form)
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
        self.attached: Run | None = None  # the run the live view follows, through its event log
        self._follower: Worker[None] | None = None
        self.crashed: BaseException | None = None  # an unexpected exception that ended the app (a bug)
        self.crash_report: Path | None = None  # its report (toysup_tui/crash.py); None if it could not be written

    def _handle_exception(self, error: Exception) -> None:
        """A bug in a screen, widget or worker (Textual 8's one hook for them all): its report goes to a file and
        the app exits cleanly, where Textual would print a traceback with local values. ``run_tui`` prints the
        one line once the terminal is restored; Pilot still re-raises the error, so a crashing test fails."""
        if self.crashed is None:
            self.crashed, self.crash_report = error, write_report(error)
        self._return_code = 1
        if self._exception is None:
            self._exception = error
            self._exception_event.set()
        self._close_messages_no_wait()

    def get_default_screen(self) -> Screen:
        return PresetsScreen()

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = False) -> None:
        """Notifications as plain text: they quote run names, paths and errors from run folders, which may
        hold ``[/]`` or terminal escapes (toysup_tui/printable.py)."""
        super().notify(printable(message, keep_newlines=True), title=printable(title), severity=severity,
                       timeout=timeout, markup=markup)

    def on_mount(self) -> None:
        # torch, Textual and the engine leave ~10^6 long-lived objects; a full garbage collection walking
        # them all stalled the interface for 0.1-0.4 s. Frozen, they are never scanned again.
        self.call_after_refresh(gc.freeze)
        # The first screen needs no torch (it takes seconds to import): it comes after the first paint,
        # in a thread, so that the form (device choices) and the results (weights) open without a wait.
        self.call_after_refresh(self._import_torch)

    @work(thread=True, group="import", exit_on_error=False)
    def _import_torch(self) -> None:
        for name in TORCH_MODULES:
            importlib.import_module(name)
        self.call_from_thread(gc.freeze)

    # --- the sweep ------------------------------------------------------------------------

    @property
    def sweep_running(self) -> bool:
        """The run this app shows in its live view is training (whoever started it)."""
        return self.attached is not None and self.live is not None and not self.live.finished

    async def launch(self, spec: Spec, options: RunOptions | None = None) -> None:
        """Start ``spec`` detached (it outlives this app: see toysup_tui/detach.py), then show it in the live view."""
        if self.sweep_running:
            self.notify("a sweep is already running: press l to watch it, or cancel it first", severity="warning")
            return
        options = options or self.options
        await self._start_detached(LiveRun(spec, requested_device=_where(options)),
                                   Launch(spec.to_toml(), self.runs_dir.resolve(), options))

    async def resume_run(self, run: Run) -> None:
        """Resume an interrupted, failed or killed run, detached like any other, and watch it."""
        if self.sweep_running:
            self.notify("a sweep is already running here: cancel it or let it finish first", severity="warning")
            return
        try:
            spec = run.spec()
            options = resume_options({}, run.record().to_json())
        except ToysupError as exc:
            self.notify(str(exc), severity="error")
            return
        await self._start_detached(LiveRun(spec, requested_device=_where(options)),
                                   Resume(run.path.resolve(), options))

    async def _start_detached(self, live: LiveRun, request: Launch | Resume) -> None:
        self.live, self.attached = live, None
        self.refresh_bindings()
        await self.goto(RunScreen, lambda: RunScreen(live), lambda s: s.live is live)
        try:
            run_dir = await asyncio.to_thread(detach.start, request)
        except (ToysupError, OSError) as exc:
            live.apply(WorkerError(str(exc)))
            self.refresh_bindings()
            return
        self._follow_run(Run(run_dir), live)

    async def attach(self, run: Run) -> None:
        """Show a run that trains in another process (another shell, another TUI, a detached launch) live."""
        live = self.live
        if self.attached is None or live is None or self.attached.path.resolve() != run.path.resolve():
            try:
                live = LiveRun(run.spec(), requested_device=run.record().device)
            except ToysupError as exc:
                self.notify(str(exc), severity="error")
                return
            if self._follower is not None:
                self._follower.cancel()
            self._follow_run(run, live)
        await self.goto(RunScreen, lambda: RunScreen(live), lambda s: s.live is live)

    def _follow_run(self, run: Run, live: LiveRun) -> None:
        self.live, self.attached = live, run
        self._follower = self._follow(run, live)
        self.refresh_bindings()

    @work(group="sweep", exit_on_error=False)
    async def _follow(self, run: Run, live: LiveRun) -> None:
        """Fold the run's event log into ``live`` until it ends, then say how it ended."""
        reader = LogReader(run.path)
        checked = 0.0
        while not live.finished:
            for event in reader.read():
                live.apply(event)
            now = time.monotonic()
            if not live.finished and now - checked >= STATUS_EVERY_S:
                checked = now
                status = run.status()
                if status is not Status.RUNNING:
                    await asyncio.sleep(FOLLOW_POLL_S)  # its last events may still be on their way
                    for event in reader.read():
                        live.apply(event)
                    live.mark_gone(status)
            await asyncio.sleep(FOLLOW_POLL_S)
        self.refresh_bindings()
        took = format_duration(live.elapsed_s)
        if live.status is Status.COMPLETED:
            self.notify(f"{live.spec.name}: {live.instances:,} instances in {took}; o on the live view "
                        "opens the results", title="Run completed", timeout=8)
        elif live.status is Status.INTERRUPTED:
            kept = live.kept or f"{live.chunks_done} finished chunk(s)"
            self.notify(f"{live.spec.name}: stopped; kept {kept} (r resumes it)",
                        title="Run stopped", severity="warning", timeout=8)
        else:
            self.notify(live.error or f"the run is {live.status}", title=f"Run {live.status}", severity="error",
                        timeout=12)

    def ask_cancel_run(self) -> None:
        """Stop the watched sweep after a confirmation; its finished chunks and the step the chunk in training
        reached stay in the run folder."""
        if not self.sweep_running:
            return

        def answer(yes: bool | None) -> None:
            if yes:
                self._request_stop()

        self.push_screen(ConfirmScreen("Stop the running sweep? It finishes the step in progress and saves it: "
                                       "finished chunks and the chunk in training are kept, and it can be resumed.",
                                       yes="Stop run", no="Keep running"), answer)

    def _request_stop(self) -> None:
        if self.sweep_running and self.attached is not None and self.live is not None:
            self.live.mark_cancelling()
            record = self.attached.record()
            request_stop(self.attached.path, record.host, record.pid)

    async def stop_sweep(self) -> None:
        """Stop the watched sweep and wait (a while) until it has recorded itself as interrupted."""
        if not self.sweep_running:
            return
        self._request_stop()
        if self._follower is not None:
            with contextlib.suppress(WorkerCancelled, WorkerFailed, TimeoutError):
                await asyncio.wait_for(self._follower.wait(), CANCEL_WAIT_S)

    def open_results(self, run_dir: str | Path) -> None:
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
        await self.goto(RunsScreen, RunsScreen)

    async def action_live(self) -> None:
        live = self.live
        if live is None:
            return
        await self.goto(RunScreen, lambda: RunScreen(live), lambda s: s.live is live)

    def action_toggle_theme(self) -> None:
        self.theme = "textual-light" if self.current_theme.dark else "textual-dark"

    def action_keys(self) -> None:
        """Show or hide the keys panel: this screen's keys first, then the app's (widgets/keys.py)."""
        if self.screen.query(KeysPanel):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()

    def action_show_help_panel(self) -> None:
        # Textual's own panel (also behind the palette's "Keys") lists the focused table's cursor keys first.
        if not self.screen.query(KeysPanel):
            self.screen.mount(KeysPanel())

    def action_hide_help_panel(self) -> None:
        self.screen.query(KeysPanel).remove()

    async def action_quit(self) -> None:
        """Quit; with a sweep training, ask whether to leave it running (it is detached) or stop it first."""
        if not self.sweep_running:
            self.exit()
            return

        async def answer(choice: str | None) -> None:
            if choice == "stop":
                self.notify("stopping the sweep before quitting…", timeout=CANCEL_WAIT_S)
                await self.stop_sweep()
                self.exit()
            elif choice == "leave":
                self.exit()

        self.push_screen(QuitRunScreen(self.attached.id if self.attached is not None else ""), answer)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in self.LETTER_ACTIONS and isinstance(self.screen, FormScreen):
            return False
        return self._available(action)

    def _available(self, action: str) -> bool:
        """Whether an app action means something on the current screen (its key aside)."""
        if action == "live":
            return self.live is not None and not isinstance(self.screen, RunScreen)
        if action == "presets":
            return not isinstance(self.screen, PresetsScreen)
        if action == "runs":
            return not isinstance(self.screen, RunsScreen)
        return True

    # --- command palette ------------------------------------------------------------------

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """Every action of the current screen, then the app's, with its keys; on the form, every field."""
        # Textual's Quit runs action_quit too; its Keys would show its own panel: ours is below.
        yield from (c for c in super().get_system_commands(screen) if c.title != "Keys")
        seen: set[str] = {"quit"}
        screen_actions = by_action(own_bindings(screen)).items()
        app_actions = by_action(own_bindings(self)).items()
        for node, actions in ((screen, screen_actions), (self, app_actions)):
            for action, bindings in actions:
                binding = bindings[0]
                target = self if binding.action.startswith("app.") else node
                if not binding.description or action in seen or not self._offers(target, action):
                    continue
                seen.add(action)
                yield SystemCommand(binding.description, f"key: {keys_text(self, bindings)}",
                                    partial(self._run_command, target, binding.action))
        if isinstance(screen, FormScreen):
            for name, help_text in screen.jump_targets():
                yield SystemCommand(f"Field: {name}", help_text, partial(screen.focus_field, name), discover=False)

    async def _run_command(self, node: App | Screen, action: str) -> None:
        """Run an action from the palette, also where its key is off (run_action would refuse it there)."""
        namespace, name, params = parse_action(action)
        result = getattr(self if namespace == "app" else node, f"action_{name}")(*params)
        if inspect.isawaitable(result):
            await result

    def _offers(self, node: App | Screen, action: str) -> bool:
        """Whether the palette lists an action now: where it means something, even if its key is off
        there (the app's letter keys on the form, the results' keys of another tab)."""
        name = action.split("(", 1)[0]
        if node is self:
            return self._available(name)
        offers = getattr(node, "offers", None)
        return offers(name) if offers is not None else node.check_action(name, ()) is not False


def _where(options: RunOptions) -> str:
    return options.device if options.backend == "local" else f"{options.backend}: {options.device}"


def run_tui(runs_dir: Path, options: RunOptions | None = None) -> str | None:
    """Run the app until it quits; sweeps it launched are detached and go on unless it stopped them. Returns
    the one line to print if a bug ended it (its crash report written), else None."""
    app = ToysupApp(runs_dir, options=options)
    app.run()
    return None if app.crashed is None else crash_line(app.crashed, app.crash_report)
