"""Computation in superposition beyond |x| (the ``compute`` model): the data, the metrics on
hand-built circuits with known answers, and the qualitative outcome on small seeded configurations."""

from __future__ import annotations

import math

import pytest
import torch

from engine.errors import SpecError
from engine.models import Hyper, get_kind, get_model
from engine.models.compute import FUNCTIONS, linear_error, probe, sparse_inputs_
from engine.models.kinds.compute import ARITY
from engine.rng import DATA, CounterRNG
from engine.runner import run_sweep
from engine.spec import load
from engine.store import read_csv

from helpers import by_instance, make_spec, train_all


def model_for(function: str, n: int, m: int, **params):
    spec = make_spec({"function": function, "n_features": n, "n_hidden": m, **params}, model="compute")
    return get_model("compute")(Hyper([i.config for i in spec.instances()], torch.device("cpu")),
                                CounterRNG(torch.tensor([0]), "cpu"))


def weights(W1, W2, b, c=None):
    out = {"W1": torch.tensor([W1]), "W2": torch.tensor([W2]), "b": torch.tensor([b])}
    if c is not None:
        out["c"] = torch.tensor([c])
    return out


def metrics(model, w):
    return {k: v.item() for k, v in model.metrics(w).items()}


# --- data ---------------------------------------------------------------------------------------------


def test_every_declared_function_is_implemented_with_its_declared_arity():
    """The torch-free declaration (choices, arity for checks and memory) and the trainer agree."""
    assert set(FUNCTIONS) == set(get_kind("compute").param_table()["function"].choices) == set(ARITY)
    assert {name: f.arity for name, f in FUNCTIONS.items()} == ARITY


@pytest.mark.parametrize("function", list(FUNCTIONS))
def test_trivial_loss_is_the_variance_of_the_sampled_targets(function):
    """The closed-form best-constant loss (p s - p^2 mean^2 per function) matches the targets drawn."""
    model = model_for(function, 3, 2, feature_probability=0.3, batch_size=200_000)
    x = sparse_inputs_(model.rng, DATA, 0, model.p, model._x, model.function)
    target = model.function.target(x.view(1, -1, 3, model.function.arity))
    empirical = (model.importance.squeeze(1) * target.var(1, unbiased=False)).mean(-1)
    assert empirical.item() == pytest.approx(model.trivial_loss().item(), rel=0.02)


def test_pair_inputs_are_active_together_and_drawn_from_their_domain():
    rng = CounterRNG(torch.tensor([3]), "cpu")
    p = torch.tensor([0.2]).view(1, 1, 1)
    pairs = sparse_inputs_(rng, DATA, 0, p, torch.empty(1, 50_000, 4), FUNCTIONS["max"]).view(1, -1, 2, 2)
    active = pairs != 0
    assert torch.equal(active[..., 0], active[..., 1])  # one Bernoulli per pair
    assert active[..., 0].float().mean().item() == pytest.approx(0.2, abs=0.01)
    on = pairs[active]
    assert on.min() >= 0 and on.max() < 1 and on.mean().item() == pytest.approx(0.5, abs=0.01)
    bits = sparse_inputs_(rng, DATA, 1, p, torch.empty(1, 50_000, 4), FUNCTIONS["and"]).view(1, -1, 2, 2)
    assert set(bits.unique().tolist()) == {0.0, 1.0}
    # Given the pair is active (first input drawn active), each bit is 1 half the time: P(1) = p / 2.
    assert bits.mean().item() == pytest.approx(0.1, abs=0.005)


def test_abs_without_hidden_bias_is_the_abs_value_model_draw_for_draw():
    """One piece of code: ``compute`` with function=abs and no hidden bias trains abs_value's weights."""
    params = {"n_features": 6, "n_hidden": 3, "steps": 60, "batch_size": 64, "lr": 1e-2, "seeds": 2,
              "feature_probability": 0.1}
    old = by_instance(train_all(make_spec(params, model="abs_value")))
    new = by_instance(train_all(make_spec({**params, "function": "abs", "hidden_bias": False}, model="compute")))
    for i, inst in old.items():
        assert set(new[i]["weights"]) == {"W1", "W2", "b"}
        for name in ("W1", "W2", "b"):
            assert torch.equal(inst["weights"][name], new[i]["weights"][name])
        assert inst["metrics"]["features_represented"] == new[i]["metrics"]["functions_computed"]


# --- metrics on hand-built circuits ---------------------------------------------------------------------


@pytest.mark.parametrize(("function", "share"), [("abs", 1.0), ("square", 1.0), ("max", 0.25), ("and", 1 / 3),
                                               ("or", 1 / 3)])
def test_the_affine_readout_leaves_the_known_share_of_the_variance(function, share):
    """|x| and x^2 do not correlate with x, so the best affine readout is the constant; it explains 3/4
    of Var max(x, y) ((x + y) / 2 is uncorrelated with |x - y| / 2) and 2/3 of Var AND and Var OR."""
    f = FUNCTIONS[function]
    points = f.probe()
    target = f.target(points)
    # (exact for the grids of one input and of bits; the 8 x 8 grid of max is within 3% of the continuum)
    assert linear_error(points, target).item() == pytest.approx(share * target.var(unbiased=False).item(), rel=0.03)


def test_a_linear_neuron_is_not_max_though_it_explains_most_of_its_variance():
    """One neuron ReLU(x + y) = x + y (inputs >= 0) read out as (x + y) / 2 + 1/6 explains 3/4 of Var max
    (R = 0.75 against the constant), but nothing beyond the affine readout: max is not computed."""
    model = model_for("max", 1, 1)
    w = weights([[1.0], [1.0]], [[0.5]], [1 / 6], [0.0])
    got = model.feature_metrics(w)
    assert got["explained"].item() == pytest.approx(0.75, abs=0.01)  # 0.744 on the 8 x 8 grid
    assert got["beyond_linear"].item() == pytest.approx(0.0, abs=0.01)
    assert metrics(model, w)["functions_computed"] == 0


def test_two_relus_compute_abs_exactly_and_both_serve_it():
    """|x| = ReLU(x) + ReLU(-x): R = 1; zeroing either neuron leaves one side (R = -1), so both serve."""
    model = model_for("abs", 1, 2)
    w = weights([[1.0, -1.0]], [[1.0], [1.0]], [0.0], [0.0, 0.0])
    got = metrics(model, w)
    assert got["functions_computed"] == 1 and got["neurons_per_function"] == 2
    assert got["neurons_used"] == 2 and got["polysemantic_neurons"] == 0 and got["monosemantic_neurons"] == 2
    result = probe(w["W1"], w["W2"], w["b"], w["c"], FUNCTIONS["abs"])
    assert result.explained.item() == pytest.approx(1.0, abs=1e-6)
    assert result.ablated[0, 0].tolist() == pytest.approx([-1.0, -1.0], abs=2e-3)


@pytest.mark.parametrize("function", ["max", "or"])
def test_max_and_or_are_relu_x_plus_relu_y_minus_x(function):
    """max(x, y) = ReLU(x) + ReLU(y - x) for x, y >= 0 (OR is max on bits): exact with two neurons."""
    model = model_for(function, 1, 2)
    w = weights([[1.0, -1.0], [0.0, 1.0]], [[1.0], [1.0]], [0.0])
    got = metrics(model, w)
    assert model.feature_metrics(w)["explained"].item() == pytest.approx(1.0, abs=1e-6)
    assert got["functions_computed"] == 1 and got["neurons_per_function"] == 2 and got["neurons_used"] == 2


def test_and_needs_one_neuron_with_either_bias():
    """AND = ReLU(x + y - 1): the threshold in the hidden bias, or after a ReLU(x + y) neuron in the output bias."""
    model = model_for("and", 1, 1)
    for w in (weights([[1.0], [1.0]], [[1.0]], [0.0], [-1.0]), weights([[1.0], [1.0]], [[1.0]], [-1.0], [0.0])):
        assert model.feature_metrics(w)["explained"].item() == pytest.approx(1.0, abs=1e-6)
        assert metrics(model, w)["neurons_per_function"] == 1
    # Without the threshold, ReLU(x + y) is off by 1 on (0, 1), (1, 0) and (1, 1): MSE 3/4 against Var 3/16.
    plain = weights([[1.0], [1.0]], [[1.0]], [0.0], [0.0])
    assert model.feature_metrics(plain)["explained"].item() == pytest.approx(1 - 0.75 / (3 / 16), abs=1e-5)
    got = metrics(model, plain)
    assert got["functions_computed"] == 0 and math.isnan(got["neurons_per_function"])


def test_square_is_a_hinge_without_hidden_bias_and_a_finer_fit_with_it():
    """x^2 has no exact circuit. |x| (two neurons) explains 1 - (1/30) / (4/45) = 0.625 of Var(x^2); with
    hidden biases, knots at 0 and +-1/2 (the interpolant with spacing 1/2, MSE 1/480) explain 0.977."""
    model = model_for("square", 1, 4)
    hinge = weights([[1.0, -1.0, 0.0, 0.0]], [[1.0], [1.0], [0.0], [0.0]], [0.0], [0.0] * 4)
    assert model.feature_metrics(hinge)["explained"].item() == pytest.approx(0.625, abs=2e-3)
    knots = weights([[1.0, -1.0, 1.0, -1.0]], [[0.5], [0.5], [1.0], [1.0]], [0.0], [0.0, 0.0, -0.5, -0.5])
    assert model.feature_metrics(knots)["explained"].item() == pytest.approx(1 - (1 / 480) / (4 / 45), abs=2e-3)
    assert metrics(model, knots)["neurons_per_function"] == 4


def test_a_shared_neuron_computes_two_functions_and_counts_as_polysemantic():
    """|x0| and |x1| with three neurons: ReLU(x0), ReLU(x1) and a shared ReLU(-x0 - x1) that is each
    one's negative side when it is alone. Two functions, three neurons, the shared one polysemantic;
    four sides on three neurons is more than monosemantic neurons could do."""
    model = model_for("abs", 2, 3)
    w = weights([[1.0, 0.0, -1.0], [0.0, 1.0, -1.0]], [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], [0.0, 0.0],
                [0.0, 0.0, 0.0])
    got = metrics(model, w)
    assert got["functions_computed"] == 2 and got["functions_per_neuron"] == pytest.approx(2 / 3)
    assert got["neurons_per_function"] == 2 and got["neurons_used"] == 3 and got["polysemantic_neurons"] == 1
    assert got["monosemantic_neurons"] == 2
    assert model.feature_metrics(w)["neurons"][0].tolist() == [2, 2]


def test_neuron_counts_are_scale_free_and_follow_the_ablation_threshold():
    """Scaling a neuron's input weights and bias by a and its output weights by 1/a changes nothing; a
    neuron that carries a small part of a function serves it only under a low enough threshold."""
    model = model_for("abs", 1, 3)
    # Neuron 2 adds 0.1 ReLU(x) on top of 0.9 ReLU(x): zeroing it costs R about 0.02.
    w = weights([[0.9, -1.0, 0.1]], [[1.0], [1.0], [1.0]], [0.0], [0.0, 0.0, 0.0])
    assert metrics(model, w)["neurons_per_function"] == 2
    scaled = weights([[9.0, -0.5, 0.01]], [[0.1], [2.0], [10.0]], [0.0], [0.0, 0.0, 0.0])
    assert metrics(model, scaled) == pytest.approx(metrics(model, w))
    low = model_for("abs", 1, 3, ablation_threshold=0.01)
    assert metrics(low, w)["neurons_per_function"] == 3


# --- the qualitative outcome on small seeded configurations ----------------------------------------------


def metrics_by_point(spec, axis):
    out: dict = {}
    for inst in by_instance(train_all(spec)).values():
        out.setdefault(inst["config"][axis], []).append({k: v.item() for k, v in inst["metrics"].items()})
    return out


def test_with_enough_neurons_every_function_is_computed():
    """n=3 functions, m=8 neurons, dense: max, AND and OR are all computed beyond the affine readout
    (W2 matched to W1 at init, so no output starts dead; the default independent init left OR's loss
    above the best constant's in this configuration)."""
    spec = make_spec({"n_features": 3, "n_hidden": 8, "steps": 1500, "batch_size": 256, "lr": 1e-2,
                      "feature_probability": 1.0, "w2_init": "matched"}, sweep={"function": "max,and,or"},
                     model="compute")
    for function, [got] in metrics_by_point(spec, "function").items():
        assert got["functions_computed"] == 3, function
        assert got["loss"] < 0.2 * got["trivial_loss"], function


def test_sparse_or_computes_more_functions_than_neurons():
    """n=10 ORs, m=4 neurons (importance 0.8^i): dense, at most one function per neuron; at p=0.01 the
    lowest-loss of two seeds computes more ORs than it has neurons, every neuron serving several."""
    spec = make_spec({"function": "or", "n_features": 10, "n_hidden": 4, "importance_decay": 0.8, "steps": 1000,
                      "batch_size": 128, "lr": 1e-2, "seeds": 2}, sweep={"feature_probability": "1,0.01"},
                     model="compute")
    points = metrics_by_point(spec, "feature_probability")
    for got in points[1.0]:
        assert got["functions_per_neuron"] <= 1.0 and got["polysemantic_neurons"] == 0
    best = min(points[0.01], key=lambda got: got["loss"])
    assert best["loss"] < 0.5 * best["trivial_loss"]
    assert best["functions_per_neuron"] > 1.0 and best["polysemantic_neurons"] >= 3


def test_compute_preset_runs_and_writes_its_columns(tmp_path):
    spec = load("compute-functions", sets=["steps=20"], sweeps=["function=max,and", "feature_probability=0.1"])
    outcome = run_sweep(spec, tmp_path, device="cpu")
    assert outcome.status == "completed", outcome.error
    header, rows = read_csv(outcome.run_dir / "results.csv")
    assert {"loss", "trivial_loss", "functions_computed", "functions_per_neuron", "neurons_per_function",
            "neurons_used", "polysemantic_neurons", "monosemantic_neurons"} <= set(header)
    assert len(rows) == 2
    feature_header, feature_rows = read_csv(outcome.run_dir / "features.csv")
    assert {"explained", "beyond_linear", "computed", "neurons"} <= set(feature_header) and len(feature_rows) == 20


def test_an_unknown_function_is_one_clear_error():
    with pytest.raises(SpecError, match="function='min' is not valid: expected one of abs, square, max, and, or"):
        make_spec({"function": "min"}, model="compute")
