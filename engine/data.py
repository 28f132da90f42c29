"""Synthetic data generators (Elhage et al. 2022 and variants), drawn in place into kept buffers."""

from __future__ import annotations

import torch

from engine.rng import CounterRNG


def sparse_uniform_(rng: CounterRNG, stream: int, step: int, p: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Fill ``out`` (I, B, n) with features that are 0 with probability 1 - p, else uniform on [0, 1).

    One uniform u per element is enough: the feature is active iff u < p, and
    then u / p is itself uniform on [0, 1). ``p`` broadcasts against ``out``
    ((I, 1, 1) for one probability per instance, (I, 1, n) per feature).
    """
    rng.uniform_(stream, step, out)
    inactive = out >= p
    return out.div_(p).masked_fill_(inactive, 0.0)


def importance(decay: torch.Tensor, n_features: int) -> torch.Tensor:
    """Importance decay**i per instance and feature, shape (I, n)."""
    i = torch.arange(n_features, device=decay.device, dtype=decay.dtype)
    return decay.unsqueeze(-1) ** i
