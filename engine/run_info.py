"""run.json as a typed record: each field the store writes has one shape, and a file whose fields have
another (a hand edit, a damaged or hostile folder) is refused with the field named, so no reader meets
``pid: 2**70`` or ``resumed: "x"`` or ``wall_time_s: 1e400``. Fields it does not know are kept as they are
(a newer toysup's); their values are JSON, so they hold nothing but text, numbers and containers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from toysup.engine.runlog import valid_pid

INFO_BYTES = 4 * 2**20  # a run.json is a few KB; a bigger one is not the store's
TEXT_CHARS = 64 * 1024
COUNT_MAX = 2**53  # any count the store writes fits a float exactly


def _text(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= TEXT_CHARS


def _count(value: Any) -> bool:
    return type(value) is int and 0 <= value <= COUNT_MAX


def _amount(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value) and 0 <= value <= 1e300


def _optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: value is None or check(value)


def _texts(value: Any) -> bool:
    return isinstance(value, dict) and all(_text(v) for v in value.values())


FIELDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    **{name: (_text, "text") for name in ("id", "name", "model", "status", "started", "device", "host", "command",
                                          "error", "step", "backend", "seed_mode", "address", "ray_version")},
    "ended": (_optional(_text), "text or null"),
    "pid": (valid_pid, "a process id (an integer above 1)"),
    **{name: (_count, "a count (a non-negative integer)") for name in ("instances", "instances_done", "chunks",
                                                                      "chunks_done", "resumed")},
    **{name: (_amount, "a finite non-negative number") for name in ("instance_steps_done", "wall_time_s",
                                                                    "instance_steps_per_s", "gpus_per_chunk")},
    "versions": (_texts, "an object of texts"),
    "options": (lambda v: isinstance(v, dict), "an object"),
    "adaptive_rounds": (lambda v: isinstance(v, list) and all(isinstance(r, dict) for r in v), "a list of objects"),
}


def parse_info(text: str) -> dict[str, Any]:
    """run.json's text to its record; ValueError naming the field whose value has the wrong shape (or
    RecursionError for nesting too deep to parse)."""
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    for name, (check, shape) in FIELDS.items():
        if name in data and not check(data[name]):
            raise ValueError(f"{name} is not {shape}")
    return data
