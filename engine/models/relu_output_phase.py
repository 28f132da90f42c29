"""The ReLU output model for the phase diagrams of Elhage et al. 2022, "Superposition as a Phase Change":
n=2 features in m=1 dimension, and n=3 in m=2.

The model, data and training are exactly ``relu_output``'s; this kind only sets the
importances and adds the columns of the phase diagram (declared in
engine/kinds/relu_output_phase.py). The last feature is the
"extra" one, with importance ``importance_decay``; every other feature has
importance 1 (with n=2 that is relu_output's decay**i: [1, r]); all share
``feature_probability``, as in the paper ("we vary the sparsity of all features").
So a diagram is a sweep over importance_decay x feature_probability with no new
parameter. The classification lives in engine/analysis/phase.py (pure functions),
with the grid; the paper's theoretical phases in engine/analysis/phase_theory.py;
the seed selections in engine/analysis/selection.py.
"""

from __future__ import annotations

import torch

from toysup.engine import metrics as M
from toysup.engine.analysis.phase import SHARED_COS2, classify_phase
from toysup.engine.kinds.relu_output_phase import ReluOutputPhaseKind
from toysup.engine.models.relu_output import ReluOutput


class ReluOutputPhase(ReluOutputPhaseKind, ReluOutput):
    @staticmethod
    def feature_importance(decay: torch.Tensor, n: int) -> torch.Tensor:
        """Importance 1 for every feature but the last, the extra one, which has ``decay`` (the paper's r)."""
        out = torch.ones(decay.shape[0], n, dtype=decay.dtype, device=decay.device)
        out[:, -1] = decay
        return out

    @torch.no_grad()
    def metrics(self, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        W = weights["W"]
        norms = M.feature_norms(W)
        rep = self._representation(weights)
        represented = rep["mask"]
        return {
            "loss_se": rep["loss_se"],
            "phase": classify_phase(W, extra=-1, represented=represented),
            "features_represented": represented.sum(-1),
            "extra_norm": norms[:, -1],
            "first_norm": norms[:, 0],
            "antipodal": antipodal_to_another(W, represented),
        }


def antipodal_to_another(W: torch.Tensor, represented: torch.Tensor) -> torch.Tensor:
    """Whether the extra (last) feature is represented and shares its direction (squared cosine above
    SHARED_COS2) with another represented feature pointing the other way, per instance (I,)."""
    unit = W / M.feature_norms(W).clamp_min(M.EPS).unsqueeze(-1)
    cos = torch.einsum("km,kjm->kj", unit[:, -1], unit)
    others = represented.clone()
    others[:, -1] = False
    return represented[:, -1] & ((cos < 0) & (cos.square() > SHARED_COS2) & others).any(-1)
