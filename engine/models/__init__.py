"""The classes that train each model kind, found from the kind's torch-free declaration (engine/kinds).

:func:`get_model` gives the class that trains a kind, importing torch. ``MODELS`` and
:func:`get_kind` are the declarations' registry (engine.kinds), also found here for the callers that
train; this package itself imports no torch until :func:`get_model`, ``Hyper`` or ``ToyModel`` is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from toysup.engine.kinds import MODELS, Column, ModelKind, get_kind

if TYPE_CHECKING:
    from toysup.engine.models.base import Hyper, ToyModel


def get_model(kind: str) -> type[ToyModel]:
    """The class that trains a model kind (imports torch): the declaration's ``implementation``, checked to
    subclass both the declaration and ToyModel."""
    from toysup.engine.models.base import ToyModel  # deferred: it loads torch, which listings never need

    declared = get_kind(kind)
    if issubclass(declared, ToyModel):
        return declared
    module, _, name = declared.implementation.partition(":")
    found = getattr(importlib.import_module(module), name)
    if not (isinstance(found, type) and issubclass(found, declared) and issubclass(found, ToyModel)):
        raise TypeError(f"{declared.implementation} does not train model kind {kind!r}")
    return found


def __getattr__(name: str) -> Any:
    """Hyper and ToyModel, the trainers' side, load torch: they are imported on first use."""
    if name in ("Hyper", "ToyModel"):
        from toysup.engine.models import base  # deferred: it loads torch, which listings never need

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["MODELS", "Column", "Hyper", "ModelKind", "ToyModel", "get_kind", "get_model"]
