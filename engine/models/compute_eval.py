"""The compute model judged on its real inputs: each output's error on the training distribution,
other functions co-active as the data makes them, with a stated standard error at any sparsity;
and the two readouts it is judged against (the best affine readout and the best output-ReLU
readout of the function's own inputs, the control without a hidden nonlinearity).

Why stratify: one fixed batch sees function i's inputs active about p * B times, so at sparse p the
error of a function is sampling noise. The data are n functions, each active independently with
probability p, so the number K of active functions is Binomial(n, p), and given K the active set is
a uniform K-subset. The estimator is the exact mixture over K (strata holding all but
``STRATA_TAIL`` of the probability; K = 0, every input 0, is one deterministic point). Within a
stratum every function is forced active in its own rows (row r forces function r mod n) with K - 1
others drawn uniformly, so each function's active case is covered whatever p is. The budget
(``eval_batch_size`` samples) is spread over the strata K >= 1 in proportion to their probability,
at least ``MIN_ROWS`` rows per function each. Output j's error in stratum K is
(K / n) E[e_j | j active] + (1 - K / n) E[e_j | j inactive], with the exact weights; each
conditional mean pools every row where j is (in)active (each such pool is uniform over the K-sets
(not) containing j). The standard error treats a pool as i.i.d. (the forced rows make it slightly
conservative) and adds the strata's variances with their squared weights. An instance's samples
are the first rows of a stratum's draw, however many its neighbours in the batch need, so its
result does not depend on them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch

from toysup.engine.models.compute_functions import Function
from toysup.engine.rng import EVAL, CounterRNG

WRONG_BY = 0.5  # an output this far from its target is wrong (for AND and OR: it rounds to the wrong bit)
ABLATION_BUDGET = 4096  # samples for the neuron ablations (a cut at 0.1 of the affine error needs no more)
MIN_ROWS = 8  # rows per function in every stratum evaluated, however improbable
STRATA_TAIL = 1e-6  # strata left out hold at most this probability (of K, the number of active functions)
EVAL_STEP = 1 << 20  # the EVAL stream's steps for stratum K start here (two draws each: subsets, values)
CONTROL_ANGLES = 200  # directions of the output-ReLU control's search (two inputs; 1.8 degrees: diagonals on it)
CONTROL_THRESHOLDS = 200  # thresholds per direction
CONTROL_CHUNK = 24  # directions searched at once


@dataclass
class RealInputs:
    """Each output's error on the training distribution, with neuron k zeroed too."""

    error: torch.Tensor  # E (y_j - f_j)^2, (I, n)
    error_se: torch.Tensor  # its standard error, (I, n)
    ablated: torch.Tensor  # the same with neuron k's activation zeroed, (I, n, m)
    wrong: torch.Tensor  # P(|y_j - f_j| >= WRONG_BY): for bits, rounding the output gives the wrong bit, (I, n)
    loss: torch.Tensor  # the importance-weighted loss mean_j I_j (y_j - f_j)^2, (I,)
    loss_se: torch.Tensor  # (I,)


def binomial_pmf(n: int, p: torch.Tensor) -> torch.Tensor:
    """P(K = k) for K ~ Binomial(n, p), (I, n + 1), in double; exact at p = 1 (xlog1py: 0 log 0 = 0)."""
    k = torch.arange(n + 1, dtype=torch.float64, device=p.device)
    p = p.to(torch.float64).view(-1, 1)
    log_choose = math.lgamma(n + 1) - torch.lgamma(k + 1) - torch.lgamma(n - k + 1)
    return (log_choose + torch.special.xlogy(k, p) + torch.special.xlog1py(n - k, -p)).exp()


def strata(pmf: torch.Tensor, tail: float = STRATA_TAIL) -> torch.Tensor:
    """Which K each instance evaluates, (I, n + 1) bool: its most probable K until all but ``tail`` of
    the probability is covered (always K = 0, evaluated exactly). Per instance, so an instance's result
    does not depend on the others it is evaluated with."""
    order = torch.argsort(pmf, dim=-1, descending=True)
    before = torch.cumsum(pmf.gather(-1, order), -1) - pmf.gather(-1, order)  # mass of the more probable K
    keep = torch.zeros_like(pmf, dtype=torch.bool).scatter_(-1, order, before < 1.0 - tail)
    keep[:, 0] = True
    return keep


def stratum_inputs(rng: CounterRNG, k: int, n: int, rows: int, function: Function,
                   device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs (I, n * rows, n * arity) with exactly ``k`` functions active: row r forces function
    r mod n and draws k - 1 others uniformly; and the active mask (I, n * rows, n). The draw of a row
    does not depend on ``rows`` (per-element hashes of the flat index), so fewer rows are a prefix."""
    forced = torch.arange(n * rows, device=device) % n
    if k == 1:  # the forced function alone (the commonest stratum at sparse p): nothing to draw
        active = torch.nn.functional.one_hot(forced, n).bool().expand(rng.n, -1, -1)
    elif k == n:
        active = torch.ones(rng.n, n * rows, n, dtype=torch.bool, device=device)
    else:
        keys = rng.uniform(EVAL, EVAL_STEP + 2 * k, (n * rows, n))
        keys[:, torch.arange(n * rows, device=device), forced] = -1.0  # the forced function ranks first
        chosen = keys.topk(k, dim=-1, largest=False).indices
        active = torch.zeros_like(keys, dtype=torch.bool).scatter_(-1, chosen, True)
    u = rng.uniform(EVAL, EVAL_STEP + 2 * k + 1, (n * rows, n * function.arity))
    values = function.draw(u.view(*u.shape[:2], n, function.arity))
    values.masked_fill_(~active.unsqueeze(-1), 0.0)
    return values.view(*u.shape), active


def stratum_rows(pmf: torch.Tensor, budget: int, n: int) -> torch.Tensor:
    """Rows per function each instance evaluates in each stratum, (I, n + 1) int64: the budget over
    the strata K >= 1 in proportion to their probability, at least ``MIN_ROWS`` (0 where left out)."""
    share = pmf / (1.0 - pmf[:, :1]).clamp_min(1e-300)
    rows = (share * math.ceil(budget / n)).ceil().clamp_min(MIN_ROWS).to(torch.int64)
    rows[:, 0] = 0
    return torch.where(pmf > 0, rows, 0)


def _outputs(weights: dict[str, torch.Tensor], x: torch.Tensor, linear: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The output before its ReLU (I, N, n) and the hidden activations (I, N, m)."""
    c = weights.get("c")
    pre = torch.bmm(x, weights["W1"]) if c is None else torch.baddbmm(c.unsqueeze(1), x, weights["W1"])
    h = pre if linear else torch.relu(pre)
    return torch.baddbmm(weights["b"].unsqueeze(1), h, weights["W2"]), h


def _errors(weights: dict[str, torch.Tensor], x: torch.Tensor, target: torch.Tensor, linear: bool,
            ablate: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Squared errors (I, N, n), and with each neuron zeroed on the first ``ablate`` rows (I, ablate, m, n)."""
    out, h = _outputs(weights, x, linear)
    error = (out.relu() - target).square()
    ablated = (out[:, :ablate, None] - h[:, :ablate, :, None] * weights["W2"].unsqueeze(1)).relu_()
    return error, ablated.sub_(target[:, :ablate, None]).square_()


def _pooled(values: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean over the rows where ``mask`` holds (dim 1) and its squared standard error (float32 sums,
    pairwise in torch: ample for a standard error; returned in double for the weighted totals)."""
    weight = mask.to(values.dtype)
    count = weight.sum(1)
    mean = (values * weight).sum(1) / count.clamp_min(1)
    spread = ((values - mean.unsqueeze(1)).square_() * weight).sum(1)
    return mean.double(), (spread / (count * (count - 1)).clamp_min(1)).double()


@torch.no_grad()
def real_inputs(weights: dict[str, torch.Tensor], function: Function, p: torch.Tensor,
                importance: torch.Tensor, rng: CounterRNG, budget: int, linear: bool = False) -> RealInputs:
    """Each output's error on the training distribution (see the module docstring): ``p`` (I,), the
    importance (I, n), ``budget`` the samples spread over the strata (``eval_batch_size``)."""
    count, n_in, _ = weights["W1"].shape
    n = n_in // function.arity
    device = weights["W1"].device
    pmf = binomial_pmf(n, p)
    keep = strata(pmf)
    pmf = pmf * keep  # (I, n + 1), 0 for the strata an instance leaves out
    rows = stratum_rows(pmf, budget, n)
    ablation_rows = stratum_rows(pmf, min(budget, ABLATION_BUDGET), n)
    zero = torch.zeros(count, 1, n_in, device=device)
    error, ablated = _errors(weights, zero, torch.zeros(count, 1, n, device=device), linear, 1)
    error_sum = pmf[:, :1] * error[:, 0].double()  # K = 0: every input 0, every target 0
    ablated_sum = pmf[:, :1, None] * ablated[:, 0].transpose(1, 2).double()
    wrong_sum = pmf[:, :1] * (error[:, 0] >= WRONG_BY ** 2).double()
    variance = torch.zeros(count, n, dtype=torch.float64, device=device)
    loss_sum = pmf[:, 0] * (importance * error[:, 0]).mean(-1).double()
    loss_variance = torch.zeros(count, dtype=torch.float64, device=device)
    for k in keep[:, 1:].any(0).nonzero().flatten().add(1).tolist():
        most = int(rows[:, k].max())
        x, active = stratum_inputs(rng, k, n, most, function, device)
        own = torch.arange(n * most, device=device) < (n * rows[:, k:k + 1])  # (I, N): this instance's rows
        ablate = n * int(ablation_rows[:, k].max())
        own_ablated = own[:, :ablate] & (torch.arange(ablate, device=device) < n * ablation_rows[:, k:k + 1])
        target = function.target(x.view(count, -1, n, function.arity))
        error, ablated = _errors(weights, x, target, linear, ablate)
        weight = pmf[:, k:k + 1]
        loss_mean, loss_var = _pooled((importance.unsqueeze(1) * error).mean(-1, keepdim=True), own.unsqueeze(-1))
        loss_sum += weight[:, 0] * loss_mean[:, 0]
        loss_variance += weight[:, 0].square() * loss_var[:, 0]
        for share, mask in ((k / n, active), (1 - k / n, ~active)):
            if share == 0:
                continue
            mask_ablated = mask[:, :ablate] & own_ablated.unsqueeze(-1)
            mask = mask & own.unsqueeze(-1)
            mean, var = _pooled(error, mask)
            error_sum += weight * share * mean
            wrong_sum += weight * share * _pooled((error >= WRONG_BY ** 2).to(error.dtype), mask)[0]
            variance += (weight * share).square() * var
            pooled_ablated = torch.einsum("inmf,inf->imf", ablated, mask_ablated.to(ablated.dtype))
            pooled_ablated = pooled_ablated.double() / mask_ablated.sum(1).clamp_min(1).unsqueeze(1)
            ablated_sum += (weight * share).unsqueeze(1) * pooled_ablated.transpose(1, 2)
    return RealInputs(error_sum.float(), variance.sqrt().float(), ablated_sum.float(), wrong_sum.float(),
                      loss_sum.float(), loss_variance.sqrt().float())


def _mixture(function: Function, p: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One function's own inputs on the training distribution as a weighted point set in double:
    the zero point (inactive, weight 1 - p) and the active domain's quadrature (weight p)."""
    points, weights = function.quadrature()
    points = torch.cat([torch.zeros(1, function.arity, dtype=torch.float64), points.double()])
    weights = torch.cat([torch.tensor([1.0 - p], dtype=torch.float64), p * weights.double()])
    return points, weights, function.target(points)


def affine_error(function: Function, p: float) -> float:
    """The mean squared error of the best affine readout a . x + c of f(x) from the function's own
    inputs on the training distribution (0 with probability 1 - p), from exact moments of the active
    domain: Var f - Cov(x, f)^T Cov(x)^-1 Cov(x, f). At p = 1 it is Var f for |x| and x^2, a quarter
    of Var max and a third of Var AND and OR."""
    mean_x = p * torch.tensor(function.input_mean, dtype=torch.float64)
    cov_x = p * torch.tensor(function.input_second, dtype=torch.float64) - torch.outer(mean_x, mean_x)
    cov_xf = p * torch.tensor(function.input_cross, dtype=torch.float64) - mean_x * p * function.mean
    var_f = p * function.mean_square - (p * function.mean) ** 2
    return float(var_f - cov_xf @ torch.linalg.solve(cov_x, cov_xf))


@lru_cache(maxsize=256)
def control_error(function: Function, p: float) -> float:
    """The mean squared error of the best output-ReLU readout ReLU(a . x + c) of the function's own
    inputs on the training distribution: what the model can reach with its hidden ReLU removed
    (a linear hidden layer makes each output ReLU of an affine map; this is that map's best, given
    only the inputs that carry f). 0 for AND = ReLU(x + y - 1); at most the affine readout's error.

    Exact up to the quadrature of the domain and the search grid: every direction u (2 for one
    input, ``CONTROL_ANGLES`` for two) and threshold t, with the optimal slope s >= 0 of
    s ReLU(u . x - t) in closed form (t far below the domain gives a constant or affine output)."""
    points, weights, f = _mixture(function, p)
    if function.arity == 1:
        directions = torch.tensor([[1.0], [-1.0]], dtype=torch.float64)
    else:
        angle = torch.arange(CONTROL_ANGLES, dtype=torch.float64) * (2 * math.pi / CONTROL_ANGLES)
        directions = torch.stack([angle.cos(), angle.sin()], -1)
    g = directions @ points.T  # (D, Q)
    low, high = g.min(-1, keepdim=True).values, g.max(-1, keepdim=True).values
    steps = torch.linspace(0.0, 1.0, CONTROL_THRESHOLDS, dtype=torch.float64)
    far = torch.tensor([10.0, 100.0, 1000.0], dtype=torch.float64)
    thresholds = torch.cat([low - far, low - 1 + (high - low + 1) * steps], -1)  # (D, T)
    total = float((weights * f.square()).sum())
    gain = torch.zeros((), dtype=torch.float64)  # s = 0: the output is 0 everywhere
    for chunk in range(0, len(directions), CONTROL_CHUNK):
        over = (g[chunk:chunk + CONTROL_CHUNK, None] - thresholds[chunk:chunk + CONTROL_CHUNK, :, None]).clamp_min_(0)
        a = over @ (weights * f)  # (D, T)
        b = over.square_() @ weights
        gain = torch.maximum(gain, torch.where(a > 0, a.square() / b.clamp_min(1e-300), 0.0).max())
    return min(max(total - float(gain), 0.0), affine_error(function, p))  # truncating at 0 never hurts f >= 0
