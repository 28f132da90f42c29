"""Tab 1: results.csv as a table, filtered and sorted."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import DataTable, Input, Static, TabPane

from toysup.engine.errors import UserError
from toysup_tui.table_filter import cell_text, compile_filter, sort_key
from toysup_tui.widgets.markup import esc


class TableTab(TabPane):
    """Every finished instance, one row each; headers shortened as the model declares them."""

    def compose(self) -> ComposeResult:
        yield Input(placeholder="filter by header or name: e.g. p<0.1 seed=0 (enter: apply, escape: clear)",
                    id="results-filter")
        yield DataTable(id="results-table", cursor_type="cell", zebra_stripes=True)
        yield Static("", id="table-status")

    def fill(self, columns: list[str], rows: list[dict[str, Any]], short: dict[str, str], filter_text: str,
             sort_column: str | None, sort_reverse: bool, instance: int | None) -> list[dict[str, Any]]:
        """Show ``rows`` filtered and sorted, the cursor on ``instance``; returns the rows as shown."""
        table = self.query_one("#results-table", DataTable)
        status = self.query_one("#table-status", Static)
        column = table.cursor_column
        table.clear(columns=True)
        try:
            keep = compile_filter(filter_text, columns, short)
        except UserError as exc:
            status.update(f"[red]filter: {esc(str(exc))}[/]")
            keep = compile_filter("", columns)
        else:
            status.update("")
        view = [r for r in rows if keep(r)]
        if sort_column is not None:
            present = [r for r in view if r.get(sort_column, "") != ""]
            missing = [r for r in view if r.get(sort_column, "") == ""]
            present.sort(key=lambda r: sort_key(r.get(sort_column)), reverse=sort_reverse)
            view = present + missing
        for name in columns:
            arrow = ("▼" if sort_reverse else "▲") if name == sort_column else ""
            table.add_column(Text(short.get(name, name) + arrow, justify="right"), key=name)
        for row in view:
            table.add_row(*[Text(cell_text(row.get(c, "")), justify="right") for c in columns],
                          key=str(row.get("instance")))
        if instance is not None:
            index = next((i for i, r in enumerate(view) if r.get("instance") == instance), None)
            table.move_cursor(row=index or 0, column=column, animate=False)
        if not rows:
            status.update("[dim]no finished instances yet[/]")
        elif not status.content:
            sort = f" · sorted by {sort_column} {'▼' if sort_reverse else '▲'}" if sort_column else ""
            filt = f" · filter: {esc(filter_text)}" if filter_text else ""
            status.update(f"{len(view)}/{len(rows)} rows{sort}{filt} · [dim]arrows move, s sorts by the "
                          f"cursor's column, / filters, e exports[/]")
        return view
