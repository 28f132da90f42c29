"""The fused Triton kernel (engine/kernel_step.py, engine/models/relu_output_triton.py) against the eager step.

On a CPU the kernel runs under Triton's interpreter (conftest.py sets TRITON_INTERPRET=1 before anything
imports triton). On a machine with CUDA the same tests run the compiled kernel on the GPU. The interpreter
executes every tile op in numpy, so the shapes are tiny (n 5, m 3, batch 24: one padded tile) and the step
counts tens.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from toysup.engine import fused, kernel_step, train
from toysup.engine.events import Notice
from toysup.engine.models import get_model
from toysup.engine.models.base import Hyper
from toysup.engine.optim import BatchedOptimizer
from toysup.engine.options import RunOptions
from toysup.engine.plan import plan
from toysup.engine.rng import DATA, CounterRNG
from toysup.engine.runner import run_sweep
from toysup.engine.spec import resolve

from helpers import make_spec

pytest.importorskip("triton", reason="triton is not installed (pip install -e '.[test]')")

SMALL = {"n_features": 5, "n_hidden": 3, "batch_size": 24, "feature_probability": 0.3, "lr": 0.02}


@pytest.fixture(scope="module")
def device() -> torch.device:
    """CUDA with the compiled kernel where there is one, else the CPU with the kernels interpreted."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if not kernel_step._interpreting():
        pytest.skip("TRITON_INTERPRET=1 was not set before triton was imported (tests/conftest.py sets it)")
    return torch.device("cpu")


def build(kind: str, params: dict[str, Any], seeds: list[int], device: torch.device,
          lrs: list[float] | None = None) -> Any:
    """A model of ``kind`` with one instance per seed (and per-instance learning rates ``lrs``)."""
    spec = resolve({"model": kind, "params": params})
    configs = [{**spec.params, "seed": s, **({"lr": lrs[k]} if lrs else {})} for k, s in enumerate(seeds)]
    return get_model(kind)(Hyper(configs, device), CounterRNG(torch.tensor(seeds), device))


def fresh_state(model: Any) -> tuple[dict[str, torch.Tensor], BatchedOptimizer, torch.Tensor]:
    weights = model.init_weights()
    hp = model.hp
    optimizer = BatchedOptimizer(hp.value("optimizer"), weights, hp.tensor("lr"), hp.tensor("weight_decay"))
    return weights, optimizer, torch.zeros(len(hp), dtype=torch.bool, device=hp.device)


def eager_steps(model: Any, steps: int, report: set[int]) -> tuple[Any, dict[int, torch.Tensor]]:
    """engine.train's eager loop: loss and gradients, divergence freeze, optimiser step."""
    weights, optimizer, dead = fresh_state(model)
    losses = {}
    for step in range(1, steps + 1):
        loss, grads = model.loss_and_grads(weights, step)
        dead |= ~torch.isfinite(loss)
        optimizer.step(grads, dead)
        if step in report:
            losses[step] = loss.clone()
    return (weights, optimizer, dead), losses


def kernel_steps(model: Any, steps: int, block: int) -> tuple[Any, dict[int, torch.Tensor]]:
    """The kernel in launches of ``block`` steps; the loss of each launch's last step."""
    weights, optimizer, dead = fresh_state(model)
    losses = {}
    for first in range(1, steps + 1, block):
        last = min(steps, first + block - 1)
        losses[last] = kernel_step.train_steps(model, weights, optimizer, dead, first, last).clone()
    return (weights, optimizer, dead), losses


def test_the_kernel_draws_the_eager_paths_bits(device: torch.device):
    # per-feature probabilities (probability_ratio) and dropout: both draws, with a padded batch tile
    model = build("relu_output", {**SMALL, "dropout": 0.3, "probability_ratio": 0.5}, [3, 11], device)
    for step in (1, 70_000):
        x, keep = kernel_step.draw(model, step)
        expected = torch.empty_like(x)
        model._draw(DATA, step, expected)
        assert torch.equal(x, expected)
        assert torch.equal(keep, model._keep(step))
        assert 0 < int((x > 0).sum()) < x.numel() and 0 < int((keep == 0).sum()) < keep.numel()


@pytest.mark.parametrize(("kind", "extra"), [
    ("relu_output", {"optimizer": "adam"}),
    ("relu_hidden", {"optimizer": "sgd", "dropout": 0.2, "weight_decay": 0.01}),
    ("linear", {"optimizer": "adamw", "weight_decay": 0.1, "importance_decay": 0.8}),
])
def test_the_kernel_trains_like_the_eager_step(device: torch.device, kind: str, extra: dict[str, Any]):
    """Losses at each launch's end, weights and Adam moments after 14 steps, per-instance learning rates."""
    model = build(kind, {**SMALL, **extra}, [1, 2], device, lrs=[0.01, 0.03])
    (w_k, opt_k, dead_k), loss_k = kernel_steps(model, 14, block=7)
    (w_e, opt_e, dead_e), loss_e = eager_steps(model, 14, set(loss_k))
    for step, loss in loss_k.items():
        torch.testing.assert_close(loss, loss_e[step], rtol=1e-5, atol=1e-7)
    for name in ("W", "b"):
        torch.testing.assert_close(w_k[name], w_e[name], rtol=1e-4, atol=1e-6)
        assert not torch.equal(w_k[name], fresh_state(model)[0][name])  # it trained
    for kernels, eagers in zip(opt_k.moments(), opt_e.moments(), strict=True):
        for name, value in eagers.items():
            torch.testing.assert_close(kernels[name], value, rtol=1e-4, atol=1e-7)
    assert opt_k.t == opt_e.t == 14 and not dead_k.any() and not dead_e.any()


def test_an_instances_result_does_not_depend_on_the_others_in_its_launch(device: torch.device):
    params = {**SMALL, "dropout": 0.1}
    together = build("relu_output", params, [5, 6, 7], device, lrs=[0.01, 0.02, 0.05])
    alone = build("relu_output", params, [6], device, lrs=[0.02])
    (w_all, _, _), loss_all = kernel_steps(together, 8, block=8)
    (w_one, _, _), loss_one = kernel_steps(alone, 8, block=8)
    assert torch.equal(w_all["W"][1:2], w_one["W"]) and torch.equal(w_all["b"][1:2], w_one["b"])
    assert torch.equal(loss_all[8][1:2], loss_one[8])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy's overflow warnings inside the interpreter
def test_one_instances_divergence_leaves_the_others_untouched(device: torch.device):
    params = {**SMALL, "optimizer": "sgd"}
    model = build("relu_output", params, [1, 2, 3], device, lrs=[0.01, 1e30, 0.01])
    (weights, _, dead), _ = kernel_steps(model, 6, block=6)
    assert dead.tolist() == [False, True, False]
    assert torch.isfinite(weights["W"][1]).all()  # frozen at its last finite weights
    for k, seed in ((0, 1), (2, 3)):
        (w_alone, _, _), _ = kernel_steps(build("relu_output", params, [seed], device, lrs=[0.01]), 6, block=6)
        assert torch.equal(weights["W"][k:k + 1], w_alone["W"])


def test_a_chunk_resumed_from_a_checkpoint_on_the_kernel_equals_an_uninterrupted_one(
        device: torch.device, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(train, "PROGRESS_INTERVAL_S", 0.0)  # a progress report (and checkpoint) after every launch
    spec = make_spec({**SMALL, "steps": 8, "seeds": 2, "eval_batch_size": 64}, {"dropout": [0.0, 0.2]})
    (chunk,) = plan(spec, device, None)
    saved: list[Any] = []
    whole = train.train_chunk(chunk, device, step_path=fused.KERNEL, checkpoint_every_s=1e-9,
                              checkpoint=lambda state: saved.append(copy.deepcopy(state)))
    assert whole.step_path == fused.KERNEL
    middle = next(s for s in saved if s.step == 4)
    resumed = train.train_chunk(chunk, device, step_path=fused.KERNEL, resume_from=middle)
    assert torch.equal(resumed.weights["W"], whole.weights["W"])
    assert torch.equal(resumed.curves.nan_to_num(-1), whole.curves.nan_to_num(-1))
    eager = train.train_chunk(chunk, device)
    torch.testing.assert_close(whole.curves, eager.curves, rtol=1e-5, atol=1e-7)  # recorded at the same steps


def test_a_run_records_the_kernel_path_and_a_resume_keeps_it(device: torch.device, tmp_path: Path):
    spec = make_spec({**SMALL, "steps": 10, "seeds": 2, "eval_batch_size": 64})
    out = run_sweep(spec, tmp_path / "a", RunOptions(device=device.type, compile="kernel"))
    assert out.status == "completed"
    assert json.loads((out.run_dir / "run.json").read_text())["step"] == "kernel"
    assert fused.resumed_path("kernel", device) == ("kernel", None)


def test_kernel_choice_falls_back_in_one_line_where_it_cannot_run():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    path, note = fused.choose_path("kernel", cpu, False, 10, kernel_supported=False)
    assert (path, note) == ("eager", "--compile kernel: this model (or configuration) has no fused kernel; training "
                                     "on the eager step")
    assert fused.choose_path("off", cuda, True, 10**9, True, 10**5) == ("eager", None)
    if fused.KERNEL_FASTER_FROM is None:  # unmeasured on a GPU: auto never picks it, and says so
        path, note = fused.choose_path("auto", cuda, True, 10**9, True, 10**5)
        assert path == "eager" and note is not None and "unmeasured" in note
    assert kernel_step.supports("relu_hidden", {"dropout": 0.5, "optimizer": "sgd"})
    assert not kernel_step.supports("relu_output", {"activation": "gelu"})
    assert not kernel_step.supports("sae", {})


def test_the_run_says_in_one_line_when_the_kernel_does_not_cover_the_model(tmp_path: Path):
    spec = make_spec({**SMALL, "steps": 3, "seeds": 1, "eval_batch_size": 64, "activation": "gelu"})
    notices: list[str] = []
    out = run_sweep(spec, tmp_path / "a", RunOptions(device="cpu", compile="kernel"),
                    emit=lambda e: notices.append(e.message) if isinstance(e, Notice) else None)
    assert out.status == "completed"
    assert notices == ["--compile kernel: this model (or configuration) has no fused kernel; training on the "
                       "eager step"]
    assert json.loads((out.run_dir / "run.json").read_text())["step"] == "eager"


def test_a_kernel_that_fails_to_compile_falls_back_to_the_eager_step_once(device: torch.device,
                                                                        monkeypatch: pytest.MonkeyPatch):
    class Broken:
        def __getitem__(self, grid: Any) -> Any:
            def launch(*args: Any, **kwargs: Any) -> None:
                raise RuntimeError("PTX assembly failed\nmore lines")
            return launch

    monkeypatch.setattr(kernel_step, "_proven", set())
    monkeypatch.setattr(kernel_step, "_broken", None)
    monkeypatch.setattr(kernel_step.kernels(), "train_kernel", Broken())
    spec = make_spec({**SMALL, "steps": 6, "seeds": 2, "eval_batch_size": 64})
    (chunk,) = plan(spec, device, None)
    notices: list[str] = []
    result = train.train_chunk(chunk, device, step_path=fused.KERNEL,
                               emit=lambda e: notices.append(e.message) if isinstance(e, Notice) else None)
    assert notices == ["fused kernel failed (RuntimeError: PTX assembly failed): training eagerly"]
    assert result.step_path == fused.EAGER
    assert torch.equal(result.weights["W"], train.train_chunk(chunk, device).weights["W"])
    assert kernel_step.unavailable_reason(device) is not None  # later chunks of the process train eagerly
