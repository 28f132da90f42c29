"""Rich tables of runs and results: the runs list, the summary over seeds, orientation, feature recovery."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich import box
from rich.cells import cell_len
from rich.table import Table
from rich.text import Text

from toysup.engine.analysis import columns
from toysup.engine.progress import kept_text, live_text
from toysup.engine.results import Point, Results
from toysup.engine.results import value_text as fmt
from toysup.engine.run.folder import Run
from toysup.engine.run.record import RunRecord
from toysup.engine.run.status import Status
from toysup_tui.printable import printable
from toysup_tui.printable import shown as escape
from toysup_tui.render.status import status_style

if TYPE_CHECKING:
    from toysup.engine.analysis.aggregate import PointStats
    from toysup.engine.analysis.orientation import OrientationStats
    from toysup.engine.analysis.sparsification import Estimate, Exponent, PointRate, RateLaw

COMPACT_BELOW = 125  # narrower than this, the summary table drops percentiles
WIDE_SUMMARY = 200  # from this width on, the summary shows every headline metric


def runs_table(runs: list[Run], width: int) -> Table:
    """The runs, newest first, in ``width`` columns: the run id, status and finished instances always; then
    how far an unfinished run is (a training one from its heartbeat, a stopped one what a resume keeps),
    the preset, wall time, model, start and device as room allows (in that order); long ids and names
    ellipsized (an id's leading timestamp, which ``toysup report`` accepts as its unique part, stays)."""
    rows = []
    for run in runs:
        record = run.record()
        status = run.status()
        done, total = str(record.instances_done), str(record.instances)
        wall = None if record.damage else record.wall_time_s  # an unreadable run.json: not known
        rows.append({k: printable(v) for k, v in {"run": run.id, "status": status,
                     "instances": total if status is Status.COMPLETED else f"{done}/{total}",
                     "progress": _progress_cell(status, record),
                     "preset": record.name, "wall": f"{wall:.1f}s" if is_number(wall) else "",
                     "model": record.model, "started": record.started[:19], "device": record.device}.items()})
    candidates = [Fit(key, header, keep, short, least, natural=max((cell_len(r[key]) for r in rows), default=0))
                  for key, (header, keep, short, least) in RUNS_COLUMNS.items()]
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    shown = fit_columns(candidates, width, gap=RICH_GAP, used=-RICH_GAP, essential=3)
    for fit, cells_width, title in shown:
        table.add_column(title, width=cells_width, no_wrap=True, overflow="ellipsis",
                         justify="right" if fit.key in ("instances", "wall") else "left",
                         style="bold" if fit.key == "run" else "")
    for r in rows:
        table.add_row(*[_runs_cell(fit.key, r) for fit, _, _ in shown])
    return table


def _progress_cell(status: Status, record: RunRecord) -> str:
    """A running run's progress from its heartbeat; what an unfinished one keeps; nothing once completed."""
    if status is Status.RUNNING:
        return live_text(record.heartbeat)
    if status.resumable:
        return "kept " + kept_text(record)
    return ""


def _runs_cell(key: str, row: dict[str, str]) -> Text:
    """A cell from a run folder, never read as markup (a run name may hold ``[/]``)."""
    return Text(row[key], style=status_style(row[key]) if key == "status" else "")


# --- tables that fit the terminal: which columns, how wide, which header -------------------------

RICH_GAP = 3  # a rich column's padding (1 each side) and its divider


@dataclass(frozen=True)
class Fit:
    """A column a table may show: kept in ``keep`` order (1 first) while it fits. It is ``natural`` wide
    at most (its widest cell) and may be ellipsized to ``least`` (0: never narrower than natural);
    ``short`` is its header when the full one would not fit."""

    key: str
    header: str
    keep: int
    short: str = ""
    least: int = 0
    natural: int = 0

    def widths(self) -> tuple[int, int]:
        """The narrowest and widest it may be, headers included (a multi-line header counts its longest line)."""
        full = max(self.natural, *(len(line) for line in self.header.splitlines()))
        least = min(self.least, self.natural) if self.least else self.natural
        title = len(self.short) if self.short else max(len(line) for line in self.header.splitlines())
        return max(least, title, 1), full


def fit_columns(columns: list[Fit], width: int, gap: int, used: int = 0, essential: int = 0
                ) -> list[tuple[Fit, int, str]]:
    """The columns of a table ``width`` wide that fit, with their widths and headers, in ``columns``' order.

    Each column takes its cells' width plus ``gap``; ``used`` is taken already (other columns, edges).
    The ``essential`` first columns (in ``keep`` order) come first, at their narrowest, then widen up to
    half the width each (a hostile 200-character name leaves room for the rest). Each other column, in
    ``keep`` order, is then kept at its widest if that fits, else at its narrowest (ellipsized) if that
    fits, else left out. The first is always kept, and room left over widens the ellipsized ones. A
    column narrower than its header gets its ``short`` one.
    """
    ranked = sorted(columns, key=lambda c: c.keep)
    chosen: dict[str, int] = {}

    def widen(cols: list[Fit], limit: int) -> None:
        """Widen chosen columns into the room left, each towards its widest but no wider than ``limit``."""
        nonlocal used
        for col in cols:
            if col.key in chosen:
                grow = max(0, min(width - used, min(col.widths()[1], limit) - chosen[col.key]))
                chosen[col.key] += grow
                used += grow

    for col in ranked[:essential]:
        if used + col.widths()[0] + gap <= width or not chosen:
            chosen[col.key] = col.widths()[0]
            used += chosen[col.key] + gap
    widen(ranked[:essential], limit=width // 2)
    for col in ranked[essential:]:
        for take in col.widths()[::-1]:
            if used + take + gap <= width or not chosen:
                chosen[col.key] = take
                used += take + gap
                break
    widen(ranked, limit=width)
    out = []
    for col in columns:
        if col.key in chosen:
            fits = all(len(line) <= chosen[col.key] for line in col.header.splitlines())
            out.append((col, chosen[col.key], col.header if fits or not col.short else col.short))
    return out


# The runs list's columns: header, the order they are kept in, short header, narrowest (ellipsized).
RUNS_COLUMNS: dict[str, tuple[str, int, str, int]] = {
    "run": ("run", 1, "", 15), "preset": ("preset", 5, "", 10), "model": ("model", 7, "", 0),
    "status": ("status", 2, "", 0), "instances": ("instances", 3, "inst.", 0), "progress": ("progress", 4, "", 12),
    "device": ("device", 9, "", 0), "wall": ("wall", 6, "", 0), "started": ("started", 8, "", 0),
}


def text_cell(value: Any) -> str:
    """A value from a run folder as table text: never read as markup (a run name may hold ``[/]``)."""
    return escape(str(value))


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def number(value: Any) -> float:
    """A number from run.json, or 0 when a damaged or edited file holds something else there."""
    return float(value) if is_number(value) else 0.0


SCALE_FREE = ("features_per_dim", "mean_dimensionality")  # first in every summary: they do not move with the norms


def _summary_cells(results: Results, metrics: list[str], compact: bool
                   ) -> tuple[list[PointStats], list[dict[str, str]]]:
    """The summary's points and, per point, each metric's cell as markup: ``median [q25-q75]`` (``compact``:
    the median), a flag's count of yes, or ``—`` where the point has no value."""
    points = results.stats(metrics)
    flags = columns.flags(results.spec.model)
    rows = []
    for point in points:
        cells: dict[str, str] = {}
        for m in metrics:
            if m not in point.stats:
                cells[m] = "—"
            elif m in flags:  # a median of yes/no says little: count the yes
                yes = sum(r.get(m) is True for r in results.members(point.point))
                cells[m] = f"{yes}/{point.n}" if yes else "0"
            else:
                med, lo, hi = point.stats[m]
                same = fmt(lo) == fmt(hi)  # equal as shown: a range of one ulp is no range
                cells[m] = fmt(med) if same or compact else f"{fmt(med)} [dim][{fmt(lo)}-{fmt(hi)}][/]"
        rows.append(cells)
    return points, rows


def summary_table(results: Results, metrics: list[str] | None = None, compact: bool = False) -> Table:
    """One row per sweep point: axis values, seeds, and the median [q25-q75] of each metric over seeds.

    ``compact`` (narrow terminals) drops the percentiles and, when every point has the
    same number of seeds, the seeds column; the caption says so. Long column names
    break after an underscore, so they stay exact but take less width. Cells are never cut:
    :func:`summary_metrics` leaves out the columns that do not fit whole.
    """
    spec = results.spec
    axes = [a.name for a in spec.axes]
    available = list(results.rows[0]) if results.rows else []
    metrics = metrics or columns.headline_metrics(spec.model, available)
    points, cells = _summary_cells(results, metrics, compact)
    seed_counts = {p.n for p in points}
    show_seeds = not compact or len(seed_counts) > 1
    if compact:
        seeds_note = "" if show_seeds else f", {plural(seed_counts.pop(), 'seed')} per point"
        caption = f"median over seeds{seeds_note} (125+ columns also show the 25th-75th percentiles)"
    else:
        caption = "median over seeds [25th-75th percentile]"
    table = Table(caption=caption, caption_justify="left", box=box.SIMPLE_HEAD if compact else box.HEAVY_HEAD,
                  padding=(0, 1), pad_edge=not compact)
    for a in axes:
        table.add_column(header(a), style="cyan", justify="right", no_wrap=True)
    if show_seeds:
        table.add_column("seeds", justify="right", no_wrap=True)
    for m in metrics:
        table.add_column(header(m), justify="right", no_wrap=True)
    for point, row in zip(points, cells):
        values = results.point(point.point).values
        table.add_row(*[fmt(values[a]) for a in axes], *([str(point.n)] if show_seeds else []),
                      *[row[m] for m in metrics])
    return table


def summary_metrics(results: Results, width: int) -> list[str]:
    """The headline metrics that fit whole in a summary ``width`` columns wide, most telling first.

    Which metrics a summary may show and which it keeps first are the model's column
    declarations (engine.analysis.columns), after the scale-free ones (SCALE_FREE), which come
    first at every width; a column empty at every point is left out, and so is one whose cells
    would not fit whole (a cut ``[0.0362-0.…`` misreads). The rest stay in results.csv (``toysup export``).
    """
    spec, rows = results.spec, results.rows
    candidates = columns.summary_candidates(spec.model, rows, wide=width >= WIDE_SUMMARY)
    present = set(rows[0]) if rows else set()
    free = [m for m in SCALE_FREE if m in present]
    order = free + [m for m in columns.keep_order(spec.model, candidates) if m not in free]
    compact = width < COMPACT_BELOW
    points, cells = _summary_cells(results, order, compact)
    filled = [m for m in order if any(row[m] != "—" for row in cells)]
    seeds = 0 if compact and len({p.n for p in points}) == 1 else RICH_GAP + len("seeds")
    used = 1 + seeds + sum(_column_width(a.name, max(cell_len(fmt(v)) for v in a.values)) for a in spec.axes)
    fits = [Fit(m, header(m), keep, natural=max(cell_len(Text.from_markup(row[m]).plain) for row in cells))
            for keep, m in enumerate(filled)]
    kept = {fit.key for fit, _, _ in fit_columns(fits, width, gap=RICH_GAP, used=used)}
    shown = [m for m in free if m in kept]
    return shown + [m for m in candidates if m in kept and m not in shown]


def header(name: str, limit: int = 12) -> str:
    """A column name broken into lines before underscores, each at most about ``limit`` characters."""
    lines: list[str] = []
    for i, part in enumerate(name.split("_")):
        piece = part if i == 0 else "_" + part
        if lines and len(lines[-1]) + len(piece) <= limit:
            lines[-1] += piece
        else:
            lines.append(piece)
    return "\n".join(lines)


def _column_width(name: str, cell: int) -> int:
    return max(max(len(line) for line in header(name).splitlines()), cell) + RICH_GAP


def sparkline(counts: Sequence[int]) -> str:
    """A one-line histogram: one block character per bin, height relative to the fullest bin."""
    blocks = " ▁▂▃▄▅▆▇█"
    top = max(counts, default=0)
    if top <= 0:
        return " " * len(counts)
    return "".join(blocks[math.ceil(c / top * (len(blocks) - 1))] for c in counts)


def orientation_table(points: Sequence[tuple[Point, OrientationStats]], axis_names: str) -> Table:
    """One row per sweep point: a histogram of the orientation angles over seeds and a uniformity test."""
    from toysup.engine.analysis.orientation import (  # deferred: numpy, which `toysup runs` never needs
        NEAR_AXIS_DEG,
        ORIENTATION_BINS,
        histogram,
    )

    limits = {round(s.max_angle, 1) for _, s in points} or {45.0}
    limit = max(limits)
    top = f"{limit:.0f}°" if len(limits) == 1 else "max"
    table = Table(title="orientation of the largest feature: angle to the nearest neuron axis, over seeds",
                  title_justify="left", caption_justify="left",
                  caption=f"histogram: {ORIENTATION_BINS} bins from 0 to the largest possible angle (45° for "
                          f"m=2{'' if limit == 45 else f', {limit:.0f}° here'}). With no privileged "
                          f"basis the direction is random (m=2: angle uniform on 0-45); KS p small = the model prefers "
                          f"or avoids the axes; (null) = the fraction expected by chance. Collapsed instances "
                          f"(loss no better than the best constant output) are excluded.")
    table.add_column(axis_names or "point", style="cyan", justify="right")
    table.add_column("used", justify="right")
    table.add_column("excl.", justify="right")
    table.add_column(f"0° {'histogram':^{ORIENTATION_BINS}} {top}", no_wrap=True)
    table.add_column("median°", justify="right")
    table.add_column(f"<{NEAR_AXIS_DEG:g}° (null)", justify="right")
    table.add_column("KS p", justify="right")
    for point, st in points:
        counts = histogram(st.angles, ORIENTATION_BINS, 0.0, st.max_angle)
        p = "n/a" if math.isnan(st.p_value) else f"{st.p_value:.2g}"
        p_style = "bold" if not math.isnan(st.p_value) and st.p_value < 0.05 else ""
        near = "—" if math.isnan(st.near_axis) else f"{st.near_axis:.0%} ({st.null_near_axis:.0%})"
        table.add_row(point.label(short=True), str(len(st.angles)), str(st.excluded) if st.excluded else "",
                      Text("   " + sparkline(counts), style="cyan"), fmt(st.median), near,
                      Text(p, style=p_style))
    return table


def recovery_table(results: Results) -> Table | None:
    """For SAEs: the histogram of each ground-truth feature's best cosine with a live latent, per sweep point
    (not only MMCS), beside the MMCS a random dictionary of as many live latents scores (mmcs_chance) and the
    share recovered by the run's chance-aware cut. None unless the run has an mmcs column."""
    from toysup.engine.analysis.orientation import histogram  # deferred: numpy, which `toysup runs` never needs

    spec = results.spec
    if not results.rows or "mmcs" not in results.rows[0]:
        return None
    best: dict[int, list[float]] = {}
    recovered: dict[int, list[bool]] = {}
    for f in results.features():
        best.setdefault(f["instance"], []).append(f["max_cosine"])
        if isinstance(f.get("recovered"), (int, float)):  # runs before mmcs_chance: cut at 0.9 below
            recovered.setdefault(f["instance"], []).append(bool(f["recovered"]))
    chance = {r["instance"]: r.get("mmcs_chance") for r in results.rows}
    table = Table(title="feature recovery: each ground-truth feature's max cosine with a live decoder direction",
                  title_justify="left", caption="histogram over 10 bins from 0 to 1, all seeds of the point pooled; "
                  "chance: median MMCS of a random dictionary with as many live latents", caption_justify="left")
    for a in spec.axes:
        table.add_column(a.name, style="cyan", justify="right")
    table.add_column("0 histogram 1")
    table.add_column("chance", justify="right")
    table.add_column("recovered", justify="right")
    for point in results.points:
        values = [v for i in point.instances for v in best.get(i, []) if isinstance(v, (int, float))
                  and not math.isnan(v)]
        if not values:
            continue
        counts = histogram(values, 10, 0.0, 1.0)
        cuts = [v for i in point.instances for v in recovered.get(i, [])]
        share = sum(cuts) / len(cuts) if cuts else sum(v > 0.9 for v in values) / len(values)
        levels = sorted(c for i in point.instances if isinstance(c := chance.get(i), (int, float))
                        and not math.isnan(c))
        level = fmt(levels[len(levels) // 2]) if levels else "—"
        table.add_row(*[fmt(point.values[a.name]) for a in spec.axes], sparkline(counts), level, f"{share:.0%}")
    return table


def rate_table(points: Sequence[PointRate], references: dict[tuple[int, float], Any] | None = None) -> Table:
    """The incidental model's L1 sparsification per sweep point, as the paper's law
    1/||W_i||_1 = a/sqrt(m) + c l1 t states it: the fitted rate per step, and under plain SGD (t = lr x
    step) the constants c and a (mean ± standard error over seeds), the authors' own simulation's c at
    the same m, l1 and window (``references``), and the R² of the line against an exponential."""
    table = Table(title="L1 sparsification: 1/||W_i||_1 = a/√m + c·l1·t (t = lr × step), fitted where the "
                  "mean curve is 25-75% of the way to 1", title_justify="left",
                  caption="c, a: mean ± s.e. over seeds (plain SGD only; Adam has no such law). authors' c: their "
                  "one-feature simulation at the same m and l1, fitted in the same window. The paper's law is "
                  "Θ(·): c is of order 1, not 1. start: √m/||W_i||_1 at the first logged step. R²: the line, "
                  "and an exponential decay of ||W_i||_1 - 1 on the same points",
                  caption_justify="left")
    for name in ("point", "rate/step", "c", "authors' c", "a", "start", "R² line/exp", "seeds"):
        first = name == "point"
        table.add_column(name, justify="left" if first else "right", style="cyan" if first else None)
    for p in points:
        reference = (references or {}).get((p.m, p.l1))
        r2 = f"{_num(p.r2_linear, 3)}/{_num(p.r2_exponential, 3)}"
        table.add_row(p.label, _num(p.fitted), _estimate(p.constant), _estimate(reference[0] if reference else None),
                      _estimate(p.offset), _estimate(p.start), r2, f"{p.fitted_seeds}/{p.seeds}")
    return table


def rate_law_lines(law: RateLaw) -> list[str]:
    """The law tested across the run's points, one plain sentence each: the exponent of the rate in l1,
    of the start and of the fitted line's intercept in m, and c, each beside the authors' simulation's
    value at the same points (the law is a Theta(.): its constants are of order 1, not 1)."""
    lines = []

    def beside(value: Exponent | None) -> str:
        return "" if value is None else f"; the authors' simulation: {value.value:.2f}"

    if law.l1_exponent is not None:
        lines.append(f"rate ∝ l1^{_exponent(law.l1_exponent)}{beside(law.reference_l1_exponent)}; "
                     "the law: 1 (proportional)")
        if len(law.l1_exponent_by_m) > 1:
            lines.append("  at each m: " + "; ".join(f"m={m}: {e.value:.2f} ({e.ci95()[0]:.2f} to {e.ci95()[1]:.2f})"
                                                   for m, e in law.l1_exponent_by_m.items()))
    if law.start_exponent is not None:
        lines.append(f"start 1/||W_i||_1 ∝ m^{_exponent(law.start_exponent)}; the law's offset 1/√m: -0.5")
    if law.intercept_exponent is not None:
        lines.append(f"fitted line's intercept ∝ m^{_exponent(law.intercept_exponent)}"
                     f"{beside(law.reference_intercept_exponent)}; -0.5 only if the curve were straight from its start")
    references = [r[0].mean for r in law.references.values() if r is not None]
    if law.constant is not None:
        line = f"c = {_estimate(law.constant)} (mean over points, s.e. over seeds)"
        if references:
            low, high = min(references), max(references)
            line += f"; the authors' simulation at the same m, l1 and window: {low:.2f}-{high:.2f}"
        lines.append(line)
    return lines


def _estimate(value: Estimate | None) -> str:
    if value is None:
        return "—"
    return f"{value.mean:.2f}" if value.n < 2 else f"{value.mean:.2f} ± {value.se:.2f}"


def _exponent(value: Exponent) -> str:
    low, high = value.ci95()
    return f"{value.value:.2f} (95% CI {low:.2f} to {high:.2f})"


def _num(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "—"
    return f"{value:.{digits}f}" if digits == 3 else f"{value:.{digits}g}"


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")
