"""Computation in superposition beyond |x| (the ``compute`` model): the data, the metrics on
hand-built circuits with known answers, and the qualitative outcome on small seeded configurations."""

from __future__ import annotations

import math

import pytest
import torch

from toysup.engine.errors import SpecError
from toysup.engine.kinds.compute import ARITY
from toysup.engine.models import Hyper, get_kind, get_model
from toysup.engine.models.compute import FUNCTIONS, linear_error, probe, sparse_inputs_
from toysup.engine.models.compute_eval import affine_error, control_error, real_inputs
from toysup.engine.rng import DATA, CounterRNG
from toysup.engine.run.layout import read_csv
from toysup.engine.runner import run_sweep
from toysup.engine.spec import load

from helpers import by_instance, make_spec, run_options, train_all


def model_for(function: str, n: int, m: int, sweep: dict | None = None, **params):
    """A model to judge hand-built weights; dense unless told (one function alone: the real inputs are its domain)."""
    params = {"feature_probability": 1.0, **params}
    spec = make_spec({"function": function, "n_features": n, "n_hidden": m, **params}, sweep=sweep or {},
                     model="compute")
    configs = [i.config for i in spec.instances()]
    return get_model("compute")(Hyper(configs, torch.device("cpu")), CounterRNG(torch.arange(len(configs)), "cpu"))


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
        assert inst["metrics"]["features_represented"] == new[i]["metrics"]["functions_computed_alone"]


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
    # Without the threshold, ReLU(x + y) is off by 1 on (0, 1), (1, 0) and (1, 1): MSE 3/4 against Var 3/16
    # (on the real inputs a sampled estimate: within 4 of its standard errors).
    plain = weights([[1.0], [1.0]], [[1.0]], [0.0], [0.0])
    judged = model.feature_metrics(plain)
    assert abs(judged["error"].item() - 0.75) < 4 * judged["error_se"].item() < 0.05
    assert judged["wrong_rate"].item() == pytest.approx(0.75, abs=0.03)  # every input but (0, 0) rounds wrong
    assert model.feature_metrics(weights([[1.0], [1.0]], [[1.0]], [-1.0], [0.0]))["wrong_rate"].item() == 0.0
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


SHARED = weights([[1.0, 0.0, -1.0], [0.0, 1.0, -1.0]], [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], [0.0, 0.0],
                 [0.0, 0.0, 0.0])


@pytest.mark.parametrize("p", [1.0, 0.3])
def test_a_circuit_that_works_alone_but_not_with_its_neighbour_active_is_not_computed(p):
    """|x0| and |x1| with three neurons: ReLU(x0), ReLU(x1) and a shared ReLU(-x0 - x1), each one's
    negative side when it is alone. The isolated probe scores both exact (the old rule counted two
    functions on three neurons, one polysemantic). On the real inputs neither is computed: with both
    active the shared neuron mixes them, and x0 < 0 alone drives the inactive output 1 to |x0|
    (interference the probe never looks at), which alone costs about half of Var |x1|: beyond_linear
    is 0.26 at p = 0.5, 0.38 at 0.3, 0.47 at 0.1 and tends to the 0.5 cut from below as p -> 0.
    Giving each function its own two neurons computes both on the same inputs."""
    shared = model_for("abs", 2, 3, feature_probability=p)
    got = metrics(shared, SHARED)
    assert got["functions_computed_alone"] == 2
    assert got["functions_computed"] == 0 and got["functions_computed_hidden"] == 0
    assert got["polysemantic_neurons"] == 0 and math.isnan(got["neurons_per_function"])
    assert (shared.feature_metrics(SHARED)["beyond_linear_alone"] > 0.99).all()
    own = weights([[1.0, -1.0, 0.0, 0.0], [0.0, 0.0, 1.0, -1.0]], [[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]],
                  [0.0, 0.0], [0.0] * 4)
    got = metrics(model_for("abs", 2, 4, feature_probability=p), own)
    assert got["functions_computed"] == 2 and got["functions_computed_hidden"] == 2
    assert got["neurons_per_function"] == 2 and got["polysemantic_neurons"] == 0


def test_and_through_the_output_relu_alone_is_not_the_hidden_layers_work():
    """AND = ReLU(x + y - 1) needs no hidden nonlinearity: with a linear hidden layer, or with ReLU
    neurons that only pass x + y on, AND is computed on the real inputs but not counted as the hidden
    layer's computation (the best output-ReLU readout is exact). OR is not an output-ReLU function, so
    the same exact two-neuron circuit counts."""
    for activation in ("linear", "relu"):
        model = model_for("and", 2, 2, hidden_activation=activation, feature_probability=0.1)
        w = weights([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]], [-1.0, -1.0],
                    [0.0, 0.0])
        got = metrics(model, w)
        assert got["functions_computed"] == 2 and got["functions_computed_hidden"] == 0, activation
        # A linear hidden layer has no privileged basis (any rotation does as well): no neuron counts.
        assert math.isnan(got["polysemantic_neurons"]) == (activation == "linear")
        assert model.feature_metrics(w)["control_error"].tolist() == [[0.0, 0.0]]
    model = model_for("or", 1, 2, feature_probability=0.1)
    exact = weights([[1.0, -1.0], [0.0, 1.0]], [[1.0], [1.0]], [0.0], [0.0, 0.0])
    assert metrics(model, exact)["functions_computed_hidden"] == 1


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


def test_with_enough_neurons_max_is_computed_and_and_only_by_the_output_relu():
    """n=3 functions, m=8 neurons, dense (all three always active together): max is computed on the real
    inputs, 3 of 3, by the hidden layer (W2 matched to W1 at init, so no output starts dead). OR is
    computed by the hidden layer for 2 of 3 and AND for 2 of 3 but never by the hidden layer: the
    output ReLU solves AND alone. Each of AND and OR scores 3 of 3 on the isolated probe: its first
    copy fails only with the others active."""
    spec = make_spec({"n_features": 3, "n_hidden": 8, "steps": 1500, "batch_size": 256, "lr": 1e-2,
                      "feature_probability": 1.0, "w2_init": "matched"}, sweep={"function": "max,and,or"},
                     model="compute")
    got = {function: runs[0] for function, runs in metrics_by_point(spec, "function").items()}
    assert got["max"]["functions_computed"] == got["max"]["functions_computed_hidden"] == 3
    assert got["or"]["functions_computed_hidden"] == 2 and got["or"]["functions_computed_alone"] == 3
    assert got["and"]["functions_computed"] == 2 and got["and"]["functions_computed_hidden"] == 0
    assert got["and"]["functions_computed_alone"] == 3
    for function, m in got.items():
        assert m["loss"] < 0.2 * m["trivial_loss"], function


def test_the_trained_control_without_a_hidden_relu_computes_and_but_never_counts_as_hidden():
    """hidden_activation = linear trains the control: 4 dense ANDs through 4 linear hidden units and the
    output ReLU. It computes 2-3 of them on the real inputs (ReLU(x + y - 1) needs no hidden
    nonlinearity), and none beats the output-ReLU readout, so none counts as the hidden layer's."""
    spec = make_spec({"function": "and", "n_features": 4, "n_hidden": 4, "steps": 1000, "batch_size": 256,
                      "lr": 1e-2, "seeds": 2, "feature_probability": 1.0, "hidden_activation": "linear"},
                     model="compute")
    for inst in by_instance(train_all(spec)).values():
        got = {k: v.item() for k, v in inst["metrics"].items()}
        assert got["functions_computed"] >= 2 and got["functions_computed_hidden"] == 0
        assert got["loss"] < 0.7 * got["trivial_loss"]


def test_sparse_or_computes_more_functions_than_neurons_on_the_real_inputs():
    """n=10 ORs, m=4 neurons (importance 0.8^i), 4 seeds: dense, at most one function per neuron and no
    polysemantic neuron; at p=0.01, on the real inputs (others co-active as the data makes them), a
    seed computes more ORs than it has neurons, every neuron serving several, and all by the hidden
    layer (the output ReLU alone computes no OR)."""
    spec = make_spec({"function": "or", "n_features": 10, "n_hidden": 4, "importance_decay": 0.8, "steps": 1000,
                      "batch_size": 128, "lr": 1e-2, "seeds": 4}, sweep={"feature_probability": "1,0.01"},
                     model="compute")
    points = metrics_by_point(spec, "feature_probability")
    for got in points[1.0]:
        assert got["functions_per_neuron"] <= 1.0 and got["polysemantic_neurons"] == 0
    best = max(points[0.01], key=lambda got: got["functions_computed"])
    assert best["loss"] < 0.5 * best["trivial_loss"]
    assert best["functions_per_neuron"] > 1.0 and best["polysemantic_neurons"] == 4
    assert best["functions_computed_hidden"] == best["functions_computed"]


def test_compute_preset_runs_and_writes_its_columns(tmp_path):
    spec = load("compute-functions", sets=["steps=20", "seeds=1", "eval_batch_size=4096"],
                sweeps=["function=max,and", "feature_probability=0.1", "hidden_activation=relu,linear"])
    outcome = run_sweep(spec, tmp_path, run_options())
    assert outcome.status == "completed", outcome.error
    header, rows = read_csv(outcome.run_dir / "results.csv")
    assert {"loss", "loss_se", "trivial_loss", "functions_computed", "functions_computed_hidden",
            "functions_computed_alone", "functions_per_neuron", "neurons_per_function", "neurons_used",
            "polysemantic_neurons", "monosemantic_neurons"} <= set(header)
    assert len(rows) == 4 and {row["hidden_activation"] for row in rows} == {"relu", "linear"}
    feature_header, feature_rows = read_csv(outcome.run_dir / "features.csv")
    assert {"error", "error_se", "affine_error", "control_error", "explained", "beyond_linear", "beyond_linear_alone",
            "computed", "computed_hidden", "computed_alone", "wrong_rate", "neurons"} <= set(feature_header)
    assert len(feature_rows) == 40


def test_an_unknown_function_is_one_clear_error():
    with pytest.raises(SpecError, match="function='min' is not valid: expected one of abs, square, max, and, or"):
        make_spec({"function": "min"}, model="compute")


# --- the evaluation on the real inputs ----------------------------------------------------------------------


def test_the_real_input_error_matches_a_brute_force_sample_and_shrinks_with_the_budget():
    """The stratified estimate of each output's error (random weights with a live hidden bias, max of
    pairs, p = 0.1 and 0.01) agrees with a 200,000-sample draw of the training data within their
    combined standard errors, and its standard error falls about as 1/sqrt(budget) (16x: 4x)."""
    model = model_for("max", 6, 3, batch_size=200_000, sweep={"feature_probability": "0.1,0.01"})
    w = model.init_weights()
    w["c"] = torch.tensor([[0.1, -0.2, 0.05]]).expand(2, 3).contiguous()
    w["b"] = torch.full((2, 6), 0.05)
    p, importance = model.p.view(-1), model.importance.squeeze(1)
    small = real_inputs(w, model.function, p, importance, model.rng, 512)
    large = real_inputs(w, model.function, p, importance, model.rng, 8192)
    ratio = small.error_se / large.error_se
    assert ratio.min().item() > 2.5 and ratio.max().item() < 6.0
    assert (small.loss_se / large.loss_se).min().item() > 2.5
    x = sparse_inputs_(model.rng, DATA, 0, model.p, model._x, model.function)
    squared = (model._forward(w, x) - model.function.target(x.view(2, -1, 6, 2))).square()
    brute, brute_se = squared.mean(1), squared.std(1) / math.sqrt(squared.shape[1])
    for estimate in (small, large):
        gap = (estimate.error - brute).abs() / (estimate.error_se.square() + brute_se.square()).sqrt()
        assert gap.max().item() < 4.0
    loss = (importance.unsqueeze(1) * squared).mean((1, 2))
    assert ((large.loss - loss).abs() < 4 * (large.loss_se + brute_se.mean(-1))).all()


def test_the_readouts_judged_against_are_exact_where_known():
    """The best affine readout's error at p = 1 is Var f for |x| and x^2, a quarter of Var max, a third of
    Var AND and OR; the best output-ReLU readout solves AND exactly, cannot help OR (its error is the
    affine one) and, sparse, computes one side of |x| (the zero point fixes the bias at 0: about half
    of Var |x|); dense it is the constant for |x| (any ReLU(a x + c) with a != 0 misses a side)."""
    for name, share in (("abs", 1.0), ("square", 1.0), ("max", 0.25), ("and", 1 / 3), ("or", 1 / 3)):
        f = FUNCTIONS[name]
        assert affine_error(f, 1.0) == pytest.approx(share * (f.mean_square - f.mean ** 2), rel=1e-9), name
    assert control_error(FUNCTIONS["and"], 0.1) == 0.0
    assert control_error(FUNCTIONS["or"], 0.1) == pytest.approx(affine_error(FUNCTIONS["or"], 0.1), rel=1e-6)
    variance = 0.01 / 3 - 0.01 ** 2 / 4
    assert control_error(FUNCTIONS["abs"], 0.01) == pytest.approx(0.5 * variance, rel=0.02)
    assert control_error(FUNCTIONS["abs"], 1.0) == pytest.approx(1 / 12, rel=1e-3)


def test_an_instances_evaluation_does_not_depend_on_its_neighbours():
    """Strata, their sample counts and their draws are an instance's own (its samples are a prefix of
    the stratum's draw), so p = 0.1 judged alone or beside p = 0.4 (which needs more rows in most
    strata) gives the same estimate, to float rounding."""
    both = model_for("or", 5, 3, sweep={"feature_probability": "0.1,0.4"})
    alone = model_for("or", 5, 3, feature_probability=0.1)
    w = both.init_weights()
    first = {k: v[:1] for k, v in w.items()}
    got_both = real_inputs(w, both.function, both.p.view(-1), both.importance.squeeze(1), both.rng, 2048)
    got_alone = real_inputs(first, alone.function, alone.p.view(-1), alone.importance.squeeze(1), alone.rng, 2048)
    for name in ("error", "error_se", "ablated", "wrong", "loss", "loss_se"):
        assert torch.allclose(getattr(got_both, name)[:1], getattr(got_alone, name), rtol=1e-5, atol=1e-9), name
