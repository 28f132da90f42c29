"""Which seeds to look at: the paper's best-of-k and drop-worst selections, and representative instances.

The paper trains ten models per point and averages the nine with the lowest loss;
for its neuron-model figure it shows the lowest-loss model of 1000. Here every seed
is kept in results.csv, and :func:`best_of_k` and :func:`drop_worst` apply those
selections on request only: a caller names them (``toysup report --best-of``, the
phase grid's ``selection``: engine.analysis.phase.SELECTIONS). They rank by the stored
``loss``, the model's estimate of its expected loss (engine/estimator.py for relu_output).
Rows reach their point by its ``point`` index, never by values read back from a CSV (see
engine.results).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # engine.results is imported lazily: models import this module (via phase) at registration
    from toysup.engine.results import Point, Results


def finite(row: dict[str, Any], metric: str) -> float | None:
    """``row[metric]`` as a float if it is a finite number (not a bool, not an empty cell), else None."""
    value = row.get(metric)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def group_by_point(rows: Iterable[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    """Rows grouped by their ``point`` index (engine.results), points in first-seen order, rows by seed."""
    groups: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row["point"], []).append(row)
    return {k: sorted(v, key=lambda r: r.get("seed", 0)) for k, v in groups.items()}


def lowest(rows: Iterable[dict[str, Any]], metric: str = "loss") -> dict[str, Any] | None:
    """The row with the lowest finite ``metric`` (the first of equals), or None if no row has one."""
    usable = [(value, r) for r in rows if (value := finite(r, metric)) is not None]
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
    return [r for members in group_by_point(rows).values() for r in keep_best(members, count, metric)]


def keep_best(members: list[dict[str, Any]], count: int, metric: str = "loss") -> list[dict[str, Any]]:
    """``members`` without their ``count`` highest-``metric`` rows (at least one kept), in their order."""
    ranked = sorted(members, key=lambda r: _sort_key(r, metric))
    keep = {id(r) for r in ranked[:max(1, len(ranked) - count)]}
    return [r for r in members if id(r) in keep]


def _sort_key(row: dict[str, Any], metric: str) -> float:
    value = finite(row, metric)
    return math.inf if value is None else value


@dataclass
class Representative:
    """An instance chosen to show a sweep point's geometry: the lowest-loss seed of the point."""

    role: str  # e.g. "sparsest", "densest", "low dropout", "only point"
    row: dict[str, Any]
    point: Point
    seeds: int  # how many seeds it was chosen from

    @property
    def label(self) -> str:
        """The point's axis values, e.g. "feature_probability=0.01"."""
        return self.point.label()


def representatives(results: Results) -> list[Representative]:
    """The lowest-loss seed at each end of the first axis (other axes at their first value).

    For a feature_probability axis the ends are called "sparsest" and "densest";
    otherwise "low NAME" and "high NAME". A run without axes gives its one point.
    """
    from toysup.engine.results import value_text

    if not results.axes:
        best = lowest(results.rows)
        return [Representative("only point", best, results.points[0], len(results.rows))] if best else []
    first, others = results.axes[0], results.axes[1:]
    fixed = {a.name: a.values[0] for a in others}
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in first.values)
    ends = [min(first.values), max(first.values)] if numeric else [first.values[0], first.values[-1]]
    if first.name == "feature_probability":
        roles = ["sparsest", "densest"]
    elif numeric:
        roles = [f"low {first.name}", f"high {first.name}"]
    else:
        roles = [f"{first.name}={value_text(v)}" for v in ends]
    out: list[Representative] = []
    for role, value in dict(zip(roles, ends)).items():
        point = results.find_point({first.name: value, **fixed})
        members = results.members(point) if point is not None else []
        best = lowest(members)
        if point is not None and best and all(best["instance"] != r.row["instance"] for r in out):
            out.append(Representative(role, best, point, len(members)))
    return out
