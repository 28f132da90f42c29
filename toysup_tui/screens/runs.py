"""The runs browser: every run folder in the runs directory, newest first.

Headless ``toysup run`` runs show up here too: the run folder is the only
interface between a run and any viewer. A run training now shows how far it is
(from its heartbeat, engine/runlog.py), and opening it attaches the live view.
"""

from __future__ import annotations

import shutil
import stat
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Footer, Header, Static

from toysup.engine.run.catalogue import list_runs
from toysup.engine.run.folder import Run
from toysup.engine.run.status import Status
from toysup.engine.runlog import progress_of
from toysup_tui.live import format_duration
from toysup_tui.printable import printable
from toysup_tui.render.status import status_style
from toysup_tui.screens.base import ToysupScreen
from toysup_tui.screens.compare import CompareScreen
from toysup_tui.screens.confirm import ConfirmScreen
from toysup_tui.widgets.markup import esc

REFRESH_S = 2.0


def folder_size(path: Path) -> int:
    """The bytes of a run's regular files (a link in the folder counts as itself, never as its target)."""
    return sum(st.st_size for st in (f.lstat() for f in path.rglob("*")) if stat.S_ISREG(st.st_mode))


def human_size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


class RunsScreen(ToysupScreen):
    """Open, compare (mark two with space) or delete runs."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Open", priority=True),
        Binding("space", "mark", "Mark"),
        Binding("c", "compare", "Compare"),
        Binding("d", "delete", "Delete"),
        Binding("R", "resume", "Resume"),
        Binding("r", "refresh", "Refresh", show=False),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.runs: list[Run] = []
        self.marked: list[str] = []
        self._stamp: tuple[tuple[str, Any], ...] = ()
        self._shown_running: list[Run] = []  # shown as running: their process may die without touching run.json
        self._live_lines: list[str] = []  # the running runs' progress, for the status line

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="runs-status")
        yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.title = "runs"
        table = self.query_one(DataTable)
        for label, key in (("", "mark"), ("run", "id"), ("preset", "name"), ("status", "status"),
                           ("instances", "instances"), ("started", "date"), ("disk", "disk"), ("device", "device")):
            table.add_column(label, key=key)
        self.action_refresh()
        self.set_interval(REFRESH_S, self._refresh_if_changed)
        table.focus()

    def _state(self) -> tuple[tuple[str, Any], ...]:
        """What the table shows depends on: each run.json's mtime, and whether the runs shown as
        running still are (a killed run's run.json still says running)."""
        root = self.app.runs_dir
        if not root.is_dir():
            return ()
        out: list[tuple[str, Any]] = []
        for p in root.iterdir():
            info = p / "run.json"
            try:
                out.append((p.name, info.stat().st_mtime))
            except OSError:
                continue
        for run in self._shown_running:
            out.append((f"{run.id} status", (run.status(), progress_of(run.record().heartbeat))))
        return tuple(sorted(out))

    def _refresh_if_changed(self) -> None:
        if self._state() != self._stamp:
            self.action_refresh()

    def action_refresh(self) -> None:
        table = self.query_one(DataTable)
        current = self.selected()
        self.runs = list_runs(self.app.runs_dir)
        self.marked = [m for m in self.marked if any(r.id == m for r in self.runs)]
        table.clear()
        self._shown_running = []
        self._live_lines = []
        for run in self.runs:
            record = run.record()
            status = run.status()  # damaged too when its files disagree with its manifest
            if status is Status.RUNNING:
                self._shown_running.append(run)
            done, total = _count(record.instances_done), _count(record.instances)
            count = total if status is Status.COMPLETED else f"{done}/{total}"
            shown: str = status
            progress = progress_of(record.heartbeat) if status is Status.RUNNING else None
            if progress is not None:
                fraction, rate, eta = progress
                shown = f"{status} {100 * fraction:.0f}%"
                self._live_lines.append(f"[cyan]▶[/] {esc(run.id)} {100 * fraction:.0f}% · {rate:,.0f} inst-steps/s "
                                        f"· ETA {format_duration(eta)}")
            table.add_row(
                Text("●" if run.id in self.marked else " ", style="bold yellow"),
                Text(printable(run.id), style="bold"), Text(printable(record.name)),
                Text(shown, style=status_style(status)), Text(count, justify="right"),
                Text(printable(record.started[:16].replace("T", " "))),
                Text(human_size(folder_size(run.path)), justify="right"), Text(printable(record.device)),
                key=run.id,
            )
        self._stamp = self._state()
        if current is not None:
            index = next((i for i, r in enumerate(self.runs) if r.id == current.id), None)
            if index is not None:
                table.move_cursor(row=index, animate=False)
        self._update_status()

    def _update_status(self) -> None:
        root = esc(str(self.app.runs_dir))
        marks = f" · marked: {esc(', '.join(self.marked))}" if self.marked else ""
        text = (f"{len(self.runs)} run(s) in {root}{marks}" if self.runs
                else f"no runs in {root} yet: launch one from the presets (p)")
        live = "".join(f"\n{line}" for line in self._live_lines[:3])
        self.query_one("#runs-status", Static).update(text + live + "\n[dim]enter open (live: watch) · space mark two, "
                                                      "c compare · d delete · R resume[/]")

    def selected(self) -> Run | None:
        table = self.query_one(DataTable)
        if not self.runs or table.cursor_row < 0 or table.cursor_row >= len(self.runs):
            return None
        return self.runs[table.cursor_row]

    async def action_open(self) -> None:
        run = self.selected()
        if run is None:
            return
        if run.status() is Status.RUNNING:
            await self.app.attach(run)
        else:
            self.app.open_results(run.path)

    async def action_resume(self) -> None:
        run = self.selected()
        if run is None:
            return
        status = run.status()
        if not status.resumable:
            self.notify(f"{run.id} is {status}: only an interrupted, failed or killed run can be resumed",
                        severity="warning")
            return
        await self.app.resume_run(run)

    def action_mark(self) -> None:
        run = self.selected()
        if run is None:
            return
        if run.id in self.marked:
            self.marked.remove(run.id)
        else:
            self.marked = [*self.marked, run.id][-2:]
        table = self.query_one(DataTable)
        for r in self.runs:
            table.update_cell(r.id, "mark", Text("●" if r.id in self.marked else " ", style="bold yellow"))
        self._update_status()

    def action_compare(self) -> None:
        chosen = list(self.marked)
        current = self.selected()
        if len(chosen) < 2 and current is not None and current.id not in chosen:
            chosen.append(current.id)
        if len(chosen) < 2:
            self.notify("mark two or more runs with space (or mark one and put the cursor on the other), then press c",
                        severity="warning")
            return
        by_id = {r.id: r for r in self.runs}
        self.app.push_screen(CompareScreen(*[by_id[i] for i in chosen]))

    def action_delete(self) -> None:
        run = self.selected()
        if run is None:
            return
        if run.status() is Status.RUNNING:
            self.notify("this run is still training: stop it first (enter, then c)", severity="error")
            return

        def answer(yes: bool | None) -> None:
            if not yes:
                return
            try:
                shutil.rmtree(run.path)
            except OSError as exc:
                self.notify(f"could not delete {run.path}: {exc}", severity="error")
                return
            self.notify(f"deleted {run.id}")
            self.action_refresh()

        self.app.push_screen(ConfirmScreen(f"Delete run {run.id} and all its files?\n{run.path}", yes="Delete"),
                             answer)


def _count(value: object) -> str:
    """A count from run.json with thousands separators; whatever else a damaged file holds, as text."""
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)
