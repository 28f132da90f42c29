"""Terminal charts of a run: the only module of toysup that touches plotext, so a change of chart
library touches one place.

The numbers come from engine.analysis (series, orientation, geometry); this module only
draws them. ``draw_*(plt, data, ...)`` functions take ``plt``, either the plotext module
(the CLI, through :func:`render`) or a textual-plotext widget's ``.plt`` (the TUI, which
calls ``widget.refresh()`` afterwards). They clear the figure, draw, set title, labels and
scales, and never call ``show()``; they never set the size or the theme, which belong to
the caller (the widget sizes itself).

Colours: :func:`series_style` alone decides how a series looks, for the charts and the
legends under them (render/legend.py) alike, from the :class:`Colours` the output
can show: with 256 colours or more, a thin line in a :data:`PALETTE` colour (along the
sequential :data:`SEQUENTIAL` map where the series are an ordered axis's points); with 16
(TERM=xterm), where near palette colours merge into one, a marker per series in one
of :data:`FEW_PALETTE`'s distinct colours; without colour (NO_COLOR, a pipe), a marker
per series alone. Legends are drawn inside the chart only when ``legend=True``:
plotext puts them over the top-left corner, where loss curves start, so the report
and the TUI show their own legend under each chart.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from toysup.engine.analysis.orientation import ORIENTATION_BINS, OrientationStats, hidden_dims, histogram, null_counts
from toysup.engine.analysis.series import Band
from toysup.engine.analysis.sparsification import PointRate
from toysup.engine.results import value_text

RGB = tuple[int, int, int]
# Distinguishable on dark and light terminals (Tableau 10, slightly brightened).
PALETTE: tuple[RGB, ...] = (
    (86, 156, 214), (255, 140, 40), (80, 200, 90), (240, 80, 80), (180, 130, 230),
    (200, 150, 110), (240, 130, 200), (160, 160, 160), (210, 210, 60), (60, 210, 220),
)
# The 16-colour terminal's own colours (VGA values, which rich maps back to their ANSI numbers), each a
# different one of the 16, in PALETTE's order of hues where they have one; never black, white or grey.
FEW_PALETTE: tuple[RGB, ...] = (
    (85, 85, 255), (255, 255, 85), (85, 255, 85), (255, 85, 85), (255, 85, 255),
    (85, 255, 255), (170, 85, 0), (170, 0, 170), (0, 170, 0), (0, 170, 170),
)
# The points of an ordered (numeric) sweep axis take colours along a sequential map, in axis order, so that
# neighbouring values get neighbouring colours: matplotlib's viridis between 0.2 and 0.95 (its darkest purple
# vanishes on a dark terminal), lightness rising monotonically, one colour in each of the 11 cells of the
# 256-colour palette that this path crosses (the middle of its stretch there), so that a 256-colour terminal
# (rich's downgrade) keeps up to 11 series apart as truecolor does.
SEQUENTIAL: tuple[RGB, ...] = (
    (56, 88, 140), (46, 111, 142), (36, 136, 141), (38, 167, 132), (56, 182, 119), (73, 190, 110),
    (95, 201, 97), (135, 211, 72), (170, 220, 50), (190, 223, 47), (207, 225, 44),
)
# One marker per series where colour cannot tell series apart.
MONO_MARKERS = ("•", "x", "+", "o", "*", "#", "%", "@", "=", "~")
IQR_MARKER = "⠂"  # one braille dot per cell: a faint dotted line under the solid median
TIP_MARKER = "●"  # feature-vector tips: one per feature, so tests can count them
# Colours come from values rounded to 1/COLOUR_LEVELS of their scale (see colour_level).
COLOUR_LEVELS = 64


class Colours(Enum):
    """How many colours the output shows, which decides how series are told apart (:func:`series_style`)."""

    FULL = "full"  # 256 or more: a thin line per series, told apart by colour
    FEW = "few"  # 16 (TERM=xterm): PALETTE's orange and red, or purple, brown and grey, would merge
    NONE = "none"  # NO_COLOR, a pipe, a file: markers alone


def colours_of(color_system: str | None, no_color: bool = False) -> Colours:
    """The :class:`Colours` of a rich or Textual console: its ``color_system`` ("truecolor", "256",
    "standard", "windows" or None) and whether NO_COLOR is set."""
    if no_color or not color_system:
        return Colours.NONE
    return Colours.FULL if color_system in ("truecolor", "256") else Colours.FEW


@dataclass(frozen=True)
class SeriesStyle:
    """How one series is drawn: its colour (None: the terminal's own text colour) and plotext marker
    ("braille": a thin line)."""

    colour: RGB | None
    marker: str

    @property
    def plot_colour(self) -> RGB | str:
        """The colour as plotext takes it ("default" draws in the text colour; None would pick one)."""
        return self.colour if self.colour is not None else "default"

    @property
    def swatch(self) -> str:
        """What a legend shows for the series: a short line for a line, else the series' marker."""
        return "━━" if self.marker == "braille" else self.marker


def is_ordered(values: Sequence[Any]) -> bool:
    """Whether a sweep axis's values are ordered (all numbers, more than one): its points then take
    sequential colours (:func:`series_style`'s ``ordered``)."""
    return len(values) > 1 and all(_is_number(v) for v in values)


def one_ordered_axis(axes: Sequence[Any]) -> bool:
    """Whether a run's sweep points (``spec.axes``) are the values of one ordered axis, in order: the series of
    its charts, one per point, then take sequential colours."""
    return len(axes) == 1 and is_ordered(axes[0].values)


def sequential_colour(index: int, count: int) -> RGB:
    """The colour of the ``index``-th of ``count`` ordered series: evenly along :data:`SEQUENTIAL`, ends
    included (beyond its 11 colours, neighbours share one)."""
    return SEQUENTIAL[round(index * (len(SEQUENTIAL) - 1) / (count - 1))] if count > 1 else SEQUENTIAL[0]


def series_style(index: int, colours: Colours = Colours.FULL, ordered: int = 0) -> SeriesStyle:
    """The style of series ``index``: a coloured line where colour tells series apart, else a marker of its own
    (in a colour of its own where there are 16). ``ordered``: the number of series where they are the points of
    an ordered sweep axis, in its order: with 256 colours or more they then run along the sequential map (one
    hue per category would put orange, copper and salmon on values far apart); fewer colours keep the markers."""
    if colours is Colours.FULL:
        if ordered > 1:
            return SeriesStyle(sequential_colour(index, ordered), "braille")
        return SeriesStyle(PALETTE[index % len(PALETTE)], "braille")
    colour = FEW_PALETTE[index % len(FEW_PALETTE)] if colours is Colours.FEW else None
    return SeriesStyle(colour, MONO_MARKERS[index % len(MONO_MARKERS)])


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


def draw_loss_curves(plt: Any, bands: Sequence[Band], title: str = "training loss",
                     iqr: bool = True, legend: bool = False, colours: Colours = Colours.FULL,
                     highlight: int | None = None, ordered: bool = False) -> None:
    """Median loss per sweep point on log-log axes; the IQR over seeds as two faint dotted lines, for
    ``bands[highlight]`` alone when given (seven series' IQRs are 21 lines that hide the medians).

    Steps are logged log-spaced early, so a log step axis shows the fast early
    drop and the slow late plateau alike. Where colour does not tell series apart
    (``colours`` below FULL), it cannot tell their dotted IQR lines apart either, so
    these are drawn only for a single series. ``title`` gets "(median; dotted: IQR)"
    or "(median)" appended.
    """
    plt.clear_figure()
    ys: list[float] = []
    full = colours is Colours.FULL
    iqr = iqr and (full or len(bands) == 1 or highlight is not None)
    for i, band in enumerate(bands):
        style = series_style(i, colours, len(bands) if ordered else 0)
        pts = [(s, m) for s, m in zip(band.x, band.median) if s > 0 and m > 0]
        if iqr and band.n > 1 and highlight in (None, i):
            for q in (band.q25, band.q75):
                qp = [(s, v) for s, v in zip(band.x, q) if s > 0 and v > 0]
                if qp:
                    plt.plot(*zip(*qp), marker=IQR_MARKER if full else "·", color=style.plot_colour)
        if pts:
            plt.plot(*zip(*pts), marker=style.marker, color=style.plot_colour, label=band.label if legend else None)
            ys += [p[1] for p in pts]
    steps = [s for b in bands for s in b.x if s > 0]
    if steps and ys:
        plt.xscale("log")
        plt.yscale("log")
        plt.xticks(*log_ticks(min(steps), max(steps)))
        banded = [b for i, b in enumerate(bands) if highlight in (None, i)] if iqr else []
        lo_y = min([v for b in banded for v in b.q25 if v > 0] + ys)
        hi_y = max([v for b in banded for v in b.q75 if v > 0] + ys)
        plt.yticks(*log_ticks(lo_y, hi_y))
    which = f"IQR of {bands[highlight].label}" if iqr and highlight is not None and highlight < len(bands) else "IQR"
    plt.title(f"{title} (median; dotted: {which})" if iqr else f"{title} (median)")
    plt.xlabel("step")


def draw_metric(plt: Any, bands: Sequence[Band], metric: str, x_name: str, log_x: bool = False,
                title: str | None = None, legend: bool = False, colours: Colours = Colours.FULL,
                log_y: bool = False, ordered: bool = False) -> None:
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
    full = colours is Colours.FULL
    for i, band in enumerate(bands):
        style = series_style(i, colours, len(bands) if ordered else 0)
        colour = style.plot_colour
        xs = [categories.index(v) for v in band.x] if categorical else [float(v) for v in band.x]
        for xv, lo, hi in zip(xs, band.q25, band.q75):
            if hi > lo:
                plt.plot([xv, xv], [lo, hi], marker="│" if full else "|", color=colour)
        if len(xs) > 1:
            plt.plot(xs, band.median, marker=style.marker, color=colour, label=band.label if legend else None)
        plt.scatter(xs, band.median, marker="●" if full else style.marker, color=colour)
    if categorical:
        plt.xticks(list(range(len(categories))), [value_text(c) for c in categories])
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


def draw_rate_fit(plt: Any, points: Sequence[PointRate], colours: Colours = Colours.FULL,
                  title: str = "mean 1/||W_i||_1 (median over seeds) and the fitted line (dashed)",
                  ordered: bool = False) -> None:
    """The incidental model's sparsification curves on linear axes (the paper's law is a straight
    line there), each with its fitted line over the steps the fit used."""
    plt.clear_figure()
    for i, p in enumerate(points):
        style = series_style(i, colours, len(points) if ordered else 0)
        if p.steps:
            plt.plot(p.steps, p.median, marker=style.marker, color=style.plot_colour)
        if p.fitted is not None and p.intercept is not None and p.steps:
            xs = [s for s in p.steps if p.intercept + p.fitted * s <= 1.0] or p.steps[:1]
            fit_marker = "·" if colours is Colours.FULL else "-"
            plt.plot(xs, [p.intercept + p.fitted * s for s in xs], marker=fit_marker, color=style.plot_colour)
    plt.title(title)
    plt.xlabel("step")


def draw_feature_vectors(plt: Any, vectors: Sequence[tuple[float, float]], title: str = "feature vectors",
                         aspect: float | None = None, colours: Colours = Colours.FULL) -> None:
    """Each feature's embedding W_i as a segment from the origin, a marker at its tip and its index beside it.

    ``aspect`` is the plot area's width divided by its height in character cells
    (:func:`plot_aspect` computes it from a chart size). Terminal cells are about
    twice as tall as wide, so the x range is widened to keep circles round.
    """
    plt.clear_figure()
    # The axes' extent on a grid of 1/20: the ticks (and the sign of the one at 0) then do not depend on
    # the last bits of the largest norm, which another machine's BLAS may compute differently.
    radius = math.ceil(max([math.hypot(x, y) for x, y in vectors] + [1e-3]) * 1.25 * 20) / 20
    for i, (x, y) in enumerate(vectors):  # features are told apart by their index labels; colour only helps
        plt.plot([0.0, x], [0.0, y], marker="braille", color=series_style(i, colours).plot_colour)
    for i, (x, y) in enumerate(vectors):
        color = series_style(i, colours).plot_colour
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
    import plotext  # deferred: plotext (~50 ms), only when a chart is drawn

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


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _tick(v: float) -> str:
    if v >= 1000 and float(v).is_integer():
        return f"{v / 1000:g}k"
    return f"{v:.3g}"
