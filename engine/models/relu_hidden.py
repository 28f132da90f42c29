"""The ReLU hidden-layer ("neuron") model of Elhage et al. (2022): h = ReLU(W x), x' = ReLU(W^T h + b).

Same data, parameters and metrics as the ReLU output model; the ReLU on h gives
the hidden layer a privileged basis, so W's columns are neurons and it makes
sense to ask whether each neuron carries one feature (monosemantic) or several.
Dropout, when set, acts on h after its ReLU, exactly as in the output model.

``mean_neuron_monosemanticity`` is the mean over neurons of max_i |W_n,i| / ||W_n||
(1 = every neuron reads one feature; 1/sqrt(n) = a neuron reading all features
equally); the full neuron-by-feature weights are in the run's weights files.
``dead_neurons`` counts neurons that can never fire: with non-negative inputs and
no hidden bias, a neuron fires only if some feature has a positive weight into it.
"""

from __future__ import annotations

import torch

from engine import metrics as M
from engine.models.base import Column
from engine.models.relu_output import SUPERPOSITION_COLUMNS, ReluOutput

DEAD_WEIGHT = 1e-3  # a neuron whose largest incoming weight is below this never fires (inputs are in [0, 1))


def neuron_monosemanticity(W: torch.Tensor) -> torch.Tensor:
    """max_i |W_n,i| / ||W_n|| per neuron, shape (I, m); 0 for an all-zero neuron.

    ``W`` is (I, n, m): column n holds neuron n's weights, one per feature.
    """
    col_norms = W.norm(dim=-2)
    ratio = W.abs().amax(-2) / col_norms.clamp_min(M.EPS)
    return torch.where(col_norms > M.EPS, ratio, torch.zeros_like(ratio))


def dead_neurons(W: torch.Tensor) -> torch.Tensor:
    """Neurons with no positive incoming weight, shape (I,): ReLU(W x) is 0 for every x >= 0."""
    return (W.amax(-2) < DEAD_WEIGHT).sum(-1)


class ReluHidden(ReluOutput):
    kind = "relu_hidden"
    summary = "h = ReLU(W x), x' = ReLU(W^T h + b): features compete for neurons (Elhage et al. 2022)"
    columns = (
        *SUPERPOSITION_COLUMNS,
        Column("mean_neuron_monosemanticity", "mean over neurons of max_i |W_n,i| / ||W_n|| (1 = all monosemantic)"),
        Column("dead_neurons", "neurons with no positive incoming weight: they never fire", "int"),
    )

    hidden_relu = True  # h = ReLU(W x): ReluOutput's forward, backward and metrics honour the flag

    @torch.no_grad()
    def metrics(self, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        W = weights["W"]
        return {
            **super().metrics(weights),
            "mean_neuron_monosemanticity": neuron_monosemanticity(W).mean(-1),
            "dead_neurons": dead_neurons(W),
        }
