"""The ReLU output model for the n=2, m=1 phase diagram (Elhage et al. 2022, "Superposition as a Phase Change").

The model, data and training are exactly ``relu_output``'s; this kind only adds
the columns of the phase diagram, which mean something only with two features in
one dimension. Feature 0 has importance 1 and feature 1, the "extra" feature,
importance ``importance_decay`` (decay**1); both share ``feature_probability``,
as in the paper ("we vary the sparsity of all features"). So the diagram is a
sweep over importance_decay x feature_probability with no new parameter, and
``relu_output`` itself stays untouched. The classification lives in
engine/analysis/phase.py (pure functions), with the grid; the seed selections are in
engine/analysis/selection.py.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from engine import metrics as M
from engine.analysis.phase import PHASES, classify_phase
from engine.errors import SpecError
from engine.models.base import Column
from engine.models.relu_output import ReluOutput


class ReluOutputPhase(ReluOutput):
    kind = "relu_output_phase"
    summary = "relu_output with n=2, m=1 and the phase of the extra feature (not learned / superposed / dedicated)"
    # Defaults that pass check(): a form or a bare preset starts from a valid diagram point.
    params = tuple(
        replace(p, default={"n_features": 2, "n_hidden": 1}[p.name]) if p.name in ("n_features", "n_hidden") else p
        for p in ReluOutput.params
    )
    columns = (
        Column("loss", "final importance-weighted MSE on a fresh evaluation batch", headline=1, keep=1),
        Column("phase", "the extra feature 1: " + ", ".join(f"{i} {p}" for i, p in enumerate(PHASES)), "int"),
        Column("features_represented", "features whose ablation raises the loss by > 10% of their constant-output "
               "loss (relu_output's rule)", "int", headline=2, keep=2, short="repr"),
        Column("extra_norm", "||W_1||, the extra feature's embedding norm"),
        Column("first_norm", "||W_0||, the first feature's embedding norm"),
        Column("antipodal", "both features represented with opposite signs (the paper's W = [1, -1])", "bool"),
    )

    @classmethod
    def check(cls, config: dict[str, Any]) -> None:
        super().check(config)
        if config["n_features"] != 2 or config["n_hidden"] != 1:
            raise SpecError(f"model {cls.kind} needs n_features=2 and n_hidden=1 (got {config['n_features']} and "
                            f"{config['n_hidden']}); use relu_output for other sizes")

    @torch.no_grad()
    def metrics(self, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        W = weights["W"]
        norms = M.feature_norms(W)
        represented = self._representation(weights)["mask"]
        opposite = (W[:, 0] * W[:, 1]).sum(-1) < 0
        return {
            "phase": classify_phase(W, extra=1, represented=represented),
            "features_represented": represented.sum(-1),
            "extra_norm": norms[:, 1],
            "first_norm": norms[:, 0],
            "antipodal": represented.all(-1) & opposite,
        }
