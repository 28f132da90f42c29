"""Aggregate per-instance rows over seeds: one record per sweep point with median and spread."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass
class PointStats:
    """A sweep point: its axis values, seed count, and per-metric (median, q25, q75)."""

    point: dict[str, Any]
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
                stats[m] = quartiles(vals)
        out.append(PointStats(dict(zip(axes, key)), len(members), stats))
    return out
