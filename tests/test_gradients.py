"""Hand-written backward passes must match autograd exactly (to float32 round-off)."""

from __future__ import annotations

import pytest
import torch

from engine.models import Hyper, ToyModel, get_model
from engine.rng import CounterRNG
from engine.spec import resolve


def model_for(kind: str, params: dict, seeds: list[int]) -> ToyModel:
    spec = resolve({"model": kind, "params": params})
    configs = [{**spec.params, "seed": s} for s in seeds]
    return get_model(kind)(Hyper(configs, torch.device("cpu")), CounterRNG(torch.tensor(seeds), "cpu"))


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
    weights = model.init_weights()
    weights["b"] = torch.linspace(-0.2, 0.1, weights["b"].numel()).view_as(weights["b"])  # exercise the ReLU mask
    for step in (1, 2):
        loss, grads = model.loss_and_grads(weights, step)
        ref_loss, ref_grads = ToyModel.loss_and_grads(model, {k: w.clone() for k, w in weights.items()}, step)
        torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-7)
        for name in ref_grads:
            torch.testing.assert_close(grads[name], ref_grads[name], rtol=1e-4, atol=1e-7)
        assert any(g.abs().sum() > 0 for g in grads.values())


def test_gelu_and_hidden_l1_fall_back_to_autograd():
    assert not model_for("relu_output", {"activation": "gelu"}, [0]).analytic
    assert not model_for("relu_output", {"hidden_l1": 0.01}, [0]).analytic


def test_blocked_step_equals_one_block(monkeypatch: pytest.MonkeyPatch):
    """The CPU step runs over cache-sized instance blocks; the result must not depend on them."""
    import engine.models.relu_output as relu_output

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
