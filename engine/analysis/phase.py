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

Seeds: each cell keeps its lowest-loss seed and the share of seeds in each phase,
optionally after engine.analysis.selection's drop-worst (the paper's averaging); the
grid records how many seeds each cell used. Letters, colours and captions for drawing
the grid belong to the front ends (toysup_tui/render/phase.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.analysis.selection import keep_best, lowest

if TYPE_CHECKING:
    import torch

    from engine.results import Results

PHASES: tuple[str, ...] = ("not_learned", "superposed", "dedicated")  # results.csv stores the index (0, 1, 2)
SHARED_COS2 = 0.1  # squared cosine above which two features count as sharing a direction


# --- classification ------------------------------------------------------------------------


def classify_phase(W: torch.Tensor, extra: int = -1, represented: torch.Tensor | None = None) -> torch.Tensor:
    """The extra feature's phase per instance as an index into :data:`PHASES`, shape (I,).

    ``W`` is (I, n, m) (row i = feature i's embedding); ``extra`` indexes the
    extra feature (the last by default). ``represented`` (I, n) says which features
    are represented (the model passes its loss-based rule); without it, the
    weights-only stand-in (at least 0.2 of the largest norm) decides.
    """
    import torch  # here, not at the top: reading a phase grid from results.csv needs no torch

    from engine.metrics import EPS, feature_norms, represented_by_norm

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
    used = keep_best(members, discard_worst, metric) if discard_worst else members
    counts = {p: 0 for p in PHASES}
    for row in used:
        counts[phase_name(row["phase"])] += 1
    fractions = {p: c / len(used) for p, c in counts.items()}
    return PhaseCell(phase_name(best["phase"]) if best is not None else None, fractions, len(used))
