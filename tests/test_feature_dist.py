"""Feature values other than uniform (``feature_dist``): the generator's statistics, its independence
from the batch, and the model trained on them."""

from __future__ import annotations

import math

import pytest
import torch

from toysup.engine.data import FEATURE_DISTS, sparse_uniform_
from toysup.engine.rng import DATA, CounterRNG

from helpers import by_instance, make_spec, train_all

SAMPLES = 200_000  # per instance: the tolerances below are 4-5 standard errors at this size


def draw(dist: str, p: float, seeds: tuple[int, ...] = (0,), correlation: str = "none", samples: int = SAMPLES,
         n: int = 4, step: int = 1) -> torch.Tensor:
    rng = CounterRNG(torch.tensor(seeds), "cpu")
    out = torch.empty(len(seeds), samples, n)
    probability = torch.full((len(seeds), 1, 1), p)
    return sparse_uniform_(rng, DATA, step, probability, out, correlation, dist=dist)


@pytest.mark.parametrize("p", [1.0, 0.3, 0.02])
def test_binary_values_are_exactly_zero_or_one_at_rate_p(p: float) -> None:
    x = draw("binary", p)
    assert set(torch.unique(x).tolist()) <= {0.0, 1.0}
    rate = x.mean().item()
    se = math.sqrt(p * (1 - p) / x.numel())
    assert abs(rate - p) <= 5 * se + 1e-9


def test_every_choice_marks_the_same_features_active() -> None:
    """One uniform u per element decides activity for every choice, so paired seeds share their on/off
    pattern across feature_dist. Binary is active where u < p; a continuous value is 0 also at u = 0
    exactly (chance 2^-24), hence subset and near-equality rather than equality."""
    binary = draw("binary", 0.3) > 0
    for dist in ("uniform", "exponential", "pareto"):
        active = draw(dist, 0.3) > 0
        assert not bool((active & ~binary).any())
        assert (active != binary).float().mean().item() < 1e-5


def test_exponential_has_mean_one_half_and_an_exponential_tail() -> None:
    x = draw("exponential", 0.5)
    active = x[x > 0]
    assert (x > 0).float().mean().item() == pytest.approx(0.5, abs=0.005)
    assert active.mean().item() == pytest.approx(0.5, abs=0.004)  # sd 1/2: se 0.0016
    for t in (0.5, 1.0, 2.0):
        assert (active > t).float().mean().item() == pytest.approx(math.exp(-2 * t), rel=0.06)


def test_pareto_has_mean_one_half_and_a_power_law_tail() -> None:
    """Pareto II (Lomax), shape 3: P(x > t) = (1 + t)^-3, far heavier than the exponential at the same mean."""
    x = draw("pareto", 1.0, samples=500_000)
    assert x.min().item() >= 0.0
    assert x.mean().item() == pytest.approx(0.5, abs=0.006)  # sd sqrt(3)/2: se 0.0006, plus the tail's noise
    for t in (1.0, 3.0, 9.0):
        assert (x > t).float().mean().item() == pytest.approx((1 + t) ** -3, rel=0.1)
    exponential = draw("exponential", 1.0, samples=500_000)
    assert (x > 6).float().mean().item() > 50 * (exponential > 6).float().mean().item()  # 7^-3 vs e^-12


@pytest.mark.parametrize("dist", ["binary", "exponential", "pareto"])
@pytest.mark.parametrize("correlation", ["none", "correlated", "anticorrelated"])
def test_an_instance_draws_the_same_values_alone_in_a_batch_or_by_rows(dist: str, correlation: str) -> None:
    """Values are a pure function of (seed, step, element): other instances, their probabilities and the
    block of rows drawn must not change them."""
    alone = draw(dist, 0.3, seeds=(7,), correlation=correlation, samples=512, n=5)
    rng = CounterRNG(torch.tensor([3, 7, 11]), "cpu")
    p = torch.tensor([0.1, 0.3, 0.5]).view(3, 1, 1)
    batch = sparse_uniform_(rng, DATA, 1, p, torch.empty(3, 512, 5), correlation, dist=dist)
    assert torch.equal(batch[1:2], alone)
    block = sparse_uniform_(rng, DATA, 1, p[1:2], torch.empty(1, 512, 5), correlation, rows=slice(1, 2), dist=dist)
    assert torch.equal(block, alone)
    assert not torch.equal(draw(dist, 0.3, seeds=(7,), correlation=correlation, samples=512, n=5, step=2), alone)


def test_correlated_binary_pairs_share_their_value() -> None:
    x = draw("binary", 0.3, correlation="correlated", n=5)
    assert torch.equal(x[..., 0], x[..., 1]) and torch.equal(x[..., 2], x[..., 3])
    assert set(torch.unique(x).tolist()) == {0.0, 1.0}
    anti = draw("binary", 0.3, correlation="anticorrelated", n=5)
    assert not bool((anti[..., 0] * anti[..., 1]).any())


def test_feature_dist_is_a_relu_output_parameter_with_the_uniform_default() -> None:
    for model in ("relu_output", "relu_hidden", "linear", "relu_output_phase"):
        param = make_spec({}, model=model).param_table()["feature_dist"]
        assert param.default == "uniform" and set(param.choices) == set(FEATURE_DISTS)


def test_default_uniform_training_is_unchanged_by_naming_it() -> None:
    params = {"n_features": 5, "n_hidden": 2, "steps": 50, "batch_size": 64, "seeds": 2}
    plain = by_instance(train_all(make_spec(params)))
    named = by_instance(train_all(make_spec({**params, "feature_dist": "uniform"})))
    for i in plain:
        assert torch.equal(plain[i]["weights"]["W"], named[i]["weights"]["W"])
