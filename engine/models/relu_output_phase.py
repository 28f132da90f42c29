"""The ReLU output model for the phase diagrams of Elhage et al. 2022, "Superposition as a Phase Change":
n=2 features in m=1 dimension, and n=3 in m=2.

The model, data and training are exactly ``relu_output``'s; this kind only sets the
importances and adds the columns of the phase diagram (declared in
engine/kinds/relu_output_phase.py). The last feature is the
"extra" one, with importance ``importance_decay``; every other feature has
importance 1 (with n=2 that is relu_output's decay**i: [1, r]); all share
``feature_probability``, as in the paper ("we vary the sparsity of all features").
So a diagram is a sweep over importance_decay x feature_probability with no new
parameter. The classification of each instance is here (:func:`classify_phase`, into the phase
names of engine/kinds/relu_output_phase.py); the grid read back from results.csv in
engine/analysis/phase.py, the paper's theoretical phases in engine/analysis/phase_theory.py,
the seed selections in engine/analysis/selection.py.
"""

from __future__ import annotations

import torch

from toysup.engine import metrics as M
from toysup.engine.kinds.relu_output_phase import ReluOutputPhaseKind
from toysup.engine.models.relu_output import ReluOutput

SHARED_COS2 = 0.1  # squared cosine above which two features count as sharing a direction


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


def classify_phase(W: torch.Tensor, extra: int = -1, represented: torch.Tensor | None = None) -> torch.Tensor:
    """The extra feature's phase per instance as an index into the kind's ``PHASES``, shape (I,).

    ``W`` is (I, n, m) (row i = feature i's embedding); ``extra`` indexes the
    extra feature (the last by default). ``represented`` (I, n) says which features
    are represented (the model passes its loss-based rule); without it, the
    weights-only stand-in (at least 0.2 of the largest norm) decides.
    """
    norms = M.feature_norms(W)
    if represented is None:
        represented = M.represented_by_norm(W)
    extra = extra % W.shape[1]
    unit = W / norms.clamp_min(M.EPS).unsqueeze(-1)
    cos2 = torch.einsum("km,kjm->kj", unit[:, extra], unit).square()
    others = represented.clone()
    others[:, extra] = False
    shares = ((cos2 > SHARED_COS2) & others).any(-1)
    phase = torch.where(shares, 1, 2)
    return torch.where(represented[:, extra], phase, 0)
