"""Representative instances of a run (the lowest-loss seed at each end of its first axis), and the paper's
seed selections (engine/seed_selection.py: best-of-k, drop-worst), found here too for the analyses' callers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from toysup.engine.results import Point, Results, value_text
from toysup.engine.seed_selection import best_of_k, drop_worst, finite, group_by_point, keep_best, lowest

__all__ = ["Representative", "best_of_k", "drop_worst", "finite", "group_by_point", "keep_best", "lowest",
           "representatives"]


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
