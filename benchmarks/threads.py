"""How many CPU threads should the engine use? `python benchmarks/threads.py [--instances 30,300,3000]`.

Times the engine's steady-state step (engine.bench's timing: set-up and first
touches taken out) in a fresh process per configuration, because OpenMP reads
its environment (OMP_WAIT_POLICY, GOMP_SPINCOUNT) once, when torch loads. Each
configuration runs on the machine as it is ("idle") and with one extra process
spinning on a core ("loaded"), in rounds that alternate the configurations so
that drifting background load hits all of them alike. Prints one row per
(condition, configuration) with instance-steps/s per instance count, the median
over rounds; --json FILE keeps the raw samples. On a machine shared with other
work, --prioritised makes the others yield (see run_prioritised), so that "idle"
means idle and "loaded" means exactly one extra busy process. The README's
thread table comes from this script.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

CONFIGS: dict[str, tuple[int, dict[str, str]]] = {
    "1 thread": (1, {}),
    "2 threads": (2, {}),
    "2 threads, OMP_WAIT_POLICY=PASSIVE": (2, {"OMP_WAIT_POLICY": "PASSIVE"}),
    "2 threads, GOMP_SPINCOUNT=10000": (2, {"GOMP_SPINCOUNT": "10000"}),
}


def child(threads: int, counts: list[int], repeats: int) -> None:
    """Print one JSON line per instance count, {instances: instance-steps/s}, for the engine at ``threads``
    threads (the median of ``repeats``, each over 3,000 instance-steps after a warm-up)."""
    import torch

    from toysup.engine.bench import EngineTrainer, bench_spec

    torch.set_num_threads(threads)
    cpu = torch.device("cpu")
    for count in counts:
        trainer = EngineTrainer(bench_spec(count, 20, 5, 1024, steps=1), cpu)
        trainer.train_time(1)
        steps = max(1, 3000 // count)
        rate = statistics.median(count * steps / trainer.time(1, steps) for _ in range(repeats))
        print(json.dumps({count: rate}), flush=True)


def measure(name: str, counts: list[int], repeats: int, limit_s: float) -> dict[int, float | None]:
    """One configuration in a fresh process; a count not done within ``limit_s`` in all is None (too slow)."""
    threads, env = CONFIGS[name]
    command = [sys.executable, __file__, "--child", str(threads), "--instances", ",".join(map(str, counts)),
               "--repeats", str(repeats)]
    try:
        done = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True,
                              timeout=limit_s, check=True)
        output = done.stdout
    except subprocess.TimeoutExpired as exc:
        output = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
    rates: dict[int, float | None] = dict.fromkeys(counts)
    for line in output.splitlines():
        rates.update({int(k): v for k, v in json.loads(line).items()})
    print(f"{name}: {rates}", file=sys.stderr, flush=True)
    return rates


def _median_cell(rates: list[float | None], limit_s: float) -> str:
    """The median over rounds; a round that ran out of time counts as slower than any that finished."""
    if all(r is not None for r in rates):
        return f"{statistics.median(r for r in rates if r is not None):,.0f}"
    ordered = sorted(rates, key=lambda r: -1.0 if r is None else r)
    middle = ordered[(len(ordered) - 1) // 2]
    return f"timed out ({limit_s:.0f} s)" if middle is None else f"{middle:,.0f}"


def add_prioritised_flag(parser: argparse.ArgumentParser) -> None:
    """--prioritised, which a script's main() answers with :func:`run_prioritised`."""
    parser.add_argument("--prioritised", action="store_true",
                        help="run at the top priority in a session of its own (Linux, root): others yield, as if idle")


def run_prioritised(script: str) -> None:
    """Rerun ``script`` with this process's arguments less --prioritised, in a session of its own whose autogroup
    has nice -20 (Linux, root), so that the other processes of a shared machine yield to it: the nearest thing
    to an idle box. With autogroup scheduling a process's own nice value only ranks it within its session,
    hence the session."""
    argv = [a for a in sys.argv[1:] if a != "--prioritised"]
    code = ("import os, runpy, sys; open('/proc/self/autogroup', 'w').write('-20'); "
            f"sys.argv = {[script, *argv]!r}; sys.path.insert(0, os.path.dirname(sys.argv[0])); "
            "runpy.run_path(sys.argv[0], run_name='__main__')")
    subprocess.run([sys.executable, "-c", code], start_new_session=True, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--instances", default="30,300,3000")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--limit", type=float, default=120.0, help="seconds one configuration may take")
    parser.add_argument("--json", type=Path, help="also write the raw samples to this file")
    parser.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    add_prioritised_flag(parser)
    args = parser.parse_args()
    if args.prioritised:
        run_prioritised(__file__)
        return
    counts = [int(c) for c in args.instances.split(",")]
    if args.child:
        child(args.child, counts, args.repeats)
        return
    samples: dict[tuple[str, str], list[dict[int, float]]] = {}
    loads: dict[str, list[float]] = {}
    for condition in ("idle", "loaded"):
        burner = None
        if condition == "loaded":
            burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            time.sleep(1.0)
        try:
            for _ in range(args.rounds):
                for name in CONFIGS:
                    samples.setdefault((condition, name), []).append(measure(name, counts, args.repeats, args.limit))
            loads[condition] = [round(x, 2) for x in os.getloadavg()]
        finally:
            if burner is not None:
                burner.kill()
                burner.wait()
    if args.json:
        args.json.write_text(json.dumps({
            "cpu_count": os.cpu_count(), "load_average_after": loads,
            "samples": [{"condition": c, "config": n, "rates": r} for (c, n), r in samples.items()]}))
    print(f"engine instance-steps/s (n=20, m=5, batch 1024), median of {args.rounds} rounds of 3,000 "
          f"instance-steps each; load average after: {loads}")
    print("| condition | configuration | " + " | ".join(f"{c:,} instances" for c in counts) + " |")
    print("|---|---|" + "---|" * len(counts))
    for (condition, name), runs in samples.items():
        cells = [_median_cell([r[c] for r in runs], args.limit) for c in counts]
        print(f"| {condition} | {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
