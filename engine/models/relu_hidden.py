"""The ReLU hidden-layer ("neuron") model of Elhage et al. (2022): h = ReLU(W x), x' = ReLU(W^T h + b).

Same data, parameters and metrics as the ReLU output model; the ReLU on h gives
the hidden layer a privileged basis, so W's columns are neurons and it makes
sense to ask whether each neuron carries one feature (monosemantic) or several.
Dropout, when set, acts on h after its ReLU, exactly as in the output model.

Neuron metrics count signs: the inputs are non-negative, so feature i drives
neuron n only through a positive weight (a negative one can only hold the
neuron off). A neuron with one positive and one negative feature fires for one
feature only: it is not polysemantic. ``mean_neuron_monosemanticity`` is the
mean over neurons of max_i W+_n,i / ||W+_n|| with W+ = max(W, 0) (1 = every
neuron is driven by one feature; 1/sqrt(n) = by all features equally; 0 = a
dead neuron); the full neuron-by-feature weights are in the run's weights files.
``dead_neurons`` counts neurons that can never fire: with non-negative inputs and
no hidden bias, a neuron fires only if some feature has a positive weight into it.
"""

from __future__ import annotations

import torch

from toysup.engine import metrics as M
from toysup.engine.kinds.relu_hidden import ReluHiddenKind
from toysup.engine.models.relu_output import ReluOutput

DEAD_WEIGHT = 1e-3  # a neuron whose largest incoming weight is below this never fires (inputs are in [0, 1))


def neuron_monosemanticity(W: torch.Tensor, sense: str = "positive") -> torch.Tensor:
    """max_i drive_n,i / ||drive_n|| per neuron, shape (I, m) (engine.metrics.neuron_monosemanticity);
    by default the sense of a ReLU on h: only positive weights drive. 0 for a neuron nothing drives.

    ``W`` is (I, n, m): column n holds neuron n's weights, one per feature.
    """
    return M.neuron_monosemanticity(W, sense)


def dead_neurons(W: torch.Tensor) -> torch.Tensor:
    """Neurons with no positive incoming weight, shape (I,): ReLU(W x) is 0 for every x >= 0."""
    return (W.amax(-2) < DEAD_WEIGHT).sum(-1)


class ReluHidden(ReluHiddenKind, ReluOutput):
    hidden_relu = True  # h = ReLU(W x): ReluOutput's forward, backward and metrics honour the flag

    @torch.no_grad()
    def metrics(self, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        W = weights["W"]
        return {
            **super().metrics(weights),
            "mean_neuron_monosemanticity": neuron_monosemanticity(W).mean(-1),
            "dead_neurons": dead_neurons(W),
        }
