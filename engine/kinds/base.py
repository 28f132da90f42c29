"""What a model kind declares: its parameters and columns, and the checks and estimates that need no tensors.

Nothing here imports torch: a kind's declaration is read by listings, spec validation and
forms, which should open at once. The class that trains a kind subclasses its declaration
(``engine.models.base.ToyModel``) and is named by ``implementation``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from toysup.engine.params import Param, param_table


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


class ModelKind:
    """The declaration of a model kind: class attributes and classmethods only, never instantiated.

    ``implementation`` is "module:Class" of the :class:`~engine.models.base.ToyModel` that trains
    this kind; that class subclasses the declaration, so it answers everything asked here too.
    """

    kind: ClassVar[str]
    summary: ClassVar[str]
    implementation: ClassVar[str]
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
