"""One instance's geometry as numbers: its embedding W, feature vectors, overlaps, per-feature columns,
and how many features each neuron carries."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from toysup.engine.analysis.aggregate import number
from toysup.engine.errors import RunDataError


def as_array(W: Any) -> np.ndarray:
    """A tensor or nested list as a float numpy array."""
    if hasattr(W, "detach"):
        W = W.detach().cpu().numpy()
    return np.asarray(W, dtype=float)


def embedding(weights: dict[str, Any]) -> np.ndarray | None:
    """One instance's (n, m) feature embedding W (rows are features), or None if its model has none.

    Models name their weights differently; the ones with features as rows of "W"
    (the ReLU output and linear models) are drawn today.
    """
    W = weights.get("W")
    if W is None:
        return None
    arr = as_array(W)
    return arr if arr.ndim == 2 else None


def feature_vectors(W: Any) -> list[tuple[float, float]]:
    """Rows of a (n, 2) embedding matrix as (x, y) pairs; rows are features."""
    arr = as_array(W)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"feature vectors need a (n, 2) matrix, got shape {tuple(arr.shape)}")
    return [(float(a), float(b)) for a, b in arr]


def overlap_matrix(W: Any) -> list[list[float]]:
    """The n x n feature-overlap matrix W_i . W_j (the paper's W^T W; our W has features as rows)."""
    arr = as_array(W)
    return (arr @ arr.T).tolist()


def feature_norms(W: Any) -> list[float]:
    """||W_i|| per feature (row)."""
    return [float(v) for v in np.linalg.norm(as_array(W), axis=1)]


def feature_table(features: Sequence[dict[str, Any]], instance: int) -> dict[str, list[float]]:
    """One instance's per-feature columns from features.csv rows, in feature order (empty cells as 0)."""
    mine = sorted((r for r in features if r.get("instance") == instance), key=lambda r: r["feature"])
    if not mine:
        raise RunDataError(f"features.csv has no rows for instance {instance}")
    columns = [c for c in mine[0] if c not in ("instance", "feature")]
    return {c: [number(r.get(c)) or 0.0 for r in mine] for c in columns}


def neuron_counts(W: Any, threshold: float = 0.5, represented: Sequence[float] | None = None,
                  sense: str = "magnitude") -> list[int]:
    """How many represented features each neuron carries (engine.metrics.features_per_neuron).

    ``represented`` is features.csv's 0/1 column (the model's rule); without it, the norm-only
    half of that rule. ``sense``: how a weight drives a neuron (the model's neuron_sense)."""
    import torch  # deferred: reading a run's tables needs no torch

    from toysup.engine.metrics import features_per_neuron  # deferred: loads torch

    t = torch.as_tensor(as_array(W), dtype=torch.float32).unsqueeze(0)
    mask = None if represented is None else torch.tensor([bool(v) for v in represented]).unsqueeze(0)
    return [int(c) for c in features_per_neuron(t, float(threshold), mask, sense)[0]]
