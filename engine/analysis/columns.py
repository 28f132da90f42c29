"""Which metrics a summary ranks, charts or abbreviates: read from the model's column declarations
(engine/models/base.py ``Column``) and the parameters' (``Param.short``), so that no front end
keeps its own list of metric names."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from toysup.engine.kinds import get_kind
from toysup.engine.kinds.base import Column

# Abbreviated headers of the run format's own columns (engine/run_format.py RESULT_KEYS).
KEY_SHORT = {"instance": "inst"}


def _columns(model: str) -> dict[str, Column]:
    return {c.name: c for c in get_kind(model).columns}


def headline_metrics(model: str, available: Iterable[str]) -> list[str]:
    """The model's metrics present in ``available``: headline ones first (in their declared rank),
    then the rest in column order."""
    present = set(available)
    columns = [c for c in get_kind(model).columns if c.name in present]
    ranked = sorted((c for c in columns if c.headline is not None), key=lambda c: c.headline or 0)
    return [c.name for c in ranked] + [c.name for c in columns if c.headline is None]


def charted_metrics(model: str, available: Iterable[str]) -> list[str]:
    """The headline metrics drawn against a swept parameter: numeric columns declared ``chart``."""
    columns = _columns(model)
    return [m for m in headline_metrics(model, available) if columns[m].chart and columns[m].kind != "bool"]


def flags(model: str) -> set[str]:
    """The model's yes/no columns (a summary counts their yes instead of taking a median)."""
    return {c.name for c in get_kind(model).columns if c.kind == "bool"}


def summary_candidates(model: str, rows: Sequence[dict[str, Any]], wide: bool = False) -> list[str]:
    """The metrics a summary table may show, in headline order, before fitting them to a width.

    Very wide summaries show every headline metric; otherwise columns declared ``summary="wide"``
    are left out, and so are ``"if_true"`` flags that no row has set.
    """
    metrics = headline_metrics(model, list(rows[0]) if rows else [])
    if wide:
        return metrics
    columns = _columns(model)

    def shown(name: str) -> bool:
        rule = columns[name].summary
        return rule == "always" or (rule == "if_true" and any(r.get(name) is True for r in rows))

    return [m for m in metrics if shown(m)]


def keep_order(model: str, metrics: Sequence[str]) -> list[str]:
    """``metrics`` in the order a narrow summary keeps them: declared ``keep`` ranks first, then
    the rest in their given order."""
    columns = _columns(model)
    ranked = sorted((m for m in metrics if columns[m].keep is not None), key=lambda m: columns[m].keep or 0)
    return ranked + [m for m in metrics if columns[m].keep is None]


def short_names(model: str) -> dict[str, str]:
    """Abbreviated headers for results.csv columns that declare one (metrics, parameters, run keys)."""
    kind = get_kind(model)
    names = dict(KEY_SHORT)
    names.update({p.name: p.short for p in kind.param_table().values() if p.short})
    names.update({c.name: c.short for c in kind.columns if c.short})
    return names
