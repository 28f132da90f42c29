"""Preset files and the sweep grammar, resolved into a :class:`Spec`.

A preset is TOML::

    name = "tms-intro"
    description = "one line: what it shows"
    expected = "one line: the outcome to look for"
    model = "relu_output"

    [params]            # fixed values; anything left out takes its default
    n_features = 5
    seeds = 8

    [sweep]             # axes: a list, "lin:START:STOP:NUM", "log:START:STOP:NUM" or "a,b,c"
    feature_probability = "log:1:0.01:9"

    [adaptive]          # optional: refine the sweep in rounds near a boundary (engine/adaptive_grid.py)
    classify = "phase"
    rounds = 2

The sweep is the Cartesian product of the axes, in the order written, with
``seeds`` instances per point (seed indices ``seed .. seed+seeds-1``, innermost).
Every user mistake raises :class:`SpecError` with one clear line.
"""

from __future__ import annotations

import difflib
import itertools
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import tomli_w

from toysup.engine.adaptive_grid import Adaptive, check_grid, parse_adaptive
from toysup.engine.errors import SpecError
from toysup.engine.kinds import MODELS, get_kind
from toysup.engine.params import Param
from toysup.engine.preset_sources import bundled_dir
from toysup.engine.preset_sources import find as find_preset

Scale = Literal["list", "lin", "log"]
SWEEP_HELP = "expected a list like 0.1,0.2,0.5, lin:START:STOP:NUM or log:START:STOP:NUM"
TOP_LEVEL_KEYS = ("name", "description", "expected", "model", "params", "sweep", "adaptive")
NOT_SWEEPABLE = ("seeds", "seed", "seed_mode")
MAX_SEED = 2**31 - 1


@dataclass(frozen=True)
class Axis:
    """One swept parameter: its values in order, and how they were written."""

    name: str
    values: tuple[Any, ...]
    expr: str | list[Any]
    scale: Scale

    @property
    def log_scale(self) -> bool:
        """Whether charts should use a log axis for this parameter."""
        if self.scale == "log":
            return True
        numbers = [v for v in self.values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        return self.scale == "list" and len(numbers) > 2 and min(numbers) > 0 and max(numbers) / min(numbers) >= 20


@dataclass(frozen=True)
class Instance:
    """One model to train: its index in the sweep, sweep point, seed and full config."""

    index: int
    point: int
    seed: int
    config: dict[str, Any]


@dataclass(frozen=True)
class Spec:
    """A fully resolved sweep: model, every parameter's value, and the axes."""

    name: str
    model: str
    params: dict[str, Any]
    axes: tuple[Axis, ...] = ()
    description: str = ""
    expected: str = ""
    source: str = field(default="", compare=False)
    adaptive: Adaptive | None = None  # refine near a boundary in rounds instead of training every point

    @property
    def seeds(self) -> int:
        return int(self.params["seeds"])

    @property
    def seed_mode(self) -> str:
        """paired (the same seeds at every sweep point) or independent (distinct seeds per point)."""
        return str(self.params.get("seed_mode", "paired"))

    def point_seeds(self, point: int) -> range:
        """The seeds trained at sweep point ``point`` (its index in :meth:`points`).

        paired: seed .. seed+seeds-1 at every point (common random numbers). independent: point k
        trains seed+k*seeds .. seed+(k+1)*seeds-1, so no two instances of the sweep share a seed,
        and each seed is a pure function of (seed, seeds, point index): reproducible, and
        independent of how the instances are batched."""
        first = int(self.params["seed"]) + (point * self.seeds if self.seed_mode == "independent" else 0)
        return range(first, first + self.seeds)

    @property
    def n_points(self) -> int:
        return math.prod(len(a.values) for a in self.axes)

    @property
    def n_instances(self) -> int:
        return self.n_points * self.seeds

    def param_table(self) -> dict[str, Param]:
        return get_kind(self.model).param_table()

    def varying(self) -> list[str]:
        """The parameters whose value differs between instances (seed included)."""
        return [a.name for a in self.axes] + ["seed"]

    def points(self) -> list[dict[str, Any]]:
        names = [a.name for a in self.axes]
        return [dict(zip(names, combo)) for combo in itertools.product(*(a.values for a in self.axes))]

    def point_of(self, instance: int) -> int:
        """The sweep point of instance ``instance``: :meth:`instances` runs through the points in
        order with the seeds innermost, so instance i is at point i // seeds."""
        return instance // self.seeds

    def instances(self) -> list[Instance]:
        out: list[Instance] = []
        for p, point in enumerate(self.points()):
            for seed in self.point_seeds(p):
                config = {**self.params, **point, "seed": seed}
                out.append(Instance(index=len(out), point=p, seed=seed, config=config))
        return out

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name}
        if self.description:
            data["description"] = self.description
        if self.expected:
            data["expected"] = self.expected
        data["model"] = self.model
        swept = {a.name for a in self.axes}
        data["params"] = {k: v for k, v in self.params.items() if k not in swept}
        if self.axes:
            data["sweep"] = {a.name: a.expr for a in self.axes}
        if self.adaptive is not None:
            data["adaptive"] = self.adaptive.to_dict()
        return data

    def to_toml(self) -> str:
        """The spec as a preset file; loading it gives back an equal spec."""
        return tomli_w.dumps(self.to_dict())


# --- presets -----------------------------------------------------------------------------


def presets_dir() -> Path:
    """The bundled presets: inside the installed package, or presets/ in a checkout."""
    return bundled_dir()


def bundled_presets() -> dict[str, Path]:
    return {p.stem: p for p in sorted(presets_dir().glob("*.toml"))}


def preset_path(name_or_path: str) -> Path:
    """The file a preset name (project, user or bundled: engine.preset_sources), ``SOURCE:NAME`` or path names."""
    return find_preset(name_or_path).path


def read_preset(name_or_path: str, path: Path | None = None) -> dict[str, Any]:
    """A preset's contents, by name or path (``path``: the file already found for it)."""
    path = path or preset_path(name_or_path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"preset file {path}: invalid TOML: {exc}") from None
    except RecursionError:  # tomllib recurses once per level of nesting: a 100,000-deep array
        raise SpecError(f"preset file {path}: invalid TOML: nested too deeply") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"preset file {path} cannot be read: {exc}") from None
    data.setdefault("name", path.stem)
    return data


# --- resolution ----------------------------------------------------------------------------


def parse_assignment(text: str, option: str) -> tuple[str, str]:
    """``key=value`` from the command line."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or not value.strip():
        raise SpecError(f"{option} {text!r} is malformed: expected key=value")
    return key.strip(), value.strip()


def parse_axis(param: Param, expr: Any) -> Axis:
    """A sweep expression (TOML list, or a string in the sweep grammar) to an Axis."""
    if param.name in NOT_SWEEPABLE:
        raise SpecError(f"{param.name} cannot be swept: use seeds=N for N seeds per sweep point")
    if isinstance(expr, list):
        if not expr:
            raise SpecError(f"sweep {param.name} is empty: {SWEEP_HELP}")
        return _axis(param, [param.parse(v) for v in expr], list(expr), "list")
    if not isinstance(expr, str):
        return _axis(param, [param.parse(expr)], [expr], "list")
    text = expr.strip()
    head, _, rest = text.partition(":")
    if head in ("lin", "log"):
        parts = rest.split(":")
        if len(parts) != 3 or param.kind not in ("int", "float"):
            if param.kind not in ("int", "float"):
                raise SpecError(f"sweep {param.name}={text!r}: {head} ranges need a numeric parameter; "
                                f"list the values instead ({param.range_text()})")
            raise SpecError(f"sweep {param.name}={text!r} is malformed: {SWEEP_HELP}")
        try:
            start, stop, num = float(parts[0]), float(parts[1]), int(parts[2])
        except ValueError:
            raise SpecError(f"sweep {param.name}={text!r} is malformed: {SWEEP_HELP}") from None
        if num < 1:
            raise SpecError(f"sweep {param.name}={text!r}: NUM must be at least 1")
        if not (math.isfinite(start) and math.isfinite(stop)):
            raise SpecError(f"sweep {param.name}={text!r}: START and STOP must be finite numbers")
        if head == "log" and (start <= 0 or stop <= 0):
            raise SpecError(f"sweep {param.name}={text!r}: log ranges need positive START and STOP")
        raw = _range(head, start, stop, num)
        if param.kind == "int":
            raw = list(dict.fromkeys(round(v) for v in raw))
        return _axis(param, [param.parse(v) for v in raw], text, "lin" if head == "lin" else "log")
    items = [v.strip() for v in text.split(",")]
    if any(not v for v in items):
        raise SpecError(f"sweep {param.name}={text!r} is malformed: {SWEEP_HELP}")
    return _axis(param, [param.parse(v) for v in items], text, "list")


def _range(kind: str, start: float, stop: float, num: int) -> list[float]:
    if num == 1:
        return [start]
    if kind == "lin":
        return [start + (stop - start) * k / (num - 1) for k in range(num)]
    a, b = math.log10(start), math.log10(stop)
    return [float(f"{10 ** (a + (b - a) * k / (num - 1)):.6g}") for k in range(num)]


def _axis(param: Param, values: list[Any], expr: str | list[Any], scale: Scale) -> Axis:
    if len(set(values)) != len(values):
        raise SpecError(f"sweep {param.name} repeats a value: {values}")
    if scale == "lin":
        values = [float(f"{v:.6g}") if isinstance(v, float) else v for v in values]
    return Axis(param.name, tuple(values), expr, scale)


def resolve(
    data: dict[str, Any],
    sets: list[str] | tuple[str, ...] = (),
    sweeps: list[str] | tuple[str, ...] = (),
    seeds: int | None = None,
    source: str = "",
) -> Spec:
    """Validate a preset's contents plus command-line overrides into a Spec.

    ``-s key=value`` fixes a parameter (replacing an axis of that name);
    ``--sweep key=values`` makes it an axis; ``seeds`` overrides the seed count.
    """
    unknown_keys = [k for k in data if k not in TOP_LEVEL_KEYS]
    if unknown_keys:
        raise SpecError(f"{source or 'preset'}: unknown key {unknown_keys[0]!r}; valid keys: "
                        f"{', '.join(TOP_LEVEL_KEYS)}")
    model = data.get("model", "relu_output")
    if not isinstance(model, str) or model not in MODELS:
        raise SpecError(f"unknown model {model!r}{_did_you_mean(str(model), MODELS)}; valid models: "
                        f"{', '.join(MODELS)}")
    table = get_kind(model).param_table()
    fixed_raw = _table(data, "params", source)
    sweep_raw = _table(data, "sweep", source)
    both = set(fixed_raw) & set(sweep_raw)
    if both:
        raise SpecError(f"{source or 'preset'}: {sorted(both)[0]} is both in [params] and [sweep]; keep one")

    for key in ("name", "description", "expected"):
        if key in data and not isinstance(data[key], str):
            raise SpecError(f"{source or 'preset'}: {key} must be a string, not {type(data[key]).__name__}")

    params = {name: p.default for name, p in table.items()}
    raw_axes: dict[str, Any] = {}  # sweep expressions, expanded only once the sweep's size is known to be sane
    for key, raw in fixed_raw.items():
        params[key] = _param(table, key, model).parse(raw)
    for key, raw in sweep_raw.items():
        _param(table, key, model)
        raw_axes[key] = raw
    for text in sets:
        key, value = parse_assignment(text, "-s")
        params[key] = _param(table, key, model).parse(value)
        raw_axes.pop(key, None)
    for text in sweeps:
        key, value = parse_assignment(text, "--sweep")
        _param(table, key, model)
        raw_axes[key] = value
    if seeds is not None:
        params["seeds"] = table["seeds"].parse(seeds)
    _check_size({key: axis_length(table[key], raw) for key, raw in raw_axes.items()}, int(params["seeds"]))
    axes = {key: parse_axis(table[key], raw) for key, raw in raw_axes.items()}
    adaptive = None
    if "adaptive" in data:
        columns = {c.name: c.kind for c in get_kind(model).columns}
        adaptive = parse_adaptive(data["adaptive"], columns, source or "preset")
        check_grid(adaptive, {k: len(a.values) for k, a in axes.items()}, int(params["seeds"]))
    for name in axes:
        params.pop(name)
    spec = Spec(
        name=str(data.get("name", "sweep")),
        model=model,
        params=params,
        axes=tuple(axes.values()),
        description=str(data.get("description", "")),
        expected=str(data.get("expected", "")),
        source=source,
        adaptive=adaptive,
    )
    _check_combinations(spec)
    return spec


def load(
    name_or_path: str,
    sets: list[str] | tuple[str, ...] = (),
    sweeps: list[str] | tuple[str, ...] = (),
    seeds: int | None = None,
) -> Spec:
    """A bundled preset name or a preset/config file, with overrides, as a Spec."""
    path = preset_path(name_or_path)
    return resolve(read_preset(name_or_path, path), sets, sweeps, seeds, source=str(path))


def _table(data: dict[str, Any], key: str, source: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise SpecError(f"{source or 'preset'}: [{key}] must be a table of name = value")
    return value


def _param(table: dict[str, Param], key: str, model: str) -> Param:
    param = table.get(key)
    if param is None:
        raise SpecError(f"unknown parameter {key!r} for model {model}{_did_you_mean(key, table)}; "
                        f"valid: {', '.join(table)}")
    return param


MAX_INSTANCES = 5_000_000  # a row of results per instance lives in memory while a run goes


def axis_length(param: Param, expr: Any) -> int:
    """How many values a sweep expression gives, read from the grammar without expanding it (an upper
    bound for int ranges, whose rounded values may repeat); 1 for what parse_axis will reject anyway."""
    if isinstance(expr, list):
        return max(1, len(expr))
    if not isinstance(expr, str):
        return 1
    head, _, rest = expr.strip().partition(":")
    if head in ("lin", "log"):
        parts = rest.split(":")
        try:
            return max(1, int(parts[2])) if len(parts) == 3 else 1
        except ValueError:
            return 1
    return expr.count(",") + 1


def _check_size(lengths: dict[str, int], seeds: int) -> None:
    """The sweep's size from the grammar alone, before any axis is expanded: expanding a
    ``lin:0:1:100000000`` axis would itself exhaust time and memory before a refusal."""
    points = math.prod(lengths.values())
    if points * seeds > MAX_INSTANCES:
        sizes = " x ".join(f"{n:,} {name}" for name, n in lengths.items())
        raise SpecError(f"the sweep has {points * seeds:,} instances ({sizes} x {seeds} seeds); one run holds at "
                        f"most {MAX_INSTANCES:,}: use fewer seeds or points, or split the sweep into several runs")


def _check_combinations(spec: Spec) -> None:
    """Constraints that involve more than one parameter, checked by the model per sweep point, and the
    seeds the sweep needs (the size itself is checked from the grammar, before expansion, by _check_size)."""
    last = spec.point_seeds(spec.n_points - 1 if spec.seed_mode == "independent" else 0).stop - 1
    if last > MAX_SEED:
        raise SpecError(f"the sweep's last seed would be {last:,}, above {MAX_SEED:,}: lower seed"
                        + (" or seeds (seed_mode=independent uses seeds x points distinct seeds)"
                           if spec.seed_mode == "independent" else ""))
    model = get_kind(spec.model)
    for point in spec.points():
        model.check({**spec.params, **point})


def _did_you_mean(name: str, choices: Any) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
