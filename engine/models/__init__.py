"""The registry of model kinds: name -> declaration (torch-free), and the class that trains each.

``MODELS`` and :func:`get_kind` give a kind's declaration (parameters, columns, constraints)
without importing torch; :func:`get_model` gives the class that trains it, importing torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from toysup.engine.errors import SpecError
from toysup.engine.models.kinds.abs_value import AbsValueKind
from toysup.engine.models.kinds.base import Column, ModelKind
from toysup.engine.models.kinds.compute import ComputeKind
from toysup.engine.models.kinds.incidental import IncidentalKind
from toysup.engine.models.kinds.linear import LinearKind
from toysup.engine.models.kinds.relu_hidden import ReluHiddenKind
from toysup.engine.models.kinds.relu_output import ReluOutputKind
from toysup.engine.models.kinds.relu_output_phase import ReluOutputPhaseKind
from toysup.engine.models.kinds.sae import SparseAutoencoderKind
from toysup.engine.models.kinds.sae_hidden import SaeHiddenKind

if TYPE_CHECKING:
    from toysup.engine.models.base import Hyper, ToyModel

MODELS: dict[str, type[ModelKind]] = {cls.kind: cls for cls in (ReluOutputKind, LinearKind, SparseAutoencoderKind,
                                                                ReluHiddenKind, AbsValueKind, ReluOutputPhaseKind,
                                                                IncidentalKind,
                                                                SaeHiddenKind, ComputeKind)}


def get_kind(kind: str) -> type[ModelKind]:
    """A model kind's declaration: what listings, validation and the run format read (no torch)."""
    try:
        return MODELS[kind]
    except KeyError:
        raise SpecError(f"unknown model {kind!r}: valid models are {', '.join(MODELS)}") from None


def get_model(kind: str) -> type[ToyModel]:
    """The class that trains a model kind (imports torch)."""
    return get_kind(kind).trainer()


def __getattr__(name: str) -> Any:
    """Hyper and ToyModel, the trainers' side, load torch: they are imported on first use."""
    if name in ("Hyper", "ToyModel"):
        from toysup.engine.models import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["MODELS", "Column", "Hyper", "ModelKind", "ToyModel", "get_kind", "get_model"]
