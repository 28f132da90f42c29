"""How far a run is, in words: from its heartbeat while it trains, from run.json once it stopped.

One place for the lines that `toysup runs`, the CLI's end line, the TUI's stop notice and the
"still training" refusals print, so they all count the same way: finished chunks, and the steps a
chunk cut short keeps in its checkpoint (a stop saves the step it ends at, engine/train.py).
"""

from __future__ import annotations

import math
from typing import Any

from toysup.engine.errors import UserError
from toysup.engine.run.folder import Run
from toysup.engine.run.record import RunRecord
from toysup.engine.run.status import Status
from toysup.engine.runlog import progress_of


def duration(seconds: float | None, unknown: str = "?") -> str:
    """``1:02:03``, ``2:03`` or ``unknown`` (not a finite time of 0 or more); the TUI shows these too."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return unknown
    hours, rest = divmod(round(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _steps(pair: Any) -> tuple[int, int] | None:
    """A [step, steps] pair from a file, or None if it is not one."""
    if not isinstance(pair, (list, tuple)) or len(pair) != 2:
        return None
    step, steps = pair
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in pair) or not 0 <= step <= steps or not steps:
        return None
    return step, steps


def live_text(heartbeat: dict[str, Any] | None) -> str:
    """A training run's progress from its heartbeat: ``step 1,000/2,000 (50%) · ETA 0:41`` for a one-chunk
    run, ``3/7 chunks, chunk 3 at step 500/2,000 · 42% · ETA 5:02`` otherwise; "" when it says nothing yet."""
    if not heartbeat:
        return ""
    chunks, done = _count(heartbeat.get("chunks")), _count(heartbeat.get("chunks_done"))
    training = heartbeat.get("training")
    steps = {k: _steps(v) for k, v in training.items()} if isinstance(training, dict) else {}
    known = progress_of(heartbeat)
    eta = f" · ETA {duration(known[2])}" if known and known[2] is not None else ""
    only, pair = next(iter(steps.items())) if len(steps) == 1 else ("", None)  # the one chunk in training
    if chunks <= 1 and pair is not None:
        return f"step {pair[0]:,}/{pair[1]:,} ({100 * pair[0] / pair[1]:.0f}%){eta}"
    at = f", chunk {only} at step {pair[0]:,}/{pair[1]:,}" if pair is not None else ""
    parts = [f"{done}/{chunks} chunks{at}"] if chunks else []
    if known:
        parts.append(f"{100 * known[0]:.0f}%")
    return " · ".join(parts) + eta if parts else ""


def kept_text(record: RunRecord) -> str:
    """What an unfinished run keeps for its resume, from run.json: ``step 1,000/2,000 of its chunk (50%)``,
    ``3/7 chunks and chunk 3 at step 500/2,000``, ``nothing`` (a resume starts from the beginning)."""
    chunks, done = _count(record.chunks), _count(record.chunks_done)
    saved = []
    for entry in record.checkpoints or []:
        if isinstance(entry, dict) and (pair := _steps([entry.get("step"), entry.get("steps")])) is not None:
            saved.append((_count(entry.get("chunk")), *pair))
    if chunks == 1 and not done and len(saved) == 1:
        _, step, steps = saved[0]
        return f"step {step:,}/{steps:,} of its chunk ({100 * step / steps:.0f}%)"
    parts = [f"{done}/{chunks} chunks"] if done or not saved else []
    parts += [f"chunk {chunk} at step {step:,}/{steps:,}" for chunk, step, steps in sorted(saved)]
    if not done and not saved:
        return "nothing (a resume starts from the beginning)"
    return " and ".join(parts)


def still_training(run: Run) -> str:
    """The one line for a command that needs finished results of a run that has none yet."""
    how = live_text(run.record().heartbeat)
    return (f"run {run.id} is still training{f' ({how})' if how else ''} and has no finished results yet: "
            f"follow it with toysup watch {run.id}")


def require_results(run: Run) -> None:
    """UserError (:func:`still_training`) for a run that is training and has stored no chunk yet. A run
    with finished chunks is read as far as it got: results.csv is rewritten after every chunk."""
    if run.status() is Status.RUNNING and not run.stored_chunks():
        raise UserError(still_training(run))


def require_instance(run: Run, instance: int, finished: set[int]) -> None:
    """UserError for an instance of a training run that has not finished yet (its weights are not stored)."""
    if instance not in finished and run.status() is Status.RUNNING:
        how = live_text(run.record().heartbeat)
        raise UserError(f"instance {instance} of run {run.id} is still training{f' ({how})' if how else ''}: "
                        f"its weights are stored when its chunk finishes")
