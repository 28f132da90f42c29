"""Hand-written backward passes must match autograd exactly (to float32 round-off)."""

from __future__ import annotations

import pytest
import torch

from helpers import assert_step_matches_autograd, model_for

CASES = [
    ("relu_output", {}),
    ("relu_output", {"dropout": 0.3}),
    ("relu_output", {"feature_probability": 1.0}),
    ("linear", {"dropout": 0.2}),
    ("relu_hidden", {}),
    ("relu_hidden", {"dropout": 0.5}),
    ("relu_output", {"correlation": "anticorrelated", "probability_ratio": 0.5}),
]


@pytest.mark.parametrize(("kind", "extra"), CASES)
def test_analytic_gradients_match_autograd(kind: str, extra: dict):
    params = {"n_features": 7, "n_hidden": 3, "batch_size": 33, "importance_decay": 0.8,
              "feature_probability": 0.3, **extra}
    model = model_for(kind, params, [3, 4, 5])
    assert model.analytic, "these configurations take the hand-written path"
    assert_step_matches_autograd(model)


def test_gelu_and_hidden_l1_fall_back_to_autograd():
    assert not model_for("relu_output", {"activation": "gelu"}, [0]).analytic
    assert not model_for("relu_output", {"hidden_l1": 0.01}, [0]).analytic


def test_blocked_step_equals_one_block(monkeypatch: pytest.MonkeyPatch):
    """The CPU step runs over cache-sized instance blocks; the result must not depend on them."""
    import toysup.engine.models.relu_output as relu_output

    params = {"n_features": 6, "n_hidden": 2, "batch_size": 16, "feature_probability": 0.4, "dropout": 0.2}
    seeds = list(range(7))
    whole = model_for("relu_output", params, seeds)
    monkeypatch.setattr(relu_output, "BLOCK_VALUES", 16 * 6 * 3)  # blocks of 3, 3 and 1 instances
    blocked = model_for("relu_output", params, seeds)
    assert [r.stop - r.start for r in blocked._blocks] == [3, 3, 1]
    weights = whole.init_weights()
    loss_a, grads_a = whole.loss_and_grads(weights, 5)
    loss_a, grads_a = loss_a.clone(), {k: v.clone() for k, v in grads_a.items()}
    loss_b, grads_b = blocked.loss_and_grads(weights, 5)
    assert torch.equal(loss_a, loss_b)
    for name in grads_a:
        assert torch.equal(grads_a[name], grads_b[name])
