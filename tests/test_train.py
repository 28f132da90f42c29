"""Training: the batched optimiser, planning, per-instance reproducibility, events, and the
published n=5, m=2 outcome (engine/optim.py, engine/plan.py, engine/train.py, engine/models/)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from toysup.engine import events as ev
from toysup.engine import metrics as M
from toysup.engine.errors import SpecError
from toysup.engine.models import Hyper, get_model
from toysup.engine.optim import BatchedOptimizer
from toysup.engine.plan import plan, resolve_device
from toysup.engine.rng import CounterRNG
from toysup.engine.train import curve_schedule, train_chunk

from helpers import CPU, by_instance, make_spec, run_options, train_all

TINY = {"n_features": 5, "n_hidden": 2, "steps": 120, "batch_size": 64, "eval_batch_size": 256}


def model_for(configs: list[dict], seeds: list[int]):
    """A relu_output model object for these instance configs (to call init_weights, loss, ...)."""
    model_cls = get_model("relu_output")
    defaults = {p.name: p.default for p in model_cls.param_table().values()}
    full = [{**defaults, **c} for c in configs]
    return model_cls(Hyper(full, CPU), CounterRNG(torch.tensor(seeds), CPU))


# --- the batched optimiser ---------------------------------------------------------------------------


OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}


@pytest.mark.parametrize("kind", list(OPTIMIZERS))
@pytest.mark.parametrize("decays", [(0.0, 0.0, 0.0), (0.0, 0.01, 0.3)], ids=["no-decay", "decay"])
def test_batched_optimizer_matches_torch_optim(kind, decays):
    gen = torch.Generator().manual_seed(0)
    lr = torch.tensor([1e-3, 3e-2, 0.1])
    wd = torch.tensor(decays)
    start = {"W": torch.randn(3, 5, 2, generator=gen), "b": torch.randn(3, 5, generator=gen)}
    ours = {k: v.clone() for k, v in start.items()}
    optimizer = BatchedOptimizer(kind, ours, lr, wd)
    reference = []
    for i in range(3):
        params = [start["W"][i].clone().requires_grad_(), start["b"][i].clone().requires_grad_()]
        reference.append((params, OPTIMIZERS[kind](params, lr=float(lr[i]), weight_decay=float(wd[i]))))

    for step in range(60):
        scale = 10.0 ** (step % 7 - 4)  # gradients from 1e-4 to 100, so eps and bias correction both matter
        grads = {"W": scale * torch.randn(3, 5, 2, generator=gen), "b": scale * torch.randn(3, 5, generator=gen)}
        optimizer.step(grads)
        for i, (params, opt) in enumerate(reference):
            params[0].grad, params[1].grad = grads["W"][i].clone(), grads["b"][i].clone()
            opt.step()

    for i, (params, _) in enumerate(reference):
        assert torch.allclose(ours["W"][i], params[0].detach(), rtol=1e-5, atol=1e-6), (kind, i)
        assert torch.allclose(ours["b"][i], params[1].detach(), rtol=1e-5, atol=1e-6), (kind, i)
    assert not torch.allclose(ours["W"], start["W"])


def test_optimizer_updates_the_tensors_it_was_given():
    w = torch.zeros(2, 3)
    optimizer = BatchedOptimizer("sgd", {"w": w}, torch.tensor([0.1, 1.0]), torch.zeros(2))
    optimizer.step({"w": torch.ones(2, 3)})
    assert w.tolist() == [pytest.approx([-0.1] * 3), [-1.0] * 3]


# --- planning ----------------------------------------------------------------------------------------


def test_non_structural_axes_share_one_chunk():
    spec = make_spec({**TINY, "seeds": 2}, {"lr": [1e-3, 1e-2], "dropout": [0.0, 0.5], "feature_probability": "1,0.1"})
    chunks = plan(spec, CPU)
    assert len(chunks) == 1
    assert [i.index for i in chunks[0].instances] == list(range(16))


def test_structural_axes_make_separate_chunks():
    spec = make_spec({**TINY, "seeds": 2}, {"steps": [10, 20], "n_hidden": [2, 3]})
    chunks = plan(spec, CPU)
    assert len(chunks) == 4
    for chunk in chunks:
        assert len({(i.config["steps"], i.config["n_hidden"]) for i in chunk.instances}) == 1
        assert chunk.steps == chunk.config["steps"]
    assert sorted(i.index for c in chunks for i in c.instances) == list(range(8))


def test_memory_budget_cuts_groups_into_chunks():
    spec = make_spec({**TINY, "seeds": 5})
    per_instance = get_model("relu_output").bytes_per_instance(spec.instances()[0].config)
    chunks = plan(spec, CPU, max_memory=2 * per_instance)
    assert [len(c) for c in chunks] == [2, 2, 1]
    assert [c.index for c in chunks] == [0, 1, 2]
    assert [i.index for c in chunks for i in c.instances] == list(range(5))
    assert [len(c) for c in plan(spec, CPU, max_memory=1)] == [1] * 5


def test_resolve_device():
    assert resolve_device("cpu") == CPU
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(SpecError, match="expected auto, cpu, cuda or cuda:N"):
        resolve_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_a_user_error():
    with pytest.raises(SpecError, match="CUDA is not available"):
        resolve_device("cuda")


# --- initialisation --------------------------------------------------------------------------------


def test_init_is_xavier_normal_per_instance_whatever_the_instance_count():
    n, m = 5, 2
    seeds = list(range(2000))
    W = model_for([{"n_features": n, "n_hidden": m}] * len(seeds), seeds).init_weights()["W"]
    assert W.shape == (2000, n, m)
    assert float(W.std()) == pytest.approx(math.sqrt(2 / (n + m)), rel=0.03)
    assert float(W.mean()) == pytest.approx(0.0, abs=0.02)
    alone = model_for([{"n_features": n, "n_hidden": m}], [1234]).init_weights()["W"]
    assert torch.equal(alone[0], W[1234])


def test_same_seed_at_different_sweep_points_shares_the_initial_weights():
    configs = [{"feature_probability": 1.0, "lr": 1e-3}, {"feature_probability": 0.01, "lr": 0.1, "dropout": 0.5},
               {"feature_probability": 0.3, "importance_decay": 0.7}]
    init = model_for(configs, [3, 3, 4]).init_weights()
    assert torch.equal(init["W"][0], init["W"][1])
    assert not torch.equal(init["W"][0], init["W"][2])
    assert torch.count_nonzero(init["b"]) == 0


def test_same_seed_at_different_sweep_points_starts_from_the_same_weights_in_a_real_sweep():
    spec = make_spec({**TINY, "steps": 1, "lr": 1e-6, "optimizer": "sgd", "seeds": 2},
                     {"feature_probability": [1.0, 0.1]})
    runs = by_instance(train_all(spec))
    # instances 0, 2 have seed 0; 1, 3 have seed 1; one tiny SGD step keeps them at their init.
    assert torch.allclose(runs[0]["weights"]["W"], runs[2]["weights"]["W"], atol=1e-5)
    assert torch.allclose(runs[1]["weights"]["W"], runs[3]["weights"]["W"], atol=1e-5)
    assert not torch.allclose(runs[0]["weights"]["W"], runs[1]["weights"]["W"], atol=1e-2)


# --- an instance's result does not depend on its batch ---------------------------------------------


def assert_same_instance(a: dict, b: dict) -> None:
    for name in a["weights"]:
        assert torch.equal(a["weights"][name], b["weights"][name]), name
    for name in a["metrics"]:  # NaN (an empty cell, e.g. a neuron count without a privileged basis) equals NaN
        torch.testing.assert_close(a["metrics"][name], b["metrics"][name], rtol=0, atol=0, equal_nan=True, msg=name)
    for name in a["features"]:
        assert torch.equal(a["features"][name], b["features"][name]), name
    assert torch.equal(a["curve"], b["curve"])


@pytest.mark.parametrize("path", ["eager", "compiled"])
def test_an_instance_trained_alone_equals_the_same_instance_inside_a_sweep(path: str):
    point = {"feature_probability": 0.1, "dropout": 0.3, "lr": 3e-3, "n_hidden": 2}
    alone = by_instance(train_all(make_spec({**TINY, **point, "seed": 1}), step_path=path))[0]

    sweep = make_spec({**TINY, "seeds": 3}, {"feature_probability": [1.0, 0.1, 0.03], "dropout": [0.0, 0.3],
                                              "lr": [1e-3, 3e-3], "n_hidden": [3, 2]})
    inside = by_instance(train_all(sweep, step_path=path))
    (match,) = [k for k, r in inside.items()
                if r["config"]["seed"] == 1 and all(r["config"][p] == v for p, v in point.items())]
    assert match not in (0, len(inside) - 1)  # somewhere in the middle of its batch
    assert_same_instance(alone, inside[match])


@pytest.mark.parametrize("path", ["eager", "compiled"])
def test_chunking_does_not_change_results(path: str):
    spec = make_spec({**TINY, "seeds": 2}, {"feature_probability": [1.0, 0.1]})
    together = by_instance(train_all(spec, step_path=path))
    apart = by_instance(train_all(spec, max_memory=1, step_path=path))  # one instance per chunk
    assert together.keys() == apart.keys() == set(range(4))
    for k in together:
        assert_same_instance(together[k], apart[k])


def test_different_seeds_give_different_results():
    runs = by_instance(train_all(make_spec({**TINY, "seeds": 2})))
    assert not torch.equal(runs[0]["weights"]["W"], runs[1]["weights"]["W"])
    assert runs[0]["metrics"]["loss"] != runs[1]["metrics"]["loss"]


def test_eval_loss_ignores_dropout():
    configs = [{"n_features": 5, "n_hidden": 2, "dropout": 0.0}, {"n_features": 5, "n_hidden": 2, "dropout": 0.7}]
    model = model_for(configs, [8, 8])
    weights = model.init_weights()
    eval_loss = model.eval_loss(weights)
    assert eval_loss[0] == eval_loss[1]
    train_loss = model.loss(weights, 1)
    assert train_loss[0] != train_loss[1]


def test_training_lowers_the_eval_loss():
    spec = make_spec({**TINY, "steps": 300, "lr": 1e-2, "seeds": 3, "feature_probability": 0.5})
    (result,) = train_all(spec)
    configs = [i.config for i in result.chunk.instances]
    initial = model_for(configs, [0, 1, 2])
    before = initial.eval_loss(initial.init_weights())
    after = result.metrics["loss"]
    assert torch.isfinite(after).all()
    assert (after < 0.8 * before).all(), (before, after)


# --- loss curves and progress events ---------------------------------------------------------------


@pytest.mark.parametrize("steps", [1, 7, 100, 101, 1000, 123_457])
def test_curve_schedule(steps):
    record = curve_schedule(steps)
    assert record == sorted(set(record))
    assert record[0] == 1 and record[-1] == steps
    assert all(1 <= s <= steps for s in record)
    if steps <= 100:
        assert record == list(range(1, steps + 1))
    else:
        assert 50 <= len(record) <= 100
    if steps >= 1000:
        assert sum(s <= steps // 100 for s in record) >= 8  # the start is resolved on a log axis


def test_progress_events_carry_every_curve_point_once():
    spec = make_spec({**TINY, "steps": 300, "seeds": 3})
    (chunk,) = plan(spec, CPU)
    events: list[ev.Event] = []
    result = train_chunk(chunk, CPU, emit=events.append)
    progress = [e for e in events if isinstance(e, ev.Progress)]
    assert progress and progress[-1].step == 300 and progress[-1].instance_steps_done == 900
    steps = list(itertools.chain.from_iterable(e.curve_steps for e in progress))
    assert steps == result.curve_steps == curve_schedule(300)
    losses = torch.tensor(list(itertools.chain.from_iterable(e.curve_losses for e in progress)))
    assert torch.equal(losses.T, result.curves)
    assert [e.step for e in progress] == sorted(e.step for e in progress)


def test_should_stop_interrupts_training():
    (chunk,) = plan(make_spec(TINY), CPU)
    with pytest.raises(KeyboardInterrupt):
        train_chunk(chunk, CPU, should_stop=lambda: True)


def test_events_round_trip_through_json():
    samples = [
        ev.RunStarted(run_id="r", run_dir="/x/r", name="n", device="cpu", instances=4, chunks=1, instance_steps=800),
        ev.ChunkStarted(chunk=0, instances=[0, 1], steps=200),
        ev.Progress(chunk=0, step=5, steps=200, instance_steps_done=10, elapsed_s=0.5, curve_steps=[1, 2],
                    curve_losses=[[0.1, 0.2], [0.05, 0.1]]),
        ev.ChunkFinished(chunk=0, elapsed_s=1.5),
        ev.RunFinished(status="completed", run_dir="/x/r", wall_time_s=2.0, instance_steps_per_s=400.0),
    ]
    for event in samples:
        line = event.to_json()
        assert "\n" not in line
        assert ev.from_json(line) == event


# --- the published n=5, m=2 outcome (Elhage et al. 2022) ------------------------------------------


@pytest.fixture(scope="module")
def intro_sweep():
    """n=5, m=2, importance 0.9^i, dense vs sparse, 4 seeds. Adam lr 1e-2, batch 256, 3000 steps:
    robust over 16 seeds tried (dense: 2 features; sparse: pentagon with D* 0.294-0.307)."""
    spec = make_spec({"n_features": 5, "n_hidden": 2, "importance_decay": 0.9, "steps": 3000, "batch_size": 256,
                      "lr": 1e-2, "seeds": 4, "seed": 100}, {"feature_probability": [1.0, 0.02]})
    runs = by_instance(train_all(spec))
    return {p: [r for r in runs.values() if r["config"]["feature_probability"] == p] for p in (1.0, 0.02)}


@pytest.mark.slow
def test_dense_data_keeps_the_two_most_important_features_orthogonal(intro_sweep):
    for run in intro_sweep[1.0]:
        W = run["weights"]["W"]
        norms = W.norm(dim=-1)
        assert int(run["metrics"]["features_represented"]) == 2
        assert sorted(norms.argsort(descending=True)[:2].tolist()) == [0, 1]
        top = W[:2] / norms[:2, None]
        assert abs(float(top[0] @ top[1])) < 0.1
        assert float(run["metrics"]["dims_per_feature"]) == pytest.approx(1.0, abs=0.05)


@pytest.mark.slow
def test_sparse_data_packs_all_five_features_as_a_pentagon(intro_sweep):
    for run in intro_sweep[0.02]:
        W = run["weights"]["W"]
        assert int(run["metrics"]["features_represented"]) == 5
        assert 0.27 <= float(run["metrics"]["dims_per_feature"]) <= 0.33
        d_i = run["features"]["dimensionality"]
        assert torch.allclose(d_i, torch.full((5,), 0.4), atol=0.05), d_i
        assert torch.allclose(W.norm(dim=-1), torch.full((5,), 1.15), atol=0.08)
        angles = sorted(math.degrees(math.atan2(y, x)) % 360 for x, y in W.tolist())
        gaps = [b - a for a, b in itertools.pairwise([*angles, angles[0] + 360])]
        assert gaps == pytest.approx([72.0] * 5, abs=6), gaps
        assert torch.allclose(M.feature_dimensionality(W.unsqueeze(0))[0], d_i)


@pytest.mark.slow
def test_linear_model_does_not_superpose():
    spec = make_spec({"n_features": 5, "n_hidden": 2, "importance_decay": 0.9, "feature_probability": 0.02,
                      "steps": 2000, "batch_size": 256, "lr": 1e-2, "seeds": 4}, model="linear")
    for run in by_instance(train_all(spec)).values():
        # PCA: W^T W projects onto 2 dimensions, so ||W||_F^2 = m and D* = 1 (the ReLU model reaches 0.3 here).
        assert float(run["metrics"]["dims_per_feature"]) == pytest.approx(1.0, abs=0.05)
        assert int(run["metrics"]["features_represented"]) <= 3


# --- divergence -------------------------------------------------------------------------------------


def test_diverging_instances_are_frozen_and_marked_while_the_rest_match_a_run_without_them(tmp_path):
    from toysup.engine.run.folder import Run
    from toysup.engine.runner import run_sweep

    base = {**TINY, "seeds": 2, "optimizer": "sgd"}
    with_bad = make_spec(base, {"lr": [1e-2, 100.0]})  # lr 100 with SGD overflows within a few steps
    alone = make_spec({**base, "lr": 1e-2})
    out_bad = run_sweep(with_bad, tmp_path / "bad", run_options())
    out_good = run_sweep(alone, tmp_path / "good", run_options())
    assert out_bad.status == out_good.status == "completed"
    _, bad_rows = Run(out_bad.run_dir).results()
    _, good_rows = Run(out_good.run_dir).results()
    diverged = [r for r in bad_rows if r["lr"] == 100.0]
    healthy = [r for r in bad_rows if r["lr"] == 1e-2]
    assert diverged and all(r["diverged"] is True for r in diverged)
    assert all(r["loss"] == "" and r["dims_per_feature"] == "" for r in diverged)  # metrics left empty
    assert all(r["diverged"] is False for r in healthy)
    for mine, ref in zip(healthy, good_rows):
        assert mine["seed"] == ref["seed"]
        for column in ("loss", "dims_per_feature", "orientation_angle_deg", "features_represented"):
            assert mine[column] == ref[column], column
