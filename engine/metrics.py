"""Pure, batched metrics of weight matrices.

Convention: ``W`` has shape (instances, n_features, n_hidden); row ``W[k, i]`` is
feature i's embedding W_i, column ``W[k, :, j]`` is neuron j's weights W_j,i.
Every function takes a batch of instances and returns one value per instance
(or per instance and feature/neuron); definitions follow science.md.
"""

from __future__ import annotations

import torch

EPS = 1e-8
REPRESENTED_NORM = 0.5  # a feature is represented if ||W_i|| > 0.5
MONOSEMANTIC_RATIO = 0.99  # max_i |W_n,i| / ||W_n|| above this: a monosemantic neuron


def feature_norms(W: torch.Tensor) -> torch.Tensor:
    """||W_i|| per feature, shape (I, n)."""
    return W.norm(dim=-1)


def features_represented(W: torch.Tensor) -> torch.Tensor:
    """Number of features with ||W_i|| > 0.5, shape (I,)."""
    return (feature_norms(W) > REPRESENTED_NORM).sum(-1)


def dims_per_feature(W: torch.Tensor) -> torch.Tensor:
    """D* = m / ||W||_F^2, shape (I,). Infinite when W is zero."""
    m = W.shape[-1]
    return m / W.pow(2).sum((-2, -1))


def _unit_rows(W: torch.Tensor) -> torch.Tensor:
    return W / feature_norms(W).clamp_min(EPS).unsqueeze(-1)


def _overlaps_sq(W: torch.Tensor) -> torch.Tensor:
    """(W^_i . W_j)^2 for all pairs, shape (I, n, n)."""
    return torch.einsum("kim,kjm->kij", _unit_rows(W), W).pow(2)


def feature_dimensionality(W: torch.Tensor) -> torch.Tensor:
    """D_i = ||W_i||^2 / sum_j (W^_i . W_j)^2, shape (I, n); 0 for an unlearned (zero) feature."""
    norms_sq = feature_norms(W).pow(2)
    denom = _overlaps_sq(W).sum(-1)
    return torch.where(norms_sq > EPS, norms_sq / denom.clamp_min(EPS), torch.zeros_like(norms_sq))


def interference(W: torch.Tensor) -> torch.Tensor:
    """sum_{j != i} (W^_i . W_j)^2, shape (I, n)."""
    sq = _overlaps_sq(W)
    return sq.sum(-1) - torch.diagonal(sq, dim1=-2, dim2=-1)


def orientation(W: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Axis alignment max_j |u_j| and angle to the nearest axis in degrees, for u the unit
    direction of the largest-norm feature. Shapes (I,), (I,).

    1 and 0 degrees mean the feature lies on a neuron axis; 1/sqrt(m) is the diagonal.
    """
    norms = feature_norms(W)
    k = norms.argmax(-1)
    largest = W[torch.arange(W.shape[0], device=W.device), k]
    u = largest / norms.gather(-1, k.unsqueeze(-1)).clamp_min(EPS)
    alignment = u.abs().amax(-1).clamp(max=1.0)
    angle = torch.rad2deg(torch.arccos(alignment))
    return alignment, angle


def carried(W: torch.Tensor, threshold: torch.Tensor | float = 0.5) -> torch.Tensor:
    """Boolean (I, n, m): neuron j carries feature i if feature i is represented and
    |W_j,i| >= threshold * ||W_i||. ``threshold`` is a float or a per-instance (I,) tensor."""
    norms = feature_norms(W)
    if isinstance(threshold, torch.Tensor):
        threshold = threshold.view(-1, 1, 1)
    strong = W.abs() >= threshold * norms.unsqueeze(-1)
    return strong & (norms > REPRESENTED_NORM).unsqueeze(-1)


def features_per_neuron(W: torch.Tensor, threshold: torch.Tensor | float = 0.5) -> torch.Tensor:
    """How many represented features each neuron carries, shape (I, m)."""
    return carried(W, threshold).sum(-2)


def polysemantic_neurons(W: torch.Tensor, threshold: torch.Tensor | float = 0.5) -> torch.Tensor:
    """Neurons carrying two or more represented features, shape (I,)."""
    return (features_per_neuron(W, threshold) >= 2).sum(-1)


def monosemantic_neurons(W: torch.Tensor) -> torch.Tensor:
    """Neurons with max_i |W_n,i| / ||W_n|| > 0.99 (ARENA's definition), shape (I,).

    A dead neuron (all weights zero) is not counted as monosemantic."""
    col_norms = W.norm(dim=-2)
    ratio = W.abs().amax(-2) / col_norms.clamp_min(EPS)
    return ((ratio > MONOSEMANTIC_RATIO) & (col_norms > EPS)).sum(-1)



def distinct_patterns(active: torch.Tensor) -> torch.Tensor:
    """Distinct boolean rows per instance: (I, B, k) -> (I,), e.g. ReLU activation patterns visited
    by a batch, i.e. the linear regions of a piecewise-linear map that the batch touches (polytope lens).

    Patterns are hashed to int64 (exact for k <= 62, a random 63-bit projection beyond, where a
    collision is vanishingly unlikely), sorted per instance and counted."""
    k = active.shape[-1]
    if k <= 62:
        weights = 2 ** torch.arange(k, device=active.device, dtype=torch.int64)
    else:
        gen = torch.Generator().manual_seed(0)
        weights = torch.randint(0, 2**62, (k,), generator=gen, dtype=torch.int64).to(active.device)
    codes = (active.to(torch.int64) * weights).sum(-1)
    ordered = codes.sort(-1).values
    return (ordered[:, 1:] != ordered[:, :-1]).sum(-1) + 1
