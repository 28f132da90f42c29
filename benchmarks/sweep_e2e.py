"""One large sweep end to end, timed: `python benchmarks/sweep_e2e.py --instances 100000 --steps 10000 --out F.json`.

The issue's headline sweep (#25): 100,000 TMS models (n=20, m=5, batch 1024, feature
probability log-spaced from 1 to 0.02, one seed each: benchmarks' bench_spec) trained
for 10,000 steps through the engine's API on ``--device`` with ``--compile`` (default
kernel), then evaluated and stored as a run would. It writes ``--out`` (JSON) after
every progress event, so a run stopped by a time limit still leaves its throughput:
instance-steps done, seconds, the step path, the peak GPU memory, and at the end the
whole run's seconds and status.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from toysup.engine.bench import bench_spec
from toysup.engine.events import Event, Notice, Progress
from toysup.engine.options import RunOptions
from toysup.engine.run.folder import Run
from toysup.engine.run.status import Status
from toysup.engine.runner import run_sweep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--n-features", type=int, default=20)
    parser.add_argument("--n-hidden", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--compile", default="kernel")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    spec = bench_spec(args.instances, args.n_features, args.n_hidden, args.batch_size, args.steps)
    record: dict[str, Any] = {"instances": args.instances, "steps": args.steps, "n_features": args.n_features,
                              "n_hidden": args.n_hidden, "batch_size": args.batch_size, "device": args.device,
                              "compile": args.compile, "status": Status.RUNNING, "notices": []}
    started = time.perf_counter()

    def save() -> None:
        if torch.cuda.is_available():
            record["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        record["elapsed_s"] = round(time.perf_counter() - started, 2)
        args.out.write_text(json.dumps(record, indent=1))

    def emit(event: Event) -> None:
        if isinstance(event, Notice):
            record["notices"].append(event.message)
        elif isinstance(event, Progress):  # the chunk's own counts: a sweep cut into chunks reports each in turn
            record["progress"] = {"chunk": event.chunk, "step": event.step, "steps": event.steps,
                                  "instance_steps_done": event.instance_steps_done,
                                  "chunk_elapsed_s": round(event.elapsed_s, 2),
                                  "instance_steps_per_s": round(event.instance_steps_done / max(event.elapsed_s, 1e-9))}
        save()

    with tempfile.TemporaryDirectory() as runs:
        out = run_sweep(spec, Path(runs) / "e2e", RunOptions(device=args.device, compile=args.compile), emit=emit)
        step_path = Run(out.run_dir).record().step
    record["status"] = out.status
    record["step_path"] = step_path
    record["wall_s"] = round(time.perf_counter() - started, 2)
    save()
    print(json.dumps(record))


if __name__ == "__main__":
    main()
