"""Train one chunk: a batch of instances as one vectorised model, top to bottom.

A chunk's training is a function of (instances, device) returning plain CPU
tensors, so a local loop, a worker process or a cluster backend can all run it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from toysup.engine import fused, kernel_step, stopping
from toysup.engine.checkpoint import TrainingState
from toysup.engine.events import EventSink, Notice, Phase, Progress, ignore
from toysup.engine.models import Hyper, get_model
from toysup.engine.optim import BatchedOptimizer
from toysup.engine.plan import Chunk
from toysup.engine.rng import CounterRNG

CURVE_POINTS = 100  # loss-curve points kept per instance, whatever the step count
PROGRESS_INTERVAL_S = 0.25  # at most this often the losses are copied off the device


@dataclass
class ChunkResult:
    chunk: Chunk
    weights: dict[str, torch.Tensor]  # final weights, (I, ...) each
    curve_steps: list[int]  # 1-based step numbers at which the training loss was recorded
    curves: torch.Tensor  # (I, len(curve_steps)) training loss
    curve_extra: dict[str, torch.Tensor]  # the model's curve_columns, (I, len(curve_steps)) each
    metrics: dict[str, torch.Tensor]  # per-instance columns, (I,) each, including "loss"
    features: dict[str, torch.Tensor]  # per-instance, per-feature arrays, (I, n) each
    wall_time_s: float
    train_time_s: float  # the training loop alone, without the final evaluation
    diverged: torch.Tensor  # (I,) bool: the loss stopped being finite; the instance was frozen
    snapshot_steps: list[int] = field(default_factory=list)  # 0 = the initial weights
    snapshots: dict[str, torch.Tensor] = field(default_factory=dict)  # name -> (I, S, ...) weights over training
    step_path: str = fused.EAGER  # the training step that ran: compiled or eager (engine/fused.py)


def curve_schedule(steps: int, points: int = CURVE_POINTS) -> list[int]:
    """Steps (1-based) at which to record the loss: half log-spaced so the start of
    training is resolved on a log axis, half evenly spaced, always the last step."""
    if steps <= points:
        return list(range(1, steps + 1))
    half = points // 2
    logs = {round(math.exp(math.log(steps) * k / (half - 1))) for k in range(half)}
    lins = {round(steps * k / half) for k in range(1, half + 1)}
    return sorted((logs | lins) - {0})


@torch.no_grad()
def _restore(saved: TrainingState, weights: dict[str, torch.Tensor],
             optimizer: BatchedOptimizer, curves: torch.Tensor, extra: dict[str, torch.Tensor],
             diverged: torch.Tensor, snaps: dict[str, list[torch.Tensor]]) -> None:
    """Load a checkpoint into the freshly initialised training state."""
    for k, w in weights.items():
        w.copy_(saved.weights[k])
    optimizer.load_moments(saved.first_moments, saved.second_moments, saved.optimizer_steps)
    curves.copy_(saved.curves)
    for k, v in extra.items():
        v.copy_(saved.curve_extra[k])
    diverged.copy_(saved.diverged)
    for k in snaps:
        snaps[k] = [s.to(curves.device) for s in saved.snapshots[k].unbind(1)]


def _on_cpu(named: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in named.items()}


def snapshot_schedule(steps: int, count: int) -> list[int]:
    """0 (the initial weights) and ``count`` log-spaced steps ending at the last step."""
    if count <= 0:
        return []
    if count == 1:
        return [0, steps]
    logs = {round(math.exp(math.log(steps) * k / (count - 1))) for k in range(count)}
    return [0, *sorted(logs)]


def train_chunk(
    chunk: Chunk,
    device: torch.device,
    emit: EventSink = ignore,
    should_stop: Callable[[], bool] = lambda: False,
    checkpoint: Callable[[TrainingState], None] | None = None,
    checkpoint_every_s: float = 60.0,
    resume_from: TrainingState | None = None,
    step_path: str = fused.EAGER,
    evaluate: bool = True,
) -> ChunkResult:
    """Train every instance in ``chunk`` for the chunk's step count.

    Raises KeyboardInterrupt if ``should_stop`` turns true or a stop signal arrives
    (engine/stopping.py), so callers handle a cancel and a Ctrl-C the same way: the
    step in progress finishes and the chunk's state goes to ``checkpoint`` first, so
    a resume loses nothing. Every ``checkpoint_every_s`` seconds the
    training state (weights, optimiser moments, curves so far) goes to
    ``checkpoint``; ``resume_from`` continues from such a state, with the same
    result as an uninterrupted chunk (the random streams are keyed by step, so
    they need no saving). ``step_path`` "compiled" trains with the model's compiled
    step; should compiling fail, a Notice says so and the chunk trains eagerly
    (the result's ``step_path`` says which ran). ``evaluate`` False skips the final evaluation (no metrics
    or features: the benchmark times training alone).
    """
    started = time.monotonic()
    configs = [inst.config for inst in chunk.instances]
    hp = Hyper(configs, device)
    rng = CounterRNG(torch.tensor([inst.seed for inst in chunk.instances]), device)
    model = get_model(chunk.model)(hp, rng)
    weights = model.init_weights()
    trained = {k: w for k, w in weights.items() if k not in model.frozen}
    optimizer = BatchedOptimizer(hp.value("optimizer"), trained, hp.tensor("lr"), hp.tensor("weight_decay"))
    diverged = torch.zeros(len(chunk), dtype=torch.bool, device=device)
    if step_path == fused.COMPILED and fused.unavailable_reason(device) is not None:
        step_path = fused.EAGER  # compilation failed in an earlier chunk, which said so
    if step_path == fused.COMPILED:
        model.use_compiled_step()
    if step_path == fused.KERNEL and kernel_step.unavailable_reason(device) is not None:
        step_path = fused.EAGER  # the chooser said why (engine/fused.py)

    steps = chunk.steps
    record = curve_schedule(steps)
    record_at = {s: k for k, s in enumerate(record)}
    curves = torch.full((len(chunk), len(record)), float("nan"), device=device)
    extra = {c.name: torch.full_like(curves, float("nan")) for c in model.curve_columns}
    reported = 0  # curve points already sent in a Progress event
    snap_steps = snapshot_schedule(steps, hp.value("snapshots"))
    snaps: dict[str, list[torch.Tensor]] = {k: [] for k in weights} if snap_steps else {}
    if snap_steps:
        for k, w in weights.items():
            snaps[k].append(w.detach().clone())
    last_report = last_checkpoint = started
    first_step = 1
    if resume_from is not None and model.mid_chunk_checkpoints:
        _restore(resume_from, weights, optimizer, curves, extra, diverged, snaps)
        first_step, reported = resume_from.step + 1, resume_from.reported
        # The first event of a continued chunk says where it continues from.
        emit(Progress(chunk=chunk.index, step=first_step - 1, steps=steps,
                      instance_steps_done=(first_step - 1) * len(chunk), elapsed_s=0.0))
    saved_step = first_step - 1  # the step the newest checkpoint of this chunk holds (0: none)

    def save(step: int) -> None:
        """The training state after ``step`` to ``checkpoint``, uninterruptible by a stop signal."""
        nonlocal saved_step
        if checkpoint is None or not model.mid_chunk_checkpoints or step == saved_step:
            return
        with stopping.deferred():
            first, second = optimizer.moments()
            checkpoint(TrainingState(
                instances=[i.index for i in chunk.instances], step=step, optimizer_steps=optimizer.t,
                reported=reported, weights=_on_cpu(weights), first_moments=_on_cpu(first),
                second_moments=_on_cpu(second), curves=curves.detach().cpu(), curve_extra=_on_cpu(extra),
                diverged=diverged.detach().cpu(), snapshots=_on_cpu({k: torch.stack(v, 1) for k, v in snaps.items()})))
        saved_step = step

    def stop_at(step: int, announced: bool = False) -> None:
        """Stop after ``step``: tell the followers how far the chunk got (unless the last event did), save
        it, raise KeyboardInterrupt."""
        nonlocal reported
        if not announced:
            recorded = sum(1 for s in record if s <= step)
            emit(Progress(chunk=chunk.index, step=step, steps=steps, instance_steps_done=step * len(chunk),
                          elapsed_s=time.monotonic() - started, curve_steps=record[reported:recorded],
                          curve_losses=curves[:, reported:recorded].T.cpu().tolist()))
            reported = recorded
        save(step)
        raise KeyboardInterrupt

    step = first_step - 1
    kernel_done = 0  # the fused kernel trains blocks of steps up to the next recorded or snapshot step
    with stopping.deferred():  # a stop signal lets the step in progress finish (engine/stopping.py)
        for step in range(first_step, steps + 1):
            if step_path == fused.KERNEL:
                if step <= kernel_done:
                    continue
                end = kernel_step.block_end(step, steps, record_at, snap_steps)
                try:
                    loss = kernel_step.train_steps(model, weights, optimizer, diverged, step, end)
                    step = kernel_done = end
                except fused.CompileFailed as exc:  # raised before any state changed: this step runs again, eagerly
                    emit(Notice(f"fused kernel failed ({exc}): training eagerly"))
                    step_path = fused.EAGER
            if step_path != fused.KERNEL:
                model.exact_loss = step in record_at  # the recorded losses must not depend on the chunking
                compiling = step == first_step and step_path == fused.COMPILED  # the first call compiles (or loads)
                if compiling:
                    emit(Phase(chunk=chunk.index, phase="compiling"))
                try:
                    loss, grads = model.loss_and_grads(weights, step)
                except fused.CompileFailed as exc:  # raised before any state changed: this step runs again, eagerly
                    emit(Notice(f"compiled step failed ({exc}): training eagerly"))
                    step_path = fused.EAGER
                    model.use_eager_step()
                    loss, grads = model.loss_and_grads(weights, step)
                if compiling:
                    emit(Phase(chunk=chunk.index, phase="training"))
                # An instance whose loss is no longer finite is frozen at its last finite weights; the
                # others train on (instances never mix, so a NaN cannot spread) and no sync is needed.
                diverged |= ~torch.isfinite(loss)
                optimizer.step(grads, diverged)
                with torch.no_grad():
                    model.after_step(weights, step)

            if step in snap_steps:
                for name, w in weights.items():
                    snaps[name].append(w.detach().clone())
            column = record_at.get(step)
            if column is not None:
                curves[:, column] = loss.detach()
                if extra:
                    with torch.no_grad():
                        for name, values in model.curve_values(weights).items():
                            extra[name][:, column] = values
            if stopping.requested():
                stop_at(step)
            now = time.monotonic()
            if step == steps or now - last_report >= PROGRESS_INTERVAL_S:
                recorded = sum(1 for s in record if s <= step)
                fresh = curves[:, reported:recorded].T.cpu().tolist()
                emit(Progress(chunk=chunk.index, step=step, steps=steps,
                              instance_steps_done=step * len(chunk), elapsed_s=now - started,
                              curve_steps=record[reported:recorded],
                              curve_losses=fresh))
                reported, last_report = recorded, now
                if should_stop():
                    stop_at(step, announced=True)
                if step < steps and now - last_checkpoint >= checkpoint_every_s:
                    save(step)
                    last_checkpoint = now
        if stopping.requested():
            stop_at(step)

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    train_time = time.monotonic() - started
    final = {k: w.detach() for k, w in weights.items()}
    metrics: dict[str, torch.Tensor] = {}
    features: dict[str, torch.Tensor] = {}
    if evaluate:  # the bench times training alone
        try:
            # The evaluation changes no training state, so a stop may cut it short: the trained state is saved
            # and a resume goes straight to the evaluation.
            with stopping.raising():
                emit(Phase(chunk=chunk.index, phase="evaluating", done=0, total=3))
                metrics = {"loss": model.eval_loss(final)}
                emit(Phase(chunk=chunk.index, phase="evaluating", done=1, total=3))
                metrics.update(model.metrics(final))
                emit(Phase(chunk=chunk.index, phase="evaluating", done=2, total=3))
                features = model.feature_metrics(final)
                emit(Phase(chunk=chunk.index, phase="evaluating", done=3, total=3))
        except KeyboardInterrupt:
            save(steps)
            raise
        diverged |= ~torch.isfinite(metrics["loss"])
    return ChunkResult(
        chunk=chunk,
        weights={k: v.cpu() for k, v in final.items()},
        curve_steps=record,
        curves=curves.cpu(),
        curve_extra={k: v.cpu() for k, v in extra.items()},
        diverged=diverged.cpu(),
        metrics={k: v.cpu() for k, v in metrics.items()},
        features={k: v.cpu() for k, v in features.items()},
        wall_time_s=time.monotonic() - started,
        train_time_s=train_time,
        snapshot_steps=sorted(set(snap_steps)),
        snapshots={k: torch.stack(v, 1).cpu() for k, v in snaps.items()},
        step_path=step_path,
    )
