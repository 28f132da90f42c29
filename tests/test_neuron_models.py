"""The ReLU hidden-layer (neuron) model and the absolute-value model (Elhage et al. 2022): metrics on
hand-built weights, the published outcomes on small seeded configurations, and their presets."""

from __future__ import annotations

import pytest
import torch

from toysup.engine.models.abs_value import explained_alone, explained_by_sign, probe_inputs, sparse_symmetric_
from toysup.engine.models.relu_hidden import dead_neurons, neuron_monosemanticity
from toysup.engine.rng import DATA, CounterRNG
from toysup.engine.run.layout import read_csv
from toysup.engine.runner import run_sweep
from toysup.engine.spec import load

from helpers import by_instance, make_spec, run_options, train_all


def metrics_by_point(spec, axis="feature_probability"):
    """{axis value: [metrics dict of each seed]} after training ``spec``."""
    out: dict[float, list[dict[str, float]]] = {}
    for inst in by_instance(train_all(spec)).values():
        out.setdefault(inst["config"][axis], []).append({k: v.item() for k, v in inst["metrics"].items()})
    return out


# --- neuron model: metrics on hand-built weights -----------------------------------------------------


def test_neuron_monosemanticity_and_dead_neurons_on_hand_built_weights():
    # W is (I, n, m): column n is neuron n's weights over the 3 features.
    W = torch.tensor([[[1.0, 0.6, 0.0, -1.0],
                       [0.0, 0.8, 0.0, 0.0],
                       [0.0, 0.0, 0.0, -0.5]]])
    # Sign-aware (a ReLU on h): only positive weights drive a neuron, so the all-negative neuron 3 reads 0.
    assert neuron_monosemanticity(W)[0].tolist() == pytest.approx([1.0, 0.8, 0.0, 0.0])
    assert neuron_monosemanticity(W, "magnitude")[0].tolist() == pytest.approx([1.0, 0.8, 0.0, 1 / 1.25 ** 0.5])
    assert dead_neurons(W).tolist() == [2]  # the all-zero neuron and the all-negative one never fire


def test_neuron_model_forward_applies_relu_to_the_hidden_layer():
    spec = make_spec({"n_features": 2, "n_hidden": 1, "steps": 1}, model="relu_hidden")
    from toysup.engine.models import Hyper, get_model
    model = get_model("relu_hidden")(Hyper([i.config for i in spec.instances()], torch.device("cpu")),
                                     CounterRNG(torch.tensor([0]), "cpu"))
    weights = {"W": torch.tensor([[[1.0], [-1.0]]]), "b": torch.zeros(1, 2)}
    x = torch.tensor([[[0.2, 0.7]]])  # W x = -0.5: the neuron is off, so nothing comes through
    assert model._forward(weights, x, None).tolist() == [[[0.0, 0.0]]]
    x = torch.tensor([[[0.7, 0.2]]])  # W x = 0.5 -> x' = ReLU(W^T h) = (0.5, 0)
    assert model._forward(weights, x, None).tolist() == [[[0.5, 0.0]]]


# --- neuron model: the published outcome --------------------------------------------------------------


def test_neurons_are_monosemantic_when_dense_and_polysemantic_when_sparse():
    """n=10, m=5, importance 0.75^i: at p=0.5 every neuron reads one feature; at p=0.02 more than 5
    features are represented and neurons are driven (positive weights) by several of them. (Near p=1
    alignment is slow at lr 3e-3: dense inputs keep the neurons linear, so rotations cost almost nothing.)"""
    spec = make_spec({"n_features": 10, "n_hidden": 5, "importance_decay": 0.75, "steps": 1500,
                      "batch_size": 128, "lr": 1e-2, "seeds": 2},
                     sweep={"feature_probability": "0.5,0.02"}, model="relu_hidden")
    points = metrics_by_point(spec)
    for m in points[0.5]:
        assert m["monosemantic_neurons"] >= 4 and m["polysemantic_neurons"] == 0
        assert m["features_represented"] == 5 and m["mean_neuron_monosemanticity"] > 0.99
    for m in points[0.02]:
        assert m["monosemantic_neurons"] <= 1 and m["polysemantic_neurons"] >= 2
        assert m["features_represented"] > 5
        assert m["mean_neuron_monosemanticity"] < 0.8


def test_neuron_preset_runs_and_writes_its_columns(tmp_path):
    spec = load("neuron-superposition", sets=["steps=20", "seeds=1"], sweeps=["feature_probability=1,0.1"])
    outcome = run_sweep(spec, tmp_path, run_options())
    assert outcome.status == "completed", outcome.error
    header, rows = read_csv(outcome.run_dir / "results.csv")
    assert {"monosemantic_neurons", "polysemantic_neurons", "mean_neuron_monosemanticity", "dead_neurons"} <= set(
        header)
    assert len(rows) == 2


# --- absolute-value model: data and metrics ------------------------------------------------------------


def test_symmetric_sparse_data_has_the_right_density_and_range():
    rng = CounterRNG(torch.tensor([0, 1]), "cpu")
    p = torch.tensor([0.5, 0.1]).view(2, 1, 1)
    x = sparse_symmetric_(rng, DATA, 1, p, torch.empty(2, 20000, 5))
    active = (x != 0).float().mean((1, 2))
    assert active.tolist() == pytest.approx([0.5, 0.1], abs=0.01)
    assert x.min() >= -1 and x.max() < 1
    values = x[0][x[0] != 0]
    assert values.mean().item() == pytest.approx(0.0, abs=0.02)
    assert values.abs().mean().item() == pytest.approx(0.5, abs=0.01)


def test_explained_variance_on_hand_built_circuits():
    # Feature 0: ReLU(x) + ReLU(-x), exact |x|. Feature 1: one neuron, the positive side only.
    W1 = torch.tensor([[[1.0, -1.0, 0.0], [0.0, 0.0, 1.0]]])
    W2 = torch.tensor([[[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]])
    b = torch.zeros(1, 2)
    sides = explained_by_sign(W1, W2, b)
    assert sides[0, 0].tolist() == pytest.approx([1.0, 1.0], abs=1e-6)
    assert sides[0, 1].tolist() == pytest.approx([-3.0, 1.0], abs=2e-3)  # zero output on x < 0: MSE 1/3
    assert explained_alone(W1, W2, b)[0].tolist() == pytest.approx([1.0, -1.0], abs=2e-3)
    # The best constant (1/2) explains nothing; the best one-sided circuit explains exactly 1/5.
    const = explained_alone(torch.zeros(1, 1, 1), torch.zeros(1, 1, 1), torch.full((1, 1), 0.5))
    assert const.item() == pytest.approx(0.0, abs=1e-3)
    one_sided = explained_alone(torch.ones(1, 1, 1), torch.full((1, 1, 1), 0.4), torch.full((1, 1), 0.4))
    assert one_sided.item() == pytest.approx(0.2, abs=1e-3)


def test_probe_grid_is_symmetric_with_one_feature_per_block():
    x, t = probe_inputs(3, 8)
    assert t.tolist() == pytest.approx([-(v) for v in reversed(t.tolist())])
    assert (t[:4] < 0).all() and (t[4:] > 0).all()
    assert ((x != 0).sum(-1) == 1).all() and x.shape == (24, 3)


# --- absolute-value model: the published outcome ----------------------------------------------------------


def test_abs_value_computes_in_superposition_when_sparse():
    """n=8 features (importance 0.8^i), m=4 neurons, W2 = |W1|^T at init (``matched``: no dead outputs).
    Dense: a monosemantic neuron per side, so at most m sides of |x_i| computed. Sparse (p=0.03): more
    sides than neurons (computation in superposition), and more features with a side computed than
    there are neurons. The loss beats the best constant."""
    spec = make_spec({"n_features": 8, "n_hidden": 4, "importance_decay": 0.8, "steps": 1500, "batch_size": 256,
                      "lr": 1e-2, "seeds": 2, "w2_init": "matched"}, sweep={"feature_probability": "1,0.03"},
                     model="abs_value")
    points = metrics_by_point(spec)
    for m in points[1.0] + points[0.03]:
        assert m["loss"] < 0.9 * m["trivial_loss"]
    for m in points[1.0]:
        assert m["sides_per_neuron"] <= 1.0 and m["monosemantic_neurons"] >= 3
        assert m["features_represented"] >= 1
    for m in points[0.03]:
        assert m["sides_per_neuron"] >= 1.5
        assert m["sides_computed"] - m["features_represented"] > 4  # features with at least one side
        assert m["monosemantic_neurons"] == 0


def test_abs_value_default_init_is_the_independent_one_and_still_computes_in_superposition():
    """The default is the literature's independent W2. Some outputs start dead (a seed can end worse
    than the best constant), but at p=0.03 the lowest-loss of 4 seeds still computes more sides than
    it has neurons."""
    from toysup.engine.models import get_model

    assert get_model("abs_value").param_table()["w2_init"].default == "independent"
    spec = make_spec({"n_features": 8, "n_hidden": 4, "importance_decay": 0.8, "steps": 1500, "batch_size": 256,
                      "lr": 1e-2, "seeds": 4, "feature_probability": 0.03}, model="abs_value")
    best = min(metrics_by_point(spec)[0.03], key=lambda m: m["loss"])
    assert best["loss"] < 0.7 * best["trivial_loss"]
    assert best["sides_per_neuron"] >= 1.5 and best["polysemantic_neurons"] >= 2


def test_abs_value_preset_runs_and_writes_its_columns(tmp_path):
    spec = load("abs-value", sets=["steps=20", "seeds=1"], sweeps=["feature_probability=1,0.1"])
    outcome = run_sweep(spec, tmp_path, run_options())
    assert outcome.status == "completed", outcome.error
    header, rows = read_csv(outcome.run_dir / "results.csv")
    assert {"loss", "trivial_loss", "features_represented", "sides_computed", "sides_per_neuron",
            "monosemantic_neurons", "polysemantic_neurons"} <= set(header)
    assert len(rows) == 2
    feature_header, feature_rows = read_csv(outcome.run_dir / "features.csv")
    assert {"explained", "explained_neg", "explained_pos"} <= set(feature_header) and len(feature_rows) == 40


def test_abs_value_neuron_metrics_count_either_sign():
    """Inputs in [-1, 1]: a negative weight fires the neuron for x_i < 0, so it drives it too."""
    from toysup.engine.models import Hyper, get_model

    spec = make_spec({"n_features": 2, "n_hidden": 2}, model="abs_value")
    model = get_model("abs_value")(Hyper([i.config for i in spec.instances()], torch.device("cpu")),
                                   CounterRNG(torch.tensor([0]), "cpu"))
    W1 = torch.tensor([[[-1.0, 0.0], [0.0, 1.0]]])  # neuron 0 reads -x_0 (the x_0 < 0 side), neuron 1 reads x_1
    got = model.metrics({"W1": W1, "W2": W1.abs().transpose(1, 2), "b": torch.zeros(1, 2)})
    assert got["monosemantic_neurons"].item() == 2
    assert got["mean_neuron_monosemanticity"].item() == pytest.approx(1.0)
