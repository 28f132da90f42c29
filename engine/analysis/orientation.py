"""Is there a privileged basis? Orientation angles over seeds against the no-preference null.

With no privileged basis, the largest represented feature's direction
(engine.metrics.orientation) is uniformly random on the sphere. In 2-D its angle to the nearest axis is then uniform on
[0, 45] degrees (mean 22.5); in m > 2 dimensions the null distribution of
arccos(max_j |u_j|) has no simple closed form, so it is sampled once (fixed
seed, 200,000 directions) and the test compares against that empirical CDF.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from toysup.engine.results import Point, Results

NEAR_AXIS_DEG = 5.0
NULL_SAMPLES = 200_000
ORIENTATION_BINS = 9  # 5-degree bins over [0, 45] for m = 2


@dataclass
class OrientationStats:
    """The orientation angles of one sweep point and a test of their uniformity.

    ``p_value`` is the Kolmogorov-Smirnov test of the angles against the angle of a
    uniformly random direction in m dimensions: a small p-value means the model
    prefers (or avoids) the neuron axes. ``null_near_axis`` is the fraction within
    ``NEAR_AXIS_DEG`` expected with no preference, to read ``near_axis`` against.
    """

    angles: list[float]
    excluded: int  # collapsed or undefined instances, left out
    max_angle: float
    median: float
    p_value: float
    ks_stat: float
    near_axis: float
    null_near_axis: float


def max_axis_angle(m: int) -> float:
    """The largest possible angle (degrees) between a direction and its nearest axis in m dimensions."""
    return math.degrees(math.acos(1 / math.sqrt(m))) if m > 1 else 0.0


@lru_cache(maxsize=16)
def null_angles(m: int) -> np.ndarray:
    """Sorted angles to the nearest axis of uniformly random unit directions in m dimensions."""
    if m == 2:
        return np.linspace(0.0, 45.0, NULL_SAMPLES)
    rng = np.random.default_rng(12345)
    u = rng.standard_normal((NULL_SAMPLES, m))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    return np.sort(np.degrees(np.arccos(np.clip(np.abs(u).max(1), 0.0, 1.0))))


def null_cdf(m: int):
    """The CDF of the no-preference angle distribution in m dimensions (exact for m = 2)."""
    if m == 2:
        return lambda a: np.clip(np.asarray(a, dtype=float) / 45.0, 0.0, 1.0)
    sample = null_angles(m)
    return lambda a: np.searchsorted(sample, np.asarray(a, dtype=float), side="right") / len(sample)


def orientation_stats(angles: Sequence[float], collapsed: Sequence[bool] | None = None, m: int = 2,
                      near: float = NEAR_AXIS_DEG) -> OrientationStats:
    """Summarise orientation angles over seeds, leaving out collapsed instances.

    A collapsed instance represents nothing, so its largest feature's direction is
    noise: counting it would dilute any real preference.
    """
    from scipy import stats  # deferred: scipy.stats is slow to import and only this test needs it

    flags = list(collapsed) if collapsed is not None else [False] * len(angles)
    limit = max_axis_angle(m)
    used = [min(max(float(a), 0.0), limit) for a, c in zip(angles, flags)
            if not c and isinstance(a, (int, float)) and math.isfinite(a)]
    excluded = len(angles) - len(used)
    cdf = null_cdf(m) if m >= 2 else None
    null_near = float(cdf(near)) if cdf is not None else math.nan
    if not used:
        return OrientationStats([], excluded, limit, math.nan, math.nan, math.nan, math.nan, null_near)
    p_value = ks_stat = math.nan
    if cdf is not None:
        result = stats.kstest(used, cdf)
        p_value, ks_stat = float(result.pvalue), float(result.statistic)
    near_axis = sum(a <= near for a in used) / len(used)
    return OrientationStats(used, excluded, limit, float(np.median(used)), p_value, ks_stat, near_axis, null_near)


def orientation_points(results: Results) -> list[tuple[Point, OrientationStats]]:
    """Orientation statistics per sweep point (points without finished instances are left out).

    Each point uses its own n_hidden (it may be swept) for the range of angles and the test.
    """
    out = []
    for point, members in results.groups():
        m = int(point.values.get("n_hidden", results.spec.params.get("n_hidden", 2)))
        read = [r.get("orientation_angle_deg") for r in members]
        collapsed = [bool(r.get("collapsed")) or not isinstance(a, (int, float)) for r, a in zip(members, read)]
        angles = [float(a) if isinstance(a, (int, float)) else math.nan for a in read]
        out.append((point, orientation_stats(angles, collapsed, m)))
    return out


def histogram(values: Sequence[float], bins: int, lo: float, hi: float) -> list[int]:
    """Counts in ``bins`` equal bins over [lo, hi] (values outside are clipped into the end bins)."""
    clipped = np.clip(np.asarray(values, dtype=float), lo, hi)
    counts, _ = np.histogram(clipped, bins=bins, range=(lo, hi))
    return [int(c) for c in counts]


def hidden_dims(max_angle: float) -> int:
    """The m whose largest possible axis angle is ``max_angle`` (inverse of max_axis_angle)."""
    if max_angle <= 0:
        return 1
    return round(1 / math.cos(math.radians(max_angle)) ** 2)


def null_counts(total: int, bins: int, max_angle: float, m: int) -> list[float]:
    """Expected histogram counts of ``total`` angles of uniformly random directions in m dimensions."""
    if m < 2 or total == 0:
        return []
    edges = np.linspace(0.0, max_angle, bins + 1)
    cdf = np.asarray(null_cdf(m)(edges), dtype=float)
    return [float(total * (b - a)) for a, b in itertools.pairwise(cdf)]
