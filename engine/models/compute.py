"""Computation in superposition beyond |x| (Nanda's open problems): n copies of one function, each
computed from its own inputs through one shared ReLU layer, y = ReLU(W2 ReLU(W1 x + c) + b).

The ``function`` (one per run, structural) and its inputs:

- ``abs`` and ``square``: |x| and x^2 of one input uniform on [-1, 1) (abs is the abs_value model).
- ``max``: max(x, y) of a pair uniform on [0, 1)^2 (non-negative, so the output ReLU can reach it).
- ``and`` and ``or``: x*y and max(x, y) of a pair of bits, each 1 with probability 1/2.

Function i's inputs are active together with probability p (one Bernoulli per function, like the
correlated pairs of the TMS data), else all 0; every function is 0 at 0. The loss is the
importance-weighted MSE (I_i = decay^i per function), averaged over batch and functions, as in
abs_value. W1 is (I, arity * n, m): rows 2i, 2i+1 are pair i's inputs. The hidden bias c (``hidden_bias``,
on by default) is what lets a neuron threshold: without it a neuron is homogeneous in its inputs, so
x^2 can only be a hinge ReLU(a |x| + b) however many neurons there are, and AND must use the output
bias. ``hidden_bias = false`` with ``function = abs`` is exactly the abs_value model (same draws,
same weights).

Which functions are computed? On the training distribution, other functions co-active as the data
makes them (engine/models/compute_eval.py estimates each output's error there, stratified by the
number of active functions, with its standard error). Against the best constant that is not enough
for two-input functions: the best affine readout of the inputs, no nonlinearity at all, already
removes 3/4 of max's variance and 2/3 of AND's and OR's (at p = 1; more when sparse, where most of
the variance is "active or not"). So the rule is scale-free against that readout: ``beyond_linear``
= 1 - MSE_i / MSE_lin on the same inputs, and function i is computed when it is above 0.5 (the error
below half the affine readout's). For |x| and x^2 the affine readout is the constant. That still
counts what the output ReLU does alone: ReLU(x + y - 1) is AND exactly, and sparse, ReLU(x) is half
of |x|. The control without a hidden nonlinearity is the best output-ReLU readout ReLU(a . x_i + c)
of the function's own inputs, fitted on the same distribution (a linear hidden layer makes every
output such a map, rank-limited; ``hidden_activation = linear`` trains that model): function i is
computed by the hidden layer (``computed_hidden``) when its error is also below half the control's.
The old rule, one function's inputs active at a time over a grid of its domain, is kept as
``computed_alone``: it misses both interference from co-active functions and the error an active
function's neurons cause on inactive outputs. Exact circuits score 1: |x| = ReLU(x) + ReLU(-x) and
max(x, y) = ReLU(x) + ReLU(y - x) and OR the same (2 neurons), AND = ReLU(ReLU(x + y - 1)) (1 neuron
with the hidden bias, or ReLU(ReLU(x + y) - 1) with the output bias). x^2 has no exact finite
circuit: k neurons make a k-knot piecewise-linear fit.

Which neurons serve a function? Ablation on the same real inputs: zeroing neuron k's activation adds to
output i's error; neuron k serves function i when i is computed and the increase is at least
``ablation_threshold`` (default 0.1) times MSE_lin, the same scale as the rule above. Scale-free, and
it counts what the output uses, not weights that happen to be large. A neuron serving 2+ functions
is polysemantic; ``functions_per_neuron`` = functions computed / m above 1 is computation in
superposition for functions that need a neuron each (every one here does), and above 1/2 it beats
the monosemantic budget of |x|, max and OR (two neurons each). The weight-based monosemanticity is
abs_value's, with a function's inputs grouped (the norm of its input weights into the neuron).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from toysup.engine import metrics as M
from toysup.engine.data import importance
from toysup.engine.kinds.compute import ComputeKind
from toysup.engine.models.abs_value import init_two_layers, input_drive, two_layer_forward
from toysup.engine.models.base import Hyper, ToyModel
from toysup.engine.models.compute_eval import RealInputs, affine_error, control_error, real_inputs
from toysup.engine.models.compute_functions import FUNCTIONS, Function, sparse_inputs_
from toysup.engine.rng import DATA, CounterRNG

COMPUTED_SHARE = 0.5  # computed: the error below half the best affine readout's (and the control's, for hidden)


def linear_error(points: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The mean squared error of the best affine readout a . t + c of ``target`` over ``points`` (P, arity):
    what a model that leaves out the nonlinearity can reach. It is Var f for |x| and x^2 (uncorrelated
    with x on the symmetric grid), a quarter of Var f for max(x, y) and a third for AND and OR."""
    design = torch.cat([points, torch.ones(len(points), 1)], -1).double()
    fit = torch.linalg.lstsq(design, target.double().unsqueeze(-1)).solution
    return (design @ fit).squeeze(-1).sub(target.double()).square().mean().float()


@dataclass
class Probe:
    """Each function's output with its inputs alone active, and with each neuron zeroed."""

    explained: torch.Tensor  # R_i = 1 - MSE_i / Var f, (I, n)
    beyond_linear: torch.Tensor  # 1 - MSE_i / (best affine readout's MSE), (I, n)
    ablated: torch.Tensor  # the same with neuron k zeroed, (I, n, m)


def probe(W1: torch.Tensor, W2: torch.Tensor, b: torch.Tensor, c: torch.Tensor | None,
          function: Function, linear_hidden: bool = False) -> Probe:
    """The error of each output over its function's probe points t, with only function i's inputs set
    to t, against the best constant and the best affine readout; and with each neuron zeroed in turn."""
    count, n_in, m = W1.shape
    points = function.probe()  # (P, arity)
    target = function.target(points)  # (P,)
    variance, linear = target.var(unbiased=False), linear_error(points, target)
    points, target = points.to(W1.device), target.to(W1.device)
    n = n_in // function.arity
    pre = torch.einsum("pa,inam->inpm", points, W1.view(count, n, function.arity, m))
    if c is not None:
        pre = pre + c.view(count, 1, 1, m)
    # neuron k's share of output i: (I, n, P, m)
    contrib = (pre if linear_hidden else torch.relu(pre)).mul_(W2.transpose(1, 2).unsqueeze(2))
    own = contrib.sum(-1) + b.unsqueeze(-1)  # (I, n, P) before the output ReLU
    error = (own.relu() - target).square().mean(-1)
    ablated = ((own.unsqueeze(-1) - contrib).relu_() - target.unsqueeze(-1)).square().mean(-2)
    return Probe(1.0 - error / variance, 1.0 - error / linear, 1.0 - ablated / linear)


@dataclass
class Judged:
    """Which functions the final weights compute, on the real inputs and on the isolated probe."""

    real: RealInputs
    variance: torch.Tensor  # Var f_i on the training distribution, (I, 1): the best constant's error
    affine: torch.Tensor  # the best affine readout's error on the same inputs, (I, 1)
    control: torch.Tensor  # the best output-ReLU readout's error (no hidden nonlinearity), (I, 1)
    beyond_linear: torch.Tensor  # 1 - error / affine, (I, n)
    computed: torch.Tensor  # error below COMPUTED_SHARE of the affine readout's, (I, n)
    computed_hidden: torch.Tensor  # and below COMPUTED_SHARE of the output-ReLU control's, (I, n)
    alone: Probe
    computed_alone: torch.Tensor  # the probe's rule (inputs alone active), (I, n)
    serves: torch.Tensor  # neuron k serves computed function i, (I, n, m)


def judge(weights: dict[str, torch.Tensor], function: Function, p: torch.Tensor, importance: torch.Tensor,
          ablation_threshold: torch.Tensor, rng: CounterRNG, budget: int, linear: bool = False) -> Judged:
    """The rule: function i is computed when its error on the training distribution is below
    ``COMPUTED_SHARE`` of the best affine readout's on the same inputs, and computed by the hidden
    layer when it is also below that share of the best output-ReLU readout's (the control without a
    hidden nonlinearity, which solves AND exactly). Neuron k serves a computed function when zeroing
    it adds at least ``ablation_threshold`` of the affine readout's error, on the same inputs."""
    real = real_inputs(weights, function, p, importance, rng, budget, linear)
    device = real.error.device
    ps = p.tolist()
    column = lambda values: torch.tensor(values, dtype=torch.float32, device=device).view(-1, 1)  # noqa: E731
    variance = column([q * function.mean_square - (q * function.mean) ** 2 for q in ps])
    affine = column([affine_error(function, q) for q in ps])
    control = column([control_error(function, q) for q in ps])
    computed = real.error < COMPUTED_SHARE * affine
    alone = probe(weights["W1"], weights["W2"], weights["b"], weights.get("c"), function, linear)
    drop = (real.ablated - real.error.unsqueeze(-1)) / affine.unsqueeze(-1)
    serves = (drop >= ablation_threshold.view(-1, 1, 1)) & computed.unsqueeze(-1)
    return Judged(real, variance, affine, control, 1.0 - real.error / affine, computed,
                  computed & (real.error < COMPUTED_SHARE * control), alone, alone.beyond_linear > COMPUTED_SHARE,
                  serves)


class Compute(ComputeKind, ToyModel):
    def __init__(self, hp: Hyper, rng: CounterRNG):
        super().__init__(hp, rng)
        self.function = FUNCTIONS[hp.value("function")]
        self.n = hp.value("n_features")
        self.m = hp.value("n_hidden")
        self.linear = hp.value("hidden_activation") == "linear"
        count = len(hp)
        self.p = hp.tensor("feature_probability").view(count, 1, 1)
        self.importance = importance(hp.tensor("importance_decay"), self.n).unsqueeze(1)
        self._x = torch.empty(count, hp.value("batch_size"), self.n * self.function.arity, device=hp.device)
        self._judged: tuple[list[tuple[str, torch.Tensor, int]], Judged] | None = None

    def init_weights(self) -> dict[str, torch.Tensor]:
        W1, W2 = init_two_layers(self.rng, self.n * self.function.arity, self.m, self.n, self.hp.value("w2_init"),
                                 self.function.arity)
        weights = {"W1": W1, "W2": W2, "b": torch.zeros(len(self.hp), self.n, device=self.hp.device)}
        if self.hp.value("hidden_bias"):
            weights["c"] = torch.zeros(len(self.hp), self.m, device=self.hp.device)
        return weights

    def _forward(self, weights: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        if not self.linear:
            return two_layer_forward(weights["W1"], weights["W2"], weights["b"], x, weights.get("c"))
        c = weights.get("c")
        h = torch.bmm(x, weights["W1"]) if c is None else torch.baddbmm(c.unsqueeze(1), x, weights["W1"])
        return torch.relu(torch.baddbmm(weights["b"].unsqueeze(1), h, weights["W2"]))

    def _weighted_mse(self, weights: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        y = self._forward(weights, x)
        target = self.function.target(x.view(*x.shape[:2], self.n, self.function.arity))
        return (self.importance * (target - y).square()).mean((1, 2))

    def loss(self, weights: dict[str, torch.Tensor], step: int) -> torch.Tensor:
        x = sparse_inputs_(self.rng, DATA, step, self.p, self._x, self.function)
        return self._weighted_mse(weights, x)

    @torch.no_grad()
    def eval_loss(self, weights: dict[str, torch.Tensor]) -> torch.Tensor:
        """The stratified estimate on the training distribution (``loss_se`` is its standard error)."""
        return self._judge(weights).real.loss

    def trivial_loss(self) -> torch.Tensor:
        """Loss of the best constant output c_i = E f_i = p mean: mean_i I_i Var(f_i), Var = p s - p^2 mean^2."""
        p = self.p.view(-1, 1)
        variance = p * self.function.mean_square - p.square() * self.function.mean ** 2
        return (self.importance.squeeze(1) * variance).mean(-1)

    def _judge(self, weights: dict[str, torch.Tensor]) -> Judged:
        """Every judgement of the final weights, once (eval_loss, metrics and feature_metrics share it)."""
        # The cache holds the tensors themselves (no reused id can match) and their in-place versions.
        key = [(name, tensor, tensor._version) for name, tensor in sorted(weights.items())]
        if self._judged is None or len(key) != len(self._judged[0]) or any(
                a[0] != b[0] or a[1] is not b[1] or a[2] != b[2] for a, b in zip(key, self._judged[0], strict=True)):
            self._judged = (key, judge(weights, self.function, self.p.view(-1), self.importance.squeeze(1),
                                       self.hp.tensor("ablation_threshold"), self.rng,
                                       self.hp.value("eval_batch_size"), self.linear))
        return self._judged[1]

    @torch.no_grad()
    def metrics(self, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        judged = self._judge(weights)
        computed, serves = judged.computed, judged.serves
        n_computed = computed.sum(-1)
        per_neuron = serves.sum(-2)  # (I, m): computed functions each neuron serves
        per_function = serves.sum(-1).to(torch.float32)  # (I, n)
        mean_per_function = (per_function * computed).sum(-1) / n_computed.clamp_min(1)
        drive = input_drive(weights["W1"], self.function.arity)
        privileged = self._privileged()
        return {
            "loss_se": judged.real.loss_se,
            "functions_computed": n_computed,
            "functions_computed_hidden": judged.computed_hidden.sum(-1),
            "functions_computed_alone": judged.computed_alone.sum(-1),
            "functions_per_neuron": n_computed / self.m,
            "neurons_per_function": M.where_privileged(
                torch.where(n_computed > 0, mean_per_function, torch.full_like(mean_per_function, math.nan)),
                privileged),
            "neurons_used": M.where_privileged((per_neuron >= 1).sum(-1), privileged),
            "polysemantic_neurons": M.where_privileged((per_neuron >= 2).sum(-1), privileged),
            "monosemantic_neurons": M.where_privileged(M.monosemantic_neurons(drive), privileged),
            "mean_neuron_monosemanticity": M.where_privileged(M.neuron_monosemanticity(drive).mean(-1), privileged),
            "trivial_loss": self.trivial_loss(),
        }

    def _privileged(self) -> torch.Tensor:
        """(I,) whether the hidden layer has a privileged basis: not when it is linear (the control),
        where any rotation of it is an equally good solution, so neuron counts are left empty."""
        return torch.tensor([self.neuron_sense(c) is not None for c in self.hp.configs], device=self.hp.device)

    @torch.no_grad()
    def feature_metrics(self, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        judged = self._judge(weights)
        return {
            "error": judged.real.error,
            "error_se": judged.real.error_se,
            "affine_error": judged.affine.expand_as(judged.real.error),
            "control_error": judged.control.expand_as(judged.real.error),
            "explained": 1.0 - judged.real.error / judged.variance,
            "beyond_linear": judged.beyond_linear,
            "wrong_rate": judged.real.wrong,
            "beyond_linear_alone": judged.alone.beyond_linear,
            "computed": judged.computed.to(torch.int64),
            "computed_hidden": judged.computed_hidden.to(torch.int64),
            "computed_alone": judged.computed_alone.to(torch.int64),
            "neurons": torch.where(self._privileged().unsqueeze(-1), judged.serves.sum(-1).to(torch.float32),
                                   math.nan),
            "norm": input_drive(weights["W1"], self.function.arity).norm(dim=-1),
            "bias": weights["b"],
            "importance": self.importance.squeeze(1),
        }
