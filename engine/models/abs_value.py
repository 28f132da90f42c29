"""Computation in superposition (Elhage et al. 2022): learn y = |x| through h = ReLU(W1 x), y = ReLU(W2 h + b).

Data: each feature is 0 with probability 1 - p, else uniform on [-1, 1). The
target is |x|, the loss the importance-weighted MSE, averaged over batch and
features. W1 (stored (I, n, m), like W elsewhere: row i is feature i's input
weights, column n is neuron n) and W2 (stored (I, m, n)) are separate trainable
matrices; b is the output bias. There is no hidden bias, as in the paper.

Initialisation (``w2_init``). W1 is xavier-normal per instance (fan n + m).
``independent`` (the default) draws W2 the same way, independently: the standard
init, which the public tutorials use (the paper does not spell its init out). Then output i starts with a random sign of
response to its own feature, and with sparse inputs an output whose response is
negative for both signs of x_i gets no gradient ever again (the output ReLU is off
whenever it would learn): some features are never learned at low density.
``matched`` starts W2 = |W1|^T instead, so every output starts alive on both sides
of its own feature (W1 and W2 then train separately); it computes more sides at low
density, so it is an option to name, never a silent default.

Which features does the model compute? W1's norms say little (a hidden unit can
be scaled by a in W1 and 1/a in W2 at no cost), so we judge by behaviour, with
one feature active at a time on a fixed symmetric grid of x_i in [-1, 1]:
R_i = 1 - mean_t (y_i(t e_i) - |t|)^2 / Var(|t|), Var = 1/12. R_i = 1 for an exact
|x_i|, R_i <= 0 for any constant output (the trivial predictor), and the best
one-sided circuit (one neuron, ReLU(x_i) only) reaches exactly 0.2. A feature is
computed (``features_represented``) when R_i > 0.5, which needs both signs. The
same ratio over x_i < 0 or x_i > 0 alone scores each side; ``sides_computed``
counts the sides above 0.5 (out of 2n). The probe is deterministic (no sampling
noise at low density) and ignores interference from other active features, which
is rare in the sparse regime; the loss column measures that interference.

Without superposition a neuron reads one feature, so it fires for one sign of
it and computes at most one side: m neurons compute at most m sides (m/2 whole
features). ``sides_per_neuron`` = sides_computed / m above 1 is therefore
computation in superposition (the paper, n=100 and m=40: more features than
neurons once sparse). Features with at least one side computed number
sides_computed - features_represented. Neuron metrics are on W1 (the ReLU on h
gives it a privileged basis): neuron n carries feature i if a side of i is
computed and |W1_i,n| >= carry_threshold * ||W1_i||. Both signs count, because
the inputs take both signs: a negative weight fires the neuron for x_i < 0.
"""

from __future__ import annotations

import torch

from toysup.engine import metrics as M
from toysup.engine.data import importance
from toysup.engine.estimator import DataLaw, Estimate, estimate
from toysup.engine.kinds.abs_value import PROBE_POINTS, AbsValueKind
from toysup.engine.models.base import Hyper, ToyModel
from toysup.engine.rng import DATA, INIT, CounterRNG

COMPUTED_EXPLAINED = 0.5  # a feature is computed if, alone, its output explains > 50% of Var(|x_i|)
ABS_VARIANCE = 1.0 / 12.0  # Var(|t|) for t uniform on [-1, 1]


def sparse_symmetric_(rng: CounterRNG, stream: int, step: int, p: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Fill ``out`` (I, B, n) with features that are 0 with probability 1 - p, else uniform on [-1, 1).

    As in :func:`engine.data.sparse_uniform_`, one uniform u per element: active iff
    u < p, and then 2 u / p - 1 is uniform on [-1, 1).
    """
    rng.uniform_(stream, step, out)
    inactive = out >= p
    return out.div_(p).mul_(2.0).sub_(1.0).masked_fill_(inactive, 0.0)


def probe_inputs(n: int, points: int = PROBE_POINTS, device: torch.device | str = "cpu") -> tuple[torch.Tensor,
                                                                                                  torch.Tensor]:
    """Inputs with one feature active at a time: (n * points, n) rows t e_i, and the grid t (points,).

    The grid is the midpoints of ``points`` equal cells of [-1, 1], so means over it
    approximate the uniform distribution's expectations.
    """
    t = (torch.arange(points, device=device, dtype=torch.float32) + 0.5) * (2.0 / points) - 1.0
    x = torch.zeros(n, points, n, device=device)
    idx = torch.arange(n, device=device)
    x[idx, :, idx] = t
    return x.view(n * points, n), t


def explained_by_sign(W1: torch.Tensor, W2: torch.Tensor, b: torch.Tensor,
                      points: int = PROBE_POINTS) -> torch.Tensor:
    """Explained variance of each half of |x_i| with x_i alone active, shape (I, n, 2): [..., 0] over
    x_i < 0, [..., 1] over x_i > 0. Both halves of |t| have variance 1/12, like the whole, so
    R_i is the mean of the two; a one-sided circuit (exact ReLU(x_i), zero for x_i < 0) scores 1 and -3.
    """
    count, n, _ = W1.shape
    x, t = probe_inputs(n, points, W1.device)
    y = two_layer_forward(W1, W2, b, x.expand(count, -1, -1)).view(count, n, points, n)
    idx = torch.arange(n, device=W1.device)
    own = y[:, idx, :, idx].transpose(0, 1)  # (I, n, points): output i with input i alone
    sq = (own - t.abs()).square().view(count, n, 2, points // 2)  # the grid is symmetric: first half t < 0
    return 1.0 - sq.mean(-1) / ABS_VARIANCE


def explained_alone(W1: torch.Tensor, W2: torch.Tensor, b: torch.Tensor, points: int = PROBE_POINTS) -> torch.Tensor:
    """R_i = 1 - mean_t (y_i(t e_i) - |t|)^2 / Var(|t|) per instance and feature, shape (I, n)."""
    return explained_by_sign(W1, W2, b, points).mean(-1)


def computed_carried(W1: torch.Tensor, computed: torch.Tensor, threshold: torch.Tensor | float) -> torch.Tensor:
    """Boolean (I, n, m): neuron n carries feature i if ``computed[i]`` and |W1_i,n| >= threshold * ||W1_i||."""
    if isinstance(threshold, torch.Tensor):
        threshold = threshold.view(-1, 1, 1)
    strong = W1.abs() >= threshold * M.feature_norms(W1).unsqueeze(-1)
    return strong & computed.unsqueeze(-1)


def two_layer_forward(W1: torch.Tensor, W2: torch.Tensor, b: torch.Tensor, x: torch.Tensor,
             c: torch.Tensor | None = None) -> torch.Tensor:
    """y = ReLU(W2 ReLU(W1 x + c) + b); no hidden bias ``c`` (this model's case) is plain W1 x."""
    h = torch.relu(torch.bmm(x, W1) if c is None else torch.baddbmm(c.unsqueeze(1), x, W1))
    return torch.relu(torch.baddbmm(b.unsqueeze(1), h, W2))


def input_drive(W1: torch.Tensor, arity: int = 1) -> torch.Tensor:
    """How strongly each output's inputs drive each neuron, (I, n_out, m): |W1_i,n| for one input per
    output, the norm of the ``arity`` input weights of output i into neuron n otherwise."""
    if arity == 1:
        return W1.abs()
    count, n_in, m = W1.shape
    return W1.view(count, n_in // arity, arity, m).norm(dim=2)


def init_two_layers(rng: CounterRNG, n_in: int, m: int, n_out: int, w2_init: str,
                    arity: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """W1 (I, n_in, m) and W2 (I, m, n_out), xavier-normal per instance and matrix (the fan is the
    matrix's, never the instance count); ``matched`` sets W2 to the transposed input drive instead."""
    W1 = rng.normal(INIT, 0, (n_in, m)).mul_((2.0 / (n_in + m)) ** 0.5)
    if w2_init == "matched":
        return W1, input_drive(W1, arity).transpose(1, 2).contiguous()
    return W1, rng.normal(INIT, 1, (m, n_out)).mul_((2.0 / (m + n_out)) ** 0.5)


class AbsValue(AbsValueKind, ToyModel):
    def __init__(self, hp: Hyper, rng: CounterRNG):
        super().__init__(hp, rng)
        self.n = hp.value("n_features")
        self.m = hp.value("n_hidden")
        count = len(hp)
        self.p = hp.tensor("feature_probability").view(count, 1, 1)
        self.importance = importance(hp.tensor("importance_decay"), self.n).unsqueeze(1)
        self._x = torch.empty(count, hp.value("batch_size"), self.n, device=hp.device)

    def init_weights(self) -> dict[str, torch.Tensor]:
        W1, W2 = init_two_layers(self.rng, self.n, self.m, self.n, self.hp.value("w2_init"))
        b = torch.zeros(len(self.hp), self.n, device=self.hp.device)
        return {"W1": W1, "W2": W2, "b": b}

    def _weighted_mse(self, weights: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        y = two_layer_forward(weights["W1"], weights["W2"], weights["b"], x)
        return (self.importance * (x.abs() - y).square()).mean((1, 2))

    def loss(self, weights: dict[str, torch.Tensor], step: int) -> torch.Tensor:
        x = sparse_symmetric_(self.rng, DATA, step, self.p, self._x)
        return self._weighted_mse(weights, x)

    @torch.no_grad()
    def _estimate(self, weights: dict[str, torch.Tensor]) -> Estimate:
        """E[loss] by engine/estimator.py: the same sparse data (independent features, values uniform on
        [-1, 1)), so the same strata; no ablation here. Cached per final weights."""
        cached = getattr(self, "_estimate_cache", None)
        if cached is not None and cached[0] is weights["W1"]:
            return cached[1]
        count = len(self.hp)
        importance = self.importance.squeeze(1)

        def evaluate(x: torch.Tensor) -> tuple[torch.Tensor, None]:
            y = two_layer_forward(weights["W1"], weights["W2"], weights["b"], x)
            return M.sample_losses(x.abs(), y, importance), None

        law = DataLaw(self.p.view(count, 1).expand(count, self.n), "none", "symmetric")
        est = estimate(law, evaluate, self.rng, self.hp.value("eval_batch_size"))
        self._estimate_cache = (weights["W1"], est)
        return est

    def eval_loss(self, weights: dict[str, torch.Tensor]) -> torch.Tensor:
        return self._estimate(weights).loss.to(torch.float32)

    def trivial_loss(self) -> torch.Tensor:
        """Loss of the best constant output c_i = E|x_i| = p/2: mean_i I_i Var(|x_i|), Var = p/3 - p^2/4."""
        p = self.p.view(-1, 1)
        return (self.importance.squeeze(1) * (p / 3.0 - p.square() / 4.0)).mean(-1)

    @torch.no_grad()
    def metrics(self, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        W1 = weights["W1"]
        sides = explained_by_sign(W1, weights["W2"], weights["b"])
        side_ok = sides > COMPUTED_EXPLAINED
        carried = computed_carried(W1, side_ok.any(-1), self.hp.tensor("carry_threshold"))
        n_computed = (sides.mean(-1) > COMPUTED_EXPLAINED).sum(-1)
        n_sides = side_ok.sum((-2, -1))
        return {
            "features_represented": n_computed,
            "sides_computed": n_sides,
            "sides_per_neuron": n_sides / self.m,
            "monosemantic_neurons": M.monosemantic_neurons(W1),
            "polysemantic_neurons": (carried.sum(-2) >= 2).sum(-1),
            "mean_neuron_monosemanticity": M.neuron_monosemanticity(W1, "magnitude").mean(-1),
            "trivial_loss": self.trivial_loss(),
            "loss_se": self._estimate(weights).loss_se.to(torch.float32),
        }

    @torch.no_grad()
    def feature_metrics(self, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        sides = explained_by_sign(weights["W1"], weights["W2"], weights["b"])
        return {
            "explained": sides.mean(-1),
            "explained_neg": sides[..., 0],
            "explained_pos": sides[..., 1],
            "norm": M.feature_norms(weights["W1"]),
            "bias": weights["b"],
            "importance": self.importance.squeeze(1),
        }
