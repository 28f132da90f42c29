"""The compiled training step: which path a run takes, and the torch.compile machinery behind it.

A model with a compiled step (``ToyModel.has_compiled_step``) hands a plain,
functional block step to :func:`call`: data generation, forward and backward of
a fixed-size block of instances, which torch.compile (inductor: C++ on CPU,
Triton on CUDA) fuses into a few loops over memory around the batched matmuls.
The shapes are static and the block size fixed per model shape, so one compiled
graph serves every block, chunk and run of that shape (and inductor's on-disk
cache serves later processes).

The compiled step computes the same function as the eager one from the same
random bits, but rounds differently (fused loops, float32 loss reductions): its
numbers are not bit-identical to the eager path's. Each path on its own is
per-instance reproducible and batch-independent; a run records the path it
used (run.json "step") and a resume continues on it.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from typing import Any

import torch

COMPILED, EAGER = "compiled", "eager"
STEP_PATHS = (COMPILED, EAGER)
# auto compiles a run of at least this many instance-steps: a cold compile costs about 20 s on a 2-core CPU
# (2-3 s from inductor's cache), which a 2-3x faster step repays within this much training.
AUTO_MIN_INSTANCE_STEPS = 2_000_000


class CompileFailed(RuntimeError):
    """Compiling (or first running) a step failed: the caller trains eagerly from here on."""


_compiled: dict[Callable[..., Any], Callable[..., Any]] = {}
_proven: set[tuple[Any, ...]] = set()  # (function, argument shapes) that compiled and ran once
_broken: str | None = None  # why compilation failed in this process: every later step runs eagerly


def unavailable_reason(device: torch.device) -> str | None:
    """Why this process cannot compile a step on ``device``, or None when it can."""
    if _broken is not None:
        return _broken
    try:
        import torch._dynamo
    except ImportError as exc:  # pragma: no cover - a torch build without dynamo
        return f"torch.compile is not available ({exc})"
    if not torch._dynamo.is_dynamo_supported():
        return f"torch.compile does not support Python {sys.version_info.major}.{sys.version_info.minor} here"
    if device.type == "cuda":
        from torch.utils._triton import has_triton

        return None if has_triton() else "Triton is not installed"
    if device.type != "cpu":
        return f"no compiled step for {device.type} devices"
    return None if _cpp_compiler() else "no C++ compiler found"


def _cpp_compiler() -> str | None:
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler

        name = get_cpp_compiler()
    except Exception:  # not found, or an inductor without this helper
        return None
    return shutil.which(name) or (name if shutil.which(name.split()[0]) else None)


def choose_path(mode: str, device: torch.device, supported: bool, instance_steps: int) -> tuple[str, str | None]:
    """The step path of a run, and a notice line when the user should know why it is not compiled.

    ``mode`` is the run option (auto, on, off); ``supported`` whether the run's model and configs have a
    compiled step; auto compiles from AUTO_MIN_INSTANCE_STEPS on, on CPUs only (nobody has timed the compiled
    step on a GPU yet: ``on`` compiles there too).
    """
    if mode == "off" or not supported:
        note = "--compile on: this model (or configuration) has no compiled step; training eagerly"
        return EAGER, note if mode == "on" else None
    if mode == "auto" and (instance_steps < AUTO_MIN_INSTANCE_STEPS or device.type != "cpu"):
        return EAGER, None  # short sweeps, and GPUs until the compiled step is measured there (--compile on)
    reason = unavailable_reason(device)
    if reason is not None:
        return EAGER, f"compiled step unavailable ({reason}): training eagerly"
    return COMPILED, None


def resumed_path(recorded: str | None, device: torch.device) -> tuple[str, str | None]:
    """The path a resumed run continues on: the one it recorded (eager for runs from before the switch)."""
    if recorded != COMPILED:
        return EAGER, None
    reason = unavailable_reason(device)
    if reason is None:
        return COMPILED, None
    return EAGER, (f"this run trained with the compiled step, which is unavailable now ({reason}): the rest "
                   "trains eagerly, and may differ from an uninterrupted run in the last digits")


def spec_path(mode: str, device: torch.device, spec: Any) -> tuple[str, str | None]:
    """:func:`choose_path` for a whole sweep (an engine.spec.Spec): supported when every instance's config has a
    compiled step."""
    from engine.models import get_model

    model = get_model(spec.model)
    configs = [i.config for i in spec.instances()]
    supported = all(model.has_compiled_step(c) for c in configs)
    instance_steps = sum(int(c["steps"]) for c in configs)
    return choose_path(mode, device, supported, instance_steps)


def _signature(args: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple((tuple(a.shape), a.dtype, a.device) if isinstance(a, torch.Tensor) else a for a in args)


def call(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` through torch.compile (static shapes, one graph). A failure while compiling a new
    signature raises CompileFailed and turns compilation off in this process; once a signature has run,
    its errors propagate as they are."""
    global _broken
    if _broken is not None:
        raise CompileFailed(_broken)
    compiled = _compiled.get(fn)
    if compiled is None:
        _raise_recompile_limit()
        compiled = _compiled[fn] = torch.compile(fn, dynamic=False, fullgraph=True)
    key = (fn, _signature(args))
    if key in _proven:
        return compiled(*args)
    try:
        out = compiled(*args)
    except (torch.OutOfMemoryError, KeyboardInterrupt):
        raise
    except Exception as exc:
        _broken = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ''}"
        raise CompileFailed(_broken) from exc
    _proven.add(key)
    return out


def _raise_recompile_limit() -> None:
    """A process may train many shapes (one graph each): past dynamo's default limit of 8 graphs per
    function it would run the function eagerly without saying so, a third path. Allow 64."""
    import torch._dynamo

    cfg = torch._dynamo.config
    name = "recompile_limit" if hasattr(cfg, "recompile_limit") else "cache_size_limit"
    setattr(cfg, name, max(getattr(cfg, name), 64))
