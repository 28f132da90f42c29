"""The computable functions of the compute model: each one's inputs, target, probe points, quadrature and
exact moments, and the sparse draw of a batch of their inputs (engine/models/compute.py trains on them,
engine/models/compute_eval.py judges on them)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from toysup.engine.kinds.compute import ARITY
from toysup.engine.models.abs_value import PROBE_POINTS, probe_inputs
from toysup.engine.rng import CounterRNG

MAX_GRID = 8  # max(x, y) is probed on an 8 x 8 grid of cell midpoints of [0, 1]^2 (64 points, as |x|)
QUADRATURE_POINTS = 512  # midpoints of [-1, 1] for the output-ReLU control's fit (one input)
QUADRATURE_SIDE = 24  # the same per side of [0, 1]^2 (two continuous inputs)


@dataclass(frozen=True)
class Function:
    """One computable function: its input count, how inputs are drawn from uniforms, the target, and
    the mean and mean square of the target over its active domain (for the best constant's loss)."""

    arity: int
    draw: Callable[[torch.Tensor], torch.Tensor]  # uniforms on [0, 1) -> inputs, in place
    target: Callable[[torch.Tensor], torch.Tensor]  # inputs (..., arity) -> (...)
    mean: float
    mean_square: float
    probe: Callable[[], torch.Tensor]  # the probe's points on the active domain, (P, arity)
    quadrature: Callable[[], tuple[torch.Tensor, torch.Tensor]]  # points (Q, arity) and weights (Q,) of the domain
    input_mean: tuple[float, ...]  # E x over the active domain, (arity,)
    input_second: tuple[tuple[float, ...], ...]  # E x x^T, (arity, arity)
    input_cross: tuple[float, ...]  # E x f(x), (arity,)


def _symmetric_grid() -> torch.Tensor:
    return probe_inputs(1, PROBE_POINTS)[1].unsqueeze(-1)


def _unit_square_grid() -> torch.Tensor:
    t = (torch.arange(MAX_GRID, dtype=torch.float32) + 0.5) / MAX_GRID
    return torch.cartesian_prod(t, t)


def _bits_grid() -> torch.Tensor:
    return torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])


def _midpoints(points: int, low: float) -> torch.Tensor:
    return low + (torch.arange(points, dtype=torch.float64) + 0.5) * ((1.0 - low) / points)


def _symmetric_quadrature() -> tuple[torch.Tensor, torch.Tensor]:
    return _midpoints(QUADRATURE_POINTS, -1.0).unsqueeze(-1), torch.full((QUADRATURE_POINTS,), 1 / QUADRATURE_POINTS)


def _unit_square_quadrature() -> tuple[torch.Tensor, torch.Tensor]:
    t = _midpoints(QUADRATURE_SIDE, 0.0)
    return torch.cartesian_prod(t, t), torch.full((QUADRATURE_SIDE ** 2,), 1 / QUADRATURE_SIDE ** 2)


def _bits_quadrature() -> tuple[torch.Tensor, torch.Tensor]:
    return _bits_grid().double(), torch.full((4,), 0.25)


def _symmetric(u: torch.Tensor) -> torch.Tensor:
    return u.mul_(2.0).sub_(1.0)


def _bits(u: torch.Tensor) -> torch.Tensor:
    return u.copy_(u < 0.5)


# The moments are exact: E[x max(x, y)] = int x (x^2 + (1 - x^2) / 2) dx = 3/8; for bits E[x AND] = 1/4, E[x OR] = 1/2.
FUNCTIONS: dict[str, Function] = {
    "abs": Function(ARITY["abs"], _symmetric, lambda x: x[..., 0].abs(), 1 / 2, 1 / 3, _symmetric_grid,
                    _symmetric_quadrature, (0.0,), ((1 / 3,),), (0.0,)),
    "square": Function(ARITY["square"], _symmetric, lambda x: x[..., 0].square(), 1 / 3, 1 / 5, _symmetric_grid,
                       _symmetric_quadrature, (0.0,), ((1 / 3,),), (0.0,)),
    "max": Function(ARITY["max"], lambda u: u, lambda x: x.amax(-1), 2 / 3, 1 / 2, _unit_square_grid,
                    _unit_square_quadrature, (1 / 2, 1 / 2), ((1 / 3, 1 / 4), (1 / 4, 1 / 3)), (3 / 8, 3 / 8)),
    "and": Function(ARITY["and"], _bits, lambda x: x.prod(-1), 1 / 4, 1 / 4, _bits_grid,
                    _bits_quadrature, (1 / 2, 1 / 2), ((1 / 2, 1 / 4), (1 / 4, 1 / 2)), (1 / 4, 1 / 4)),
    "or": Function(ARITY["or"], _bits, lambda x: x.amax(-1), 3 / 4, 3 / 4, _bits_grid,
                   _bits_quadrature, (1 / 2, 1 / 2), ((1 / 2, 1 / 4), (1 / 4, 1 / 2)), (1 / 2, 1 / 2)),
}


def sparse_inputs_(rng: CounterRNG, stream: int, step: int, p: torch.Tensor, out: torch.Tensor,
                   function: Function) -> torch.Tensor:
    """Fill ``out`` (I, B, arity * n): function i's inputs are all 0 with probability 1 - p, else drawn
    from its domain. One uniform per input: the first input's u decides (active iff u < p, then u / p
    is uniform again), so for one input this is abs_value's draw, value for value."""
    u = rng.uniform_(stream, step, out).view(*out.shape[:2], -1, function.arity)
    inactive = u[..., 0] >= p
    u[..., 0].div_(p)
    function.draw(u).masked_fill_(inactive.unsqueeze(-1), 0.0)
    return out
