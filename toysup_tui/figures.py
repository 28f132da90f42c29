"""Publication figures of a run's charts with matplotlib (``toysup plot``; the optional ``toysup[figures]`` extra).

The numbers come from engine.analysis, as for the terminal report (toysup_tui/render/); this
module only draws them. Each chart draws into a matplotlib SubFigure, so that one file holds
any set of charts, stacked. The figure is built without pyplot (no global state, no display):
``Figure.savefig`` writes PNG, SVG or PDF from the file's suffix.

Charts: ``loss`` (training loss per sweep point, median and IQR band over seeds), ``metrics``
(each charted metric against the first axis), ``geometry`` (chosen instances: feature vectors in
the hidden plane coloured by importance for m = 2, the W W^T overlap heatmap otherwise),
``dimensionality`` (D* and each feature's D_i against 1/(1-S) = 1/p, with the fractions of the
paper's geometries), ``phase`` (the extra feature's phase over two axes, with the paper's
theoretical boundaries where it gives them), ``orientation`` (angle histograms against the
no-preference level), ``rate`` (the incidental model's sparsification curves and fits) and
``recovery`` (an SAE's per-feature best cosine).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from toysup.engine.analysis import geometry, orientation, phase, phase_theory, selection, series, sparsification
from toysup.engine.analysis.aggregate import number
from toysup.engine.analysis.columns import charted_metrics
from toysup.engine.errors import RunDataError, UserError
from toysup.engine.results import Results

if TYPE_CHECKING:
    from matplotlib.figure import Figure, SubFigure

FORMATS = ("png", "svg", "pdf")
EXTRA = "pip install 'toysup[figures]'"
MAX_SERIES = 12
FRACTIONS = ((1.0, "1"), (3 / 4, "3/4"), (2 / 3, "2/3"), (1 / 2, "1/2"), (2 / 5, "2/5"), (3 / 8, "3/8"))
PHASE_COLOURS = {"not_learned": "#9e9e9e", "superposed": "#f28e2b", "dedicated": "#4e79a7"}
PANEL = (4.2, 3.2)  # inches per small panel


def require_matplotlib() -> None:
    """UserError (one line, exit 2) when matplotlib is missing: figures are an optional extra."""
    try:
        import matplotlib  # deferred: matplotlib, an optional dependency  # noqa: F401
    except ImportError:
        raise UserError(f"figures need matplotlib, which is not installed: {EXTRA}") from None


def figure_format(path: Path) -> str:
    """The file format from the suffix; UserError for any other."""
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise UserError(f"-o {path}: cannot tell the figure format from {path.suffix or 'no suffix'!r}: "
                        f"name the file .png, .svg or .pdf")
    return fmt


# --- which charts a run has ----------------------------------------------------------------------------


def _has_axis(results: Results, name: str) -> bool:
    return any(a.name == name for a in results.axes)


def _has_embedding(results: Results) -> bool:
    """Whether the run's instances have a feature embedding W to draw (the SAEs, for one, have none)."""
    reps = selection.representatives(results)
    try:
        return bool(reps) and geometry.embedding(results.weights(int(reps[0].row["instance"]))) is not None
    except RunDataError:
        return False


def choose_axis(results: Results, x: str | None) -> Any:
    """The metric charts' x axis: ``x``, else the first axis with more than one value, else the first."""
    if x is None:
        return next((a for a in results.axes if len(a.values) > 1), None) or series.choose_axis(results.spec)
    return series.choose_axis(results.spec, x)


def available(results: Results) -> list[str]:
    """The charts this run has data for, in the report's order."""
    cols = set(results.rows[0]) if results.rows else set()
    out = ["loss"]
    if results.axes:
        out.append("metrics")
    if _has_embedding(results):
        out.append("geometry")
    if "dims_per_feature" in cols and _has_axis(results, "feature_probability"):
        out.append("dimensionality")
    if "phase" in cols and len(results.axes) >= 2:
        out.append("phase")
    if "orientation_angle_deg" in cols:
        out.append("orientation")
    if results.spec.model == "incidental" and sparsification.rate_points(results):
        out.append("rate")
    if "mmcs" in cols:
        out.append("recovery")
    return out


# --- the figure ------------------------------------------------------------------------------------------


def build(results: Results, charts: Sequence[str] = (), instances: Sequence[int] = (), x: str | None = None,
          metrics: Sequence[str] = ()) -> Figure:
    """One figure with the ``charts`` asked for (default: every chart the run has), stacked; ``instances`` for
    the geometry, ``x`` and ``metrics`` (default: all charted) for the metric charts."""
    require_matplotlib()
    from matplotlib.figure import Figure  # deferred: matplotlib, an optional dependency

    if not results.rows:
        raise UserError("the run has no finished instances to plot yet")
    have = available(results)
    chosen = list(dict.fromkeys(charts)) or have
    for name in chosen:
        if name not in DRAW:
            raise UserError(f"unknown chart {name!r}: valid: {', '.join(DRAW)}")
        if name not in have:
            raise UserError(f"this run has no {name} chart: it has {', '.join(have)}")
    axis = choose_axis(results, x)
    heights = [_height(name, results, instances, axis, metrics) for name in chosen]
    fig = Figure(figsize=(3 * PANEL[0], sum(heights)), layout="constrained")
    subfigs: list[Any] = [fig]
    if len(chosen) > 1:  # an array of SubFigures, one per chart
        subfigs = list(np.ravel(fig.subfigures(len(chosen), 1, height_ratios=heights)))  # type: ignore[arg-type]
    for name, sub in zip(chosen, subfigs):
        DRAW[name](sub, results, instances=instances, axis=axis, metrics=metrics)
    return fig


def save(fig: Figure, path: Path) -> None:
    """Write the figure; the format from the suffix. A bad target is a UserError."""
    fmt = figure_format(path)
    try:
        fig.savefig(path, format=fmt, dpi=150)
    except OSError as exc:
        raise UserError(f"-o {path}: cannot write: {exc.strerror or exc}") from None


def _height(name: str, results: Results, instances: Sequence[int], axis: Any, metrics: Sequence[str]) -> float:
    if name == "metrics":
        n = len(metric_series(results, axis, metrics))
        return PANEL[1] * max(1, math.ceil(n / 3))
    if name == "orientation":
        return PANEL[1] * max(1, math.ceil(min(len(results.points), MAX_SERIES) / 3))
    if name == "geometry":
        return PANEL[1] * max(1, math.ceil(len(_instances(results, instances)) / 3))
    return PANEL[1] * 1.3


def _colours(n: int, ordered: bool) -> list[Any]:
    """Series colours: a sequential map along an ordered (numeric) axis, else a qualitative palette."""
    from matplotlib import colormaps  # deferred: matplotlib, an optional dependency

    if ordered and n > 1:
        cmap = colormaps["viridis"]
        return [cmap(0.9 * k / (n - 1)) for k in range(n)]
    cmap = colormaps["tab10"]
    return [cmap(k % 10) for k in range(n)]


def _ordered(results: Results) -> bool:
    axis = results.axes[0] if results.axes else None
    return axis is not None and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in axis.values)


def _band(ax: Any, band: series.Band, colour: Any, xs: Sequence[float] | None = None, label: str | None = None
          ) -> None:
    """A median line with its IQR over seeds as a shaded band."""
    x = list(xs) if xs is not None else [float(v) for v in band.x]
    ax.plot(x, band.median, color=colour, lw=1.5, marker="o" if len(x) < 30 else None, ms=3,
            label=label if label is not None else band.label)
    ax.fill_between(x, band.q25, band.q75, color=colour, alpha=0.2, lw=0)


# --- the charts ------------------------------------------------------------------------------------------


def draw_loss(fig: Figure | SubFigure, results: Results, **_: Any) -> None:
    """Training loss per sweep point: median over seeds, and the IQR band."""
    try:
        bands = series.loss_bands(results)
    except RunDataError as exc:
        raise UserError(f"loss curves: {exc}") from None
    ax = fig.subplots()
    shown = bands[:MAX_SERIES]
    for band, colour in zip(shown, _colours(len(shown), _ordered(results))):
        _band(ax, band, colour)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    names = ", ".join(a.name for a in results.axes)
    more = f" (first {MAX_SERIES} of {len(bands)} points)" if len(bands) > MAX_SERIES else ""
    ax.set_title(f"training loss: median and IQR over seeds{more}")
    if len(shown) > 1:
        ax.legend(title=names or None, fontsize="small", ncols=2 if len(shown) > 6 else 1)


def metric_series(results: Results, axis: Any, only: Sequence[str] = ()) -> list[tuple[str, list[series.Band]]]:
    """The charted metrics (or those in ``only``) that have a value somewhere, with their bands against ``axis``."""
    if axis is None:
        return []
    out = []
    for metric in only or charted_metrics(results.spec.model, list(results.rows[0])):
        bands = series.metric_bands(results, axis.name, metric, max_series=MAX_SERIES)
        if bands:
            out.append((metric, bands))
    return out


def draw_metrics(fig: Figure | SubFigure, results: Results, axis: Any = None, metrics: Sequence[str] = (),
                 **_: Any) -> None:
    """Each charted metric against the x axis (median and IQR over seeds), one line per value of a second axis."""
    if axis is None:
        raise UserError("metric charts need a swept parameter: this run sweeps nothing")
    found = metric_series(results, axis, metrics)
    names = [metric for metric, _ in found]
    cols = min(3, max(1, len(names)))
    rows = max(1, math.ceil(len(names) / cols))
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    split = next((a for a in results.axes if a.name != axis.name), None)
    for ax, (metric, bands) in zip(axes, found):
        for band, colour in zip(bands, _colours(len(bands), split is not None and _numeric(split.values))):
            _band(ax, band, colour, label=band.label if split else metric)
        if axis.log_scale:
            ax.set_xscale("log")
        ax.set_title(metric, fontsize="medium")
        ax.set_xlabel(axis.name)
    for ax in axes[len(names):]:
        ax.set_visible(False)
    if split is not None and names:
        axes[0].legend(fontsize="x-small", title=split.name)


def _numeric(values: Sequence[Any]) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def _instances(results: Results, chosen: Sequence[int]) -> list[tuple[int, str]]:
    """The instances to draw with a title each: those chosen, else the report's representatives."""
    if chosen:
        known = {int(r["instance"]) for r in results.rows}
        missing = [i for i in chosen if i not in known]
        if missing:
            raise UserError(f"--instance {missing[0]} is not a finished instance of this run "
                            f"(0..{max(known)})")
        return [(i, f"#{i} ({results.label(results.point_of(i), short=True)}, seed "
                 f"{(results.row(i) or {}).get('seed', '?')})") for i in chosen]
    return [(int(rep.row["instance"]), f"{rep.role}: #{rep.row['instance']} ({rep.label})")
            for rep in selection.representatives(results)]


def importance_of(results: Results, instance: int, n: int) -> list[float]:
    """Each feature's importance: features.csv's column where the model writes it, else importance_decay^i."""
    try:
        table = geometry.feature_table(results.features(), instance)
    except RunDataError:
        table = {}
    if len(table.get("importance", [])) == n:
        return list(table["importance"])
    decay = float(results.instance_config(instance).get("importance_decay", 1.0))
    return [decay**i for i in range(n)]


def draw_geometry(fig: Figure | SubFigure, results: Results, instances: Sequence[int] = (), **_: Any) -> None:
    """Chosen instances in the paper's style: for m = 2 each feature's W_i as a segment from the origin, coloured by
    its importance (dark = important); otherwise the overlap matrix W W^T (features x features)."""
    from matplotlib import colormaps  # deferred: matplotlib, an optional dependency

    chosen = _instances(results, instances)
    rows = max(1, math.ceil(len(chosen) / 3))
    axes = np.atleast_1d(fig.subplots(rows, 3, squeeze=False)).ravel()
    cmap = colormaps["viridis_r"]
    for ax, (inst, title) in zip(axes, chosen):
        W = geometry.embedding(results.weights(inst))
        ax.set_title(title, fontsize="small")
        if W is None:
            ax.text(0.5, 0.5, "no feature embedding W", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
            continue
        if W.shape[1] == 2:
            importance = importance_of(results, inst, W.shape[0])
            top = max(importance) or 1.0
            radius = max(float(np.linalg.norm(W, axis=1).max()), 1e-3) * 1.15
            for i, ((x, y), imp) in enumerate(zip(geometry.feature_vectors(W), importance)):
                colour = cmap(imp / top)
                ax.plot([0.0, x], [0.0, y], color=colour, lw=1.8, label=f"feature {i}")
                ax.scatter([x], [y], color=[colour], s=18, zorder=3)
            ax.set_xlim(-radius, radius)
            ax.set_ylim(-radius, radius)
            ax.set_aspect("equal")
            ax.axhline(0, color="0.85", lw=0.6, zorder=0)
            ax.axvline(0, color="0.85", lw=0.6, zorder=0)
            ax.set_xticks([])
            ax.set_yticks([])
        else:
            overlap = np.asarray(geometry.overlap_matrix(W))
            scale = float(np.abs(overlap).max()) or 1.0
            image = ax.imshow(overlap, cmap="RdBu", vmin=-scale, vmax=scale)
            fig.colorbar(image, ax=ax, shrink=0.8)
            ax.set_xlabel("feature")
            ax.set_ylabel("feature")
    for ax in axes[len(chosen):]:
        ax.set_visible(False)
    if any(ax.lines for ax in axes):  # the importance scale of the feature-vector plots
        from matplotlib.cm import ScalarMappable  # deferred: matplotlib, an optional dependency
        from matplotlib.colors import Normalize  # deferred: matplotlib, an optional dependency

        fig.colorbar(ScalarMappable(Normalize(0, 1), cmap), ax=list(axes[:len(chosen)]), shrink=0.7,
                     label="importance (of the largest)")


def draw_dimensionality(fig: Figure | SubFigure, results: Results, **_: Any) -> None:
    """D* = m / ||W||_F^2 (median over seeds, a line) and every feature's D_i (points) against 1/(1-S) = 1/p,
    with the fractions of the paper's geometries (1/2 antipodal pairs, 2/5 pentagons, ...)."""
    ax = fig.subplots()
    p_at = {p.index: float(p.values["feature_probability"]) for p in results.points}
    xs, ys = [], []
    try:
        features = results.features()
    except RunDataError:
        features = []
    for row in features:
        d = number(row.get("dimensionality"))
        if d is not None:
            xs.append(1.0 / p_at[results.point_of(int(row["instance"])).index])
            ys.append(d)
    ax.scatter(xs, ys, s=6, color="0.45", alpha=0.5, lw=0, label="D_i (each feature)")
    bands = series.metric_bands(results, "feature_probability", "dims_per_feature", max_series=MAX_SERIES)
    for band, colour in zip(bands, _colours(len(bands), False)):
        order = np.argsort([1.0 / float(v) for v in band.x])
        inv = [1.0 / float(band.x[k]) for k in order]
        ax.plot(inv, [band.median[k] for k in order], color=colour, lw=2,
                label="D* (median)" if len(bands) == 1 else f"D*, {band.label}")
    for value, text in FRACTIONS:
        ax.axhline(value, color="0.6", lw=0.7, ls="--", zorder=0)
        ax.annotate(text, (1.0, value), xycoords=("axes fraction", "data"), xytext=(3, 0),
                    textcoords="offset points", va="center", fontsize="small", color="0.4")
    ax.set_xscale("log")
    ax.set_xlabel("1/(1-S) = 1/feature_probability")
    ax.set_ylabel("dimensions per feature")
    ax.set_title("feature dimensionality")
    ax.legend(fontsize="small")


def theory_grid(results: Results, grid: phase.PhaseGrid, size: int = 200
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The paper's theoretical phase (engine.analysis.phase_theory) on a fine (r, p) grid over the run's range, as
    phase indices, or None where the paper gives no theory for this run."""
    spec = results.spec
    n, m = int(spec.params.get("n_features", 0)), int(spec.params.get("n_hidden", 0))
    if (spec.model != "relu_output_phase" or grid.x_axis != "importance_decay"
            or grid.y_axis != "feature_probability" or not phase_theory.has_theory(n, m)):
        return None
    rs = np.geomspace(min(grid.x_values), max(grid.x_values), size)
    ps = np.geomspace(min(grid.y_values), max(grid.y_values), size)
    index = {name: k for k, name in enumerate(phase.PHASES)}
    z = np.array([[index[phase_theory.theoretical_phase(float(r), float(p), n)] for r in rs] for p in ps])
    return rs, ps, z


def _edges(values: Sequence[float]) -> np.ndarray:
    """Cell edges around sorted values: geometric midpoints (the sweeps are logarithmic)."""
    v = np.asarray(values, dtype=float)
    if len(v) == 1:
        return np.array([v[0] / 1.5, v[0] * 1.5])
    mids = np.sqrt(v[:-1] * v[1:]) if (v > 0).all() else (v[:-1] + v[1:]) / 2
    first, last = v[0] ** 2 / mids[0] if v[0] > 0 else 2 * v[0] - mids[0], v[-1] ** 2 / mids[-1] \
        if v[-1] > 0 else 2 * v[-1] - mids[-1]
    return np.concatenate([[first], mids, [last]])


def draw_phase(fig: Figure | SubFigure, results: Results, **_: Any) -> None:
    """The extra feature's phase at each point (the lowest-loss seed's), with the paper's theoretical boundaries."""
    from matplotlib.colors import ListedColormap  # deferred: matplotlib, an optional dependency
    from matplotlib.patches import Patch  # deferred: matplotlib, an optional dependency

    names = [a.name for a in results.axes]
    x_axis = "importance_decay" if "importance_decay" in names else names[0]
    y_axis = next(n for n in names if n != x_axis)
    grid = phase.phase_grid(results, x_axis, y_axis)
    index = {name: k for k, name in enumerate(phase.PHASES)}
    xs, ys = sorted(grid.x_values), sorted(grid.y_values)
    z = np.full((len(ys), len(xs)), np.nan)
    for r, yv in enumerate(grid.y_values):
        for c, xv in enumerate(grid.x_values):
            cell = grid.cells[r][c]
            if cell is not None and cell.best is not None:
                z[ys.index(yv), xs.index(xv)] = index[cell.best]
    ax = fig.subplots()
    cmap = ListedColormap([PHASE_COLOURS[p] for p in phase.PHASES])
    ax.pcolormesh(_edges(xs), _edges(ys), np.ma.masked_invalid(z), cmap=cmap, vmin=-0.5, vmax=len(phase.PHASES) - 0.5)
    theory = theory_grid(results, grid)
    handles: list[Any] = [Patch(color=PHASE_COLOURS[p], label=p.replace("_", " ")) for p in phase.PHASES]
    if theory is not None:
        rs, ps, tz = theory
        ax.contour(rs, ps, tz, levels=[0.5, 1.5], colors="black", linewidths=1.5)
        from matplotlib.lines import Line2D  # deferred: matplotlib, an optional dependency

        handles.append(Line2D([], [], color="black", label="theory (the paper's candidates)"))
    if all(v > 0 for v in xs) and max(xs) / min(xs) >= 20:
        ax.set_xscale("log")
    if all(v > 0 for v in ys) and max(ys) / min(ys) >= 20:
        ax.set_yscale("log")
    ax.set_xlabel(x_axis)
    ax.set_ylabel(y_axis)
    ax.set_title("phase of the extra feature (lowest-loss seed per point)")
    ax.legend(handles=handles, fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))


def draw_orientation(fig: Figure | SubFigure, results: Results, **_: Any) -> None:
    """Per sweep point: the histogram of the largest feature's angle to its nearest neuron axis, and the count
    per bin that a uniformly random direction would give (dashed)."""
    points = [(pt, st) for pt, st in orientation.orientation_points(results) if st.max_angle > 0][:MAX_SERIES]
    if not points:
        raise UserError("orientation: no instance with a defined orientation angle")
    rows = max(1, math.ceil(len(points) / 3))
    axes = np.atleast_1d(fig.subplots(rows, 3, squeeze=False)).ravel()
    for ax, (point, st) in zip(axes, points):
        bins = orientation.ORIENTATION_BINS
        counts = orientation.histogram(st.angles, bins, 0.0, st.max_angle)
        width = st.max_angle / bins
        centres = [width * (k + 0.5) for k in range(bins)]
        ax.bar(centres, counts, width=width * 0.9, color="#4e79a7")
        expected = orientation.null_counts(len(st.angles), bins, st.max_angle, orientation.hidden_dims(st.max_angle))
        if expected:
            ax.plot(centres, expected, color="black", ls="--", lw=1)
        p = "n/a" if math.isnan(st.p_value) else f"{st.p_value:.2g}"
        ax.set_title(f"{point.label() or 'all'}: {len(st.angles)} seeds, KS p={p}", fontsize="small")
        ax.set_xlim(0, st.max_angle)
        ax.set_xlabel("degrees to nearest neuron axis")
    for ax in axes[len(points):]:
        ax.set_visible(False)


def draw_rate(fig: Figure | SubFigure, results: Results, **_: Any) -> None:
    """The incidental model's mean 1/||W_i||_1 per step (median over seeds) with its fitted straight line."""
    points = sparsification.rate_points(results)[:MAX_SERIES]
    ax = fig.subplots()
    for p, colour in zip(points, _colours(len(points), False)):
        ax.plot(p.steps, p.median, color=colour, lw=1.5, label=p.label or "all")
        if p.fitted is not None and p.intercept is not None and p.steps:
            xs = [s for s in p.steps if p.intercept + p.fitted * s <= max(p.median)] or p.steps[:1]
            ax.plot(xs, [p.intercept + p.fitted * s for s in xs], color=colour, ls="--", lw=1)
    ax.set_xlabel("step")
    ax.set_ylabel("mean 1/||W_i||_1")
    ax.set_title("sparsification: median over seeds, fitted line dashed")
    ax.legend(fontsize="small")


def draw_recovery(fig: Figure | SubFigure, results: Results, **_: Any) -> None:
    """For SAEs: the distribution of each ground-truth feature's best cosine with a decoder direction, per point."""
    best: dict[int, list[float]] = {}
    for f in results.features():
        value = number(f.get("max_cosine"))
        if value is not None:
            best.setdefault(int(f["instance"]), []).append(value)
    ax = fig.subplots()
    shown = results.points[:MAX_SERIES]
    for point, colour in zip(shown, _colours(len(shown), _ordered(results))):
        values = [v for i in point.instances for v in best.get(i, [])]
        if values:
            ax.hist(values, bins=20, range=(0.0, 1.0), histtype="step", color=colour, lw=1.5,
                    label=point.label(short=True) or "all")
    ax.set_xlabel("max cosine of a ground-truth feature with any decoder direction")
    ax.set_ylabel("features")
    ax.set_title("feature recovery (all seeds of a point pooled)")
    ax.legend(fontsize="x-small", ncols=2 if len(shown) > 6 else 1)


DRAW: dict[str, Callable[..., None]] = {
    "loss": draw_loss, "metrics": draw_metrics, "geometry": draw_geometry, "dimensionality": draw_dimensionality,
    "phase": draw_phase, "orientation": draw_orientation, "rate": draw_rate, "recovery": draw_recovery,
}
CHARTS = tuple(DRAW)
