"""Which seeds count: the paper's lowest-loss (best-of-k) and drop-worst rules over result rows, as pure functions.

The paper trains ten models per point and averages the nine with the lowest loss;
for its neuron-model figure it shows the lowest-loss model of 1000. Here every seed
is kept in results.csv, and :func:`best_of_k` and :func:`drop_worst` apply those
selections on request only: a caller names them (``toysup report --best-of``, the
phase grid's ``selection``: engine.analysis.phase.SELECTIONS). They rank by the stored
``loss``, the model's estimate of its expected loss (engine/estimator.py for relu_output).
Rows reach their point by its ``point`` index, never by values read back from a CSV (see
engine.results). The rules read rows alone (no run, no spec), so the results, the analyses
and the adaptive sweep's rounds (engine/adaptive_grid.py) share them from the engine's bottom layer.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any


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
