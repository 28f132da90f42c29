"""A chunk's training state part-way through (a checkpoint), and the one pair of functions that encode and
decode its file; the run store writes and reads the file (engine/run/writer.py and recovery.py, atomically
and never through a link, as every file of a run).

The file is safetensors, one per chunk: ``instance`` (the chunk's
sweep indices), ``w.<weight>``, ``m.<weight>`` and ``v.<weight>`` (Adam's moments; none for SGD),
``curves``, ``extra.<curve column>``, ``diverged`` and ``snap.<weight>`` (the snapshots so far, stacked on
dimension 1), with the counters ``step``, ``t`` and ``reported`` as metadata. The layout is the one every
checkpoint has had, so a run interrupted by an older version resumes. The random streams are keyed by
step (engine/rng.py), so they need no saving.

No torch at import: the run store imports this module, and listing runs needs no torch.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from toysup.engine.errors import RunDataError

if TYPE_CHECKING:
    import torch

# The key prefixes of the file's tensors, by the state's field they fill.
WEIGHT, FIRST_MOMENT, SECOND_MOMENT, CURVE_EXTRA, SNAPSHOT = "w.", "m.", "v.", "extra.", "snap."
COUNTERS = ("step", "t", "reported")


@dataclass
class TrainingState:
    """Everything a chunk needs to go on after ``step`` as if it had never stopped. Its tensors are on the CPU:
    for a chunk training on the CPU, the training's own, so save the state before training goes on."""

    instances: list[int]  # the chunk's instances (sweep indices), in its order
    step: int  # the last step trained (1-based)
    optimizer_steps: int  # the optimiser's own step count (Adam's bias correction)
    reported: int  # loss-curve points already sent in Progress events
    weights: dict[str, torch.Tensor]  # (I, ...) each
    first_moments: dict[str, torch.Tensor]  # Adam's m by trained weight ({} for SGD)
    second_moments: dict[str, torch.Tensor]  # Adam's v
    curves: torch.Tensor  # (I, curve points) training loss, NaN where not reached yet
    curve_extra: dict[str, torch.Tensor]  # the model's curve columns, like ``curves``
    diverged: torch.Tensor  # (I,) bool
    snapshots: dict[str, torch.Tensor]  # weight -> (I, snapshots so far, ...)


def encode_checkpoint(state: TrainingState) -> bytes:
    """``state`` as a checkpoint file's bytes."""
    import torch  # deferred: listing runs imports this module and needs no torch
    from safetensors.torch import save  # deferred: loads torch

    tensors = {"instance": torch.tensor(state.instances, dtype=torch.int64), "curves": state.curves,
               "diverged": state.diverged}
    for prefix, named in ((WEIGHT, state.weights), (FIRST_MOMENT, state.first_moments),
                          (SECOND_MOMENT, state.second_moments), (CURVE_EXTRA, state.curve_extra),
                          (SNAPSHOT, state.snapshots)):
        tensors.update({prefix + name: value for name, value in named.items()})
    counters = {"step": state.step, "t": state.optimizer_steps, "reported": state.reported}
    return save({k: v.contiguous() for k, v in tensors.items()}, metadata={k: str(v) for k, v in counters.items()})


def decode_checkpoint(data: bytes, name: str) -> TrainingState:
    """The state in checkpoint file ``name``'s bytes; RunDataError naming it if they are not a whole checkpoint
    (a file cut mid-write by hand, garbled, of another layout)."""
    try:
        return _decode(data)
    except (ValueError, KeyError, TypeError, struct.error) as exc:
        raise RunDataError(f"checkpoint {name} is damaged: {exc}") from None


def _decode(data: bytes) -> TrainingState:
    from safetensors import SafetensorError  # deferred: with the torch half below
    from safetensors.torch import load  # deferred: loads torch

    try:
        tensors = load(data)
    except SafetensorError as exc:  # not a ValueError
        raise ValueError(str(exc)) from None
    counters = {k: int(v) for k, v in _metadata(data).items()}

    def named(prefix: str) -> dict[str, torch.Tensor]:
        return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}

    return TrainingState(
        instances=[int(i) for i in tensors["instance"]], step=counters["step"], optimizer_steps=counters["t"],
        reported=counters["reported"], weights=named(WEIGHT), first_moments=named(FIRST_MOMENT),
        second_moments=named(SECOND_MOMENT), curves=tensors["curves"], curve_extra=named(CURVE_EXTRA),
        diverged=tensors["diverged"], snapshots=named(SNAPSHOT))


def _metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file's bytes (its header is JSON after an 8-byte length)."""
    (size,) = struct.unpack("<Q", data[:8])
    meta = json.loads(data[8:8 + size]).get("__metadata__") or {}
    if not isinstance(meta, dict):
        raise ValueError("metadata is not an object")
    return meta
