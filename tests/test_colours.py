"""Series told apart without 256 colours: at 16 colours (TERM=xterm) and with NO_COLOR, every chart's series
carry a marker of their own, and each legend swatch is drawn as its line is (same marker, same colour).

Captured as a terminal receives them: the CLI report from a rich console made under the environment, the TUI
from the app's own screen rendered with the app's colour system. The environment is set with monkeypatch, so
it does not leak into other tests (conftest gives every test a truecolor terminal without NO_COLOR).
"""

from __future__ import annotations

import asyncio
import io
import itertools
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from rich.color import Color, ColorSystem
from rich.console import Console
from rich.text import Text
from test_tui_snapshots import open_results, show_live_run
from textual.pilot import Pilot
from textual.widget import Widget

from toysup.engine.analysis.series import Band
from toysup.engine.run.folder import Run
from toysup_tui.app import ToysupApp
from toysup_tui.render import charts
from toysup_tui.render.legend import legend_text
from toysup_tui.report import print_report
from toysup_tui.screens.compare import CompareScreen
from toysup_tui.widgets.chart import Chart, app_colours

from helpers import FIXTURE_ID, make_fixture_run

Cell = tuple[str, Color | None]
FRAME = "│┤├"
MODES = ["no_color", "16_colours", "full"]
FEW_MODES = MODES[:2]


def set_terminal(monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    """The environment of a terminal with NO_COLOR, of TERM=xterm (16 colours), or of a truecolor one."""
    if mode == "no_color":
        monkeypatch.setenv("NO_COLOR", "1")
    elif mode == "16_colours":
        monkeypatch.delenv("COLORTERM", raising=False)
        monkeypatch.setenv("TERM", "xterm")


def cells(ansi: str) -> list[list[Cell]]:
    """Terminal output as rows of (character, foreground colour); a cursor move (a Textual screen) starts a row."""
    measure = Console()
    rows = []
    for line in re.split(r"\n?\x1b\[\d+;\d+H|\n", ansi):
        text = Text.from_ansi(line)
        rows.append([(ch, text.get_style_at_offset(measure, i).color) for i, ch in enumerate(text.plain)])
    return rows


def plot_area(rows: list[list[Cell]]) -> list[Cell]:
    """The cells inside charts' frames: between the first and last frame character of a row (tick labels,
    titles and axis names are outside)."""
    inside = []
    for row in rows:
        edges = [i for i, (ch, _) in enumerate(row) if ch in FRAME]
        if len(edges) >= 2:
            inside += row[edges[0] + 1:edges[-1]]
    return inside


def legend_swatches(row: list[Cell], labels: list[str]) -> list[Cell]:
    """The swatch cell before each label of a legend row (``swatch label  ``), in the labels' order."""
    line = "".join(ch for ch, _ in row)
    swatches, start = [], 0
    for label in labels:
        at = line.index(f" {label}  ", start)
        swatches.append(row[at - 1])
        start = at + len(label)
    return swatches


def assert_told_apart(swatches: list[Cell], plot: list[Cell], mode: str) -> None:
    """Each series' swatch occurs in the plot with its colour; below 256 colours each has its own marker."""
    for swatch in swatches:
        mark, colour = swatch
        if mode == "full":  # a line: its braille cells in the swatch's colour
            assert mark == "━" and any(0x2800 < ord(ch) <= 0x28FF and c == colour for ch, c in plot), swatch
        else:
            assert sum(cell == swatch for cell in plot) >= 3, (swatch, "not drawn in the plot")
    if mode == "full":
        assert len({c for _, c in swatches}) == len(swatches)  # told apart by colour
    else:
        assert len({m for m, _ in swatches}) == len(swatches)  # told apart by marker
        assert not any(m == "━" for m, _ in swatches)
    if mode == "16_colours":  # and by colour where there are enough
        assert len({c for _, c in swatches}) == len(swatches)
        assert all(c is not None and c.system == ColorSystem.STANDARD for _, c in swatches)
    if mode == "no_color":
        assert len({c for _, c in swatches}) == 1  # one grey, or none: only markers tell them apart


# --- the one place that decides ----------------------------------------------------------------------


def test_series_styles_per_colour_depth() -> None:
    n = len(charts.PALETTE)
    full = [charts.series_style(i, charts.Colours.FULL) for i in range(n)]
    assert [(s.colour, s.marker, s.swatch) for s in full] == [(c, "braille", "━━") for c in charts.PALETTE]
    for colours in (charts.Colours.FEW, charts.Colours.NONE):
        styles = [charts.series_style(i, colours) for i in range(n)]
        assert len({s.marker for s in styles}) == n and all(s.swatch == s.marker != "braille" for s in styles)
    assert {charts.series_style(i, charts.Colours.NONE).plot_colour for i in range(n)} == {"default"}
    # 16 colours: each series a different one of the terminal's 16 (the 256-colour palette merges some)
    standard = {Color.from_rgb(*c).downgrade(ColorSystem.STANDARD).number for c in charts.FEW_PALETTE}
    assert len(standard) == len(charts.FEW_PALETTE) == n and not standard & {0, 7, 8, 15}  # no black/white/grey
    merged = {Color.from_rgb(*c).downgrade(ColorSystem.STANDARD).number for c in charts.PALETTE}
    assert len(merged) < n


def luminance(colour: tuple[int, int, int]) -> float:
    r, g, b = colour
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


@pytest.mark.parametrize("n", [2, 3, 7, 11])
def test_ordered_series_run_along_the_sequential_map(n: int) -> None:
    """The points of an ordered axis: lightness rises with the axis order, from the map's first colour to its
    last, each series its own colour in truecolor and in 256 colours; at 16 colours and without colour they
    keep their own markers."""
    styles = [charts.series_style(i, charts.Colours.FULL, ordered=n) for i in range(n)]
    colours = [s.colour for s in styles]
    assert colours[0] == charts.SEQUENTIAL[0] and colours[-1] == charts.SEQUENTIAL[-1]
    assert all(c is not None for c in colours) and all(s.marker == "braille" for s in styles)
    lights = [luminance(c) for c in colours if c is not None]
    assert all(a < b for a, b in itertools.pairwise(lights)), lights
    assert len({Color.from_rgb(*c).downgrade(ColorSystem.EIGHT_BIT).number for c in colours if c}) == n
    for few in (charts.Colours.FEW, charts.Colours.NONE):
        assert [charts.series_style(i, few, ordered=n) for i in range(n)] == [charts.series_style(i, few)
                                                                            for i in range(n)]
    assert charts.is_ordered([1.0, 0.1, 0.01]) and not charts.is_ordered(["adam", "sgd"])
    assert not charts.is_ordered([True, False]) and not charts.is_ordered([0.5])


def test_report_colours_an_ordered_axis_along_the_map_at_truecolor(tmp_path: Path) -> None:
    """The bytes a truecolor terminal receives: the loss chart's three feature_probability series (1, 0.1,
    0.01, an ordered axis) and their legend swatches take the map's first, middle and last colours, darker to
    lighter in axis order, each drawn in the plot."""
    run = make_fixture_run(tmp_path / "runs")
    console = Console(file=io.StringIO(), force_terminal=True, color_system="truecolor", width=100)
    print_report(console, run)
    rows = cells(console.file.getvalue())
    lines = ["".join(ch for ch, _ in r) for r in rows]
    start = next(i for i, x in enumerate(lines) if "training loss (median" in x)
    end = next(i for i, x in enumerate(lines) if i > start and x.startswith("feature_probability:"))
    swatches = legend_swatches(rows[end], ["1", "0.1", "0.01"])
    seq = charts.SEQUENTIAL
    expected = [seq[0], seq[len(seq) // 2], seq[-1]]
    assert [c.get_truecolor() if c else None for _, c in swatches] == expected
    assert_told_apart(swatches, plot_area(rows[start:end]), "full")


def test_colours_of_a_console() -> None:
    assert charts.colours_of("truecolor") is charts.colours_of("256") is charts.Colours.FULL
    assert charts.colours_of("standard") is charts.colours_of("windows") is charts.Colours.FEW
    assert charts.colours_of(None) is charts.colours_of("truecolor", no_color=True) is charts.Colours.NONE


@pytest.mark.parametrize("colours", [charts.Colours.NONE, charts.Colours.FEW])
def test_a_metric_chart_of_three_series_tells_them_apart_by_marker(colours: charts.Colours) -> None:
    bands = [Band(f"s{k}", [1.0, 2.0, 3.0, 4.0], [k + 0.1 * j for j in range(4)], [k - 0.2 + 0.1 * j for j in range(4)],
                  [k + 0.2 + 0.1 * j for j in range(4)], n=3) for k in range(3)]
    color = colours is charts.Colours.FEW
    console = Console(file=io.StringIO(), force_terminal=True, color_system="standard" if color else None, width=80)
    console.print(Text.from_ansi(charts.render(charts.draw_metric, bands, "m", "x", width=60, height=16,
                                               color=color, colours=colours)))
    console.print(legend_text([b.label for b in bands], "series", colours))
    rows = cells(console.file.getvalue())
    legend = next(r for r in rows if "".join(ch for ch, _ in r).startswith("series:"))
    swatches = legend_swatches(legend, [b.label for b in bands])
    assert_told_apart(swatches, plot_area(rows), "16_colours" if color else "no_color")
    for mark, _ in swatches:
        assert sum(ch == mark for ch, _ in plot_area(rows)) >= 4  # a marker per point, at least


# --- the CLI report ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_report_loss_chart_tells_series_apart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    run = make_fixture_run(tmp_path / "runs")
    set_terminal(monkeypatch, mode)
    console = Console(file=io.StringIO(), force_terminal=True, width=100)  # decides from the environment
    assert charts.colours_of(console.color_system, console.no_color).value == {
        "no_color": "none", "16_colours": "few", "full": "full"}[mode]
    print_report(console, run)
    rows = cells(console.file.getvalue())
    lines = ["".join(ch for ch, _ in r) for r in rows]
    start = next(i for i, x in enumerate(lines) if "training loss (median" in x)
    end = next(i for i, x in enumerate(lines) if i > start and x.startswith("feature_probability:"))
    labels = ["1", "0.1", "0.01"]
    swatches = legend_swatches(rows[end], labels)
    assert_told_apart(swatches, plot_area(rows[start:end]), mode)
    if mode == "no_color":  # rich drops colours altogether
        assert {c for _, c in swatches} == {None}


# --- the TUI ------------------------------------------------------------------------------------------


def screen_cells(app: ToysupApp, widget: Widget) -> list[list[Cell]]:
    """The rows of ``widget`` as the app's terminal receives them (its colour system; NO_COLOR's greys)."""
    console = Console(file=io.StringIO(), force_terminal=True, color_system=app.console.color_system,
                      width=app.size.width, height=app.size.height)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    rows = cells(console.file.getvalue())[1:]  # the text before the first cursor move
    region = widget.region
    return [row[region.x:region.right] for row in rows[region.y:region.bottom]]


async def settle(pilot: Pilot) -> None:
    """Every chart built (they build in a thread)."""
    await pilot.pause(0.3)
    for _ in range(200):
        if not any(chart.busy or not chart.text for chart in pilot.app.screen.query(Chart)):
            break
        await pilot.pause(0.05)
    await pilot.pause()


async def open_compare(pilot: Pilot) -> None:
    await pilot.app.push_screen(CompareScreen(Run(Path("runs") / FIXTURE_ID), Run(Path("runs") / "second")))


async def open_loss_tab(pilot: Pilot) -> None:
    await open_results(pilot)
    await pilot.press("5")


SCREENS: dict[str, tuple[Callable[[Pilot], Awaitable[None]], str, str, list[str]]] = {
    "loss tab": (open_loss_tab, "#loss-chart", "#loss-legend", ["1", "0.1", "0.01"]),
    "live view": (show_live_run, "#live-chart", "#live-legend", ["1", "0.1", "0.01"]),
    "compare": (open_compare, "#compare-chart", "#compare-legend", [FIXTURE_ID, "second"]),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("screen", list(SCREENS))
def test_tui_charts_tell_series_apart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str,
                                      screen: str) -> None:
    monkeypatch.chdir(tmp_path)
    make_fixture_run(Path("runs"))
    second = make_fixture_run(Path("runs"), "second")
    columns, rows = second.results()
    second.write_results(columns, [{**r, "loss": 2 * r["loss"]} for r in rows])  # not hidden under the first
    set_terminal(monkeypatch, mode)
    app = ToysupApp(Path("runs"), presets_dir=Path("presets"), device="cpu")
    open_screen, chart_id, legend_id, labels = SCREENS[screen]

    async def capture() -> tuple[list[list[Cell]], list[list[Cell]]]:
        async with app.run_test(size=(100, 30)) as pilot:
            assert app_colours(app).value == {"no_color": "none", "16_colours": "few", "full": "full"}[mode]
            await open_screen(pilot)
            await settle(pilot)
            chart, legend = app.screen.query_one(chart_id), app.screen.query_one(legend_id)
            return screen_cells(app, chart), screen_cells(app, legend)

    chart_rows, legend_rows = asyncio.run(capture())
    swatches = legend_swatches(legend_rows[0], labels)
    assert_told_apart(swatches, plot_area(chart_rows), mode)
