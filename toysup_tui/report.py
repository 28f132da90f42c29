"""Rich tables for runs and results, shared by ``toysup report``/``run``/``runs`` and the TUI."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table

from engine.aggregate import by_point
from engine.models import get_model
from engine.plan import Chunk
from engine.spec import Spec
from engine.store import Run

# The metrics a summary shows first, when the model has them.
HEADLINE = (
    "loss", "features_represented", "dims_per_feature", "orientation_angle_deg", "axis_alignment",
    "polysemantic_neurons", "monosemantic_neurons", "collapsed",
)
STATUS_STYLE = {"completed": "green", "running": "yellow", "interrupted": "magenta", "failed": "red",
                "damaged": "bold red"}


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
    for col, kw in (("run", {"style": "bold", "no_wrap": True}), ("preset", {}), ("model", {}), ("status", {}),
                    ("instances", {"justify": "right"}), ("device", {}), ("wall", {"justify": "right"}),
                    ("started", {})):
        table.add_column(col, **kw)
    for run in runs:
        info = run.info()
        status = info.get("status", "?")
        done, total = info.get("instances_done", 0), info.get("instances", 0)
        count = f"{total}" if status == "completed" else f"{done}/{total}"
        wall = info.get("wall_time_s")
        table.add_row(run.id, str(info.get("name", "?")), str(info.get("model", "")),
                      f"[{STATUS_STYLE.get(status, '')}]{status}[/]", count, str(info.get("device", "")),
                      f"{wall:.1f}s" if isinstance(wall, (int, float)) else "", str(info.get("started", ""))[:19])
    return table


def summary_table(spec: Spec, rows: list[dict[str, Any]], metrics: list[str] | None = None) -> Table:
    """One row per sweep point: axis values, seeds, and the median [q25-q75] of each metric over seeds."""
    axes = [a.name for a in spec.axes]
    available = list(rows[0]) if rows else []
    metrics = metrics or headline_metrics(spec.model, available)
    table = Table(caption="median over seeds [25th-75th percentile]", caption_justify="left")
    for a in axes:
        table.add_column(a, style="cyan", justify="right")
    table.add_column("seeds", justify="right")
    for m in metrics:
        table.add_column(m, justify="right")
    for point in by_point(rows, axes, metrics):
        cells = [fmt(point.point[a]) for a in axes] + [str(point.n)]
        for m in metrics:
            if m not in point.stats:
                cells.append("—")
                continue
            med, lo, hi = point.stats[m]
            cells.append(fmt(med) if lo == hi else f"{fmt(med)} [dim][{fmt(lo)}-{fmt(hi)}][/]")
        table.add_row(*cells)
    return table


def print_summary(console: Console, run: Run) -> None:
    info = run.info()
    _, rows = run.results()
    if rows:
        console.print(summary_table(run.spec(), rows))
    status = info.get("status")
    console.print(f"run [bold]{run.id}[/] {status}: {info.get('instances_done', 0)}/{info.get('instances', 0)} "
                  f"instances, {info.get('wall_time_s', 0):.1f}s, {info.get('instance_steps_per_s', 0):,.0f} "
                  f"instance-steps/s on {info.get('device')}")
    console.print(f"folder: {run.path}   next: toysup report {run.id}")


def json_summary(run: Run) -> dict[str, Any]:
    info = run.info()
    spec = run.spec()
    _, rows = run.results()
    axes = [a.name for a in spec.axes]
    metrics = headline_metrics(spec.model, list(rows[0]) if rows else [])
    points = [
        {**p.point, "seeds": p.n, **{m: {"median": s[0], "q25": s[1], "q75": s[2]} for m, s in p.stats.items()}}
        for p in by_point(rows, axes, metrics)
    ]
    keys = ("id", "name", "model", "status", "device", "instances", "instances_done", "wall_time_s",
            "instance_steps_per_s", "error")
    return {**{k: info.get(k) for k in keys}, "run_dir": str(run.path), "points": points}


def print_dry_run(console: Console, spec: Spec, chunks: list[Chunk], as_json: bool) -> None:
    model = get_model(spec.model)
    groups: dict[tuple[Any, ...], list[Chunk]] = {}
    structural = [p.name for p in spec.param_table().values() if p.structural]
    for c in chunks:
        groups.setdefault(tuple(c.config[s] for s in structural), []).append(c)
    data = {
        "name": spec.name,
        "model": spec.model,
        "points": spec.n_points,
        "seeds": spec.seeds,
        "instances": spec.n_instances,
        "instance_steps": sum(c.steps * len(c) for c in chunks),
        "axes": {a.name: list(a.values) for a in spec.axes},
        "groups": len(groups),
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
                  f"{len(groups)} group(s), {len(chunks)} chunk(s)")
    for a in spec.axes:
        console.print(f"  sweep {a.name} ({a.scale}): {', '.join(fmt(v) for v in a.values)}")
    table = Table("chunk", "instances", "steps", "memory", *structural)
    for c in data["chunks"]:
        table.add_row(str(c["chunk"]), str(c["instances"]), str(c["steps"]), f"{c['memory_mb']} MB",
                      *[fmt(c[s]) for s in structural])
    console.print(table)


def print_report(console: Console, run: Run, x: str | None = None, width: int | None = None) -> None:
    """The run's header, summary table and charts."""
    print_summary(console, run)
