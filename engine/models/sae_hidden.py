"""Sparse autoencoders on a toy model's hidden activations: the two-stage experiment that the
comments on Sharkey, Braun & Millidge (2022) asked for, with a ground truth that a trained
network chose instead of one drawn at random.

Each instance first trains its own ReLU output model (engine/models/relu_output.py, the same
class and step: n features in m dimensions, feature_probability, importance_decay) for
``toy_steps`` steps of Adam at ``toy_lr``, then trains an SAE (engine/models/sae.py, the same
class and fused step) for ``steps`` on the toy model's hidden activations h = W x. Both stages
are vectorised over the chunk and a pure function of the instance's seed: the toy model is
the one a ``relu_output`` run with the same seed and settings trains, so every l1 and
dictionary size of one seed sees the same toy model (trained once per distinct toy config in a chunk).

The SAE's ground truth is the toy model's W (n rows, one feature direction per row, not
renormalised: h = x W is exactly the toy model's hidden layer), frozen and saved with the toy
bias ``toy_b``. Its data continues the toy model's data stream: SAE step s draws the inputs of
step toy_steps + s, so the SAE never trains on the samples the toy model was trained on. The
evaluation batch is the toy model's (stream EVAL, step 0).

Scoring: MMCS is taken over the features the toy model represents, by relu_output's own rule
(mean-ablating the feature raises the toy model's loss by more than 10% of its constant-output
loss): a feature the toy model dropped has no direction of its own in h to recover. Live latents,
chance and the recovered cut are sae's (engine/models/sae.py), in the n_hidden-dimensional space.

The toy stage runs inside ``init_weights``, before the trainer's step loop: its progress is not
reported and a stop request is honoured once it is over (seconds at the preset's size).
"""

from __future__ import annotations

import torch

from toysup.engine.kinds.sae_hidden import SaeHiddenKind, toy_config
from toysup.engine.models.base import Hyper
from toysup.engine.models.relu_output import ReluOutput
from toysup.engine.models.sae import SparseAutoencoder, max_cosine
from toysup.engine.optim import BatchedOptimizer
from toysup.engine.rng import CounterRNG


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
        # One toy model per distinct toy config (in a sweep over l1 and dict_ratio, one per seed): the
        # instances that share it share its training, which is a pure function of that config.
        configs = [toy_config(c) for c in hp.configs]
        keys = [tuple(sorted(c.items())) for c in configs]
        first = {key: i for i, key in reversed(list(enumerate(keys)))}
        distinct = list(dict.fromkeys(keys))
        self._toy_of = torch.tensor([distinct.index(k) for k in keys], device=hp.device)  # instance -> toy
        self._toy_rep = torch.tensor([first[k] for k in distinct], device=hp.device)  # toy -> an instance
        unique = [configs[first[k]] for k in distinct]
        self.toy = ReluOutput(Hyper(unique, hp.device),
                              CounterRNG(torch.tensor([c["seed"] for c in unique]), hp.device))
        self.toy_steps = hp.value("toy_steps")
        self.data_offset = self.toy_steps

    @staticmethod
    def code_probability(hp: Hyper) -> torch.Tensor:
        return hp.tensor("feature_probability")

    def ground_truth(self) -> dict[str, torch.Tensor]:
        """The trained toy model: W (n, m) as the ground truth, and its bias."""
        toy = train_toy(self.toy, self.toy_steps)
        return {"ground_truth": toy["W"][self._toy_of], "toy_b": toy["b"][self._toy_of]}

    # --- scoring ----------------------------------------------------------------------------

    def _represented(self, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """relu_output's representation of the frozen toy models, computed once per distinct toy model
        and per final weights, then given to each instance."""
        cached = getattr(self, "_represent_cache", None)
        if cached is not None and cached[0] is weights["ground_truth"]:
            return cached[1]
        toys = {"W": weights["ground_truth"][self._toy_rep], "b": weights["toy_b"][self._toy_rep]}
        out = {k: v[self._toy_of] for k, v in self.toy._representation(toys).items()}
        self._represent_cache = (weights["ground_truth"], out)
        return out

    def _masked_mmcs(self, best: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """MMCS over the represented features (mask (I, n)) of per-feature max cosines (I, n); NaN where
        no feature is represented or no latent is live."""
        count = mask.sum(-1)
        mean = (best * mask).nan_to_num(0.0).sum(-1) / count.clamp_min(1)
        return torch.where((count > 0) & ~best.isnan().all(-1), mean, float("nan"))

    def curve_values(self, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        best = max_cosine(weights["ground_truth"], weights["W_dec"], self._recently_live())[0]
        mask = self._represented(weights)["mask"]
        return {**super().curve_values(weights), "mmcs": self._masked_mmcs(best, mask)}

    @torch.no_grad()
    def metrics(self, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        ev, rec = self._evaluate(weights), self._recovery(weights)
        mask = self._represented(weights)["mask"]
        dead = (~ev["live"]).sum(-1)
        return {
            "mmcs": self._masked_mmcs(rec["best"], mask),
            "mmcs_chance": rec["chance"],
            "features_recovered": (rec["recovered"] & mask).sum(-1),
            "recovery_cosine": rec["cut"],
            "toy_features_represented": mask.sum(-1),
            "dead_latents": dead,
            "l0": ev["l0"],
            "reconstruction_mse": ev["mse"],
            "normalised_mse": ev["mse"] / ev["signal"].clamp_min(1e-12),
            "n_latents": torch.full_like(dead, self.L),
            "toy_loss": self._represented(weights)["loss"],
        }

    @torch.no_grad()
    def feature_metrics(self, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        represented = self._represented(weights)["mask"]
        features = super().feature_metrics(weights)
        return {**features, "recovered": features["recovered"] * represented,
                "represented": represented.to(torch.int64),
                "toy_norm": weights["ground_truth"].norm(dim=-1)}
