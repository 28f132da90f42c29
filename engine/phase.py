"""Phase diagrams of an "extra" feature (Elhage et al. 2022, "Superposition as a Phase Change"), as pure functions.

The paper trains n=2 features in m=1 dimension (ReLU output model), the first
with importance 1, the second ("extra") with importance 0.1-10, both with the
same density 1-0.01, and asks what happened to the extra feature:

- ``not_learned``: the extra feature is not represented (relu_output's rule: zeroing its
  embedding raises the loss by at most 10% of its constant-output loss; engine/metrics.py);
- ``superposed``: it is represented and shares its direction with another
  represented feature (with m=1: both features nonzero; antipodal, W = [1, -1],
  in the paper's solution);
- ``dedicated``: it is represented and orthogonal to every other represented
  feature (with m=1: the first feature is dropped, W = [0, 1]).

Two features "share a direction" when their squared cosine exceeds
:data:`SHARED_COS2`; with m=1 any two nonzero features do, so the rule reduces to
the norms. The rule is written for any (n, m) so that the paper's 3-in-2 variant
classifies the same way.

Seed selection. The paper trains ten models per point and averages the nine with
the lowest loss; for its neuron-model figure it shows the lowest-loss model of
1000. Here every seed is kept in results.csv, and :func:`best_of_k` and
:func:`drop_worst` apply those selections on request only: a caller names them,
and the grid records how many seeds each cell used.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from engine.metrics import EPS, feature_norms, represented_by_norm

if TYPE_CHECKING:
    from engine.results import Results

PHASES: tuple[str, ...] = ("not_learned", "superposed", "dedicated")  # results.csv stores the index (0, 1, 2)
PHASE_LETTERS = {"not_learned": "N", "superposed": "S", "dedicated": "D"}
# Colour names rich understands; the grid's cells carry them so every front end colours alike.
PHASE_COLORS = {"not_learned": "grey50", "superposed": "dark_orange", "dedicated": "dodger_blue2"}
SHARED_COS2 = 0.1  # squared cosine above which two features count as sharing a direction


# --- classification ------------------------------------------------------------------------


def classify_phase(W: torch.Tensor, extra: int = -1, represented: torch.Tensor | None = None) -> torch.Tensor:
    """The extra feature's phase per instance as an index into :data:`PHASES`, shape (I,).

    ``W`` is (I, n, m) (row i = feature i's embedding); ``extra`` indexes the
    extra feature (the last by default). ``represented`` (I, n) says which features
    are represented (the model passes its loss-based rule); without it, the
    weights-only stand-in (at least 0.2 of the largest norm) decides.
    """
    norms = feature_norms(W)
    if represented is None:
        represented = represented_by_norm(W)
    extra = extra % W.shape[1]
    unit = W / norms.clamp_min(EPS).unsqueeze(-1)
    cos2 = torch.einsum("km,kjm->kj", unit[:, extra], unit).square()
    others = represented.clone()
    others[:, extra] = False
    shares = ((cos2 > SHARED_COS2) & others).any(-1)
    phase = torch.where(shares, 1, 2)
    return torch.where(represented[:, extra], phase, 0)


def phase_name(value: Any) -> str:
    """A phase from results.csv (its index, an integral float, or its name) as its name."""
    if isinstance(value, str):
        if value in PHASES:
            return value
        raise ValueError(f"unknown phase {value!r}: expected one of {', '.join(PHASES)}")
    index = int(value)
    if index != value or not 0 <= index < len(PHASES):
        raise ValueError(f"unknown phase index {value!r}: expected 0-{len(PHASES) - 1}")
    return PHASES[index]


# --- seed selection ------------------------------------------------------------------------


def _finite_loss(row: dict[str, Any], metric: str) -> float | None:
    value = row.get(metric)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _sort_key(row: dict[str, Any], metric: str) -> float:
    value = _finite_loss(row, metric)
    return math.inf if value is None else value


def group_by_point(rows: Iterable[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    """Rows grouped by their ``point`` index (engine.results), points in first-seen order, rows by seed."""
    groups: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row["point"], []).append(row)
    return {k: sorted(v, key=lambda r: r.get("seed", 0)) for k, v in groups.items()}


def lowest(rows: Iterable[dict[str, Any]], metric: str = "loss") -> dict[str, Any] | None:
    """The row with the lowest finite ``metric``, or None if no row has one."""
    usable = [(value, r) for r in rows if (value := _finite_loss(r, metric)) is not None]
    return min(usable, key=lambda pair: pair[0])[1] if usable else None


def best_of_k(rows: Iterable[dict[str, Any]], k: int | None = None, metric: str = "loss") -> list[dict[str, Any]]:
    """The lowest-``metric`` row at each sweep point (the paper's selection), one row per point.

    ``rows`` carry their ``point`` index (engine.results.Results.rows). ``k`` limits the
    choice to each point's first k seeds (by seed), to see how the picture depends on
    the number of restarts; None uses every seed. Rows whose metric is missing or not
    finite (a diverged instance) are never chosen; a point with no usable row is left out.
    """
    if k is not None and k < 1:
        raise ValueError(f"best_of_k needs k >= 1, got {k}")
    best = (lowest(members[:k], metric) for members in group_by_point(rows).values())
    return [row for row in best if row is not None]


def drop_worst(rows: Iterable[dict[str, Any]], count: int = 1, metric: str = "loss") -> list[dict[str, Any]]:
    """Every row except the ``count`` highest-``metric`` ones at each point (the paper's phase
    diagrams: ten seeds, the worst discarded). A point keeps at least one row; rows with
    no finite metric count as the worst."""
    if count < 0:
        raise ValueError(f"drop_worst needs count >= 0, got {count}")
    return [r for members in group_by_point(rows).values() for r in _keep_best(members, count, metric)]


def _keep_best(members: list[dict[str, Any]], count: int, metric: str) -> list[dict[str, Any]]:
    """``members`` without their ``count`` highest-``metric`` rows (at least one kept), in their order."""
    ranked = sorted(members, key=lambda r: _sort_key(r, metric))
    keep = {id(r) for r in ranked[:max(1, len(ranked) - count)]}
    return [r for r in members if id(r) in keep]


# --- the grid --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PhaseCell:
    """One sweep point of the grid."""

    best: str | None  # phase of the lowest-loss seed (None: no seed with a finite loss)
    fractions: dict[str, float]  # share of the used seeds in each phase, every phase listed
    seeds: int  # seeds used (after any drop_worst)


@dataclass(frozen=True)
class PhaseGrid:
    """Phases over two axes: ``cells[r][c]`` is the point (y_values[r], x_values[c]).

    Rows run from the largest y value down, so the grid reads like a chart.
    """

    x_axis: str
    y_axis: str
    x_values: tuple[Any, ...]
    y_values: tuple[Any, ...]
    cells: tuple[tuple[PhaseCell | None, ...], ...]  # None: no run at that point
    discarded_worst: int  # seeds dropped per point before counting fractions


def phase_grid(results: Results, x_axis: str, y_axis: str, discard_worst: int = 0,
               metric: str = "loss") -> PhaseGrid:
    """Build the grid from a run's results with a ``phase`` column.

    Each cell holds the phase of its lowest-loss seed and the fraction of seeds in
    each phase, counted after dropping the ``discard_worst`` highest-loss seeds
    (1 reproduces the paper's averaging). The cells are the spec's axis values (x
    ascending, y descending when numeric; a point with no finished run is an empty
    cell); rows reach their cell through their sweep point, whose values are exact.
    Points differing only on other axes share a cell (their seeds pooled).
    """
    axes = {a.name: a.values for a in results.axes}
    xs, ys = _ordered(axes[x_axis], reverse=False), _ordered(axes[y_axis], reverse=True)
    cells: dict[tuple[Any, Any], list[dict[str, Any]]] = {}
    for point, members in results.groups():
        cells.setdefault((point.values[y_axis], point.values[x_axis]), []).extend(members)
    grid = tuple(tuple(_cell(cells.get((y, x)), discard_worst, metric) for x in xs) for y in ys)
    return PhaseGrid(x_axis, y_axis, xs, ys, grid, discard_worst)


def _ordered(values: Sequence[Any], reverse: bool) -> tuple[Any, ...]:
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    return tuple(sorted(values, reverse=reverse)) if numeric else tuple(values)


def _cell(members: list[dict[str, Any]] | None, discard_worst: int, metric: str) -> PhaseCell | None:
    if not members:
        return None
    best = lowest(members, metric)
    used = _keep_best(members, discard_worst, metric) if discard_worst else members
    counts = {p: 0 for p in PHASES}
    for row in used:
        counts[phase_name(row["phase"])] += 1
    fractions = {p: c / len(used) for p, c in counts.items()}
    return PhaseCell(phase_name(best["phase"]) if best is not None else None, fractions, len(used))


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
        columns=tuple(_label(v) for v in grid.x_values),
        row_labels=tuple(_label(v) for v in grid.y_values),
        cells=cells,
        legend=tuple((PHASE_LETTERS[p], p, PHASE_COLORS[p]) for p in PHASES),
        caption=caption,
    )


def _table_cell(cell: PhaseCell | None) -> TableCell:
    if cell is None or cell.best is None:
        return TableCell("·", None, None, 0.0)
    share = cell.fractions[cell.best]
    agree = round(share * cell.seeds)
    return TableCell(f"{PHASE_LETTERS[cell.best]} {agree}/{cell.seeds}", cell.best, PHASE_COLORS[cell.best], share)


def _label(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
