"""engine/analysis: which metrics a summary ranks, charts and abbreviates comes from the model's column
declarations (not from name lists in a front end), and one rule formats a value for every table."""

from __future__ import annotations

import math

import pytest

from toysup.engine.analysis import columns
from toysup.engine.models import MODELS
from toysup.engine.models.base import Column
from toysup.engine.models.relu_output import ReluOutput
from toysup.engine.results import value_text


def test_relu_output_ranks_charts_and_abbreviates_as_its_columns_declare():
    names = [c.name for c in ReluOutput.columns]
    assert columns.headline_metrics("relu_output", names)[:9] == [
        "loss", "features_represented", "dims_per_feature", "mean_dimensionality", "orientation_angle_deg",
        "axis_alignment", "polysemantic_neurons", "monosemantic_neurons", "collapsed"]
    charted = columns.charted_metrics("relu_output", names)
    assert "collapsed" not in charted and "axis_alignment" not in charted and charted[0] == "loss"
    short = columns.short_names("relu_output")
    assert (short["dims_per_feature"], short["feature_probability"], short["instance"]) == ("D*", "p", "inst")


def test_a_summary_shows_a_rare_flag_only_when_some_instance_has_it():
    names = [c.name for c in ReluOutput.columns]
    calm = [dict.fromkeys(names, 0.5) | {"collapsed": False}]
    shown = columns.summary_candidates("relu_output", calm)
    assert "collapsed" not in shown and "axis_alignment" not in shown and "monosemantic_neurons" not in shown
    assert "collapsed" in columns.summary_candidates("relu_output", [*calm, {**calm[0], "collapsed": True}])
    assert "axis_alignment" in columns.summary_candidates("relu_output", calm, wide=True)
    assert columns.keep_order("relu_output", ["loss", "dims_per_feature", "collapsed", "linear_regions"]) == [
        "loss", "collapsed", "dims_per_feature", "linear_regions"]


def test_a_new_models_declarations_drive_the_summary_and_the_charts(monkeypatch: pytest.MonkeyPatch):
    """A model declares its own headline, flags and abbreviations; no front end needs to know its names."""
    class Toy(ReluOutput):
        kind = "toy_declared"
        columns = (
            Column("loss", "the loss", headline=2),
            Column("gain", "a metric that matters most", headline=1, keep=1, short="g"),
            Column("aside", "a restatement", summary="wide", chart=False),
            Column("odd", "a rare flag", "bool", summary="if_true"),
        )

    monkeypatch.setitem(MODELS, "toy_declared", Toy)
    rows = [{"loss": 1.0, "gain": 2.0, "aside": 3.0, "odd": False}]
    assert columns.headline_metrics("toy_declared", rows[0]) == ["gain", "loss", "aside", "odd"]
    assert columns.charted_metrics("toy_declared", rows[0]) == ["gain", "loss"]
    assert columns.summary_candidates("toy_declared", rows) == ["gain", "loss"]
    assert columns.short_names("toy_declared")["gain"] == "g"


def test_a_column_rejects_an_unknown_summary_rule():
    with pytest.raises(ValueError, match="summary"):
        Column("x", "x", summary="sometimes")


def test_one_rule_formats_values_for_labels_and_cells():
    """3 significant digits, trailing zeros dropped at any magnitude; an undefined metric as a dash."""
    assert [value_text(v) for v in (0.333333333, 12000.0, 1e4, math.nan, True, 7, "adam")] == [
        "0.333", "1.2e+04", "1e+04", "—", "yes", "7", "adam"]
