"""Several runs side by side as rich tables and overlaid terminal charts: ``toysup compare`` and the TUI's compare
screen draw the same config diff. The numbers come from engine.comparison."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.table import Table
from rich.text import Text

from toysup.engine.analysis.series import Band, metric_bands
from toysup.engine.comparison import PointRow
from toysup.engine.results import Results, value_text
from toysup_tui.render import charts


def cell(value: Any) -> Text:
    """A value as plain text (never markup: a config's strings come from a run folder); absent as "—"."""
    return Text("—" if value is None else value_text(value))


def config_diff_table(diff: dict[str, list[Any]], run_ids: Sequence[str]) -> Table | Text:
    """What differs between the runs' configs, one row per entry; a line saying so when nothing does."""
    if not diff:
        return Text("the runs' configs are the same (model, parameters and sweep)", style="dim")
    table = Table(title="config: only what differs", title_justify="left")
    table.add_column("parameter", style="cyan", no_wrap=True)
    for run_id in run_ids:
        table.add_column(Text(run_id), overflow="fold")
    for name, values in diff.items():
        table.add_row(Text(name), *[cell(v) for v in values])
    return table


def side_by_side_table(rows: Sequence[PointRow], run_ids: Sequence[str], metrics: Sequence[str]) -> Table:
    """Per sweep point and metric, each run's median over seeds."""
    table = Table(title="median over seeds per point", title_justify="left")
    table.add_column("point", style="cyan")
    table.add_column("metric")
    for run_id in run_ids:
        table.add_column(Text(run_id), justify="right", overflow="fold")
    for row in rows:
        for k, metric in enumerate(metrics):
            medians = row.medians.get(metric, [])
            if all(v is None for v in medians):
                continue
            table.add_row(Text(row.label) if k == 0 else "", metric, *[cell(v) for v in medians],
                          end_section=k == len(metrics) - 1)
    return table


def overlaid_bands(run_ids: Sequence[str], results: Sequence[Results], x: str, metric: str) -> list[Band]:
    """Each run's series of ``metric`` against ``x`` (one per value of its second axis), labelled with its id."""
    bands: list[Band] = []
    for run_id, r in zip(run_ids, results):
        for band in metric_bands(r, x, metric, max_series=len(charts.PALETTE)):
            band.label = run_id if band.label == metric else f"{run_id} {band.label}"
            bands.append(band)
    return bands[:len(charts.PALETTE)]
