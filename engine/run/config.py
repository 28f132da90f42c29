"""A run's config.toml read back as the Spec it was written from, without the preset grammar.

config.toml is :meth:`engine.spec.Spec.to_toml` of the resolved spec: every parameter's value and each axis
as its expression, so that ``toysup run <folder>/config.toml`` repeats the run. Reading a run back needs the
same Spec, not a preset's resolution: no overrides, no top-level key checks, no combination checks per sweep
point (those held when the run was made, and a newer toysup's tighter rules must not lock an old run out), a
parameter declared since takes its default and one no longer declared is dropped. What stays is typing each
value by its declaration, expanding each axis to the exact values it trained (an axis is stored as its
expression), and the size bound that keeps a hostile file from expanding a billion values.
"""

from __future__ import annotations

import math
import tomllib
from typing import Any

from toysup.engine.adaptive_grid import parse_adaptive
from toysup.engine.kinds import MODELS, get_kind
from toysup.engine.spec import MAX_INSTANCES, Spec, axis_length, parse_axis

CONFIG_BYTES = 16 * 2**20  # a config.toml is a few KB


def _table(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ValueError(f"[{key}] is not a table")
    return value


def _text(data: dict[str, Any], key: str, default: str) -> str:
    value = data.get(key, default)
    if not isinstance(value, str):
        raise ValueError(f"{key} is not text")
    return value


def spec_from_config(text: str, source: str = "") -> Spec:
    """config.toml's text to its Spec. ValueError (tomllib's included) or UserError naming what is wrong;
    RecursionError for nesting too deep to parse."""
    data = tomllib.loads(text)
    model = data.get("model", "relu_output")
    if not isinstance(model, str) or model not in MODELS:
        raise ValueError(f"unknown model {repr(model)[:40]}")
    table = get_kind(model).param_table()
    params = {name: p.default for name, p in table.items()}
    for name, raw in _table(data, "params").items():
        if name in table:
            params[name] = table[name].parse(raw)
    sweep = _table(data, "sweep")
    unknown = [name for name in sweep if name not in table]
    if unknown:
        raise ValueError(f"the sweep's parameter {unknown[0][:40]!r} is not a parameter of {model}")
    points = math.prod(axis_length(table[name], expr) for name, expr in sweep.items())
    if points * int(params["seeds"]) > MAX_INSTANCES:
        raise ValueError(f"the sweep has more than {MAX_INSTANCES:,} instances")
    axes = tuple(parse_axis(table[name], expr) for name, expr in sweep.items())
    for axis in axes:
        params.pop(axis.name, None)
    adaptive = None
    if "adaptive" in data:
        adaptive = parse_adaptive(data["adaptive"], {c.name: c.kind for c in get_kind(model).columns}, source)
    return Spec(name=_text(data, "name", "sweep"), model=model, params=params, axes=axes,
                description=_text(data, "description", ""), expected=_text(data, "expected", ""), source=source,
                adaptive=adaptive)
