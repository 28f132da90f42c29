"""``toysup report``: a run's header, summary, charts and geometry, section by section, for any console.

The tables and charts come from toysup_tui.render (shared with the TUI), their numbers from
engine.analysis; this module decides the report's sections, their order and layout.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from toysup.engine.analysis import geometry, orientation, selection, series, sparsification
from toysup.engine.analysis.columns import charted_metrics
from toysup.engine.errors import RunDataError, UserError
from toysup.engine.models import get_kind
from toysup.engine.results import Results, point_label
from toysup.engine.results import value_text as fmt
from toysup.engine.run.folder import Run
from toysup.engine.run.record import RunRecord
from toysup.engine.run.status import Status, status_of
from toysup.engine.spec import Spec
from toysup_tui.printable import print_line
from toysup_tui.printable import shown as escape
from toysup_tui.render import charts
from toysup_tui.render.heatmap import heatmap, overlap_heatmap
from toysup_tui.render.legend import legend_text
from toysup_tui.render.phase import phase_table
from toysup_tui.render.status import status_style
from toysup_tui.render.tables import (
    COMPACT_BELOW,
    is_number,
    orientation_table,
    plural,
    rate_law_lines,
    rate_table,
    recovery_table,
    summary_metrics,
    summary_table,
    text_cell,
)
from toysup_tui.summaries import print_diverged

SUPERPOSITION_NOTE = ("more or less superposition? read features_per_dim (represented features per dimension, above "
                      "1 = superposition) and mean_dimensionality (1/2 = antipodal pairs, 2/5 = pentagon): both are "
                      "scale-free. dims_per_feature (D*) also moves with the weights' scale: dropout, weight decay and "
                      "L1 shrink the norms and raise it with the geometry unchanged.")
SEED_MODE_TEXT = {  # runs from before seed_mode existed were paired
    "paired": "seeds paired: every point trains the same seeds (same init and data; differences between points "
              "are paired comparisons)",
    "independent": "seeds independent: every point trains its own seeds (counts over seeds are independent samples)",
}
# --- the full report: header, summary, charts --------------------------------------------------------

WIDE = 160  # from this width on, charts go two to a row


@dataclass
class Layout:
    """Chart sizes for one report: ``width`` is the whole line, ``cols`` how many charts share it; ``colours``
    how many colours the console shows, which decides how series are told apart."""

    width: int
    colours: charts.Colours

    @property
    def color(self) -> bool:
        """Any colour at all."""
        return self.colours is not charts.Colours.NONE

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
                 best_of: int | None = None, phase_selection: str = "best", iqr: bool = False) -> None:
    """The run's header, summary table and charts, for ``toysup report`` and any console.

    ``x`` picks the swept parameter of the metric charts (SpecError, before anything
    is printed, if it is not swept); ``width`` the width of the whole report (default:
    the console's; wider than the terminal is allowed, for a file or a pager). A run
    still going or interrupted shows what has finished; a run folder with missing or
    damaged files prints what is wrong instead of a traceback. ``best_of`` keeps each sweep
    point's lowest-loss seed among its first ``best_of`` seeds (0: all seeds), the paper's
    selection; it is never applied unless asked for. ``phase_selection`` picks how the phase grid turns a
    point's seeds into its phase (engine.analysis.phase.SELECTIONS). ``iqr`` draws every loss curve's IQR (default:
    only a lone series', since one dotted pair per point buries the medians).
    """
    try:
        spec: Spec | None = run.spec()
    except RunDataError as exc:
        spec, problem = None, exc
    axis = series.choose_axis(spec, x) if spec is not None else None  # a bad --x: SpecError for the CLI
    record = run.record()  # read once: the header and the no-results line say the same
    saved = console.width
    if width:
        console.width = width
    try:
        _print_header(console, run, record)
        if spec is None:
            print_line(console, f"[bold red]cannot read the run's config:[/] {escape(str(problem))}")
            return
        _print_body(console, run, record, spec, axis, best_of, phase_selection, iqr)
    finally:
        console.width = saved


def _print_body(console: Console, run: Run, record: RunRecord, spec: Spec, axis: Any, best_of: int | None = None,
                phase_selection: str = "best", iqr: bool = False) -> None:
    if spec.description or spec.expected:
        console.print(f"[dim]{escape(spec.description, keep_newlines=True)}[/]"
                      + (f"\n[dim]expect: {escape(spec.expected, keep_newlines=True)}[/]" if spec.expected else ""))
    try:
        results = Results.open(run, spec)
    except RunDataError as exc:
        console.print(f"[bold red]results.csv cannot be read:[/] {exc}")
        return
    if not results.rows:
        console.print(_no_results_message(run, record))
        return
    if best_of is not None:
        results = results.best_of(best_of or None)
        console.print(f"[bold]best-of-k selection:[/] one row per point, the lowest-loss seed of "
                      f"{'all seeds' if not best_of else f'the first {best_of} seeds'} (the paper's selection); "
                      "loss curves still show every seed")
    layout = Layout(console.width, charts.colours_of(console.color_system, console.no_color))
    compact = layout.width < COMPACT_BELOW
    console.print(summary_table(results, summary_metrics(results, layout.width), compact=compact))
    if "features_per_dim" in results.rows[0]:
        console.print(f"[dim]{SUPERPOSITION_NOTE}[/]")
    print_diverged(console, results.rows)
    _section(console, "loss curves", lambda: _loss_section(console, results, layout, iqr))
    _section(console, "metric charts", lambda: _metric_section(console, results, axis, layout))
    _section(console, "orientation", lambda: _orientation_section(console, results, layout))
    _section(console, "phase diagram", lambda: _print_table(console, phase_table(results, phase_selection)))
    _section(console, "feature recovery", lambda: _print_table(console, recovery_table(results)))
    _section(console, "sparsification rate", lambda: _rate_section(console, results, layout))
    _section(console, "instance geometry", lambda: _instance_section(console, results, layout))


def _print_table(console: Console, table: RenderableType | None) -> None:
    """A section that is only there for some models (phase grid, feature recovery)."""
    if table is not None:
        console.print(table)


def _print_header(console: Console, run: Run, record: RunRecord) -> None:
    problem = run.problem(record, deep=True)  # every file against manifest.json, by hash
    status = status_of(record, lambda: problem)
    done, total = text_cell(record.instances_done), text_cell(record.instances)
    wall = None if record.damage else record.wall_time_s
    wall_text = f"{wall:.1f}s" if is_number(wall) else "?"
    console.print(f"[bold]{escape(run.id)}[/]  {text_cell(record.name)} ({text_cell(record.model or '?')})  "
                  f"[{status_style(status)}]{escape(status)}[/]  {done}/{total} instances")
    console.print(f"[dim]device {text_cell(record.device or '?')}  "
                  f"started {text_cell(record.started or '?')[:19]}  wall {wall_text}[/]")
    seed_mode = record.seed_mode or "paired"  # runs from before seed_mode existed were paired
    mode_text = SEED_MODE_TEXT.get(seed_mode, seed_mode)
    console.print(f"[dim]{text_cell(mode_text)}[/]")
    print_line(console, f"[dim]folder {escape(str(run.path))}[/]")
    if problem:
        print_line(console, f"[bold red]damaged:[/] {escape(problem)}")
    elif record.error:
        console.print(f"[red]error: {text_cell(record.error)}[/]")
    if status.stopped_early and done != total:
        resume = "" if status is Status.RUNNING else f"; continue with: toysup resume {escape(run.id)}"
        print_line(console, f"[{status_style(status)}]{status}: showing the {done} of {total} instances that "
                   f"finished[/]{resume}")


def _no_results_message(run: Run, record: RunRecord) -> str:
    status = status_of(record)
    if status is Status.RUNNING:
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


def _chart(draw: Callable[..., None], *args: Any, width: int, height: int, color: bool, **kwargs: Any) -> Text:
    return _ansi(charts.render(draw, *args, width=width, height=height, color=color, **kwargs))


def _loss_section(console: Console, results: Results, layout: Layout, iqr: bool = False) -> None:
    spec = results.spec
    bands = series.loss_bands(results)
    if not bands:
        console.print("[dim]loss curves: none logged yet[/]")
        return
    ordered = charts.one_ordered_axis(spec.axes)
    chart = _chart(charts.draw_loss_curves, bands, width=layout.width, height=layout.chart_height + 4,
                   color=layout.color, colours=layout.colours, iqr=iqr or len(bands) == 1, ordered=ordered)
    console.print(chart, crop=False)
    if len(bands) > 1 or spec.axes:
        console.print(legend_text([b.label for b in bands], ", ".join(a.name for a in spec.axes), layout.colours,
                                  ordered))


def _metric_section(console: Console, results: Results, axis: Any, layout: Layout) -> None:
    spec = results.spec
    if axis is None:
        console.print("[dim]metric charts: this run has a single sweep point (no axes); see the table above[/]")
        return
    items: list[RenderableType] = []
    constant = []
    split = next((a for a in spec.axes if a.name != axis.name), None)
    ordered = split is not None and charts.is_ordered(split.values)
    for metric in charted_metrics(spec.model, list(results.rows[0])):
        bands = series.metric_bands(results, axis.name, metric, max_series=len(charts.PALETTE))
        values = {v for b in bands for v in b.median + b.q25 + b.q75}
        if not bands:
            continue
        if len(values) == 1:
            constant.append(f"{metric} = {fmt(values.pop())}")
            continue
        log_y = metric == "loss"  # losses span decades across a sparsity sweep
        chart = _chart(charts.draw_metric, bands, metric, axis.name, axis.log_scale, log_y=log_y,
                       width=layout.chart_width, height=layout.chart_height, color=layout.color, colours=layout.colours,
                       ordered=ordered)
        items.append(chart)
    if split is not None and items:
        labels = [point_label({split.name: v}, short=True) for v in split.values[:len(charts.PALETTE)]]
        pooled = [a.name for a in spec.axes if a.name not in (axis.name, split.name)]
        note = f" (pooled over {', '.join(pooled)})" if pooled else ""
        console.print(legend_text(labels, f"metric charts, one line per {split.name}{note}", layout.colours,
                                  ordered))
    _show(console, items, layout.cols)
    if constant:
        console.print(f"[dim]the same at every point: {'; '.join(constant)}[/]")


def _orientation_section(console: Console, results: Results, layout: Layout) -> None:
    spec = results.spec
    if "orientation_angle_deg" not in results.rows[0]:
        return
    points = [(point, st) for point, st in orientation.orientation_points(results) if st.max_angle > 0]
    if not points:
        return
    console.print(orientation_table(points, ",\n".join(a.name for a in spec.axes)))
    if len(points) == 1:
        m = int(spec.params.get("n_hidden", 2))
        chart = _chart(charts.draw_orientation_hist, points[0][1], m=m, width=layout.chart_width,
                       height=layout.chart_height, color=layout.color)
        console.print(chart, crop=False)


def _rate_section(console: Console, results: Results, layout: Layout) -> None:
    """The incidental model's L1 runs: the fitted sparsification rate against the paper's, and its curve."""
    law = sparsification.rate_law(results)
    points = law.points
    if not points:
        return
    console.print(rate_table(points, law.references))
    for line in rate_law_lines(law):
        console.print(f"[dim]{escape(line)}[/]")
    shown = points[:len(charts.PALETTE)]
    ordered = charts.one_ordered_axis(results.spec.axes)
    chart = _chart(charts.draw_rate_fit, shown, width=layout.width, height=layout.chart_height + 4,
                   color=layout.color, colours=layout.colours, ordered=ordered)
    console.print(chart, crop=False)
    if len(shown) > 1:
        console.print(legend_text([p.label for p in shown], ", ".join(a.name for a in results.spec.axes),
                                  layout.colours, ordered))


def _instance_section(console: Console, results: Results, layout: Layout) -> None:
    """Geometry of representative instances: the lowest-loss seed at each end of the first axis.

    Feature vectors for each (m = 2 only); norms, features per neuron and W^T W for the
    first. Models without a (n, m) embedding W get a one-line note instead.
    """
    spec, rows = results.spec, results.rows
    reps = selection.representatives(results)
    small: list[RenderableType] = []
    focus: tuple[int, Any] | None = None
    for rep in reps:
        inst = int(rep.row["instance"])
        W = geometry.embedding(results.weights(inst))
        where = f"{rep.label}, " if spec.axes else ""
        console.print(f"[bold]{rep.role}[/]: instance {inst} ({where}seed {rep.row.get('seed')}), "
                      f"lowest loss of {plural(rep.seeds, 'seed')}: loss {fmt(rep.row.get('loss'))}"
                      + (f", {fmt(rep.row['features_represented'])} features represented"
                         if "features_represented" in rep.row else ""))
        if W is None:
            console.print("[dim]  this model has no feature embedding W to draw[/]")
            continue
        if W.shape[1] == 2:
            height = max(12, min(26, layout.half_width // 2 + 2))
            small.append(_chart(charts.draw_feature_vectors, geometry.feature_vectors(W),
                                title=f"{rep.role}: #{inst}", aspect=charts.plot_aspect(layout.half_width, height),
                                width=layout.half_width, height=height, color=layout.color, colours=layout.colours))
        focus = focus or (inst, W)
    if focus is None:
        return
    inst, W = focus
    wide: list[RenderableType] = []
    for chart, narrow in _instance_bars(console, results, inst, W, layout):
        (small if narrow else wide).append(chart)
    _show(console, small, 2 if layout.cols == 1 else 4)
    _show(console, wide, layout.cols)
    console.print(overlap_heatmap(geometry.overlap_matrix(W), layout.width, title=f"W^T W of instance {inst}",
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
        table = geometry.feature_table(results.features(), inst)
        norms = table.get("norm") or geometry.feature_norms(W)
        title = f"norms #{inst}" + (" (colour=interference)" if layout.color else "")
        out.append((_chart(charts.draw_feature_norms, norms, table.get("interference", [0.0] * n), title=title,
                           width=layout.half_width if n <= 20 else layout.chart_width, height=height,
                           color=layout.color), n <= 20))
    except RunDataError as exc:
        console.print(f"[dim]feature norms: {exc}[/]")
    config = results.instance_config(inst)
    sense = get_kind(results.spec.model).neuron_sense(config)
    if sense is None:
        console.print("[dim]features per neuron: not shown, the hidden layer has no privileged basis here (any "
                      "rotation is an equally good solution)[/]")
        return out
    threshold = float(config.get("carry_threshold", 0.5))
    counts = geometry.neuron_counts(W, threshold, table.get("represented"), sense)
    out.append((_chart(charts.draw_neuron_counts, counts,
                       title=f"features per neuron #{inst}", width=layout.half_width if m <= 20 else layout.chart_width,
                       height=height, color=layout.color), m <= 20))
    return out
