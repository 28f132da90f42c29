"""Terminal charts of a run, and the data behind them.

This is the only module of toysup that touches plotext, so a change of chart
library touches one place. It has two halves:

* Data preparation: pure functions that turn a run's :class:`engine.results.Results`
  (or plain lists) into what each chart needs. Sweep points come from Results, by
  index, never by comparing values read back from a CSV. They never import plotext, so the
  TUI, tests and a later engine module can reuse them.
* Drawing: ``draw_*(plt, data, ...)`` functions. ``plt`` is either the plotext
  module (the CLI, through :func:`render`) or a textual-plotext widget's ``.plt``
  (the TUI, which calls ``widget.refresh()`` afterwards). They clear the figure,
  draw, set title, labels and scales, and never call ``show()``; they never set
  the size or the theme, which belong to the caller (the widget sizes itself).

Colours: series colours come from :data:`PALETTE`; with ``mono=True`` every
series gets its own marker character instead, so monochrome output (NO_COLOR,
a pipe) still tells series apart. Legends are drawn inside the chart only when
``legend=True``: plotext puts them over the top-left corner, where loss curves
start, so the report prints its own legend under each chart (see
:func:`series_style`).
"""

from __future__ import annotations

import itertools
import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.aggregate import quartiles
from engine.errors import RunDataError, SpecError

# Re-exported, so the TUI finds every chart's data in this module.
from engine.orientation import NEAR_AXIS_DEG, OrientationStats, max_axis_angle, null_cdf, orientation_stats  # noqa: F401
from engine.results import Point, Results, point_label
from engine.spec import Axis, Spec

RGB = tuple[int, int, int]
# Distinguishable on dark and light terminals (Tableau 10, slightly brightened).
PALETTE: tuple[RGB, ...] = (
    (86, 156, 214), (255, 140, 40), (80, 200, 90), (240, 80, 80), (180, 130, 230),
    (200, 150, 110), (240, 130, 200), (160, 160, 160), (210, 210, 60), (60, 210, 220),
)
# One marker per series for monochrome output.
MONO_MARKERS = ("•", "x", "+", "o", "*", "#", "%", "@", "=", "~")
IQR_MARKER = "⠂"  # one braille dot per cell: a faint dotted line under the solid median
TIP_MARKER = "●"  # feature-vector tips: one per feature, so tests can count them
ORIENTATION_BINS = 9  # 5-degree bins over [0, 45] for m = 2
# Colours come from values rounded to 1/COLOUR_LEVELS of their scale (see colour_level).
COLOUR_LEVELS = 64

# =========================================================================================
# Data preparation (pure: no plotext)
# =========================================================================================


@dataclass
class Band:
    """One series: x values and, at each x, the median and 25th/75th percentiles over seeds."""

    label: str
    x: list[Any] = field(default_factory=list)
    median: list[float] = field(default_factory=list)
    q25: list[float] = field(default_factory=list)
    q75: list[float] = field(default_factory=list)
    n: int = 0  # instances (seeds) behind the series

    def add(self, x: Any, stats: tuple[float, float, float]) -> None:
        """Append one point: ``stats`` is (median, q25, q75), as engine.aggregate.quartiles gives."""
        self.x.append(x)
        self.median.append(stats[0])
        self.q25.append(stats[1])
        self.q75.append(stats[2])


@dataclass
class Representative:
    """An instance chosen to show a sweep point's geometry: the lowest-loss seed of the point."""

    role: str  # e.g. "sparsest", "densest", "low dropout", "only point"
    row: dict[str, Any]
    point: Point
    seeds: int  # how many seeds it was chosen from

    @property
    def label(self) -> str:
        """The point's axis values, e.g. "feature_probability=0.01"."""
        return self.point.label()


def curve_bands(curves: Sequence[dict[str, Any]], groups: Sequence[tuple[str, Sequence[int]]]) -> list[Band]:
    """Median and IQR over the instances of each group at every logged step.

    ``curves`` are curves.csv rows (instance, step, loss); ``groups`` pairs a label
    with instance indices. A step counts the instances that logged it (a diverged
    instance stops logging), and groups with no curves yet are left out.
    """
    by_instance: dict[int, dict[int, float]] = {}
    for row in curves:
        loss = row.get("loss")
        if isinstance(loss, (int, float)) and math.isfinite(loss):
            by_instance.setdefault(int(row["instance"]), {})[int(row["step"])] = float(loss)
    bands = []
    for label, members in groups:
        present = [by_instance[i] for i in members if i in by_instance]
        if not present:
            continue
        band = Band(label, n=len(present))
        for step in sorted({s for c in present for s in c}):
            band.add(step, quartiles([c[step] for c in present if step in c]))
        bands.append(band)
    return bands


def loss_bands(results: Results) -> list[Band]:
    """The run's training-loss curves, one band per sweep point (RunDataError with no curves yet)."""
    groups = [(p.label(short=True), p.instances) for p in results.points]
    return curve_bands(results.curves(), groups)


def choose_axis(spec: Spec, x: str | None = None) -> Axis | None:
    """The swept parameter to put on the x axis of metric charts: ``x``, else the first axis.

    None for a run without axes. An ``x`` that is not swept raises SpecError naming the choices.
    """
    names = [a.name for a in spec.axes]
    if x is None:
        return spec.axes[0] if spec.axes else None
    if x not in names:
        choices = f"swept: {', '.join(names)}" if names else "this run sweeps nothing"
        raise SpecError(f"--x {x!r} is not a swept parameter of this run ({choices})")
    return spec.axes[names.index(x)]


def metric_bands(results: Results, x: str, metric: str, max_series: int = len(PALETTE)) -> list[Band]:
    """Median and IQR of ``metric`` over seeds at each value of axis ``x``.

    With two or more axes there is one series per value of the first other axis
    (up to ``max_series``, the rest dropped); any further axes are pooled with the
    seeds, because a terminal chart cannot show more than one split legibly. Rows
    reach their place through their sweep point's exact values.
    Booleans count as 0/1 and empty cells are skipped, as in engine.aggregate.
    """
    xaxis = next(a for a in results.axes if a.name == x)
    split = next((a for a in results.axes if a.name != x), None)
    x_at = {v: i for i, v in enumerate(xaxis.values)}
    series_at = {v: i for i, v in enumerate(split.values)} if split else {}
    pooled: dict[tuple[int, int], list[float]] = {}
    for point, members in results.groups():
        key = (series_at[point.values[split.name]] if split else 0, x_at[point.values[x]])
        values = [_number(r.get(metric)) for r in members]
        pooled.setdefault(key, []).extend(v for v in values if v is not None)
    bands = []
    for s, sv in enumerate(list(split.values[:max_series]) if split else [None]):
        band = Band(point_label({split.name: sv}) if split else metric)
        for i, xv in enumerate(xaxis.values):
            vals = pooled.get((s, i))
            if vals:
                band.add(xv, quartiles(vals))
                band.n += len(vals)
        if band.x:
            bands.append(band)
    return bands


def orientation_points(results: Results) -> list[tuple[Point, OrientationStats]]:
    """Orientation statistics per sweep point (points without finished instances are left out).

    Each point uses its own n_hidden (it may be swept) for the range of angles and the test.
    """
    out = []
    for point, members in results.groups():
        m = int(point.values.get("n_hidden", results.spec.params.get("n_hidden", 2)))
        read = [r.get("orientation_angle_deg") for r in members]
        collapsed = [bool(r.get("collapsed")) or not isinstance(a, (int, float)) for r, a in zip(members, read)]
        angles = [float(a) if isinstance(a, (int, float)) else math.nan for a in read]
        out.append((point, orientation_stats(angles, collapsed, m)))
    return out


def histogram(values: Sequence[float], bins: int, lo: float, hi: float) -> list[int]:
    """Counts in ``bins`` equal bins over [lo, hi] (values outside are clipped into the end bins)."""
    clipped = np.clip(np.asarray(values, dtype=float), lo, hi)
    counts, _ = np.histogram(clipped, bins=bins, range=(lo, hi))
    return [int(c) for c in counts]


def sparkline(counts: Sequence[int]) -> str:
    """A one-line histogram: one block character per bin, height relative to the fullest bin."""
    blocks = " ▁▂▃▄▅▆▇█"
    top = max(counts, default=0)
    if top <= 0:
        return " " * len(counts)
    return "".join(blocks[math.ceil(c / top * (len(blocks) - 1))] for c in counts)


def representatives(results: Results) -> list[Representative]:
    """The lowest-loss seed at each end of the first axis (other axes at their first value).

    For a feature_probability axis the ends are called "sparsest" and "densest";
    otherwise "low NAME" and "high NAME". A run without axes gives its one point.
    """
    if not results.axes:
        best = _lowest_loss(results.rows)
        return [Representative("only point", best, results.points[0], len(results.rows))] if best else []
    first, others = results.axes[0], results.axes[1:]
    fixed = {a.name: a.values[0] for a in others}
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in first.values)
    ends = [min(first.values), max(first.values)] if numeric else [first.values[0], first.values[-1]]
    if first.name == "feature_probability":
        roles = ["sparsest", "densest"]
    elif numeric:
        roles = [f"low {first.name}", f"high {first.name}"]
    else:
        roles = [f"{first.name}={_fmt(v)}" for v in ends]
    out: list[Representative] = []
    for role, value in dict(zip(roles, ends)).items():
        point = results.find_point({first.name: value, **fixed})
        members = results.members(point) if point is not None else []
        best = _lowest_loss(members)
        if point is not None and best and all(best["instance"] != r.row["instance"] for r in out):
            out.append(Representative(role, best, point, len(members)))
    return out


def embedding(weights: dict[str, Any]) -> np.ndarray | None:
    """One instance's (n, m) feature embedding W (rows are features), or None if its model has none.

    Models name their weights differently; the ones with features as rows of "W"
    (the ReLU output and linear models) are drawn today.
    """
    W = weights.get("W")
    if W is None:
        return None
    arr = _array(W)
    return arr if arr.ndim == 2 else None


def feature_vectors(W: Any) -> list[tuple[float, float]]:
    """Rows of a (n, 2) embedding matrix as (x, y) pairs; rows are features."""
    arr = _array(W)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"feature vectors need a (n, 2) matrix, got shape {tuple(arr.shape)}")
    return [(float(a), float(b)) for a, b in arr]


def overlap_matrix(W: Any) -> list[list[float]]:
    """The n x n feature-overlap matrix W_i . W_j (the paper's W^T W; our W has features as rows)."""
    arr = _array(W)
    return (arr @ arr.T).tolist()


def feature_table(features: Sequence[dict[str, Any]], instance: int) -> dict[str, list[float]]:
    """One instance's per-feature columns from features.csv rows, in feature order."""
    mine = sorted((r for r in features if r.get("instance") == instance), key=lambda r: r["feature"])
    if not mine:
        raise RunDataError(f"features.csv has no rows for instance {instance}")
    columns = [c for c in mine[0] if c not in ("instance", "feature")]
    return {c: [_number(r.get(c)) or 0.0 for r in mine] for c in columns}


def neuron_counts(W: Any, threshold: float = 0.5, represented: Sequence[float] | None = None,
                  sense: str = "magnitude") -> list[int]:
    """How many represented features each neuron carries (engine.metrics.features_per_neuron).

    ``represented`` is features.csv's 0/1 column (the model's rule); without it, the norm-only
    half of that rule. ``sense``: how a weight drives a neuron (the model's neuron_sense)."""
    import torch

    from engine.metrics import features_per_neuron

    t = torch.as_tensor(_array(W), dtype=torch.float32).unsqueeze(0)
    mask = None if represented is None else torch.tensor([bool(v) for v in represented]).unsqueeze(0)
    return [int(c) for c in features_per_neuron(t, float(threshold), mask, sense)[0]]


def series_style(index: int, mono: bool = False) -> tuple[RGB | None, str]:
    """The colour and marker of series ``index``: colour and braille lines, or no colour and a marker."""
    if mono:
        return None, MONO_MARKERS[index % len(MONO_MARKERS)]
    return PALETTE[index % len(PALETTE)], "braille"


def log_ticks(lo: float, hi: float) -> tuple[list[float], list[str]]:
    """Round tick positions for a log axis over [lo, hi]: powers of ten, plus 2 and 5 for short ranges."""
    if lo <= 0 or hi <= 0 or not (math.isfinite(lo) and math.isfinite(hi)):
        return [], []
    lo, hi = min(lo, hi), max(lo, hi)
    decades = range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
    for mantissas in ((1,), (1, 2, 5), (1, 2, 3, 5, 7)):
        ticks = [m * 10.0**d for d in decades for m in mantissas if lo * (1 - 1e-9) <= m * 10.0**d <= hi * (1 + 1e-9)]
        if len(ticks) >= 3:
            break
    if len(ticks) < 2:
        ticks = sorted({lo, hi})
    return ticks, [_tick(t) for t in ticks]


# =========================================================================================
# Drawing (plt: the plotext module or a textual-plotext widget's .plt)
# =========================================================================================


def draw_loss_curves(plt: Any, bands: Sequence[Band], title: str = "training loss (median; dotted: IQR)",
                     iqr: bool = True, legend: bool = False, mono: bool = False) -> None:
    """Median loss per sweep point on log-log axes; the IQR over seeds as two faint dotted lines.

    Steps are logged log-spaced early, so a log step axis shows the fast early
    drop and the slow late plateau alike. In monochrome the IQR lines of several
    series cannot be told apart, so they are drawn only for a single series.
    """
    plt.clear_figure()
    ys: list[float] = []
    for i, band in enumerate(bands):
        color, marker = series_style(i, mono)
        pts = [(s, m) for s, m in zip(band.x, band.median) if s > 0 and m > 0]
        if iqr and band.n > 1 and (not mono or len(bands) == 1):
            for q in (band.q25, band.q75):
                qp = [(s, v) for s, v in zip(band.x, q) if s > 0 and v > 0]
                if qp:
                    plt.plot(*zip(*qp), marker=IQR_MARKER if not mono else "·", color=color)
        if pts:
            plt.plot(*zip(*pts), marker=marker, color=color, label=band.label if legend else None)
            ys += [p[1] for p in pts]
    steps = [s for b in bands for s in b.x if s > 0]
    if steps and ys:
        plt.xscale("log")
        plt.yscale("log")
        plt.xticks(*log_ticks(min(steps), max(steps)))
        lo_y = min([v for b in bands for v in b.q25 if v > 0] + ys) if iqr else min(ys)
        hi_y = max([v for b in bands for v in b.q75 if v > 0] + ys) if iqr else max(ys)
        plt.yticks(*log_ticks(lo_y, hi_y))
    plt.title(title)
    plt.xlabel("step")


def draw_metric(plt: Any, bands: Sequence[Band], metric: str, x_name: str, log_x: bool = False,
                title: str | None = None, legend: bool = False, mono: bool = False, log_y: bool = False) -> None:
    """A metric's median over seeds against a swept parameter, with the IQR as a vertical bar at each point.

    Non-numeric parameter values (a choice such as the optimiser) are placed at
    equal spacing and labelled. A log x axis is used when the axis is log-scaled;
    ``log_y`` (e.g. for the loss, which spans decades) only when every value is positive.
    """
    plt.clear_figure()
    xs_all = [v for b in bands for v in b.x]
    categorical = any(not _is_number(v) for v in xs_all)
    log_x = log_x and not categorical and all(v > 0 for v in xs_all)
    categories = list(dict.fromkeys(xs_all)) if categorical else []
    for i, band in enumerate(bands):
        color, marker = series_style(i, mono)
        xs = [categories.index(v) for v in band.x] if categorical else [float(v) for v in band.x]
        for xv, lo, hi in zip(xs, band.q25, band.q75):
            if hi > lo:
                plt.plot([xv, xv], [lo, hi], marker="│" if not mono else "|", color=color)
        if len(xs) > 1:
            plt.plot(xs, band.median, marker=marker, color=color, label=band.label if legend else None)
        plt.scatter(xs, band.median, marker="●" if not mono else marker, color=color)
    if categorical:
        plt.xticks(list(range(len(categories))), [_fmt(c) for c in categories])
    elif log_x and xs_all:
        plt.xscale("log")
        plt.xticks(*log_ticks(min(xs_all), max(xs_all)))
    ys = [v for b in bands for v in b.q25 + b.q75 + b.median]
    if log_y and ys and min(ys) > 0 and max(ys) > min(ys):
        plt.yscale("log")
        plt.yticks(*log_ticks(min(ys), max(ys)))
    elif ys and max(ys) == min(ys):  # a flat line: give it room so plotext draws ticks
        plt.ylim(min(ys) - 1, max(ys) + 1)
    plt.title(title or f"{metric} (median; bars: IQR over seeds)")
    plt.xlabel(x_name)


def draw_feature_vectors(plt: Any, vectors: Sequence[tuple[float, float]], title: str = "feature vectors",
                         aspect: float | None = None, mono: bool = False) -> None:
    """Each feature's embedding W_i as a segment from the origin, a marker at its tip and its index beside it.

    ``aspect`` is the plot area's width divided by its height in character cells
    (:func:`plot_aspect` computes it from a chart size). Terminal cells are about
    twice as tall as wide, so the x range is widened to keep circles round.
    """
    plt.clear_figure()
    # The axes' extent on a grid of 1/20: the ticks (and the sign of the one at 0) then do not depend on
    # the last bits of the largest norm, which another machine's BLAS may compute differently.
    radius = math.ceil(max([math.hypot(x, y) for x, y in vectors] + [1e-3]) * 1.25 * 20) / 20
    for i, (x, y) in enumerate(vectors):
        color = None if mono else PALETTE[i % len(PALETTE)]
        plt.plot([0.0, x], [0.0, y], marker="braille", color=color)
    for i, (x, y) in enumerate(vectors):
        color = None if mono else PALETTE[i % len(PALETTE)]
        plt.scatter([x], [y], marker=TIP_MARKER, color=color)
        norm = math.hypot(x, y)
        if norm > 0.15 * radius:  # unlearned features sit at the origin: their labels would pile up
            lx, ly = x + 0.12 * radius * x / norm, y + 0.12 * radius * y / norm
            plt.text(str(i), lx, ly, color=color, alignment="center")
    # equal units: x_range / cols = y_range / (2 rows), so x_half = y_half * aspect / 2
    x_half, y_half = radius * (aspect / 2 if aspect else 1.0), radius
    if aspect and x_half < radius:  # a tall, narrow area: widen y instead
        x_half, y_half = radius, radius * 2 / aspect
    plt.xlim(-x_half, x_half)
    plt.ylim(-y_half, y_half)
    plt.title(title)


def plot_aspect(width: int, height: int, title: bool = True, xlabel: bool = False) -> float:
    """Width/height in cells of the area plotext draws data into, for a chart of ``width`` x ``height``.

    plotext spends about 7 columns on y tick labels and borders, and rows on the
    title, the frame and the x ticks. Approximate, which is enough for equal aspect.
    """
    cols = max(width - 8, 1)
    rows = max(height - 3 - int(title) - int(xlabel), 1)
    return cols / rows


def draw_orientation_hist(plt: Any, stats: OrientationStats, title: str | None = None,
                          bins: int = ORIENTATION_BINS, m: int | None = None) -> None:
    """A histogram of orientation angles over [0, max angle] (45 degrees for m = 2), with the no-preference level.

    plotext's own hist bins over the data range; fixed bins over the possible range
    keep histograms of different points comparable. The dotted line is the count
    per bin expected from a uniformly random direction in m dimensions (flat for m = 2);
    m defaults to the one whose largest possible angle is ``stats.max_angle``.
    """
    plt.clear_figure()
    if m is None:
        m = hidden_dims(stats.max_angle)
    counts = histogram(stats.angles, bins, 0.0, stats.max_angle)
    width = stats.max_angle / bins
    centres = [width * (k + 0.5) for k in range(bins)]
    plt.bar(centres, counts, width=0.6, color=PALETTE[0])
    expected = null_counts(len(stats.angles), bins, stats.max_angle, m)
    if stats.angles and expected:
        plt.plot(centres, expected, marker="dot", color=PALETTE[7])
    ticks = [stats.max_angle * k / 4 for k in range(5)]
    plt.xlim(0.0, stats.max_angle)
    plt.xticks(ticks, [_tick(v) for v in ticks])
    if title is None:
        p = "n/a" if math.isnan(stats.p_value) else f"{stats.p_value:.2g}"
        title = f"orientation, {len(stats.angles)} seeds (KS p={p}; dotted: no preference)"
    plt.title(title)
    plt.xlabel("degrees to nearest neuron axis")


def hidden_dims(max_angle: float) -> int:
    """The m whose largest possible axis angle is ``max_angle`` (inverse of max_axis_angle)."""
    if max_angle <= 0:
        return 1
    return round(1 / math.cos(math.radians(max_angle)) ** 2)


def null_counts(total: int, bins: int, max_angle: float, m: int) -> list[float]:
    """Expected histogram counts of ``total`` angles of uniformly random directions in m dimensions."""
    if m < 2 or total == 0:
        return []
    edges = np.linspace(0.0, max_angle, bins + 1)
    cdf = np.asarray(null_cdf(m)(edges), dtype=float)
    return [float(total * (b - a)) for a, b in itertools.pairwise(cdf)]


def draw_feature_norms(plt: Any, norms: Sequence[float], interference: Sequence[float],
                       title: str = "feature norms (colour: interference)") -> None:
    """||W_i|| per feature, each bar coloured from green (no interference) to red (interference >= 1).

    plotext takes one colour per bar call, so bars are drawn one by one.
    """
    plt.clear_figure()
    _bars(plt, norms, [interference_colour(v) for v in interference])
    plt.title(title)
    plt.xlabel("feature")


def _bars(plt: Any, values: Sequence[float], colours: Sequence[RGB]) -> None:
    """Bars at 0..n-1 with a colour each. plotext colours a whole bar call alike, so each bar is its own
    call; a fixed x range and our own ticks keep the calls' widths and labels consistent."""
    n = len(values)
    for i, (v, c) in enumerate(zip(values, colours)):
        plt.bar([i], [v], color=c, width=0.6, reset_ticks=False)
    step = _round_step(n / 10)
    plt.xlim(-0.5, n - 0.5)
    plt.xticks(list(range(0, n, step)), [str(i) for i in range(0, n, step)])


def _round_step(raw: float) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, ... at least ``raw``: tick spacing for index axes."""
    step = 1
    while step < raw:
        step = step * 5 // 2 if str(step)[0] == "2" else step * 2
    return step


def colour_level(t: float) -> float:
    """``t`` clamped to [-1, 1] and rounded to the nearest of :data:`COLOUR_LEVELS` steps per unit.

    Values computed from trained weights differ in their last bits from one machine's BLAS to
    another's; a colour taken from the raw float (e.g. ``int(150 * t)``) then differs by a unit
    wherever the product is near an integer, and always at the top of the scale, where
    ``t = v / vmax`` is 1 or 0.99999994. On the grid, only values within an ulp of a half step
    can differ, and the scale's ends are exact.
    """
    return round(max(-1.0, min(1.0, float(t))) * COLOUR_LEVELS) / COLOUR_LEVELS


def interference_colour(value: float) -> RGB:
    """Green at 0, yellow at 0.5, red at 1 and above."""
    t = colour_level(max(float(value), 0.0))
    return (int(80 + 175 * min(1.0, 2 * t)), int(200 - 150 * max(0.0, 2 * t - 1)), 70)


def draw_neuron_counts(plt: Any, counts: Sequence[int], title: str = "represented features per neuron") -> None:
    """How many represented features each neuron carries: 2 or more is a polysemantic neuron."""
    plt.clear_figure()
    _bars(plt, counts, [PALETTE[3] if c >= 2 else PALETTE[0] for c in counts])
    plt.ylim(0, max([*counts, 2]) + 0.5)
    plt.title(title)
    plt.xlabel("neuron (red: polysemantic)")


# =========================================================================================
# Rendering for the CLI
# =========================================================================================


def use_color(stream: Any = None) -> bool:
    """Colour only on a terminal and only without NO_COLOR (https://no-color.org)."""
    if os.environ.get("NO_COLOR"):
        return False
    stream = stream if stream is not None else sys.stdout
    return bool(getattr(stream, "isatty", lambda: False)())


def render(draw: Callable[..., None], *args: Any, width: int, height: int, color: bool | None = None,
           **kwargs: Any) -> str:
    """Draw with plotext's global figure and return the chart as text (ANSI colours only if ``color``).

    ``color=None`` decides with :func:`use_color`. The theme "clear" keeps the
    terminal's own background.
    """
    import plotext

    color = use_color() if color is None else color
    draw(plotext, *args, **kwargs)
    plotext.limit_size(False, False)  # plotext would shrink charts to the terminal it guesses, even in a pipe
    plotext.plot_size(width, height)
    plotext.theme("clear")
    text = plotext.build()
    plotext.clear_figure()
    return text if color else plotext.uncolorize(text)


# =========================================================================================
# Helpers
# =========================================================================================


def _array(W: Any) -> np.ndarray:
    if hasattr(W, "detach"):
        W = W.detach().cpu().numpy()
    return np.asarray(W, dtype=float)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _number(v: Any) -> float | None:
    if isinstance(v, (int, float)) and math.isfinite(float(v)):
        return float(v)
    return None


def _lowest_loss(rows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    scored = [r for r in rows if _number(r.get("loss")) is not None]
    return min(scored, key=lambda r: r["loss"]) if scored else None


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def _tick(v: float) -> str:
    if v >= 1000 and float(v).is_integer():
        return f"{v / 1000:g}k"
    return f"{v:.3g}"
