"""Progress events: small records the engine emits through one callback.

Front ends turn them into a progress bar (CLI) or widget messages (TUI); they
also travel as JSON lines from a worker process, hence ``to_json``/``from_json``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar


@dataclass
class Event:
    type: ClassVar[str] = "event"

    def to_json(self) -> str:
        return json.dumps({"type": self.type, **asdict(self)}, separators=(",", ":"))


@dataclass
class RunStarted(Event):
    type: ClassVar[str] = "run_started"
    run_id: str
    run_dir: str
    name: str
    device: str
    instances: int
    chunks: int  # the run's chunks, those stored by an earlier session included
    instance_steps: int  # this session's work: sum over its instances of their steps
    chunks_done: int = 0  # chunks stored by an earlier session (a resumed run)
    instance_steps_resumed: int = 0  # of this session's work, what chunks continued from checkpoints hold already


@dataclass
class RoundStarted(Event):
    """An adaptive sweep starts its next round (engine/adaptive.py): the run's work grows to ``instance_steps``."""

    type: ClassVar[str] = "round_started"
    round: int
    rounds: int  # the last round the sweep may reach
    points: int  # points this round trains
    cells: int  # cells refined to make it
    instances: int  # instances this round still has to train
    instance_steps: int  # the whole run's work so far plus this round's


@dataclass
class ChunkStarted(Event):
    type: ClassVar[str] = "chunk_started"
    chunk: int
    instances: list[int]  # sweep instance indices in this chunk
    steps: int
    worker: str = ""  # host:pid of the process training it (a Ray worker on a cluster)


@dataclass
class Progress(Event):
    """Step ``step`` of ``steps`` in a chunk, with loss-curve points recorded since the last event."""

    type: ClassVar[str] = "progress"
    chunk: int
    step: int
    steps: int
    instance_steps_done: int  # whole run (train_chunk counts its chunk's; the runner makes it run-wide)
    elapsed_s: float
    curve_steps: list[int] = field(default_factory=list)
    curve_losses: list[list[float]] = field(default_factory=list)  # [point][instance in chunk]


PHASES = ("compiling", "training", "evaluating", "writing")


@dataclass
class Phase(Event):
    """A chunk enters a phase that moves no training step: compiling its step (the first step, where compiled),
    back to training, evaluating the final metrics (``done``/``total`` parts so far, when known), writing results.
    Without it a front end's bar would sit still, full or empty, for tens of seconds."""

    type: ClassVar[str] = "phase"
    chunk: int
    phase: str  # one of PHASES
    done: int = 0
    total: int = 0  # 0: no count to show

    def label(self) -> str:
        """``evaluating 2/3`` or ``compiling``."""
        return f"{self.phase} {self.done}/{self.total}" if self.total else self.phase


@dataclass
class ChunkFinished(Event):
    type: ClassVar[str] = "chunk_finished"
    chunk: int
    elapsed_s: float


@dataclass
class RunFinished(Event):
    """The run ended: ``status`` is completed, interrupted or failed."""

    type: ClassVar[str] = "run_finished"
    status: str
    run_dir: str
    wall_time_s: float
    instance_steps_per_s: float
    error: str = ""
    kept: str = ""  # an unfinished run: what a resume starts from, in words (engine/progress.py)


@dataclass
class Notice(Event):
    """Something a user should know that is not an error, e.g. a chunk split after running out of memory."""

    type: ClassVar[str] = "notice"
    message: str


EVENT_TYPES: dict[str, type[Event]] = {
    cls.type: cls
    for cls in (RunStarted, RoundStarted, ChunkStarted, Progress, Phase, ChunkFinished, RunFinished, Notice)
}

EventSink = Callable[[Event], None]


def from_json(line: str) -> Event:
    """An event from its JSON line; ValueError, KeyError or TypeError when the line is not one of ours (an
    event log is read from a run folder, which may be damaged or hostile: every field must have its type)."""
    data: dict[str, Any] = json.loads(line)
    if not isinstance(data, dict):
        raise ValueError("not an event")
    cls = EVENT_TYPES[data.pop("type")]
    event = cls(**data)
    for f in fields(cls):
        if not _fits(getattr(event, f.name), str(f.type)):
            raise TypeError(f"{cls.type}.{f.name} is not {f.type}")
    return event


def _fits(value: Any, kind: str) -> bool:
    """Whether a JSON value has an event field's declared type (``int``, ``float``, ``str``, ``list[...]``)."""
    if kind == "int":
        return type(value) is int
    if kind == "float":
        return type(value) in (int, float)
    if kind == "str":
        return isinstance(value, str)
    if kind.startswith("list[") and kind.endswith("]"):
        return isinstance(value, list) and all(_fits(v, kind[5:-1]) for v in value)
    return True


def ignore(event: Event) -> None:
    """An event sink that drops everything."""
