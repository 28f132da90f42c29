"""Where a run's chunks train: this process (local) or a Ray cluster (ray).

A new backend (a Slurm job array through submitit, say) is one more
:class:`Executor` here; the engine and the run store do not change.
"""

from __future__ import annotations

from toysup.engine.errors import SpecError
from toysup.engine.executors.base import Executor, Placement, Work, run_chunk
from toysup.engine.executors.local import LocalExecutor
from toysup.engine.options import BACKENDS, RunOptions

__all__ = ["BACKENDS", "Executor", "LocalExecutor", "Placement", "Work", "executor_for", "make_executor", "run_chunk"]


def make_executor(backend: str = "local", address: str | None = None, gpus_per_chunk: float = 1.0) -> Executor:
    """The executor for ``--backend``; Ray's module (and Ray) load only when asked for."""
    if backend == "local":
        if address:
            raise SpecError("--address is for --backend ray: a local run needs no cluster address")
        return LocalExecutor()
    if backend == "ray":
        from toysup.engine.executors.ray_cluster import RayExecutor  # deferred: Ray, an optional dependency

        return RayExecutor(address=address, gpus_per_chunk=gpus_per_chunk)
    raise SpecError(f"--backend {backend!r} is not valid: expected {' or '.join(BACKENDS)}")


def executor_for(options: RunOptions) -> Executor:
    """The executor that the run options' backend settings ask for."""
    return make_executor(options.backend, options.address, options.gpus_per_chunk)
