"""The compiled step (engine/fused.py): its random bits, its gradients, the choice of path and the fallback.

Batch independence, thread-count independence and exact resume on the compiled path are checked beside their
eager twins (test_train.py, test_bench.py, test_resume.py, parametrised over the path). The shapes here are
kept few and small: every new shape is one more compilation (seconds on a small CPU).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from toysup.engine import compiler, fused
from toysup.engine.data import sparse_uniform_
from toysup.engine.errors import SpecError
from toysup.engine.events import Notice
from toysup.engine.kinds.relu_output import flops_per_instance_step
from toysup.engine.models.relu_output_compiled import UNIFORM_SCALE, sparse_data
from toysup.engine.options import RunOptions
from toysup.engine.rng import DATA, CounterRNG
from toysup.engine.runner import run_sweep

from helpers import assert_same_results, assert_step_matches_autograd, invoke, make_spec, model_for, train_all

CPU = torch.device("cpu")
TINY = {"n_features": 5, "n_hidden": 2, "steps": 60, "batch_size": 64, "eval_batch_size": 256}



@pytest.fixture
def fresh_compiler(monkeypatch: pytest.MonkeyPatch) -> None:
    """A process state in which nothing has failed to compile yet (restored afterwards)."""
    monkeypatch.setattr(compiler, "_broken", None)
    monkeypatch.setattr(compiler, "_compiled", {})
    monkeypatch.setattr(compiler, "_proven", set())


def test_compiled_data_has_the_eager_draws_bits():
    rng = CounterRNG(torch.tensor([0, 7, 123456789]), CPU)
    p = torch.tensor([1.0, 0.3, 0.02]).view(-1, 1, 1)
    eager = sparse_uniform_(rng, DATA, 9, p, torch.empty(3, 64, 5))
    k1, k2 = rng.keys(DATA, 9)
    compiled = torch.compile(sparse_data, dynamic=False, fullgraph=True)
    drawn = compiled(k1, k2, rng.element_hash((64, 5)), (-1.0 / p) * UNIFORM_SCALE)
    assert torch.equal(drawn, eager)


@pytest.mark.parametrize(("kind", "extra"), [("relu_output", {"dropout": 0.3}), ("relu_hidden", {}),
                                             ("linear", {})])
def test_compiled_gradients_match_autograd(kind: str, extra: dict):
    params = {"n_features": 7, "n_hidden": 3, "batch_size": 33, "importance_decay": 0.8,
              "feature_probability": 0.3, **extra}
    model = model_for(kind, params, [3, 4, 5])
    model.use_compiled_step()
    assert_step_matches_autograd(model)


def test_which_models_have_a_compiled_step():
    spec = make_spec(TINY)
    config = spec.instances()[0].config
    assert model_for("relu_output", {}, [0]).has_compiled_step(config)
    for other in ({"activation": "gelu"}, {"hidden_l1": 0.1}, {"correlation": "correlated"}):
        assert not model_for("relu_output", {}, [0]).has_compiled_step({**config, **other})
    with pytest.raises(ValueError, match="no compiled step"):
        model_for("relu_output", {"activation": "gelu"}, [0]).use_compiled_step()


@pytest.mark.parametrize(("mode", "supported", "instance_steps", "path"), [
    ("off", True, 10**9, "eager"),
    ("on", True, 10, "compiled"),
    ("on", False, 10**9, "eager"),
    ("auto", True, fused.AUTO_MIN_INSTANCE_STEPS - 1, "eager"),  # a short sweep: compiling would not pay
    ("auto", True, fused.AUTO_MIN_INSTANCE_STEPS, "compiled"),
    ("auto", False, 10**9, "eager"),
])
def test_the_step_path_follows_the_option_the_model_and_the_sweeps_size(fresh_compiler, mode, supported,
                                                                        instance_steps, path):
    chosen, note = fused.choose_path(mode, CPU, supported, instance_steps)
    assert chosen == path
    assert (note is not None) == (mode == "on" and not supported)
    if mode == "auto":  # not measured on a GPU yet: auto stays eager there
        assert fused.choose_path(mode, torch.device("cuda"), supported, instance_steps)[0] == "eager"


def test_auto_leaves_small_models_eager_where_compiling_measured_slower(fresh_compiler):
    """At n=5, m=2, batch 32 the compiled step measured 0.22x eager; at n=20, m=5, batch 1024 1.8x (fused.py)."""
    small = flops_per_instance_step(5, 2, 32)
    large = flops_per_instance_step(20, 5, 1024)
    assert small < fused.AUTO_MIN_FLOPS <= flops_per_instance_step(5, 2, 512) < large
    steps = fused.AUTO_MIN_INSTANCE_STEPS
    assert fused.choose_path("auto", CPU, True, steps, flops=small) == ("eager", None)
    assert fused.choose_path("auto", CPU, True, steps, flops=large) == ("compiled", None)
    assert fused.choose_path("on", CPU, True, steps, flops=small) == ("compiled", None)  # asked for: given
    tiny = make_spec({**TINY, "n_features": 5, "n_hidden": 2, "batch_size": 32, "steps": steps})
    assert fused.spec_path("auto", CPU, tiny)[0] == "eager"
    big = make_spec({**TINY, "n_features": 20, "n_hidden": 5, "batch_size": 1024, "steps": steps})
    assert fused.spec_path("auto", CPU, big)[0] == "compiled"


def test_compile_option_is_checked_like_every_run_option():
    assert RunOptions().compile == "auto"
    assert RunOptions.from_dict({"compile": "off"}).compile == "off"
    with pytest.raises(SpecError, match="--compile"):
        RunOptions.from_dict({"compile": "sometimes"})


def test_without_a_compiler_the_run_trains_eagerly_with_one_notice(tmp_path: Path, fresh_compiler,
                                                                  monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(compiler, "_cpp_compiler", lambda: None)
    spec = make_spec({**TINY, "seeds": 2}, {"feature_probability": [1.0, 0.1]})
    notices: list[str] = []
    out = run_sweep(spec, tmp_path / "a", RunOptions(device="cpu", compile="on", max_memory=1e-9),
                    emit=lambda e: notices.append(e.message) if isinstance(e, Notice) else None)
    assert out.status == "completed"
    assert notices == ["compiled step unavailable (no C++ compiler found): training eagerly"]
    assert json.loads((out.run_dir / "run.json").read_text())["step"] == "eager"
    eager = run_sweep(spec, tmp_path / "b", RunOptions(device="cpu", compile="off"))
    assert_same_results(out.run_dir, eager.run_dir)


def test_a_failing_compilation_falls_back_to_the_eager_step_once(tmp_path: Path, fresh_compiler,
                                                                monkeypatch: pytest.MonkeyPatch):
    def broken(fn, **kwargs):
        def run(*args):
            raise RuntimeError("C++ compile error: cc1plus: fatal error\nmore lines")
        return run

    monkeypatch.setattr(torch, "compile", broken)
    spec = make_spec({**TINY, "seeds": 2}, {"feature_probability": [1.0, 0.1]})
    notices: list[str] = []
    out = run_sweep(spec, tmp_path / "a", RunOptions(device="cpu", compile="on", max_memory=1e-9),
                    emit=lambda e: notices.append(e.message) if isinstance(e, Notice) else None)
    assert out.status == "completed"
    assert notices == ["compiled step failed (RuntimeError: C++ compile error: cc1plus: fatal error): training "
                       "eagerly"]  # one line for the whole run, not one per chunk
    assert json.loads((out.run_dir / "run.json").read_text())["step"] == "eager"
    eager = run_sweep(spec, tmp_path / "b", RunOptions(device="cpu", compile="off"))
    assert_same_results(out.run_dir, eager.run_dir)


def test_compiled_results_are_reproducible_and_close_to_the_eager_ones():
    spec = make_spec({**TINY, "seeds": 2}, {"feature_probability": [1.0, 0.1]})
    first, again = train_all(spec, step_path="compiled"), train_all(spec, step_path="compiled")
    eager = train_all(spec)
    assert first[0].step_path == "compiled" and eager[0].step_path == "eager"
    assert torch.equal(first[0].weights["W"], again[0].weights["W"])
    torch.testing.assert_close(first[0].weights["W"], eager[0].weights["W"], rtol=1e-4, atol=1e-6)


def test_bench_json_carries_the_step_path():
    result = invoke("bench", "--instances", "3", "--n-features", 5, "--n-hidden", 2, "--batch-size", 64,
                    "--steps", 2, "--repeats", 1, "--device", "cpu", "--threads", 1, "--compile", "off", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["step_path"] == "eager" and data["step_note"] == ""
