"""mkdocs hook: the reference pages generated from the code's declarations when the site is built.

Parameters (engine/params.py and each kind's own, engine/kinds/*), run options (engine/options.py)
and the columns of results.csv, curves.csv and features.csv (each kind's declaration, engine/run_format.py's
leading keys) are written from the declarations every build, so the pages cannot drift from the code; they
are never committed. mkdocs.yml names this file under ``hooks:``.
"""

from __future__ import annotations

from typing import Any

from mkdocs.structure.files import File, Files

from toysup.engine.kinds.base import Column
from toysup.engine.models import MODELS
from toysup.engine.options import OPTIONS
from toysup.engine.params import TRAINING_PARAMS, Param
from toysup.engine.run_format import CURVE_KEYS, FEATURE_KEYS, RESULT_KEYS


def cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def param_rows(params: tuple[Param, ...] | list[Param]) -> list[str]:
    rows = ["| parameter | type | default | valid | groups the batch | meaning |", "|---|---|---|---|---|---|"]
    for p in params:  # grouping: the parameter changes tensor shapes or the loop (see How a sweep trains)
        rows.append(f"| `{p.name}` | {p.kind} | `{cell(p.default)}` | {cell(p.range_text())} | "
                    f"{'yes' if p.structural else ''} | {cell(p.help)} |")
    return rows


def parameters_page() -> str:
    lines = ["# Parameters", "",
             "Generated from the declarations (engine/params.py, engine/kinds/) when the site is built; "
             "`toysup params MODEL` prints the same. Set one with `-s key=value`, sweep it with "
             "`--sweep key=values` (see [the sweep file format](sweep-format.md)).", "",
             "## Training parameters (every model)", "", *param_rows(TRAINING_PARAMS), ""]
    for name, kind in MODELS.items():
        lines += [f"## `{name}`", "", cell(kind.summary), ""]
        lines += param_rows(kind.params) if kind.params else ["Training parameters only."]
        lines.append("")
    lines += ["## Run options", "",
              "Where and how a sweep trains, not what it trains (engine/options.py); "
              "`run`, `resume`, `tui` and `bench` take them.", "",
              "| option | default | valid | meaning |", "|---|---|---|---|"]
    for o in OPTIONS:
        valid = ", ".join(o.choices) if o.kind == "choice" else o.range_text()
        lines.append(f"| `{o.flag} {o.metavar}` | {cell(o.default_text())} | {cell(valid)} | {cell(o.help)} |")
    return "\n".join(lines) + "\n"


def column_rows(columns: tuple[Column, ...]) -> list[str]:
    rows = ["| column | type | meaning |", "|---|---|---|"]
    rows += [f"| `{c.name}` | {c.kind} | {cell(c.help)} |" for c in columns]
    return rows


def columns_page() -> str:
    keys = ", ".join(f"`{k}`" for k in RESULT_KEYS)
    lines = ["# Result columns", "",
             "Generated from each model kind's declaration (engine/kinds/) when the site is built. "
             f"results.csv starts with {keys} and the swept parameters, then the model's metrics below, then "
             f"`diverged`; curves.csv starts with {', '.join(f'`{k}`' for k in CURVE_KEYS)}; features.csv with "
             f"{', '.join(f'`{k}`' for k in FEATURE_KEYS)}. What the metrics mean and their thresholds: "
             "[metrics](metrics.md); the files: [the run folder](run-folder.md).", ""]
    for name, kind in MODELS.items():
        lines += [f"## `{name}`", "", "results.csv:", "", *column_rows(kind.columns), ""]
        if kind.curve_columns:
            lines += ["curves.csv, beside the loss:", "", *column_rows(kind.curve_columns), ""]
        if kind.feature_columns:
            lines += ["features.csv, one row per feature:", "", *column_rows(kind.feature_columns), ""]
    return "\n".join(lines) + "\n"


GENERATED = {"reference/parameters.md": parameters_page, "reference/columns.md": columns_page}


def on_files(files: Files, config: Any) -> Files:
    for path, page in GENERATED.items():
        files.append(File.generated(config, path, content=page()))
    return files
