"""torch.compile for a training step: one graph per function and argument shapes, and the fallback when compiling fails.

A model's compiled step (engine/models/relu_output.py) goes through :func:`call`; the first failure while
compiling turns compilation off in this process (:class:`CompileFailed`), and the trainer continues eagerly.
Which step a run takes is decided above, in engine/fused.py; this module knows no model, so the models can
use it.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from typing import Any

import torch


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
        import torch._dynamo  # deferred: dynamo is slow to load, and eager runs never need it
    except ImportError as exc:  # pragma: no cover - a torch build without dynamo
        return f"torch.compile is not available ({exc})"
    if not torch._dynamo.is_dynamo_supported():
        return f"torch.compile does not support Python {sys.version_info.major}.{sys.version_info.minor} here"
    if device.type == "cuda":
        from torch.utils._triton import has_triton  # deferred: CUDA only

        return None if has_triton() else "Triton is not installed"
    if device.type != "cpu":
        return f"no compiled step for {device.type} devices"
    return None if _cpp_compiler() else "no C++ compiler found"


def _cpp_compiler() -> str | None:
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler  # deferred: inductor is slow to load

        name = get_cpp_compiler()
    except Exception:  # not found, or an inductor without this helper
        return None
    return shutil.which(name) or (name if shutil.which(name.split()[0]) else None)


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
    import torch._dynamo  # deferred: dynamo is slow to load, and eager runs never need it

    cfg = torch._dynamo.config
    name = "recompile_limit" if hasattr(cfg, "recompile_limit") else "cache_size_limit"
    setattr(cfg, name, max(getattr(cfg, name), 64))
