"""run.json as one typed record, read and written here only.

Each field the store writes has one shape, and a file whose fields have another (a hand edit, a damaged or
hostile folder) is refused with the field named, so no reader meets ``pid: 2**70`` or ``resumed: "x"`` or
``wall_time_s: 1e400``. Fields this toysup does not know (a newer one's) are kept as they are in
:attr:`RunRecord.extra`; their values are JSON, so they hold nothing but text, numbers and containers.

``schema`` is run.json's format version. Every run.json written before the field existed is version 1,
which this one still is: the field only lets a later format be told apart. A run.json of a newer schema
is refused (this toysup cannot know what its fields mean).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import Any

from toysup.engine.runlog import valid_pid

SCHEMA = 1  # run.json's format version; a run.json without ``schema`` is version 1
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


def _objects(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(r, dict) for r in value)


FIELDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "schema": (_count, "a count (a non-negative integer)"),
    **{name: (_text, "text") for name in ("id", "name", "model", "status", "started", "device", "host", "command",
                                          "error", "step", "backend", "seed_mode", "address", "ray_version",
                                          "adaptive_stop")},
    "ended": (_optional(_text), "text or null"),
    "pid": (valid_pid, "a process id (an integer above 1)"),
    **{name: (_count, "a count (a non-negative integer)") for name in ("instances", "instances_done", "chunks",
                                                                      "chunks_done", "resumed")},
    **{name: (_amount, "a finite non-negative number") for name in ("instance_steps_done", "wall_time_s",
                                                                    "instance_steps_per_s", "gpus_per_chunk")},
    "versions": (_texts, "an object of texts"),
    "options": (lambda v: isinstance(v, dict), "an object"),
    "adaptive_rounds": (_objects, "a list of objects"),
    "checkpoints": (_objects, "a list of objects"),
}


@dataclass
class RunRecord:
    """run.json: what the run is, where and how it trained, how far it got, and how it ended.

    ``status`` is the word the trainer wrote (engine/run/status.py derives the run's status from it and
    from whether its process lives). The optional fields (None: not in the file) are written only when
    set. ``heartbeat`` is heartbeat.json's content, read beside a 'running' record and never written;
    ``damage`` says why run.json could not be read, in a stand-in record that is never written either.
    """

    schema: int = SCHEMA
    id: str = ""
    name: str = "?"
    model: str = ""
    status: str = ""
    started: str = ""
    ended: str | None = None
    device: str = ""
    host: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    command: str = ""
    pid: int | None = None
    instances: int = 0
    instances_done: int = 0
    chunks: int = 0
    chunks_done: int = 0
    instance_steps_done: float = 0
    wall_time_s: float = 0.0
    instance_steps_per_s: float = 0.0
    error: str = ""
    # written by some runs only
    backend: str | None = None
    seed_mode: str | None = None
    options: dict[str, Any] | None = None
    step: str | None = None
    resumed: int | None = None
    checkpoints: list[dict[str, Any]] | None = None
    adaptive_rounds: list[dict[str, Any]] | None = None
    adaptive_stop: str | None = None
    address: str | None = None
    gpus_per_chunk: float | None = None
    ray_version: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # fields this toysup does not know, kept as they are
    heartbeat: dict[str, Any] | None = None  # heartbeat.json's, never written here
    damage: str = ""  # a stand-in for a run.json that could not be read: why (never written)

    def to_json(self) -> dict[str, Any]:
        """run.json's object: every field but the unset optional ones, then the unknown ones as read."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name in _NOT_WRITTEN:
                continue
            value = getattr(self, f.name)
            if value is None and f.name not in _ALWAYS:
                continue
            out[f.name] = value
        return {**out, **{k: v for k, v in self.extra.items() if k not in out}}

    def text(self) -> str:
        """run.json's text as the store writes it."""
        return json.dumps(self.to_json(), indent=2) + "\n"

    def with_changes(self, **changes: Any) -> RunRecord:
        """A copy with some fields changed (a name that is no field is a TypeError: a misspelt field)."""
        return replace(self, **changes)


_NOT_WRITTEN = ("extra", "heartbeat", "damage")
_ALWAYS = ("ended",)  # written as null while the run trains
_KNOWN = {f.name for f in fields(RunRecord)} - set(_NOT_WRITTEN)


def parse_record(text: str) -> RunRecord:
    """run.json's text to its record; ValueError naming the field whose value has the wrong shape, or a
    schema newer than this toysup reads (or RecursionError for nesting too deep to parse)."""
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    for name, (check, shape) in FIELDS.items():
        if name in data and not check(data[name]):
            raise ValueError(f"{name} is not {shape}")
    schema = data.get("schema", 1)
    if schema > SCHEMA:
        raise ValueError(f"schema {schema} is newer than this toysup reads ({SCHEMA}): upgrade toysup to open it")
    known = {k: v for k, v in data.items() if k in _KNOWN}
    return RunRecord(**{**known, "schema": schema}, extra={k: v for k, v in data.items() if k not in _KNOWN})
