"""Run a whole sweep locally: plan chunks, train each, write the run store, emit events."""

from __future__ import annotations

import math
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from engine.errors import SpecError
from engine.events import ChunkFinished, ChunkStarted, EventSink, Notice, RunFinished, RunStarted, ignore
from engine.models import get_model
from engine.plan import Chunk, configure_threads, plan, resolve_device
from engine.spec import Spec
from engine.store import Run, csv_text, now_iso, process_alive
from engine.train import ChunkResult, train_chunk


@dataclass
class Outcome:
    status: str  # completed, interrupted or failed
    run_dir: Path
    wall_time_s: float
    instance_steps_per_s: float
    error: str = ""


def result_columns(spec: Spec) -> list[str]:
    """results.csv's columns: instance, seed, the swept parameters, the model's metrics, diverged."""
    model = get_model(spec.model)
    return ["instance", "seed", *[a.name for a in spec.axes], *[c.name for c in model.columns], "diverged"]


def result_rows(spec: Spec, result: ChunkResult) -> list[dict[str, Any]]:
    axes = [a.name for a in spec.axes]
    rows = []
    for i, inst in enumerate(result.chunk.instances):
        row: dict[str, Any] = {"instance": inst.index, "seed": inst.seed}
        row.update({name: inst.config[name] for name in axes})
        diverged = bool(result.diverged[i])
        for name, values in result.metrics.items():
            value = values[i].item()
            finite = not isinstance(value, float) or math.isfinite(value)
            row[name] = value if finite and not diverged else ""  # a diverged instance's metrics mean nothing
        row["diverged"] = diverged
        rows.append(row)
    return rows


def curve_csv(result: ChunkResult) -> str:
    """curves.csv rows: instance, step, loss, then the model's extra curve columns."""
    extra = {name: values.tolist() for name, values in result.curve_extra.items()}
    rows = (
        {"instance": inst.index, "step": step, "loss": loss, **{n: v[i][k] for n, v in extra.items()}}
        for i, inst in enumerate(result.chunk.instances)
        for k, (step, loss) in enumerate(zip(result.curve_steps, result.curves[i].tolist()))
        if math.isfinite(loss)
    )
    return csv_text(["instance", "step", "loss", *extra], rows)


def feature_csv(spec: Spec, result: ChunkResult) -> str:
    names = [c.name for c in get_model(spec.model).feature_columns]
    arrays = {k: v.tolist() for k, v in result.features.items()}
    rows = (
        {"instance": inst.index, "feature": f, **{k: arrays[k][i][f] for k in names}}
        for i, inst in enumerate(result.chunk.instances)
        for f in range(len(arrays[names[0]][i]) if names else 0)
    )
    return csv_text(["instance", "feature", *names], rows)


def run_sweep(
    spec: Spec,
    root: Path,
    device: str = "auto",
    emit: EventSink = ignore,
    should_stop: Callable[[], bool] = lambda: False,
    max_memory: int | None = None,
    threads: int | None = None,
    checkpoint_every_s: float = 300.0,
) -> Outcome:
    """Train every chunk of ``spec`` and store the results under ``root``.

    User errors (bad device, unwritable runs directory) raise SpecError before
    anything is written. Once the folder exists, every ending is recorded in
    run.json: completed, interrupted (Ctrl-C, SIGTERM handled as KeyboardInterrupt,
    or ``should_stop``) or failed (any other exception, whose message is kept).
    """
    dev = resolve_device(device)
    configure_threads(threads, dev)
    chunks = plan(spec, dev, max_memory)
    run = Run.create(root, spec, device=_device_name(dev), chunks=len(chunks))
    return _train(run, spec, chunks, [], dev, emit, should_stop, checkpoint_every_s)


def resume_sweep(
    run_dir: Path,
    device: str = "auto",
    emit: EventSink = ignore,
    should_stop: Callable[[], bool] = lambda: False,
    max_memory: int | None = None,
    threads: int | None = None,
    checkpoint_every_s: float = 300.0,
) -> Outcome:
    """Finish an interrupted or failed run in place: train the instances its results.csv lacks.

    Every instance's result depends on its seed and config alone, not on which
    chunk it trains in, so the resumed run ends with the same results as an
    uninterrupted one (bit for bit on the same CPU). Work is redone from the
    start of each unfinished chunk.
    """
    run = Run.open(run_dir)
    spec = run.spec()  # a damaged folder (no config.toml) is reported before anything else
    info = run.info()
    if info.get("status") == "completed":
        raise SpecError(f"run {run.id} is already completed: nothing to resume")
    if info.get("status") == "running" and process_alive(info):
        raise SpecError(f"run {run.id} is still running (process {info.get('pid')} on this host)")
    dev = resolve_device(device)
    configure_threads(threads, dev)
    _, rows = run.results()
    done = {r["instance"] for r in rows}
    remaining = [i for i in spec.instances() if i.index not in done]
    run.drop_unrecorded_chunks(done)
    chunk_files = sorted((run.path / "weights").glob("chunk-*.safetensors"))
    first = 1 + max((int(f.stem.split("-")[1]) for f in chunk_files), default=-1)
    saved = run.read_checkpoint()
    resume_from = None
    head: list[Chunk] = []
    if saved is not None and saved[0] and set(saved[0]) <= {i.index for i in remaining}:
        # The chunk that was cut short continues from its checkpoint, with the same instances.
        by_index = {i.index: i for i in remaining}
        head = [Chunk(first, spec.model, tuple(by_index[i] for i in saved[0]))]
        remaining = [i for i in remaining if i.index not in set(saved[0])]
        resume_from = {first: (saved[1], saved[2])}
    chunks = head + plan(spec, dev, max_memory, instances=remaining, first_index=first + len(head))
    run.reopen_parts()
    run.update_info(status="running", ended=None, error="", chunks=first + len(chunks), pid=os.getpid(),
                    resumed=int(info.get("resumed", 0)) + 1)
    return _train(run, spec, chunks, rows, dev, emit, should_stop, checkpoint_every_s, resume_from)


MIN_CHUNK = 1  # an out-of-memory chunk is halved and retried down to this many instances


def _halve(chunk: Chunk, first_index: int) -> list[Chunk]:
    middle = len(chunk) // 2
    return [Chunk(first_index, chunk.model, chunk.instances[:middle]),
            Chunk(first_index + 1, chunk.model, chunk.instances[middle:])]


def _train(run: Run, spec: Spec, chunks: list[Chunk], rows: list[dict[str, Any]], dev: torch.device,
           emit: EventSink, should_stop: Callable[[], bool], checkpoint_every_s: float = 300.0,
           resume_from: dict[int, tuple[dict[str, torch.Tensor], dict[str, int]]] | None = None) -> Outcome:
    """The loop over chunks shared by a new and a resumed run; ``rows`` holds results already stored."""
    total = sum(c.steps * len(c) for c in chunks)
    emit(RunStarted(run_id=run.id, run_dir=str(run.path), name=spec.name, device=_device_name(dev),
                    instances=spec.n_instances, chunks=len(chunks), instance_steps=total))
    started = time.monotonic()
    columns = result_columns(spec)
    done_work = 0
    status, error = "completed", ""
    queue = list(chunks)
    next_index = 1 + max((c.index for c in chunks), default=-1)
    try:
        while queue:
            chunk = queue.pop(0)
            emit(ChunkStarted(chunk=chunk.index, instances=[i.index for i in chunk.instances], steps=chunk.steps))
            try:
                members = [i.index for i in chunk.instances]
                result = train_chunk(chunk, dev, emit, should_stop, done_work, started,
                                     checkpoint=lambda t, m, members=members: run.write_checkpoint(members, t, m),
                                     checkpoint_every_s=checkpoint_every_s,
                                     resume_from=(resume_from or {}).get(chunk.index))
            except torch.OutOfMemoryError:
                if len(chunk) <= MIN_CHUNK:
                    raise
                halves = _halve(chunk, next_index)
                next_index += 2
                queue[0:0] = halves
                if dev.type == "cuda":
                    torch.cuda.empty_cache()
                emit(Notice(f"out of memory in chunk {chunk.index} ({len(chunk)} instances): retrying it as chunks "
                            f"{halves[0].index} and {halves[1].index} of {len(halves[0])} and {len(halves[1])}"))
                continue
            done_work += chunk.steps * len(chunk)
            _store_chunk(run, spec, chunk, result, columns, rows)
            run.clear_checkpoint()
            elapsed = time.monotonic() - started
            run.update_info(instances_done=len(rows), chunks_done=chunk.index + 1, instance_steps_done=done_work,
                            wall_time_s=round(elapsed, 3), instance_steps_per_s=round(done_work / elapsed, 1))
            emit(ChunkFinished(chunk=chunk.index, elapsed_s=elapsed))
    except KeyboardInterrupt:
        status = "interrupted"
    except Exception as exc:  # a failed run is recorded, then reported by the caller
        status, error = "failed", f"{type(exc).__name__}: {exc}"
        (run.path / "error.log").write_text(traceback.format_exc(), encoding="utf-8")
    wall = time.monotonic() - started
    rate = done_work / wall if wall > 0 else 0.0
    run.gather_parts()
    run.update_info(status=status, ended=now_iso(), wall_time_s=round(wall, 3), instance_steps_per_s=round(rate, 1),
                    error=error)
    emit(RunFinished(status=status, run_dir=str(run.path), wall_time_s=wall, instance_steps_per_s=rate, error=error))
    return Outcome(status, run.path, wall, rate, error)


def _store_chunk(run: Run, spec: Spec, chunk: Chunk, result: ChunkResult, columns: list[str],
                 rows: list[dict[str, Any]]) -> None:
    weights = dict(result.weights)
    weights["instance"] = torch.tensor([i.index for i in chunk.instances], dtype=torch.int64)
    if result.snapshot_steps:
        for name, values in result.snapshots.items():
            weights[f"{name}.snapshots"] = values
        weights["snapshot_steps"] = torch.tensor(result.snapshot_steps).expand(len(chunk), -1)
    run.write_part(chunk.index, curve_csv(result), feature_csv(spec, result), weights)
    rows.extend(result_rows(spec, result))
    run.write_results(columns, rows)


def _device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return f"{dev} ({torch.cuda.get_device_name(dev)})"
    return "cpu"

