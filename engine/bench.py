"""Benchmark: the engine against a faithful tutorial-style trainer on identical work.

The reference is what users would otherwise run (ARENA's / the Anthropic
notebook's shape): one ``nn.Module`` with an instance dimension, einsum forward,
autograd, ``torch.optim.Adam``, and two uniform draws per element for the data
(one for the value, one for the on/off mask). Both train the same instances
(n, m, batch, steps, per-instance feature probability and importance) and are
evaluated on the same held-out batch, so a speed-up can never come from doing
less work.
"""

from __future__ import annotations

import resource
import sys
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch

from engine.models import Hyper
from engine.plan import Chunk, resolve_device
from engine.spec import resolve
from engine.train import train_chunk


@dataclass
class BenchResult:
    device: str
    instances: int
    n_features: int
    n_hidden: int
    batch_size: int
    steps: int
    engine_instance_steps_per_s: float
    reference_instance_steps_per_s: float
    ratio: float
    engine_final_loss: float  # mean over instances, on the shared evaluation batch
    reference_final_loss: float
    loss_ratio: float  # engine / reference: ~1 means the same training happened
    peak_rss_mb: float
    peak_gpu_mb: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class TutorialModel(torch.nn.Module):
    """The tutorial-style ReLU output model: W is (instances, hidden, features) as in ARENA."""

    def __init__(self, instances: int, n: int, m: int, feature_probability: torch.Tensor,
                 importance: torch.Tensor, device: torch.device):
        super().__init__()
        std = (2.0 / (n + m)) ** 0.5
        self.W = torch.nn.Parameter(torch.randn(instances, m, n, device=device) * std)
        self.b_final = torch.nn.Parameter(torch.zeros(instances, n, device=device))
        self.feature_probability = feature_probability.to(device)
        self.importance = importance.to(device)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        hidden = torch.einsum("bif,ihf->bih", features, self.W)
        out = torch.einsum("bih,ihf->bif", hidden, self.W)
        return torch.relu(out + self.b_final)

    def generate_batch(self, batch_size: int) -> torch.Tensor:
        shape = (batch_size, *self.b_final.shape)
        feat = torch.rand(shape, device=self.W.device)
        seeds = torch.rand(shape, device=self.W.device)
        return torch.where(seeds <= self.feature_probability[:, None], feat, torch.zeros((), device=feat.device))

    def loss(self, out: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        error = self.importance * (batch - out) ** 2
        return error.mean((0, 2)).sum()


def bench_spec(instances: int, n: int, m: int, batch: int, steps: int, lr: float = 1e-3):
    """The benchmark's sweep: feature probability log-spaced from 1 to 0.02 across instances,
    importance 0.9**i, one seed per point (so every instance differs)."""
    return resolve({
        "name": "bench",
        "model": "relu_output",
        "params": {"n_features": n, "n_hidden": m, "importance_decay": 0.9, "steps": steps,
                   "batch_size": batch, "lr": lr, "eval_batch_size": 2048},
        "sweep": {"feature_probability": [float(f"{50 ** (-k / max(1, instances - 1)):.6g}")
                                          for k in range(instances)]},
    })


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _eval_loss(W_feat_hidden: torch.Tensor, b: torch.Tensor, x: torch.Tensor, importance: torch.Tensor) -> float:
    """Mean over instances of the importance-weighted MSE on ``x`` (I, B, n); W is (I, n, m)."""
    with torch.no_grad():
        out = torch.relu(torch.bmm(torch.bmm(x, W_feat_hidden), W_feat_hidden.transpose(1, 2)) + b[:, None])
        return float((importance[:, None] * (x - out) ** 2).mean((1, 2)).mean())


def run_reference(spec, device: torch.device) -> tuple[float, TutorialModel]:
    """Train the tutorial-style model on the spec's instances; returns instance-steps/s and the model."""
    instances = spec.instances()
    hp = Hyper([i.config for i in instances], device)
    n, m = hp.value("n_features"), hp.value("n_hidden")
    steps, batch = hp.value("steps"), hp.value("batch_size")
    importance = hp.tensor("importance_decay")[:, None] ** torch.arange(n, device=device)
    torch.manual_seed(0)
    model = TutorialModel(len(instances), n, m, hp.tensor("feature_probability"), importance, device)
    optimizer = torch.optim.Adam(model.parameters(), lr=hp.value("lr"))
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        optimizer.zero_grad()
        batch_x = model.generate_batch(batch)
        loss = model.loss(model(batch_x), batch_x)
        loss.backward()
        optimizer.step()
    _sync(device)
    return len(instances) * steps / (time.perf_counter() - start), model


def run_engine(spec, device: torch.device):
    """Train the spec as one chunk; the rate counts the training loop (set-up included), not the
    final evaluation and metrics, which the reference does not do."""
    # One seed per instance: in a sweep the same seed at every point shares its init (common random
    # numbers), which would make the benchmark's mean loss hang on a single initialisation.
    instances = tuple(replace(i, seed=i.index, config={**i.config, "seed": i.index}) for i in spec.instances())
    chunk = Chunk(0, spec.model, instances)
    result = train_chunk(chunk, device)
    return len(instances) * chunk.steps / result.train_time_s, result


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 / (1024 if sys.platform == "darwin" else 1)


def benchmark(instances: int = 1000, n_features: int = 20, n_hidden: int = 5, batch_size: int = 1024,
              steps: int = 200, device: str = "auto") -> BenchResult:
    """Time engine and reference on identical work, in one process, and compare their final losses."""
    dev = resolve_device(device)
    spec = bench_spec(instances, n_features, n_hidden, batch_size, steps)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    engine_rate, result = run_engine(spec, dev)
    ref_rate, ref_model = run_reference(spec, dev)

    # One shared evaluation batch (drawn like the reference's data) for both trained models.
    gen = torch.Generator(device="cpu").manual_seed(1)
    probs = torch.tensor([i.config["feature_probability"] for i in spec.instances()])
    x = torch.rand(instances, 2048, n_features, generator=gen)
    x = torch.where(torch.rand(x.shape, generator=gen) <= probs[:, None, None], x, 0.0)
    importance = 0.9 ** torch.arange(n_features, dtype=torch.float32).expand(instances, -1)
    engine_loss = _eval_loss(result.weights["W"], result.weights["b"], x, importance)
    ref_W = ref_model.W.detach().cpu().transpose(1, 2)
    reference_loss = _eval_loss(ref_W, ref_model.b_final.detach().cpu(), x, importance)
    gpu = torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else None
    name = f"cuda ({torch.cuda.get_device_name(dev)})" if dev.type == "cuda" else "cpu"
    return BenchResult(
        device=name, instances=instances, n_features=n_features, n_hidden=n_hidden, batch_size=batch_size,
        steps=steps, engine_instance_steps_per_s=round(engine_rate, 1),
        reference_instance_steps_per_s=round(ref_rate, 1), ratio=round(engine_rate / ref_rate, 2),
        engine_final_loss=engine_loss, reference_final_loss=reference_loss,
        loss_ratio=round(engine_loss / reference_loss, 3), peak_rss_mb=round(peak_rss_mb(), 1),
        peak_gpu_mb=None if gpu is None else round(gpu, 1),
    )
