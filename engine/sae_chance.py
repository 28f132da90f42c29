"""What a random dictionary scores: the chance level of SAE feature recovery.

In few dimensions the maximum cosine similarity saturates: 20 random unit directions in 2-D
already come within cos 0.98 of any given feature on average. So an SAE's MMCS is evidence of
recovery only measured against what L random unit directions in the same d-dimensional space
score. For one fixed feature, the cosine t with a uniformly random unit direction has the same
distribution whatever the feature (density proportional to (1 - t^2)^((d-3)/2): (1 + t)/2 is
Beta((d-1)/2, (d-1)/2)); with L independent directions its maximum has CDF F(t)^L. Hence

    mmcs_chance(d, L) = E[max of L] = int_0^1 (1 - F^L) dt - int_-1^0 F^L dt,

the same for every feature, so it is also the expected MMCS of a random dictionary against any
set of ground-truth features (their mutual angles change the spread, not the mean). Computed by
adaptive quadrature of scipy's regularised incomplete beta function: the quadrature's own error
bound is below 1e-9 (a test checks the d = 3 closed form (L - 1)/(L + 1) and Monte Carlo at d = 2
and 10). The quantile ``chance_quantile(d, L, q)`` is exact: the cosine a random dictionary's max
exceeds with probability 1 - q.
"""

from __future__ import annotations

import functools
import math

import torch
from scipy import integrate, special

QUAD_TOLERANCE = 1e-10  # absolute tolerance asked of each of the two quadratures


def _cdf(t: float, d: int) -> float:
    """P(cos <= t) for a uniformly random unit direction against a fixed one in d >= 2 dimensions."""
    a = (d - 1) / 2
    return float(special.betainc(a, a, (1.0 + t) / 2.0))


@functools.lru_cache(maxsize=4096)
def expected_max_cosine(d: int, latents: int) -> float:
    """E[max cosine of a fixed unit vector with ``latents`` independent uniformly random unit directions]
    in ``d`` dimensions; NaN without latents. In 1-D each cosine is +-1 with probability 1/2."""
    if latents < 1 or d < 1:
        return math.nan
    if d == 1:
        return 1.0 - 2.0 * 0.5**latents
    if latents == 1:
        return 0.0  # one direction: the cosine's law is symmetric about 0
    upper = integrate.quad(lambda t: 1.0 - _cdf(t, d) ** latents, 0.0, 1.0, limit=200,
                           epsabs=QUAD_TOLERANCE, epsrel=0.0)[0]
    lower = integrate.quad(lambda t: _cdf(t, d) ** latents, -1.0, 0.0, limit=200,
                           epsabs=QUAD_TOLERANCE, epsrel=0.0)[0]
    return upper - lower


@functools.lru_cache(maxsize=4096)
def chance_quantile(d: int, latents: int, q: float) -> float:
    """The q-quantile of that max cosine: a random dictionary of ``latents`` directions comes closer
    than this to a given feature with probability 1 - q. NaN without latents."""
    if latents < 1 or d < 1:
        return math.nan
    if d == 1:
        return 1.0 if 0.5**latents < q else -1.0
    # F(t)^L = q, i.e. the upper tail 1 - F(t) = 1 - q^(1/L), computed without cancellation;
    # by symmetry of the Beta(a, a) law, t = 1 - 2 * betaincinv(a, a, tail).
    tail = -math.expm1(math.log(q) / latents)
    a = (d - 1) / 2
    return 1.0 - 2.0 * float(special.betaincinv(a, a, tail))


def mmcs_chance(d: int, live: torch.Tensor) -> torch.Tensor:
    """Per instance, the expected MMCS of a random dictionary with as many directions as ``live`` (I,)
    counts, in d dimensions: shape (I,), float, NaN where the count is 0."""
    values = [expected_max_cosine(d, int(n)) for n in live.tolist()]
    return torch.tensor(values, dtype=torch.float32, device=live.device)


def quantile_of_chance(d: int, live: torch.Tensor, q: float) -> torch.Tensor:
    """Per instance, :func:`chance_quantile` for the ``live`` (I,) counts: shape (I,), NaN where 0."""
    values = [chance_quantile(d, int(n), q) for n in live.tolist()]
    return torch.tensor(values, dtype=torch.float32, device=live.device)
