"""What a model kind declares, and the per-instance hyperparameters it trains with.

Adding a model is one new file in this folder: subclass :class:`ToyModel`,
declare its parameters and metric columns, implement ``init``, ``loss`` and
``metrics``, and register it in ``engine/models/__init__.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from engine.params import Param, param_table
from engine.rng import CounterRNG


@dataclass(frozen=True)
class Column:
    """A results.csv column a model produces: its name and one-line meaning, and how summaries treat it.

    The presentation fields say what a column is worth to a reader, so the report, the TUI and a
    notebook agree on it (engine/analysis/columns.py reads them; no front end lists metric names):

    - ``headline``: its place among the metrics a summary shows first (1 first); None: shown after
      them, in column order.
    - ``keep``: its place among the metrics a narrow summary keeps first; None: after those, in
      headline order.
    - ``summary``: "always"; "wide": only on very wide terminals (it restates another column);
      "if_true": a flag shown only when some instance has it.
    - ``chart``: drawn against a swept parameter (flags never are: the summary counts them).
    - ``short``: the abbreviated header of narrow tables ("D*", "repr"); "" keeps the name.
    """

    name: str
    help: str
    kind: str = "float"  # float, int or bool
    headline: int | None = None
    keep: int | None = None
    summary: str = "always"
    chart: bool = True
    short: str = ""

    def __post_init__(self) -> None:
        if self.summary not in ("always", "wide", "if_true"):
            raise ValueError(f"column {self.name}: summary must be always, wide or if_true, not {self.summary!r}")


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


class ToyModel:
    """Base class of a model kind, instantiated once per chunk of instances.

    Subclasses set the class attributes and implement the methods; the object
    holds the chunk's hyperparameters, random streams and kept buffers.
    """

    kind: ClassVar[str]
    summary: ClassVar[str]
    params: ClassVar[tuple[Param, ...]] = ()
    columns: ClassVar[tuple[Column, ...]] = ()
    # Per-feature arrays kept for charts (features.csv).
    feature_columns: ClassVar[tuple[Column, ...]] = ()
    # Extra per-instance values recorded with the loss at every curve point (curves.csv).
    curve_columns: ClassVar[tuple[Column, ...]] = ()
    # Keys of init_weights() that are fixed data, not parameters (an SAE's ground-truth features):
    # saved with the weights, but never given to autograd or the optimiser.
    frozen: ClassVar[tuple[str, ...]] = ()
    # False for models with training state beyond weights and optimiser (an SAE's dead-latent
    # counters): their chunks restart from the beginning on resume instead of from a checkpoint.
    mid_chunk_checkpoints: ClassVar[bool] = True
    # Set by the trainer on the steps whose loss goes into curves.csv: a model whose per-instance loss
    # reduction depends on how many instances share a tensor (a batched BLAS dot) then reduces in float64,
    # so the recorded value is the same whatever the chunking.
    exact_loss: bool = False

    def __init__(self, hp: Hyper, rng: CounterRNG):
        self.hp = hp
        self.rng = rng

    @classmethod
    def param_table(cls) -> dict[str, Param]:
        return param_table(cls.params)

    @classmethod
    def check(cls, config: dict[str, Any]) -> None:
        """Constraints across parameters, for one instance's full config; raise SpecError."""

    @classmethod
    def neuron_sense(cls, config: dict[str, Any]) -> str | None:
        """How a feature drives a neuron in this instance (see engine.metrics.drive): "magnitude",
        "positive", or None when the hidden layer has no privileged basis (any rotation of it is an
        equally good solution), so neuron-level metrics are left empty. The default is None."""
        return None

    @classmethod
    def bytes_per_instance(cls, config: dict[str, Any]) -> int:
        """Rough peak memory per instance while training or evaluating, for chunk sizing."""
        raise NotImplementedError

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
