"""The L1 sparsification rate of the incidental model (Lecomte et al. 2023), fitted from its curve.

The paper's winner-take-all analysis states a scaling law, ||W_i(t)||_1 = 1 / Theta(1/sqrt(m) + l1 t)
until the norm reaches 1 (the feature on one neuron), t the gradient-flow time, derived for one
feature with the interference between features ignored (large m). Written as the law:
1 / ||W_i(t)||_1 = a / sqrt(m) + c * l1 * t with constants a and c of order 1. Under plain gradient
descent t = lr * step. (Our loss is the summed squared error + l1 sum |W|: once the norm has settled,
the factor 4 of the squared error's gradient cancels between the norm-keeping and the L1 terms, so
the rate is c * l1 per unit time in our units as in the paper's.) Adam rescales every coordinate's
step, so it has no such prediction.

The incidental model records ``inverse_feature_l1``, the mean over features of 1 / ||W_i||_1, in
curves.csv. Per instance, :func:`fit_linear_rate` fits a line to it where it is 25-75% of the way
from its start to 1 (:data:`WINDOW`, toysup's choice); its slope over l1 * lr is c, its intercept
times sqrt(m) is a. :func:`fit_exponential_rate` fits the alternative (an exponential approach of
||W_i||_1 to 1) on the same points. :func:`rate_law` tests the law across a run's points: the
exponent of the rate in l1 (1 = proportional), the exponents in m of the start value and of the
fitted line's intercept (-1/2 = the 1/sqrt(m) offset), and c against the authors' own one-feature
simulation (:func:`simulate_inverse_l1`, their models/simulation.py) fitted in the same window at
the same m, which is the reference for c, not 1.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from toysup.engine.results import Results

WINDOW = (0.25, 0.75)  # fit where the curve is this far of the way from its start to 1 (toysup's choice)
MIN_POINTS = 3
UNIFORM_POINTS = 50  # the stretch is read at this many evenly spaced steps


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
    is the rate per step (compare l1 * lr under SGD). None with fewer than 3 points there.

    The curve is read at :data:`UNIFORM_POINTS` evenly spaced steps across the stretch (linear
    interpolation between its points), so every part of the stretch weighs the same: the trainer logs
    half its points log-spaced, which would otherwise give a stretch early in training more weight at
    its start, and a bending curve a lower slope."""
    picked = sparsifying_window(steps, inverse_l1, window)
    if len(picked) < MIN_POINTS:
        return None
    x = [float(steps[i]) for i in picked]
    y = [float(inverse_l1[i]) for i in picked]
    grid = [x[0] + (x[-1] - x[0]) * k / (UNIFORM_POINTS - 1) for k in range(UNIFORM_POINTS)]
    slope, intercept, r2 = _line(grid, [float(v) for v in np.interp(grid, x, y)])
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
    """l1 * lr per step under plain gradient descent: the law's rate per step with c = 1 (the scale c is
    measured against; the law fixes c only up to a constant); None for Adam(W)."""
    return l1 * lr if optimizer == "sgd" and l1 > 0 else None


# --- statistics over seeds ----------------------------------------------------------------------


def _t_quantile(df: int, level: float = 0.975) -> float:
    """Student's t quantile (scipy, imported only when a confidence interval is asked for)."""
    from scipy import stats  # deferred: slow to import, needed only for an interval

    return float(stats.t.ppf(level, df))


@dataclass(frozen=True)
class Estimate:
    """A mean over independent replicates (seeds) with its standard error; ``se`` is NaN for one."""

    mean: float
    se: float
    n: int

    def ci95(self) -> tuple[float, float]:
        """The 95% confidence interval of the mean (Student's t); NaN bounds for fewer than 2 values."""
        if self.n < 2:
            return math.nan, math.nan
        half = _t_quantile(self.n - 1) * self.se
        return self.mean - half, self.mean + half


def estimate(values: Sequence[float]) -> Estimate | None:
    """The mean and its standard error over ``values`` (non-finite ones dropped); None if none is left."""
    kept = [float(v) for v in values if math.isfinite(v)]
    if not kept:
        return None
    n = len(kept)
    mean = sum(kept) / n
    if n < 2:
        return Estimate(mean, math.nan, 1)
    var = sum((v - mean) ** 2 for v in kept) / (n - 1)
    return Estimate(mean, math.sqrt(var / n), n)


@dataclass(frozen=True)
class Exponent:
    """The exponent k of a power law y ~ x^k, fitted by least squares on log-log with one intercept
    per group (so groups at different levels, such as different m, share only the slope)."""

    value: float
    se: float
    df: int
    points: int

    def ci95(self) -> tuple[float, float]:
        half = _t_quantile(self.df) * self.se if self.df > 0 else math.nan
        return self.value - half, self.value + half

    def contains(self, k: float) -> bool:
        low, high = self.ci95()
        return low <= k <= high


def fit_exponent(samples: Sequence[tuple[object, float, float]]) -> Exponent | None:
    """The exponent of y in x from (group, x, y) samples with x, y > 0: the slope of log y on log x
    within groups. None unless x varies within some group and the residuals have a degree of freedom."""
    groups: dict[object, list[tuple[float, float]]] = {}
    for group, x, y in samples:
        if x > 0 and y > 0 and math.isfinite(x) and math.isfinite(y):
            groups.setdefault(group, []).append((math.log(x), math.log(y)))
    sxx = sxy = 0.0
    centred = []
    for values in groups.values():
        mx = sum(x for x, _ in values) / len(values)
        my = sum(y for _, y in values) / len(values)
        centred += [(x - mx, y - my) for x, y in values]
    sxx = sum(x * x for x, _ in centred)
    sxy = sum(x * y for x, y in centred)
    n = len(centred)
    df = n - len(groups) - 1
    if sxx <= 0 or df < 1:
        return None
    slope = sxy / sxx
    residual = sum((y - slope * x) ** 2 for x, y in centred)
    return Exponent(slope, math.sqrt(residual / df / sxx), df, n)


# --- the authors' one-feature simulation ---------------------------------------------------------

AUTHORS_INIT_STD = 0.9  # experiments/sparsity.py: initialise_weights(m, 0.9), std 0.9 / sqrt(m)
AUTHORS_STEP = 0.5  # its Euler step in time units
AUTHORS_M, AUTHORS_LAMBDA = 100_000, 1e-5  # their figure's setting
REFERENCE_FEATURES = 16  # the report's reference averages at most this many simulated features per seed


def simulate_inverse_l1(m: int, lamb: float, features: int = 1, seed: int = 0, step: float = AUTHORS_STEP,
                        init_std: float = AUTHORS_INIT_STD, stop: float | None = None, points: int = 4000,
                        max_time: float | None = None) -> tuple[list[float], list[float]]:
    """The authors' one-feature gradient flow (their models/simulation.py), for ``features`` features at
    once: times and the mean over features of 1 / ||w||_1, about ``points`` of them.

    Each feature is m weights |N(0, (init_std / sqrt(m))^2)|, updated by Euler steps of
    dw/dt = (1 - ||w||^2) w - lamb; a weight that reaches 0 is gone (they drop it; here it stays at 0,
    which is the same: the step takes it below 0 and the clamp back). That is the loss
    (||w||^2 - 1)^2 / 4 + lamb ||w||_1 of one feature alone: our per-feature loss over 4, so our l1 and
    time map to lamb = l1 / 4 and t / 4 (the rate c is the same in both). Ends when every feature has
    one weight left, when the mean passes ``stop``, or at ``max_time`` (by default 10 / lamb, or 100
    without L1, where no weight ever dies). Seeded by numpy's default generator. The
    weights' order never changes (one shared drift), so the dead weights are always the last columns
    and are cut off as they die."""
    rng = np.random.default_rng(seed)
    w = -np.sort(-np.abs(rng.normal(0.0, init_std / math.sqrt(m), (features, m))), axis=1)
    times, values = [0.0], [float((1.0 / w.sum(1)).mean())]
    # The flow reaches ||w||_1 = 1 by about t = 2 / lamb (c >= 1/2): record about ``points`` values on the way.
    end = max_time if max_time is not None else (10.0 / lamb if lamb > 0 else 100.0)
    every = max(1, round(min(end, 2.0 / lamb if lamb > 0 else end) / step / points))
    shift = step * lamb
    k = 0
    while True:
        norm2 = np.einsum("ij,ij->i", w, w)[:, None]
        w *= 1.0 + step * (1.0 - norm2)
        w -= shift
        np.maximum(w, 0.0, out=w)
        k += 1
        if k % every:
            continue
        value = float((1.0 / w.sum(1)).mean())
        times.append(k * step)
        values.append(value)
        alive = int((w > 0).sum(1).max())
        if alive <= 1 or (stop is not None and value > stop) or k * step >= end:
            return times, values
        if alive < w.shape[1] // 2:  # cut the dead columns off
            w = np.ascontiguousarray(w[:, :alive])


@functools.lru_cache(maxsize=64)
def authors_constant(m: int, l1: float, features: int = 16, seeds: int = 8,
                     init_std: float = AUTHORS_INIT_STD) -> tuple[Estimate, Estimate] | None:
    """The constants c and a of the authors' simulation at toysup's (m, l1) (lamb = l1 / 4), fitted as
    toysup fits its curves: per seed, the mean curve of ``features`` features in :data:`WINDOW`; c is the
    slope over lamb, a the intercept times sqrt(m). Means and standard errors over ``seeds``."""
    lamb = l1 / 4
    cs, offsets = [], []
    for seed in range(seeds):
        times, values = simulate_inverse_l1(m, lamb, features, seed, init_std=init_std,
                                            stop=values_stop(m, init_std))
        fit = fit_linear_rate(times, values)
        if fit is not None:
            cs.append(fit.rate / lamb)
            offsets.append(fit.intercept * math.sqrt(m))
    c, a = estimate(cs), estimate(offsets)
    return (c, a) if c is not None and a is not None else None


def values_stop(m: int, init_std: float = AUTHORS_INIT_STD) -> float:
    """Where a simulation may stop: past the top of :data:`WINDOW` for a start of about 1.25 / (init_std
    sqrt(m)), with room to spare (the fit needs the first point past the window)."""
    start = math.sqrt(math.pi / 2) / (init_std * math.sqrt(m))
    return start + (WINDOW[1] + 0.1) * (1.0 - start)


# --- per sweep point, from a run's curves.csv ----------------------------------------------------

CURVE = "inverse_feature_l1"


@dataclass(frozen=True)
class PointRate:
    """The fitted rate at one sweep point: medians over its seeds, next to the prediction, and the
    paper's law's constants (means and standard errors over seeds; None off plain SGD)."""

    label: str
    fitted: float | None  # median over seeds of the linear law's rate per step
    predicted: float | None  # l1 * lr under SGD (the rate at c = 1), else None
    r2_linear: float | None  # median R^2 of the paper's law
    r2_exponential: float | None  # median R^2 of the exponential alternative on the same points
    fitted_seeds: int  # seeds whose curve had a sparsifying stretch to fit
    seeds: int
    steps: list[float]  # the median curve, for a chart
    median: list[float]
    intercept: float | None  # median intercept of the fitted line
    m: int = 0
    l1: float = 0.0
    lr: float = 0.0
    constant: Estimate | None = None  # c = rate per unit time (slope / lr) / l1
    offset: Estimate | None = None  # a = the fitted line's intercept * sqrt(m)
    start: Estimate | None = None  # the curve's first value * sqrt(m)
    samples: tuple[tuple[float, float, float, int], ...] = ()  # per fitted seed: rate per unit time, intercept,
    # start, the seed's place in its point (seeds in the same place share their init under paired seeds)


def _median(values: Sequence[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def rate_points(results: Results, curves: Sequence[dict[str, Any]] | None = None) -> list[PointRate]:
    """Per sweep point, each seed's curve fitted by :func:`fit_both`; empty for runs without the
    ``inverse_feature_l1`` curve (other models, runs made before it existed) or without L1.
    ``curves``: curves.csv's rows, if not the run's own."""
    curves = results.curves() if curves is None else curves
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
        l1 = float(config.get("l1", 0))
        if l1 <= 0:
            continue
        lr, m = float(config["lr"]), int(config["n_hidden"])
        sgd = str(config["optimizer"]) == "sgd"
        fits = []
        samples = []
        per_step: dict[float, list[float]] = {}
        for inst in point.instances:
            curve = sorted(by_instance.get(inst, []))
            if not curve:
                continue
            steps, values = [s for s, _ in curve], [v for _, v in curve]
            linear, exponential = fit_both(steps, values)
            if linear is not None and exponential is not None:
                fits.append((linear, exponential))
                samples.append((linear.rate / lr, linear.intercept, values[0], inst - point.instances.start))
            for s, v in curve:
                per_step.setdefault(s, []).append(v)
        steps = sorted(per_step)
        root = math.sqrt(m)
        out.append(PointRate(
            label=point.label(short=True),
            fitted=_median([f.rate for f, _ in fits]),
            predicted=predicted_rate(l1, lr, str(config["optimizer"])),
            r2_linear=_median([f.r2 for f, _ in fits]),
            r2_exponential=_median([e.r2 for _, e in fits]),
            fitted_seeds=len(fits),
            seeds=len(point.instances),
            steps=steps,
            median=[_median(per_step[s]) or 0.0 for s in steps],
            intercept=_median([f.intercept for f, _ in fits]),
            m=m,
            l1=l1,
            lr=lr,
            constant=estimate([r / l1 for r, _, _, _ in samples]) if sgd else None,
            offset=estimate([b * root for _, b, _, _ in samples]) if sgd else None,
            start=estimate([y0 * root for _, _, y0, _ in samples]),
            samples=tuple(samples) if sgd else (),
        ))
    return out


# --- the law across a run's points ---------------------------------------------------------------


@dataclass(frozen=True)
class RateLaw:
    """The paper's law 1/||W_i(t)||_1 = a/sqrt(m) + c l1 t tested across a run's plain-SGD points."""

    points: list[PointRate]
    references: dict[tuple[int, float], tuple[Estimate, Estimate] | None]  # (m, l1): the authors' c and a
    constant: Estimate | None  # c over the run: per seed place, the mean over points; then over seeds
    l1_exponent: Exponent | None  # rate per unit time ~ l1^k, one intercept per (m, lr, seed place): the law: 1
    l1_exponent_by_m: dict[int, Exponent]  # the same at each m of the run (where l1 varies)
    start_exponent: Exponent | None  # the start value ~ m^k per (l1, lr): the law says -1/2
    intercept_exponent: Exponent | None  # the fitted line's intercept ~ m^k per (l1, lr): -1/2 if straight
    reference_l1_exponent: Exponent | None = None  # the same two exponents for the authors' simulation's means
    reference_intercept_exponent: Exponent | None = None


def rate_law(results: Results, reference: bool = True, init_std: float | None = None,
             curves: Sequence[dict[str, Any]] | None = None) -> RateLaw:
    """:func:`rate_points` and, over its plain-SGD points, the law's exponents and the authors' constants
    at each point's (m, l1) (``reference``; a few seconds at most for m up to a few thousand). The
    simulation starts from the run's init (``init_scale``) unless ``init_std`` is given."""
    points = rate_points(results, curves)
    sgd = [p for p in points if p.constant is not None]
    scale = float(results.spec.params.get("init_scale", 1.0)) if init_std is None else init_std
    n = min(int(results.spec.params.get("n_features", 16)), REFERENCE_FEATURES)
    references = {(p.m, p.l1): authors_constant(p.m, p.l1, features=n, init_std=scale) for p in sgd} \
        if reference else {}
    by_rate, by_start, by_intercept = [], [], []
    per_seed: dict[int, list[float]] = {}
    for p in sgd:
        for rate, intercept, start, place in p.samples:
            per_seed.setdefault(place, []).append(rate / p.l1)
            by_rate.append(((p.m, p.lr, place), p.l1, rate))
            by_start.append(((p.l1, p.lr), float(p.m), start))
            by_intercept.append(((p.l1, p.lr), float(p.m), intercept))
    fitted_references = {key: r for key, r in references.items() if r is not None}
    return RateLaw(
        reference_l1_exponent=fit_exponent([(m, l1, c.mean * l1) for (m, l1), (c, _) in fitted_references.items()]),
        reference_intercept_exponent=fit_exponent([(l1, float(m), a.mean / math.sqrt(m))
                                                   for (m, l1), (_, a) in fitted_references.items()]),
        points=points,
        references=references,
        constant=estimate([sum(cs) / len(cs) for cs in per_seed.values()]),
        l1_exponent=fit_exponent(by_rate),
        l1_exponent_by_m={m: e for m in sorted({p.m for p in sgd})
                          if (e := fit_exponent([s for s in by_rate if s[0][0] == m])) is not None},
        start_exponent=fit_exponent(by_start),
        intercept_exponent=fit_exponent(by_intercept),
    )

