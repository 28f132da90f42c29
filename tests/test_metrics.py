"""Metrics on hand-built weight matrices with known answers (engine/metrics.py).

Convention: W is (instances, n_features, n_hidden); W[k, i] is feature i's embedding.
"""

from __future__ import annotations

import math

import pytest
import torch

from engine import metrics as M
from engine.aggregate import by_point
from engine.models import Hyper, get_model
from engine.models.relu_output import superposition_metrics
from engine.rng import CounterRNG


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


def test_represented_means_norm_strictly_above_one_half():
    w = W([0.5, 0.0], [0.0, 0.51], [0.3, 0.3], [2.0, 0.0])
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
#   f2 = [0.0, 0.0, 0.3, 0]   norm 0.3: not represented, so carried by none
# Neuron 0 carries f0 and f1: polysemantic. Neuron 1 carries f1 only, neuron 2 nothing, neuron 3 is dead.
# Monosemantic (max |W_n,i| / ||W_n|| > 0.99): neuron 0 has 1/sqrt(1.36) = 0.86, no; neurons 1 and 2
# have one non-zero weight, yes; neuron 3 is dead, no.
NEURONS = W([1.0, 0.0, 0.0, 0.0], [0.6, 0.8, 0.0, 0.0], [0.0, 0.0, 0.3, 0.0])


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
    got = superposition_metrics(w, torch.tensor([0.5, 0.5]))
    assert set(got) == {"features_represented", "dims_per_feature", "orientation_angle_deg", "axis_alignment",
                        "polysemantic_neurons", "monosemantic_neurons", "max_feature_norm", "collapsed"}
    assert got["features_represented"].tolist() == [5, 0]
    assert got["collapsed"].tolist() == [False, True]
    assert got["max_feature_norm"].tolist() == pytest.approx([1.15, 0.1], abs=1e-5)
    assert got["dims_per_feature"][0].item() == pytest.approx(2 / (5 * 1.15**2), abs=1e-5)


def test_model_metrics_use_each_instances_carry_threshold():
    configs = []
    for threshold in (0.5, 0.7):
        config = {p.name: p.default for p in get_model("relu_output").param_table().values()}
        config.update(n_features=3, n_hidden=4, batch_size=8, carry_threshold=threshold)
        configs.append(config)
    hp = Hyper(configs, torch.device("cpu"))
    model = get_model("relu_output")(hp, CounterRNG(torch.tensor([0, 1]), "cpu"))
    weights = {"W": NEURONS.expand(2, -1, -1).clone(), "b": torch.zeros(2, 3)}
    got = model.metrics(weights)
    assert set(got) == {c.name for c in get_model("relu_output").columns} - {"loss"}
    assert got["polysemantic_neurons"].tolist() == [1, 0]
    assert got["monosemantic_neurons"].tolist() == [2, 2]
    assert got["features_represented"].tolist() == [2, 2]


# --- summaries over seeds (engine/aggregate.py) ----------------------------------------------------


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
