"""The ReLU output model's training step as one pure function of a block of instances, for torch.compile.

The same mathematics as ReluOutput._block_step (and the same random bits: data
and dropout masks come from engine.rng.uniform_bits), written without in-place
work or kept buffers so that inductor can fuse the hashing, the sparse draw, the
elementwise forward and backward and the reductions into a few loops around the
five batched matmuls. The matmuls keep the eager step's orientation (no output
with the tiny m as its last dimension). Shapes, per block of k instances:
W (k, n, m), b (k, n), data keys (k,), data elements (B, n), data scale (k, 1, 1)
or (k, 1, n), importance2 (k, 1, n), dropout keys (k,), dropout elements (B, m),
q (k, 1, 1).
"""

from __future__ import annotations

import torch

from toysup.engine.rng import uniform_bits

UNIFORM_SCALE = 1.0 / 2**24


def sparse_data(k1: torch.Tensor, k2: torch.Tensor, elements: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """engine.data.sparse_uniform_ (independent features) as a pure function: ``scale`` is -1/p * 2^-24."""
    x = uniform_bits(k1, k2, elements).to(torch.float32) * scale
    return torch.threshold(x, -1.0, 0.0).neg()


def block_step(W: torch.Tensor, b: torch.Tensor, k1: torch.Tensor, k2: torch.Tensor, elements: torch.Tensor,
               scale: torch.Tensor, importance2: torch.Tensor, drop_k1: torch.Tensor, drop_k2: torch.Tensor,
               drop_elements: torch.Tensor, q: torch.Tensor, relu: bool, hidden_relu: bool, dropout: bool
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-instance loss (k,), dloss/dW^T (k, m, n) and dloss/db (k, n) of one training step."""
    Wt = W.transpose(1, 2)  # (k, m, n)
    x = sparse_data(k1, k2, elements, scale)  # (k, B, n)
    hT = torch.bmm(Wt, x.transpose(1, 2))  # (k, m, B)
    if hidden_relu:
        hidden_active = hT > 0
        hT = torch.relu(hT)
    if dropout:
        u = uniform_bits(drop_k1, drop_k2, drop_elements).to(torch.float32) * UNIFORM_SCALE  # (k, B, m)
        keep_T = ((u >= q) / (1.0 - q)).transpose(1, 2)
        hT = hT * keep_T
    pre = torch.bmm(hT.transpose(1, 2), Wt) + b.unsqueeze(1)  # (k, B, n)
    diff = (torch.relu(pre) if relu else pre) - x
    g = diff * importance2
    loss = (g * diff).sum((1, 2)) * 0.5
    if relu:
        g = g * (pre > 0)
    db = g.sum(1)
    ghT = torch.bmm(Wt, g.transpose(1, 2))  # (k, m, B)
    if dropout:
        ghT = ghT * keep_T
    if hidden_relu:
        ghT = ghT * hidden_active
    dWT = torch.bmm(ghT, x) + torch.bmm(hT, g)
    return loss, dWT, db
