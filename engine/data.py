"""Synthetic data generators (Elhage et al. 2022 and the open-problem variants), drawn in place."""

from __future__ import annotations

import torch

from engine.rng import PAIRS, CounterRNG


def sparse_uniform_(rng: CounterRNG, stream: int, step: int, p: torch.Tensor, out: torch.Tensor,
                    correlation: str = "none", rows: slice = slice(None)) -> torch.Tensor:
    """Fill ``out`` (I, B, n) with features that are 0 with probability 1 - p, else uniform on [0, 1).

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
    paired.mul_(active)
    if n % 2:
        last, p_last = out[..., -1:], p_full[..., -1:]
        last.copy_(torch.where(last < p_last, last / p_last, torch.zeros((), device=out.device)))
    return out


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
