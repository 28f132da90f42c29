"""What the end-of-chunk evaluation of relu_output costs, part by part: `python benchmarks/eval_cost.py INSTANCES
[THREADS] [LABEL]`.

Builds the bench's instances (n=20, m=5, batch 1024, p log-spaced from 1 to 0.02, planned into chunks as a run
plans them), gives them their initial weights with b = -0.1 (a trained model's biases are negative), and times
the evaluation's parts by wrapping the functions that do the work: the estimator (eval_loss: its inputs and
ablation_deltas), metrics() (the linear-region probe inside it), the probe again alone (its sampler, activation
codes and counting) and feature_metrics. Prints one JSON line with the seconds, the load average and the peak
RSS. THREADS 0 (the default) keeps torch's default. Compare two versions by running each in its own process,
alternating (PYTHONPATH pointing at each checkout), on a quiet machine or with the load average beside each.
"""

from __future__ import annotations

import collections
import json
import os
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

from toysup.engine import bench, estimator
from toysup.engine.models import Hyper, get_model
from toysup.engine.models import relu_output as RO
from toysup.engine.rng import CounterRNG

SECONDS: dict[str, float] = collections.defaultdict(float)


def timed(owner: Any, name: str, label: str) -> None:
    """Replace ``owner.name`` by a wrapper that adds its seconds to SECONDS[label]."""
    original: Callable[..., Any] = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            SECONDS[label] += time.perf_counter() - start

    setattr(owner, name, wrapper)


def main() -> None:
    instances = int(sys.argv[1])
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    if threads:
        torch.set_num_threads(threads)
    timed(RO.M, "ablation_deltas", "estimator: ablation_deltas")
    timed(estimator, "importance_inputs", "estimator: Monte Carlo inputs")
    timed(RO, "active_inputs", "probe: sampler")
    if hasattr(RO.ReluOutput, "_codes"):
        timed(RO.ReluOutput, "_codes", "probe: codes")
    else:  # the code before the probe's codes came straight from x W W^T
        timed(RO.ReluOutput, "_patterns", "probe: codes")
        timed(RO.M, "pattern_codes", "probe: codes")
    timed(RO.M, "effective_patterns", "probe: counting")
    cpu = torch.device("cpu")
    chunks = bench.engine_chunks(bench.bench_spec(instances, 20, 5, 1024, steps=1), cpu)
    for chunk in chunks:
        hp = Hyper([dict(i.config) for i in chunk.instances], cpu)
        model = get_model(chunk.model)(hp, CounterRNG(torch.tensor([i.seed for i in chunk.instances]), cpu))
        weights = model.init_weights()
        weights["b"] -= 0.1
        for label, work in (("estimator (eval_loss)", model.eval_loss), ("metrics (probe included)", model.metrics),
                            ("probe alone", model.linear_regions), ("feature_metrics", model.feature_metrics)):
            start = time.perf_counter()
            work(weights)
            SECONDS[label] += time.perf_counter() - start
    print(json.dumps({"label": sys.argv[3] if len(sys.argv) > 3 else "", "instances": instances,
                      "threads": torch.get_num_threads(), "chunks": len(chunks),
                      "load_average": [round(x, 2) for x in os.getloadavg()],
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                      "seconds": {k: round(v, 3) for k, v in SECONDS.items()}}))


if __name__ == "__main__":
    main()
