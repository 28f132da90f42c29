"""What ``toysup run`` prints: a finished run's summary (as text or JSON) and a dry run's plan."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table

from toysup.engine.adaptive import shape_of
from toysup.engine.adaptive_grid import coarse_nodes
from toysup.engine.analysis.columns import headline_metrics
from toysup.engine.models import get_kind
from toysup.engine.plan import Chunk, ChunkShape
from toysup.engine.results import Results
from toysup.engine.results import value_text as fmt
from toysup.engine.run.folder import Run
from toysup.engine.spec import Spec
from toysup_tui.printable import shown as escape
from toysup_tui.render.tables import (
    COMPACT_BELOW,
    RICH_GAP,
    Fit,
    fit_columns,
    header,
    number,
    summary_metrics,
    summary_table,
    text_cell,
)


def print_summary(console: Console, run: Run, rate: float | None = None) -> None:
    """The results table and the run's end: status, instances, time, rate (``rate`` when given: the session's
    measured rate, for a run that stopped before its chunks finished) and folder, each said once."""
    record = run.record()
    results = Results.open(run)
    if results.rows:
        width = console.width
        console.print(summary_table(results, summary_metrics(results, width), compact=width < COMPACT_BELOW))
    print_diverged(console, results.rows)
    status = run.status()
    console.print(f"run [bold]{escape(run.id)}[/] {escape(status)}: {text_cell(record.instances_done)}/"
                  f"{text_cell(record.instances)} instances, {number(record.wall_time_s):.1f}s, "
                  f"{number(record.instance_steps_per_s if rate is None else rate):,.0f} instance-steps/s on "
                  f"{text_cell(record.device)}")
    console.print(f"folder: {escape(str(run.path))}   next: toysup report {escape(run.id)}")


def print_diverged(console: Console, rows: list[dict[str, Any]]) -> None:
    """One line naming the instances whose loss went non-finite, if any."""
    diverged = [r["instance"] for r in rows if r.get("diverged") is True]
    if diverged:
        shown = ", ".join(str(i) for i in diverged[:10]) + (" ..." if len(diverged) > 10 else "")
        console.print(f"[bold magenta]{len(diverged)} instance(s) diverged[/] (loss not finite; frozen, metrics "
                      f"left empty and out of the medians): {shown}")


def json_summary(run: Run) -> dict[str, Any]:
    """``toysup run --json``: the run's record and, per sweep point, its exact axis values and statistics."""
    r = run.record()
    results = Results.open(run)
    metrics = headline_metrics(results.spec.model, list(results.rows[0]) if results.rows else [])
    points = [
        {"point": p.point, **results.point(p.point).values, "seeds": p.n,
         **{m: {"median": s[0], "q25": s[1], "q75": s[2]} for m, s in p.stats.items()}}
        for p in results.stats(metrics)
    ]
    return {"id": r.id, "name": r.name, "model": r.model, "status": run.status(), "device": r.device,
            "instances": r.instances, "instances_done": r.instances_done, "wall_time_s": r.wall_time_s,
            "instance_steps_per_s": r.instance_steps_per_s, "error": r.error, "run_dir": str(run.path),
            "points": points}


def print_dry_run(console: Console, spec: Spec, chunks: Sequence[Chunk | ChunkShape], as_json: bool,
                  where: str = "") -> None:
    model = get_kind(spec.model)
    groups: dict[tuple[Any, ...], list[Chunk | ChunkShape]] = {}
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
    if spec.adaptive is not None:
        # The chunks above are the final grid's: an upper bound, since later rounds train only where labels disagree.
        first = len(coarse_nodes(shape_of(spec), spec.adaptive.rounds))
        data["adaptive"] = {**spec.adaptive.to_dict(), "round0_points": first, "round0_instances": first * spec.seeds}
    if as_json:
        console.print_json(json.dumps(data))
        return
    bound = "at most " if spec.adaptive is not None else ""
    console.print(f"[bold]{escape(spec.name)}[/] ({spec.model}): {spec.n_points} point(s) x {spec.seeds} seed(s) = "
                  f"{bound}[bold]{spec.n_instances}[/] instances, {data['instance_steps']:,} instance-steps, "
                  f"{len(groups)} group(s), {len(chunks)} chunk(s)" + (f" on {escape(where)}" if where else ""))
    if spec.adaptive is not None:
        a = data["adaptive"]
        budget = f", budget {a['budget']:,} instances" if "budget" in a else ""
        console.print(f"  adaptive: round 0 trains {a['round0_points']} of the {spec.n_points} points "
                      f"({a['round0_instances']:,} instances); each of {a['rounds']} later round(s) only the cells "
                      f"whose corners disagree on {escape(a['classify'])}{budget}")
    for a in spec.axes:
        console.print(f"  sweep {a.name} ({a.scale}): {escape(', '.join(fmt(v) for v in a.values))}")
    print_chunks(console, data["chunks"], structural)


def print_chunks(console: Console, chunks: list[dict[str, Any]], structural: list[str]) -> None:
    """A dry run's chunks as a table that fits the console: chunk, instances, steps and memory, then the
    structural parameters that differ between chunks as room allows; those shared by every chunk go on
    one line below (it wraps between values), and a note names the columns left out (--json has them)."""
    cells = [{"chunk": str(c["chunk"]), "instances": str(c["instances"]), "steps": str(c["steps"]),
              "memory": f"{c['memory_mb']} MB", **{s: fmt(c[s]) for s in structural}} for c in chunks]
    params = [s for s in structural if s not in ("steps", "instances")]  # steps has its column already
    varying = [s for s in params if len({row[s] for row in cells}) > 1]
    shared = [s for s in params if s not in varying]
    fits = [Fit(key, header(key), keep, short, natural=max(cell_len(row[key]) for row in cells))
            for keep, (key, short) in enumerate([("chunk", ""), ("instances", "inst."), ("steps", ""),
                                                  ("memory", "")] + [(s, "") for s in varying])]
    shown = fit_columns(fits, console.width, gap=RICH_GAP, used=-RICH_GAP, essential=4)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for _, width, title in shown:
        table.add_column(title, width=width, no_wrap=True, overflow="ellipsis", justify="right")
    for row in cells:
        table.add_row(*[row[fit.key] for fit, _, _ in shown])
    console.print(table)
    if shared and cells:
        console.print("every chunk: " + ", ".join(f"{s}={escape(cells[0][s])}" for s in shared))
    left_out = [key for key in varying if key not in {fit.key for fit, _, _ in shown}]
    if left_out:
        console.print(f"[dim]not shown at this width: {', '.join(left_out)} (--json lists every chunk's)[/]")
