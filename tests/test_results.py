"""A run's results and its sweep points (engine/results.py): one identity per point, exact values from the spec."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from toysup.engine.errors import RunDataError
from toysup.engine.results import Results
from toysup.engine.run.folder import Run
from toysup.engine.run_format import csv_text, parse_csv, result_columns
from toysup.engine.runner import run_sweep
from toysup.engine.spec import resolve

from helpers import make_spec, run_options

THIRD = 0.3333333333333333
# Two points that results.csv writes alike (9 significant digits): only the point index tells them apart.
ALIKE = [THIRD, 0.333333333]


def through_csv(spec, rows: list[dict]) -> tuple[list[str], list[dict]]:
    """Rows as the store writes and reads them back: floats to 9 significant digits."""
    columns = [c for c in result_columns(spec) if c in rows[0]]
    return parse_csv(csv_text(columns, rows))


def rows_of(spec, losses: list[float]) -> list[dict]:
    return [{"instance": inst.index, "seed": inst.seed, "point": inst.point,
             **{a.name: inst.config[a.name] for a in spec.axes}, "loss": loss}
            for inst, loss in zip(spec.instances(), losses)]


@pytest.mark.parametrize("sweep", [
    {"feature_probability": ALIKE},
    {"feature_probability": "log:1:0.01:9", "dropout": "lin:0:0.3:4"},
    {"feature_probability": "0.3333333333333333,0.1", "optimizer": "adam,sgd"},
])
def test_the_spec_from_config_toml_gives_the_same_points_exactly(sweep):
    spec = make_spec({"seeds": 3}, sweep=sweep)
    again = resolve(tomllib.loads(spec.to_toml()))
    assert [repr(p) for p in again.points()] == [repr(p) for p in spec.points()]
    assert [spec.point_of(i.index) for i in spec.instances()] == [i.point for i in spec.instances()]


def test_points_that_the_csv_writes_alike_stay_apart():
    spec = make_spec({"seeds": 2}, sweep={"feature_probability": ALIKE})
    columns, rows = through_csv(spec, rows_of(spec, [0.4, 0.3, 0.2, 0.1]))
    assert {r["feature_probability"] for r in rows} == {0.333333333}  # the CSV cannot tell them apart
    results = Results(spec, columns, rows)
    assert [p.values for p in results.points] == [{"feature_probability": THIRD}, {"feature_probability": 0.333333333}]
    assert [[r["instance"] for r in members] for _, members in results.groups()] == [[0, 1], [2, 3]]
    assert [(s.point, s.n, s.stats["loss"][0]) for s in results.stats(["loss"])] == [
        (0, 2, pytest.approx(0.35)), (1, 2, pytest.approx(0.15))]
    assert [r["instance"] for r in results.best_of().rows] == [1, 3]
    assert results.find_point({"feature_probability": THIRD}).index == 0
    assert results.find_point({"feature_probability": 0.333333333}).index == 1
    assert results.point_of(rows[2]).label() == "feature_probability=0.333"
    assert results.instance_config(1)["feature_probability"] == THIRD  # the value trained with, not the CSV's


def test_instance_configs_are_the_specs():
    spec = make_spec({"seeds": 3, "seed": 5}, sweep={"feature_probability": [THIRD, 0.1], "dropout": [0.0, 0.5]})
    results = Results(spec, [], [])
    assert [results.instance_config(i.index) for i in spec.instances()] == [i.config for i in spec.instances()]
    assert [p.instances for p in results.points] == [range(0, 3), range(3, 6), range(6, 9), range(9, 12)]
    with pytest.raises(RunDataError, match="instance 12 is not part of this run"):
        results.instance_config(12)


def test_rows_of_a_run_from_before_the_point_column_get_it_from_the_instance():
    spec = make_spec({"seeds": 2}, sweep={"feature_probability": [THIRD, 0.1]})
    rows = [{k: v for k, v in r.items() if k != "point"} for r in rows_of(spec, [0.4, 0.3, 0.2, 0.1])]
    results = Results(spec, ["instance", "seed", "feature_probability", "loss"], rows)
    assert results.columns == ["instance", "seed", "point", "feature_probability", "loss"]
    assert [list(r) for r in results.rows[:1]] == [results.columns]
    assert [r["point"] for r in results.rows] == [0, 0, 1, 1]


def test_rows_that_contradict_the_spec_are_damaged_data():
    spec = make_spec({"seeds": 2}, sweep={"feature_probability": [THIRD, 0.1]})
    rows = rows_of(spec, [0.4, 0.3, 0.2, 0.1])
    with pytest.raises(RunDataError, match="instance 1 has point 1"):
        Results(spec, list(rows[0]), [rows[0], {**rows[1], "point": 1}])
    with pytest.raises(RunDataError, match="instance 7 is not one of the run's 4 instances"):
        Results(spec, list(rows[0]), [{**rows[0], "instance": 7}])


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    spec = make_spec({"n_features": 5, "n_hidden": 2, "steps": 40, "batch_size": 32, "eval_batch_size": 64,
                      "seeds": 2}, sweep={"feature_probability": [THIRD, 0.1]})
    outcome = run_sweep(spec, tmp_path_factory.mktemp("results"), run_options())
    assert outcome.status == "completed"
    return Run(outcome.run_dir)


def test_results_of_a_run_join_curves_features_and_weights_by_instance(run: Run):
    results = Results.open(run)
    assert [r["point"] for r in results.rows] == [0, 0, 1, 1]
    assert {r["instance"] for r in results.curves_of(3)} == {3}
    assert [r["step"] for r in results.curves_of(3)] == sorted(r["step"] for r in results.curves_of(3))
    assert [r["feature"] for r in results.features_of(2)] == [0, 1, 2, 3, 4]
    assert results.weights(2)["W"].shape == (5, 2)
    assert results.best_of(1).table("curves") is results.curves()  # a selection shares the run's tables


def test_a_run_without_the_point_column_opens_the_same(run: Run, tmp_path: Path):
    import shutil

    old = Run(Path(shutil.copytree(run.path, tmp_path / run.id)))
    columns, rows = old.results()
    old.write_results([c for c in columns if c != "point"], rows)
    assert "point" not in (old.path / "results.csv").read_text().splitlines()[0]
    assert Results.open(old).rows == Results.open(run).rows
