"""The expected loss of a model under sparse data, and each feature's ablation gain, with a standard error.

One fixed batch fails where superposition lives: at p = 0.001 a feature is active in about 4 of
4,096 samples, so the loss, the constant-output baseline and the ablation gains become sampling noise.
Here the data are split into strata by the number k of active *units* (a feature, or a pair of
features under correlated / anticorrelated pairs), each weighted by its exact probability:

- k = 0: one input, x = 0, with probability P0 = prod_u (1 - pi_u).
- k = 1: for each unit and each of its active states, the exact probability prod_{v != u} (1 - pi_v)
  times the state's own, and the conditional mean over the active value(s) by composite Gauss-Legendre
  quadrature (QUAD_CELLS cells of QUAD_ORDER nodes per value, PAIR_CELLS per value of a correlated
  pair), after a change of variable that makes the heavy tails smooth (see :func:`value_nodes`).
  Deterministic: no sampling error; the residual quadrature error sits in the cells where a ReLU
  switches (the integrand is piecewise quadratic in the value for ReLU models).
- k >= 2: Monte Carlo with importance sampling: choose an ordered pair of distinct units with
  probability proportional to pi_u pi_v, force both active, draw every other unit from its natural
  law and every value from its own. The exact likelihood ratio of an input with k active units is
  then w = Z / C(k, 2), Z = sum_{u < v} pi_u pi_v (it depends on k only), so the mean of w L over
  the draws is unbiased for E[L; k >= 2] and its sample variance gives the standard error. The
  budget (``eval_batch_size``) is spent where co-activation lives, instead of on the x = 0 input
  that natural sampling draws 99% of the time at sparse p.

Ablation gains are computed on the same inputs (common random numbers): their standard error comes
from the per-sample differences. The functions are pure: weights enter only through ``evaluate``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from toysup.engine.rng import EVAL, CounterRNG

QUAD_CELLS = 16  # cells per value in the k = 1 stratum (one feature active) ...
QUAD_ORDER = 3  # ... each with 3 Gauss-Legendre nodes: 48 nodes, exact for degree 5 on each smooth cell
PAIR_CELLS = 8  # cells per value of a correlated pair (both active): 24 x 24 = 576 nodes per pair
MC_BLOCK = 4096  # Monte Carlo inputs drawn per block (a constant, so the draws never depend on memory)
STATE_STEPS = 10  # RNG steps per Monte Carlo block: pair (0-3), activity (4-5), anticorrelated side (6), values (8-9)
VALUE_DISTS = ("uniform", "binary", "exponential", "pareto", "symmetric")  # symmetric: uniform on [-1, 1)

# (E[v], E[v^2]) of an active value: the mean ablation's mean and the constant-output baseline.
VALUE_MOMENTS = {"uniform": (0.5, 1.0 / 3.0), "binary": (1.0, 1.0), "exponential": (0.5, 0.5),
                 "pareto": (0.5, 1.0), "symmetric": (0.0, 1.0 / 3.0)}

Evaluate = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]]


@dataclass(frozen=True)
class DataLaw:
    """How toysup's data generators (engine/data.py) draw an input, per instance.

    ``p`` (I, n): each feature's probability as the generator reads it. Pairs (0, 1), (2, 3), ...
    under ``correlation``: ``correlated`` pairs share one on/off draw with the first feature's p;
    ``anticorrelated`` pairs have the first or the second feature active, each with the first
    feature's p; an odd last feature is independent. ``dist``: the value of an active feature.
    """

    p: torch.Tensor
    correlation: str = "none"
    dist: str = "uniform"

    def __post_init__(self) -> None:
        if self.dist not in VALUE_DISTS:
            raise ValueError(f"unknown value distribution {self.dist!r}")
        if self.correlation not in ("none", "correlated", "anticorrelated"):
            raise ValueError(f"unknown correlation {self.correlation!r}")

    @property
    def n(self) -> int:
        return self.p.shape[-1]

    @property
    def pairs(self) -> int:
        return 0 if self.correlation == "none" else self.n // 2

    def units(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(unit index of each feature (n,), pi_u = P(unit u active) (I, N)) in float64."""
        p = self.p.to(torch.float64)
        pairs = self.pairs
        unit = torch.cat([torch.arange(pairs).repeat_interleave(2), torch.arange(pairs, pairs + self.n - 2 * pairs)])
        pi = torch.cat([p[:, 0:2 * pairs:2] * (2.0 if self.correlation == "anticorrelated" else 1.0),
                        p[:, 2 * pairs:]], -1)
        return unit.to(self.p.device), pi

    def marginal_p(self) -> torch.Tensor:
        """P(feature i active), (I, n) float64: a pair's second feature has the first one's p."""
        p = self.p.to(torch.float64).clone()
        pairs = self.pairs
        p[:, 1:2 * pairs:2] = p[:, 0:2 * pairs:2]
        return p

    def mean(self) -> torch.Tensor:
        """E[x_i], (I, n) float64."""
        return self.marginal_p() * VALUE_MOMENTS[self.dist][0]

    def variance(self) -> torch.Tensor:
        """Var(x_i), (I, n) float64: p E[v^2] - (p E[v])^2 (uniform: p/3 - p^2/4, binary p(1 - p))."""
        p = self.marginal_p()
        m1, m2 = VALUE_MOMENTS[self.dist]
        return p * m2 - (p * m1) ** 2


@dataclass
class Estimate:
    """E[loss] (I,) and the ablation gains E[loss_ablated_i - loss] (I, n), with standard errors (float64)."""

    loss: torch.Tensor
    loss_se: torch.Tensor
    gain: torch.Tensor | None
    gain_se: torch.Tensor | None


@lru_cache(maxsize=8)
def _gauss_cells(cells: int, order: int, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """Composite Gauss-Legendre nodes and weights on [lo, hi] (weights sum to hi - lo)."""
    x, w = np.polynomial.legendre.leggauss(order)
    edges = np.linspace(lo, hi, cells + 1)
    half = np.diff(edges)[:, None] / 2
    nodes = (edges[:-1, None] + half * (x[None, :] + 1)).ravel()
    return nodes, (half * w[None, :]).ravel()


def value_nodes(dist: str, cells: int = QUAD_CELLS, order: int = QUAD_ORDER) -> tuple[torch.Tensor, torch.Tensor]:
    """Quadrature for E[g(v)] over an active value v: nodes (Q,) and weights (Q,) summing to 1, float64.

    The rule is composite Gauss-Legendre in t on [0, 1), with u = F(v) the uniform of the inverse CDF:
    uniform v = t; binary one node at 1; exponential (mean 1/2) u = 1 - (1 - t)^4, v = -2 ln(1 - t),
    weight 4 (1 - t)^3; Pareto II (shape 3) u = 1 - (1 - t)^6, v = (1 - t)^-2 - 1, weight 6 (1 - t)^5.
    The substitutions cancel the tails' singularities at u = 1: for the Pareto a quadratic in v
    becomes a polynomial in t, integrated exactly between kinks. ``symmetric`` (abs_value): uniform
    on [-1, 1), with 0 on a cell edge (the kink of |x|)."""
    if dist == "binary":
        return torch.ones(1, dtype=torch.float64), torch.ones(1, dtype=torch.float64)
    if dist == "symmetric":
        t, w = _gauss_cells(2 * cells, order, -1.0, 1.0)
        return torch.from_numpy(t), torch.from_numpy(w / 2)
    t, w = _gauss_cells(cells, order, 0.0, 1.0)
    if dist == "uniform":
        v = t
    elif dist == "exponential":
        v, w = -2.0 * np.log1p(-t), w * 4 * (1 - t) ** 3
    elif dist == "pareto":
        v, w = (1 - t) ** -2.0 - 1.0, w * 6 * (1 - t) ** 5
    else:
        raise ValueError(f"unknown value distribution {dist!r}")
    return torch.from_numpy(np.ascontiguousarray(v)), torch.from_numpy(np.ascontiguousarray(w))


def inverse_cdf(u: torch.Tensor, dist: str) -> torch.Tensor:
    """An active value from a uniform u on [0, 1), in u's dtype. Every map but ``symmetric``'s sends 0 to 0."""
    if dist == "uniform":
        return u
    if dist == "binary":
        return torch.ones_like(u)
    if dist == "exponential":
        return -0.5 * torch.log1p(-u)
    if dist == "pareto":
        return (1 - u).pow(-1.0 / 3.0) - 1.0
    if dist == "symmetric":
        return 2 * u - 1
    raise ValueError(f"unknown value distribution {dist!r}")


def _leave_one_out(q: torch.Tensor) -> torch.Tensor:
    """prod_{v != u} q_v for every u, (I, N), by prefix and suffix products (exact when some q_v = 0)."""
    ones = torch.ones_like(q[:, :1])
    prefix = torch.cumprod(torch.cat([ones, q[:, :-1]], -1), -1)
    suffix = torch.cumprod(torch.cat([ones, q.flip(-1)[:, :-1]], -1), -1).flip(-1)
    return prefix * suffix


def strata_probabilities(law: DataLaw) -> torch.Tensor:
    """(P(k = 0), P(k = 1), P(k >= 2)) per instance, (I, 3) float64: k active units."""
    _, pi = law.units()
    p0 = torch.prod(1 - pi, -1)
    p1 = (_leave_one_out(1 - pi) * pi).sum(-1)
    return torch.stack([p0, p1, (1 - p0 - p1).clamp_min(0.0)], -1)


def deterministic_inputs(law: DataLaw) -> tuple[torch.Tensor, torch.Tensor]:
    """The k = 0 and k = 1 strata as weighted inputs: x (S, n) shared by every instance and weights
    (I, S) float64, so that sum_s w_s L(x_s) = E[L; k <= 1] (up to the quadrature's error)."""
    unit, pi = law.units()
    n, pairs, count = law.n, law.pairs, law.p.shape[0]
    alone = _leave_one_out(1 - pi)  # (I, N): no other unit active
    p = law.p.to(torch.float64)
    xs = [torch.zeros(1, n, dtype=torch.float64)]
    ws = [torch.prod(1 - pi, -1, keepdim=True)]
    v, wv = value_nodes(law.dist)
    singles: list[tuple[int, torch.Tensor]] = []  # (feature, probability of this state alone (I,))
    if law.correlation == "anticorrelated":
        for k in range(pairs):
            singles += [(2 * k, alone[:, k] * p[:, 2 * k]), (2 * k + 1, alone[:, k] * p[:, 2 * k])]
    elif law.correlation == "correlated":
        v2, w2 = value_nodes(law.dist, PAIR_CELLS)
        a, b = torch.meshgrid(v2, v2, indexing="ij")
        wab = (w2[:, None] * w2[None, :]).flatten()
        for k in range(pairs):
            x = torch.zeros(len(wab), n, dtype=torch.float64)
            x[:, 2 * k], x[:, 2 * k + 1] = a.flatten(), b.flatten()
            xs.append(x)
            ws.append((alone[:, k] * p[:, 2 * k]).unsqueeze(-1) * wab)
    for f in range(2 * pairs, n):
        singles.append((f, alone[:, int(unit[f])] * p[:, f]))
    for f, prob in singles:
        x = torch.zeros(len(v), n, dtype=torch.float64)
        x[:, f] = v
        xs.append(x)
        ws.append(prob.unsqueeze(-1) * wv)
    device = law.p.device
    return torch.cat(xs).to(device, torch.float32), torch.cat(ws, -1).reshape(count, -1).to(device)


def importance_inputs(law: DataLaw, rng: CounterRNG, block: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Monte Carlo block ``block`` of the k >= 2 stratum: inputs x (I, size, n) float32 and likelihood
    ratios w (I, size) float64, E_Q[w g(x)] = E[g(x); k >= 2] for any g (see the module's docstring)."""
    _, pi = law.units()
    units = pi.shape[-1]
    base = block * STATE_STEPS
    total = pi.sum(-1, keepdim=True)
    # First unit a with P(a) = pi_a (S - pi_a) / (S^2 - sum pi^2), then b != a with P(b | a) = pi_b / (S - pi_a):
    # the ordered pair has probability proportional to pi_a pi_b.
    first = pi * (total - pi)
    cdf = torch.cumsum(first / first.sum(-1, keepdim=True), -1)
    a = torch.searchsorted(cdf, rng.uniform(EVAL, base, (size,)).to(torch.float64)).clamp_(max=units - 1)
    pa = pi.gather(-1, a)
    r = rng.uniform(EVAL, base + 2, (size,)).to(torch.float64) * (total - pa)
    cum = torch.cumsum(pi, -1)
    before_a = cum.gather(-1, a) - pa
    r = torch.where(r >= before_a, r + pa, r)
    b = torch.searchsorted(cum, r.contiguous(), right=True).clamp_(max=units - 1)
    b = torch.where(b == a, (a + 1) % units, b)  # only by rounding, at a relative 1e-16
    # 24-bit uniforms: P(u < pi) is pi rounded up to a multiple of 2^-24, a relative 6e-4 at pi = 1e-4, and
    # only for units beyond the forced pair (the k >= 3 share of this stratum, O(pi) of it).
    active = rng.uniform(EVAL, base + 4, (size, units)) < pi.to(torch.float32).unsqueeze(1)
    active.scatter_(-1, a.unsqueeze(-1), True).scatter_(-1, b.unsqueeze(-1), True)
    k = active.sum(-1).to(torch.float64)
    z = (total.square() - pi.square().sum(-1, keepdim=True)) / 2
    w = z / (k * (k - 1) / 2)
    return _inputs_of(law, rng, EVAL, base, active), w


def _inputs_of(law: DataLaw, rng: CounterRNG, stream: int, base: int, active: torch.Tensor) -> torch.Tensor:
    """Inputs (I, size, n) float32 for the active units ``active`` (I, size, N): an anticorrelated pair's
    side and every active feature's value drawn from its law (steps base + 6 to base + 9 of ``stream``)."""
    unit = law.units()[0]
    size, n, pairs = active.shape[1], law.n, law.pairs
    on = active[..., unit]  # (I, size, n): the unit of each feature is active
    if law.correlation == "anticorrelated" and pairs:
        second = rng.uniform(stream, base + 6, (size, pairs)) < 0.5
        on[..., 1:2 * pairs:2] &= second
        on[..., 0:2 * pairs:2] &= ~second
    if law.dist == "binary":
        return on.to(torch.float32)
    if law.dist in ("uniform", "symmetric"):  # 24 bits, as the generator's own
        return inverse_cdf(rng.uniform(stream, base + 8, (size, n)), law.dist).mul_(on)
    # 48 bits (two draws) for the tails: a 24-bit u would cut the Pareto tail at v = 255 and bias E[v^2] by 1.2%
    fine = rng.uniform(stream, base + 8, (size, n)).to(torch.float64)
    fine += rng.uniform(stream, base + 9, (size, n)).to(torch.float64) * 2.0**-24
    return (inverse_cdf(fine, law.dist) * on).to(torch.float32)


def active_inputs(law: DataLaw, rng: CounterRNG, stream: int, step: int, size: int,
                  out: torch.Tensor | None = None, scratch: torch.Tensor | None = None) -> torch.Tensor:
    """Inputs (I, size, n) from the data law conditioned on at least one active unit, exactly and without
    rejection: the first active unit J has P(J = j) = pi_j prod_{i < j} (1 - pi_i) / P(k >= 1); the units
    before J are off, J is on, the ones after it follow their own law. Draws use steps ``step * STATE_STEPS``
    onwards of ``stream``; ``out`` and ``scratch`` (I, size, n) float32, if given, are kept buffers (independent
    features only; a fresh large tensor costs more than the arithmetic on a CPU)."""
    _, pi = law.units()
    units = pi.shape[-1]
    base = step * STATE_STEPS
    uv = rng.uniform(stream, base, (size, 2))  # J's uniform and (independent features) J's value, in one draw
    u = uv[..., 0].contiguous()
    q = 1 - pi
    if bool((pi == pi[:, :1]).all()):
        # One pi per instance: P(J = j) = pi q^j / (1 - q^N), so J = floor(log(1 - u (1 - q^N)) / log q).
        scale = (1 - q[:, :1].pow(units)).to(torch.float32)
        j = torch.log1p(u.mul_(-scale)).div_(torch.log1p(-pi[:, :1]).to(torch.float32))
        j = torch.nan_to_num_(j, nan=0.0).floor_().clamp_(0, units - 1).unsqueeze(-1)  # p = 1: J = 0
    else:
        first = pi * torch.cumprod(torch.cat([torch.ones_like(q[:, :1]), q[:, :-1]], -1), -1)
        cdf = torch.cumsum(first / first.sum(-1, keepdim=True), -1)
        j = torch.searchsorted(cdf, u.to(torch.float64)).clamp_(max=units - 1).unsqueeze(-1).to(torch.float32)
    index = torch.arange(units, device=pi.device, dtype=torch.float32)
    if law.correlation == "none" and law.dist in ("uniform", "exponential", "pareto"):  # maps that keep 0 at 0
        # The generator's own trick (engine/data.py): one uniform per feature, active iff u < p, value u / p,
        # drawn in place with the scale folded in; then the features before J are zeroed and J gets a value
        # of its own. A third of the general path's cost.
        x = torch.empty(pi.shape[0], size, units, device=pi.device) if out is None else out
        rng.uniform_(stream, base + 4, x, scale=-1.0 / law.p.to(torch.float32).unsqueeze(1))
        torch.threshold_(x, -1.0, 0.0)
        keep = torch.empty_like(x) if scratch is None else scratch
        torch.ge(index, j, out=keep)  # 0 before J, 1 from J on, as floats (no bool mask)
        x.mul_(keep).neg_()
        x.scatter_(-1, j.to(torch.int64), uv[..., 1:])
        return x if law.dist == "uniform" else inverse_cdf(x, law.dist)
    natural = rng.uniform(stream, base + 4, (size, units)) < pi.to(torch.float32).unsqueeze(1)
    active = (index > j) & natural | (index == j)
    return _inputs_of(law, rng, stream, base, active)


def _chunks(total: int, size: int) -> list[slice]:
    return [slice(s, min(s + size, total)) for s in range(0, total, size)]


def estimate(law: DataLaw, evaluate: Evaluate, rng: CounterRNG, budget: int,
             chunk: int = 1024) -> Estimate:
    """E[L] and E[D_i] with standard errors for a per-sample loss L and per-sample ablation deltas D.

    ``evaluate(x)`` takes inputs (I, S, n) float32 and returns the per-sample loss (I, S) and the
    per-sample increase of the loss when each feature is ablated (I, S, n), or None. ``budget``:
    Monte Carlo inputs of the k >= 2 stratum (``eval_batch_size``); ``chunk``: inputs per call of
    ``evaluate`` (memory only: the result does not depend on it). The standard errors are those of
    the Monte Carlo stratum; the other strata are exact up to the quadrature's error."""
    count = law.p.shape[0]
    x_det, w_det = deterministic_inputs(law)
    loss = torch.zeros(count, dtype=torch.float64, device=law.p.device)
    gain: torch.Tensor | None = None
    for part in _chunks(len(x_det), chunk):
        L, D = evaluate(x_det[part].unsqueeze(0).expand(count, -1, -1))
        w = w_det[:, part]
        loss += (w * L).sum(-1)
        if D is not None:
            term = (w.unsqueeze(-1) * D).sum(1)
            gain = term if gain is None else gain + term
    mc_sum = torch.zeros_like(loss)
    mc_sq = torch.zeros_like(loss)
    g_sum: torch.Tensor | None = None
    g_sq: torch.Tensor | None = None
    _, pi = law.units()
    samples = budget if pi.shape[-1] >= 2 else 0  # one unit: nothing is ever co-active
    for block in range(math.ceil(samples / MC_BLOCK)):
        size = min(MC_BLOCK, samples - block * MC_BLOCK)
        x, w = importance_inputs(law, rng, block, size)
        for part in _chunks(size, chunk):
            L, D = evaluate(x[:, part])
            wl = w[:, part] * L
            mc_sum += wl.sum(-1)
            mc_sq += wl.square().sum(-1)
            if D is not None:
                wd = w[:, part].unsqueeze(-1) * D
                s, q = wd.sum(1), wd.square().sum(1)
                g_sum, g_sq = (s, q) if g_sum is None or g_sq is None else (g_sum + s, g_sq + q)

    def mean_and_se(total: torch.Tensor, squares: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if samples == 0:
            return torch.zeros_like(total), torch.zeros_like(total)
        mean = total / samples
        var = (squares / samples - mean.square()).clamp_min(0.0) * samples / max(samples - 1, 1)
        return mean, (var / samples).sqrt()

    mc, loss_se = mean_and_se(mc_sum, mc_sq)
    gain_se = None
    if gain is not None:
        if g_sum is not None and g_sq is not None:
            g_mc, gain_se = mean_and_se(g_sum, g_sq)
            gain = gain + g_mc
        else:
            gain_se = torch.zeros_like(gain)
    return Estimate(loss + mc, loss_se, gain, gain_se)
