"""The cost of a mid-chunk checkpoint against a training step: `python benchmarks/checkpoint_cost.py`.

For each case (a preset and its seeds), the first chunk trains twice until a stop after a dozen
progress events (no final evaluation, which is not what is timed): once without checkpoints to time
a step, once with a checkpoint at every progress event, timing ``Run.write_checkpoint`` (safetensors,
temporary file, fsync, rename) into a temporary folder. Prints one line per case: the checkpoint's
median and largest time, its size, the step time, and its share of training at a checkpoint every
60 s (the default ``--checkpoint-every``). One torch thread; run it on an idle machine, or say how
loaded it was.
"""

from __future__ import annotations

import contextlib
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from toysup.engine.checkpoint import TrainingState
from toysup.engine.events import Event, Progress
from toysup.engine.plan import plan
from toysup.engine.run.folder import Run
from toysup.engine.spec import load
from toysup.engine.train import train_chunk

CASES = [("dropout-basis", None), ("tms-intro", 3000), ("tms-geometry", 100)]  # (preset, seeds)
EVERY_S = 60.0


def measure(preset: str, seeds: int | None, root: Path) -> str:
    spec = load(preset, [], [], seeds)
    chunk = plan(spec, torch.device("cpu"), 16 * 2**30)[0]
    folder = root / preset
    (folder / "checkpoints").mkdir(parents=True)
    run = Run(folder)
    times: list[float] = []

    def save(state: TrainingState) -> None:
        started = time.perf_counter()
        run.write_checkpoint(chunk.index, state)
        times.append(time.perf_counter() - started)

    def step_time(checkpoint: Callable[[TrainingState], None] | None) -> float:
        events: list[Event] = []
        with contextlib.suppress(KeyboardInterrupt):  # the stop after a dozen events
            train_chunk(chunk, torch.device("cpu"), emit=events.append, should_stop=lambda: len(events) >= 12,
                        checkpoint=checkpoint, checkpoint_every_s=0.0)
        ticks = [e for e in events if isinstance(e, Progress)]
        return (ticks[-1].elapsed_s - ticks[1].elapsed_s) / (ticks[-1].step - ticks[1].step)

    step = step_time(None)
    step_time(save)
    size = (folder / "checkpoints" / f"chunk-{chunk.index:04d}.safetensors").stat().st_size
    median = statistics.median(times)
    return (f"{preset}: {len(chunk)} instances (n={chunk.config['n_features']}, m={chunk.config['n_hidden']}, batch "
            f"{chunk.config['batch_size']}): checkpoint median {median * 1e3:.1f} ms, max {max(times) * 1e3:.1f} ms "
            f"({len(times)}), {size / 2**20:.2f} MiB; step {step * 1e3:.2f} ms; every {EVERY_S:.0f} s: "
            f"{100 * median / EVERY_S:.3f}% of training")


def main() -> None:
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as root:
        for preset, seeds in CASES:
            print(measure(preset, seeds, Path(root)), flush=True)


if __name__ == "__main__":
    main()
