"""Run a whole sweep: plan chunks, hand them to an executor, store each result as it comes back, emit events."""

from __future__ import annotations

import contextlib
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from engine import adaptive as adapt
from engine import fused
from engine.errors import RunDataError, UserError
from engine.events import (
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
from engine.executors import Executor, Placement, Work, executor_for
from engine.executors.base import Saved
from engine.lock import RunLock
from engine.options import GIB, RECORDED, RunOptions
from engine.plan import Chunk, plan
from engine.runlog import RunLog
from engine.spec import Instance, Spec
from engine.store import Run, now_iso


@dataclass
class Outcome:
    status: str  # completed, interrupted or failed
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
    device: str | None = None,
    max_memory: int | None = None,
    threads: int | None = None,
    checkpoint_every_s: float | None = None,
) -> Outcome:
    """Train every chunk of ``spec`` and store the results under ``root``.

    ``options`` say where and how (default: ``RunOptions()``); ``device``,
    ``threads``, ``max_memory`` (in bytes, as :func:`engine.plan.plan` takes it)
    and ``checkpoint_every_s`` override single fields of it. ``executor``, when
    given, replaces the one the options' backend would make. User errors (bad
    options or device, unwritable runs directory, no cluster) raise UserError
    before anything is written. Once the folder exists, every ending is recorded
    in run.json: completed, interrupted (Ctrl-C, SIGTERM or SIGHUP handled as
    KeyboardInterrupt, or ``should_stop``) or failed (any other exception, whose
    message is kept).
    """
    options = _merged(options, device, max_memory, threads, checkpoint_every_s)
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
        return _train(run, spec, chunks, [], executor, placement, emit, should_stop, options.checkpoint_every,
                      max_memory=options.max_memory_bytes, step=step)


def resume_sweep(
    run_dir: Path,
    options: RunOptions | None = None,
    *,
    emit: EventSink = ignore,
    should_stop: Callable[[], bool] = lambda: False,
    executor: Executor | None = None,
    device: str | None = None,
    max_memory: int | None = None,
    threads: int | None = None,
    checkpoint_every_s: float | None = None,
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
    ``force`` and the holder is stale (its pid dead here, or its heartbeat stopped).
    """
    options = _merged(options, device, max_memory, threads, checkpoint_every_s)
    run = Run.open(run_dir)
    lock = RunLock(run.path).acquire(force)
    with lock:
        return _resume(run, options, emit, should_stop, executor, force)


def _resume(run: Run, options: RunOptions, emit: EventSink, should_stop: Callable[[], bool],
            executor: Executor | None, force: bool) -> Outcome:
    try:  # a folder without a readable config.toml (or with links in it) is reported before anything else
        spec = run.spec()
        for folder in ("parts", "weights", "checkpoints"):
            run.folder(folder)
    except RunDataError as exc:
        raise UserError(f"{exc}: it cannot be resumed") from None
    info = run.info()
    status = run.status()
    if status == "completed":
        raise UserError(f"run {run.id} is already completed: nothing to resume")
    if status == "running" and not force:
        raise UserError(f"run {run.id} is still running (process {info.get('pid')} on {info.get('host')}): "
                        f"--force resumes it anyway")
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
        resume_from: dict[int, Saved] = {}
        for index, members, tensors, meta in run.read_checkpoints():
            if members and set(members) <= left.keys():
                head.append(Chunk(index, spec.model, tuple(left.pop(i) for i in members)))
                resume_from[index] = (tensors, meta)
            else:  # its chunk was stored after all (a kill between the two writes)
                run.clear_checkpoint(index)
        # Chunks stored but damaged train again as they were, so the folder ends as an uninterrupted run's.
        for index, members in redo.items():
            if members and set(members) <= left.keys() and index not in resume_from:
                head.append(Chunk(index, spec.model, tuple(left.pop(i) for i in members)))
        head.sort(key=lambda c: c.index)
        # The step path the run recorded, whatever --compile says now: a chunk continued from its checkpoint
        # on the other path would not end as an uninterrupted one.
        step = fused.resumed_path(info.get("step"), placement.device)
        first = 1 + max([*stored, *(c.index for c in head)], default=-1)
        chunks = head + plan(spec, placement.device, options.max_memory_bytes, instances=list(left.values()),
                             first_index=first, budget=placement.budget, slots=placement.slots)
        run.update_info(status="running", ended=None, error="", chunks=len(stored) + len(chunks), pid=os.getpid(),
                        resumed=int(info.get("resumed", 0)) + 1, device=placement.description,
                        backend=executor.name, **executor.record(), options=_recorded(options, executor),
                        step=step[0])
    except RunDataError as exc:  # a link or unreadable file met while recovering
        executor.close()
        raise UserError(f"{exc}: it cannot be resumed") from None
    except BaseException:
        executor.close()
        raise
    return _train(run, spec, chunks, rows, executor, placement, emit, should_stop, options.checkpoint_every,
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


def _merged(options: RunOptions | None, device: str | None, max_memory: int | None, threads: int | None,
            checkpoint_every_s: float | None) -> RunOptions:
    """``options`` with the single-field overrides applied, validated again as a whole."""
    return (options or RunOptions()).with_values(
        device=device, threads=threads, checkpoint_every=checkpoint_every_s,
        max_memory=None if max_memory is None else max_memory / GIB)


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


def _train(run: Run, spec: Spec, chunks: list[Chunk], rows: list[dict[str, Any]], executor: Executor,
           placement: Placement, emit: EventSink, should_stop: Callable[[], bool], checkpoint_every_s: float = 300.0,
           resume_from: dict[int, Saved] | None = None, max_memory: int | None = None,
           step: tuple[str, str | None] = (fused.EAGER, None)) -> Outcome:
    """The loop over finished chunks shared by a new and a resumed run; ``rows`` holds results already stored.
    ``step`` is the run's step path and a notice about it (engine/fused.py)."""
    with RunLog(run.path) as log:  # events.jsonl and heartbeat.json: any process can follow the run
        return _train_logged(run, spec, chunks, rows, executor, placement, log.wrap(emit),
                             log.stop_check(should_stop), checkpoint_every_s, resume_from, max_memory, step)


def _train_logged(run: Run, spec: Spec, chunks: list[Chunk], rows: list[dict[str, Any]], executor: Executor,
                  placement: Placement, emit: EventSink, should_stop: Callable[[], bool],
                  checkpoint_every_s: float, resume_from: dict[int, Saved] | None,
                  max_memory: int | None = None, step: tuple[str, str | None] = (fused.EAGER, None)) -> Outcome:
    total = sum(c.steps * len(c) for c in chunks)
    planned = spec.n_instances if spec.adaptive is None else len(rows) + sum(len(c) for c in chunks)
    emit(RunStarted(run_id=run.id, run_dir=str(run.path), name=spec.name, device=placement.description,
                    instances=planned, chunks=len(chunks), instance_steps=total))
    step_path, step_note = step
    for note in (*placement.notes, *([step_note] if step_note else [])):
        emit(Notice(note))
    started = time.monotonic()
    tally = _Tally(emit, started)
    chunks_done = len(run.stored_chunks())
    status, error = "completed", ""
    next_index = 1 + max((c.index for c in chunks), default=-1)

    def save(chunk: Chunk, tensors: dict[str, torch.Tensor], meta: dict[str, int]) -> None:
        run.write_checkpoint(chunk.index, [i.index for i in chunk.instances], tensors, meta)

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
        run.update_info(adaptive_rounds=_rounds_record(schedule, spec.seeds), instances=len(done) + len(todo),
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
            if result.step_path != step_path:  # compiling failed (a Notice said so): a resume continues eagerly
                step_path = work.step_path = result.step_path
                run.update_info(step=step_path)
            emit(Phase(chunk=chunk.index, phase="writing"))
            run.write_chunk(spec, result, rows)
            run.clear_checkpoint(chunk.index)
            chunks_done += 1
            elapsed = time.monotonic() - started
            run.update_info(instances_done=len(rows), chunks_done=chunks_done, instance_steps_done=tally.done,
                            wall_time_s=round(elapsed, 3), instance_steps_per_s=round(tally.done / elapsed, 1))
            emit(ChunkFinished(chunk=chunk.index, elapsed_s=elapsed))
            outstanding -= 1
            if spec.adaptive is not None and outstanding == 0:
                next_round()
    except KeyboardInterrupt:
        status = "interrupted"
    except Exception as exc:  # a failed run is recorded, then reported by the caller
        status, error = "failed", f"{type(exc).__name__}: {exc}"
        with contextlib.suppress(OSError):  # a full disk: run.json below still says what happened
            run.write_error_log(traceback.format_exc())
    finally:
        executor.close()
    wall = time.monotonic() - started
    rate = tally.done / wall if wall > 0 else 0.0
    try:
        run.gather_parts()
    except (OSError, RunDataError) as exc:  # the parts stay; resume gathers them
        if status == "completed":
            status = "failed"
        error = error or f"{type(exc).__name__}: {exc}"
    run.update_info(status=status, ended=now_iso(), wall_time_s=round(wall, 3), instance_steps_per_s=round(rate, 1),
                    error=error)
    emit(RunFinished(status=status, run_dir=str(run.path), wall_time_s=wall, instance_steps_per_s=rate, error=error))
    return Outcome(status, run.path, wall, rate, error)
