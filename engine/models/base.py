"""The trainable side of a model kind, and the per-instance hyperparameters it trains with.

Adding a model is two files: its declaration in ``engine/kinds/`` (a
:class:`~engine.kinds.base.ModelKind`: parameters, metric columns, constraints,
memory estimate; no torch, so listings and validation stay fast), and here in this folder
the class that trains it, subclassing both the declaration and :class:`ToyModel` and
implementing ``init_weights``, ``loss`` and ``metrics``. Register the declaration in
``engine/kinds/__init__.py``.
"""

from __future__ import annotations

from typing import Any

import torch

from toysup.engine.kinds.base import Column, ModelKind
from toysup.engine.rng import CounterRNG

__all__ = ["Column", "Hyper", "ModelKind", "ToyModel"]  # Column: where model files have always found it


class Hyper:
    """The hyperparameters of a batch of instances.

    Structural parameters are the same for the whole batch (``hp.value``); every
    numeric parameter is available as a per-instance float tensor (``hp.tensor``).
    """

    def __init__(self, configs: list[dict[str, Any]], device: torch.device):
        self.configs = configs
        self.device = device
        self._tensors: dict[str, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.configs)

    def value(self, name: str) -> Any:
        first = self.configs[0][name]
        if any(c[name] != first for c in self.configs):
            raise ValueError(f"{name} varies within a batch; it must be a structural parameter")
        return first

    def tensor(self, name: str) -> torch.Tensor:
        t = self._tensors.get(name)
        if t is None:
            t = torch.tensor([float(c[name]) for c in self.configs], dtype=torch.float32, device=self.device)
            self._tensors[name] = t
        return t

    def uniform(self, name: str) -> Any | None:
        """The parameter's value if all instances share it, else None."""
        first = self.configs[0][name]
        return first if all(c[name] == first for c in self.configs) else None


class ToyModel(ModelKind):
    """Base class of a model kind's trainer, instantiated once per chunk of instances.

    Subclasses (which also subclass the kind's declaration) implement the methods; the
    object holds the chunk's hyperparameters, random streams and kept buffers.
    """

    # Set by the trainer on the steps whose loss goes into curves.csv: a model whose per-instance loss
    # reduction depends on how many instances share a tensor (a batched BLAS dot) then reduces in float64,
    # so the recorded value is the same whatever the chunking.
    exact_loss: bool = False

    def __init__(self, hp: Hyper, rng: CounterRNG):
        self.hp = hp
        self.rng = rng

    @classmethod
    def has_compiled_step(cls, config: dict[str, Any]) -> bool:
        """Whether an instance with this config can train with a compiled step (engine/fused.py). The default
        is no: the model trains on its eager path."""
        return False

    def use_compiled_step(self) -> None:
        """Train with the compiled step from now on (only called when every config has one)."""
        raise NotImplementedError(f"{self.kind} has no compiled step")

    def use_eager_step(self) -> None:
        """Back to the eager step (compilation failed). The default has nothing to undo."""

    def init_weights(self) -> dict[str, torch.Tensor]:
        """Initial trainable tensors, each with a leading instance dimension."""
        raise NotImplementedError

    def loss(self, weights: dict[str, torch.Tensor], step: int) -> torch.Tensor:
        """Per-instance training loss at ``step`` on that step's fresh batch, shape (I,)."""
        raise NotImplementedError

    def loss_and_grads(self, weights: dict[str, torch.Tensor], step: int
                       ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Per-instance loss (I,) and the gradient of its sum for every trained weight.

        The default differentiates ``loss`` with autograd; a model may override it
        with a hand-written backward pass (and must then match autograd in a test).
        """
        trained = {k: w for k, w in weights.items() if k not in self.frozen}
        with torch.enable_grad():
            for w in trained.values():
                w.requires_grad_(True)
            loss = self.loss(weights, step)
            grads = torch.autograd.grad(loss.sum(), list(trained.values()))
        return loss.detach(), dict(zip(trained, grads))

    def after_step(self, weights: dict[str, torch.Tensor], step: int) -> None:
        """Called after each optimiser step, under no_grad: projections (unit-norm decoders),
        resampling. The default does nothing."""

    def curve_values(self, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Values (I,) for ``curve_columns`` at a curve point, e.g. an L1 norm over training."""
        return {}

    def eval_loss(self, weights: dict[str, torch.Tensor]) -> torch.Tensor:
        """Per-instance loss on a fresh evaluation batch without dropout or noise, shape (I,)."""
        raise NotImplementedError

    def metrics(self, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per-instance metrics, keyed by the names in ``columns`` other than ``loss``."""
        raise NotImplementedError

    def feature_metrics(self, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per-instance, per-feature arrays (I, n), keyed by ``feature_columns``."""
        return {}
