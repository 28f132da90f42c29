"""Statistics over seeds as series for charts: training-loss curves per sweep point, and a metric
against a swept parameter. Sweep points come from engine.results.Results, by index, never by
comparing values read back from a CSV."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from toysup.engine.analysis.aggregate import number, quartiles
from toysup.engine.errors import SpecError
from toysup.engine.results import point_label

if TYPE_CHECKING:
    from toysup.engine.results import Results
    from toysup.engine.spec import Axis, Spec

MAX_SERIES = 10  # series per chart before the rest are dropped (a terminal chart tells no more apart)


@dataclass
class Band:
    """One series: x values and, at each x, the median and 25th/75th percentiles over seeds."""

    label: str
    x: list[Any] = field(default_factory=list)
    median: list[float] = field(default_factory=list)
    q25: list[float] = field(default_factory=list)
    q75: list[float] = field(default_factory=list)
    n: int = 0  # instances (seeds) behind the series

    def add(self, x: Any, stats: tuple[float, float, float]) -> None:
        """Append one point: ``stats`` is (median, q25, q75), as engine.analysis.aggregate.quartiles gives."""
        self.x.append(x)
        self.median.append(stats[0])
        self.q25.append(stats[1])
        self.q75.append(stats[2])


def curve_bands(curves: Sequence[dict[str, Any]], groups: Sequence[tuple[str, Sequence[int]]]) -> list[Band]:
    """Median and IQR over the instances of each group at every logged step.

    ``curves`` are curves.csv rows (instance, step, loss); ``groups`` pairs a label
    with instance indices. A step counts the instances that logged it (a diverged
    instance stops logging), and groups with no curves yet are left out.
    """
    by_instance: dict[int, dict[int, float]] = {}
    for row in curves:
        loss = row.get("loss")
        if isinstance(loss, (int, float)) and math.isfinite(loss):
            by_instance.setdefault(int(row["instance"]), {})[int(row["step"])] = float(loss)
    bands = []
    for label, members in groups:
        present = [by_instance[i] for i in members if i in by_instance]
        if not present:
            continue
        band = Band(label, n=len(present))
        for step in sorted({s for c in present for s in c}):
            band.add(step, quartiles([c[step] for c in present if step in c]))
        bands.append(band)
    return bands


def loss_bands(results: Results) -> list[Band]:
    """The run's training-loss curves, one band per sweep point (RunDataError with no curves yet)."""
    groups = [(p.label(short=True), p.instances) for p in results.points]
    return curve_bands(results.curves(), groups)


def choose_axis(spec: Spec, x: str | None = None) -> Axis | None:
    """The swept parameter to put on the x axis of metric charts: ``x``, else the first axis.

    None for a run without axes. An ``x`` that is not swept raises SpecError naming the choices.
    """
    names = [a.name for a in spec.axes]
    if x is None:
        return spec.axes[0] if spec.axes else None
    if x not in names:
        choices = f"swept: {', '.join(names)}" if names else "this run sweeps nothing"
        raise SpecError(f"--x {x!r} is not a swept parameter of this run ({choices})")
    return spec.axes[names.index(x)]


def metric_bands(results: Results, x: str, metric: str, max_series: int = MAX_SERIES) -> list[Band]:
    """Median and IQR of ``metric`` over seeds at each value of axis ``x``.

    With two or more axes there is one series per value of the first other axis
    (up to ``max_series``, the rest dropped); any further axes are pooled with the
    seeds, because a terminal chart cannot show more than one split legibly. Rows
    reach their place through their sweep point's exact values.
    Booleans count as 0/1 and empty cells are skipped, as in engine.analysis.aggregate.
    """
    xaxis = next(a for a in results.axes if a.name == x)
    split = next((a for a in results.axes if a.name != x), None)
    x_at = {v: i for i, v in enumerate(xaxis.values)}
    series_at = {v: i for i, v in enumerate(split.values)} if split else {}
    pooled: dict[tuple[int, int], list[float]] = {}
    for point, members in results.groups():
        key = (series_at[point.values[split.name]] if split else 0, x_at[point.values[x]])
        values = [number(r.get(metric)) for r in members]
        pooled.setdefault(key, []).extend(v for v in values if v is not None)
    bands = []
    for s, sv in enumerate(list(split.values[:max_series]) if split else [None]):
        band = Band(point_label({split.name: sv}) if split else metric)
        for i, xv in enumerate(xaxis.values):
            vals = pooled.get((s, i))
            if vals:
                band.add(xv, quartiles(vals))
                band.n += len(vals)
        if band.x:
            bands.append(band)
    return bands
