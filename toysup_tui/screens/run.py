"""The live run view: progress, throughput, ETA and the loss chart while a sweep trains.

The screen only reads the app's :class:`~toysup_tui.live.LiveRun` on a timer, so
it can be left (the sweep goes on) and reopened with ``l`` at any time.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid
from textual.widgets import Footer, Header, Label, ProgressBar, Static

from toysup.engine.run.folder import Run
from toysup.engine.run.status import Status
from toysup_tui.live import LiveRun, format_duration
from toysup_tui.render import charts
from toysup_tui.render.status import LiveState, status_style
from toysup_tui.screens.base import ToysupScreen
from toysup_tui.widgets.chart import Chart
from toysup_tui.widgets.legend import Legend
from toysup_tui.widgets.markup import esc

POLL_S = 0.25
CHART_EVERY_S = 1.0  # a plotext build of many series costs tens of ms: once a second is plenty
IQR_MAX_SERIES = 4  # more points than this and the dotted IQR lines only clutter


class RunScreen(ToysupScreen):
    """Watch a sweep, whoever started it: ``c`` stops it (after asking), ``r`` resumes a stopped or killed one,
    ``o`` opens its results, escape goes back (the sweep goes on)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "cancel_run", "Stop run"),
        Binding("r", "resume", "Resume"),
        Binding("o,enter", "open_results", "Results"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, live: LiveRun) -> None:
        super().__init__()
        self.live = live
        self._seen_version = -1
        self._seen_status: tuple[str, bool] = ("", False)
        self._chart_version = -1
        self._chart_drawn_at = 0.0

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="run-header")
        with Grid(id="run-bars"):
            yield Label("overall", classes="bar-label")
            yield ProgressBar(id="bar-overall", show_eta=False)
            yield Label("chunk", id="chunk-label", classes="bar-label")
            yield ProgressBar(id="bar-chunk", show_eta=False)
        yield Static("", id="run-stats")
        yield Chart(id="live-chart")
        yield Legend("", id="live-legend")
        yield Footer()

    def on_mount(self) -> None:
        self.title = f"run: {self.live.spec.name}"
        self.set_interval(POLL_S, self.refresh_view)
        self.refresh_view()

    def refresh_view(self) -> None:
        live = self.live
        if live.version != self._seen_version:
            self._seen_version = live.version
            self._update_text(live)
        if (live.status, bool(live.run_dir)) != self._seen_status:
            self._seen_status = (live.status, bool(live.run_dir))
            self.refresh_bindings()  # the footer's keys depend on the status; refresh only when it changes
        now = time.monotonic()
        if live.version != self._chart_version and (now - self._chart_drawn_at >= CHART_EVERY_S or live.finished):
            self._chart_version, self._chart_drawn_at = live.version, now
            self._draw_chart(live)

    def _update_text(self, live: LiveRun) -> None:
        colour = status_style(live.status)
        where = f" · [b]{esc(live.run_id)}[/]" if live.run_id else ""
        self.query_one("#run-header", Static).update(
            f"[{colour}][b]{live.status}[/b][/]{where} · {live.instances:,} instances · {live.chunks or '?'} "
            f"chunk(s) · [b]{esc(live.device or live.requested_device)}[/]"
        )
        overall = self.query_one("#bar-overall", ProgressBar)
        overall.update(total=max(live.total_work, 1), progress=live.done_work)
        chunk = self.query_one("#bar-chunk", ProgressBar)
        chunk.update(total=1000, progress=round(1000 * live.chunk_fraction))
        self.query_one("#chunk-label", Label).update(live.chunk_label())
        stats = (f"{live.rate:,.0f} instance-steps/s · {live.done_work:,}/{live.total_work:,} · "
                 f"elapsed {format_duration(live.elapsed_s)} · ETA {format_duration(live.eta_s)}")
        phase = live.phase_text()
        if phase and not live.finished:
            stats += f"\n[cyan]{esc(phase)}[/]"
        if live.status is Status.INTERRUPTED:
            kept = esc(live.kept) if live.kept else f"the {live.chunks_done} finished chunk(s)"
            stats += f"\n[magenta]stopped: kept {kept}[/]" \
                     f" · [b]r[/] resumes · [b]o[/] opens what finished"
        elif live.status is Status.KILLED:
            stats += "\n[red]killed: its process ended without recording it[/] · [b]r[/] resumes"
        elif live.status is Status.COMPLETED:
            stats += "\n[green]done[/] · [b]o[/] opens the results"
        elif live.status in (Status.FAILED, LiveState.LAUNCH_FAILED):
            stats += f"\n[red]{esc(live.error)}[/]"
        elif live.status is LiveState.CANCELLING:
            stats += "\n[yellow]stopping: finishing the current step…[/]"
        self.query_one("#run-stats", Static).update(stats)

    def _draw_chart(self, live: LiveRun) -> None:
        bands = live.loss_bands()
        iqr = len(bands) <= IQR_MAX_SERIES
        title = "training loss by sweep point"  # the chart says whether the IQR is drawn
        chart = self.query_one("#live-chart", Chart)
        colours = chart.colours
        chart.show(lambda plt, size: charts.draw_loss_curves(plt, bands, title=title, iqr=iqr, colours=colours))
        legend = self.query_one("#live-legend", Legend)
        axes = [a.name for a in live.spec.axes]
        legend.show([b.label for b in bands], title=", ".join(axes) if len(axes) == 1 else "")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "cancel_run":
            return not self.live.finished and self.live.status is not LiveState.CANCELLING
        if action == "open_results":
            return bool(self.live.run_dir) or None
        if action == "resume":
            return self._resumable()
        return True

    async def action_resume(self) -> None:
        if self._resumable():
            await self.app.resume_run(Run(Path(self.live.run_dir)))

    def _resumable(self) -> bool:
        return self.live.run_status is not None and self.live.run_status.resumable and bool(self.live.run_dir)

    def action_cancel_run(self) -> None:
        self.app.ask_cancel_run()

    def action_open_results(self) -> None:
        if self.live.run_dir:
            self.app.open_results(self.live.run_dir)

    def leave(self) -> None:
        if not self.live.finished:
            self.notify("the sweep goes on in the background: l (or the runs browser, b) comes back", timeout=4)
        self.app.pop_screen()
