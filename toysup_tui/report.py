"""Rich tables for runs and results, shared by ``toysup report``/``run``/``runs`` and the TUI."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from rich import box
from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from engine.errors import RunDataError, UserError
from engine.models import get_model
from engine.plan import Chunk
from engine.results import Point, Results
from engine.spec import Spec
from engine.store import Run, run_status
from toysup_tui import charts

# The metrics a summary shows first, when the model has them.
HEADLINE = (
    "loss", "features_represented", "dims_per_feature", "mean_dimensionality", "orientation_angle_deg",
    "axis_alignment", "polysemantic_neurons", "monosemantic_neurons", "collapsed",
)
SUPERPOSITION_NOTE = ("more or less superposition? read features_per_dim (represented features per dimension, above "
                      "1 = superposition) and mean_dimensionality (1/2 = antipodal pairs, 2/5 = pentagon): both are "
                      "scale-free. dims_per_feature (D*) also moves with the weights' scale: dropout, weight decay and "
                      "L1 shrink the norms and raise it with the geometry unchanged.")
SEED_MODE_TEXT = {  # runs from before seed_mode existed were paired
    "paired": "seeds paired: every point trains the same seeds (same init and data; differences between points "
              "are paired comparisons)",
    "independent": "seeds independent: every point trains its own seeds (counts over seeds are independent samples)",
}
STATUS_STYLE = {"completed": "green", "running": "yellow", "interrupted": "magenta", "failed": "red",
                "damaged": "bold red", "killed": "red"}


def fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != value:
            return "—"
        return f"{value:.3g}" if abs(value) < 1e4 else f"{value:.3e}"
    return str(value)


def headline_metrics(model: str, available: list[str]) -> list[str]:
    names = [c.name for c in get_model(model).columns]
    first = [m for m in HEADLINE if m in names and m in available]
    return first + [m for m in names if m not in first and m in available]


def runs_table(runs: list[Run]) -> Table:
    table = Table(title=None)
    # The run id and status never shrink: they are what a user reads and types next.
    for col, kw in (("run", {"style": "bold", "no_wrap": True, "min_width": 20}), ("preset", {}), ("model", {}),
                    ("status", {"no_wrap": True, "min_width": 11}),
                    ("instances", {"justify": "right"}), ("device", {}), ("wall", {"justify": "right"}),
                    ("started", {})):
        table.add_column(col, **kw)
    for run in runs:
        info = run.info()
        status = run.status()
        done, total = _text(info.get("instances_done", 0)), _text(info.get("instances", 0))
        count = f"{total}" if status == "completed" else f"{done}/{total}"
        wall = info.get("wall_time_s")
        table.add_row(escape(run.id), _text(info.get("name", "?")), _text(info.get("model", "")),
                      f"[{STATUS_STYLE.get(status, '')}]{status}[/]", count, _text(info.get("device", "")),
                      f"{wall:.1f}s" if _is_number(wall) else "", _text(info.get("started", ""))[:19])
    return table


def _text(value: Any) -> str:
    """A value from a run folder as table text: never read as markup (a run name may hold ``[/]``)."""
    return escape(str(value))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(value: Any) -> float:
    """A number from run.json, or 0 when a damaged or edited file holds something else there."""
    return float(value) if _is_number(value) else 0.0


def summary_table(results: Results, metrics: list[str] | None = None, compact: bool = False) -> Table:
    """One row per sweep point: axis values, seeds, and the median [q25-q75] of each metric over seeds.

    ``compact`` (narrow terminals) drops the percentiles and, when every point has the
    same number of seeds, the seeds column; the caption says so. Long column names
    break after an underscore, so they stay exact but take less width.
    """
    spec = results.spec
    axes = [a.name for a in spec.axes]
    available = list(results.rows[0]) if results.rows else []
    metrics = metrics or headline_metrics(spec.model, available)
    points = results.stats(metrics)
    seed_counts = {p.n for p in points}
    show_seeds = not compact or len(seed_counts) > 1
    if compact:
        seeds_note = "" if show_seeds else f", {_plural(seed_counts.pop(), 'seed')} per point"
        caption = f"median over seeds{seeds_note} (125+ columns also show the 25th-75th percentiles)"
    else:
        caption = "median over seeds [25th-75th percentile]"
    table = Table(caption=caption, caption_justify="left", box=box.SIMPLE_HEAD if compact else box.HEAVY_HEAD,
                  padding=(0, 1), pad_edge=not compact)
    for a in axes:
        table.add_column(_header(a), style="cyan", justify="right")
    if show_seeds:
        table.add_column("seeds", justify="right")
    for m in metrics:
        table.add_column(_header(m), justify="right")
    flags = {c.name for c in get_model(spec.model).columns if c.kind == "bool"}
    for point in points:
        values = results.point(point.point).values
        cells = [fmt(values[a]) for a in axes] + ([str(point.n)] if show_seeds else [])
        for m in metrics:
            if m not in point.stats:
                cells.append("—")
                continue
            if m in flags:  # a median of yes/no says little: count the yes
                yes = sum(r.get(m) is True for r in results.members(point.point))
                cells.append(f"{yes}/{point.n}" if yes else "0")
                continue
            med, lo, hi = point.stats[m]
            cells.append(fmt(med) if lo == hi or compact else f"{fmt(med)} [dim][{fmt(lo)}-{fmt(hi)}][/]")
        table.add_row(*cells)
    return table


def _header(name: str, limit: int = 12) -> str:
    """A column name broken into lines before underscores, each at most about ``limit`` characters."""
    lines: list[str] = []
    for i, part in enumerate(name.split("_")):
        piece = part if i == 0 else "_" + part
        if lines and len(lines[-1]) + len(piece) <= limit:
            lines[-1] += piece
        else:
            lines.append(piece)
    return "\n".join(lines)


def print_summary(console: Console, run: Run) -> None:
    info = run.info()
    results = Results.open(run)
    if results.rows:
        width = console.width
        console.print(summary_table(results, _summary_metrics(results, width), compact=width < COMPACT_BELOW))
    _print_diverged(console, results.rows)
    status = run.status()
    console.print(f"run [bold]{escape(run.id)}[/] {status}: {_text(info.get('instances_done', 0))}/"
                  f"{_text(info.get('instances', 0))} instances, {_number(info.get('wall_time_s')):.1f}s, "
                  f"{_number(info.get('instance_steps_per_s')):,.0f} instance-steps/s on {_text(info.get('device'))}")
    console.print(f"folder: {escape(str(run.path))}   next: toysup report {escape(run.id)}")


def _print_diverged(console: Console, rows: list[dict[str, Any]]) -> None:
    diverged = [r["instance"] for r in rows if r.get("diverged") is True]
    if diverged:
        shown = ", ".join(str(i) for i in diverged[:10]) + (" ..." if len(diverged) > 10 else "")
        console.print(f"[bold magenta]{len(diverged)} instance(s) diverged[/] (loss not finite; frozen, metrics "
                      f"left empty and out of the medians): {shown}")


def json_summary(run: Run) -> dict[str, Any]:
    """``toysup run --json``: the run's record and, per sweep point, its exact axis values and statistics."""
    info = run.info()
    results = Results.open(run)
    metrics = headline_metrics(results.spec.model, list(results.rows[0]) if results.rows else [])
    points = [
        {"point": p.point, **results.point(p.point).values, "seeds": p.n,
         **{m: {"median": s[0], "q25": s[1], "q75": s[2]} for m, s in p.stats.items()}}
        for p in results.stats(metrics)
    ]
    keys = ("id", "name", "model", "status", "device", "instances", "instances_done", "wall_time_s",
            "instance_steps_per_s", "error")
    return {**{k: info.get(k) for k in keys}, "status": run.status(), "run_dir": str(run.path), "points": points}


def print_dry_run(console: Console, spec: Spec, chunks: list[Chunk], as_json: bool, where: str = "") -> None:
    model = get_model(spec.model)
    groups: dict[tuple[Any, ...], list[Chunk]] = {}
    structural = [p.name for p in spec.param_table().values() if p.structural]
    for c in chunks:
        groups.setdefault(tuple(c.config[s] for s in structural), []).append(c)
    data: dict[str, Any] = {
        "name": spec.name,
        "model": spec.model,
        "points": spec.n_points,
        "seeds": spec.seeds,
        "instances": spec.n_instances,
        "instance_steps": sum(c.steps * len(c) for c in chunks),
        "axes": {a.name: list(a.values) for a in spec.axes},
        "groups": len(groups),
        "where": where,
        "chunks": [
            {"chunk": c.index, "instances": len(c), "steps": c.steps,
             "memory_mb": round(model.bytes_per_instance(c.config) * len(c) / 2**20, 1),
             **{s: c.config[s] for s in structural}}
            for c in chunks
        ],
    }
    if as_json:
        console.print_json(json.dumps(data))
        return
    console.print(f"[bold]{spec.name}[/] ({spec.model}): {spec.n_points} point(s) x {spec.seeds} seed(s) = "
                  f"[bold]{spec.n_instances}[/] instances, {data['instance_steps']:,} instance-steps, "
                  f"{len(groups)} group(s), {len(chunks)} chunk(s)" + (f" on {escape(where)}" if where else ""))
    for a in spec.axes:
        console.print(f"  sweep {a.name} ({a.scale}): {', '.join(fmt(v) for v in a.values)}")
    table = Table("chunk", "instances", "steps", "memory", *structural)
    for c in data["chunks"]:
        table.add_row(str(c["chunk"]), str(c["instances"]), str(c["steps"]), f"{c['memory_mb']} MB",
                      *[fmt(c[s]) for s in structural])
    console.print(table)




# --- the full report: header, summary, charts --------------------------------------------------------

# Metrics left out of the metric-vs-parameter charts: booleans (the summary shows them) and
# axis_alignment, which is the orientation angle on another scale.
NOT_CHARTED = ("axis_alignment",)
WIDE = 160  # from this width on, charts go two to a row
COMPACT_BELOW = 125  # narrower than this, the summary table drops percentiles


@dataclass
class Layout:
    """Chart sizes for one report: ``width`` is the whole line, ``cols`` how many charts share it."""

    width: int
    color: bool

    @property
    def cols(self) -> int:
        return 2 if self.width >= WIDE else 1

    @property
    def chart_width(self) -> int:
        return self.width if self.cols == 1 else (self.width - 2) // 2

    @property
    def chart_height(self) -> int:
        return max(12, min(20, self.chart_width // 5))

    @property
    def half_width(self) -> int:
        """Small charts (feature vectors, bars) always come at least two to a row."""
        return (self.width - 2) // 2 if self.cols == 1 else (self.width - 6) // 4


def print_report(console: Console, run: Run, x: str | None = None, width: int | None = None,
                 best_of: int | None = None) -> None:
    """The run's header, summary table and charts, for ``toysup report`` and any console.

    ``x`` picks the swept parameter of the metric charts (SpecError, before anything
    is printed, if it is not swept); ``width`` the width of the whole report (default:
    the console's; wider than the terminal is allowed, for a file or a pager). A run
    still going or interrupted shows what has finished; a run folder with missing or
    damaged files prints what is wrong instead of a traceback. ``best_of`` keeps each sweep
    point's lowest-loss seed among its first ``best_of`` seeds (0: all seeds), the paper's
    selection; it is never applied unless asked for.
    """
    try:
        spec: Spec | None = run.spec()
    except RunDataError as exc:
        spec, problem = None, exc
    axis = charts.choose_axis(spec, x) if spec is not None else None  # a bad --x: SpecError for the CLI
    saved = console.width
    if width:
        console.width = width
    try:
        _print_header(console, run, run.info())
        if spec is None:
            console.print(f"[bold red]cannot read the run's config:[/] {escape(str(problem))}")
            return
        _print_body(console, run, spec, axis, best_of)
    finally:
        console.width = saved


def _print_body(console: Console, run: Run, spec: Spec, axis: Any, best_of: int | None = None) -> None:
    if spec.description or spec.expected:
        console.print(f"[dim]{spec.description}[/]" + (f"\n[dim]expect: {spec.expected}[/]" if spec.expected else ""))
    try:
        columns, rows = run.results()
        results = Results(spec, columns, rows, run)
    except RunDataError as exc:
        console.print(f"[bold red]results.csv cannot be read:[/] {exc}")
        return
    if not results.rows:
        console.print(_no_results_message(run, run.info()))
        return
    if best_of is not None:
        results = results.best_of(best_of or None)
        console.print(f"[bold]best-of-k selection:[/] one row per point, the lowest-loss seed of "
                      f"{'all seeds' if not best_of else f'the first {best_of} seeds'} (the paper's selection); "
                      "loss curves still show every seed")
    layout = Layout(console.width, _console_color(console))
    compact = layout.width < COMPACT_BELOW
    console.print(summary_table(results, _summary_metrics(results, layout.width), compact=compact))
    if "features_per_dim" in results.rows[0]:
        console.print(f"[dim]{SUPERPOSITION_NOTE}[/]")
    _print_diverged(console, results.rows)
    _section(console, "loss curves", lambda: _loss_section(console, results, layout))
    _section(console, "metric charts", lambda: _metric_section(console, results, axis, layout))
    _section(console, "orientation", lambda: _orientation_section(console, results, layout))
    _section(console, "phase diagram", lambda: _phase_section(console, results))
    _section(console, "feature recovery", lambda: _recovery_section(console, results))
    _section(console, "instance geometry", lambda: _instance_section(console, results, layout))


def phase_table(results: Results) -> Table | None:
    """The n=2, m=1 phase diagram as a coloured grid: importance across, density down (best seed per
    point and the share of seeds that agree). None unless the run has a phase column and 2 axes."""
    from engine.phase import phase_grid, phase_grid_table

    rows, spec = results.rows, results.spec
    if not rows or "phase" not in rows[0] or len(spec.axes) < 2:
        return None
    names = [a.name for a in spec.axes]
    x_axis = "importance_decay" if "importance_decay" in names else names[0]
    y_axis = next(n for n in names if n != x_axis)
    t = phase_grid_table(phase_grid(results, x_axis, y_axis))
    table = Table(title=t.title, caption=t.caption, caption_justify="left", title_justify="left")
    table.add_column(t.corner, justify="right", style="cyan")
    for column in t.columns:
        table.add_column(column, justify="center")
    for label, cells in zip(t.row_labels, t.cells):
        table.add_row(label, *[f"[black on {c.color}]{c.text}[/]" if c.color else c.text for c in cells])
    return table


def _phase_section(console: Console, results: Results) -> None:
    table = phase_table(results)
    if table is not None:
        console.print(table)


def _recovery_section(console: Console, results: Results) -> None:
    """For SAEs: the histogram of each ground-truth feature's best cosine, per sweep point (not only MMCS)."""
    spec = results.spec
    if not results.rows or "mmcs" not in results.rows[0]:
        return
    best: dict[int, list[float]] = {}
    for f in results.features():
        best.setdefault(f["instance"], []).append(f["max_cosine"])
    table = Table(title="feature recovery: each ground-truth feature's max cosine with a decoder direction",
                  title_justify="left", caption="histogram over 10 bins from 0 to 1, all seeds of the point pooled",
                  caption_justify="left")
    for a in spec.axes:
        table.add_column(a.name, style="cyan", justify="right")
    table.add_column("0 histogram 1")
    table.add_column("recovered >0.9", justify="right")
    for point in results.points:
        values = [v for i in point.instances for v in best.get(i, []) if isinstance(v, (int, float))]
        if not values:
            continue
        counts = charts.histogram(values, 10, 0.0, 1.0)
        share = sum(v > 0.9 for v in values) / len(values)
        table.add_row(*[fmt(point.values[a.name]) for a in spec.axes], charts.sparkline(counts), f"{share:.0%}")
    console.print(table)


def _print_header(console: Console, run: Run, info: dict[str, Any]) -> None:
    problem = run.problem(info, deep=True)  # every file against manifest.json, by hash
    status = "damaged" if problem else run_status(info)
    done, total = _text(info.get("instances_done", 0)), _text(info.get("instances", 0))
    wall = info.get("wall_time_s")
    wall_text = f"{wall:.1f}s" if _is_number(wall) else "?"
    console.print(f"[bold]{escape(run.id)}[/]  {_text(info.get('name', '?'))} ({_text(info.get('model', '?'))})  "
                  f"[{STATUS_STYLE.get(status, '')}]{status}[/]  {done}/{total} instances")
    console.print(f"[dim]device {_text(info.get('device', '?'))}  started {_text(info.get('started', '?'))[:19]}  "
                  f"wall {wall_text}[/]")
    seed_mode = info.get("seed_mode", "paired")
    mode_text = SEED_MODE_TEXT.get(seed_mode, seed_mode) if isinstance(seed_mode, str) else seed_mode
    console.print(f"[dim]{_text(mode_text)}[/]")
    console.print(f"[dim]folder {escape(str(run.path))}[/]", soft_wrap=True)
    if problem:
        console.print(f"[bold red]damaged:[/] {escape(problem)}", soft_wrap=True)
    elif info.get("error"):
        console.print(f"[red]error: {_text(info['error'])}[/]")
    if status in ("running", "interrupted", "killed", "failed") and done != total:
        console.print(f"[{STATUS_STYLE[status]}]{status}: showing the {done} of {total} instances that finished[/]"
                      + ("" if status == "running" else f"; continue with: toysup resume {escape(run.id)}"))


def _no_results_message(run: Run, info: dict[str, Any]) -> str:
    status = run_status(info)
    if status == "running":
        return "[yellow]no results yet: the first chunk is still training; run the report again later[/]"
    if (run.path / "results.csv").exists():
        return "results.csv holds no instances"
    # The file name comes before the (long) path, so wrapping never splits the message a user looks for.
    return (f"[bold red]no results: results.csv is missing[/] (status {status}) in {escape(str(run.path))}; "
            "the run finished no chunk, or its folder is damaged")


def _section(console: Console, name: str, body: Callable[[], None]) -> None:
    """Run one report section; a missing or damaged file costs that section one line, not the whole
    report. Any other exception is a bug and propagates."""
    try:
        body()
    except UserError as exc:
        console.print(f"[dim]{name}: {exc}[/]")
    except RunDataError as exc:
        console.print(f"[red]{name}: cannot be drawn: {exc}[/]")


def _console_color(console: Console) -> bool:
    return console.color_system is not None and not console.no_color


def _summary_metrics(results: Results, width: int) -> list[str]:
    """The headline metrics that fit ``width``, most telling first.

    collapsed only when some instance collapsed; axis_alignment (the orientation
    angle on another scale) and monosemantic_neurons only on very wide terminals.
    The rest stay in results.csv (``toysup export``).
    """
    spec, rows = results.spec, results.rows
    metrics = headline_metrics(spec.model, list(rows[0]))
    if width >= 200:
        return metrics
    skip = {"axis_alignment", "monosemantic_neurons"}
    if not any(r.get("collapsed") is True for r in rows):
        skip.add("collapsed")
    priority = ["loss", "collapsed", "features_represented", "dims_per_feature", "orientation_angle_deg",
                "polysemantic_neurons"]
    ordered = [m for m in priority if m in metrics] + [m for m in metrics if m not in priority]
    cell = 8 if width < COMPACT_BELOW else 20  # a median, or a median with its [q25-q75]
    used = sum(_column_width(a.name, 6) for a in spec.axes) + (8 if width >= COMPACT_BELOW else 2)  # + seeds
    chosen: list[str] = []
    for m in ordered:
        if m in skip:
            continue
        need = _column_width(m, cell)
        if used + need > width and chosen:
            continue
        chosen.append(m)
        used += need
    return [m for m in metrics if m in chosen]


def _column_width(name: str, cell: int) -> int:
    return max(max(len(line) for line in _header(name).splitlines()), cell) + 3


def _ansi(text: str) -> Text:
    return Text.from_ansi(text, no_wrap=True, overflow="crop")


def _show(console: Console, items: Sequence[RenderableType], cols: int) -> None:
    """Print renderables ``cols`` to a row."""
    for start in range(0, len(items), cols):
        row = list(items[start:start + cols])
        if len(row) == 1:
            console.print(row[0], crop=False)
            continue
        grid = Table.grid(padding=(0, 2))
        for _ in row:
            grid.add_column(no_wrap=True)
        grid.add_row(*row)
        console.print(grid, crop=False)


def _legend(name: str, labels: Sequence[str], color: bool) -> Text:
    """The series key printed under a chart (plotext's own legend would hide the top-left corner)."""
    text = Text(f"{name}: " if name else "", style="dim")
    for i, label in enumerate(labels):
        rgb, marker = charts.series_style(i, mono=not color)
        if rgb is None:
            text.append(f"{marker} {label}  ")
        else:
            text.append("━━ ", style=f"rgb({rgb[0]},{rgb[1]},{rgb[2]})")
            text.append(f"{label}  ")
    return text


def _chart(draw: Callable[..., None], *args: Any, width: int, height: int, color: bool, **kwargs: Any) -> Text:
    return _ansi(charts.render(draw, *args, width=width, height=height, color=color, **kwargs))


def _loss_section(console: Console, results: Results, layout: Layout) -> None:
    spec = results.spec
    bands = charts.loss_bands(results)
    if not bands:
        console.print("[dim]loss curves: none logged yet[/]")
        return
    chart = _chart(charts.draw_loss_curves, bands, width=layout.width, height=layout.chart_height + 4,
                   color=layout.color, mono=not layout.color)
    console.print(chart, crop=False)
    if len(bands) > 1 or spec.axes:
        console.print(_legend(", ".join(a.name for a in spec.axes), [b.label for b in bands], layout.color))


def charted_metrics(spec: Spec, rows: list[dict[str, Any]]) -> list[str]:
    """The numeric headline metrics present in ``rows``, in headline order (booleans excluded)."""
    kinds = {c.name: c.kind for c in get_model(spec.model).columns}
    return [m for m in headline_metrics(spec.model, list(rows[0]) if rows else [])
            if kinds.get(m) != "bool" and m not in NOT_CHARTED]


def _metric_section(console: Console, results: Results, axis: Any, layout: Layout) -> None:
    spec = results.spec
    if axis is None:
        console.print("[dim]metric charts: this run has a single sweep point (no axes); see the table above[/]")
        return
    items: list[RenderableType] = []
    constant = []
    split = next((a for a in spec.axes if a.name != axis.name), None)
    for metric in charted_metrics(spec, results.rows):
        bands = charts.metric_bands(results, axis.name, metric)
        values = {v for b in bands for v in b.median + b.q25 + b.q75}
        if not bands:
            continue
        if len(values) == 1:
            constant.append(f"{metric} = {fmt(values.pop())}")
            continue
        log_y = metric == "loss"  # losses span decades across a sparsity sweep
        chart = _chart(charts.draw_metric, bands, metric, axis.name, axis.log_scale, log_y=log_y,
                       width=layout.chart_width, height=layout.chart_height, color=layout.color, mono=not layout.color)
        items.append(chart)
    if split is not None and items:
        labels = [charts.point_label({split.name: v}, short=True) for v in split.values[:len(charts.PALETTE)]]
        pooled = [a.name for a in spec.axes if a.name not in (axis.name, split.name)]
        note = f" (pooled over {', '.join(pooled)})" if pooled else ""
        console.print(_legend(f"metric charts, one line per {split.name}{note}", labels, layout.color))
    _show(console, items, layout.cols)
    if constant:
        console.print(f"[dim]the same at every point: {'; '.join(constant)}[/]")


def orientation_table(points: Sequence[tuple[Point, charts.OrientationStats]], axis_names: str) -> Table:
    """One row per sweep point: a histogram of the orientation angles over seeds and a uniformity test."""
    limits = {round(s.max_angle, 1) for _, s in points} or {45.0}
    limit = max(limits)
    top = f"{limit:.0f}°" if len(limits) == 1 else "max"
    table = Table(title="orientation of the largest feature: angle to the nearest neuron axis, over seeds",
                  title_justify="left", caption_justify="left",
                  caption=f"histogram: {charts.ORIENTATION_BINS} bins from 0 to the largest possible angle (45° for "
                          f"m=2{'' if limit == 45 else f', {limit:.0f}° here'}). With no privileged "
                          f"basis the direction is random (m=2: angle uniform on 0-45); KS p small = the model prefers "
                          f"or avoids the axes; (null) = the fraction expected by chance. Collapsed instances "
                          f"(loss no better than the best constant output) are excluded.")
    table.add_column(axis_names or "point", style="cyan", justify="right")
    table.add_column("used", justify="right")
    table.add_column("excl.", justify="right")
    table.add_column(f"0° {'histogram':^{charts.ORIENTATION_BINS}} {top}", no_wrap=True)
    table.add_column("median°", justify="right")
    table.add_column(f"<{charts.NEAR_AXIS_DEG:g}° (null)", justify="right")
    table.add_column("KS p", justify="right")
    for point, st in points:
        counts = charts.histogram(st.angles, charts.ORIENTATION_BINS, 0.0, st.max_angle)
        p = "n/a" if math.isnan(st.p_value) else f"{st.p_value:.2g}"
        p_style = "bold" if not math.isnan(st.p_value) and st.p_value < 0.05 else ""
        near = "—" if math.isnan(st.near_axis) else f"{st.near_axis:.0%} ({st.null_near_axis:.0%})"
        table.add_row(point.label(short=True), str(len(st.angles)), str(st.excluded) if st.excluded else "",
                      Text("   " + charts.sparkline(counts), style="cyan"), fmt(st.median), near,
                      Text(p, style=p_style))
    return table


def _orientation_section(console: Console, results: Results, layout: Layout) -> None:
    spec = results.spec
    if "orientation_angle_deg" not in results.rows[0]:
        return
    points = [(point, st) for point, st in charts.orientation_points(results) if st.max_angle > 0]
    if not points:
        return
    console.print(orientation_table(points, ",\n".join(a.name for a in spec.axes)))
    if len(points) == 1:
        m = int(spec.params.get("n_hidden", 2))
        chart = _chart(charts.draw_orientation_hist, points[0][1], m=m, width=layout.chart_width,
                       height=layout.chart_height, color=layout.color)
        console.print(chart, crop=False)


def overlap_heatmap(matrix: Sequence[Sequence[float]], width: int = 80, title: str = "W^T W",
                    color: bool = True) -> Group:
    """The feature-overlap matrix (n x n) as a heatmap table; see :func:`heatmap`."""
    return heatmap(matrix, width, title, "feature overlaps W_i·W_j", "features", color)


def heatmap(matrix: Sequence[Sequence[float]], width: int = 80, title: str = "W^T W",
            what: str = "feature overlaps W_i·W_j", columns_are: str = "features", color: bool = True) -> Group:
    """A matrix as a table with a background colour per cell (red +, blue -).

    plotext has no usable heatmap; a table keeps exact numbers when they fit. Up to
    (width - 6) / 6 columns show two decimals; more become 3- or 2-character cells
    (++/-- for |v| >= half the scale, +/- above a tenth, · near 0) so the sign survives
    without colour; beyond what fits, the first columns (the most important features) are shown.
    """
    rows, cols = len(matrix), len(matrix[0]) if matrix else 0
    cell = 6 if 6 * cols + 5 <= width else 3 if 3 * cols + 4 <= width else 2
    k = min(cols, max(1, (width - 4) // cell))
    vmax = max((abs(v) for row in matrix for v in row[:k]), default=1.0) or 1.0
    shown = f", first {k} of {cols} {columns_are}" if k < cols else ""
    heading = Text(f"{title} ({what}{shown}; colour scale ±{vmax:.2f})", style="italic")
    table = Table(box=None, padding=(0, 0), show_header=True, pad_edge=False)
    table.add_column("", style="dim", justify="right", min_width=3)
    for j in range(k):
        head = str(j) if cell == 6 or (j % 5 == 0 and len(str(j)) <= cell + 1) else ""
        table.add_column(head, justify="right", no_wrap=True, min_width=cell, header_style="dim")
    for i in range(rows if rows != cols else k):
        table.add_row(str(i), *[_heat_cell(matrix[i][j], vmax, cell, color) for j in range(k)])
    return Group(heading, table)


def _heat_cell(value: float, vmax: float, cell: int, color: bool) -> Text:
    t = charts.colour_level(value / vmax)  # on a grid: a last-bit difference changes no colour
    if cell == 6:
        text = f"{round(value, 2) + 0.0:6.2f}"  # + 0.0: a tiny negative shows as 0.00, not -0.00
    else:
        mark = "+" if t > 0 else "-"
        text = ("·" if abs(t) < 0.1 else mark * 2 if abs(t) >= 0.5 else mark).rjust(cell)
    if not color or abs(t) < 0.05:
        return Text(text)
    end = (220, 60, 60) if t > 0 else (60, 110, 230)
    base = (70, 70, 70)
    rgb = tuple(int(b + (e - b) * abs(t)) for b, e in zip(base, end))
    return Text(text, style=f"bold white on rgb({rgb[0]},{rgb[1]},{rgb[2]})")


def _instance_section(console: Console, results: Results, layout: Layout) -> None:
    """Geometry of representative instances: the lowest-loss seed at each end of the first axis.

    Feature vectors for each (m = 2 only); norms, features per neuron and W^T W for the
    first. Models without a (n, m) embedding W get a one-line note instead.
    """
    spec, rows = results.spec, results.rows
    reps = charts.representatives(results)
    small: list[RenderableType] = []
    focus: tuple[int, Any] | None = None
    for rep in reps:
        inst = int(rep.row["instance"])
        W = charts.embedding(results.weights(inst))
        where = f"{rep.label}, " if spec.axes else ""
        console.print(f"[bold]{rep.role}[/]: instance {inst} ({where}seed {rep.row.get('seed')}), "
                      f"lowest loss of {_plural(rep.seeds, 'seed')}: loss {fmt(rep.row.get('loss'))}"
                      + (f", {fmt(rep.row['features_represented'])} features represented"
                         if "features_represented" in rep.row else ""))
        if W is None:
            console.print("[dim]  this model has no feature embedding W to draw[/]")
            continue
        if W.shape[1] == 2:
            height = max(12, min(26, layout.half_width // 2 + 2))
            small.append(_chart(charts.draw_feature_vectors, charts.feature_vectors(W),
                                title=f"{rep.role}: #{inst}", aspect=charts.plot_aspect(layout.half_width, height),
                                width=layout.half_width, height=height, color=layout.color, mono=not layout.color))
        focus = focus or (inst, W)
    if focus is None:
        return
    inst, W = focus
    wide: list[RenderableType] = []
    for chart, narrow in _instance_bars(console, results, inst, W, layout):
        (small if narrow else wide).append(chart)
    _show(console, small, 2 if layout.cols == 1 else 4)
    _show(console, wide, layout.cols)
    console.print(overlap_heatmap(charts.overlap_matrix(W), layout.width, title=f"W^T W of instance {inst}",
                                  color=layout.color))
    if rows and "mean_neuron_monosemanticity" in rows[0]:  # a privileged basis: show each neuron's weights
        weights = [[float(v) for v in row] for row in W.T]
        console.print(heatmap(weights, layout.width, f"W of instance {inst}", "row n: neuron n's weight W_n,i "
                              "on feature i", "features", layout.color))


def _instance_bars(console: Console, results: Results, inst: int, W: Any, layout: Layout
                   ) -> list[tuple[Text, bool]]:
    """Feature norms (coloured by interference) and features per neuron of one instance, each with
    whether it is narrow enough (20 bars or fewer) to share a row with the feature-vector plots."""
    n, m = W.shape
    height = layout.chart_height - 2
    out = []
    table: dict[str, list[float]] = {}
    try:
        table = charts.feature_table(results.features(), inst)
        norms = table.get("norm") or [float(v) for v in np.linalg.norm(W, axis=1)]
        title = f"norms #{inst}" + (" (colour=interference)" if layout.color else "")
        out.append((_chart(charts.draw_feature_norms, norms, table.get("interference", [0.0] * n), title=title,
                           width=layout.half_width if n <= 20 else layout.chart_width, height=height,
                           color=layout.color), n <= 20))
    except RunDataError as exc:
        console.print(f"[dim]feature norms: {exc}[/]")
    config = results.instance_config(inst)
    sense = get_model(results.spec.model).neuron_sense(config)
    if sense is None:
        console.print("[dim]features per neuron: not shown, the hidden layer has no privileged basis here (any "
                      "rotation is an equally good solution)[/]")
        return out
    threshold = float(config.get("carry_threshold", 0.5))
    counts = charts.neuron_counts(W, threshold, table.get("represented"), sense)
    out.append((_chart(charts.draw_neuron_counts, counts,
                       title=f"features per neuron #{inst}", width=layout.half_width if m <= 20 else layout.chart_width,
                       height=height, color=layout.color), m <= 20))
    return out


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")
