"""Run a whole sweep: plan chunks, hand them to an executor, store each result as it comes back, emit events."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from toysup.engine import adaptive as adapt
from toysup.engine import fused, progress, stopping
from toysup.engine.checkpoint import TrainingState
from toysup.engine.errors import RunDataError, UserError
from toysup.engine.events import (
    ChunkFinished,
    ChunkStarted,
    Event,
    EventSink,
    Notice,
    Phase,
    Progress,
    RoundStarted,
    RunFinished,
    RunStarted,
    ignore,
)
from toysup.engine.executors import Executor, Placement, Work, executor_for
from toysup.engine.lock import LockLost, RunLock
from toysup.engine.options import RECORDED, RunOptions
from toysup.engine.plan import Chunk, plan
from toysup.engine.run.folder import Run
from toysup.engine.run.layout import now_iso
from toysup.engine.run.record import RunRecord
from toysup.engine.run.status import Status
from toysup.engine.runlog import STOP_POLL_S, RunLog
from toysup.engine.spec import Instance, Spec


@dataclass
class Outcome:
    status: Status  # completed, interrupted or failed
    run_dir: Path
    wall_time_s: float
    instance_steps_per_s: float
    error: str = ""


def run_sweep(
    spec: Spec,
    root: Path,
    options: RunOptions | None = None,
    *,
    emit: EventSink = ignore,
    should_stop: Callable[[], bool] = lambda: False,
    executor: Executor | None = None,
) -> Outcome:
    """Train every chunk of ``spec`` and store the results under ``root``.

    ``options`` say where and how (default: ``RunOptions()``), already checked:
    they are the one route for every run option. ``executor``, when given,
    replaces the one the options' backend would make. User errors (a device
    not present, unwritable runs directory, no cluster) raise UserError
    before anything is written. Once the folder exists, every ending is recorded
    in run.json: completed, interrupted (Ctrl-C, SIGTERM or SIGHUP handled as
    KeyboardInterrupt, or ``should_stop``) or failed (any other exception, whose
    message is kept).
    """
    options = options or RunOptions()
    executor = executor or executor_for(options)
    try:
        placement = executor.open(options.device, options.threads)
        wanted = wanted_instances(spec, [])
        chunks = plan(spec, placement.device, options.max_memory_bytes, instances=wanted,
                      budget=placement.budget, slots=placement.slots)
        step = fused.spec_path(options.compile, placement.device, spec)
        run = Run.create(root, spec, device=placement.description, chunks=len(chunks),
                         extra={"backend": executor.name, "seed_mode": spec.seed_mode, **executor.record(),
                                "options": _recorded(options, executor), "instances": len(wanted),
                                "step": step[0]})
        lock = RunLock(run.path).acquire()  # new, so free: a resume of it started now is refused
    except BaseException:
        executor.close()
        raise
    with lock:
        return _train(run, lock, spec, chunks, [], executor, placement, emit, should_stop, options.checkpoint_every,
                      max_memory=options.max_memory_bytes, step=step)


def resume_sweep(
    run_dir: Path,
    options: RunOptions | None = None,
    *,
    emit: EventSink = ignore,
    should_stop: Callable[[], bool] = lambda: False,
    executor: Executor | None = None,
    force: bool = False,
) -> Outcome:
    """Finish an interrupted or failed run in place: train the instances its results.csv lacks.

    Options as for :func:`run_sweep` (:func:`engine.options.resume_options`
    gives ones that keep the run's own backend). Every instance's result
    depends on its seed and config alone, not on which chunk (or backend) it
    trains in, so the resumed run ends with the same results as an
    uninterrupted one (bit for bit on the same kind of device). Each chunk cut
    short continues from its last checkpoint (if it wrote one), the rest train
    from their start.

    One process trains a run at a time (engine/lock.py): a run whose lock is held is refused, unless
    ``force`` and the holder is stale (its pid dead here, or its heartbeat stopped). A run that cannot be
    resumed (completed, run.json or config.toml unreadable) is refused before anything is written, its
    lock and run.json included.
    """
    options = options or RunOptions()
    run = Run.open(run_dir)
    _resumable(run, force)
    lock = RunLock(run.path).acquire(force)
    with lock:
        return _resume(run, lock, options, emit, should_stop, executor, force)


def _resumable(run: Run, force: bool) -> tuple[Spec, RunRecord]:
    """The run's spec and run.json, or UserError saying why it cannot be resumed."""
    try:  # a folder without a readable config.toml (or with links in it) is reported before anything else
        spec = run.spec()
        for folder in ("parts", "weights", "checkpoints"):
            run.folder(folder)
    except RunDataError as exc:
        raise UserError(f"{exc}: it cannot be resumed") from None
    record = run.record()
    if record.damage:
        # record() stands in for a run.json it could not read: writing that back would lose the model,
        # start time and history, so the run is left as it is.
        raise UserError(f"run {run.id} cannot be resumed: {record.damage} (it is left as it is)")
    status = run.status()
    if status is Status.COMPLETED:
        raise UserError(f"run {run.id} is already completed: nothing to resume")
    if status is Status.RUNNING and not force:
        raise UserError(f"run {run.id} is still running (process {record.pid} on {record.host}): "
                        f"--force resumes it anyway")
    return spec, record


def _resume(run: Run, lock: RunLock, options: RunOptions, emit: EventSink, should_stop: Callable[[], bool],
            executor: Executor | None, force: bool) -> Outcome:
    spec, record = _resumable(run, force)  # again, now that this process holds the lock
    executor = executor or executor_for(options)
    try:
        placement = executor.open(options.device, options.threads)
        # Only chunks whose files match the manifest count as finished; the rest train again.
        rows, redo = run.recover(spec)
        done = {r["instance"] for r in rows}
        remaining = [i for i in wanted_instances(spec, rows) if i.index not in done]
        stored = run.stored_chunks()
        # Chunks cut short continue from their checkpoints, with the same instances and chunk numbers.
        left = {i.index: i for i in remaining}
        head: list[Chunk] = []
        resume_from: dict[int, TrainingState] = {}
        for index, state in run.read_checkpoints():
            if state.instances and set(state.instances) <= left.keys():
                head.append(Chunk(index, spec.model, tuple(left.pop(i) for i in state.instances)))
                resume_from[index] = state
            else:  # its chunk was stored after all (a kill between the two writes)
                run.clear_checkpoint(index)
        # Chunks stored but damaged train again as they were, so the folder ends as an uninterrupted run's.
        for index, members in redo.items():
            if members and set(members) <= left.keys() and index not in resume_from:
                head.append(Chunk(index, spec.model, tuple(left.pop(i) for i in members)))
        head.sort(key=lambda c: c.index)
        # The step path the run recorded, whatever --compile says now: a chunk continued from its checkpoint
        # on the other path would not end as an uninterrupted one.
        step = fused.resumed_path(record.step, placement.device)
        first = 1 + max([*stored, *(c.index for c in head)], default=-1)
        chunks = head + plan(spec, placement.device, options.max_memory_bytes, instances=list(left.values()),
                             first_index=first, budget=placement.budget, slots=placement.slots)
        run.update_record(status=Status.RUNNING, ended=None, error="", chunks=len(stored) + len(chunks),
                          pid=os.getpid(), resumed=(record.resumed or 0) + 1, device=placement.description,
                          backend=executor.name, **executor.record(), options=_recorded(options, executor),
                          step=step[0])
    except RunDataError as exc:  # a link or unreadable file met while recovering
        executor.close()
        raise UserError(f"{exc}: it cannot be resumed") from None
    except BaseException:
        executor.close()
        raise
    return _train(run, lock, spec, chunks, rows, executor, placement, emit, should_stop, options.checkpoint_every,
                  resume_from, options.max_memory_bytes, step)


def wanted_instances(spec: Spec, rows: list[dict[str, Any]]) -> list[Instance]:
    """The instances a run should hold once its current work is done: all of a uniform sweep's; an adaptive
    sweep's rounds so far, as its stored ``rows`` decide them (engine/adaptive.py)."""
    if spec.adaptive is None:
        return spec.instances()
    return adapt.schedule(spec, rows).instances(spec)


def _rounds_record(schedule: adapt.Schedule, seeds: int) -> list[dict[str, int]]:
    """run.json's summary of an adaptive run's rounds."""
    return [{"round": r.index, "points": len(r.points), "instances": len(r.points) * seeds, "cells_refined": r.cells,
             "spacing": r.side} for r in schedule.rounds]


def _recorded(options: RunOptions, executor: Executor) -> dict[str, Any]:
    """The options as run.json keeps them: the backend (and its settings) of the executor that actually ran."""
    record = executor.record()
    used = {k: record[k] if record[k] != "" else None for k in RECORDED if k in record}
    return {**options.to_dict(), "backend": executor.name, **used}


MIN_CHUNK = 1  # an out-of-memory chunk is halved and retried down to this many instances


def _halve(chunk: Chunk, first_index: int) -> list[Chunk]:
    middle = len(chunk) // 2
    return [Chunk(first_index, chunk.model, chunk.instances[:middle]),
            Chunk(first_index + 1, chunk.model, chunk.instances[middle:])]


class _Tally:
    """Run-wide progress from chunk-level events: chunks may train side by side and finish in any order.

    Executors report each chunk's own instance-steps; the front ends see the whole run's.
    """

    def __init__(self, emit: EventSink, started: float) -> None:
        self.emit, self.started = emit, started
        self.done = 0  # instance-steps of finished chunks
        self.running: dict[int, int] = {}  # chunk index -> its instance-steps so far

    def __call__(self, event: Event) -> None:
        if isinstance(event, ChunkStarted):
            self.running[event.chunk] = 0  # again from zero if Ray retries a chunk whose worker died
        elif isinstance(event, Progress):
            if event.chunk not in self.running:
                return  # a late event from a chunk already finished
            self.running[event.chunk] = event.instance_steps_done
            event = replace(event, instance_steps_done=self.total, elapsed_s=time.monotonic() - self.started)
        self.emit(event)

    @property
    def total(self) -> int:
        return self.done + sum(self.running.values())

    def finish(self, chunk: Chunk) -> None:
        self.running.pop(chunk.index, None)
        self.done += chunk.steps * len(chunk)

    def drop(self, chunk: Chunk) -> None:
        self.running.pop(chunk.index, None)


def _train(run: Run, lock: RunLock, spec: Spec, chunks: list[Chunk], rows: list[dict[str, Any]], executor: Executor,
           placement: Placement, emit: EventSink, should_stop: Callable[[], bool], checkpoint_every_s: float = 60.0,
           resume_from: dict[int, TrainingState] | None = None, max_memory: int | None = None,
           step: tuple[str, str | None] = (fused.EAGER, None)) -> Outcome:
    """The loop over finished chunks shared by a new and a resumed run; ``rows`` holds results already stored.
    ``step`` is the run's step path and a notice about it (engine/fused.py).

    Stop signals only ask the run to stop here (engine/stopping.py): the step in progress finishes and the
    chunk in training is checkpointed. Before every write the lock's fence is checked (engine/lock.py): a
    process whose lock was broken stops with LockLost and writes nothing more."""
    with stopping.deferred(), RunLog(run.path, owner=lock.held) as log:  # events.jsonl, heartbeat.json
        stop_file = log.stop_check(should_stop)
        fence_checked = time.monotonic()

        def stop_wanted() -> bool:
            nonlocal fence_checked
            if stopping.requested():
                return True
            if time.monotonic() - fence_checked >= STOP_POLL_S:
                lock.check()  # a stale holder learns within half a second of waking that it lost the run
                fence_checked = time.monotonic()
            return stop_file()

        return _train_logged(run, lock, spec, chunks, rows, executor, placement, log.wrap(emit), stop_wanted,
                             checkpoint_every_s, resume_from, max_memory, step)


def _train_logged(run: Run, lock: RunLock, spec: Spec, chunks: list[Chunk], rows: list[dict[str, Any]],
                  executor: Executor, placement: Placement, emit: EventSink, should_stop: Callable[[], bool],
                  checkpoint_every_s: float, resume_from: dict[int, TrainingState] | None,
                  max_memory: int | None = None, step: tuple[str, str | None] = (fused.EAGER, None)) -> Outcome:
    total = sum(c.steps * len(c) for c in chunks)
    planned = spec.n_instances if spec.adaptive is None else len(rows) + sum(len(c) for c in chunks)
    stored = len(run.stored_chunks())
    resumed = sum(resume_from[c.index].step * len(c) for c in chunks if c.index in resume_from) \
        if resume_from else 0
    emit(RunStarted(run_id=run.id, run_dir=str(run.path), name=spec.name, device=placement.description,
                    instances=planned, chunks=stored + len(chunks), instance_steps=total, chunks_done=stored,
                    instance_steps_resumed=resumed))
    step_path, step_note = step
    for note in (*placement.notes, *([step_note] if step_note else [])):
        emit(Notice(note))
    started = time.monotonic()
    tally = _Tally(emit, started)
    chunks_done = stored
    status, error = Status.COMPLETED, ""
    next_index = 1 + max((c.index for c in chunks), default=-1)
    # Chunks cut short with a checkpoint on disk: chunk -> what run.json says of it (what a resume keeps).
    kept: dict[int, dict[str, int]] = {
        c.index: {"chunk": c.index, "step": resume_from[c.index].step, "steps": c.steps,
                  "instances": len(c)} for c in chunks if resume_from and c.index in resume_from}

    def save(chunk: Chunk, state: TrainingState) -> None:
        lock.check()
        run.write_checkpoint(chunk.index, state)
        kept[chunk.index] = {"chunk": chunk.index, "step": state.step, "steps": chunk.steps,
                             "instances": len(chunk)}
        run.update_record(checkpoints=sorted(kept.values(), key=lambda k: k["chunk"]))  # what a kill -9 keeps

    work = Work(emit=tally, should_stop=should_stop, checkpoint=save, checkpoint_every_s=checkpoint_every_s,
                step_path=step_path)
    outstanding = len(chunks)  # chunks submitted and not yet stored

    def next_round() -> None:
        """An adaptive sweep, once every chunk is stored: plan and submit the next round, if any."""
        nonlocal next_index, outstanding
        adaptive_rounds = spec.adaptive.rounds if spec.adaptive is not None else 0
        schedule = adapt.schedule(spec, rows)
        done = {r["instance"] for r in rows}
        todo = [i for i in schedule.instances(spec) if i.index not in done]
        run.update_record(adaptive_rounds=_rounds_record(schedule, spec.seeds), instances=len(done) + len(todo),
                          adaptive_stop=schedule.stop)
        if not todo:
            return
        new = plan(spec, placement.device, max_memory, instances=todo, first_index=next_index, budget=placement.budget,
                   slots=placement.slots)
        next_index += len(new)
        outstanding += len(new)
        work_added = sum(c.steps * len(c) for c in new)
        last = schedule.rounds[-1]
        emit(RoundStarted(round=last.index, rounds=adaptive_rounds, points=len(last.points),
                          cells=last.cells, instances=len(todo), instance_steps=tally.done + work_added))
        for chunk in new:
            executor.submit(chunk)

    try:
        for chunk in chunks:
            executor.submit(chunk, (resume_from or {}).get(chunk.index))
        if spec.adaptive is not None and not chunks:
            next_round()
        for chunk, result in executor.finished(work):
            if isinstance(result, torch.OutOfMemoryError):
                if len(chunk) <= MIN_CHUNK:
                    raise result
                tally.drop(chunk)
                halves = _halve(chunk, next_index)
                next_index += 2
                outstanding += 1
                for half in reversed(halves):
                    executor.submit(half, front=True)
                emit(Notice(f"out of memory in chunk {chunk.index} ({len(chunk)} instances): retrying it as chunks "
                            f"{halves[0].index} and {halves[1].index} of {len(halves[0])} and {len(halves[1])}"))
                continue
            tally.finish(chunk)
            lock.check()  # the fence: a process whose lock was broken meanwhile must not commit
            if result.step_path != step_path:  # compiling failed (a Notice said so): a resume continues eagerly
                step_path = work.step_path = result.step_path
                run.update_record(step=step_path)
            emit(Phase(chunk=chunk.index, phase="writing"))
            run.write_chunk(spec, result, rows)
            run.clear_checkpoint(chunk.index)
            kept.pop(chunk.index, None)
            chunks_done += 1
            elapsed = time.monotonic() - started
            run.update_record(instances_done=len(rows), chunks_done=chunks_done, instance_steps_done=tally.done,
                              wall_time_s=round(elapsed, 3), instance_steps_per_s=round(tally.done / elapsed, 1),
                              checkpoints=sorted(kept.values(), key=lambda k: k["chunk"]))
            emit(ChunkFinished(chunk=chunk.index, elapsed_s=elapsed))
            outstanding -= 1
            if stopping.requested():  # a signal while the chunk was stored: stop before the next one
                raise KeyboardInterrupt
            if spec.adaptive is not None and outstanding == 0:
                next_round()
    except KeyboardInterrupt:
        status = Status.INTERRUPTED
    except LockLost:
        raise  # another process owns the run now: nothing more is written (the executor is closed below)
    except Exception as exc:  # a failed run is recorded, then reported by the caller
        status, error = Status.FAILED, _failure(exc)
        with contextlib.suppress(OSError):  # a full disk: run.json below still says what happened
            run.write_error_log(traceback.format_exc())
    finally:
        executor.close()
    wall = time.monotonic() - started
    rate = tally.done / wall if wall > 0 else 0.0
    lock.check()
    try:
        run.gather_parts()
    except (OSError, RunDataError) as exc:  # the parts stay; resume gathers them
        if status is Status.COMPLETED:
            status = Status.FAILED
        error = error or _failure(exc)
    ending = {"status": status, "ended": now_iso(), "wall_time_s": round(wall, 3),
              "instance_steps_per_s": round(rate, 1), "error": error,
              "checkpoints": sorted(kept.values(), key=lambda k: k["chunk"])}
    record = _record_ending(run, ending)
    kept_words = progress.kept_text(record) if status is not Status.COMPLETED else ""
    emit(RunFinished(status=status, run_dir=str(run.path), wall_time_s=wall, instance_steps_per_s=rate, error=error,
                     kept=kept_words))
    return Outcome(status, run.path, wall, rate, error)


def _failure(exc: BaseException) -> str:
    """A failed run's reason in one line: a full disk says so and names the file it could not write."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        name = Path(str(exc.filename)).name
        temporary = re.fullmatch(r"\.(.+)\.\d+\.tmp", name)  # an atomic write's temporary: name its target
        where = f" while writing {temporary.group(1) if temporary else name}" if exc.filename else ""
        return f"disk full{where}: {exc.strerror or 'no space left on device'}"
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


def _record_ending(run: Run, ending: dict[str, Any]) -> RunRecord:
    """run.json with the run's ending, written atomically; on a disk too full for that, rewritten in place
    if the new text fits the old file's bytes (compact JSON, padded with spaces), so the run still reads
    ``failed`` with its reason rather than ``killed``. Returns run.json as it now stands (or as it should)."""
    record = run.record().with_changes(**ending)
    try:
        run.write_record(record)
    except OSError:
        with contextlib.suppress(OSError):
            run.rewrite_record_in_place(record)
    return record
