"""The Python API for notebooks (engine/api.py, importable as ``toysup``), and the documented example run as written
(README.md and the Python guide, docs/guides/python.md, carry it)."""

from __future__ import annotations

import contextlib
import io
import math
import re
import subprocess
import sys
from pathlib import Path

import pandas
import pytest
import torch

import toysup
from toysup.engine import api
from toysup.engine.errors import UserError

from helpers import TINY_PRESET

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_PAGES = ("README.md", "docs/guides/python.md")  # the pages that show the notebook example
THIRD = 0.3333333333333333
TINY = {"n_features": 5, "n_hidden": 2, "steps": 40, "batch_size": 32, "eval_batch_size": 64}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A runs directory with one finished sweep over feature_probability = [1/3, 0.1], 2 seeds each."""
    root = tmp_path_factory.mktemp("api") / "runs"
    run = toysup.run_sweep({"name": "third", "model": "relu_output", "params": TINY},
                           sweep={"feature_probability": [THIRD, 0.1]}, seeds=2, runs_dir=root,
                           options=toysup.RunOptions(device="cpu"))
    assert run.status == "completed"
    return root


def notebook_example(page: str) -> str:
    text = (ROOT / page).read_text(encoding="utf-8")
    block = re.search(r"<!-- notebook-example[^>]*-->\n```python\n(.*?)```", text, re.DOTALL)
    assert block, f"{page} has no notebook example after its marker"
    return block.group(1)


@pytest.mark.parametrize("page", EXAMPLE_PAGES)
def test_the_documented_notebook_example_runs_as_written(page: str, runs: Path, monkeypatch: pytest.MonkeyPatch):
    code = notebook_example(page)
    assert len(code.strip().splitlines()) == 5
    monkeypatch.setenv("TOYSUP_RUNS_DIR", str(runs))
    namespace: dict = {}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, page, "exec"), namespace)
    assert isinstance(namespace["df"], pandas.DataFrame) and len(namespace["df"]) == 4
    assert namespace["W"].shape == (5, 2) and isinstance(namespace["W"], torch.Tensor)
    medians = printed.getvalue().splitlines()
    assert medians[0].split() == ["point"] and [line.split()[0] for line in medians[1:3]] == ["0", "1"]


def test_tables_are_dataframes_or_records_with_the_same_rows(runs: Path):
    run = toysup.open_run("latest", runs_dir=runs)
    records = run.results(as_records=True)
    frame = run.results()
    assert isinstance(records, list) and isinstance(frame, pandas.DataFrame)
    assert list(frame.columns)[:4] == ["instance", "seed", "point", "feature_probability"]
    assert nan_as_none(frame.to_dict("records")) == nan_as_none(records)
    assert [r["point"] for r in records] == [0, 0, 1, 1]
    curves = run.curves()
    assert list(curves.columns)[:4] == ["instance", "point", "step", "loss"]
    assert set(zip(curves["instance"], curves["point"])) == {(0, 0), (1, 0), (2, 1), (3, 1)}
    features = run.features(as_records=True)
    assert features[0]["point"] == 0 and len(features) == 4 * 5


def nan_as_none(records: list[dict]) -> list[dict]:
    """Records with NaN as None, so two tables with the same empty cells compare equal (NaN != NaN)."""
    return [{k: None if isinstance(v, float) and math.isnan(v) else v for k, v in r.items()} for r in records]


def test_without_pandas_every_table_is_records(runs: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(api, "has_pandas", lambda: False)
    run = toysup.open_run("latest", runs_dir=runs)
    for table in (run.results(), run.curves(), run.features(), run.points(), run.members(0)):
        assert isinstance(table, list) and isinstance(table[0], dict)
        assert not any(v == "" for row in table for v in row.values())  # empty cells are NaN, never ''
    empty = [row["polysemantic_neurons"] for row in run.results()]  # relu_output without dropout: no basis
    assert all(isinstance(v, float) and math.isnan(v) for v in empty)


def test_the_readme_groupby_works_on_every_numeric_column(runs: Path):
    """relu_output without dropout leaves its neuron columns empty: they come back as NaN, so every
    numeric column keeps a numeric dtype and the README's ``groupby("point")[...].median()`` runs."""
    run = toysup.open_run("latest", runs_dir=runs)
    for df in (run.results(), run.members(0), run.curves(), run.features()):
        for column in df.columns:
            assert pandas.api.types.is_numeric_dtype(df[column]) or pandas.api.types.is_bool_dtype(df[column]), \
                (column, df[column].dtype)
            if pandas.api.types.is_bool_dtype(df[column]):
                continue
            medians = df.groupby("point")[column].median()
            assert list(medians.index) == sorted(set(df["point"])) and medians.dtype.kind == "f", column
    df = run.results()
    assert df["polysemantic_neurons"].isna().all() and df["monosemantic_neurons"].isna().all()
    assert df["loss"].notna().all() and df.groupby("point").median().shape[0] == 2  # every column at once


def test_text_columns_stay_text_beside_nan(tmp_path: Path):
    run = toysup.run_sweep({"name": "optimisers", "model": "relu_output", "params": {**TINY, "steps": 10}},
                           sweep={"optimizer": ["adam", "sgd"]}, seeds=1, runs_dir=tmp_path,
                           options={"device": "cpu"})
    df = run.results()
    assert list(df["optimizer"]) == ["adam", "sgd"] and pandas.api.types.is_string_dtype(df["optimizer"])
    assert df["polysemantic_neurons"].dtype == "float64" and df["polysemantic_neurons"].isna().all()
    assert [r["optimizer"] for r in run.results(as_records=True)] == ["adam", "sgd"]
    points = run.points()
    assert points["label"].tolist() == ["optimizer=adam", "optimizer=sgd"] and points["seeds"].dtype == "int64"


def test_points_carry_exact_values_and_their_members(runs: Path):
    run = toysup.open_run("third", runs_dir=runs)  # a unique part of the id
    assert run.points(as_records=True) == [
        {"point": 0, "feature_probability": THIRD, "label": "feature_probability=0.333", "seeds": 2, "finished": 2},
        {"point": 1, "feature_probability": 0.1, "label": "feature_probability=0.1", "seeds": 2, "finished": 2}]
    assert [r["instance"] for r in run.members(1, as_records=True)] == [2, 3]
    assert run.config(1)["feature_probability"] == THIRD and run.config(1)["seed"] == 1
    assert run.weights(3)["W"].shape == (5, 2)
    assert toysup.open_run(run.path).id == run.id == toysup.list_runs(runs)[0].id
    assert repr(run) == f"<toysup run {run.id}: completed, 4/4 instances>"


def test_run_sweep_from_a_preset_with_overrides(tmp_path: Path):
    run = toysup.run_sweep(TINY_PRESET, params={"steps": 20, "feature_probability": 0.5},
                           sweep={"lr": "0.001,0.01"}, seeds=1, runs_dir=tmp_path,
                           options={"device": "cpu"})
    assert run.status == "completed" and run.path.parent == tmp_path
    assert [a.name for a in run.spec.axes] == ["lr"] and run.spec.params["feature_probability"] == 0.5
    assert [p["lr"] for p in run.points(as_records=True)] == [0.001, 0.01]


def test_run_sweep_mistakes_are_user_errors_and_write_nothing(tmp_path: Path):
    with pytest.raises(UserError, match="unknown preset"):
        toysup.run_sweep("no-such-preset", runs_dir=tmp_path / "runs")
    with pytest.raises(UserError, match="steps is both in params and sweep"):
        toysup.run_sweep(TINY_PRESET, params={"steps": 10}, sweep={"steps": [10, 20]}, runs_dir=tmp_path / "runs")
    with pytest.raises(UserError, match="steps=-1"):
        toysup.run_sweep(TINY_PRESET, params={"steps": -1}, runs_dir=tmp_path / "runs")
    with pytest.raises(UserError, match="holds no runs"):
        toysup.open_run("latest", runs_dir=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_import_toysup_loads_no_terminal_library():
    code = ("import sys, toysup; loaded = [m for m in ('rich', 'textual', 'typer', 'plotext', 'toysup_tui') "
            "if m in sys.modules]; print(loaded)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_diverged_instance_leaves_nan_and_its_flags_stay_boolean(tmp_path: Path):
    """lr = 100 under plain SGD diverges: its metrics are empty in results.csv, NaN here, and its yes/no
    metric (collapsed) becomes pandas' nullable boolean, so a median over every column still runs."""
    run = toysup.run_sweep({"name": "diverging", "model": "relu_output",
                            "params": {**TINY, "steps": 20, "optimizer": "sgd"}},
                           sweep={"lr": [0.01, 100.0]}, seeds=1, runs_dir=tmp_path,
                           options={"device": "cpu"})
    df = run.results()
    assert df["diverged"].tolist() == [False, True]
    assert df["loss"].dtype == "float64" and math.isnan(df["loss"][1]) and df["loss"][0] > 0
    assert str(df["collapsed"].dtype) == "boolean" and df["collapsed"].isna().tolist() == [False, True]
    medians = df.groupby("point").median()
    assert medians.shape == (2, len(df.columns) - 1) and math.isnan(medians["features_represented"][1])
    records = run.results(as_records=True)
    assert isinstance(records[1]["collapsed"], float) and math.isnan(records[1]["collapsed"])
