"""toysup from Python, for notebooks: open a run (or launch one) and get its tables, points and weights.

::

    import toysup

    run = toysup.open_run("latest")                # a run id (or unique part), a folder, or "latest"
    df = run.results()                             # one row per instance, with its sweep point
    df.groupby("point")["loss"].median()
    W = run.weights(0)["W"]                        # instance 0's final weights, a torch.Tensor

Tables are pandas DataFrames when pandas is installed (``pip install 'toysup[notebook]'``)
and lists of dicts otherwise; ``as_records=True`` asks for the lists either way. An empty
numeric cell (a neuron count where the basis is not privileged, a diverged instance's
metrics) is ``float("nan")`` in both, so numeric columns stay numeric (float64 in pandas;
yes/no columns with empty cells become pandas' nullable "boolean") and ``groupby(...).median()``
skips it; text columns stay text. A row's
``point`` indexes :meth:`Run.points`, whose parameter values are exact (from the run's
config.toml); group by it rather than by the swept columns, which results.csv holds to
9 significant digits. Runs are found as the command line finds them: ``runs_dir``, else
$TOYSUP_RUNS_DIR, else ./runs. This module imports no terminal library.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toysup.engine import progress, settings, stopping
from toysup.engine.errors import RunDataError, UserError
from toysup.engine.events import EventSink, ignore
from toysup.engine.kinds import get_kind
from toysup.engine.options import RunOptions, check_names
from toysup.engine.results import Results
from toysup.engine.run import catalogue, layout
from toysup.engine.run import folder as run_folder
from toysup.engine.run.status import Status
from toysup.engine.spec import Spec, read_preset, resolve

if TYPE_CHECKING:
    import torch

__all__ = ["Run", "RunOptions", "has_pandas", "list_runs", "open_run", "run_sweep"]

Records = list[dict[str, Any]]


def has_pandas() -> bool:
    """Whether tables come back as pandas DataFrames (pandas is installed) or as records."""
    return importlib.util.find_spec("pandas") is not None


NAN = float("nan")


def _text_columns(spec: Spec) -> set[str]:
    """The declared text parameters (choices and strings) of the spec's model: they stay text even
    where every cell of theirs is empty."""
    return {p.name for p in get_kind(spec.model).param_table().values() if p.kind in ("choice", "str")}


def _empty_as_nan(records: Records, columns: Sequence[str], text: set[str]) -> Records:
    """The records with each empty cell of a numeric column as NaN.

    The run's CSV files leave a cell empty where a metric has no value; read back, that is ''.
    A column is numeric unless it is declared text or holds a non-empty string: a column every
    cell of which is empty (a neuron count in a run with no privileged basis) is numeric too."""
    numeric = [c for c in columns if c not in text and all(
        not isinstance(r.get(c), str) or r.get(c) == "" for r in records)]
    empty = [c for c in numeric if any(r.get(c) == "" for r in records)]
    if not empty:
        return records
    return [{**r, **{c: NAN for c in empty if r.get(c) == ""}} for r in records]


def _table(records: Records, columns: Sequence[str], as_records: bool, text: Collection[str] = ()) -> Any:
    records = _empty_as_nan(records, columns, set(text))
    if as_records or not has_pandas():
        return records
    import pandas  # type: ignore[import-untyped,unused-ignore]  # deferred: an optional dependency

    frame = pandas.DataFrame.from_records(records, columns=list(columns))
    for column in _flags_with_gaps(records, columns):  # yes/no with empty cells: pandas' nullable boolean
        frame[column] = frame[column].astype("boolean")
    return frame


def _flags_with_gaps(records: Records, columns: Sequence[str]) -> list[str]:
    """The columns whose cells are all bool or NaN, with at least one of each (a diverged instance's flags)."""
    def gap(v: Any) -> bool:
        return isinstance(v, float) and v != v

    return [c for c in columns if any(isinstance(r.get(c), bool) for r in records)
            and any(gap(r.get(c)) for r in records)
            and all(isinstance(r.get(c), bool) or gap(r.get(c)) for r in records)]


class Run:
    """A run folder: its record, its spec, and its tables, read afresh on every call (so a run that is
    still going shows what has finished so far)."""

    def __init__(self, run: run_folder.Run) -> None:
        self._run = run

    def __repr__(self) -> str:
        record = self._run.record()
        return f"<toysup run {self.id}: {self.status}, {record.instances_done}/{record.instances} instances>"

    @property
    def id(self) -> str:
        return self._run.id

    @property
    def path(self) -> Path:
        return self._run.path

    @property
    def info(self) -> dict[str, Any]:
        """run.json: times, device, versions, throughput, error (and a training run's heartbeat)."""
        record = self._run.record()
        if record.damage:  # run.json unreadable: nothing of it is known but why
            return {"id": record.id, "name": record.name, "status": record.status, "error": record.error}
        beat = {"heartbeat": record.heartbeat} if record.status == Status.RUNNING else {}
        return {**record.to_json(), **beat}

    @property
    def status(self) -> str:
        """completed, running, interrupted, failed, killed or damaged (as ``toysup runs`` says)."""
        return self._run.status()

    @property
    def spec(self) -> Spec:
        """The resolved spec the run trained (config.toml): every parameter and the axes."""
        return self._run.spec()

    def _data(self) -> Results:
        progress.require_results(self._run)  # a run still training its first chunk: UserError saying how far
        return Results.open(self._run)

    def results(self, as_records: bool = False) -> Any:
        """results.csv: one row per finished instance (instance, seed, point, swept parameters, metrics)."""
        data = self._data()
        return _table(data.rows, data.columns, as_records, _text_columns(data.spec))

    def curves(self, as_records: bool = False) -> Any:
        """curves.csv with each row's sweep point: instance, point, step, loss (and the model's curve columns)."""
        return self._with_point("curves", as_records)

    def features(self, as_records: bool = False) -> Any:
        """features.csv with each row's sweep point: instance, point, feature, and the model's feature columns."""
        return self._with_point("features", as_records)

    def _with_point(self, table: str, as_records: bool) -> Any:
        progress.require_results(self._run)
        columns, rows = self._run.table(table)
        spec = self.spec
        records = [{"instance": r["instance"], "point": spec.point_of(r["instance"]),
                    **{k: v for k, v in r.items() if k != "instance"}} for r in rows]
        return _table(records, ["instance", "point", *[c for c in columns if c != "instance"]], as_records,
                      _text_columns(spec))

    def points(self, as_records: bool = False) -> Any:
        """One row per sweep point: point, its exact parameter values, a label, and how many of its
        instances (seeds) have finished."""
        data = self._data()
        names = [a.name for a in data.axes]
        records = [{"point": p.index, **p.values, "label": p.label(), "seeds": len(p.instances),
                    "finished": len(data.members(p))} for p in data.points]
        return _table(records, ["point", *names, "label", "seeds", "finished"], as_records,
                      _text_columns(data.spec) | {"label"})

    def members(self, point: int, as_records: bool = False) -> Any:
        """The results rows of one sweep point, by seed."""
        data = self._data()
        return _table(data.members(point), data.columns, as_records, _text_columns(data.spec))

    def weights(self, instance: int) -> dict[str, torch.Tensor]:
        """One instance's final weights (and, with snapshots=N, ``<name>.snapshots`` and ``snapshot_steps``);
        UserError for an instance whose chunk is still training."""
        try:
            return self._run.instance_weights(instance)
        except RunDataError:
            progress.require_instance(self._run, instance, set())
            raise

    def config(self, instance: int) -> dict[str, Any]:
        """Every parameter one instance trained with: the fixed ones, its point's exact values, its seed."""
        return self._data().instance_config(instance)


def open_run(ref: str | Path = "latest", runs_dir: str | Path | None = None) -> Run:
    """A run by id (or a unique part of one), by folder, or ``latest`` (UserError if there is none)."""
    return Run(catalogue.find_run(layout.runs_dir(runs_dir), str(ref)))


def list_runs(runs_dir: str | Path | None = None) -> list[Run]:
    """The runs in the runs directory, newest first."""
    return [Run(r) for r in catalogue.list_runs(layout.runs_dir(runs_dir))]


def run_sweep(spec: str | Path | Mapping[str, Any] = "tms-intro", *, params: Mapping[str, Any] | None = None,
              sweep: Mapping[str, Any] | None = None, seeds: int | None = None,
              runs_dir: str | Path | None = None, options: RunOptions | Mapping[str, Any] | None = None,
              emit: EventSink | None = None) -> Run:
    """Train a sweep and return its run, as ``toysup run`` does.

    ``spec`` is a bundled preset's name, a preset or config.toml path, or a preset as a dict
    (``{"model": ..., "params": {...}, "sweep": {...}}``). ``params`` fixes parameters (replacing
    an axis of the same name, as ``-s`` does), ``sweep`` adds or replaces axes (a list of values,
    or a string in the sweep grammar: ``"log:1:0.01:7"``), ``seeds`` sets the seeds per point. A preset name
    resolves as for ``toysup run`` (engine.preset_sources). ``options`` is a :class:`RunOptions`, taken as it
    is, or a dict of some of its fields by name (``{"device": "cpu", "threads": 2}``), the others coming from
    the environment, then config.toml (engine.settings), as on the command line; None: all of them so.
    Mistakes (a wrong option included) raise UserError before anything is written. An interrupt (Ctrl-C, a
    notebook's stop button) ends the run as ``interrupted`` after the step in progress, with its finished
    chunks and that step kept (see ``toysup resume``); check ``status`` of the run returned.
    ``emit`` receives the run's events (engine.events), as the CLI's and the TUI's views do: ``toysup.run_sweep``
    passes its notebook bar here (toysup/progress.py), since the engine draws nothing itself.
    """
    from toysup.engine.runner import run_sweep as train  # deferred: training loads torch, which reading a run needs not

    if isinstance(spec, Mapping):
        data, source = {"name": "sweep", **spec}, "spec"
    else:
        data, source = read_preset(str(spec)), str(spec)
    fixed = dict(params or {})
    both = fixed.keys() & (sweep or {}).keys()
    if both:
        raise UserError(f"{sorted(both)[0]} is both in params and sweep; keep one")
    axes = {k: v for k, v in {**data.get("sweep", {}), **(sweep or {})}.items() if k not in fixed}
    values = {k: v for k, v in {**data.get("params", {}), **fixed}.items() if k not in axes}
    data = {**data, "params": values, "sweep": axes}
    resolved = resolve(data, seeds=seeds, source=source)
    chosen = _run_options(options)
    with stopping.on_interrupt():
        outcome = train(resolved, layout.runs_dir(runs_dir), chosen, emit=emit or ignore)
    return Run(run_folder.Run(outcome.run_dir))


def _run_options(options: RunOptions | Mapping[str, Any] | None) -> RunOptions:
    """The options a sweep from Python trains with: a RunOptions as it is; a dict's fields over the
    environment and config.toml, checked as one (UserError naming a wrong or unknown option)."""
    if isinstance(options, RunOptions):
        return options
    if options is not None and not isinstance(options, Mapping):
        raise UserError(f"options must be a RunOptions or a dict of run options, not {type(options).__name__}")
    given = dict(options or {})
    check_names(given)
    return settings.run_options(given)
