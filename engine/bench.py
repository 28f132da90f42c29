"""Benchmark: the engine against a faithful tutorial-style trainer on identical work.

The reference is what users would otherwise run (ARENA's / the Anthropic
notebook's shape): one ``nn.Module`` with an instance dimension, einsum forward,
autograd, ``torch.optim.Adam``, and two uniform draws per element for the data
(one for the value, one for the on/off mask). Both train the same instances (n,
m, batch, per-instance feature probability and importance); tests/test_bench.py
checks that the two compute the same losses and weights step by step, so a
speed-up can never come from doing less work.

A benchmark is a ladder of instance counts. At each rung the two trainers
alternate in one process (``repeats`` times, the median kept), each timed over a
fixed number of steps after a warm-up, at equal CPU threads unless asked to run
each at its own defaults. Rates become GFLOP/s through an analytic count of the
step's floating-point work (:func:`flops_per_instance_step`), and a fraction of
the device's peak measured in the same process, on the same device and threads
(:func:`measure_peak_gflops`).
"""

from __future__ import annotations

import gc
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from typing import Any

import torch

from toysup.engine import fused, kernel_step
from toysup.engine.errors import SpecError
from toysup.engine.kinds.relu_output import flops_per_instance_step
from toysup.engine.models import Hyper, get_model
from toysup.engine.plan import (
    TORCH_DEFAULT_THREADS,
    Chunk,
    available_ram,
    configure_threads,
    plan,
    resolve_device,
    usable_cores,
)
from toysup.engine.rng import CounterRNG
from toysup.engine.spec import Instance, Spec, resolve
from toysup.engine.train import train_chunk

DEFAULT_LADDER = (30, 300, 3000, 30000)
TARGET_S = 1.0  # each timing runs about this long; a step slower than that is timed once
MAX_STEPS = 5000
# The reference's peak memory per instance, in (batch, features) float32 tensors: measured 7.6 at 3,000 instances
# and 8.4 at 1,000 (n=20, m=5, batch 1024, peak RSS); 10 leaves headroom. A CPU rung that would not fit in 80% of
# free RAM is reported, not run.
REFERENCE_TENSORS = 10
# Instances whose final evaluation a rung times (then scaled to the rung): the linear-region probe alone costs about
# 60 ms per instance on one CPU core, so evaluating all of a 3,000-instance rung would take minutes.
EVALUATION_SAMPLE = 64


# --- the reference trainer ------------------------------------------------------------------


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


def bench_spec(instances: int, n: int, m: int, batch: int, steps: int, lr: float = 1e-3) -> Spec:
    """The benchmark's sweep: feature probability log-spaced from 1 to 0.02 across instances,
    importance 0.9**i, one seed per point (so every instance differs). The training timings skip the
    final evaluation; :meth:`EngineTrainer.evaluation_time` times it once per rung, at a run's defaults."""
    return resolve({
        "name": "bench",
        "model": "relu_output",
        "params": {"n_features": n, "n_hidden": m, "importance_decay": 0.9, "steps": steps,
                   "batch_size": batch, "lr": lr},
        "sweep": {"feature_probability": [float(f"{50 ** (-k / max(1, instances - 1)):.6g}")
                                          for k in range(instances)]},
    })


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class ReferenceTrainer:
    """The tutorial trainer on a spec's instances; :meth:`time` runs warm-up steps, then timed ones."""

    def __init__(self, spec: Spec, device: torch.device):
        instances = spec.instances()
        hp = Hyper([i.config for i in instances], device)
        n = hp.value("n_features")
        self.device = device
        self.batch = hp.value("batch_size")
        importance = hp.tensor("importance_decay")[:, None] ** torch.arange(n, device=device)
        torch.manual_seed(0)
        self.model = TutorialModel(len(instances), n, hp.value("n_hidden"), hp.tensor("feature_probability"),
                                   importance, device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=hp.value("lr"))

    def step(self) -> None:
        self.optimizer.zero_grad()
        batch_x = self.model.generate_batch(self.batch)
        loss = self.model.loss(self.model(batch_x), batch_x)
        loss.backward()
        self.optimizer.step()

    def time(self, warmup: int, steps: int) -> float:
        """Seconds for ``steps`` steps after ``warmup`` untimed ones."""
        for _ in range(warmup):
            self.step()
        _sync(self.device)
        start = time.perf_counter()
        for _ in range(steps):
            self.step()
        _sync(self.device)
        return time.perf_counter() - start


# --- the engine -----------------------------------------------------------------------------


def engine_chunks(spec: Spec, device: torch.device) -> list[Chunk]:
    """The spec's chunks as a run would plan them on ``device`` (cut to its memory budget), with one seed
    per instance: in a sweep the same seed at every point shares its init (common random numbers)."""
    instances = [replace(i, seed=i.index, config={**i.config, "seed": i.index}) for i in spec.instances()]
    return plan(spec, device, instances=instances)


def _with_steps(chunk: Chunk, steps: int) -> Chunk:
    instances: tuple[Instance, ...] = tuple(replace(i, config={**i.config, "steps": steps}) for i in chunk.instances)
    return Chunk(chunk.index, chunk.model, instances)


class EngineTrainer:
    """The engine on a spec's instances, planned as a run plans them on ``device``; :meth:`time` times the
    steady state, like :meth:`ReferenceTrainer.time`."""

    def __init__(self, spec: Spec, device: torch.device, step_path: str = fused.EAGER):
        self.device = device
        self.step_path = step_path
        self.chunks = engine_chunks(spec, device)
        self._by_steps: dict[int, list[Chunk]] = {}  # the chunks set to train k steps: copies made once

    def train_time(self, steps: int) -> float:
        """Seconds of training (train_chunk's own clock: set-up and the loop, not the final evaluation) for
        ``steps`` steps of every chunk, one chunk after another as a local run trains them."""
        chunks = self._by_steps.get(steps)
        if chunks is None:
            chunks = self._by_steps[steps] = [_with_steps(chunk, steps) for chunk in self.chunks]
        return sum(train_chunk(chunk, self.device, step_path=self.step_path, evaluate=False).train_time_s
                   for chunk in chunks)

    def evaluation_time(self, sample: int = EVALUATION_SAMPLE) -> tuple[float, int]:
        """Seconds of the end-of-chunk evaluation (the final loss, ``metrics`` and ``feature_metrics``, through
        the model's public calls, on freshly initialised weights) of the first ``sample`` instances, scaled to
        every instance: its work is per instance (see the README's Performance section). Returns the seconds
        and the number of instances actually evaluated."""
        chunk = self.chunks[0]
        instances = chunk.instances[:sample]
        hp = Hyper([inst.config for inst in instances], self.device)
        model = get_model(chunk.model)(hp, CounterRNG(torch.tensor([i.seed for i in instances]), self.device))
        weights = model.init_weights()
        _sync(self.device)
        start = time.perf_counter()
        model.eval_loss(weights)
        model.metrics(weights)
        model.feature_metrics(weights)
        _sync(self.device)
        total = sum(len(c.instances) for c in self.chunks)
        return (time.perf_counter() - start) * total / len(instances), len(instances)

    def time(self, warmup: int, steps: int) -> float:
        """Seconds for ``steps`` steps in the steady state: the training time of ``warmup + steps`` steps less
        that of ``warmup`` steps, which takes out set-up, first touches of fresh buffers and any compilation.
        Should noise make that difference vanish (a few steps of a tiny model), the long run's share of its
        steps stands in: set-up included, so a rate no higher than the truth."""
        short = self.train_time(warmup)
        long = self.train_time(warmup + steps)
        return long - short if long > short else long * steps / (warmup + steps)


# --- the device's peak ------------------------------------------------------------------------


def measure_peak_gflops(device: torch.device, size: int | None = None, repeats: int = 5) -> float:
    """The best rate of a large float32 matmul (2048^2 on CPU, 8192^2 on CUDA) at this process's threads,
    after a warm-up: the practical peak that a toy model's step is measured against."""
    size = size or (8192 if device.type == "cuda" else 2048)
    gen = torch.Generator(device="cpu").manual_seed(0)
    a = torch.rand(size, size, generator=gen).to(device)
    b = torch.rand(size, size, generator=gen).to(device)
    out = torch.empty(size, size, device=device)
    torch.mm(a, b, out=out)
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


# --- the ladder --------------------------------------------------------------------------------


@dataclass
class Side:
    """One trainer's figures at one rung. ``status`` is ok, or oom when it did not fit (then no rates)."""

    status: str
    threads: int
    steps: int = 0  # timed steps per repeat
    instance_steps_per_s: float | None = None  # the median over repeats
    gflops: float | None = None
    peak_fraction: float | None = None  # of the peak measured at this side's threads
    samples: list[float] = field(default_factory=list)  # instance-steps/s of each repeat
    warmup_s: float | None = None  # seconds of the first call: set-up, first touches (and compilation, where compiled)
    peak_gpu_mb: float | None = None
    chunks: int = 1  # the engine trains a rung in chunks cut to the device's memory, one after another
    note: str = ""


@dataclass
class Rung:
    instances: int
    engine: Side
    reference: Side
    paths: dict[str, Side] = field(default_factory=dict)  # the engine on its other step paths, beside eager
    evaluation_s: float | None = None  # one end-of-chunk evaluation of every instance, timed apart from training
    evaluation_instances: int = 0  # ... measured on this many of them and scaled (EngineTrainer.evaluation_time)

    @property
    def ratio(self) -> float | None:
        e, r = self.engine.instance_steps_per_s, self.reference.instance_steps_per_s
        return None if e is None or r is None else round(e / r, 2)

    def to_dict(self) -> dict[str, Any]:
        return {"instances": self.instances, "engine": asdict(self.engine), "reference": asdict(self.reference),
                "ratio": self.ratio, "paths": {k: asdict(v) for k, v in self.paths.items()},
                "evaluation_s": self.evaluation_s, "evaluation_instances": self.evaluation_instances}


@dataclass
class LadderResult:
    device: str
    torch: str
    mode: str  # "equal": both at the same threads; "defaults": each at its own default
    n_features: int
    n_hidden: int
    batch_size: int
    repeats: int
    flops_per_instance_step: int
    peak_gflops: dict[int, float]  # threads -> the matmul peak measured at that count
    engine_threads: int
    reference_threads: int
    cpu: str
    cpu_count: int
    load_average: list[float]  # 1, 5 and 15 minutes, when the ladder started: a busy machine measures low
    rungs: list[Rung]
    peak_rss_mb: float
    step_path: str = fused.EAGER  # the engine's training step: compiled or eager (engine/fused.py)
    step_note: str = ""  # why it is not compiled, when compiling was asked for or unavailable

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["peak_gflops"] = {str(k): v for k, v in self.peak_gflops.items()}
        data["rungs"] = [r.to_dict() for r in self.rungs]
        return data


def parse_ladder(text: str) -> list[int]:
    """``30,300,3000`` (underscores and k allowed: ``30k``, ``100_000``) as positive instance counts."""
    counts = []
    for part in text.split(","):
        word = part.strip().lower().replace("_", "")
        scale = 1000 if word.endswith("k") else 1
        word = word.removesuffix("k")
        if not word.isdigit() or int(word) * scale < 1:
            raise SpecError(f"--instances {text!r} is not valid: expected positive counts like 30,300,3000 or 30k")
        counts.append(int(word) * scale)
    return counts


def reference_bytes(instances: int, n: int, batch: int) -> int:
    """The reference trainer's estimated peak memory: its fresh (batch, instances, features) tensors."""
    return REFERENCE_TENSORS * 4 * batch * n * instances


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and ("out of memory" in str(exc) or "can't allocate memory" in str(exc)))


def _free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _rate(instances: int, steps: int, seconds: float) -> float:
    return instances * steps / seconds


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 4)


def _choose_steps(seconds: float | None, done: int, steps: int | None) -> int:
    """The timed steps per repeat: ``steps`` if given, else as many as take about TARGET_S at the rate of
    ``done`` steps in ``seconds``."""
    if steps is not None:
        return steps
    if seconds is None:  # out of memory: nothing to time
        return 0
    return max(1, min(MAX_STEPS, round(TARGET_S * done / max(seconds, 1e-9))))


def run_rung(instances: int, n: int, m: int, batch: int, device: torch.device, threads: tuple[int, int],
             repeats: int, peaks: dict[int, float], steps: int | None = None, warmup: int = 1,
             step_path: str = fused.EAGER, other_paths: tuple[str, ...] = ()) -> Rung:
    """Both trainers at one instance count: a warm-up of each (which also sizes the timed step count, so
    a timing lasts about TARGET_S), then ``repeats`` alternations of engine and reference, the median kept.
    The engine on each of ``other_paths`` joins the alternation as a side of its own (``Rung.paths``).
    A side that runs out of memory (or, on CPU, would need more than free RAM) is reported as oom. Training
    is timed without the final evaluation, which is timed once on its own (``Rung.evaluation_s``)."""
    spec = bench_spec(instances, n, m, batch, steps=1)
    flops = flops_per_instance_step(n, m, batch)
    engine = Side("ok", threads[0])
    reference = Side("ok", threads[1])
    engine_trainer = EngineTrainer(spec, device, step_path)
    engine.chunks = len(engine_trainer.chunks)
    others = {path: (Side("ok", threads[0], chunks=engine.chunks), EngineTrainer(spec, device, path))
              for path in other_paths if path != step_path}
    need = reference_bytes(instances, n, batch)
    ref_trainer: ReferenceTrainer | None = None
    if device.type == "cpu" and need > 0.8 * available_ram():
        reference.status = "oom"
        reference.note = f"not run: needs about {need / 2**30:.1f} GiB, {available_ram() / 2**30:.1f} GiB free"

    def guarded(side: Side, work: Callable[[], float]) -> float | None:
        if side.status != "ok":
            return None
        torch.set_num_threads(side.threads)
        if device.type == "cuda":  # each side starts from an empty cache and its own peak
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        try:
            seconds = work()
        except Exception as exc:
            if not _is_oom(exc):
                raise
            side.status, side.note = "oom", str(exc).splitlines()[0][:200]
            _free_memory(device)
            return None
        if device.type == "cuda":
            side.peak_gpu_mb = max(side.peak_gpu_mb or 0.0, round(torch.cuda.max_memory_allocated(device) / 2**20, 1))
        return seconds

    def make_reference() -> float:
        nonlocal ref_trainer
        ref_trainer = ReferenceTrainer(spec, device)
        return ref_trainer.time(0, warmup)

    # The first call of each pays for set-up, first touches and any compilation; a second sizes the timings.
    engine.warmup_s = _rounded(guarded(engine, lambda: engine_trainer.train_time(warmup)))
    reference.warmup_s = _rounded(guarded(reference, make_reference))
    for side, trainer in others.values():
        side.warmup_s = _rounded(guarded(side, partial(trainer.train_time, warmup)))
    engine.steps = _choose_steps(guarded(engine, lambda: engine_trainer.train_time(warmup)), warmup, steps)
    sized = guarded(reference, lambda: ref_trainer.time(0, warmup))  # type: ignore[union-attr]
    reference.steps = _choose_steps(sized, warmup, steps)
    # A reference step over TARGET_S (3,000 instances on a CPU: 1.7-7 s) is warm by its second call, and the first
    # step of a repeat differs from the others by fresh allocations (milliseconds): its repeats skip the warm-up
    # step (three of the reference's eight steps at 3,000 instances).
    ref_warmup = 0 if sized is not None and sized > TARGET_S * warmup else warmup
    for side, trainer in others.values():
        side.steps = _choose_steps(guarded(side, partial(trainer.train_time, warmup)), warmup, steps)
    for _ in range(repeats):
        seconds = guarded(engine, lambda: engine_trainer.time(warmup, engine.steps))
        if seconds is not None:
            engine.samples.append(round(_rate(instances, engine.steps, seconds), 1))
        for side, trainer in others.values():
            seconds = guarded(side, partial(trainer.time, warmup, side.steps))
            if seconds is not None:
                side.samples.append(round(_rate(instances, side.steps, seconds), 1))
        seconds = guarded(reference, lambda: ref_trainer.time(ref_warmup, reference.steps))  # type: ignore[union-attr]
        if seconds is not None:
            reference.samples.append(round(_rate(instances, reference.steps, seconds), 1))
    ref_trainer = None
    _free_memory(device)
    evaluation_s, evaluated = None, 0
    if engine.status == "ok":
        torch.set_num_threads(engine.threads)
        try:
            seconds, evaluated = engine_trainer.evaluation_time()
            evaluation_s = _rounded(seconds)
        except Exception as exc:
            if not _is_oom(exc):
                raise
            _free_memory(device)
    for side in (engine, reference, *(side for side, _ in others.values())):
        if side.status == "ok" and side.samples:
            side.instance_steps_per_s = round(statistics.median(side.samples), 1)
            side.gflops = round(side.instance_steps_per_s * flops / 1e9, 3)
            side.peak_fraction = round(side.gflops / peaks[side.threads], 5)
        else:
            side.samples = []
    return Rung(instances, engine, reference, {path: side for path, (side, _) in others.items()}, evaluation_s,
                evaluated)


def timed_paths(device: torch.device) -> tuple[str, ...]:
    """The step paths the ladder times beside each other on ``device``: eager, compiled where a compiler is
    present, and on CUDA the fused kernel where Triton is."""
    paths = [fused.EAGER]
    if fused.unavailable_reason(device) is None:
        paths.append(fused.COMPILED)
    if device.type == "cuda" and kernel_step.unavailable_reason(device) is None:
        paths.append(fused.KERNEL)
    return tuple(paths)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return "cpu"


def cpu_name() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo), else what the platform module knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / 1024 / (1024 if sys.platform == "darwin" else 1), 1)


def check_options(n_features: int, n_hidden: int, batch_size: int, device: str, threads: int | None,
                  defaults: bool, repeats: int, steps: int | None) -> torch.device:
    """The ladder's options, checked before anything runs (SpecError names the option); returns the device."""
    for name, value in (("n-features", n_features), ("n-hidden", n_hidden), ("batch-size", batch_size),
                        ("repeats", repeats), ("threads", threads), ("steps", steps)):
        if value is not None and value < 1:
            raise SpecError(f"--{name} {value} is not valid: expected a positive integer")
    if defaults and threads is not None:
        raise SpecError("--threads and --defaults exclude each other: --defaults runs each side at its own default")
    bench_spec(1, n_features, n_hidden, batch_size, steps or 1)  # the model's own ranges, before any timing
    return resolve_device(device)


def ladder(counts: list[int] | tuple[int, ...] = DEFAULT_LADDER, n_features: int = 20, n_hidden: int = 5,
           batch_size: int = 1024, device: str = "auto", threads: int | None = None, defaults: bool = False,
           repeats: int = 3, steps: int | None = None, compile: str = "auto",
           on_rung: Callable[[Rung], None] = lambda rung: None, all_paths: bool = True) -> LadderResult:
    """Engine against reference at every instance count in ``counts``.

    By default both run at the engine's thread count (``threads``, else its automatic choice); with
    ``defaults`` each runs at its own default (the engine's automatic count, torch's default for the
    reference). ``steps`` fixes the timed steps per repeat (default: sized to TARGET_S per timing).
    ``compile`` chooses the engine's step as for a run (auto: as for a long sweep of this model, compiled on a
    CPU where a compiler is present and the step has fused.AUTO_MIN_FLOPS of work); with ``all_paths`` the
    engine's other step paths (:func:`timed_paths`) are timed beside it. ``on_rung`` sees each rung as it finishes.
    """
    dev = check_options(n_features, n_hidden, batch_size, device, threads, defaults, repeats, steps)
    engine_threads = configure_threads(threads, dev)
    reference_threads = TORCH_DEFAULT_THREADS if defaults else engine_threads
    load = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else []
    step_path, step_note = fused.choose_path(compile, dev, True, fused.AUTO_MIN_INSTANCE_STEPS, True, max(counts),
                                             flops_per_instance_step(n_features, n_hidden, batch_size))
    other_paths = timed_paths(dev) if all_paths else ()
    peaks: dict[int, float] = {}
    for count in sorted({engine_threads, reference_threads}):
        torch.set_num_threads(count)
        peaks[count] = round(measure_peak_gflops(dev), 1)
    rungs = []
    for count in counts:
        rung = run_rung(count, n_features, n_hidden, batch_size, dev, (engine_threads, reference_threads),
                        repeats, peaks, steps, step_path=step_path, other_paths=other_paths)
        rungs.append(rung)
        on_rung(rung)
    torch.set_num_threads(engine_threads)
    return LadderResult(
        device=device_name(dev), torch=torch.__version__, mode="defaults" if defaults else "equal",
        n_features=n_features, n_hidden=n_hidden, batch_size=batch_size, repeats=repeats,
        flops_per_instance_step=flops_per_instance_step(n_features, n_hidden, batch_size), peak_gflops=peaks,
        engine_threads=engine_threads, reference_threads=reference_threads, cpu=cpu_name(),
        cpu_count=usable_cores(),
        load_average=load, rungs=rungs, peak_rss_mb=peak_rss_mb(), step_path=step_path, step_note=step_note or "",
    )
