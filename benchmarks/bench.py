"""Engine vs tutorial-style reference, printed as JSON lines: `python benchmarks/bench.py [--scaling]`.

The same measurement as `toysup bench`; --scaling repeats it at 10, 100, 1,000 and
10,000 instances (the README's table). Speed is checked here, by numbers, never by
timed tests.
"""

from __future__ import annotations

import argparse
import json

from engine.bench import benchmark


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--n-features", type=int, default=20)
    parser.add_argument("--n-hidden", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--scaling", action="store_true", help="run at 10, 100, 1000 and 10000 instances")
    args = parser.parse_args()
    counts = [10, 100, 1000, 10000] if args.scaling else [args.instances]
    for count in counts:
        steps = args.steps if count <= 1000 else max(5, args.steps // 5)
        result = benchmark(count, args.n_features, args.n_hidden, args.batch_size, steps, args.device)
        print(json.dumps(result.to_dict()), flush=True)


if __name__ == "__main__":
    main()
