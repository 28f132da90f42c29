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

import torch

from engine import metrics as M
from engine.analysis.phase import classify_phase
from engine.models.kinds.relu_output_phase import ReluOutputPhaseKind
from engine.models.relu_output import ReluOutput


class ReluOutputPhase(ReluOutputPhaseKind, ReluOutput):
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
