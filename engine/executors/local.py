"""The local executor: chunks train one after another in this process, on its CPU or one of its GPUs."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

import torch

from toysup.engine.checkpoint import TrainingState
from toysup.engine.executors.base import Executor, Placement, Work, device_description, run_chunk
from toysup.engine.plan import Chunk, configure_threads, resolve_device
from toysup.engine.train import ChunkResult


class LocalExecutor(Executor):
    name = "local"

    def __init__(self) -> None:
        self.queue: deque[tuple[Chunk, TrainingState | None]] = deque()
        self.device = torch.device("cpu")

    def open(self, device: str, threads: int | None) -> Placement:
        self.device = resolve_device(device)
        configure_threads(threads, self.device)
        return Placement(self.device, device_description(self.device))

    def submit(self, chunk: Chunk, resume_from: TrainingState | None = None, front: bool = False) -> None:
        if front:
            self.queue.appendleft((chunk, resume_from))
        else:
            self.queue.append((chunk, resume_from))

    def finished(self, work: Work) -> Iterator[tuple[Chunk, ChunkResult | torch.OutOfMemoryError]]:
        while self.queue:
            chunk, saved = self.queue.popleft()
            try:
                result = run_chunk(chunk, self.device, work, saved)
            except torch.OutOfMemoryError as exc:
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                yield chunk, exc
                continue
            yield chunk, result

    def close(self) -> None:
        self.queue.clear()
