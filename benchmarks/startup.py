"""How fast does toysup open? `python benchmarks/startup.py [--vs OTHER_TREE] [--runs-dir DIR] [-n 7]`.

Times, from outside, the whole process of ``toysup runs``, ``presets`` and ``params``
(start to exit) and the TUI's time to first paint: ``toysup tui`` started in a
pseudo-terminal of 80x24, timed until its presets table (the name of a bundled
preset) reaches the terminal, then quit. With ``--vs`` the same is timed with
another source tree (e.g. a checkout of main) on the path, in turn A B A B ...,
and each line gives both medians and their ratio, pair by pair, so that a
machine whose load drifts still compares like with like.
"""

from __future__ import annotations

import argparse
import os
import pty
import select
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
MARKER = b"abs-value"  # the first bundled preset (alphabetical): in the presets table once it is painted
CLI = {"runs": ["runs"], "presets": ["presets"], "params": ["params"]}


def _env(tree: Path, runs_dir: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(tree), "TOYSUP_RUNS_DIR": str(runs_dir), "COLUMNS": "80",
            "LINES": "24", "TERM": "xterm-256color"}


def time_cli(tree: Path, runs_dir: Path, args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "toysup_tui.cli", *args], env=_env(tree, runs_dir), check=True, cwd=tree,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def time_first_paint(tree: Path, runs_dir: Path, timeout: float = 60.0) -> float:
    """Seconds from starting ``toysup tui`` in an 80x24 pseudo-terminal to its presets table on screen."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: the TUI, on the pseudo-terminal
        os.environ.update(_env(tree, runs_dir))
        os.chdir(tree)  # python -m puts the working directory first on the path
        os.execv(sys.executable, [sys.executable, "-m", "toysup_tui.cli", "tui"])
    import fcntl
    import struct
    import termios

    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    start = time.perf_counter()
    seen = b""
    try:
        while time.perf_counter() - start < timeout:
            ready, _, _ = select.select([fd], [], [], 0.05)
            if ready:
                try:
                    seen = (seen + os.read(fd, 65536))[-4096:]
                except OSError:
                    break
                if MARKER in seen:
                    return time.perf_counter() - start
        raise RuntimeError(f"no first paint within {timeout:.0f} s (last output: {seen[-200:]!r})")
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(fd)


def measure(tree: Path, runs_dir: Path) -> dict[str, float]:
    runs_dir = runs_dir.resolve()
    times = {name: time_cli(tree, runs_dir, args) for name, args in CLI.items()}
    times["tui first paint"] = time_first_paint(tree, runs_dir)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vs", type=Path, help="another source tree to compare with (B)")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"), help="runs directory to list")
    parser.add_argument("-n", type=int, default=7, help="repeats (median reported)")
    args = parser.parse_args()
    trees = [HERE] + ([args.vs.resolve()] if args.vs else [])
    samples: list[list[dict[str, float]]] = [[] for _ in trees]
    measure(HERE, args.runs_dir)  # warm-up: file caches and bytecode, not counted
    if args.vs:
        measure(trees[1], args.runs_dir)
    for _ in range(args.n):
        for i, tree in enumerate(trees):
            samples[i].append(measure(tree, args.runs_dir))
    load = os.getloadavg()[0]
    print(f"{args.n} runs each, medians; load average {load:.1f} on {os.cpu_count()} cores; A = {trees[0]}"
          + (f", B = {trees[1]}" if args.vs else ""))
    for name in [*CLI, "tui first paint"]:
        a = statistics.median(s[name] for s in samples[0])
        line = f"{name:>16}: A {a:5.2f} s"
        if args.vs:
            b = statistics.median(s[name] for s in samples[1])
            ratio = statistics.median(x[name] / y[name] for x, y in zip(samples[0], samples[1]))
            line += f"   B {b:5.2f} s   A/B {ratio:.2f}"
        print(line)


if __name__ == "__main__":
    main()
