"""Turn engine events into terminal progress: a rich bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import time
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from toysup.engine import events as ev
from toysup.engine.run.status import Status
from toysup_tui.printable import print_line, shown

PLAIN_INTERVAL_S = 5.0
MAX_CHUNK_BARS = 8  # chunks training side by side beyond this show in the overall bar only


class ProgressSink:
    """An event sink usable as a context manager around a run."""

    def __init__(self, console: Console, quiet: bool = False, summary_follows: bool = False):
        self.console = console
        self.quiet = quiet
        self.summary_follows = summary_follows  # the caller prints the run's end (status, rate, folder) itself
        self.live = console.is_terminal and not quiet
        self.total = 0
        self.done = 0
        self.resumed = 0  # instance-steps that chunks continued from checkpoints held when the session began
        self.rate = 0.0
        self.finished: ev.RunFinished | None = None  # the run's end, once read
        self._last_plain = 0.0
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._chunk_tasks: dict[int, TaskID] = {}  # one bar per chunk in training (several on a cluster)

    def __enter__(self) -> ProgressSink:
        if self.live:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(bar_width=24),
                TaskProgressColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )
            self._progress.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.__exit__(exc_type, exc, tb)

    def __call__(self, event: ev.Event) -> None:
        if self.quiet:
            return
        if isinstance(event, ev.RunStarted):
            self.total, self.resumed = event.instance_steps, event.instance_steps_resumed
            msg = (f"run {shown(event.run_id)}: {event.instances} instances in {event.chunks} chunk(s) on "
                   f"{shown(event.device)}")
            if event.chunks_done or event.instance_steps_resumed:
                msg += (f"; continuing: {event.chunks_done} chunk(s) stored, {event.instance_steps_resumed:,} "
                        "instance-steps from checkpoints")
            print_line(self.console, msg)
            if self._progress is not None:
                self._task = self._progress.add_task("all chunks", total=self.total, rate="")
        elif isinstance(event, ev.RoundStarted):
            self.total = event.instance_steps
            self.console.print(f"round {event.round} of {event.rounds}: {event.cells} cell(s) disagree, "
                               f"{event.points} new point(s), {event.instances} instances")
            if self._progress is not None and self._task is not None:
                self._progress.update(self._task, total=self.total)
        elif isinstance(event, ev.ChunkStarted):
            if self._progress is not None:
                known = self._chunk_tasks.get(event.chunk)
                if known is not None:  # a chunk started again (Ray retries a chunk whose worker died)
                    self._progress.reset(known)
                elif len(self._chunk_tasks) < MAX_CHUNK_BARS:
                    self._chunk_tasks[event.chunk] = self._progress.add_task(
                        f"chunk {event.chunk}", total=event.steps, rate=f"{len(event.instances)} instances")
        elif isinstance(event, ev.Progress):
            self.done = event.instance_steps_done
            self.rate = max(self.done - self.resumed, 0) / event.elapsed_s if event.elapsed_s > 0 else 0.0
            if self._progress is not None and self._task is not None:
                self._progress.update(self._task, completed=self.done, rate=f"{self.rate:,.0f} inst-steps/s")
                chunk_task = self._chunk_tasks.get(event.chunk)
                if chunk_task is not None:
                    self._progress.update(chunk_task, completed=event.step)
            else:
                now = time.monotonic()
                if now - self._last_plain >= PLAIN_INTERVAL_S or self.done >= self.total:
                    self._last_plain = now
                    pct = 100 * self.done / self.total if self.total else 100.0
                    eta = (self.total - self.done) / self.rate if self.rate > 0 else float("nan")
                    self.console.print(f"progress {pct:5.1f}%  chunk {event.chunk} step {event.step}/{event.steps}"
                                       f"  {self.rate:,.0f} inst-steps/s  ETA {eta:,.0f}s")
        elif isinstance(event, ev.Phase):
            self._phase(event)
        elif isinstance(event, ev.ChunkFinished):
            chunk_task = self._chunk_tasks.pop(event.chunk, None)
            if self._progress is not None and chunk_task is not None:
                self._progress.remove_task(chunk_task)
            elif self._progress is not None and self._task is not None:  # its phases showed on the overall bar
                self._progress.update(self._task, description="all chunks")
        elif isinstance(event, ev.Notice):
            print_line(self.console, f"[yellow]note:[/] {shown(event.message)}")
        elif isinstance(event, ev.RunFinished):
            self._end(event)

    def _end(self, event: ev.RunFinished) -> None:
        """The run's end: the bars of chunks cut short go (the overall bar, once, shows how far it got), and its
        line, unless the caller's summary says it (with the session's own rate for a stopped run)."""
        self.finished = event
        if self._progress is not None:
            for task in self._chunk_tasks.values():
                self._progress.remove_task(task)
            self._chunk_tasks.clear()
        if not self.summary_follows:
            self.console.print(f"{shown(event.status)} {self.end_text()}: {shown(event.run_dir)}")

    def end_text(self) -> str:
        """'in 12.3s (1,234 instance-steps/s)' for the run's end read, '' before it: a stopped run reports the
        rate this sink measured (the event's counts finished chunks only)."""
        event = self.finished
        if event is None:
            return ""
        rate = event.instance_steps_per_s if event.status == Status.COMPLETED or not self.rate else self.rate
        return f"in {event.wall_time_s:.1f}s ({rate:,.0f} instance-steps/s)"

    def _phase(self, event: ev.Phase) -> None:
        """A chunk compiles, evaluates or writes: its bar (or the overall one) says so instead of sitting still."""
        label = event.label()
        if self._progress is not None:
            task = self._chunk_tasks.get(event.chunk, self._task)
            if task is not None:
                name = f"chunk {event.chunk}" if task != self._task else "all chunks"
                text = name if event.phase == "training" else f"{name}: {label}"
                self._progress.update(task, description=text)
        elif event.phase != "training" and (event.phase != "evaluating" or event.done == 0):
            self.console.print(f"chunk {event.chunk}: {event.phase}…")


def make_sink(console: Console, quiet: bool, summary_follows: bool = False) -> ProgressSink:
    return ProgressSink(console, quiet, summary_follows)
