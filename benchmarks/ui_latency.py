"""Does a training worker leave the interface responsive? `python benchmarks/ui_latency.py`.

The TUI trains in a separate worker process (toysup_tui/worker.py) that lowers
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
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from threads import add_prioritised_flag, run_prioritised

from engine.spec import load

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
    worker = None
    rate = None
    with tempfile.TemporaryDirectory() as runs:
        if name != "no worker":
            env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
            env.update(SETTINGS[name], PYTHONUNBUFFERED="1")
            worker = subprocess.Popen([sys.executable, "-m", "toysup_tui.worker", "--runs-dir", runs, "--device",
                                       "cpu"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL, env=env, text=True)
            assert worker.stdin is not None and worker.stdout is not None
            worker.stdin.write(spec_toml)
            worker.stdin.close()
            for line in worker.stdout:  # wait until it trains
                if json.loads(line).get("type") == "progress":
                    break
        lags = play_interface(seconds)
        if worker is not None:
            assert worker.stdout is not None
            worker.send_signal(2)  # SIGINT: the worker stops and records an interrupted run
            progress = [json.loads(line) for line in worker.stdout]
            worker.wait(timeout=60)
            done = [e for e in progress if e.get("type") == "progress"]
            if len(done) >= 2:
                rate = (done[-1]["instance_steps_done"] - done[0]["instance_steps_done"]) / (
                    done[-1]["elapsed_s"] - done[0]["elapsed_s"])
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
