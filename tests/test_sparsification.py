"""The L1 sparsification-rate fits (engine/analysis/sparsification.py) on synthetic curves with a known rate."""

from __future__ import annotations

import math

import pytest

from engine.analysis.sparsification import (
    fit_both,
    fit_exponential_rate,
    fit_linear_rate,
    predicted_rate,
    sparsifying_window,
)
from engine.train import curve_schedule

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
