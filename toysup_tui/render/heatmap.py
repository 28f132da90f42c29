"""Matrices (W^T W, a privileged basis's W) as tables with a background colour per cell."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Group
from rich.table import Table
from rich.text import Text

from toysup_tui.render.charts import colour_level


def overlap_heatmap(matrix: Sequence[Sequence[float]], width: int = 80, title: str = "W^T W",
                    color: bool = True) -> Group:
    """The feature-overlap matrix (n x n) as a heatmap table; see :func:`heatmap`."""
    return heatmap(matrix, width, title, "feature overlaps W_i·W_j", "features", color)


def heatmap(matrix: Sequence[Sequence[float]], width: int = 80, title: str = "W^T W",
            what: str = "feature overlaps W_i·W_j", columns_are: str = "features", color: bool = True) -> Group:
    """A matrix as a table with a background colour per cell (red +, blue -).

    plotext has no usable heatmap; a table keeps exact numbers when they fit. Up to
    (width - 6) / 6 columns show two decimals; more become 3- or 2-character cells
    (++/-- for |v| >= half the scale, +/- above a tenth, · near 0) so the sign survives
    without colour; beyond what fits, the first columns (the most important features) are shown.
    """
    rows, cols = len(matrix), len(matrix[0]) if matrix else 0
    cell = 6 if 6 * cols + 5 <= width else 3 if 3 * cols + 4 <= width else 2
    k = min(cols, max(1, (width - 4) // cell))
    vmax = max((abs(v) for row in matrix for v in row[:k]), default=1.0) or 1.0
    shown = f", first {k} of {cols} {columns_are}" if k < cols else ""
    heading = Text(f"{title} ({what}{shown}; colour scale ±{vmax:.2f})", style="italic")
    table = Table(box=None, padding=(0, 0), show_header=True, pad_edge=False)
    table.add_column("", style="dim", justify="right", min_width=3)
    for j in range(k):
        head = str(j) if cell == 6 or (j % 5 == 0 and len(str(j)) <= cell + 1) else ""
        table.add_column(head, justify="right", no_wrap=True, min_width=cell, header_style="dim")
    for i in range(rows if rows != cols else k):
        table.add_row(str(i), *[_heat_cell(matrix[i][j], vmax, cell, color) for j in range(k)])
    return Group(heading, table)


def _heat_cell(value: float, vmax: float, cell: int, color: bool) -> Text:
    t = colour_level(value / vmax)  # on a grid: a last-bit difference changes no colour
    if cell == 6:
        text = f"{round(value, 2) + 0.0:6.2f}"  # + 0.0: a tiny negative shows as 0.00, not -0.00
    else:
        mark = "+" if t > 0 else "-"
        text = ("·" if abs(t) < 0.1 else mark * 2 if abs(t) >= 0.5 else mark).rjust(cell)
    if not color or abs(t) < 0.05:
        return Text(text)
    end = (220, 60, 60) if t > 0 else (60, 110, 230)
    base = (70, 70, 70)
    rgb = tuple(int(b + (e - b) * abs(t)) for b, e in zip(base, end))
    return Text(text, style=f"bold white on rgb({rgb[0]},{rgb[1]},{rgb[2]})")
