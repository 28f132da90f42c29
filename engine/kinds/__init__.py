"""What each model kind declares, without torch: its parameters, result columns, constraints and memory estimate,
and the registry of kinds (name -> declaration).

Listings (``toysup params``, ``presets``, ``runs``), spec validation, the run format and the
TUI's form read these alone, so they open without loading torch. Each kind names the class
that trains it (``implementation``, in ``engine/models/<kind>.py``), which subclasses it and is
imported only when something trains or computes (``engine.models.get_model``). This package sits
in the engine's bottom layer (docs/contributing/layout.md): it imports only params and errors.
"""

from __future__ import annotations

from toysup.engine.errors import SpecError
from toysup.engine.kinds.abs_value import AbsValueKind
from toysup.engine.kinds.base import Column, ModelKind
from toysup.engine.kinds.compute import ComputeKind
from toysup.engine.kinds.incidental import IncidentalKind
from toysup.engine.kinds.linear import LinearKind
from toysup.engine.kinds.relu_hidden import ReluHiddenKind
from toysup.engine.kinds.relu_output import ReluOutputKind
from toysup.engine.kinds.relu_output_phase import ReluOutputPhaseKind
from toysup.engine.kinds.sae import SparseAutoencoderKind
from toysup.engine.kinds.sae_hidden import SaeHiddenKind

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


__all__ = ["MODELS", "Column", "ModelKind", "get_kind"]
