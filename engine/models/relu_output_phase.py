"""The ReLU output model for the phase diagrams of Elhage et al. 2022, "Superposition as a Phase Change":
n=2 features in m=1 dimension, and n=3 in m=2.

The model, data and training are exactly ``relu_output``'s; this kind only sets the
importances and adds the columns of the phase diagram. The last feature is the
"extra" one, with importance ``importance_decay``; every other feature has
importance 1 (with n=2 that is relu_output's decay**i: [1, r]); all share
``feature_probability``, as in the paper ("we vary the sparsity of all features").
So a diagram is a sweep over importance_decay x feature_probability with no new
parameter. The classification lives in engine/analysis/phase.py (pure functions),
with the grid; the paper's theoretical phases in engine/analysis/phase_theory.py;
the seed selections in engine/analysis/selection.py.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from engine import metrics as M
from engine.analysis.phase import PHASES, SHARED_COS2, classify_phase
from engine.errors import SpecError
from engine.models.base import Column
from engine.models.relu_output import FEATURE_COLUMNS, ReluOutput

SIZES = ((2, 1), (3, 2))  # (n_features, n_hidden): the paper's two diagrams


class ReluOutputPhase(ReluOutput):
    kind = "relu_output_phase"
    summary = ("relu_output with n=2, m=1 or n=3, m=2 and the phase of the extra (last) feature (not learned / "
               "superposed / dedicated)")
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
        Column("extra_norm", "||W_extra||, the extra (last) feature's embedding norm"),
        Column("first_norm", "||W_0||, the first feature's embedding norm"),
        Column("antipodal", "the extra feature is represented and shares its direction with another represented "
               "feature with the opposite sign (the paper's W = [1, -1])", "bool"),
    )
    feature_columns = tuple(replace(c, help="1, and importance_decay for the extra (last) feature")
                            if c.name == "importance" else c for c in FEATURE_COLUMNS)

    @staticmethod
    def feature_importance(decay: torch.Tensor, n: int) -> torch.Tensor:
        """Importance 1 for every feature but the last, the extra one, which has ``decay`` (the paper's r)."""
        out = torch.ones(decay.shape[0], n, dtype=decay.dtype, device=decay.device)
        out[:, -1] = decay
        return out

    @classmethod
    def check(cls, config: dict[str, Any]) -> None:
        super().check(config)
        if (config["n_features"], config["n_hidden"]) not in SIZES:
            raise SpecError(f"model {cls.kind} needs n_features=2 and n_hidden=1, or n_features=3 and n_hidden=2 "
                            f"(got {config['n_features']} and {config['n_hidden']}); use relu_output for other sizes")

    @torch.no_grad()
    def metrics(self, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        W = weights["W"]
        norms = M.feature_norms(W)
        represented = self._representation(weights)["mask"]
        return {
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
