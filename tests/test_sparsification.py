"""The L1 sparsification-rate fits (engine/analysis/sparsification.py) on synthetic curves with a known rate and
known constants of the paper's law, and the authors' one-feature simulation on known answers."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from toysup.engine.analysis.sparsification import (
    authors_constant,
    estimate,
    fit_both,
    fit_exponent,
    fit_exponential_rate,
    fit_linear_rate,
    predicted_rate,
    rate_law,
    simulate_inverse_l1,
    sparsifying_window,
)
from toysup.engine.results import Results
from toysup.engine.train import curve_schedule

from helpers import make_spec

STEPS = curve_schedule(20_000)  # the trainer's own uneven schedule: half log-spaced, half linear


def paper_curve(rate: float, m: int = 64) -> list[float]:
    """1/||W_i||_1 = 1/sqrt(m) + rate * step, floored at 1 (the paper's prediction)."""
    return [min(1.0, 1 / math.sqrt(m) + rate * s) for s in STEPS]


def test_linear_fit_recovers_the_rate_of_the_papers_law() -> None:
    fit = fit_linear_rate(STEPS, paper_curve(1e-4))
    assert fit is not None
    assert fit.rate == pytest.approx(1e-4, rel=1e-6)
    assert fit.intercept == pytest.approx(1 / 8, abs=1e-6)
    assert fit.r2 == pytest.approx(1.0)
    # the window: a quarter to three quarters of the way from 1/8 to 1
    assert 1 / 8 + 1e-4 * fit.first_step >= 0.125 + 0.25 * 0.875
    assert 1 / 8 + 1e-4 * fit.last_step <= 0.125 + 0.75 * 0.875


@pytest.mark.parametrize("rate", [3e-4, 1e-3])
def test_exponential_fit_recovers_a_known_decay_rate(rate: float) -> None:
    values = [1.0 + 7.0 * math.exp(-rate * s) for s in STEPS]
    fit = fit_exponential_rate(STEPS, values, floor=1.0)
    assert fit is not None
    assert fit.rate == pytest.approx(rate, rel=1e-4)
    assert math.exp(fit.intercept) == pytest.approx(7.0, rel=1e-3)
    assert fit.r2 == pytest.approx(1.0)


def test_each_law_fits_its_own_curve_better_than_the_other() -> None:
    hyperbolic = paper_curve(2e-4)
    linear, exponential = fit_both(STEPS, hyperbolic)
    assert linear is not None and exponential is not None
    assert linear.r2 > 0.9999 > exponential.r2
    decaying = [1 / (1.0 + 7.0 * math.exp(-3e-4 * s)) for s in STEPS]  # 1/||W_i||_1 of an exponential decay
    linear, exponential = fit_both(STEPS, decaying)
    assert linear is not None and exponential is not None
    assert exponential.r2 > 0.9999 > linear.r2
    assert exponential.rate == pytest.approx(3e-4, rel=1e-4)


def test_no_fit_without_a_sparsifying_stretch() -> None:
    flat = [0.125] * len(STEPS)
    assert fit_linear_rate(STEPS, flat) is None  # never leaves its start
    assert sparsifying_window(STEPS, []) == []
    jump = [0.125] * 10 + [1.0] * (len(STEPS) - 10)
    assert fit_linear_rate(STEPS, jump) is None  # no points inside the window
    assert fit_exponential_rate(STEPS, [1.0] * len(STEPS), floor=1.0) is None


def test_the_prediction_is_for_plain_gradient_descent_only() -> None:
    assert predicted_rate(0.03, 0.02, "sgd") == pytest.approx(6e-4)
    assert predicted_rate(0.03, 1e-3, "adamw") is None
    assert predicted_rate(0.0, 0.02, "sgd") is None


# --- the paper's law across a run's points, on synthetic curves with known constants -------------


def law_of_synthetic_run(constants: tuple[float, ...], offset: float, power: float = 1.0):
    """rate_law over curves 1/||W_i||_1 = offset/sqrt(m) + c l1^power lr step (floored at 1), c = constants[k]
    for the k-th seed of every point, on an incidental spec over l1 x m (plain SGD, lr 0.01)."""
    spec = make_spec({"n_features": 8, "optimizer": "sgd", "lr": 0.01, "seeds": len(constants)},
                     {"l1": [0.01, 0.03, 0.1], "n_hidden": [16, 64, 256]}, model="incidental")
    results = Results(spec, [], [])
    rows = []
    for point in results.points:
        m, l1 = point.values["n_hidden"], point.values["l1"]
        for k, instance in enumerate(point.instances):
            rows += [{"instance": instance, "step": s, "loss": 0.0,
                      "inverse_feature_l1": min(1.0, offset / math.sqrt(m) + constants[k] * l1**power * 0.01 * s)}
                     for s in STEPS]
    return rate_law(results, reference=False, curves=rows)


def test_law_fit_recovers_known_constants_and_exponents() -> None:
    law = law_of_synthetic_run((0.5, 0.6), offset=1.25)
    assert len(law.points) == 9
    for p in law.points:
        assert p.constant is not None and p.offset is not None and p.start is not None
        assert p.constant.mean == pytest.approx(0.55, abs=1e-6)
        assert p.constant.se == pytest.approx(0.05, abs=1e-6)  # the two seeds' spread
        assert p.offset.mean == pytest.approx(1.25, abs=1e-6)
        assert p.start.mean == pytest.approx(1.25, abs=0.01)  # the first logged step is step 1
    assert law.constant is not None and law.constant.mean == pytest.approx(0.55, abs=1e-6)
    for exponent, value in ((law.l1_exponent, 1.0), (law.intercept_exponent, -0.5)):
        assert exponent is not None and exponent.value == pytest.approx(value, abs=1e-6)
    assert law.start_exponent is not None and law.start_exponent.value == pytest.approx(-0.5, abs=0.002)
    assert set(law.l1_exponent_by_m) == {16, 64, 256}


def test_law_fit_sees_a_rate_that_is_not_proportional_to_l1() -> None:
    law = law_of_synthetic_run((0.5, 0.6), offset=1.25, power=0.8)
    assert law.l1_exponent is not None and law.l1_exponent.value == pytest.approx(0.8, abs=1e-6)
    assert not law.l1_exponent.contains(1.0)
    constants = sorted({round(p.constant.mean, 6) for p in law.points if p.constant is not None})
    assert len(constants) == 3  # c = rate / l1 now moves with l1


def test_exponent_and_mean_intervals_cover_the_truth() -> None:
    rng = np.random.default_rng(0)
    samples = [(g, x, level * x**0.7 * math.exp(rng.normal(0, 0.05)))
               for g, level in enumerate((1.0, 5.0, 0.2)) for x in (0.01, 0.03, 0.1) for _ in range(4)]
    fit = fit_exponent(samples)
    assert fit is not None and fit.df == 36 - 3 - 1 and fit.contains(0.7) and not fit.contains(1.0)
    assert fit_exponent([(0, 1.0, 2.0), (1, 3.0, 5.0)]) is None  # x never varies within a group
    e = estimate([1.0, 2.0, 3.0, math.nan])
    assert e is not None and (e.mean, e.n) == (2.0, 3) and e.se == pytest.approx(1 / math.sqrt(3))
    low, high = e.ci95()
    assert (low, high) == pytest.approx((2 - 4.3027 / math.sqrt(3), 2 + 4.3027 / math.sqrt(3)), abs=1e-3)
    assert estimate([]) is None and math.isnan(estimate([1.0]).se)


# --- the authors' one-feature simulation ----------------------------------------------------------


def test_authors_simulation_without_l1_keeps_each_features_direction() -> None:
    """lamb = 0: dw/dt = (1 - ||w||^2) w only rescales w, to norm 1, so ||w||_1 / ||w||_2 stays."""
    w0 = -np.sort(-np.abs(np.random.default_rng(4).normal(0, 0.9 / math.sqrt(20), (3, 20))), axis=1)
    times, values = simulate_inverse_l1(20, 0.0, features=3, seed=4, max_time=50)
    expected = float((np.linalg.norm(w0, axis=1) / w0.sum(1)).mean())
    assert values[-1] == pytest.approx(expected, rel=1e-6) and times[-1] == pytest.approx(50)
    assert values[0] == pytest.approx(float((1 / w0.sum(1)).mean()))


def test_authors_simulation_puts_each_feature_on_one_weight_at_a_rate_of_order_one() -> None:
    times, values = simulate_inverse_l1(32, 0.01, features=4, seed=1)
    assert values[-1] == pytest.approx(1.0, abs=0.02)  # one weight left per feature, near 1
    assert all(b > a for a, b in itertools.pairwise(times))
    c_low, _ = authors_constant(32, 0.01)
    c_high, _ = authors_constant(32, 0.03)
    # c is of order 1 and the same at both l1 (the rate is proportional to l1), about 0.5 at m = 32
    assert 0.4 < c_low.mean < 0.6 and c_high.mean == pytest.approx(c_low.mean, abs=0.05), (c_low, c_high)
