"""A rough time estimate for a sweep, before it runs.

A run trains each chunk (the instances sharing their structural parameters: shapes, steps, optimiser) one
step at a time, all its instances at once, and the chunks one after another. So a step costs a fixed
overhead (Python, kernel launches: what a small sweep's time is made of) plus its data: batch_size *
n_features per instance ("sample-features"). Calibrated end to end with `toysup run PRESET --threads 1` on
the project's shared 2-core CPU (loaded, so noisy): tms-intro (1 chunk of 56 instances, 8,000 steps)
12.8 s, abs-value (1 chunk of 10, 8,000 steps) 12.6 s, compute-functions (5 chunks of 3, 2,000 steps) 8.2 s
and tms-intro at 64 seeds (1 chunk of 448) 73 s, process start included. The newest finished run on this
host scales that model to this machine; without one the CPU figures above are used. The form shows which,
with a "~", since this is a guess, not a promise (docs/guides/tui.md has the measured ratios).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toysup.engine.errors import RunDataError
from toysup.engine.run.catalogue import list_runs
from toysup.engine.run.status import Status, status_of
from toysup.engine.spec import Spec

STARTUP_S = 1.8  # spawning the process, importing torch, writing the run folder (run.json's wall excludes it)
# Fitted to the runs' own wall times (run.json): tms-intro 11.2 s at 8 seeds and 69.2 s at 64 give the data's
# cost (58 s for 8,000 steps of 1.0e6 more sample-features) and the step's fixed cost; the chunk's own
# (evaluating, writing) from compute-functions' five chunks, 6.2 s.
STEP_S = 3.3e-4  # fixed cost of one optimisation step of a chunk, however few its instances
SAMPLE_FEATURES_PER_S = 1.4e8  # the data's cost on top
CHUNK_S = 0.4  # per chunk: its final metrics, writing its results
SCALE_RANGE = (0.05, 20.0)  # a last run's measured/modelled ratio outside this says more about that run
RUNS_LOOKED_AT = 20


@dataclass(frozen=True)
class Speed:
    """This machine against the calibration above: 2.0 means runs here take twice the modelled time."""

    scale: float
    basis: str  # where the figure came from, shown to the user


def instance_steps(spec: Spec) -> int:
    """Total training work: the sum over instances of their step counts (steps may be swept)."""
    return sum(int(point.get("steps", spec.params.get("steps", 0))) for point in spec.points()) * spec.seeds


def training_seconds(spec: Spec) -> float:
    """Modelled run time (process start aside) on the calibration CPU: per chunk, its own cost plus its steps
    times (the fixed step cost plus its instances' batch_size * n_features)."""
    structural = [p.name for p in spec.param_table().values() if p.structural]
    chunks: dict[tuple[Any, ...], list[float]] = {}  # group -> [steps, sample-features per step]
    for point in spec.points():
        config = {**spec.params, **point}
        chunk = chunks.setdefault(tuple(str(config.get(name)) for name in structural), [0.0, 0.0])
        chunk[0] = max(chunk[0], float(config.get("steps", 0)))
        chunk[1] += float(config.get("batch_size", 1)) * float(config.get("n_features", 1)) * spec.seeds
    return sum(CHUNK_S + steps * (STEP_S + per_step / SAMPLE_FEATURES_PER_S) for steps, per_step in chunks.values())


def measured_speed(runs_dir: Path) -> Speed:
    """This machine's scale from the newest finished run on it (its wall time over the model's), or 1."""
    host = socket.gethostname()
    for run in list_runs(runs_dir)[:RUNS_LOOKED_AT]:
        record = run.record()
        wall = float(record.wall_time_s or 0)
        if record.host != host or status_of(record) is not Status.COMPLETED or wall < 1.0:
            continue  # too short to say anything
        try:
            modelled = training_seconds(run.spec())
        except RunDataError:
            continue
        if modelled > 0 and SCALE_RANGE[0] <= wall / modelled <= SCALE_RANGE[1]:
            return Speed(wall / modelled, f"speed of your last run here ({run.id})")
    return Speed(1.0, "speed of a slow shared CPU, one thread (a rough guess)")


def estimate_seconds(spec: Spec, speed: Speed) -> float:
    """Seconds the sweep should take at ``speed``, start-up included."""
    return STARTUP_S + speed.scale * training_seconds(spec)
