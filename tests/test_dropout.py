"""Dropout and the privileged basis: the published headline on a small seeded sweep."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.orientation import orientation_stats
from engine.runner import run_sweep
from engine.spec import resolve
from engine.store import Run


@pytest.mark.slow
def test_dropout_pins_sparse_features_to_an_axis_while_dense_ones_stay_near_uniform(tmp_path: Path):
    spec = resolve({"model": "relu_output",
                    "params": {"n_features": 5, "n_hidden": 2, "steps": 2000, "batch_size": 64, "lr": 3e-3,
                               "seeds": 40, "eval_batch_size": 512},
                    "sweep": {"feature_probability": [0.2, 1.0], "dropout": [0.0, 0.6]}})
    outcome = run_sweep(spec, tmp_path, device="cpu", threads=1)
    assert outcome.status == "completed"
    _, rows = Run(outcome.run_dir).results()

    def stats(p: float, q: float):
        members = [r for r in rows if r["feature_probability"] == p and r["dropout"] == q]
        assert len(members) == 40
        return orientation_stats([r["orientation_angle_deg"] for r in members], [r["collapsed"] for r in members])

    sparse_high = stats(0.2, 0.6)
    assert sparse_high.p_value < 1e-6 and sparse_high.near_axis > 0.5 and sparse_high.median < 5
    dense_high = stats(1.0, 0.6)
    assert dense_high.p_value > 0.01, "dense features: dropout leaves the orientation close to uniform"
    assert dense_high.near_axis < 0.4
    dense_none = stats(1.0, 0.0)
    assert dense_none.p_value > 0.01 and dense_none.excluded == 0
