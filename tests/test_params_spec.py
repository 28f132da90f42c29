"""Parameters, preset files and the sweep grammar (engine/params.py, engine/spec.py)."""

from __future__ import annotations

import itertools
import math
import tomllib

import pytest

from toysup.engine.errors import SpecError
from toysup.engine.models import MODELS
from toysup.engine.spec import bundled_presets, load, parse_axis, read_preset, resolve

from helpers import TINY_PRESET, make_spec


def axis_values(spec, name):
    (axis,) = [a for a in spec.axes if a.name == name]
    return list(axis.values)


# --- parameters -------------------------------------------------------------------------------


@pytest.mark.parametrize("model", list(MODELS))
def test_every_parameter_default_is_valid(model):
    table = MODELS[model].param_table()
    assert {"steps", "batch_size", "lr", "optimizer", "seed", "seeds"} <= set(table)
    for p in table.values():
        assert p.parse(p.default) == p.default, p.name


def test_defaults_fill_in_what_a_preset_leaves_out():
    spec = make_spec({"n_features": 7})
    assert spec.params["n_features"] == 7
    assert spec.params["n_hidden"] == 2
    assert spec.params["optimizer"] == "adam"
    assert spec.params["dropout"] == 0.0
    assert spec.params["seeds"] == 1
    assert spec.n_points == 1 and spec.n_instances == 1


def test_int_parameters_accept_integral_floats_and_strings():
    assert make_spec({"steps": 300.0}).params["steps"] == 300
    assert make_spec(sets=["steps=1e3"]).params["steps"] == 1000
    assert make_spec(sets=["steps=10_000"]).params["steps"] == 10_000
    assert isinstance(make_spec(sets=["steps=1e3"]).params["steps"], int)


@pytest.mark.parametrize("setting, fragment", [
    ("steps=2.5", "steps='2.5' is not valid: expected an integer"),
    ("steps=abc", "steps='abc' is not valid: expected an integer in [1, 10000000]"),
    ("lr=fast", "lr='fast' is not valid: expected a number"),
    ("optimizer=rmsprop", "expected one of adam, adamw, sgd"),
    ("lr=nan", "lr=nan is not valid"),
    ("lr=inf", "lr=inf"),
])
def test_wrong_types_are_rejected_with_the_valid_range(setting, fragment):
    with pytest.raises(SpecError) as exc:
        make_spec(sets=[setting])
    assert fragment in str(exc.value)


@pytest.mark.parametrize("setting, fragment", [
    ("feature_probability=0", "feature_probability=0 is out of range: expected a number in (0, 1]"),
    ("feature_probability=1.5", "feature_probability=1.5 is out of range: expected a number in (0, 1]"),
    ("dropout=1.0", "dropout=1 is out of range: expected a number in [0, 1)"),
    ("lr=-0.001", "lr=-0.001 is out of range"),
    ("steps=0", "steps=0 is out of range: expected an integer in [1, 10000000]"),
    ("seeds=0", "seeds=0 is out of range"),
    ("carry_threshold=0", "carry_threshold=0 is out of range"),
])
def test_out_of_range_values_are_rejected(setting, fragment):
    with pytest.raises(SpecError) as exc:
        make_spec(sets=[setting])
    assert fragment in str(exc.value)


def test_range_edges_that_are_valid():
    assert make_spec(sets=["feature_probability=1"]).params["feature_probability"] == 1.0
    assert make_spec(sets=["dropout=0"]).params["dropout"] == 0.0
    assert make_spec(sets=["dropout=0.99"]).params["dropout"] == 0.99
    assert make_spec(sets=["carry_threshold=1"]).params["carry_threshold"] == 1.0


def test_unknown_parameter_names_the_close_match_and_the_valid_ones():
    with pytest.raises(SpecError) as exc:
        make_spec(sets=["n_featurs=3"])
    message = str(exc.value)
    assert "unknown parameter 'n_featurs'" in message
    assert "did you mean 'n_features'" in message
    valid = message.split("valid:")[1]
    assert all(name in valid for name in ("n_features", "n_hidden", "feature_probability", "dropout", "steps"))


# --- the sweep grammar -------------------------------------------------------------------------


def test_toml_list_sweep_keeps_the_values_in_order():
    spec = make_spec(sweep={"feature_probability": [0.5, 1, 0.01]})
    assert axis_values(spec, "feature_probability") == [0.5, 1.0, 0.01]
    assert spec.axes[0].scale == "list"


def test_comma_list_sweep():
    spec = make_spec(sweep={"lr": "0.001, 0.003,0.01"})
    assert axis_values(spec, "lr") == [0.001, 0.003, 0.01]


def test_comma_list_of_choices():
    spec = make_spec(sweep={"optimizer": "sgd,adam"})
    assert axis_values(spec, "optimizer") == ["sgd", "adam"]


def test_lin_range_includes_both_ends_and_has_clean_values():
    spec = make_spec(sweep={"dropout": "lin:0:0.9:10"})
    assert axis_values(spec, "dropout") == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    assert spec.axes[0].scale == "lin"


def test_log_range_is_geometric_and_may_run_downwards():
    spec = make_spec(sweep={"feature_probability": "log:1:0.01:5"})
    values = axis_values(spec, "feature_probability")
    assert values[0] == 1.0 and values[-1] == 0.01
    assert values[2] == pytest.approx(0.1)
    ratios = [b / a for a, b in itertools.pairwise(values)]
    assert ratios == pytest.approx([10 ** -0.5] * 4, rel=1e-5)
    assert spec.axes[0].scale == "log" and spec.axes[0].log_scale


def test_range_of_one_value_is_its_start():
    assert axis_values(make_spec(sweep={"lr": "log:0.01:1:1"}), "lr") == [0.01]


def test_int_parameter_ranges_round_to_integers():
    spec = make_spec(sweep={"steps": "log:10:1000:5"})
    values = axis_values(spec, "steps")
    assert values == [10, 32, 100, 316, 1000]
    assert all(isinstance(v, int) for v in values)


def test_int_parameter_ranges_drop_values_that_round_to_the_same_integer():
    assert axis_values(make_spec(sweep={"n_hidden": "lin:1:2:4"}), "n_hidden") == [1, 2]


def test_cartesian_product_in_written_order_with_seeds_innermost():
    spec = make_spec({"seeds": 2, "seed": 5},
                     {"feature_probability": [1.0, 0.1], "n_hidden": "2,3,4"})
    assert [a.name for a in spec.axes] == ["feature_probability", "n_hidden"]
    assert spec.n_points == 6 and spec.n_instances == 12
    got = [(i.index, i.point, i.config["feature_probability"], i.config["n_hidden"], i.seed)
           for i in spec.instances()]
    expected = []
    for p, (prob, hidden) in enumerate([(1.0, 2), (1.0, 3), (1.0, 4), (0.1, 2), (0.1, 3), (0.1, 4)]):
        for s in (5, 6):
            expected.append((len(expected), p, prob, hidden, s))
    assert got == expected


def test_instance_configs_hold_every_parameter_and_their_own_values():
    spec = make_spec({"seeds": 2, "lr": 0.01}, {"feature_probability": [1.0, 0.1]})
    for inst in spec.instances():
        assert set(inst.config) == set(spec.param_table())
        assert inst.config["lr"] == 0.01
        assert inst.config["seed"] == inst.seed
    assert "feature_probability" not in spec.params


def test_set_overrides_an_axis_of_the_preset():
    data = read_preset(str(TINY_PRESET))
    spec = resolve(data, sets=["feature_probability=0.05"])
    assert spec.axes == ()
    assert spec.params["feature_probability"] == 0.05
    assert spec.n_instances == 2


def test_set_overrides_a_fixed_parameter():
    spec = resolve(read_preset(str(TINY_PRESET)), sets=["steps=50", "n_hidden=3"])
    assert spec.params["steps"] == 50 and spec.params["n_hidden"] == 3


def test_sweep_option_adds_an_axis_after_the_preset_axes():
    spec = resolve(read_preset(str(TINY_PRESET)), sweeps=["lr=0.001,0.01"])
    assert [a.name for a in spec.axes] == ["feature_probability", "lr"]
    assert "lr" not in spec.params
    assert spec.n_instances == 2 * 2 * 2


def test_sweep_option_replaces_an_axis_of_the_same_name():
    spec = resolve(read_preset(str(TINY_PRESET)), sweeps=["feature_probability=log:0.1:0.001:3"])
    assert axis_values(spec, "feature_probability") == [0.1, 0.01, 0.001]


def test_sweep_option_turns_a_fixed_parameter_into_an_axis():
    spec = resolve(read_preset(str(TINY_PRESET)), sweeps=["steps=10,20"])
    assert "steps" not in spec.params
    assert axis_values(spec, "steps") == [10, 20]


def test_seeds_override():
    spec = resolve(read_preset(str(TINY_PRESET)), seeds=5)
    assert spec.seeds == 5 and spec.n_instances == 10


def test_paired_seeds_repeat_at_every_point():
    spec = make_spec({"seeds": 3, "seed": 5}, sweep={"feature_probability": "0.1,0.2"})
    assert spec.seed_mode == "paired"  # the default: common random numbers
    assert [i.seed for i in spec.instances()] == [5, 6, 7, 5, 6, 7]


def test_independent_seeds_are_distinct_per_point_and_reproducible():
    params = {"seeds": 3, "seed": 5, "seed_mode": "independent"}
    spec = make_spec(params, sweep={"feature_probability": "0.1,0.2", "lr": "0.001,0.01"})
    seeds = [i.seed for i in spec.instances()]
    assert seeds == list(range(5, 17))  # point k trains seed + k * seeds ..
    assert [(i.point, i.config["seed"]) for i in spec.instances()][3:6] == [(1, 8), (1, 9), (1, 10)]
    assert [i.seed for i in make_spec(params, sweep={"feature_probability": "0.1,0.2",
                                                      "lr": "0.001,0.01"}).instances()] == seeds
    assert list(spec.point_seeds(2)) == [11, 12, 13]


def test_seed_mode_round_trips_through_the_config_file(tmp_path):
    spec = make_spec({"seeds": 2, "seed_mode": "independent"}, sweep={"feature_probability": "0.1,0.2"})
    path = tmp_path / "config.toml"
    path.write_text(spec.to_toml())
    again = load(str(path))
    assert again.seed_mode == "independent" and [i.seed for i in again.instances()] == [0, 1, 2, 3]


def test_seed_range_is_checked_for_the_whole_sweep():
    with pytest.raises(SpecError, match="last seed would be"):
        make_spec({"seeds": 10, "seed": 2**31 - 15, "seed_mode": "independent"},
                  sweep={"feature_probability": "0.1,0.2"})
    make_spec({"seeds": 10, "seed": 2**31 - 15}, sweep={"feature_probability": "0.1,0.2"})  # paired: fits
    with pytest.raises(SpecError, match="seed_mode"):
        make_spec({"seed_mode": "random"})


@pytest.mark.parametrize("expr, fragment", [
    ("lin:1:2", "is malformed: expected a list like"),
    ("lin:a:1:3", "is malformed"),
    ("lin:0.1:1:0", "NUM must be at least 1"),
    ("log:0:1:3", "log ranges need positive START and STOP"),
    ("log:-1:1:3", "log ranges need positive START and STOP"),
    ("0.1,,0.2", "is malformed"),
    ("0.1,0.2,", "is malformed"),
    ("0.1,0.1", "repeats a value"),
    ("0.5,2", "out of range"),
])
def test_malformed_sweeps_are_rejected(expr, fragment):
    with pytest.raises(SpecError) as exc:
        make_spec(sweeps=[f"feature_probability={expr}"])
    assert fragment in str(exc.value)
    assert "feature_probability" in str(exc.value)


def test_empty_list_sweep_is_rejected():
    with pytest.raises(SpecError, match="empty"):
        make_spec(sweep={"lr": []})


def test_ranges_need_a_numeric_parameter():
    with pytest.raises(SpecError, match="need a numeric parameter"):
        make_spec(sweeps=["optimizer=lin:0:1:3"])


@pytest.mark.parametrize("name", ["seed", "seeds", "seed_mode"])
def test_seeds_cannot_be_swept(name):
    with pytest.raises(SpecError, match="cannot be swept"):
        make_spec(sweeps=[f"{name}=1,2"])


@pytest.mark.parametrize("text", ["steps", "=5", "steps=", "  "])
def test_malformed_assignments_are_rejected(text):
    with pytest.raises(SpecError, match="is malformed: expected key=value"):
        make_spec(sets=[text])


def test_parse_axis_of_a_single_toml_number():
    table = make_spec().param_table()
    axis = parse_axis(table["lr"], 0.5)
    assert axis.values == (0.5,)


def test_log_scale_hint_for_wide_positive_lists():
    assert make_spec(sweep={"lr": [0.001, 0.01, 0.1]}).axes[0].log_scale
    assert not make_spec(sweep={"lr": [0.1, 0.2, 0.3]}).axes[0].log_scale
    assert not make_spec(sweep={"dropout": "lin:0:0.9:4"}).axes[0].log_scale


def test_limit_on_values_per_instance_and_step():
    with pytest.raises(SpecError, match=r"batch_size \* n_features"):
        make_spec({"n_features": 100_000, "batch_size": 100_000})


# --- preset files ------------------------------------------------------------------------------


def test_every_bundled_preset_loads():
    presets = bundled_presets()
    assert {"tms-intro", "tms-sparsity", "tms-geometry", "dropout-basis"} <= set(presets)
    for name in presets:
        spec = load(name)
        assert spec.name == name
        assert spec.description and spec.expected
        assert spec.n_instances >= 1


def test_preset_file_by_path(tmp_path):
    spec = load(str(TINY_PRESET))
    assert spec.name == "tiny"
    assert spec.params["steps"] == 200
    assert axis_values(spec, "feature_probability") == [1.0, 0.1]
    assert spec.n_instances == 4


def test_preset_name_defaults_to_the_file_stem(tmp_path):
    path = tmp_path / "my-sweep.toml"
    path.write_text("[params]\nsteps = 10\n")
    assert load(str(path)).name == "my-sweep"


def test_unknown_preset_suggests_a_close_name():
    with pytest.raises(SpecError) as exc:
        load("tms-intr")
    message = str(exc.value)
    assert "unknown preset 'tms-intr' (did you mean 'tms-intro'?)" in message
    assert "tms-sparsity" in message


def test_missing_preset_file():
    with pytest.raises(SpecError, match="does not exist"):
        load("no/such/preset.toml")


def test_malformed_toml_names_the_file_and_the_line(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text('name = "broken"\n[params]\nsteps = = 3\n')
    with pytest.raises(SpecError) as exc:
        load(str(path))
    message = str(exc.value)
    assert str(path) in message
    assert "line 3" in message


def test_unknown_top_level_key(tmp_path):
    path = tmp_path / "extra.toml"
    path.write_text('name = "extra"\nsteeps = 3\n')
    with pytest.raises(SpecError, match="unknown key 'steeps'"):
        load(str(path))


def test_unknown_key_in_params(tmp_path):
    path = tmp_path / "extra.toml"
    path.write_text("[params]\nstepz = 3\n")
    with pytest.raises(SpecError, match=r"unknown parameter 'stepz'.*did you mean 'steps'"):
        load(str(path))


def test_parameter_in_both_params_and_sweep(tmp_path):
    path = tmp_path / "both.toml"
    path.write_text('[params]\nlr = 0.01\n[sweep]\nlr = "0.01,0.1"\n')
    with pytest.raises(SpecError, match="lr is both in \\[params\\] and \\[sweep\\]"):
        load(str(path))


def test_unknown_model_suggests_a_close_name():
    with pytest.raises(SpecError, match=r"unknown model 'relu_outpt'.*did you mean 'relu_output'"):
        resolve({"model": "relu_outpt"})


def test_params_must_be_a_table():
    with pytest.raises(SpecError, match="must be a table"):
        resolve({"params": 3})


# --- config.toml round trip --------------------------------------------------------------------


ROUND_TRIP_SPECS = [
    pytest.param(lambda: load(str(TINY_PRESET)), id="tiny"),
    pytest.param(lambda: load(str(TINY_PRESET), sets=["lr=0.01"], sweeps=["dropout=lin:0:0.5:3"], seeds=3),
                 id="tiny-with-overrides"),
    pytest.param(lambda: make_spec({"weight_decay": 0.01}, {"steps": "log:10:1000:3", "lr": [0.1, 0.01],
                                                            "optimizer": "adam,adamw"}), id="mixed-axes"),
    pytest.param(lambda: make_spec(model="linear"), id="linear-no-axes"),
    *[pytest.param(lambda n=name: load(n), id=name) for name in bundled_presets()],
]


@pytest.mark.parametrize("make", ROUND_TRIP_SPECS)
def test_to_toml_loads_back_to_an_equal_spec(make, tmp_path):
    spec = make()
    path = tmp_path / "config.toml"
    path.write_text(spec.to_toml())
    again = load(str(path))
    assert again == spec
    assert again.instances() == spec.instances()


def test_to_toml_writes_every_parameter_explicitly():
    spec = load(str(TINY_PRESET))
    data = tomllib.loads(spec.to_toml())
    assert set(data["params"]) | set(data["sweep"]) == set(spec.param_table())
    assert data["sweep"] == {"feature_probability": "1,0.1"}
    assert data["model"] == "relu_output"


def test_spec_counts():
    spec = make_spec({"seeds": 3}, {"lr": [0.1, 0.2], "dropout": [0.0, 0.1, 0.2]})
    assert spec.n_points == 6
    assert spec.n_instances == 18
    assert spec.varying() == ["lr", "dropout", "seed"]
    assert math.prod(len(a.values) for a in spec.axes) == len(spec.points())


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_every_model_resolves_with_its_defaults_alone(kind: str):
    """A bare preset or a fresh TUI form starts from the defaults: they must pass the model's own checks."""
    spec = resolve({"model": kind})
    assert spec.n_instances == 1


def test_a_sweep_too_large_for_one_run_says_how_large_and_what_to_do():
    with pytest.raises(SpecError, match=r"7,000,000 instances \(7 feature_probability x 1000000 seeds\).*fewer seeds"):
        resolve({"params": {"seeds": 1_000_000}, "sweep": {"feature_probability": "log:1:0.01:7"}})


def test_an_instance_larger_than_the_memory_budget_is_a_user_error():
    import torch

    from toysup.engine.plan import plan

    spec = resolve({"params": {"n_features": 2000, "batch_size": 1_000_000}})
    with pytest.raises(SpecError, match=r"one instance needs about .* MB .*--max-memory"):
        plan(spec, torch.device("cpu"))  # the automatic budget: at most 4 GiB on a CPU
    assert [len(c) for c in plan(spec, torch.device("cpu"), max_memory=2**30)] == [1]  # asked for: chunks of one
