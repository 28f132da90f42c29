"""Does a training worker leave the interface responsive? `python benchmarks/ui_latency.py`.

The TUI trains in a separate, detached process (toysup_tui/detach.py) that lowers
its own priority (nice 5). This starts that worker, exactly as the TUI does, on
a sweep long enough to outlast the measurement, at each thread setting, and
meanwhile plays the interface: every 20 ms it wakes up and does 1 ms of Python
work (a redraw). The lag of a wake-up is how much later than asked that work
finished, less the work itself; its median, 95th percentile and maximum are
printed per setting, with the worker's training rate (instance-steps/s) so a
setting that keeps the interface quick by starving training shows as such.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from threads import add_prioritised_flag, run_prioritised

from toysup.engine.options import RunOptions
from toysup.engine.run.folder import Run
from toysup.engine.run.status import Status
from toysup.engine.runlog import progress_of, read_heartbeat
from toysup.engine.spec import load
from toysup.engine.stop_request import request_stop
from toysup_tui.detach import Launch, start

SETTINGS: dict[str, dict[str, str]] = {
    "no worker": {},
    "worker, 1 thread": {"OMP_NUM_THREADS": "1"},
    "worker, 2 threads": {"OMP_NUM_THREADS": "2"},
    "worker, 2 threads, OMP_WAIT_POLICY=PASSIVE": {"OMP_NUM_THREADS": "2", "OMP_WAIT_POLICY": "PASSIVE"},
}
PERIOD_S = 0.020
WORK_S = 0.001


def play_interface(seconds: float) -> list[float]:
    """Wake every PERIOD_S, spin WORK_S; return each wake-up's lag in milliseconds."""
    lags = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        asked = time.perf_counter() + PERIOD_S
        time.sleep(PERIOD_S)
        start = time.perf_counter()
        while time.perf_counter() - start < WORK_S:
            pass
        lags.append((time.perf_counter() - asked - WORK_S) * 1000)
    return lags


def measure(name: str, seconds: float, spec_toml: str) -> dict[str, float | str]:
    rate = None
    with tempfile.TemporaryDirectory() as runs:
        if name != "no worker":
            saved = {k: os.environ.pop(k) for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY") if k in os.environ}
            os.environ.update(SETTINGS[name])  # the detached trainer inherits this process's environment
            try:
                run = Run(start(Launch(spec_toml, Path(runs), RunOptions(device="cpu"))))
            finally:
                for key in SETTINGS[name]:
                    os.environ.pop(key, None)
                os.environ.update(saved)
            while not (progress_of(read_heartbeat(run.path)) or (0.0, 0.0, None))[1]:  # wait until it trains
                time.sleep(0.1)
        lags = play_interface(seconds)
        if name != "no worker":
            progress = progress_of(read_heartbeat(run.path))
            rate = None if progress is None else progress[1]
            record = run.record()
            request_stop(run.path, record.host, record.pid)  # the trainer stops and records an interrupted run
            while run.status() is Status.RUNNING:
                time.sleep(0.2)
    lags.sort()
    return {"setting": name, "wakeups": len(lags), "median_ms": round(statistics.median(lags), 2),
            "p95_ms": round(lags[int(0.95 * (len(lags) - 1))], 2), "max_ms": round(lags[-1], 2),
            "worker_instance_steps_per_s": None if rate is None else round(rate)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=8.0, help="measurement per setting")
    parser.add_argument("--preset", default="tms-sparsity", help="what the worker trains (a single chunk is best)")
    add_prioritised_flag(parser)
    args = parser.parse_args()
    if args.prioritised:
        run_prioritised(__file__)
        return
    spec_toml = load(args.preset, ["steps=1000000"]).to_toml()
    print(f"interface lag while the worker trains {args.preset}; load average {os.getloadavg()[0]:.1f}")
    print("| setting | median ms | p95 ms | max ms | worker instance-steps/s |")
    print("|---|---|---|---|---|")
    for name in SETTINGS:
        row = measure(name, args.seconds, spec_toml)
        rate = row["worker_instance_steps_per_s"]
        print(f"| {name} | {row['median_ms']} | {row['p95_ms']} | {row['max_ms']} | "
              f"{'-' if rate is None else f'{rate:,}'} |", flush=True)


if __name__ == "__main__":
    main()
