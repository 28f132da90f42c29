"""The ReLU hidden-layer ("neuron") model's declaration (Elhage et al. 2022); trained by
engine/models/relu_hidden.py."""

from __future__ import annotations

from typing import Any

from toysup.engine.kinds.base import Column
from toysup.engine.kinds.relu_output import SUPERPOSITION_COLUMNS, ReluOutputKind


class ReluHiddenKind(ReluOutputKind):
    kind = "relu_hidden"
    implementation = "toysup.engine.models.relu_hidden:ReluHidden"
    summary = "h = ReLU(W x), x' = ReLU(W^T h + b): features compete for neurons (Elhage et al. 2022)"
    columns = (
        *SUPERPOSITION_COLUMNS,
        Column("mean_neuron_monosemanticity", "mean over neurons of max_i W+_n,i / ||W+_n||, W+ = max(W, 0) "
               "(1 = all monosemantic)"),
        Column("dead_neurons", "neurons with no positive incoming weight: they never fire", "int"),
    )

    @classmethod
    def neuron_sense(cls, config: dict[str, Any]) -> str | None:
        """The ReLU on h makes the basis privileged; only a positive weight makes a neuron fire."""
        return "positive"
