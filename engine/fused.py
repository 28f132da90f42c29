"""The compiled training step: which path a run takes (the torch.compile machinery behind it: engine/compiler.py).

A model with a compiled step (``ToyModel.has_compiled_step``) hands a plain,
functional block step to ``engine.compiler.call``: data generation, forward and backward of
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

A third path, the fused Triton kernel of the relu_output family (engine/kernel_step.py),
trains many steps per launch with each instance's state on chip. It runs on CUDA
only (on CPU tensors under Triton's interpreter, for the tests) and is chosen by
``--compile kernel``; auto picks a path on a GPU only once a GPU run has measured it
faster (KERNEL_FASTER_FROM), which none has yet.
"""

from __future__ import annotations

import torch

from toysup.engine import kernel_step
from toysup.engine.compiler import CompileFailed, unavailable_reason
from toysup.engine.kinds.relu_output import flops_per_instance_step
from toysup.engine.models import get_model
from toysup.engine.spec import Spec

__all__ = ["AUTO_MIN_INSTANCE_STEPS", "COMPILED", "EAGER", "KERNEL", "KERNEL_FASTER_FROM", "MODE_ALIASES", "STEP_PATHS",
           "CompileFailed", "choose_path", "resumed_path", "spec_path", "unavailable_reason"]

COMPILED, EAGER, KERNEL = "compiled", "eager", "kernel"
STEP_PATHS = (COMPILED, EAGER, KERNEL)
MODE_ALIASES = {"on": COMPILED, "off": EAGER}  # the option's first names
# The fewest instances from which a GPU run (benchmarks/gpu_check.sh) measured the fused kernel faster than the
# eager and compiled steps; None until one has: auto then never picks the kernel.
KERNEL_FASTER_FROM: int | None = None
# auto compiles a run of at least this many instance-steps: a cold compile costs about 20 s on a 2-core CPU
# (2-3 s from inductor's cache), which a 2-3x faster step repays within this much training.
AUTO_MIN_INSTANCE_STEPS = 2_000_000
# ... and only for models whose step has at least this much floating-point work (engine/kinds/relu_output.py's
# count): below it the compiled step's fixed cost per call outweighs what fusing saves. Measured 2026-12-07 on
# the 2-core CPU, idle, 300 instances, 2 threads (toysup bench --n-features --n-hidden --batch-size), compiled /
# eager: 0.22 at 5,340 FLOP (n=5, m=2, batch 32), 0.45 at 20,700, 0.92 at 41,180, 1.01 at 82,140 (n=5, m=2,
# batch 512), 1.26 at 81,140 (n=20, m=5, batch 64), 1.12 at 196,872, 1.62 at 319,220, 1.80 at 1,153,440.
AUTO_MIN_FLOPS = 80_000


def choose_path(mode: str, device: torch.device, supported: bool, instance_steps: int,
                kernel_supported: bool = False, instances: int = 0, flops: int | None = None) -> tuple[str, str | None]:
    """The step path of a run, and a notice line when the user should know why it is not the one asked for.

    ``mode`` is the run option (auto, eager, compiled, kernel; on and off as compiled and eager); ``supported``
    whether the run's model and configs have a compiled step, ``kernel_supported`` whether they have the fused
    kernel, ``flops`` the work of one step of the run's smallest instance (None: not counted). auto compiles
    from AUTO_MIN_INSTANCE_STEPS on and from AUTO_MIN_FLOPS per step, on CPUs only; on CUDA it takes the kernel from
    KERNEL_FASTER_FROM instances once a GPU has measured that, and otherwise trains eagerly and says why.
    """
    given, mode = mode, MODE_ALIASES.get(mode, mode)
    if mode == KERNEL:
        reason = _kernel_unavailable(device, kernel_supported)
        if reason is None:
            return KERNEL, None
        fallback, _ = choose_path(COMPILED if device.type == "cpu" else EAGER, device, supported, instance_steps)
        return fallback, f"--compile kernel: {reason}; training on the {fallback} step"
    if mode == EAGER or (not supported and mode != "auto"):
        note = f"--compile {given}: this model (or configuration) has no compiled step; training eagerly"
        return EAGER, note if mode == COMPILED else None
    if mode == "auto" and device.type == "cuda":
        if kernel_supported and KERNEL_FASTER_FROM is not None and instances >= KERNEL_FASTER_FROM and \
                _kernel_unavailable(device, True) is None:
            return KERNEL, None
        if not (supported or kernel_supported):
            return EAGER, None
        return EAGER, ("--compile auto: no faster step is measured on GPUs yet (compiled and kernel are unmeasured"
                       "): training eagerly; --compile kernel or compiled to try one")
    if mode == "auto" and (not supported or instance_steps < AUTO_MIN_INSTANCE_STEPS or device.type != "cpu"
                           or (flops is not None and flops < AUTO_MIN_FLOPS)):
        return EAGER, None  # short sweeps, small models, and devices where the compiled step is unmeasured
    reason = unavailable_reason(device)
    if reason is not None:
        return EAGER, f"compiled step unavailable ({reason}): training eagerly"
    return COMPILED, None


def _kernel_unavailable(device: torch.device, supported: bool) -> str | None:
    if not supported:
        return "this model (or configuration) has no fused kernel"
    return kernel_step.unavailable_reason(device)


def resumed_path(recorded: str | None, device: torch.device) -> tuple[str, str | None]:
    """The path a resumed run continues on: the one it recorded (eager for runs from before the switch)."""
    if recorded not in (COMPILED, KERNEL):
        return EAGER, None
    reason = unavailable_reason(device) if recorded == COMPILED else _kernel_unavailable(device, True)
    if reason is None:
        return recorded, None
    name = "the compiled step" if recorded == COMPILED else "the fused kernel"
    return EAGER, (f"this run trained with {name}, which is unavailable now ({reason}): the rest "
                   "trains eagerly, and may differ from an uninterrupted run in the last digits")


def spec_path(mode: str, device: torch.device, spec: Spec) -> tuple[str, str | None]:
    """:func:`choose_path` for a whole sweep (an engine.spec.Spec): supported when every instance's config has a
    compiled step (the fused kernel)."""
    model = get_model(spec.model)
    configs = [i.config for i in spec.instances()]
    supported = all(model.has_compiled_step(c) for c in configs)
    kernel_supported = all(kernel_step.supports(spec.model, c) for c in configs)
    instance_steps = sum(int(c["steps"]) for c in configs)
    flops = min(flops_per_instance_step(c["n_features"], c["n_hidden"], c["batch_size"]) for c in configs) \
        if supported and configs else None
    return choose_path(mode, device, supported, instance_steps, kernel_supported, len(configs), flops)


