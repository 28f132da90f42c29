"""The phase grid (engine.analysis.phase) as a coloured table: letters, colours, captions, and the paper's
theoretical boundaries drawn over it.

:func:`phase_grid_table` turns the grid into plain cells (text, phase, colour) that any
front end can draw; :func:`theory_boundaries` says between which cells the theoretical
phase (engine.analysis.phase_theory) changes, and :func:`draw_grid` draws cells and
boundaries as text; :func:`phase_table` puts them together for the report and the TUI.
An adaptive sweep's grid (engine/adaptive.py) shows its trained points in capitals and
the points inside a cell whose corners agree in lower case.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, replace
from itertools import pairwise

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from toysup.engine.adaptive_grid import inferred
from toysup.engine.analysis.phase import PHASES, PhaseCell, PhaseGrid, phase_grid
from toysup.engine.analysis.phase_theory import has_theory, theoretical_phase
from toysup.engine.results import Results, value_text

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
    """Plain data for drawing ``grid`` as a coloured table: one cell per point, its phase letter (N, S, D) under
    the grid's selection and how many of the used seeds agree with it, on the phase's colour."""
    cells = tuple(tuple(_table_cell(c) for c in row) for row in grid.cells)
    dropped = f", after dropping the {grid.discarded_worst} highest-loss seed(s) per point" if grid.discarded_worst \
        else ""
    letter = {"best": "phase of the lowest-loss seed (best-of-k)",
              "majority": "phase most seeds have (the paper's drop-worst mean)"}[grid.selection]
    caption = (f"letter: {letter}; k/n: seeds in that phase{dropped}. "
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


def phase_table(results: Results, selection: str = "best") -> RenderableType | None:
    """The phase diagram as a coloured grid: importance across, density down (each point's phase under
    ``selection``, engine.analysis.phase.SELECTIONS, and the share of seeds that agree), with the theoretical
    boundaries drawn over it where the paper gives them (n=2, m=1 and n=3, m=2) and an adaptive sweep's
    untrained points filled in. None unless the run has a phase column and 2 axes."""
    rows, spec = results.rows, results.spec
    if not rows or "phase" not in rows[0] or len(spec.axes) < 2:
        return None
    names = [a.name for a in spec.axes]
    x_axis = "importance_decay" if "importance_decay" in names else names[0]
    y_axis = next(n for n in names if n != x_axis)
    grid = phase_grid(results, x_axis, y_axis, selection=selection)
    t = phase_grid_table(grid)
    filled = _fill_adaptive(t, grid, results)
    theory = theory_cells(grid, results)
    if theory is None and filled is None:
        return _rich_table(t)
    t = filled or t
    if len(t.columns) > COMPACT_ABOVE:
        t = compact(t)
    parts: list[RenderableType] = [Text(t.title, style="italic"), draw_grid(t, theory_boundaries(theory)
                                                                          if theory else None)]
    caption = t.caption
    if filled is not None:
        caption += ("; adaptive sweep: capitals were trained, lower case lie in a cell whose corners agree, "
                    "· in neither")
    if theory is not None:
        caption += "; " + theory_caption(t, theory)
    parts.append(Text(caption, style="dim"))
    return Group(*parts)


def _rich_table(t: PhaseTable) -> Table:
    table = Table(title=t.title, caption=t.caption, caption_justify="left", title_justify="left")
    table.add_column(t.corner, justify="right", style="cyan")
    for column in t.columns:
        table.add_column(column, justify="center")
    for label, cells in zip(t.row_labels, t.cells):
        table.add_row(label, *[f"[black on {c.color}]{c.text}[/]" if c.color else c.text for c in cells])
    return table


# --- the paper's theory over the grid ---------------------------------------------------------------

COMPACT_ABOVE = 9  # columns beyond which a cell shows its letter alone


def theory_cells(grid: PhaseGrid, results: Results) -> tuple[tuple[str, ...], ...] | None:
    """The theoretical phase at every cell of ``grid`` (engine.analysis.phase_theory), or None where the paper
    gives none: another model, n and m not a published pair or swept, or axes other than importance_decay
    across and feature_probability down."""
    spec = results.spec
    params = spec.params
    if (spec.model != "relu_output_phase" or grid.x_axis != "importance_decay"
            or grid.y_axis != "feature_probability" or len(spec.axes) != 2
            or not has_theory(params.get("n_features", 0), params.get("n_hidden", 0))):
        return None
    n = int(params["n_features"])
    return tuple(tuple(theoretical_phase(float(r), float(p), n) for r in grid.x_values) for p in grid.y_values)


@dataclass(frozen=True)
class Boundaries:
    """Where a phase changes between neighbouring cells: ``vertical[r][c]`` between (r, c) and (r, c+1),
    ``horizontal[r][c]`` between (r, c) and (r+1, c)."""

    vertical: tuple[tuple[bool, ...], ...]
    horizontal: tuple[tuple[bool, ...], ...]


def theory_boundaries(phases: tuple[tuple[str, ...], ...]) -> Boundaries:
    """The boundaries between cells of different (theoretical) phase."""
    vertical = tuple(tuple(a != b for a, b in pairwise(row)) for row in phases)
    horizontal = tuple(tuple(a != b for a, b in zip(upper, lower)) for upper, lower in pairwise(phases))
    return Boundaries(vertical, horizontal)


def theory_caption(t: PhaseTable, theory: tuple[tuple[str, ...], ...]) -> str:
    """What the heavy lines are, and how many measured cells fall on the theory's side of them."""
    pairs = [(c.phase, th) for row, th_row in zip(t.cells, theory) for c, th in zip(row, th_row)
             if c.phase is not None and c.text[:1].isupper()]
    agree = sum(ph == th for ph, th in pairs)
    return (f"heavy lines: the paper's theoretical boundaries (best of its candidate solutions); the measured "
            f"phase matches the theory in {agree} of {len(pairs)} trained cells")


_JUNCTIONS = {(True, True, False, False): "┃", (False, False, True, True): "━", (True, True, True, True): "╋",
              (True, False, True, False): "┛", (True, False, False, True): "┗", (False, True, True, False): "┓",
              (False, True, False, True): "┏", (True, True, True, False): "┫", (True, True, False, True): "┣",
              (True, False, True, True): "┻", (False, True, True, True): "┳", (True, False, False, False): "╹",
              (False, True, False, False): "╻", (False, False, True, False): "╸", (False, False, False, True): "╺",
              (False, False, False, False): " "}


def draw_grid(t: PhaseTable, bounds: Boundaries | None) -> Text:
    """The table as text: a header of x values, then each row's label and coloured cells, with heavy lines
    between cells that ``bounds`` separates (none without bounds)."""
    widest = max(len(c.text) for row in t.cells for c in row)
    # cells of one letter (a wide, compact grid) stay narrow, and the header names the columns it has room for
    width = widest + 2 if widest <= 1 else max([widest] + [len(col) for col in t.columns]) + 2
    label_width = max(len(label) for label in t.row_labels)
    rows, cols = len(t.cells), len(t.columns)

    def v(r: int, c: int) -> bool:  # a line between (r, c) and (r, c+1)
        return bounds is not None and 0 <= r < rows and 0 <= c < cols - 1 and bounds.vertical[r][c]

    def h(r: int, c: int) -> bool:  # a line between (r, c) and (r+1, c)
        return bounds is not None and 0 <= r < rows - 1 and 0 <= c < cols and bounds.horizontal[r][c]

    out = Text()
    out.append(t.corner + "\n", style="cyan")  # on its own line: as a corner it would widen every row
    out.append(" " * (label_width + 1) + _header(t.columns, width) + "\n")
    for r, (label, cells) in enumerate(zip(t.row_labels, t.cells)):
        out.append(label.rjust(label_width) + " ", style="cyan")
        for c, cell in enumerate(cells):
            style = f"black on {cell.color}" if cell.color else ""
            if cell.color and cell.text[:1].islower():
                style += " dim"
            out.append(cell.text.center(width), style=style)
            out.append("┃" if v(r, c) else " ", style="bold")
        out.append("\n")
        if r < rows - 1:
            out.append(" " * (label_width + 1))
            for c in range(cols):
                out.append(("━" if h(r, c) else " ") * width, style="bold")
                out.append(_JUNCTIONS[(v(r, c), v(r + 1, c), h(r, c), h(r, c + 1))], style="bold")
            out.append("\n")
    out.rstrip()
    return out


def _header(columns: tuple[str, ...], width: int) -> str:
    """The column labels over cells ``width`` wide (plus a separator): each centred on its cell, or, if wider
    than that, from its cell's start; a label that would run into the previous one is left out."""
    line = ""
    for k, label in enumerate(columns):
        start = k * (width + 1)
        if len(label) <= width:
            start += (width - len(label)) // 2
        if start >= len(line) + (1 if line else 0):
            line = line.ljust(start) + label
    return line


def compact(t: PhaseTable) -> PhaseTable:
    """A wide table with each cell's letter alone (the seed counts would not fit)."""
    cells = tuple(tuple(replace(c, text=c.text[:1]) for c in row) for row in t.cells)
    return replace(t, cells=cells, caption=t.caption.replace("k/n: seeds in that phase", "seed counts left out "
                                                             "at this width"))


def _fill_adaptive(t: PhaseTable, grid: PhaseGrid, results: Results) -> PhaseTable | None:
    """An adaptive sweep's table with its untrained cells filled from the agreeing cells around them (lower
    case), or None for any other run."""
    spec = results.spec
    if spec.adaptive is None or len(spec.axes) != 2:
        return None
    index = {a.name: {v: i for i, v in enumerate(a.values)} for a in spec.axes}
    names = [a.name for a in spec.axes]

    def node(y: object, x: object) -> tuple[int, ...]:
        at = {grid.y_axis: index[grid.y_axis][y], grid.x_axis: index[grid.x_axis][x]}
        return tuple(at[n] for n in names)

    labels: dict[tuple[int, ...], Hashable] = {node(y, x): cell.phase for y, row in zip(grid.y_values, grid.cells)
              for x, cell in zip(grid.x_values, row) if cell is not None and cell.phase is not None}
    shape = tuple(len(a.values) for a in spec.axes)
    guessed = inferred(labels, shape, spec.adaptive.rounds)
    cells = []
    for y, row in zip(grid.y_values, t.cells):
        out = []
        for x, cell in zip(grid.x_values, row):
            phase = guessed.get(node(y, x)) if cell.phase is None else None
            out.append(TableCell(PHASE_LETTERS[phase].lower(), phase, PHASE_COLORS[phase], 0.0)
                       if isinstance(phase, str) else cell)
        cells.append(tuple(out))
    return replace(t, cells=tuple(cells))


def _table_cell(cell: PhaseCell | None) -> TableCell:
    if cell is None or cell.phase is None:
        return TableCell("·", None, None, 0.0)
    share = cell.fractions[cell.phase]
    agree = round(share * cell.seeds)
    return TableCell(f"{PHASE_LETTERS[cell.phase]} {agree}/{cell.seeds}", cell.phase, PHASE_COLORS[cell.phase], share)
