"""The executor interface: where a run's chunks train.

The runner owns everything about a run (the plan, the store, the retry policy,
the events a front end sees); an executor only trains the chunks it is handed
and gives back each chunk's result as it finishes, in whatever order. A local
process, a Ray cluster or (later) a Slurm job array differ only here.
"""

from __future__ import annotations

import os
import socket
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch

from toysup.engine.checkpoint import TrainingState
from toysup.engine.events import ChunkStarted, EventSink
from toysup.engine.plan import Chunk
from toysup.engine.train import ChunkResult, train_chunk


@dataclass(frozen=True)
class Placement:
    """Where chunks will train, known before the sweep is cut into chunks.

    ``budget`` is the bytes one chunk may use (None: the local device's own
    automatic budget); ``slots`` is how many chunks train at once, so that a
    sweep that would fit one chunk is still spread over every worker.
    """

    device: torch.device  # the kind of device each chunk trains on
    description: str  # for run.json and the RunStarted event, e.g. "cpu" or "ray: 8 x cuda (NVIDIA H100)"
    budget: int | None = None
    slots: int = 1
    notes: tuple[str, ...] = ()  # what the user should know about this placement, sent as Notice events


@dataclass
class Work:
    """What the runner lends an executor for one run."""

    emit: EventSink  # chunk-level events (ChunkStarted, Progress); the runner fills in run-wide totals
    should_stop: Callable[[], bool]
    checkpoint: Callable[[Chunk, TrainingState], None] | None = None
    checkpoint_every_s: float = 60.0
    step_path: str = "eager"  # the run's training step, compiled or eager (engine/fused.py)


class Executor(ABC):
    """Trains chunks. ``open`` once, ``submit`` chunks, iterate ``finished``, ``close`` always."""

    name: str = ""

    @abstractmethod
    def open(self, device: str, threads: int | None) -> Placement:
        """Connect and decide where chunks train; user errors (no such device, no cluster) raise SpecError."""

    @abstractmethod
    def submit(self, chunk: Chunk, resume_from: TrainingState | None = None, front: bool = False) -> None:
        """Queue a chunk (``front``: ahead of those already queued, e.g. the halves of a chunk out of memory)."""

    @abstractmethod
    def finished(self, work: Work) -> Iterator[tuple[Chunk, ChunkResult | torch.OutOfMemoryError]]:
        """Yield each submitted chunk with its result as it finishes, until none is left (chunks submitted
        meanwhile included). A chunk that ran out of memory comes back with the error, for the runner to
        split; any other failure raises. Raises KeyboardInterrupt when ``work.should_stop()`` turns true."""

    @abstractmethod
    def close(self) -> None:
        """Stop whatever is still running and let go of the device or cluster."""

    def record(self) -> dict[str, Any]:
        """What run.json keeps about this backend beyond its name, so that ``toysup resume`` can reuse it."""
        return {}


def run_chunk(chunk: Chunk, device: torch.device, work: Work, resume_from: TrainingState | None = None) -> ChunkResult:
    """Train one chunk where the executor placed it, announcing it first: the one body every executor runs."""
    work.emit(ChunkStarted(chunk=chunk.index, instances=[i.index for i in chunk.instances], steps=chunk.steps,
                           worker=f"{socket.gethostname()}:{os.getpid()}"))
    checkpoint = None if work.checkpoint is None else partial(work.checkpoint, chunk)
    return train_chunk(chunk, device, work.emit, work.should_stop, checkpoint=checkpoint,
                       checkpoint_every_s=work.checkpoint_every_s, resume_from=resume_from,
                       step_path=work.step_path)


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return "cpu"
