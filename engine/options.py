"""How and where a sweep trains: the run options, each declared once.

Every field of :class:`RunOptions` carries its declaration (an :class:`Option`:
type, default, valid range, help). ``toysup run``, ``resume``, ``tui`` and
``bench`` build their flags from :data:`OPTIONS`, the TUI's form builds its
fields from them, and every entry point ends in a ``RunOptions``, whose
construction is the one validation: a wrong value raises :class:`SpecError`
with one line saying what is wrong and what is valid. As a plain dict
(:meth:`RunOptions.to_dict`) the options go into run.json and to the TUI's
worker process.

No torch here: the CLI reads these declarations to build its flags before it
knows whether it will train at all.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from toysup.engine.errors import SpecError
from toysup.engine.params import Param

BACKENDS = ("local", "ray")
GIB = 1024**3
RAY_DEVICES = ("auto", "cpu", "cuda")  # Ray decides which GPU a chunk gets: no cuda:N


@dataclass(frozen=True)
class Option(Param):
    """A run option: a :class:`Param` (kind, default, range, help) that the command line spells ``--name``.

    ``automatic`` says what an unset value (None, typed as an empty field or
    ``auto``) means, for options whose default is None. ``pattern`` is the
    valid text of a ``str`` option, ``valid`` the same in words. ``backend``
    marks an option that means something only on that backend.
    """

    automatic: str = ""
    pattern: str = ""
    valid: str = ""
    backend: str = ""
    metavar: str = "VALUE"

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def named(self, shown: str) -> str:
        return f"{self.flag} {shown}"

    def range_text(self) -> str:
        return self.valid or super().range_text()

    def default_text(self) -> str:
        """The default as the help texts show it."""
        if self.default is None:
            return self.automatic
        return f"{self.default:g}" if isinstance(self.default, float) else str(self.default)

    def parse(self, raw: Any) -> Any:
        """Coerce a flag's text, a form field or a JSON value, then check it; None or blank: unset."""
        if self.automatic and _unset(raw, numeric=self.kind in ("int", "float")):
            return None
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            raise SpecError(f"{self.flag} is empty: expected {self.range_text()}")
        return super().parse(raw)

    def check(self, value: Any) -> None:
        if self.kind == "str" and self.pattern and not re.fullmatch(self.pattern, value):
            raise SpecError(f"{self.named(repr(value))} is not valid: expected {self.range_text()}")
        super().check(value)


def _unset(raw: Any, numeric: bool) -> bool:
    if raw is None:
        return True
    text = str(raw).strip().lower()
    return text == "" or (numeric and text == "auto")  # a Ray address may be the word auto: not unset


def _option(kind: Any, default: Any, help: str, **more: Any) -> Any:
    """A RunOptions field with its declaration (whose name is the field's, filled in below)."""
    return field(default=default, metadata={"option": Option("", kind, default, help, **more)})


@dataclass(frozen=True)
class RunOptions:
    """How and where a sweep trains. Always valid: construction checks every field, and their combination."""

    device: str = _option(
        "str", "auto", "where chunks train; auto: CUDA when present, else the CPU (ray: auto, cpu or cuda)",
        pattern=r"auto|cpu|cuda(:\d+)?", valid="auto, cpu, cuda or cuda:N", metavar="DEVICE")
    backend: str = _option(
        "choice", "local", "local: chunks train in this process; ray: as Ray tasks on a cluster (or on a local Ray "
        "instance without an address)", choices=BACKENDS, metavar="local|ray")
    address: str | None = _option(
        "str", None, "the Ray cluster to use", backend="ray", pattern=r"auto|local|(ray://)?\S+:\d+",
        valid="HOST:PORT, ray://HOST:PORT or auto", automatic="$RAY_ADDRESS, else a new local Ray instance",
        metavar="ADDR")
    gpus_per_chunk: float = _option(
        "float", 1.0, "the share of a GPU each Ray chunk asks for: 0.25 trains four chunks side by side on a GPU",
        low=0.0, high=1.0, low_open=True, unit="GPUs", backend="ray", metavar="F")
    threads: int | None = _option(
        "int", None, "CPU threads for torch (ray: the CPUs each chunk asks for)", low=1, high=4096,
        automatic="cores - 1 on CPU, 1 on GPU; ray: 1", metavar="N")
    max_memory: float | None = _option(
        "float", None, "memory budget per chunk", unit="GiB", low=0.0, low_open=True, high=1_000_000.0,
        automatic="a share of free memory (CPU: at most 4 GiB)", metavar="GIB")
    compile: str = _option(
        "choice", "auto", "the training step: eager, compiled (torch.compile: inductor C++ on CPU, Triton on CUDA) "
        "or kernel (the fused Triton kernel of the relu_output family, CUDA only); on and off are the old names of "
        "compiled and eager; auto compiles CPU sweeps of 2,000,000 instance-steps or more where the model has a "
        "compiled step of at least 80,000 FLOP (smaller ones measured slower compiled) and a compiler is present, "
        "and on CUDA picks a path only once measured faster there",
        choices=("auto", "eager", "compiled", "kernel", "on", "off"), metavar="auto|eager|compiled|kernel")
    checkpoint_every: float = _option(
        "float", 60.0, "time between checkpoints inside a chunk; resume continues from the last one",
        unit="seconds", low=0.0, low_open=True, metavar="SECONDS")

    def __post_init__(self) -> None:
        """The one validation: each value coerced and checked against its declaration, then the combination."""
        for option in OPTIONS:
            object.__setattr__(self, option.name, option.parse(getattr(self, option.name)))
        for option in OPTIONS:
            if option.backend and self.backend != option.backend and getattr(self, option.name) != option.default:
                raise SpecError(f"{option.flag} is for --backend {option.backend}: this run's backend is "
                                f"{self.backend}")
        if self.backend == "ray" and self.device not in RAY_DEVICES:
            raise SpecError(f"--device {self.device!r} is not valid with --backend ray: expected auto, cpu or cuda "
                            "(Ray decides which GPU each chunk gets)")

    @property
    def max_memory_bytes(self) -> int | None:
        """The memory budget per chunk in bytes, as the planner takes it (None: automatic)."""
        return None if self.max_memory is None else round(self.max_memory * GIB)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values, for run.json and the TUI's worker."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunOptions:
        """Options from JSON, a form or flags (values may be text, None means the default); unknown names and bad
        values raise SpecError."""
        check_names(data)
        return cls(**{name: value for name, value in data.items() if value is not None})

    def with_values(self, **changes: Any) -> RunOptions:
        """A copy with some fields changed (None leaves a field as it is), checked like any other."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


OPTIONS: tuple[Option, ...] = tuple(replace(f.metadata["option"], name=f.name) for f in fields(RunOptions))
OPTION = {o.name: o for o in OPTIONS}
RECORDED = ("backend", "address", "gpus_per_chunk")  # what resume takes from the run unless given


def check_names(names: Iterable[str]) -> None:
    """SpecError naming the first of ``names`` that is not a run option, and the valid ones."""
    unknown = sorted(set(names) - OPTION.keys())
    if unknown:
        raise SpecError(f"unknown run option {unknown[0]!r}: valid: {', '.join(OPTION)}")


def resume_options(given: Mapping[str, Any], record: Mapping[str, Any]) -> RunOptions:
    """Options to resume a run: ``given`` (the values the user set), and unless a backend is given, the run's own
    backend and, on Ray, its address and GPU share."""
    values = dict(given)
    if values.get("backend") is None:
        values["backend"] = str(record.get("backend") or "local")
        if values["backend"] == "ray":
            for name in RECORDED[1:]:
                if values.get(name) is None and record.get(name) not in (None, ""):
                    values[name] = record[name]
    return RunOptions.from_dict(values)
