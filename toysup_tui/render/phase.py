"""The phase grid (engine.analysis.phase) as a coloured table: letters, colours and captions.

:func:`phase_grid_table` turns the grid into plain cells (text, phase, colour) that any
front end can draw; :func:`phase_table` draws them with rich for the report and the TUI.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.table import Table

from engine.analysis.phase import PHASES, PhaseCell, PhaseGrid, phase_grid
from engine.results import Results, value_text

PHASE_LETTERS = {"not_learned": "N", "superposed": "S", "dedicated": "D"}
# Colour names rich understands; the grid's cells carry them so every front end colours alike.
PHASE_COLORS = {"not_learned": "grey50", "superposed": "dark_orange", "dedicated": "dodger_blue2"}


@dataclass(frozen=True)
class TableCell:
    """What a front end draws in one cell: text on a background colour (None: no data)."""

    text: str
    phase: str | None
    color: str | None
    agreement: float  # share of the seeds in the best seed's phase (0 for an empty cell)


@dataclass(frozen=True)
class PhaseTable:
    """A phase grid as plain table data for any front end (see :func:`phase_grid_table`)."""

    title: str
    corner: str  # the top-left header: "y_axis \\ x_axis"
    columns: tuple[str, ...]  # x values as text
    row_labels: tuple[str, ...]  # y values as text, largest first
    cells: tuple[tuple[TableCell, ...], ...]
    legend: tuple[tuple[str, str, str], ...]  # (letter, phase, colour)
    caption: str


def phase_grid_table(grid: PhaseGrid) -> PhaseTable:
    """Plain data for drawing ``grid`` as a coloured table: one cell per point, the best seed's
    phase letter (N, S, D) and how many of the used seeds agree with it, on the phase's colour."""
    cells = tuple(tuple(_table_cell(c) for c in row) for row in grid.cells)
    dropped = f", after dropping the {grid.discarded_worst} highest-loss seed(s) per point" if grid.discarded_worst \
        else ""
    caption = (f"letter: phase of the lowest-loss seed; k/n: seeds in that phase{dropped}. "
               + ", ".join(f"{PHASE_LETTERS[p]} = {p.replace('_', ' ')}" for p in PHASES))
    return PhaseTable(
        title=f"phase of the extra feature over {grid.x_axis} and {grid.y_axis}",
        corner=f"{grid.y_axis} \\ {grid.x_axis}",
        columns=tuple(value_text(v) for v in grid.x_values),
        row_labels=tuple(value_text(v) for v in grid.y_values),
        cells=cells,
        legend=tuple((PHASE_LETTERS[p], p, PHASE_COLORS[p]) for p in PHASES),
        caption=caption,
    )


def phase_table(results: Results) -> Table | None:
    """The n=2, m=1 phase diagram as a coloured grid: importance across, density down (best seed per
    point and the share of seeds that agree). None unless the run has a phase column and 2 axes."""
    rows, spec = results.rows, results.spec
    if not rows or "phase" not in rows[0] or len(spec.axes) < 2:
        return None
    names = [a.name for a in spec.axes]
    x_axis = "importance_decay" if "importance_decay" in names else names[0]
    y_axis = next(n for n in names if n != x_axis)
    t = phase_grid_table(phase_grid(results, x_axis, y_axis))
    table = Table(title=t.title, caption=t.caption, caption_justify="left", title_justify="left")
    table.add_column(t.corner, justify="right", style="cyan")
    for column in t.columns:
        table.add_column(column, justify="center")
    for label, cells in zip(t.row_labels, t.cells):
        table.add_row(label, *[f"[black on {c.color}]{c.text}[/]" if c.color else c.text for c in cells])
    return table


def _table_cell(cell: PhaseCell | None) -> TableCell:
    if cell is None or cell.best is None:
        return TableCell("·", None, None, 0.0)
    share = cell.fractions[cell.best]
    agree = round(share * cell.seeds)
    return TableCell(f"{PHASE_LETTERS[cell.best]} {agree}/{cell.seeds}", cell.best, PHASE_COLORS[cell.best], share)
