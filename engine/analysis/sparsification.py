"""The L1 sparsification rate of the incidental model (Lecomte et al. 2023), fitted from its curve.

The paper's winner-take-all analysis (and the authors' simulation, models/simulation.py and
experiments/sparsity.py) predicts that a feature's L1 norm falls as ||W_i||_1 = 1 / (1/sqrt(m)
+ l1 t) until it reaches 1 (the feature on one neuron), t the gradient-flow time. So
1 / ||W_i||_1 grows linearly at rate l1 per unit time: l1 * lr per step of plain gradient
descent. (Our loss is the summed squared error + l1 sum |W|: the factor 4 of the squared
error's gradient cancels between the norm-keeping and the L1 terms, leaving l1.) Adam rescales
every coordinate's step, so it has no such prediction.

The incidental model records ``inverse_feature_l1``, the mean over features of 1 / ||W_i||_1,
in curves.csv; :func:`fit_linear_rate` fits its slope, :func:`fit_exponential_rate` the
alternative an exponential approach of ||W_i||_1 to 1 would give, for comparison.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.results import Results

WINDOW = (0.25, 0.75)  # fit where the curve is this far of the way from its start to 1 (toysup's choice)
MIN_POINTS = 3


@dataclass(frozen=True)
class RateFit:
    """A straight line value = intercept + slope * step fitted on ``points`` curve points."""

    rate: float  # per step: the slope of 1/||W_i||_1 (linear law) or the decay rate (exponential law)
    intercept: float
    r2: float  # of the line, on the points fitted (in the transformed values for the exponential law)
    points: int
    first_step: float
    last_step: float


def _line(x: Sequence[float], y: Sequence[float]) -> tuple[float, float, float]:
    """Least-squares slope, intercept and R^2."""
    n = len(x)
    mx, my = sum(x) / n, sum(y) / n
    sxx = sum((a - mx) ** 2 for a in x)
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    slope = sxy / sxx
    intercept = my - slope * mx
    ss_res = sum((b - intercept - slope * a) ** 2 for a, b in zip(x, y))
    ss_tot = sum((b - my) ** 2 for b in y)
    return slope, intercept, (1.0 - ss_res / ss_tot) if ss_tot > 0 else 1.0


def sparsifying_window(steps: Sequence[float], inverse_l1: Sequence[float],
                       window: tuple[float, float] = WINDOW) -> list[int]:
    """Indices of the curve points between ``window[0]`` and ``window[1]`` of the way from the first
    value to 1, up to the first point past the window (later dips back in are not the same stretch)."""
    if not inverse_l1:
        return []
    start = inverse_l1[0]
    lo, hi = (start + f * (1.0 - start) for f in window)
    picked = []
    for i, value in enumerate(inverse_l1):
        if not math.isfinite(value):
            continue
        if value > hi:
            break
        if value >= lo:
            picked.append(i)
    return picked


def fit_linear_rate(steps: Sequence[float], inverse_l1: Sequence[float],
                    window: tuple[float, float] = WINDOW) -> RateFit | None:
    """The paper's law: a line through 1/||W_i||_1 against step on the sparsifying stretch; its slope
    is the rate per step (compare l1 * lr under SGD). None with fewer than 3 points there."""
    picked = sparsifying_window(steps, inverse_l1, window)
    if len(picked) < MIN_POINTS:
        return None
    x = [float(steps[i]) for i in picked]
    y = [float(inverse_l1[i]) for i in picked]
    slope, intercept, r2 = _line(x, y)
    return RateFit(slope, intercept, r2, len(picked), x[0], x[-1])


def fit_exponential_rate(steps: Sequence[float], values: Sequence[float], floor: float = 0.0,
                         indices: Sequence[int] | None = None) -> RateFit | None:
    """values - floor = A exp(-rate * step), by a line through log(values - floor); ``rate`` > 0 for a
    decay, ``intercept`` is log A. Only points above the floor count (``indices`` restricts them)."""
    chosen = range(len(values)) if indices is None else indices
    picked = [i for i in chosen if math.isfinite(values[i]) and values[i] > floor]
    if len(picked) < MIN_POINTS:
        return None
    x = [float(steps[i]) for i in picked]
    y = [math.log(values[i] - floor) for i in picked]
    slope, intercept, r2 = _line(x, y)
    return RateFit(-slope, intercept, r2, len(picked), x[0], x[-1])


def fit_both(steps: Sequence[float], inverse_l1: Sequence[float],
             window: tuple[float, float] = WINDOW) -> tuple[RateFit | None, RateFit | None]:
    """The paper's linear law for 1/||W_i||_1 and, on the same points, an exponential decay of
    ||W_i||_1 - 1 (the alternative), so their R^2 can be compared."""
    linear = fit_linear_rate(steps, inverse_l1, window)
    picked = sparsifying_window(steps, inverse_l1, window)
    l1 = [1.0 / v if v > 0 else math.inf for v in inverse_l1]
    return linear, fit_exponential_rate(steps, l1, 1.0, picked)


def predicted_rate(l1: float, lr: float, optimizer: str) -> float | None:
    """l1 * lr per step under plain gradient descent (the paper's gradient flow); None for Adam(W)."""
    return l1 * lr if optimizer == "sgd" and l1 > 0 else None


# --- per sweep point, from a run's curves.csv ----------------------------------------------------

CURVE = "inverse_feature_l1"


@dataclass(frozen=True)
class PointRate:
    """The fitted rate at one sweep point: medians over its seeds, next to the prediction."""

    label: str
    fitted: float | None  # median over seeds of the linear law's rate per step
    predicted: float | None  # l1 * lr under SGD, else None
    r2_linear: float | None  # median R^2 of the paper's law
    r2_exponential: float | None  # median R^2 of the exponential alternative on the same points
    fitted_seeds: int  # seeds whose curve had a sparsifying stretch to fit
    seeds: int
    steps: list[float]  # the median curve, for a chart
    median: list[float]
    intercept: float | None  # median intercept of the fitted line


def _median(values: Sequence[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def rate_points(results: Results) -> list[PointRate]:
    """Per sweep point, each seed's curve fitted by :func:`fit_both`; empty for runs without the
    ``inverse_feature_l1`` curve (other models, runs made before it existed) or without L1."""
    curves = results.curves()
    if not curves or CURVE not in curves[0]:
        return []
    by_instance: dict[int, list[tuple[float, float]]] = {}
    for row in curves:
        value = row.get(CURVE)
        if isinstance(value, (int, float)) and math.isfinite(value):
            by_instance.setdefault(int(row["instance"]), []).append((float(row["step"]), float(value)))
    out = []
    for point in results.points:
        config = {**results.spec.params, **point.values}
        if float(config.get("l1", 0)) <= 0:
            continue
        fits = []
        per_step: dict[float, list[float]] = {}
        for inst in point.instances:
            curve = sorted(by_instance.get(inst, []))
            if not curve:
                continue
            steps, values = [s for s, _ in curve], [v for _, v in curve]
            linear, exponential = fit_both(steps, values)
            if linear is not None and exponential is not None:
                fits.append((linear, exponential))
            for s, v in curve:
                per_step.setdefault(s, []).append(v)
        steps = sorted(per_step)
        out.append(PointRate(
            label=point.label(short=True),
            fitted=_median([f.rate for f, _ in fits]),
            predicted=predicted_rate(float(config["l1"]), float(config["lr"]), str(config["optimizer"])),
            r2_linear=_median([f.r2 for f, _ in fits]),
            r2_exponential=_median([e.r2 for _, e in fits]),
            fitted_seeds=len(fits),
            seeds=len(point.instances),
            steps=steps,
            median=[_median(per_step[s]) or 0.0 for s in steps],
            intercept=_median([f.intercept for f, _ in fits]),
        ))
    return out
