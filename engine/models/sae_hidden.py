"""Sparse autoencoders on a toy model's hidden activations: the two-stage experiment that the
comments on Sharkey, Braun & Millidge (2022) asked for, with a ground truth that a trained
network chose instead of one drawn at random.

Each instance first trains its own ReLU output model (engine/models/relu_output.py, the same
class and step: n features in m dimensions, feature_probability, importance_decay) for
``toy_steps`` steps of Adam at ``toy_lr``, then trains an SAE (engine/models/sae.py, the same
class and fused step) for ``steps`` on the toy model's hidden activations h = W x. Both stages
are vectorised over the chunk and a pure function of the instance's seed: the toy model is
the one a ``relu_output`` run with the same seed and settings trains, so every l1 and
dictionary size of one seed sees the same toy model.

The SAE's ground truth is the toy model's W (n rows, one feature direction per row, not
renormalised: h = x W is exactly the toy model's hidden layer), frozen and saved with the toy
bias ``toy_b``. Its data continues the toy model's data stream: SAE step s draws the inputs of
step toy_steps + s, so the SAE never trains on the samples the toy model was trained on. The
evaluation batch is the toy model's (stream EVAL, step 0).

Scoring: MMCS is taken over the features the toy model represents, by relu_output's own rule
(mean-ablating the feature raises the toy model's loss by more than 10% of its constant-output
loss): a feature the toy model dropped has no direction of its own in h to recover.

The toy stage runs inside ``init_weights``, before the trainer's step loop: its progress is not
reported and a stop request is honoured once it is over (seconds at the preset's size).
"""

from __future__ import annotations

import torch

from engine.models.base import Hyper
from engine.models.kinds.sae_hidden import SaeHiddenKind, toy_config
from engine.models.relu_output import ReluOutput
from engine.models.sae import RECOVERED_COSINE, SparseAutoencoder, code_stats, max_cosine
from engine.optim import BatchedOptimizer
from engine.rng import CounterRNG


def train_toy(toy: ReluOutput, steps: int) -> dict[str, torch.Tensor]:
    """Train the toy models of a chunk from their seeds' initial weights: relu_output's step and
    BatchedOptimizer, as the trainer would; an instance whose loss stops being finite is frozen."""
    weights = toy.init_weights()
    optimizer = BatchedOptimizer(toy.hp.value("optimizer"), weights, toy.hp.tensor("lr"),
                                 toy.hp.tensor("weight_decay"))
    diverged = torch.zeros(len(toy.hp), dtype=torch.bool, device=toy.hp.device)
    for step in range(1, steps + 1):
        loss, grads = toy.loss_and_grads(weights, step)
        diverged |= ~torch.isfinite(loss)
        optimizer.step(grads, diverged)
    return weights


class SaeHidden(SaeHiddenKind, SparseAutoencoder):
    def __init__(self, hp: Hyper, rng: CounterRNG):
        super().__init__(hp, rng)
        self.toy = ReluOutput(Hyper([toy_config(c) for c in hp.configs], hp.device), rng)
        self.toy_steps = hp.value("toy_steps")
        self.data_offset = self.toy_steps

    @staticmethod
    def code_probability(hp: Hyper) -> torch.Tensor:
        return hp.tensor("feature_probability")

    def ground_truth(self) -> dict[str, torch.Tensor]:
        """The trained toy model: W (n, m) as the ground truth, and its bias."""
        toy = train_toy(self.toy, self.toy_steps)
        return {"ground_truth": toy["W"], "toy_b": toy["b"]}

    # --- scoring ----------------------------------------------------------------------------

    def _represented(self, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """relu_output's representation of the frozen toy model (cached there per W tensor)."""
        return self.toy._representation({"W": weights["ground_truth"], "b": weights["toy_b"]})

    def _masked_mmcs(self, weights: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(mmcs over represented features (NaN where none), per-feature max cosine, represented mask)."""
        best = max_cosine(weights["ground_truth"], weights["W_dec"])[0]
        mask = self._represented(weights)["mask"]
        count = mask.sum(-1)
        mean = (best * mask).sum(-1) / count.clamp_min(1)
        return torch.where(count > 0, mean, float("nan")), best, mask

    def curve_values(self, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {**super().curve_values(weights), "mmcs": self._masked_mmcs(weights)[0]}

    @torch.no_grad()
    def metrics(self, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        mmcs, best, mask = self._masked_mmcs(weights)
        _, mse, c, x = self._eval(weights)
        dead, l0 = code_stats(c)
        return {
            "mmcs": mmcs,
            "features_recovered": ((best > RECOVERED_COSINE) & mask).sum(-1),
            "toy_features_represented": mask.sum(-1),
            "dead_latents": dead,
            "l0": l0,
            "reconstruction_mse": mse,
            "normalised_mse": mse / x.square().mean((1, 2)).clamp_min(1e-12),
            "n_latents": torch.full_like(dead, self.L),
            "toy_loss": self._represented(weights)["loss"],
        }

    @torch.no_grad()
    def feature_metrics(self, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {**super().feature_metrics(weights),
                "represented": self._represented(weights)["mask"].to(torch.int64),
                "toy_norm": weights["ground_truth"].norm(dim=-1)}
