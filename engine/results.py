"""A run's results as one object: its rows, its sweep points, and the joins to curves, features and weights.

Everything that reads a run's results (``toysup report``, the TUI's results and
compare screens, ``toysup export``, the notebook API) goes through :class:`Results`,
so a row's sweep point is found one way: by its ``point`` index into the spec's
points. The point's parameter values come from the spec (config.toml, which
reproduces the axes exactly), never from the swept columns of results.csv, which
hold them to 9 significant digits: two points can differ beyond that (1/3 and
0.333333333), and a float read back from a CSV never equals the value trained with.
Runs written before results.csv had a ``point`` column get it from the instance
index: the spec's instances run through the points in order, seeds innermost.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from toysup.engine.analysis.aggregate import PointStats, by_point
from toysup.engine.errors import RunDataError
from toysup.engine.seed_selection import best_of_k
from toysup.engine.spec import Axis, Spec

if TYPE_CHECKING:
    import torch

    from toysup.engine.run.folder import Run


@dataclass(frozen=True)
class Point:
    """One sweep point: its index, its exact axis values, and the instances (seeds) the spec gives it."""

    index: int
    values: dict[str, Any]
    instances: range

    def label(self, short: bool = False) -> str:
        """The axis values as text, e.g. ``feature_probability=0.1`` (``short``: ``0.1``)."""
        return point_label(self.values, short)


def point_label(values: dict[str, Any], short: bool = False) -> str:
    """A sweep point's axis values as text; ``short`` gives the values only, comma-separated, for places
    whose heading or title names the axes. A run without axes has one point, "all seeds"."""
    if not values:
        return "all seeds"
    if short:
        return ", ".join(value_text(v) for v in values.values())
    return ", ".join(f"{k}={value_text(v)}" for k, v in values.items())


def value_text(value: Any) -> str:
    """A value as labels and table cells show it, the one rule for every front end: booleans as
    yes/no, floats to 3 significant digits (exponent notation from 1000 on, trailing zeros dropped),
    NaN (an undefined metric) as "—", anything else as str."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return "—" if value != value else f"{value:.3g}"
    return str(value)


class Results:
    """The rows of a run's results.csv (each with its ``point``), the spec's sweep points, and the
    run's curves, features and weights by instance.

    ``rows`` are results.csv's rows as stored, plus ``point`` for runs written before that column;
    ``columns`` is the header (with ``point`` after ``seed`` likewise). Build one with
    :meth:`open` from a run, or from a spec and rows (a run is then needed only for the joins).
    """

    def __init__(self, spec: Spec, columns: Sequence[str], rows: Iterable[dict[str, Any]],
                 run: Run | None = None) -> None:
        self.spec = spec
        self.run = run
        self.columns = list(columns)
        if self.columns and "point" not in self.columns:
            at = self.columns.index("seed") + 1 if "seed" in self.columns else len(self.columns)
            self.columns.insert(at, "point")
        seeds = spec.seeds
        names = [a.name for a in spec.axes]
        self.points: tuple[Point, ...] = tuple(
            Point(p, values, range(p * seeds, (p + 1) * seeds)) for p, values in enumerate(spec.points() or [{}]))
        self.rows = [self._checked(row) for row in rows]
        self._members: dict[int, list[dict[str, Any]]] = {}
        for row in self.rows:
            self._members.setdefault(row["point"], []).append(row)
        for members in self._members.values():
            members.sort(key=lambda r: (r.get("seed", 0), r["instance"]))
        self._by_instance = {row["instance"]: row for row in self.rows}
        self._axis_names = names
        self._tables: dict[str, list[dict[str, Any]]] = {}

    @classmethod
    def open(cls, run: Run, spec: Spec | None = None) -> Results:
        """The results of ``run`` so far (RunDataError if its config or results cannot be read); ``spec``: the
        run's own, when the caller has read it already (config.toml is then not read again)."""
        spec = run.spec() if spec is None else spec
        columns, rows = run.results()
        return cls(spec, columns, rows, run)

    def _checked(self, row: dict[str, Any]) -> dict[str, Any]:
        instance = row.get("instance")
        if not isinstance(instance, int) or isinstance(instance, bool) or not 0 <= instance < self.spec.n_instances:
            raise RunDataError(f"results.csv: instance {instance!r} is not one of the run's "
                               f"{self.spec.n_instances} instances")
        expected = self.spec.point_of(instance)
        stored = row.get("point")
        if stored is None:  # a run from before the point column: put it after seed, as results.csv now has it
            out = {}
            for key, value in row.items():
                out[key] = value
                if key == "seed":
                    out["point"] = expected
            out.setdefault("point", expected)
            return out
        if stored != expected:
            raise RunDataError(f"results.csv: instance {instance} has point {stored!r}, but the run's spec puts "
                               f"it at point {expected}")
        return row

    # --- points --------------------------------------------------------------------------------

    @property
    def axes(self) -> tuple[Axis, ...]:
        return self.spec.axes

    def point(self, index: int) -> Point:
        return self.points[index]

    def point_of(self, row_or_instance: dict[str, Any] | int) -> Point:
        """The sweep point of a row or of an instance index."""
        if isinstance(row_or_instance, dict):
            return self.points[row_or_instance["point"]]
        return self.points[self.spec.point_of(row_or_instance)]

    def find_point(self, values: dict[str, Any]) -> Point | None:
        """The point whose axis values equal ``values`` exactly (values from the spec, not from a CSV)."""
        return next((p for p in self.points if all(p.values.get(k) == v for k, v in values.items())), None)

    def members(self, point: Point | int) -> list[dict[str, Any]]:
        """The rows of one point, by seed."""
        index = point.index if isinstance(point, Point) else point
        return list(self._members.get(index, []))

    def groups(self) -> list[tuple[Point, list[dict[str, Any]]]]:
        """Each point with finished instances and its rows (by seed), in the spec's order."""
        return [(p, self.members(p)) for p in self.points if p.index in self._members]

    def label(self, point: Point | int, short: bool = False) -> str:
        return (point if isinstance(point, Point) else self.points[point]).label(short)

    def row(self, instance: int) -> dict[str, Any] | None:
        """The results row of an instance, or None if it has not finished."""
        return self._by_instance.get(instance)

    def instance_config(self, instance: int) -> dict[str, Any]:
        """The full parameter set of one instance: fixed parameters, its point's exact values, its seed."""
        if not 0 <= instance < self.spec.n_instances:
            raise RunDataError(f"instance {instance} is not part of this run (it has {self.spec.n_instances})")
        point = self.point_of(instance)
        seed = int(self.spec.params["seed"]) + instance - point.instances.start
        return {**self.spec.params, **point.values, "seed": seed}

    # --- aggregation and selection -------------------------------------------------------------

    def stats(self, metrics: Sequence[str]) -> list[PointStats]:
        """Median and quartiles of each metric over the seeds of every point with results, in spec order."""
        return by_point(self.rows, list(metrics))

    def with_rows(self, rows: Iterable[dict[str, Any]]) -> Results:
        """The same run with a subset of its rows (e.g. a selection of seeds)."""
        other = Results(self.spec, self.columns, rows, self.run)
        other._tables = self._tables
        return other

    def best_of(self, k: int | None = None, metric: str = "loss") -> Results:
        """One row per point: the lowest-``metric`` seed among its first ``k`` (None: all); see
        :func:`engine.seed_selection.best_of_k`."""
        return self.with_rows(best_of_k(self.rows, k, metric))

    # --- the other tables, by instance -----------------------------------------------------------

    def _run(self) -> Run:
        if self.run is None:
            raise RunDataError("these results have no run folder to read curves, features or weights from")
        return self.run

    def table(self, name: str) -> list[dict[str, Any]]:
        """curves or features rows as stored (read once; RunDataError if the run has none yet)."""
        if name not in self._tables:
            self._tables[name] = self._run().table(name)[1]
        return self._tables[name]

    def curves(self) -> list[dict[str, Any]]:
        return self.table("curves")

    def features(self) -> list[dict[str, Any]]:
        return self.table("features")

    def curves_of(self, instance: int) -> list[dict[str, Any]]:
        """One instance's curves.csv rows, by step."""
        return sorted((r for r in self.curves() if r.get("instance") == instance), key=lambda r: r["step"])

    def features_of(self, instance: int) -> list[dict[str, Any]]:
        """One instance's features.csv rows, by feature."""
        return sorted((r for r in self.features() if r.get("instance") == instance), key=lambda r: r["feature"])

    def weights(self, instance: int) -> dict[str, torch.Tensor]:
        """One instance's final weights (and snapshots, if kept), without the instance dimension."""
        return self._run().instance_weights(instance)
