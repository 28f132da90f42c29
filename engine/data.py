"""Synthetic data generators (Elhage et al. 2022 and the open-problem variants), drawn in place."""

from __future__ import annotations

import torch

from toysup.engine.params import FEATURE_DISTS  # noqa: F401  (declared torch-free for the kinds; also found here)
from toysup.engine.rng import PAIRS, CounterRNG

# Every continuous choice of FEATURE_DISTS has E[x | active] = 1/2, the uniform's mean; binary is exactly 1 when active.
PARETO_SHAPE = 3.0  # Pareto II (Lomax), scale 1: P(x > t) = (1 + t)^-3, mean 1/(shape - 1) = 1/2, variance 3/4
EXPONENTIAL_MEAN = 0.5


def sparse_uniform_(rng: CounterRNG, stream: int, step: int, p: torch.Tensor, out: torch.Tensor,
                    correlation: str = "none", rows: slice = slice(None), dist: str = "uniform") -> torch.Tensor:
    """Fill ``out`` (I, B, n) with features that are 0 with probability 1 - p, else uniform on [0, 1)
    (or another ``dist``, see :func:`active_values_`).

    One uniform u per element is enough for independent features: the feature
    is active iff u < p, and then u / p is itself uniform on [0, 1). ``p``
    broadcasts against ``out``: (I, 1, 1) for one probability per instance,
    (I, 1, n) per feature.

    ``correlation`` pairs features (0, 1), (2, 3), ...: ``correlated`` pairs share
    one on/off draw (both active with probability p, the first feature's p);
    ``anticorrelated`` pairs have at most one feature active (each with
    probability p, so p <= 0.5). Magnitudes stay independent and uniform. An odd
    last feature stays independent.

    With ``rows``, ``out`` and ``p`` hold only that block of instances (see
    :meth:`CounterRNG.bits`); the values equal the full draw's rows.
    """
    if dist == "binary" and correlation == "none":
        # Exactly 1 where u < p: no division, so the rate is p to the last bit and u = 0 still counts.
        rng.uniform_(stream, step, out, rows=rows)
        return torch.lt(out, p, out=out)
    if dist not in ("uniform", "binary"):
        return active_values_(sparse_uniform_(rng, stream, step, p, out, correlation, rows), dist)
    if correlation == "none":
        # x = -u/p in the drawing pass; threshold_ zeroes x <= -1 (u >= p, inactive); negate back.
        # Three cheap float passes: boolean masks and masked_fill_ cost 5-10x more on CPU.
        rng.uniform_(stream, step, out, scale=-1.0 / p, rows=rows)
        torch.threshold_(out, -1.0, 0.0)
        return out.neg_()
    rng.uniform_(stream, step, out, rows=rows)
    n = out.shape[-1]
    pairs = n // 2
    p_full = p.expand(-1, -1, n) if p.shape[-1] == 1 else p
    p_pair = p_full[..., 0:2 * pairs:2]
    v = rng.uniform(PAIRS, step, (out.shape[1], pairs), rows=rows)
    if correlation == "correlated":
        first = second = v < p_pair
    elif correlation == "anticorrelated":
        first = v < p_pair
        second = (v >= p_pair) & (v < 2 * p_pair)
    else:
        raise ValueError(f"unknown correlation {correlation!r}")
    active = torch.stack([first, second], dim=-1).flatten(-2)
    paired = out[..., : 2 * pairs]
    if dist == "binary":
        paired.fill_(1.0)
    paired.mul_(active)
    if n % 2:
        last, p_last = out[..., -1:], p_full[..., -1:]
        value = torch.ones((), device=out.device) if dist == "binary" else last / p_last
        last.copy_(torch.where(last < p_last, value, torch.zeros((), device=out.device)))
    return out


def active_values_(v: torch.Tensor, dist: str) -> torch.Tensor:
    """Map uniform magnitudes v on [0, 1) (0 where inactive) to a continuous ``dist`` in place, by
    its inverse CDF (binary features are drawn by :func:`sparse_uniform_` itself).

    Every map sends 0 to 0, so inactive features stay 0 and one uniform per element still
    serves both the on/off draw and the value: the draw stays a pure function of
    (seed, stream, step, element), whatever else shares the batch. ``exponential``: mean 1/2,
    -ln(1 - v) / 2. ``pareto``: Pareto II (Lomax), shape 3, scale 1, mean 1/2, P(x > t) =
    (1 + t)^-3, (1 - v)^(-1/3) - 1. With 24-bit uniforms, v <= 1 - 2^-24 / p truncates the
    tails far out: exponential at t = 8.3 + ln(p)/2 (the mean short by (t + 1/2) 2^-24 / p:
    5e-7 at p = 1, 3e-4 at p = 0.001), Pareto at 256 p^(1/3) - 1 (the mean short by
    1.5 (2^-24 / p)^(2/3): 2e-5 at p = 1, 2e-3 at p = 0.001)."""
    if dist == "uniform":
        return v
    if dist == "exponential":
        return v.neg_().log1p_().mul_(-EXPONENTIAL_MEAN)
    if dist == "pareto":
        return v.neg_().add_(1.0).pow_(-1.0 / PARETO_SHAPE).sub_(1.0)
    raise ValueError(f"unknown feature distribution {dist!r}")


def feature_probabilities(p: torch.Tensor, ratio: torch.Tensor, n_features: int) -> torch.Tensor:
    """Per-instance, per-feature probability (I, 1, n): the second half of the features has p * ratio.

    With ratio 1 everywhere this collapses to (I, 1, 1), the cheap broadcast."""
    if bool((ratio == 1).all()):
        return p.view(-1, 1, 1)
    second_half = torch.arange(n_features, device=p.device) >= (n_features + 1) // 2
    return torch.where(second_half, (p * ratio).unsqueeze(-1), p.unsqueeze(-1)).unsqueeze(1)


def importance(decay: torch.Tensor, n_features: int) -> torch.Tensor:
    """Importance decay**i per instance and feature, shape (I, n)."""
    i = torch.arange(n_features, device=decay.device, dtype=decay.dtype)
    return decay.unsqueeze(-1) ** i
