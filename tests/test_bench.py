"""The engine's numerics against the tutorial-style reference: same init, same data, same losses."""

from __future__ import annotations

import torch

from engine.bench import TutorialModel, bench_spec, benchmark
from engine.models import Hyper, get_model
from engine.optim import BatchedOptimizer
from engine.rng import DATA, CounterRNG


def test_engine_step_matches_the_tutorial_reference_on_the_same_data():
    spec = bench_spec(instances=6, n=8, m=3, batch=64, steps=8, lr=3e-3)
    instances = spec.instances()
    cpu = torch.device("cpu")
    hp = Hyper([i.config for i in instances], cpu)
    model = get_model("relu_output")(hp, CounterRNG(torch.tensor([i.seed for i in instances]), cpu))
    weights = model.init_weights()
    optimizer = BatchedOptimizer("adam", weights, hp.tensor("lr"), hp.tensor("weight_decay"))

    importance = hp.tensor("importance_decay")[:, None] ** torch.arange(8)
    reference = TutorialModel(len(instances), 8, 3, hp.tensor("feature_probability"), importance, cpu)
    with torch.no_grad():
        reference.W.copy_(weights["W"].transpose(1, 2))  # ARENA's (instances, hidden, features)
    ref_optimizer = torch.optim.Adam(reference.parameters(), lr=3e-3)

    for step in range(1, 9):
        x = model._draw(DATA, step, torch.empty(len(instances), 64, 8))  # the engine's batch for this step
        loss, grads = model.loss_and_grads(weights, step)
        optimizer.step(grads)

        ref_optimizer.zero_grad()
        batch = x.transpose(0, 1)  # (batch, instances, features)
        out = reference(batch)
        per_instance = (reference.importance * (batch - out) ** 2).mean((0, 2))
        per_instance.sum().backward()
        ref_optimizer.step()
        torch.testing.assert_close(loss, per_instance.detach(), rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(weights["W"], reference.W.detach().transpose(1, 2), rtol=1e-3, atol=1e-5)


def test_benchmark_reports_both_trainers_and_comparable_losses():
    result = benchmark(instances=8, n_features=6, n_hidden=2, batch_size=32, steps=40, device="cpu").to_dict()
    for key in ("engine_instance_steps_per_s", "reference_instance_steps_per_s", "ratio", "peak_rss_mb", "device"):
        assert key in result
    assert result["engine_instance_steps_per_s"] > 0 and result["reference_instance_steps_per_s"] > 0
    assert result["device"] == "cpu"
    assert 0.7 < result["loss_ratio"] < 1.4, result  # same work: the final losses agree within seed noise
