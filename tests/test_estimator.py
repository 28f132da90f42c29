"""The sparse-data estimator (engine/estimator.py): unbiased against brute force on the real generator, exact
strata, a standard error that means what it says."""

from __future__ import annotations

import math

import pytest
import torch

from toysup.engine import metrics as M
from toysup.engine.data import active_values_, sparse_uniform_
from toysup.engine.estimator import VALUE_MOMENTS, DataLaw, active_inputs, estimate, strata_probabilities, value_nodes
from toysup.engine.models import Hyper, get_model
from toysup.engine.rng import CounterRNG

from helpers import make_spec, model_for, train_all

N, HIDDEN = 5, 2
# A fixed, untrained-looking model with interference: random W, a negative bias.
WEIGHTS = CounterRNG(torch.tensor([3]), "cpu").normal(0x30, 0, (N, HIDDEN)) * 0.9
BIAS = torch.full((1, N), -0.1)
IMPORTANCE = 0.8 ** torch.arange(N, dtype=torch.float32).unsqueeze(0)


def evaluator(count: int, law: DataLaw):
    """The relu_output evaluation (per-sample loss and mean-ablation deltas) of WEIGHTS for ``count`` copies."""
    W, b = WEIGHTS.expand(count, -1, -1), BIAS.expand(count, -1)
    imp = IMPORTANCE.expand(count, -1)
    mean = law.mean().to(torch.float32)

    def evaluate(x: torch.Tensor):
        out = torch.relu(torch.baddbmm(b.unsqueeze(1), torch.bmm(x, W), W.transpose(1, 2)))
        return M.sample_losses(x, out, imp), M.ablation_deltas(x, W, b, imp, mean, torch.relu)

    return evaluate


def law_of(count: int, p: float, correlation: str = "none", dist: str = "uniform", ratio: float = 1.0) -> DataLaw:
    probs = torch.full((count, N), p)
    probs[:, (N + 1) // 2:] *= ratio  # data.feature_probabilities' second half
    return DataLaw(probs, correlation, dist)


def brute_force(law: DataLaw, samples: int = 1 << 20) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Loss and gains by natural sampling from engine/data.py's own generator: means and standard errors."""
    rng = CounterRNG(torch.tensor([12345]), "cpu")
    one = DataLaw(law.p[:1], law.correlation, law.dist)
    x = torch.empty(1, samples, N)
    sparse_uniform_(rng, 0x70, 0, one.p.unsqueeze(1), x, law.correlation, dist=law.dist)
    L, D = evaluator(1, one)(x)
    L, D = L.double()[0], D.double()[0]
    return L.mean(), L.std() / samples**0.5, D.mean(0), D.std(0) / samples**0.5


CASES = [("none", "uniform", 1.0), ("none", "uniform", 0.25), ("correlated", "uniform", 1.0),
         ("anticorrelated", "uniform", 1.0), ("none", "exponential", 1.0), ("correlated", "binary", 1.0)]


@pytest.mark.parametrize("correlation,dist,ratio", CASES)
def test_the_estimator_is_unbiased_and_its_standard_error_is_right(correlation, dist, ratio):
    seeds, budget = 48, 256
    law = law_of(seeds, 0.15, correlation, dist, ratio)
    est = estimate(law, evaluator(seeds, law), CounterRNG(torch.arange(seeds), "cpu"), budget)
    assert est.gain is not None and est.gain_se is not None
    truth, truth_se, gains, gains_se = brute_force(law)
    # The mean over seeds matches brute force within the combined errors (4 sigma) ...
    mean, spread = est.loss.mean(), est.loss.std()
    assert abs(mean - truth) < 4 * math.hypot(spread / seeds**0.5, truth_se)
    g_mean, g_spread = est.gain.mean(0), est.gain.std(0)
    assert ((g_mean - gains).abs() < 4 * (g_spread.square() / seeds + gains_se.square()).sqrt() + 1e-6).all()
    # ... and the stated standard error is the estimates' real spread over seeds.
    assert 0.7 < float(est.loss_se.mean() / spread) < 1.4
    assert (est.gain_se.mean(0) / g_spread).clamp(0.6, 1.6).eq(est.gain_se.mean(0) / g_spread).all()


def test_at_sparse_data_the_stated_error_holds_and_shrinks_with_the_budget():
    seeds = 32
    law = law_of(seeds, 0.001)
    rng = CounterRNG(torch.arange(seeds), "cpu")
    small = estimate(law, evaluator(seeds, law), rng, 256)
    large = estimate(law, evaluator(seeds, law), rng, 4096)
    assert 0.7 < float(small.loss_se.mean() / small.loss.std()) < 1.4
    assert 0.2 < float(large.loss_se.mean() / small.loss_se.mean()) < 0.3  # 1/sqrt(16)
    # Two budgets 16x apart agree within their stated errors, and the error is a small share of the loss.
    gap = (small.loss.mean() - large.loss.mean()).abs()
    assert gap < 4 * (small.loss_se.mean() / seeds**0.5)
    assert float(large.loss_se.mean() / large.loss.mean()) < 0.01


@pytest.mark.parametrize("dist", ["uniform", "binary", "exponential", "pareto", "symmetric"])
def test_the_quadrature_has_the_values_moments(dist):
    v, w = value_nodes(dist)
    m1, m2 = VALUE_MOMENTS[dist]
    assert float(w.sum()) == pytest.approx(1.0, abs=1e-12)
    assert float((w * v).sum()) == pytest.approx(m1, abs=1e-7)
    assert float((w * v * v).sum()) == pytest.approx(m2, rel=1e-6)


@pytest.mark.parametrize("dist", ["uniform", "binary", "exponential"])
def test_the_law_mirrors_the_generator(dist):
    """Marginal means and variances of engine/data.py's draws (with pairs and per-feature p) match DataLaw's."""
    for correlation in ("none", "correlated", "anticorrelated"):
        law = law_of(1, 0.2, correlation, dist, 0.5)
        x = torch.empty(1, 1 << 18, N)
        sparse_uniform_(CounterRNG(torch.tensor([1]), "cpu"), 0x70, 0, law.p.unsqueeze(1), x, correlation, dist=dist)
        assert x[0].double().mean(0).tolist() == pytest.approx(law.mean()[0].tolist(), abs=4e-3)
        assert x[0].double().var(0).tolist() == pytest.approx(law.variance()[0].tolist(), abs=4e-3)


def test_pareto_values_follow_the_inverse_cdf_of_the_generator():
    v = torch.tensor([[[0.0, 0.5, 0.875]]])
    assert active_values_(v.clone(), "pareto").flatten().tolist() == pytest.approx([0.0, 2 ** (1 / 3) - 1, 1.0])


def test_strata_probabilities_are_exact():
    law = law_of(1, 0.1, "anticorrelated")  # units: 2 pairs (pi = 0.2) and one feature (0.1)
    p0, p1, p2 = strata_probabilities(law)[0].tolist()
    assert p0 == pytest.approx(0.8 * 0.8 * 0.9)
    assert p1 == pytest.approx(2 * 0.2 * 0.8 * 0.9 + 0.8 * 0.8 * 0.1)
    assert p0 + p1 + p2 == pytest.approx(1.0)
    assert strata_probabilities(law_of(1, 1.0))[0].tolist() == [0.0, 0.0, 1.0]  # dense: every input has k = n


# --- the relu_output family's final metrics on hand-built weights -------------------------------------------

SPARSE = [0.1, 0.01, 0.001, 0.0001]


def relu_output(p: float, budget: int = 4096, count: int = 1, **params):
    return model_for("relu_output", {"n_features": 5, "n_hidden": 2, "feature_probability": p,
                                     "eval_batch_size": budget, **params}, list(range(count)))


def pentagon(count: int = 1) -> dict[str, torch.Tensor]:
    """The sparse optimum's shape: five unit directions 72 degrees apart, norm 1.15, bias -0.3 (cuts off
    the positive interference cos 72 * 1.15^2 = 0.41 of a single active neighbour)."""
    angle = torch.arange(5) * 2 * math.pi / 5
    W = 1.15 * torch.stack([angle.cos(), angle.sin()], -1)
    return {"W": W.expand(count, 5, 2).clone(), "b": torch.full((count, 5), -0.3)}


def two_orthogonal(count: int = 1) -> dict[str, torch.Tensor]:
    """The dense optimum: the two most important features on the two axes, the rest unembedded."""
    W = torch.zeros(count, 5, 2)
    W[:, 0, 0] = W[:, 1, 1] = 1.0
    return {"W": W, "b": torch.zeros(count, 5)}


@pytest.mark.parametrize("p", [1.0, *SPARSE])
def test_trivial_loss_is_the_analytic_constant_output_loss(p):
    got = relu_output(p, importance_decay=0.9).metrics(pentagon())["trivial_loss"].item()
    assert got == pytest.approx(float((0.9 ** torch.arange(5.0)).mean()) * (p / 3 - p * p / 4), rel=1e-5)


@pytest.mark.parametrize("p", SPARSE)
def test_hand_built_counts_hold_at_every_sparsity_and_do_not_move_with_16x_the_budget(p):
    for weights, expected in ((pentagon(), 5), (two_orthogonal(), 2)):
        counts = []
        for budget in (1024, 16 * 1024):
            model = relu_output(p, budget)
            got = model.metrics(weights)
            counts.append(int(got["features_represented"].item()))
            assert not got["collapsed"].item()
        assert counts == [expected, expected]


def test_a_feature_never_active_has_a_finite_gain_and_a_standard_error():
    """At p = 1e-4 a 4,096-sample batch often misses a feature; its gain read -1.6e9 (0 / 0 against an eps).
    The unembedded features' gain is exact: the constant E[x_i] against 0, -(p/2)^2 / Var(x_i) = -3p/4 + O(p^2)."""
    model = relu_output(0.0001)
    features = model.feature_metrics(two_orthogonal())
    gain, se = features["ablation_gain"][0], features["ablation_gain_se"][0]
    assert gain[2:].tolist() == pytest.approx([-0.75e-4] * 3, rel=1e-2)
    assert gain[:2].min() > 0.9 and (se >= 0).all() and se.max() < 1e-3
    loss, metrics = model.eval_loss(two_orthogonal()), model.metrics(two_orthogonal())
    assert 0 < metrics["loss_se"].item() < 0.01 * loss.item()


def test_binary_dense_data_has_nothing_to_represent():
    """Constant inputs (binary, p = 1): every constant-output loss is 0, so no feature is represented and the
    normalised gain is empty, not a division by zero."""
    model = relu_output(1.0, feature_dist="binary")
    features = model.feature_metrics(two_orthogonal())
    assert features["represented"].sum().item() == 0
    assert torch.isnan(features["ablation_gain"]).all()


def test_trained_counts_do_not_move_with_16x_the_budget():
    """Trained n=5, m=2 models at p = 0.1 to 0.0001 (short training: whatever they learned), scored at
    eval_batch_size 1,024 and 16,384: the same counts, losses within their stated errors."""
    params = {"n_features": 5, "n_hidden": 2, "steps": 1500, "batch_size": 256, "lr": 1e-2, "seeds": 2,
              "eval_batch_size": 1024}
    results = train_all(make_spec(params, {"feature_probability": SPARSE}))
    for result in results:
        configs = [inst.config for inst in result.chunk.instances]
        large = get_model("relu_output")(Hyper([{**c, "eval_batch_size": 16384} for c in configs],
                                               torch.device("cpu")),
                                         CounterRNG(torch.tensor([c["seed"] for c in configs]), "cpu"))
        got = large.metrics(result.weights)
        assert torch.equal(got["features_represented"], result.metrics["features_represented"])
        gap = (large.eval_loss(result.weights) - result.metrics["loss"]).abs()
        assert (gap <= 4 * result.metrics["loss_se"] + 1e-12).all()
        assert result.metrics["features_represented"].min() >= 2


@pytest.mark.parametrize("correlation,ratio", [("none", 1.0), ("none", 0.25), ("correlated", 1.0),
                                               ("anticorrelated", 1.0)])
def test_active_inputs_follow_the_law_given_one_active_unit(correlation, ratio):
    """The linear-region probe's sampler: never x = 0, and each feature active at the rate p_i / P(k >= 1)."""
    law = law_of(2, 0.05, correlation, "uniform", ratio)
    x = active_inputs(law, CounterRNG(torch.tensor([4, 5]), "cpu"), 0x70, 0, 1 << 16)
    assert bool((x > 0).any(-1).all())
    p_some = 1 - strata_probabilities(law)[0, 0]
    expected = law.marginal_p()[0] / p_some
    assert (x > 0).double().mean(1)[0].tolist() == pytest.approx(expected.tolist(), abs=0.01)
    assert float(x[x > 0].mean()) == pytest.approx(0.5, abs=0.01)
    if correlation == "correlated":
        assert bool(((x[..., 0] > 0) == (x[..., 1] > 0)).all())
    if correlation == "anticorrelated":
        assert not bool(((x[..., 0] > 0) & (x[..., 1] > 0)).any())
