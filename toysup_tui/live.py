"""What the app knows about the sweep it shows, folded from the run's event log (engine/runlog.py).

Kept apart from the widgets: the app's reader task applies events here, and the
live screen (which may be closed and reopened mid-run) redraws from it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from toysup.engine import events as ev
from toysup.engine.analysis.aggregate import quartiles
from toysup.engine.analysis.series import Band
from toysup.engine.progress import duration
from toysup.engine.results import point_label
from toysup.engine.run.status import Status
from toysup.engine.spec import Spec
from toysup_tui.detach import WorkerError
from toysup_tui.render.status import LiveState


@dataclass
class LiveRun:
    """Progress of one sweep. ``version`` grows with every change, so views redraw only when needed."""

    spec: Spec
    requested_device: str = "auto"
    device: str = ""
    run_status: Status | None = None  # the run's own status: from its events, or the store's once its process is gone
    state: LiveState | None = LiveState.STARTING  # the view's transient state, shown while set (render/status.py)
    run_id: str = ""
    run_dir: str = ""
    error: str = ""
    instances: int = 0
    chunks: int = 0
    total_work: int = 0  # instance-steps
    done_work: int = 0
    resumed_work: int = 0  # of done_work, what chunks continued from their checkpoints held at the start
    chunks_done: int = 0
    kept: str = ""  # a stopped run: what its resume starts from, in words (RunFinished.kept)
    running: dict[int, tuple[int, int]] = field(default_factory=dict)  # chunk in training -> (step, steps)
    phases: dict[int, str] = field(default_factory=dict)  # chunk -> what it does now when not training (ev.Phase)
    elapsed_s: float = 0.0
    started_at: float = field(default_factory=time.monotonic)
    version: int = 0
    _point_of: dict[int, int] = field(default_factory=dict)
    _members: dict[int, list[int]] = field(default_factory=dict)  # chunk -> its sweep instance indices
    # sweep point -> step -> losses of its seeds seen so far
    _losses: dict[int, dict[int, list[float]]] = field(default_factory=dict)
    _quartiles: dict[int, dict[int, tuple[int, tuple[float, float, float]]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._point_of = {inst.index: inst.point for inst in self.spec.instances()}
        self.instances = self.spec.n_instances

    @property
    def status(self) -> Status | LiveState:
        """What the view shows: its transient state while one is set, else the run's status."""
        if self.state is not None:
            return self.state
        return self.run_status if self.run_status is not None else LiveState.STARTING

    @property
    def finished(self) -> bool:
        """The run ended (whatever way), or its trainer never started one."""
        return self.state is LiveState.LAUNCH_FAILED or self.run_status not in (None, Status.RUNNING)

    @property
    def rate(self) -> float:
        """Instance-steps per second so far (of this session's training)."""
        return max(self.done_work - self.resumed_work, 0) / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        if self.finished or self.rate <= 0:
            return None
        return (self.total_work - self.done_work) / self.rate

    @property
    def fraction(self) -> float:
        return self.done_work / self.total_work if self.total_work else 0.0

    def apply(self, event: ev.Event | WorkerError) -> None:
        """Fold one event from the worker into the state."""
        self.version += 1
        if isinstance(event, WorkerError):
            self.state, self.error = LiveState.LAUNCH_FAILED, event.message
        elif isinstance(event, ev.RunStarted):
            self.run_status = Status.RUNNING
            self.state = LiveState.CANCELLING if self.state is LiveState.CANCELLING else None
            self.run_id, self.run_dir, self.device = event.run_id, event.run_dir, event.device
            self.instances, self.chunks, self.total_work = event.instances, event.chunks, event.instance_steps
            self.chunks_done, self.resumed_work = event.chunks_done, event.instance_steps_resumed
        elif isinstance(event, ev.RoundStarted):  # an adaptive sweep's next round: more work than announced
            self.total_work = event.instance_steps
            self.instances += event.instances
        elif isinstance(event, ev.ChunkStarted):
            self.running[event.chunk] = (0, event.steps)
            self._members[event.chunk] = list(event.instances)
        elif isinstance(event, ev.Progress):
            if event.chunk in self.running:
                self.running[event.chunk] = (event.step, event.steps)
            self.done_work, self.elapsed_s = event.instance_steps_done, event.elapsed_s
            for step, losses in zip(event.curve_steps, event.curve_losses):
                for instance, loss in zip(self._members.get(event.chunk, []), losses):
                    if loss == loss:  # skip NaN (a diverged instance)
                        point = self._point_of.get(instance, 0)
                        self._losses.setdefault(point, {}).setdefault(step, []).append(loss)
        elif isinstance(event, ev.Phase):
            if event.phase == "training":
                self.phases.pop(event.chunk, None)
            else:
                self.phases[event.chunk] = event.label()
        elif isinstance(event, ev.ChunkFinished):
            self.chunks_done += 1
            self.running.pop(event.chunk, None)
            self.phases.pop(event.chunk, None)
            self._members.pop(event.chunk, None)
            self.elapsed_s = event.elapsed_s
        elif isinstance(event, ev.RunFinished):
            self.run_status, self.state = Status.parse(event.status), None
            self.error, self.kept = event.error, event.kept
            self.elapsed_s = event.wall_time_s
            self.run_dir = event.run_dir or self.run_dir

    @property
    def chunk_fraction(self) -> float:
        """How far the chunks now training are, on average (when none is: 1 once the run completed, else 0)."""
        if not self.running:
            return 1.0 if self.run_status is Status.COMPLETED else 0.0
        return sum(step / max(steps, 1) for step, steps in self.running.values()) / len(self.running)

    def chunk_label(self) -> str:
        """``chunk 3/10`` while one chunk trains, ``4 chunks`` while several train side by side."""
        if len(self.running) > 1:
            return f"{len(self.running)} chunks"
        if self.running:
            return f"chunk {next(iter(self.running)) + 1}/{self.chunks}"
        return "chunk"

    def phase_text(self) -> str:
        """What the chunks in training do besides stepping, e.g. ``chunk 1: compiling…`` (else empty):
        compiling and evaluating move no bar for many seconds."""
        return " · ".join(f"chunk {chunk + 1}: {phase}…" for chunk, phase in sorted(self.phases.items())
                          if chunk in self.running)

    def mark_cancelling(self) -> None:
        if not self.finished:
            self.state = LiveState.CANCELLING
            self.version += 1

    def mark_gone(self, status: Status) -> None:
        """The run stopped training without a last event in its log (its process was killed): ``status``
        is what the store now says of it (:meth:`engine.run.folder.Run.status`)."""
        if self.finished:
            return
        self.version += 1
        if self.state is LiveState.CANCELLING and status in (Status.KILLED, Status.RUNNING):
            status = Status.INTERRUPTED
        self.run_status, self.state = (Status.KILLED if status is Status.RUNNING else status), None
        if self.run_status is Status.KILLED:
            self.error = "its process ended without recording how (killed): r resumes it"

    def point_labels(self) -> list[str]:
        """A short label per sweep point, like ``feature_probability=0.1``."""
        return [point_label(p, short=True) for p in self.spec.points()]

    def loss_bands(self) -> list[Band]:
        """Per sweep point with data so far: median and 25th-75th percentile of the loss over seeds, by step."""
        labels = self.point_labels()
        bands = []
        for point in sorted(self._losses):
            by_step = self._losses[point]
            label = labels[point] if point < len(labels) else str(point)
            band = Band(label, n=max((len(v) for v in by_step.values()), default=0))
            cache = self._quartiles.setdefault(point, {})
            for step in sorted(by_step):
                values = by_step[step]
                known = cache.get(step)
                if known is None or known[0] != len(values):  # a step's seeds may arrive in several chunks
                    known = cache[step] = (len(values), quartiles(values))
                band.add(step, known[1])
            bands.append(band)
        return bands


def format_duration(seconds: float | None) -> str:
    """``1:02:03``, ``2:03`` or ``—`` for unknown (engine.progress.duration, which `toysup runs` uses too)."""
    return duration(seconds, unknown="—")
