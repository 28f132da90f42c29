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
``SHARED_COS2``; with m=1 any two nonzero features do, so the rule reduces to
the norms. The rule is written for any (n, m) so that the paper's 3-in-2 variant
classifies the same way. The model classifies each instance as it trains
(``classify_phase`` in engine/models/relu_output_phase.py) and results.csv stores the
index into ``PHASES`` (engine/kinds/relu_output_phase.py); this module reads the stored phases.

Seeds: a cell's phase comes from one of two selections (:data:`SELECTIONS`), named by the
caller, never chosen silently. ``best`` is best-of-k: the phase of the lowest-loss seed.
``majority`` is the paper's own for these figures: ten models per point, the highest-loss
one dropped, the rest averaged. The paper averages the extra feature's norm and
superposition and colours the point by them; a toysup phase is a category (from the
loss-based represented rule), and the category an average of models shows is the one
most of them are in, so the cell takes the phase most of its kept seeds have (a tie goes
to the phase of the lowest-loss seed among the tied). Averaging the quantities first and
cutting after would invent states no model is in (four antipodal models and five
dedicated ones average to half a superposition). Both rank seeds by the stored ``loss``,
the model's evaluation estimate. Each cell also keeps the share of its used seeds in each
phase. Letters, colours and captions for drawing the grid belong to the front ends
(toysup_tui/render/phase.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from toysup.engine.kinds.relu_output_phase import PHASES, phase_name
from toysup.engine.seed_selection import finite, keep_best, lowest

if TYPE_CHECKING:
    from toysup.engine.results import Results

__all__ = ["PHASES", "SELECTIONS", "PhaseCell", "PhaseGrid", "majority_phase", "phase_grid", "phase_name"]
SELECTIONS = {  # how a cell's seeds give its phase
    "best": "the phase of the lowest-loss seed (best-of-k)",
    "majority": "the phase most seeds have after dropping the highest-loss one (the paper's: 10 models, the worst "
                "dropped, the rest averaged)",
}


# --- the grid --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PhaseCell:
    """One sweep point of the grid."""

    phase: str | None  # the cell's phase under the grid's selection (None: no seed with a finite loss)
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
    selection: str = "best"  # a key of SELECTIONS


def phase_grid(results: Results, x_axis: str, y_axis: str, discard_worst: int | None = None,
               metric: str = "loss", selection: str = "best") -> PhaseGrid:
    """Build the grid from a run's results with a ``phase`` column.

    Each cell's phase follows ``selection`` (:data:`SELECTIONS`); it also holds the
    phase of its lowest-loss seed and the fraction of seeds in each phase, counted
    after dropping the ``discard_worst`` highest-loss seeds (default: none for
    ``best``, 1 for ``majority``, the paper's). The cells are the spec's axis values (x
    ascending, y descending when numeric; a point with no finished run is an empty
    cell); rows reach their cell through their sweep point, whose values are exact.
    Points differing only on other axes share a cell (their seeds pooled).
    """
    if selection not in SELECTIONS:
        raise ValueError(f"unknown phase selection {selection!r}: expected one of {', '.join(SELECTIONS)}")
    if discard_worst is None:
        discard_worst = 1 if selection == "majority" else 0
    axes = {a.name: a.values for a in results.axes}
    xs, ys = _ordered(axes[x_axis], reverse=False), _ordered(axes[y_axis], reverse=True)
    cells: dict[tuple[Any, Any], list[dict[str, Any]]] = {}
    for point, members in results.groups():
        cells.setdefault((point.values[y_axis], point.values[x_axis]), []).extend(members)
    grid = tuple(tuple(_cell(cells.get((y, x)), discard_worst, metric, selection) for x in xs) for y in ys)
    return PhaseGrid(x_axis, y_axis, xs, ys, grid, discard_worst, selection)


def _ordered(values: Sequence[Any], reverse: bool) -> tuple[Any, ...]:
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    return tuple(sorted(values, reverse=reverse)) if numeric else tuple(values)


def _cell(members: list[dict[str, Any]] | None, discard_worst: int, metric: str, selection: str) -> PhaseCell | None:
    if not members:
        return None
    best = lowest(members, metric)
    used = keep_best(members, discard_worst, metric) if discard_worst else members
    counts = {p: 0 for p in PHASES}
    for row in used:
        counts[phase_name(row["phase"])] += 1
    fractions = {p: c / len(used) for p, c in counts.items()}
    best_phase = phase_name(best["phase"]) if best is not None else None
    phase = best_phase if selection == "best" or best is None else majority_phase(used, metric)
    return PhaseCell(phase, best_phase, fractions, len(used))


def majority_phase(rows: list[dict[str, Any]], metric: str = "loss") -> str | None:
    """The phase most of ``rows`` have (rows without a finite ``metric`` do not vote); a tie goes to the phase
    of the lowest-``metric`` row among the tied phases. None if no row has a finite metric."""
    voters = [r for r in rows if finite(r, metric) is not None]
    if not voters:
        return None
    counts: dict[str, int] = {}
    for row in voters:
        counts[phase_name(row["phase"])] = counts.get(phase_name(row["phase"]), 0) + 1
    most = max(counts.values())
    tied = [r for r in voters if counts[phase_name(r["phase"])] == most]
    decider = lowest(tied, metric)
    assert decider is not None  # every voter has a finite metric
    return phase_name(decider["phase"])
