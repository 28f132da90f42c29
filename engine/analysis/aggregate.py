"""Aggregate per-instance rows over seeds: one record per sweep point (by its index) with median and spread."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass
class PointStats:
    """A sweep point (its index in the spec's points), its seed count, and per-metric (median, q25, q75)."""

    point: int
    n: int
    stats: dict[str, tuple[float, float, float]]


def quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    """Median, 25th and 75th percentile with linear interpolation (numpy's default), in plain Python:
    numpy's per-call overhead dominates for a handful of seeds, and live charts call this for every
    step of every point. The one definition of "median and spread" used by tables and charts."""
    ordered = sorted(values)
    last = len(ordered) - 1

    def at(q: float) -> float:
        pos = q * last
        lo = int(pos)
        hi = min(lo + 1, last)
        return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)

    return at(0.5), at(0.25), at(0.75)


def number(value: Any) -> float | None:
    """A finite number (booleans as 0/1) as a float; None for an empty cell, text or a non-finite value."""
    if isinstance(value, (int, float)) and math.isfinite(float(value)):
        return float(value)
    return None


def by_point(rows: list[dict[str, Any]], metrics: list[str]) -> list[PointStats]:
    """Group rows by their ``point`` index (in first-seen order) and summarise each numeric metric.

    Rows are grouped by the point index, never by their axis values: those are read back
    from a CSV to 9 digits and may not tell two points apart (see engine.results).
    Empty cells (a diverged instance, an undefined metric) are skipped; booleans count as 0/1.
    """
    groups: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row["point"], []).append(row)
    return [PointStats(point, len(members), summarize(members, metrics)) for point, members in groups.items()]


def summarize(rows: list[dict[str, Any]], metrics: list[str]) -> dict[str, tuple[float, float, float]]:
    """(median, q25, q75) of each metric over ``rows``, for the metrics with at least one finite value."""
    stats = {}
    for m in metrics:
        vals = [float(r[m]) for r in rows if isinstance(r.get(m), (int, float))]
        vals = [v for v in vals if math.isfinite(v)]
        if vals:
            stats[m] = quartiles(vals)
    return stats
