"""The registry of model kinds: name -> class."""

from __future__ import annotations

from engine.errors import SpecError
from engine.models.abs_value import AbsValue
from engine.models.base import Column, Hyper, ToyModel
from engine.models.compute import Compute
from engine.models.incidental import Incidental
from engine.models.linear import Linear
from engine.models.relu_hidden import ReluHidden
from engine.models.relu_output import ReluOutput
from engine.models.relu_output_phase import ReluOutputPhase
from engine.models.sae import SparseAutoencoder
from engine.models.sae_hidden import SaeHidden

MODELS: dict[str, type[ToyModel]] = {cls.kind: cls for cls in (ReluOutput, Linear, SparseAutoencoder, ReluHidden,
                                                               AbsValue, ReluOutputPhase, Incidental,
                                                               SaeHidden, Compute)}


def get_model(kind: str) -> type[ToyModel]:
    try:
        return MODELS[kind]
    except KeyError:
        raise SpecError(f"unknown model {kind!r}: valid models are {', '.join(MODELS)}") from None


__all__ = ["MODELS", "Column", "Hyper", "ToyModel", "get_model"]
