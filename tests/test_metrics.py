"""Metrics on hand-built weight matrices with known answers (engine/metrics.py).

Convention: W is (instances, n_features, n_hidden); W[k, i] is feature i's embedding.
"""

from __future__ import annotations

import math

import pytest
import torch

from toysup.engine import metrics as M
from toysup.engine.analysis.aggregate import by_point
from toysup.engine.data import sparse_uniform_
from toysup.engine.models import Hyper, get_model
from toysup.engine.models.relu_output import superposition_metrics
from toysup.engine.rng import EVAL, CounterRNG


def W(*rows: list[float]) -> torch.Tensor:
    """One instance's weights from its feature rows, shape (1, n, m)."""
    return torch.tensor([rows], dtype=torch.float32)


def polygon(k: int, norm: float = 1.0, phase: float = 0.0) -> torch.Tensor:
    """k features at the corners of a regular polygon in 2-D, shape (1, k, 2)."""
    angles = [phase + 2 * math.pi * j / k for j in range(k)]
    return W(*[[norm * math.cos(a), norm * math.sin(a)] for a in angles])


def tetrahedron() -> torch.Tensor:
    s = 1 / math.sqrt(3)
    return W([s, s, s], [s, -s, -s], [-s, s, -s], [-s, -s, s])


def approx(values, expected, abs_tol=1e-5):
    return torch.as_tensor(values).flatten().tolist() == pytest.approx(expected, abs=abs_tol)


# --- feature norms, dimensionality, interference, D* ----------------------------------------------


def test_orthogonal_pair():
    w = W([1, 0], [0, 1])
    assert approx(M.feature_norms(w), [1, 1])
    assert approx(M.feature_dimensionality(w), [1, 1])
    assert approx(M.interference(w), [0, 0])
    assert approx(M.dims_per_feature(w), [2 / 2])  # m / ||W||_F^2 = m/2 for two unit features
    assert M.features_represented(w).tolist() == [2]


def test_rotated_orthogonal_pair_in_three_dimensions():
    c, s = math.cos(0.3), math.sin(0.3)
    w = W([c, s, 0], [-s, c, 0])
    assert approx(M.feature_dimensionality(w), [1, 1])
    assert approx(M.interference(w), [0, 0])
    assert approx(M.dims_per_feature(w), [3 / 2])


def test_antipodal_pair_has_dimensionality_one_half():
    w = W([0.6, 0.8], [-0.6, -0.8])
    assert approx(M.feature_dimensionality(w), [0.5, 0.5])
    assert approx(M.interference(w), [1, 1])
    assert approx(M.dims_per_feature(w), [1.0])


def test_regular_pentagon_of_unit_vectors():
    w = polygon(5, phase=0.4)
    assert approx(M.feature_dimensionality(w), [0.4] * 5)
    # sum over the other four of cos^2: 2 (cos^2 72 + cos^2 144) = 1.5
    assert approx(M.interference(w), [1.5] * 5)
    assert approx(M.dims_per_feature(w), [2 / 5])
    assert M.features_represented(w).tolist() == [5]


def test_pentagon_with_norm_1_15_keeps_d_i_but_not_dims_per_feature():
    w = polygon(5, norm=1.15)
    assert approx(M.feature_norms(w), [1.15] * 5)
    assert approx(M.feature_dimensionality(w), [0.4] * 5)  # D_i does not depend on the scale
    dpf = float(M.dims_per_feature(w))
    assert dpf == pytest.approx(2 / (5 * 1.15**2), abs=1e-5)
    assert 0.30 <= dpf <= 0.31  # the published ~0.30, not 2/5
    assert approx(M.interference(w), [1.5 * 1.15**2] * 5)


@pytest.mark.parametrize("shape, weights, d_i", [
    ("triangle", polygon(3), 2 / 3),
    ("square (two antipodal pairs)", polygon(4), 1 / 2),
    ("tetrahedron", tetrahedron(), 3 / 4),
    ("single feature", W([0.0, 2.0]), 1.0),
])
def test_feature_dimensionality_of_the_known_geometries(shape, weights, d_i):
    assert approx(M.feature_dimensionality(weights), [d_i] * weights.shape[1]), shape


def test_sum_of_dimensionalities_is_m_for_an_efficient_packing():
    for w, m in ((polygon(5), 2), (tetrahedron(), 3), (W([1, 0, 0], [0, 1, 0], [0, 0, 1]), 3)):
        assert float(M.feature_dimensionality(w).sum()) == pytest.approx(m, abs=1e-5)


def test_represented_by_norm_is_relative_to_the_largest_norm():
    w = W([0.39, 0.0], [0.0, 0.41], [2.0, 0.0], [0.0, 0.0])  # ratios 0.195, 0.205, 1, 0 against the cut 0.2
    assert M.represented_by_norm(w).tolist() == [[False, True, True, False]]
    assert M.represented_by_norm(0.1 * w).tolist() == [[False, True, True, False]]  # scale-free
    assert M.features_represented(w).tolist() == [2]


def test_zero_features_are_not_learned():
    w = W([1, 0], [0, 1], [0, 0])
    assert approx(M.feature_dimensionality(w), [1, 1, 0])
    assert approx(M.interference(w), [0, 0, 0])
    assert M.features_represented(w).tolist() == [2]
    assert approx(M.dims_per_feature(w), [1.0])


def test_an_all_zero_matrix_has_no_features_and_no_nans():
    w = torch.zeros(1, 5, 2)
    assert M.features_represented(w).tolist() == [0]
    assert approx(M.feature_dimensionality(w), [0] * 5)
    assert approx(M.interference(w), [0] * 5)
    assert M.polysemantic_neurons(w).tolist() == [0]
    assert M.monosemantic_neurons(w).tolist() == [0]  # dead neurons are not monosemantic
    assert math.isinf(float(M.dims_per_feature(w)))
    alignment, angle = M.orientation(w)
    assert not torch.isnan(alignment).any() and not torch.isnan(angle).any()


# --- orientation of the largest feature -------------------------------------------------------------


def test_axis_aligned_largest_feature():
    w = W([0.0, 2.0], [0.3, 0.1])  # the largest feature lies on neuron 1
    alignment, angle = M.orientation(w)
    assert approx(alignment, [1.0])
    assert approx(angle, [0.0], abs_tol=1e-3)


def test_45_degree_feature():
    w = W([0.7, 0.7], [0.1, 0.0])
    alignment, angle = M.orientation(w)
    assert approx(alignment, [1 / math.sqrt(2)])
    assert approx(angle, [45.0], abs_tol=1e-3)


@pytest.mark.parametrize("degrees", [10.0, 30.0, 44.0])
def test_angle_to_the_nearest_axis_whatever_the_quadrant(degrees):
    r = math.radians(degrees)
    for sx, sy in ((1, 1), (-1, 1), (1, -1), (-1, -1)):
        for x, y in ((math.cos(r), math.sin(r)), (math.sin(r), math.cos(r))):
            _, angle = M.orientation(W([1.3 * sx * x, 1.3 * sy * y]))
            assert approx(angle, [degrees], abs_tol=1e-3)


def test_diagonal_in_three_dimensions_has_alignment_one_over_sqrt_m():
    alignment, angle = M.orientation(W([1, 1, 1]))
    assert approx(alignment, [1 / math.sqrt(3)])
    assert approx(angle, [math.degrees(math.acos(1 / math.sqrt(3)))], abs_tol=1e-3)


def test_orientation_follows_the_largest_norm_feature():
    w = W([0.6, 0.6], [0.0, 0.5], [0.0, 0.0])  # feature 0 (norm 0.85) at 45 degrees beats the on-axis one
    _, angle = M.orientation(w)
    assert approx(angle, [45.0], abs_tol=1e-3)


# --- neurons ---------------------------------------------------------------------------------------

# Features (rows) by neurons (columns):
#   f0 = [1.0, 0.0, 0.0, 0]   norm 1: carried by neuron 0
#   f1 = [0.6, 0.8, 0.0, 0]   norm 1: carried by neuron 0 (0.6 >= 0.5) and neuron 1 (0.8)
#   f2 = [0.0, 0.0, 0.15, 0]  norm 0.15, below 0.2 of the largest: not represented, so carried by none
# Neuron 0 carries f0 and f1: polysemantic. Neuron 1 carries f1 only, neuron 2 nothing, neuron 3 is dead.
# Monosemantic (max |W_n,i| / ||W_n|| > 0.99): neuron 0 has 1/sqrt(1.36) = 0.86, no; neurons 1 and 2
# have one non-zero weight, yes; neuron 3 is dead, no.
NEURONS = W([1.0, 0.0, 0.0, 0.0], [0.6, 0.8, 0.0, 0.0], [0.0, 0.0, 0.15, 0.0])


def test_which_neurons_carry_which_features():
    carried = M.carried(NEURONS, 0.5)[0]
    assert carried.tolist() == [
        [True, False, False, False],
        [True, True, False, False],
        [False, False, False, False],
    ]
    assert M.features_per_neuron(NEURONS, 0.5).tolist() == [[2, 1, 0, 0]]


def test_polysemantic_and_monosemantic_counts():
    assert M.polysemantic_neurons(NEURONS, 0.5).tolist() == [1]
    assert M.monosemantic_neurons(NEURONS).tolist() == [2]


@pytest.mark.parametrize("threshold, polysemantic, per_neuron", [
    (0.3, 1, [2, 1, 0, 0]),
    (0.55, 1, [2, 1, 0, 0]),
    (0.7, 0, [1, 1, 0, 0]),   # f1's 0.6 on neuron 0 no longer counts
    (0.9, 0, [1, 0, 0, 0]),   # f1's 0.8 on neuron 1 neither
])
def test_carry_threshold_changes_the_polysemantic_count(threshold, polysemantic, per_neuron):
    assert M.polysemantic_neurons(NEURONS, threshold).tolist() == [polysemantic]
    assert M.features_per_neuron(NEURONS, threshold).tolist() == [per_neuron]


def test_carry_threshold_per_instance():
    w = NEURONS.expand(3, -1, -1)
    assert M.polysemantic_neurons(w, torch.tensor([0.5, 0.7, 0.55])).tolist() == [1, 0, 1]


def test_monosemantic_ratio_threshold():
    # Neuron columns: [1, 0.1] has ratio 0.995 (monosemantic), [0.2, 1] has 0.981 (not).
    w = W([1.0, 0.2], [0.1, 1.0])
    assert M.monosemantic_neurons(w).tolist() == [1]


def test_identity_is_monosemantic_and_not_polysemantic():
    w = torch.eye(4).unsqueeze(0)
    assert M.monosemantic_neurons(w).tolist() == [4]
    assert M.polysemantic_neurons(w).tolist() == [0]


# --- batching and the model's metric columns -------------------------------------------------------


def test_metrics_are_computed_per_instance_in_a_batch():
    singles = [polygon(5, 1.15), W([1, 0], [0, 1], [0, 0], [0, 0], [0, 0]),
               W([0.6, 0.8], [-0.6, -0.8], [0, 0], [0, 0], [0.1, 0]), torch.zeros(1, 5, 2)]
    batch = torch.cat(singles)
    for fn in (M.feature_dimensionality, M.interference, M.features_represented, M.polysemantic_neurons,
               M.monosemantic_neurons, M.dims_per_feature):
        together = fn(batch)
        for k, single in enumerate(singles):
            assert torch.allclose(together[k], fn(single)[0]), fn.__name__


def test_superposition_metric_columns():
    w = torch.cat([polygon(5, 1.15), 0.1 * polygon(5)])
    mask = torch.tensor([[True] * 5, [False] * 5])
    got = superposition_metrics(w, torch.tensor([0.5, 0.5]), mask, torch.tensor([True, False]))
    assert set(got) == {"features_represented", "features_per_dim", "mean_dimensionality", "dims_per_feature",
                        "orientation_angle_deg", "axis_alignment", "polysemantic_neurons", "monosemantic_neurons",
                        "max_feature_norm"}
    assert got["features_represented"].tolist() == [5, 0]
    assert got["features_per_dim"].tolist() == [2.5, 0.0]
    assert got["mean_dimensionality"][0].item() == pytest.approx(0.4, abs=1e-5)
    assert math.isnan(got["mean_dimensionality"][1].item())  # nothing represented: an empty cell
    assert got["max_feature_norm"].tolist() == pytest.approx([1.15, 0.1], abs=1e-5)
    assert got["dims_per_feature"][0].item() == pytest.approx(2 / (5 * 1.15**2), abs=1e-5)
    assert not math.isnan(got["polysemantic_neurons"][0].item())
    assert math.isnan(got["polysemantic_neurons"][1].item()) and math.isnan(got["monosemantic_neurons"][1].item())


def model_of(kind: str, count: int = 1, **params) -> object:
    """A model object for ``count`` instances with the given parameters (defaults elsewhere)."""
    cls = get_model(kind)
    configs = []
    for _ in range(count):
        config = {p.name: p.default for p in cls.param_table().values()}
        config.update(params)
        configs.append(config)
    return cls(Hyper(configs, torch.device("cpu")), CounterRNG(torch.arange(count), "cpu"))


def test_model_metrics_use_each_instances_carry_threshold():
    model = model_of("relu_output", 2, n_features=3, n_hidden=4, batch_size=8, dropout=0.5)
    model.hp.configs[1]["carry_threshold"] = 0.7
    model.hp._tensors.clear()
    weights = {"W": NEURONS.expand(2, -1, -1).clone(), "b": torch.zeros(2, 3)}
    got = model.metrics(weights)
    assert set(got) == {c.name for c in get_model("relu_output").columns} - {"loss"}
    assert got["polysemantic_neurons"].tolist() == [1, 0]
    assert got["monosemantic_neurons"].tolist() == [2, 2]
    assert got["features_represented"].tolist() == [2, 2]


# --- summaries over seeds (engine/analysis/aggregate.py)-------------------------------------------------


def test_by_point_gives_median_and_quartiles_over_seeds():
    rows = [
        {"point": 0, "seed": 0, "loss": 4.0, "collapsed": False},
        {"point": 1, "seed": 0, "loss": 0.5, "collapsed": True},
        {"point": 0, "seed": 1, "loss": 1.0, "collapsed": True},
        {"point": 0, "seed": 2, "loss": 3.0, "collapsed": False},
        {"point": 0, "seed": 3, "loss": 2.0, "collapsed": False},
        {"point": 1, "seed": 1, "loss": "", "collapsed": True},  # a diverged instance: empty cell
    ]
    dense, sparse = by_point(rows, ["loss", "collapsed"])
    assert dense.point == 0 and dense.n == 4
    assert dense.stats["loss"] == pytest.approx((2.5, 1.75, 3.25))  # inclusive quartiles of 1, 2, 3, 4
    assert dense.stats["collapsed"] == pytest.approx((0.0, 0.0, 0.25))
    assert sparse.point == 1 and sparse.n == 2
    assert sparse.stats["loss"] == (0.5, 0.5, 0.5)
    assert sparse.stats["collapsed"] == (1.0, 1.0, 1.0)


# --- represented, collapsed: scale-free, decided by the loss (issue 14) -----------------------------


def test_ablation_gains_match_zeroing_each_row_by_hand():
    """The vectorised ablation equals, by hand: x_i set to its batch mean in the input, output i set to
    that mean, the loss recomputed; for every output activation and with a ReLU on h."""
    torch.manual_seed(0)
    x = torch.rand(2, 300, 4) * (torch.rand(2, 300, 4) < 0.4)
    W, b = torch.randn(2, 4, 3), 0.1 * torch.randn(2, 4)
    importance = torch.tensor([[1.0, 0.7, 0.5, 0.2], [1.0, 1.0, 1.0, 1.0]])
    gelu = torch.nn.functional.gelu
    for activation, hidden_relu in ((torch.relu, False), (None, False), (gelu, False), (torch.relu, True)):
        def loss(ablated: int | None = None, act=activation or (lambda t: t),
                 hidden_relu: bool = hidden_relu) -> torch.Tensor:
            xin = x.clone()
            if ablated is not None:
                xin[..., ablated] = x[..., ablated].mean(1, keepdim=True)
            h = torch.bmm(xin, W)
            h = torch.relu(h) if hidden_relu else h
            out = act(torch.baddbmm(b.unsqueeze(1), h, W.transpose(1, 2)))
            if ablated is not None:
                out[..., ablated] = x[..., ablated].mean(1, keepdim=True)
            return (importance.unsqueeze(1) * (x - out).square()).mean((1, 2))

        expected = torch.stack([loss(ablated=i) - loss() for i in range(4)], -1)
        got = M.ablation_gains(x, W, b, importance, activation, hidden_relu, block_values=4000)
        assert torch.allclose(got, expected, atol=1e-6), (activation, hidden_relu)
        one_by_one = M.ablation_gains(x, W, b, importance, activation, hidden_relu, block_values=20)  # instance blocks
        assert torch.allclose(one_by_one, expected, atol=1e-6), (activation, hidden_relu)


def test_constant_output_loss_is_the_weighted_variance():
    x = torch.tensor([[[0.0, 1.0], [1.0, 1.0], [0.5, 0.0], [0.5, 0.0]]])  # Var = 0.125 and 0.25
    total, share = M.constant_output_loss(x, torch.tensor([[1.0, 0.5]]))
    assert share[0].tolist() == pytest.approx([0.125 / 2, 0.125 / 2])
    assert total.tolist() == pytest.approx([0.125])


def two_features(w: list[list[float]], b: list[float], p: float = 0.2, **params):
    """relu_output metrics and per-feature metrics of one hand-built instance on its evaluation batch."""
    model = model_of("relu_output", n_features=len(w), n_hidden=len(w[0]), feature_probability=p,
                     eval_batch_size=16384, **params)
    weights = {"W": torch.tensor([w]), "b": torch.tensor([b])}
    return model.eval_loss(weights).item(), model.metrics(weights), model.feature_metrics(weights)


def test_a_feature_of_norm_0_4_that_the_loss_depends_on_is_represented():
    # Feature 1's output is ReLU(0.16 x_1), error (0.84 x_1)^2: 0.7056 p/3 against p/3 - p^2/4 for the
    # best constant output. Ablating it gains 1 - 0.7056 (p/3) / (p/3 - p^2/4) = 17% of that (p = 0.2).
    _, got, features = two_features([[1.0, 0.0], [0.0, 0.4]], [0.0, 0.0])
    assert got["features_represented"].item() == 2 and features["represented"].tolist() == [[1, 1]]
    expected = 1 - 0.84**2 * (0.2 / 3) / (0.2 / 3 - 0.2**2 / 4)
    assert features["ablation_gain"][0, 1].item() == pytest.approx(expected, rel=0.05)
    assert got["max_feature_norm"].item() == pytest.approx(1.0)


def test_an_embedding_the_loss_ignores_is_not_represented_whatever_its_norm():
    # Feature 1 has norm 0.8, but its bias holds the output ReLU off: its output, 0, is worse than the
    # constant p/2, so the ablation (which gives it that constant) lowers the loss.
    _, got, features = two_features([[1.0, 0.0], [0.0, 0.8]], [0.0, -10.0])
    assert features["represented"].tolist() == [[1, 0]] and got["features_represented"].item() == 1
    assert features["ablation_gain"][0, 1].item() < 0
    # An embedding that only stands in for a bias is no feature either: the extra feature of a dense
    # phase-diagram run (importance 0.1) with W = 0.17 and b = 0.41 outputs about its mean, through x_0.
    model = model_of("relu_output", n_features=2, n_hidden=1, feature_probability=1.0, importance_decay=0.1)
    weights = {"W": torch.tensor([[[1.02], [0.17]]]), "b": torch.tensor([[-0.12, 0.41]])}
    assert model.feature_metrics(weights)["represented"].tolist() == [[1, 0]]


def test_a_shrunk_dropout_solution_is_represented_and_not_collapsed():
    """The issue's dropout-0.8 instances: two antipodal pairs on the neuron axes with norms of about
    0.43 (inverted dropout shrinks every norm), loss well below the best constant output."""
    r = 0.43
    loss, got, _ = two_features([[r, 0.0], [-r, 0.0], [0.0, r], [0.0, -r], [0.0, 0.0]], [0.0] * 5, dropout=0.8)
    assert loss < 0.95 * got["trivial_loss"].item()
    assert got["trivial_loss"].item() == pytest.approx(0.2 / 3 - 0.2**2 / 4, rel=0.05)  # p/3 - p^2/4
    assert not got["collapsed"].item()
    assert got["features_represented"].item() == 4 and got["features_per_dim"].item() == 2.0
    assert got["mean_dimensionality"].item() == pytest.approx(0.5, abs=1e-5)
    assert got["dims_per_feature"].item() == pytest.approx(2 / (4 * r * r), rel=1e-4)  # 2.7: D* follows the scale
    assert got["orientation_angle_deg"].item() == pytest.approx(0.0, abs=1e-3)
    assert got["polysemantic_neurons"].item() == 2  # each neuron carries an antipodal pair


@pytest.mark.parametrize("bias", [0.0, 0.1])  # 0.1 = p/2, the mean of x_i: the best constant output itself
def test_a_model_at_the_constant_output_baseline_is_collapsed(bias: float):
    loss, got, _ = two_features([[0.0, 0.0]] * 5, [bias] * 5)
    assert loss >= got["trivial_loss"].item() - 3 * got["loss_se"].item()  # an estimate against the analytic value
    assert got["collapsed"].item() and got["features_represented"].item() == 0
    assert math.isnan(got["mean_dimensionality"].item())


def test_collapsed_uses_a_relative_margin():
    constant = torch.tensor([1.0, 1.0, 1.0])
    assert M.collapsed(torch.tensor([0.97, 0.99, 1.2]), constant).tolist() == [False, True, True]


# --- neuron metrics: privileged basis and signs ------------------------------------------------------


def test_a_rotated_relu_output_solution_has_no_neuron_level_count():
    """Without dropout or an L1 on h, relu_output's loss is the same for any rotation of h: the neuron
    counts are NaN (an empty cell in results.csv), not a number set by the random rotation."""
    pentagon = polygon(5, 1.15, phase=0.3)[0].tolist()
    for q, hidden_l1, privileged in ((0.0, 0.0, False), (0.3, 0.0, True), (0.0, 0.01, True)):
        _, got, _ = two_features(pentagon, [-0.2] * 5, p=0.02, dropout=q, hidden_l1=hidden_l1)
        for column in ("polysemantic_neurons", "monosemantic_neurons"):
            assert math.isnan(got[column].item()) != privileged, (q, hidden_l1, column)
        assert got["features_represented"].item() == 5  # the representation is reported either way
        assert not math.isnan(got["orientation_angle_deg"].item())
    assert get_model("relu_output").neuron_sense({"dropout": 0.0, "hidden_l1": 0.0}) is None
    assert get_model("linear").neuron_sense({"dropout": 0.0, "hidden_l1": 0.0}) is None
    assert get_model("relu_hidden").neuron_sense({"dropout": 0.0, "hidden_l1": 0.0}) == "positive"


# Feature 0 drives neuron 0; feature 1 has -0.6 into neuron 0 and 0.8 into neuron 1. Behind a ReLU on h
# with non-negative inputs, the -0.6 only holds neuron 0 off: neuron 0 fires for feature 0 alone.
SIGNED = W([1.0, 0.0], [-0.6, 0.8])


def test_a_negative_weight_does_not_make_a_relu_neuron_polysemantic():
    assert M.polysemantic_neurons(SIGNED, 0.5, sense="magnitude").tolist() == [1]
    assert M.polysemantic_neurons(SIGNED, 0.5, sense="positive").tolist() == [0]
    assert M.features_per_neuron(SIGNED, 0.5, sense="positive").tolist() == [[1, 1]]
    assert M.monosemantic_neurons(SIGNED, "positive").tolist() == [2]
    assert M.monosemantic_neurons(SIGNED, "magnitude").tolist() == [1]


def test_a_feature_held_off_elsewhere_is_carried_by_the_neuron_it_drives():
    # Sparse relu_hidden solutions inhibit interference with large negative weights: feature 0 drives
    # neuron 0 (0.9) and holds neuron 1 off (-4). Its drive is compared with its positive weights' norm.
    w = W([0.9, -4.0], [0.0, 1.0])
    assert M.carried(w, 0.5, sense="positive")[0].tolist() == [[True, False], [False, True]]
    assert M.carried(w, 0.5, sense="magnitude")[0].tolist() == [[False, True], [False, True]]


def test_relu_hidden_counts_only_positive_weights():
    model = model_of("relu_hidden", n_features=2, n_hidden=2, feature_probability=0.2)
    weights = {"W": SIGNED.clone(), "b": torch.zeros(1, 2)}
    got = model.metrics(weights)
    assert got["features_represented"].item() == 2  # feature 1 reaches its output through neuron 1
    assert got["polysemantic_neurons"].item() == 0
    assert got["monosemantic_neurons"].item() == 2
    assert got["mean_neuron_monosemanticity"].item() == pytest.approx(1.0)


# --- linear regions: a property of the weights -------------------------------------------------------


def regions_model(kind: str, eval_batch: int):
    return model_of(kind, n_features=20, n_hidden=5, feature_probability=0.03, eval_batch_size=eval_batch)


FIXED = {"W": CounterRNG(torch.tensor([7]), "cpu").normal(0x30, 0, (20, 5)) * 0.5, "b": torch.full((1, 20), -0.05)}


@pytest.mark.parametrize("kind", ["relu_output", "relu_hidden"])
def test_linear_regions_of_fixed_weights_do_not_depend_on_the_evaluation_batch(kind: str):
    """The issue's symptom: the distinct patterns an evaluation batch visits grow with the batch (here
    93 -> 473 for 16x the samples). The column counts over a fixed probe instead: the same number
    (tolerance 0) whatever the evaluation batch."""
    small, large = regions_model(kind, 512), regions_model(kind, 8192)
    assert small.metrics(FIXED)["linear_regions"].item() == large.metrics(FIXED)["linear_regions"].item()
    batches = [sparse_uniform_(m.rng, EVAL, 0, m.p, torch.empty(1, size, 20)) for m, size in ((small, 512),
                                                                                              (large, 8192))]
    seen = [M.distinct_patterns(M.pattern_codes(m._patterns(FIXED, x))).item() for m, x in zip((small, large), batches)]
    assert seen[1] > 3 * seen[0]


def test_the_linear_region_estimate_has_converged_at_its_probe_size():
    """exp(entropy) of the activation patterns over inputs with at least one active feature: 134, 137, 139,
    141, 142, 142 at 2^14 to 2^19 probe inputs for these weights (the default is 2^15); 2^12 leaves more
    than 5% of the probe in regions seen once, so it is left empty."""
    model = regions_model("relu_output", 4096)
    default = model.linear_regions(FIXED).item()
    assert default == pytest.approx(model.linear_regions(FIXED, 1 << 18).item(), rel=0.04)
    assert math.isnan(model.linear_regions(FIXED, 1 << 12).item())


def test_linear_regions_at_sparse_data_count_the_regions_of_active_inputs():
    """A pentagon at p = 0.0003: x = 0 holds 99.85% of the data, so the unconditioned probe read 1.01 for any
    weights. Over inputs with a feature active, the count sees each feature's own regions, and the same
    whatever p (the conditional law of one active feature does not depend on p at sparse p)."""
    angle = torch.arange(5) * 2 * math.pi / 5
    weights = {"W": (1.15 * torch.stack([angle.cos(), angle.sin()], -1)).unsqueeze(0),
               "b": torch.full((1, 5), -0.3)}
    counts = [model_of("relu_output", n_features=5, n_hidden=2, feature_probability=p).linear_regions(weights).item()
              for p in (0.0003, 0.001)]
    assert counts[0] > 5 and counts[0] == pytest.approx(counts[1], rel=0.02)


@pytest.mark.parametrize("kind", ["relu_output", "relu_hidden"])
def test_the_probes_codes_count_the_same_regions_as_the_boolean_patterns(kind: str):
    """linear_regions codes each input straight from x W W^T (no boolean patterns): the same partition of the
    probe into regions as M.pattern_codes of _patterns, so the same distinct and effective counts."""
    model = regions_model(kind, 4096)
    x = sparse_uniform_(model.rng, EVAL, 0, model.p, torch.empty(1, 4096, 20))
    reference = M.pattern_codes(model._patterns(FIXED, x))
    codes = model._codes(FIXED, x)
    assert M.distinct_patterns(codes).item() == M.distinct_patterns(reference).item() > 50
    assert M.effective_patterns(codes).item() == pytest.approx(M.effective_patterns(reference).item(), rel=1e-6)


def test_the_evaluation_in_blocks_of_instances_gives_each_instance_its_own_numbers(monkeypatch):
    """The estimator runs EVAL_ROWS instances at a time (bounded memory): blocks of 2 give the numbers of one
    block of all 5, up to float round-off of the order of summation."""
    import toysup.engine.models.relu_output as relu_output

    weights = {"W": CounterRNG(torch.arange(5), "cpu").normal(0x30, 0, (6, 2)) * 0.7, "b": torch.full((5, 6), -0.1)}
    got = []
    for rows in (2, 64):
        monkeypatch.setattr(relu_output, "EVAL_ROWS", rows)
        model = model_of("relu_output", 5, n_features=6, n_hidden=2, feature_probability=0.05, eval_batch_size=512)
        got.append({**model.metrics(weights), "loss": model.eval_loss(weights),
                    **{f"feature {k}": v for k, v in model.feature_metrics(weights).items()}})
    for name, value in got[0].items():
        assert torch.allclose(value.double(), got[1][name].double(), rtol=1e-5, atol=1e-7, equal_nan=True), name


def test_effective_patterns_on_known_distributions():
    codes = torch.tensor([[0, 0, 0, 0], [0, 1, 2, 3], [5, 5, 9, 9]])
    assert M.effective_patterns(codes).tolist() == pytest.approx([1.0, 4.0, 2.0])
    assert M.distinct_patterns(codes).tolist() == [1, 4, 2]
    big = torch.tensor([[2**40, 2**40, 7, 2**41]])  # codes too large for one bincount: sorted instead
    assert M.distinct_patterns(big).tolist() == [3]
    assert M.effective_patterns(big).item() == pytest.approx(math.exp(1.5 * math.log(2)))
    # Half the sample in regions seen once: unresolved, an empty cell rather than a number capped by the sample.
    assert math.isnan(M.effective_patterns(big, max_unresolved=0.05).item())
    assert M.effective_patterns(codes, max_unresolved=0.05)[2].item() == pytest.approx(2.0)
