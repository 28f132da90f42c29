"""From a spec to chunks: group instances by tensor shape, cut groups to a memory budget."""

from __future__ import annotations

import itertools
import math
import os
import time
from dataclasses import dataclass
from typing import Any

import torch

from toysup.engine.errors import SpecError
from toysup.engine.kinds import get_kind
from toysup.engine.spec import Instance, Spec

GIB = 1024**3
# torch's own intra-op thread count, read before configure_threads can change it: the tutorial trainer's default.
TORCH_DEFAULT_THREADS = torch.get_num_threads()


@dataclass(frozen=True)
class Chunk:
    """Instances that train together as one batched model: the unit of work."""

    index: int
    model: str
    instances: tuple[Instance, ...]

    @property
    def config(self) -> dict[str, Any]:
        return self.instances[0].config

    @property
    def steps(self) -> int:
        return int(self.config["steps"])

    def __len__(self) -> int:
        return len(self.instances)


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA when present, else CPU; asking for CUDA without it is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SpecError(f"--device {name}: CUDA is not available here (torch {torch.__version__}); "
                            "use --device cpu or auto")
        device = torch.device(name)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise SpecError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) present")
        return device
    raise SpecError(f"--device {name!r} is not valid: expected auto, cpu, cuda or cuda:N")


IDLE_SAMPLE_S = 0.15  # how long configure_threads watches the CPUs before choosing a thread count
IDLE_SHARE = 0.8  # a core at least this idle counts as free


def usable_cores() -> int:
    """CPUs this process may run on: its affinity mask (a container's, taskset's), else every CPU."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _cpu_times() -> tuple[int, int]:
    """(idle, total) jiffies summed over all CPUs, from Linux's /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:9]]  # user nice system idle iowait irq softirq steal
    return fields[3] + fields[4], sum(fields)


def idle_cores(sample_s: float = IDLE_SAMPLE_S) -> float:
    """How many CPUs other processes leave idle, measured now: /proc/stat over ``sample_s`` seconds on
    Linux, else the CPU count less the 1-minute load average (which lags a minute behind)."""
    try:
        idle0, total0 = _cpu_times()
        time.sleep(sample_s)
        idle1, total1 = _cpu_times()
        if total1 > total0:
            return (idle1 - idle0) / (total1 - total0) * (os.cpu_count() or 1)
    except (OSError, ValueError, IndexError):
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return (os.cpu_count() or 1) - load


def automatic_threads(device: torch.device) -> int:
    """The thread count for ``--threads`` left out: $OMP_NUM_THREADS if set; one thread to drive a GPU;
    on CPU, the usable cores that other processes leave idle right now (at least one).

    The engine's step is a few hundred small operations, each split across the
    threads, so every thread waits for the slowest at each one. On an idle 2-core
    box two threads beat one by 3-10%, but with one other busy process two threads
    ran 3-4x slower than one: OpenMP's threads spin-wait for a partner that shares
    its core (README, Performance, has the measurements). So the count follows
    the cores that are actually free when the run starts; results do not depend
    on it (tests/test_bench.py).
    """
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) >= 1:
        return int(env)
    if device.type == "cuda":
        return 1
    cores = usable_cores()
    if cores == 1:
        return 1
    return max(1, min(cores, math.floor(idle_cores() + (1 - IDLE_SHARE))))


def configure_threads(threads: int | None, device: torch.device) -> int:
    """Set torch's intra-op threads for this process (``None``: :func:`automatic_threads`) and return the count."""
    if threads is None:
        threads = automatic_threads(device)
    if threads < 1:
        raise SpecError(f"--threads {threads} is not valid: expected a positive integer")
    torch.set_num_threads(threads)
    return threads


MEMORY_SHARE = 0.6  # of a device's free memory its chunks may use (a GPU's; a Ray node's RAM, split among them)
CPU_CHUNK_CAP = 4 * GIB  # bigger CPU chunks gain nothing from the cache


def available_ram() -> int:
    """Bytes of RAM free on this machine (8 GiB where the OS does not say)."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 8 * GIB


def memory_budget(device: torch.device) -> int:
    """Bytes one chunk may use: most of a GPU's free memory, a share of free RAM on CPU."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free * MEMORY_SHARE)
    return int(min(CPU_CHUNK_CAP, max(GIB // 4, available_ram() * 0.3)))


def group_key(spec: Spec, config: dict[str, Any]) -> tuple[Any, ...]:
    structural = [p.name for p in spec.param_table().values() if p.structural]
    return tuple(config[name] for name in structural)


def plan(spec: Spec, device: torch.device, max_memory: int | None = None,
         instances: list[Instance] | None = None, first_index: int = 0, budget: int | None = None,
         slots: int = 1) -> list[Chunk]:
    """Group the spec's instances (or the given subset, e.g. those a resumed run still lacks) by
    structural parameters and cut each group into chunks numbered from ``first_index``.

    A chunk uses at most ``max_memory`` bytes (the user's), else ``budget`` (an executor's, e.g. a
    cluster GPU's share), else this device's automatic budget. With ``slots`` chunks training at
    once, a group is also cut into at least ``slots`` chunks, so that no worker idles.
    """
    budget = _budget(device, max_memory, budget)
    model = get_kind(spec.model)
    groups: dict[tuple[Any, ...], list[Instance]] = {}
    for inst in spec.instances() if instances is None else instances:
        groups.setdefault(group_key(spec, inst.config), []).append(inst)
    chunks: list[Chunk] = []
    for members in groups.values():
        size = _chunk_size(model.bytes_per_instance(members[0].config), budget, len(members), slots, max_memory)
        for start in range(0, len(members), size):
            chunks.append(Chunk(first_index + len(chunks), spec.model, tuple(members[start:start + size])))
    return chunks


def _budget(device: torch.device, max_memory: int | None, budget: int | None) -> int:
    if max_memory is not None:
        return max_memory
    return memory_budget(device) if budget is None else budget


def _chunk_size(per_instance: int, budget: int, members: int, slots: int, max_memory: int | None) -> int:
    """Instances per chunk of a group of ``members``: as many as the budget holds, spread over ``slots``."""
    if max_memory is None and per_instance > budget:  # an explicit --max-memory gets chunks of one
        raise SpecError(f"one instance needs about {per_instance / 2**20:,.0f} MB to train but a chunk may use "
                        f"{budget / 2**20:,.0f} MB of this device: lower batch_size or eval_batch_size (or set "
                        "--max-memory to train it anyway, one instance per chunk)")
    return max(1, min(budget // per_instance, -(-members // slots)))


@dataclass(frozen=True)
class ChunkShape:
    """A chunk as a dry run shows it, without its instances: its number, size and first instance's config."""

    index: int
    size: int
    config: dict[str, Any]

    @property
    def steps(self) -> int:
        return int(self.config["steps"])

    def __len__(self) -> int:
        return self.size


def _positions(values: tuple[Any, ...]) -> dict[Any, list[int]]:
    found: dict[Any, list[int]] = {}
    for i, value in enumerate(values):
        found.setdefault(value, []).append(i)
    return found


def _member(spec: Spec, choices: list[Any], k: int) -> dict[str, Any]:
    """The config of the ``k``-th instance of a group whose axis positions are ``choices`` (product order,
    seeds innermost, as :meth:`Spec.instances` lists them)."""
    k, seed = divmod(k, spec.seeds)
    picked = []
    for options in reversed(choices):
        k, at = divmod(k, len(options))
        picked.append(options[at])
    picked.reverse()
    point = 0
    for axis, at in zip(spec.axes, picked):
        point = point * len(axis.values) + at
    values = {axis.name: axis.values[at] for axis, at in zip(spec.axes, picked)}
    return {**spec.params, **values, "seed": spec.point_seeds(point)[seed]}


def plan_shapes(spec: Spec, device: torch.device, max_memory: int | None = None, budget: int | None = None,
                slots: int = 1) -> list[ChunkShape]:
    """The chunks :func:`plan` would make of the whole spec, computed from the sweep's grammar (its axes and
    seeds) instead of by listing its instances: a dry run of 5,000,000 instances takes milliseconds and no
    memory beyond its chunks. Groups come in the order of their first instance, as in :func:`plan`."""
    budget = _budget(device, max_memory, budget)
    model = get_kind(spec.model)
    structural = {p.name for p in spec.param_table().values() if p.structural}
    axes = list(spec.axes)
    # Per structural axis, the positions of each distinct value, values in order of first appearance.
    positions = [_positions(a.values) for a in axes if a.name in structural]
    shapes: list[ChunkShape] = []
    for combo in itertools.product(*(list(d.values()) for d in positions)):
        chosen = iter(combo)  # the group's instances: these positions on structural axes, any on the others
        choices = [next(chosen) if a.name in structural else range(len(a.values)) for a in axes]
        members = math.prod(len(c) for c in choices) * spec.seeds
        first = _member(spec, choices, 0)
        size = _chunk_size(model.bytes_per_instance(first), budget, members, slots, max_memory)
        for start in range(0, members, size):
            shapes.append(ChunkShape(len(shapes), min(size, members - start), _member(spec, choices, start)))
    return shapes
