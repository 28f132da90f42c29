"""Time to the first trained step and to the end of a sweep: `python benchmarks/first_step.py [PRESET] [-s k=v]`.

Runs the preset through the engine's API in this process (a temporary runs
folder, deleted afterwards) and prints, as one JSON line: seconds spent
importing the engine, seconds from the start of the run to its first progress
event (planning, set-up and any compilation included) with that event's step,
and the whole run's seconds, with the step path it took (``--compile``, as for
run). The first progress event comes within about a quarter second of training
(engine/train.py's PROGRESS_INTERVAL_S), so it bounds the time to the first trained step from above.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

from toysup.engine.events import Event, Progress  # noqa: E402
from toysup.engine.options import RunOptions  # noqa: E402
from toysup.engine.runner import run_sweep  # noqa: E402
from toysup.engine.spec import load  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("preset", nargs="?", default="tms-intro")
    parser.add_argument("-s", "--set", action="append", default=[], dest="sets", help="key=value, as for run")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--compile", default="auto", choices=("auto", "on", "off"))
    args = parser.parse_args()
    imported = time.perf_counter()
    spec = load(args.preset, args.sets)
    first: list[tuple[float, int]] = []

    def emit(event: Event) -> None:
        if isinstance(event, Progress) and not first:
            first.append((time.perf_counter(), event.step))

    with tempfile.TemporaryDirectory() as root:
        start = time.perf_counter()
        options = RunOptions(compile=args.compile, device=args.device, threads=args.threads)
        outcome = run_sweep(spec, Path(root), options, emit=emit)
        step = json.loads((outcome.run_dir / "run.json").read_text())["step"]
        end = time.perf_counter()
    print(json.dumps({
        "preset": args.preset, "sets": args.sets, "device": args.device, "status": outcome.status, "step": step,
        "import_s": round(imported - STARTED, 3),
        "first_progress_s": round(first[0][0] - start, 3) if first else None,
        "first_progress_step": first[0][1] if first else None,
        "run_s": round(end - start, 3),
    }))


if __name__ == "__main__":
    main()
