"""A rough time estimate for a sweep, before it runs.

The cost of one instance-step grows with batch_size * n_features (the data drawn
and pushed through the model each step), so speed is measured in those
"sample-features" per second, taken from the newest finished run on this host.
Without one, a deliberately conservative CPU figure is used; the form shows
which, with a "~", since this is a guess, not a promise.
"""

from __future__ import annotations

import socket
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import RunDataError
from engine.spec import Spec
from engine.store import list_runs, run_status

# A slow shared 2-core CPU, one thread, measured: tms-intro 16,767 instance-steps/s x batch 1024 x 5 features
# = 8.6e7; the bench sweep (n=20) 3,426 x 1024 x 20 = 7.0e7. Taken at about 1/3 of that: a guess that errs long.
FALLBACK_SAMPLE_FEATURES_PER_S = 3e7
STARTUP_S = 3.0  # spawning the worker and importing torch
RUNS_LOOKED_AT = 20


@dataclass(frozen=True)
class Speed:
    sample_features_per_s: float
    basis: str  # where the figure came from, shown to the user


def instance_steps(spec: Spec) -> int:
    """Total training work: the sum over instances of their step counts (steps may be swept)."""
    return sum(int(point.get("steps", spec.params.get("steps", 0))) for point in spec.points()) * spec.seeds


def _cost_per_instance_step(spec: Spec) -> float:
    def typical(name: str) -> float:
        if name in spec.params:
            return float(spec.params[name])
        for axis in spec.axes:
            if axis.name == name:
                return float(statistics.median(float(v) for v in axis.values))
        return 1.0

    return typical("batch_size") * typical("n_features")


def _sample_features(spec: Spec, points: list[dict[str, Any]]) -> float:
    total = 0.0
    for point in points:
        config = {**spec.params, **point}
        total += float(config.get("steps", 0)) * float(config.get("batch_size", 1)) * float(
            config.get("n_features", 1))
    return total * spec.seeds


def measured_speed(runs_dir: Path) -> Speed:
    """Speed of the newest finished run on this machine, or the conservative fallback."""
    host = socket.gethostname()
    for run in list_runs(runs_dir)[:RUNS_LOOKED_AT]:
        info = run.info()
        rate = info.get("instance_steps_per_s") or 0
        if info.get("host") != host or run_status(info) != "completed" or rate <= 0:
            continue
        if (info.get("wall_time_s") or 0) < 1.0:
            continue  # too short to say anything
        try:
            cost = _cost_per_instance_step(run.spec())
        except RunDataError:
            continue
        return Speed(rate * cost, f"speed of your last run here ({run.id})")
    return Speed(FALLBACK_SAMPLE_FEATURES_PER_S, "speed of a slow CPU (a rough guess)")


def estimate_seconds(spec: Spec, speed: Speed) -> float:
    """Seconds the sweep should take at ``speed``, start-up included."""
    return STARTUP_S + _sample_features(spec, spec.points()) / speed.sample_features_per_s
