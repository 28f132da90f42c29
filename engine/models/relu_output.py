"""The ReLU output model of Elhage et al. (2022): h = W x, x' = ReLU(W^T h + b).

Optional dropout on h during training (the privileged-basis experiment): each
hidden unit is zeroed with probability q and the survivors are scaled by
1/(1-q), as torch's dropout does, so evaluation needs no rescaling.
"""

from __future__ import annotations

from typing import Any

import torch

from engine import metrics as M
from engine.data import importance, sparse_uniform_
from engine.errors import SpecError
from engine.models.base import Column, Hyper, ToyModel
from engine.params import SUPERPOSITION_PARAMS, Param
from engine.rng import DATA, DROPOUT, EVAL, INIT, CounterRNG

SUPERPOSITION_COLUMNS: tuple[Column, ...] = (
    Column("loss", "final importance-weighted MSE on a fresh evaluation batch (no dropout)"),
    Column("features_represented", "features with ||W_i|| > 0.5", "int"),
    Column("dims_per_feature", "D* = m / ||W||_F^2"),
    Column("orientation_angle_deg", "angle between the largest-norm feature and its nearest hidden axis"),
    Column("axis_alignment", "max_j |u_j| for u the largest-norm feature's unit direction"),
    Column("polysemantic_neurons", "neurons carrying 2+ represented features (|W_n,i| >= carry_threshold ||W_i||)",
           "int"),
    Column("monosemantic_neurons", "neurons with max_i |W_n,i| / ||W_n|| > 0.99", "int"),
    Column("max_feature_norm", "largest ||W_i||"),
    Column("collapsed", "largest ||W_i|| below 0.5: nothing represented, so orientation means nothing", "bool"),
)

FEATURE_COLUMNS: tuple[Column, ...] = (
    Column("norm", "||W_i||"),
    Column("dimensionality", "D_i = ||W_i||^2 / sum_j (W^_i . W_j)^2"),
    Column("interference", "sum_{j != i} (W^_i . W_j)^2"),
    Column("bias", "b_i"),
    Column("importance", "importance_decay ** i"),
)


def superposition_metrics(W: torch.Tensor, carry_threshold: torch.Tensor) -> dict[str, torch.Tensor]:
    """The shared per-instance metrics of a (I, n, m) embedding matrix."""
    alignment, angle = M.orientation(W)
    max_norm = M.feature_norms(W).amax(-1)
    return {
        "features_represented": M.features_represented(W),
        "dims_per_feature": M.dims_per_feature(W),
        "orientation_angle_deg": angle,
        "axis_alignment": alignment,
        "polysemantic_neurons": M.polysemantic_neurons(W, carry_threshold),
        "monosemantic_neurons": M.monosemantic_neurons(W),
        "max_feature_norm": max_norm,
        "collapsed": max_norm < M.REPRESENTED_NORM,
    }


class ReluOutput(ToyModel):
    kind = "relu_output"
    summary = "h = W x, x' = ReLU(W^T h + b), importance-weighted MSE (Elhage et al. 2022)"
    params = (
        *SUPERPOSITION_PARAMS,
        Param("dropout", "float", 0.0, "dropout rate q on h in training; survivors scaled by 1/(1-q)",
              low=0.0, high=1.0, high_open=True),
    )
    columns = SUPERPOSITION_COLUMNS
    feature_columns = FEATURE_COLUMNS
    relu = True

    def __init__(self, hp: Hyper, rng: CounterRNG):
        super().__init__(hp, rng)
        self.n = hp.value("n_features")
        self.m = hp.value("n_hidden")
        self.batch = hp.value("batch_size")
        count = len(hp)
        self.p = hp.tensor("feature_probability").view(count, 1, 1)
        self.importance = importance(hp.tensor("importance_decay"), self.n).unsqueeze(1)
        self.q = hp.tensor("dropout").view(count, 1, 1)
        self.uses_dropout = any(c["dropout"] > 0 for c in hp.configs)
        self._x = torch.empty(count, self.batch, self.n, device=hp.device)

    @classmethod
    def check(cls, config: dict[str, Any]) -> None:
        if config["batch_size"] * config["n_features"] >= 2**31:
            raise SpecError("batch_size * n_features must stay below 2**31 values per instance and step")

    @classmethod
    def bytes_per_instance(cls, config: dict[str, Any]) -> int:
        n, m = config["n_features"], config["n_hidden"]
        train = config["batch_size"] * (10 * n + 6 * m)
        evaluate = config["eval_batch_size"] * (5 * n + 2 * m)
        return 4 * (max(train, evaluate) + 8 * n * m + 4 * n)

    def init_weights(self) -> dict[str, torch.Tensor]:
        # Xavier-normal per instance: the fan is n + m, never the instance count.
        std = (2.0 / (self.n + self.m)) ** 0.5
        W = self.rng.normal(INIT, 0, (self.n, self.m)).mul_(std)
        b = torch.zeros(len(self.hp), self.n, device=self.hp.device)
        return {"W": W, "b": b}

    def _forward(self, weights: dict[str, torch.Tensor], x: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
        W, b = weights["W"], weights["b"]
        h = torch.bmm(x, W)
        if keep is not None:
            h = h * keep
        out = torch.baddbmm(b.unsqueeze(1), h, W.transpose(1, 2))
        return torch.relu(out) if self.relu else out

    def _weighted_mse(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        return (self.importance * (x - out).square()).mean((1, 2))

    def loss(self, weights: dict[str, torch.Tensor], step: int) -> torch.Tensor:
        x = sparse_uniform_(self.rng, DATA, step, self.p, self._x)
        keep = None
        if self.uses_dropout:
            u = self.rng.uniform(DROPOUT, step, (self.batch, self.m))
            keep = (u >= self.q) / (1.0 - self.q)
        return self._weighted_mse(x, self._forward(weights, x, keep))

    @torch.no_grad()
    def eval_loss(self, weights: dict[str, torch.Tensor]) -> torch.Tensor:
        x = torch.empty(len(self.hp), self.hp.value("eval_batch_size"), self.n, device=self.hp.device)
        x = sparse_uniform_(self.rng, EVAL, 0, self.p, x)
        return self._weighted_mse(x, self._forward(weights, x, None))

    @torch.no_grad()
    def metrics(self, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return superposition_metrics(weights["W"], self.hp.tensor("carry_threshold"))

    @torch.no_grad()
    def feature_metrics(self, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        W = weights["W"]
        return {
            "norm": M.feature_norms(W),
            "dimensionality": M.feature_dimensionality(W),
            "interference": M.interference(W),
            "bias": weights["b"],
            "importance": self.importance.squeeze(1),
        }

