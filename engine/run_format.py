"""What a run folder's tables hold: their columns, their rows from a trained chunk, and CSV text.

The run package (engine/run/) writes and reads the files; this module decides what
goes in them, so the run format has one description, checked against the README
by tests/test_store.py. A CSV cell is a bool (``true``/``false``), an int, a float
to 9 significant digits, a choice's name, or empty (a diverged instance's metrics).
9 digits are plenty for metrics; they are not an identity: a row's sweep point is its
``point`` index into the spec's points (:meth:`engine.spec.Spec.points`), whose axis
values config.toml reproduces exactly.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from toysup.engine.errors import RunDataError
from toysup.engine.kinds import get_kind
from toysup.engine.spec import Spec

if TYPE_CHECKING:
    from toysup.engine.train import ChunkResult

# The leading columns of each table; the rest come from the spec's axes and the model's declarations.
RESULT_KEYS = ("instance", "seed", "point")
CURVE_KEYS = ("instance", "step", "loss")
FEATURE_KEYS = ("instance", "feature")
TABLES = ("results", "curves", "features")


def result_columns(spec: Spec) -> list[str]:
    """results.csv: instance, seed, point, the swept parameters, the model's metrics, diverged."""
    model = get_kind(spec.model)
    return [*RESULT_KEYS, *[a.name for a in spec.axes], *[c.name for c in model.columns], "diverged"]


def curve_columns(model: str) -> list[str]:
    """curves.csv: instance, step, loss, then the model's curve columns."""
    return [*CURVE_KEYS, *[c.name for c in get_kind(model).curve_columns]]


def feature_columns(model: str) -> list[str]:
    """features.csv: instance, feature, then the model's per-feature columns."""
    return [*FEATURE_KEYS, *[c.name for c in get_kind(model).feature_columns]]


def result_rows(spec: Spec, result: ChunkResult) -> list[dict[str, Any]]:
    """One results row per instance of a trained chunk; a diverged instance's metrics are left empty."""
    axes = [a.name for a in spec.axes]
    rows = []
    for i, inst in enumerate(result.chunk.instances):
        row: dict[str, Any] = {"instance": inst.index, "seed": inst.seed, "point": inst.point}
        row.update({name: inst.config[name] for name in axes})
        diverged = bool(result.diverged[i])
        for name, values in result.metrics.items():
            value = values[i].item()
            finite = not isinstance(value, float) or math.isfinite(value)
            row[name] = value if finite and not diverged else ""  # a diverged instance's metrics mean nothing
        row["diverged"] = diverged
        rows.append(row)
    return rows


def curve_csv(spec: Spec, result: ChunkResult) -> str:
    """A chunk's curves.csv rows (finite losses only: a diverged instance stops logging)."""
    extra = {name: values.tolist() for name, values in result.curve_extra.items()}
    rows = (
        {"instance": inst.index, "step": step, "loss": loss, **{n: v[i][k] for n, v in extra.items()}}
        for i, inst in enumerate(result.chunk.instances)
        for k, (step, loss) in enumerate(zip(result.curve_steps, result.curves[i].tolist()))
        if math.isfinite(loss)
    )
    return csv_text(curve_columns(spec.model), rows)


def feature_csv(spec: Spec, result: ChunkResult) -> str:
    """A chunk's features.csv rows: one per instance and feature."""
    columns = feature_columns(spec.model)
    names = columns[len(FEATURE_KEYS):]
    arrays = {k: v.tolist() for k, v in result.features.items()}
    rows = (
        {"instance": inst.index, "feature": f, **{k: arrays[k][i][f] for k in names}}
        for i, inst in enumerate(result.chunk.instances)
        for f in range(len(arrays[names[0]][i]) if names else 0)
    )
    return csv_text(columns, rows)


# --- cells and CSV text -------------------------------------------------------------------------


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.9g}"
    return str(value)


def parse_value(text: str) -> Any:
    """A CSV cell back to bool, int, float or (for choices) string; empty stays empty."""
    if text in ("true", "false"):
        return text == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def csv_text(columns: list[str], rows: Iterable[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([format_value(row.get(c, "")) for c in columns])
    return buf.getvalue()


def parse_csv(text: str, name: str = "table") -> tuple[list[str], list[dict[str, Any]]]:
    """CSV text to its header and rows of parsed cells; a row of the wrong length (a truncated or
    hand-edited file) or text that is not CSV raises RunDataError naming the file and line."""
    reader = csv.reader(io.StringIO(text))
    rows = []
    try:
        header = next(reader, [])
        for line in reader:
            if not line:
                continue  # a blank line
            if len(line) != len(header):
                raise RunDataError(f"{name} line {reader.line_num} has {len(line)} cells, expected {len(header)}")
            rows.append(dict(zip(header, (parse_value(v) for v in line))))
    except csv.Error as exc:  # a field over the csv module's 128 KiB, a bare CR, a NUL byte
        raise RunDataError(f"{name} line {reader.line_num} is not CSV: {exc}") from None
    return header, rows
