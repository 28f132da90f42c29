"""The first screen: bundled and user presets with what they show and how big they are."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Footer, Header, Static

from toysup_tui.estimate import instance_steps
from toysup_tui.printable import printable
from toysup_tui.screens.base import ToysupScreen
from toysup_tui.screens.form import FormScreen
from toysup_tui.user_presets import PresetEntry, list_presets
from toysup_tui.widgets.markup import esc


class PresetsScreen(ToysupScreen):
    """Pick a preset: enter opens its parameter form, ``r`` launches it unchanged."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "edit", "Edit & launch", priority=True),
        Binding("r", "run", "Run as is"),
        Binding("b", "app.runs", "Runs"),
        Binding("l", "app.live", "Live run"),
        Binding("question_mark", "app.keys", "Keys", key_display="?"),
        Binding("escape", "back", "Back", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.entries: list[PresetEntry] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="presets-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="preset-detail")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "presets"
        table = self.query_one(DataTable)
        table.add_column("preset", key="name")
        table.add_column("model", key="model")
        table.add_column("inst.", key="instances")
        table.add_column("work", key="work")
        table.add_column("description", key="description")
        self.reload()
        table.focus()

    def reload(self) -> None:
        """Read the presets again (after the user saved one)."""
        table = self.query_one(DataTable)
        table.clear()
        self.entries = list_presets(self.app.user_presets_dir)
        for entry in self.entries:
            spec = entry.spec
            if spec is None:
                cells = [Text("invalid", style="red"), "", Text(printable(entry.error), style="red")]
            else:
                cells = [Text(f"{spec.n_instances:,}", justify="right"),
                         Text(_short_count(instance_steps(spec)), justify="right"), Text(printable(spec.description))]
            name = Text(printable(entry.name), style="bold")
            if entry.source != "bundled":
                name.append(" (yours)" if entry.source == "user" else f" ({entry.source})", style="dim")
            if entry.shadowed_by:
                name.append(f" shadowed by {entry.shadowed_by}", style="yellow")
            table.add_row(name, Text(str(entry.data.get("model", "relu_output"))), *cells, key=str(entry.path))
        self._show_detail()

    def _selected(self) -> PresetEntry | None:
        table = self.query_one(DataTable)
        if not self.entries or table.cursor_row < 0:
            return None
        return self.entries[min(table.cursor_row, len(self.entries) - 1)]

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def _show_detail(self) -> None:
        entry = self._selected()
        detail = self.query_one("#preset-detail", Static)
        if entry is None:
            detail.update("no presets found")
            return
        if entry.spec is None:
            detail.update(f"[b]{esc(entry.name)}[/] [red]cannot be used: {esc(entry.error)}[/]\n"
                          f"[dim]{esc(str(entry.path))}[/]")
            return
        spec = entry.spec
        axes = "; ".join(f"{a.name} = {a.expr if isinstance(a.expr, str) else a.values}" for a in spec.axes)
        detail.update(
            f"[b]{esc(entry.name)}[/]: {esc(spec.description)}\n"
            f"[b]expect:[/] {esc(spec.expected or '—')}\n"
            f"[dim]{spec.n_points} point(s) × {spec.seeds} seed(s) = {spec.n_instances:,} instances, "
            f"{instance_steps(spec):,} instance-steps (work)"
            + (f" at most: adaptive, {spec.adaptive.rounds} round(s) refining where {esc(spec.adaptive.classify)} "
               "changes" if spec.adaptive else "")
            + f" · sweep {esc(axes or 'none')} · "
            f"{esc(str(entry.path) if entry.source != 'bundled' else 'bundled')}[/]"
            + (f"\n[yellow]toysup run {esc(entry.name)} runs the {entry.shadowed_by} preset of this name; this one "
               f"is {esc(entry.source)}:{esc(entry.name)}[/]" if entry.shadowed_by else "")
        )

    def action_edit(self) -> None:
        entry = self._selected()
        if entry is None or not entry.data:
            self.notify("this preset file cannot be read", severity="error")
            return
        self.app.push_screen(FormScreen(entry.data, source=str(entry.path)))

    def leave(self) -> None:
        self.notify("this is the first screen: q quits", timeout=3)

    async def action_run(self) -> None:
        entry = self._selected()
        if entry is None or entry.spec is None:
            self.notify(entry.error if entry else "no preset selected", severity="error")
            return
        await self.app.launch(entry.spec)


def _short_count(n: int) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return str(n)
