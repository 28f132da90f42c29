"""Several runs side by side, as numbers: what differs in their configs, and their summary metrics per sweep point.

For ``toysup compare`` (tables, charts, ``--json``) and the TUI's compare screen. Points are
matched by their exact parameter values (from each run's config.toml, never from the CSV's
rounded columns); a point one run lacks is None in that run's place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from toysup.engine.analysis.columns import headline_metrics
from toysup.engine.results import Results, point_label
from toysup.engine.spec import Spec

MISSING = None


def config_entries(spec: Spec) -> dict[str, Any]:
    """A spec's config as flat name -> value: the model, every fixed parameter, each axis as ``sweep EXPR``,
    and an adaptive sweep's settings."""
    entries: dict[str, Any] = {"model": spec.model}
    entries.update(spec.params)
    for axis in spec.axes:
        expr = axis.expr if isinstance(axis.expr, str) else ",".join(str(v) for v in axis.expr)
        entries[axis.name] = f"sweep {expr}"
    if spec.adaptive is not None:
        entries.update({f"adaptive.{k}": v for k, v in spec.adaptive.to_dict().items()})
    return entries


def config_diff(specs: Sequence[Spec]) -> dict[str, list[Any]]:
    """Only what differs: each config entry whose value is not the same in every run (absent: None), in the
    order the first run lists them, then the others'."""
    entries = [config_entries(s) for s in specs]
    names = list(dict.fromkeys(name for e in entries for name in e))
    diff = {}
    for name in names:
        values = [e.get(name, MISSING) for e in entries]
        if any(v != values[0] for v in values[1:]):
            diff[name] = values
    return diff


@dataclass(frozen=True)
class PointRow:
    """One sweep point's values and, per metric, each run's median over seeds (None: no such point or value)."""

    values: dict[str, Any]
    medians: dict[str, list[float | None]]
    seeds: list[int]  # finished instances at the point, per run

    @property
    def label(self) -> str:
        return point_label(self.values)


def shared_metrics(results: Sequence[Results]) -> list[str]:
    """The summary metrics every run has, in the first run's model's order."""
    lists = [headline_metrics(r.spec.model, list(r.rows[0])) if r.rows else [] for r in results]
    return [m for m in lists[0] if all(m in other for other in lists[1:])]


def _key(values: dict[str, Any], names: Sequence[str]) -> tuple[Any, ...]:
    return tuple(values.get(n, MISSING) for n in names)


def side_by_side(results: Sequence[Results], metrics: Sequence[str] | None = None) -> list[PointRow]:
    """The medians of ``metrics`` (default: shared_metrics) at every sweep point of any run, runs side by side.

    A point is its values on the union of the runs' axes; a run without an axis has no value there, so its points
    match only those of runs that also lack it. The first run's points come first, in its order."""
    metrics = list(metrics) if metrics is not None else shared_metrics(results)
    names = list(dict.fromkeys(a.name for r in results for a in r.axes))
    order: dict[tuple[Any, ...], dict[str, Any]] = {}
    found: list[dict[tuple[Any, ...], tuple[dict[str, tuple[float, float, float]], int]]] = []
    for r in results:
        mine: dict[tuple[Any, ...], tuple[dict[str, tuple[float, float, float]], int]] = {}
        stats = {s.point: s for s in r.stats(metrics)}
        for point in r.points:
            key = _key(point.values, names)
            order.setdefault(key, {n: v for n, v in zip(names, key) if v is not MISSING})
            st = stats.get(point.index)
            if st is not None:
                mine[key] = (st.stats, st.n)
        found.append(mine)
    rows = []
    for key, values in order.items():
        medians = {m: [f[key][0][m][0] if key in f and m in f[key][0] else None for f in found] for m in metrics}
        rows.append(PointRow(values, medians, [f[key][1] if key in f else 0 for f in found]))
    return rows


def shared_axes(results: Sequence[Results]) -> list[str]:
    """The swept parameters every run has, in the first run's order: the x axes of overlaid charts."""
    names = [[a.name for a in r.axes] for r in results]
    return [n for n in names[0] if all(n in other for other in names[1:])]


def to_json(run_ids: Sequence[str], results: Sequence[Results], metrics: Sequence[str] | None = None
            ) -> dict[str, Any]:
    """The comparison as plain JSON values."""
    rows = side_by_side(results, metrics)
    return {
        "runs": list(run_ids),
        "config_diff": {k: list(v) for k, v in config_diff([r.spec for r in results]).items()},
        "metrics": list(metrics) if metrics is not None else shared_metrics(results),
        "points": [{"point": row.values, "seeds": row.seeds, "median": row.medians} for row in rows],
    }
