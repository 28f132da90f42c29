"""The sparse-data estimator (engine/estimator.py): unbiased against brute force on the real generator, exact
strata, a standard error that means what it says."""

from __future__ import annotations

import math

import pytest
import torch

from engine import metrics as M
from engine.data import active_values_, sparse_uniform_
from engine.estimator import VALUE_MOMENTS, DataLaw, estimate, strata_probabilities, value_nodes
from engine.rng import CounterRNG

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
    assert float((w * v).sum()) == pytest.approx(m1, abs=1e-9)
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
