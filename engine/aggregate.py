"""Aggregate per-instance rows over seeds: one record per sweep point with median and spread."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any


@dataclass
class PointStats:
    """A sweep point: its axis values, seed count, and per-metric (median, q25, q75)."""

    point: dict[str, Any]
    n: int
    stats: dict[str, tuple[float, float, float]]


def _quantiles(values: list[float]) -> tuple[float, float, float]:
    values = sorted(values)
    if len(values) == 1:
        return values[0], values[0], values[0]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return statistics.median(values), q[0], q[2]


def by_point(rows: list[dict[str, Any]], axes: list[str], metrics: list[str]) -> list[PointStats]:
    """Group rows by their axis values (in first-seen order) and summarise each numeric metric.

    Empty cells (a diverged instance, an undefined metric) are skipped; booleans count as 0/1.
    """
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row.get(a) for a in axes), []).append(row)
    out = []
    for key, members in groups.items():
        stats = {}
        for m in metrics:
            vals = [float(r[m]) for r in members if isinstance(r.get(m), (int, float))]
            vals = [v for v in vals if math.isfinite(v)]
            if vals:
                stats[m] = _quantiles(vals)
        out.append(PointStats(dict(zip(axes, key)), len(members), stats))
    return out
