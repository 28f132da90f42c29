"""The fused Triton kernel path of the training step: when it can run, and one launch for a block of steps.

The kernel (engine/models/relu_output_triton.py) trains the relu_output family
(relu_output, linear, relu_hidden, relu_output_phase) for many steps per launch,
updating the weights, the optimiser's moments and the diverged flags in place,
so engine.train's progress, stop, checkpoints and resume work on it unchanged.
It runs compiled on a CUDA device, or under Triton's interpreter on CPU tensors
(``TRITON_INTERPRET=1`` before the kernel is first loaded: slow, for tests only).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from types import ModuleType
from typing import Any

import torch

from toysup.engine.compiler import CompileFailed
from toysup.engine.models import get_model
from toysup.engine.models.relu_output import ReluOutput
from toysup.engine.optim import BatchedOptimizer
from toysup.engine.rng import _GOLDEN, DATA, DROPOUT, _i32, fmix32

MAX_BLOCK_STEPS = 256  # steps per launch at most, so progress, stop and checkpoints come at least this often
OPTIMIZERS = {"sgd": 0, "adam": 1, "adamw": 2}

_module: ModuleType | None = None
_proven: set[tuple[Any, ...]] = set()  # kernel specialisations that compiled and ran once in this process
_broken: str | None = None  # why the kernel failed to compile in this process: later chunks train eagerly


def _interpreting() -> bool:
    import triton  # deferred: an optional dependency

    return bool(triton.knobs.runtime.interpret)


def unavailable_reason(device: torch.device) -> str | None:
    """Why the kernel cannot train on ``device`` in this process, or None when it can."""
    if _broken is not None:
        return _broken
    if importlib.util.find_spec("triton") is None:
        return "Triton is not installed"
    interpreted = _module.interpreted if _module is not None else _interpreting()
    if device.type == "cuda":
        return "Triton's interpreter is on (TRITON_INTERPRET=1): no CUDA kernel" if interpreted else None
    if device.type == "cpu" and interpreted:
        return None
    return f"the fused kernel runs on CUDA devices only (on {device.type} only under TRITON_INTERPRET=1)"


def supports(model_name: str, config: dict[str, Any]) -> bool:
    """The kernel covers the relu_output family wherever its compiled step does (ReLU output activation, no
    hidden L1, independent uniform features), with any dropout, importance, lr, weight decay and optimiser."""
    model = get_model(model_name)
    return (issubclass(model, ReluOutput) and model.has_compiled_step(config)
            and config.get("optimizer", "adam") in OPTIMIZERS)


def kernels() -> ModuleType:
    """The Triton module, imported (and its kernels decorated, compiled or interpreted) on first use."""
    global _module
    if _module is None:
        from toysup.engine.models import relu_output_triton  # deferred: Triton, an optional dependency

        relu_output_triton.interpreted = _interpreting()  # type: ignore[attr-defined]
        _module = relu_output_triton
    return _module


def stream_base(seeds: torch.Tensor, stream: int) -> torch.Tensor:
    """The per-instance int32 base of a random stream (CounterRNG._keys), from CounterRNG.seeds."""
    return fmix32(seeds + _i32(_GOLDEN * stream))


def _pow2(value: int) -> int:
    return 1 << max(0, (value - 1).bit_length())


def _tile_rows(batch: int, n_block: int, m_block: int, device: torch.device) -> int:
    """Batch rows per tile: the (rows, n, m) products live in registers on a GPU (8k values over 128 threads;
    unmeasured, a first guess); the interpreter's numpy ops prefer large tiles."""
    budget = 8192 if device.type == "cuda" else 1 << 16
    return max(1, min(_pow2(batch), budget // (n_block * m_block)))


def block_end(first: int, steps: int, *stops: Iterable[int]) -> int:
    """The last step of the launch that starts at ``first``: the next step in any of ``stops`` (recorded losses,
    snapshots), at most MAX_BLOCK_STEPS on, at most ``steps``."""
    end = min(steps, first + MAX_BLOCK_STEPS - 1)
    return min([end, *(s for stop in stops for s in stop if first <= s < end)])


def model_inputs(model: Any) -> dict[str, torch.Tensor]:
    """The per-instance constants the kernel reads, as contiguous float32/int32 tensors."""
    count, n = len(model.hp), model.n
    return {
        "scale": ((-1.0 / model.p) * (1.0 / 2**24)).expand(count, 1, n).reshape(count, n).contiguous(),
        "imp2": model._importance2.expand(count, 1, n).reshape(count, n).contiguous(),
        "q": model.q.reshape(count).contiguous(),
        "data_base": stream_base(model.rng.seeds, DATA),
        "drop_base": stream_base(model.rng.seeds, DROPOUT),
    }


def train_steps(model: Any, weights: dict[str, torch.Tensor], optimizer: BatchedOptimizer,
                diverged: torch.Tensor, first: int, last: int) -> torch.Tensor:
    """Train steps ``first`` to ``last`` (1-based, inclusive) in one launch, in place; returns the loss (I,) of
    step ``last``. ``diverged`` (I,) bool is read and updated like engine.train's."""
    module = kernels()
    count, n, m, batch = len(model.hp), model.n, model.m, model.batch
    inputs = getattr(model, "_kernel_inputs", None)
    if inputs is None:
        inputs = model._kernel_inputs = model_inputs(model)
    W, b = weights["W"], weights["b"]
    if not (W.is_contiguous() and b.is_contiguous()):
        raise ValueError("the fused kernel needs contiguous weights")
    kind = OPTIMIZERS[optimizer.kind]
    steps = last - first + 1
    b1, b2 = optimizer.betas
    t = torch.arange(optimizer.t + 1, optimizer.t + steps + 1, dtype=torch.float64)
    bias1 = (1 - b1**t).to(torch.float32).to(W.device)
    bias2 = ((1 - b2**t) ** 0.5).to(torch.float32).to(W.device)
    moments = ([optimizer.m["W"], optimizer.v["W"], optimizer.m["b"], optimizer.v["b"]] if kind else [W, W, b, b])
    lr = optimizer._lr["W"].reshape(count)
    wd = optimizer._wd["W"].reshape(count)
    loss = torch.empty(count, device=W.device)
    dead = diverged.to(torch.int8)
    BN, BM = _pow2(n), _pow2(m)
    constants = dict(N=n, M=m, B=batch, BN=BN, BM=BM, BB=_tile_rows(batch, BN, BM, W.device), RELU=bool(model.relu),
                     HIDDEN_RELU=bool(model.hidden_relu), DROPOUT=bool(model.uses_dropout), OPT=kind)
    args = (W, b, *moments, inputs["scale"], inputs["imp2"], inputs["q"], lr, wd, inputs["data_base"],
            inputs["drop_base"], bias1, bias2, loss, dead, first, steps, b2, 1 - b1, 1 - b2, optimizer.eps)
    key = (W.device.type, *constants.values())
    if key in _proven:
        module.train_kernel[(count,)](*args, **constants)
    else:  # the first launch of a specialisation compiles it: a failure there leaves the state as it was
        _first_launch(module, count, args, constants)
        _proven.add(key)
    diverged.copy_(dead != 0)
    optimizer.t += steps
    return loss


def _first_launch(module: ModuleType, count: int, args: tuple[Any, ...], constants: dict[str, Any]) -> None:
    """Compile and run a new specialisation; a failure turns the kernel off in this process and raises
    engine.compiler.CompileFailed (Triton compiles before the launch writes anything)."""
    global _broken
    try:
        module.train_kernel[(count,)](*args, **constants)
        if args[0].device.type == "cuda":
            torch.cuda.synchronize(args[0].device)
    except (torch.OutOfMemoryError, KeyboardInterrupt):
        raise
    except Exception as exc:
        text = str(exc).strip()
        _broken = f"{type(exc).__name__}: {text.splitlines()[0][:160] if text else ''}"
        raise CompileFailed(_broken) from exc


def draw(model: Any, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One step's data (I, B, n) and dropout mask (I, B, m) as the kernel draws them (for the tests)."""
    module = kernels()
    count, n, m, batch = len(model.hp), model.n, model.m, model.batch
    inputs = model_inputs(model)
    x = torch.empty(count, batch, n, device=model.hp.device)
    keep = torch.empty(count, batch, m, device=model.hp.device)
    BN, BM = _pow2(n), _pow2(m)
    module.draw_kernel[(count,)](x, keep, inputs["scale"], inputs["q"], inputs["data_base"], inputs["drop_base"],
                                 step, N=n, M=m, B=batch, BN=BN, BM=BM, BB=_tile_rows(batch, BN, BM, x.device))
    return x, keep
