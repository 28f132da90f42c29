"""`toysup compare` and the TUI's compare screen: the config diff (only what differs), the medians side by side
per point, overlaid charts; two tiny runs that differ in one parameter."""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

import pytest
from tui_helpers import make_app, rendered, run_async, wait_for

from toysup.engine import comparison
from toysup.engine.results import Results
from toysup.engine.run.folder import Run
from toysup_tui.screens.compare import CompareScreen

from helpers import TINY_PRESET, assert_user_error, invoke


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """The runs directory, a tiny run at lr 3e-3 (the preset's) and one at lr 1e-2."""
    root = tmp_path_factory.mktemp("compare") / "runs"
    made = []
    for extra in ([], ["-s", "lr=0.01"]):
        result = invoke("run", TINY_PRESET, "--runs-dir", root, "--device", "cpu", "--quiet", *extra)
        assert result.exit_code == 0, result.stderr
        made.append(Path(result.stdout.strip()))
    return root, made[0], made[1]


def medians(run_dir: Path, metric: str) -> dict[str, float]:
    """A metric's median over seeds per feature_probability, straight from results.csv."""
    with open(run_dir / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    by: dict[str, list[float]] = {}
    for row in rows:
        by.setdefault(row["feature_probability"], []).append(float(row[metric]))
    return {p: statistics.median(v) for p, v in by.items()}


def test_compare_json_has_only_the_differing_parameter_and_each_runs_medians(two_runs: tuple[Path, Path, Path]
                                                                            ) -> None:
    root, a, b = two_runs
    result = invoke("compare", a.name, b.name, "--runs-dir", root, "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["runs"] == [a.name, b.name]
    assert data["config_diff"] == {"lr": [0.003, 0.01]}
    assert [p["point"] for p in data["points"]] == [{"feature_probability": 1.0}, {"feature_probability": 0.1}]
    for metric in ("loss", "features_per_dim"):
        want = [medians(a, metric), medians(b, metric)]
        for point in data["points"]:
            key = f"{point['point']['feature_probability']:g}"
            got = point["median"][metric]
            assert got == pytest.approx([want[0][key], want[1][key]], rel=1e-6)
        assert data["points"][0]["seeds"] == [2, 2]


def test_compare_prints_the_diff_the_table_and_overlaid_charts(two_runs: tuple[Path, Path, Path]) -> None:
    _, a, b = two_runs
    result = invoke("compare", a, b, env={"COLUMNS": "140", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    diff = text[:text.index("median over seeds per point")]
    assert "config: only what differs" in diff and "│ lr " in diff and "0.003" in diff and "0.01" in diff
    assert "n_features" not in diff and "steps" not in diff
    assert "feature_probability=0.1" in text
    assert "loss: median over seeds" in text  # an overlaid chart
    assert text.splitlines()[-1].startswith("runs:") and a.name in text.splitlines()[-1]  # the legend


def test_runs_with_different_axes_match_points_by_value(two_runs: tuple[Path, Path, Path], tmp_path: Path) -> None:
    a = two_runs[1]
    single = invoke("run", TINY_PRESET, "--runs-dir", tmp_path, "--device", "cpu", "--quiet",
                    "-s", "feature_probability=0.1")
    assert single.exit_code == 0, single.stderr
    results = [Results.open(Run(a)), Results.open(Run(Path(single.stdout.strip())))]
    assert comparison.config_diff([r.spec for r in results]) == {"feature_probability": ["sweep 1,0.1", 0.1]}
    rows = comparison.side_by_side(results, ["loss"])
    assert [r.values for r in rows] == [{"feature_probability": 1.0}, {"feature_probability": 0.1}, {}]
    assert rows[0].medians["loss"][1] is None and rows[2].medians["loss"][0] is None
    assert comparison.shared_axes(results) == []


@pytest.mark.parametrize(("args", "fragments"), [
    (["{a}"], ["at least two runs"]),
    (["{a}", "{a}"], ["is named twice"]),
    (["{a}", "{b}", "--x", "lr"], ["--x 'lr' is not swept by every run", "feature_probability"]),
    (["{a}", "nothing-like-it"], ["nothing-like-it"]),
])
def test_compare_mistakes_are_one_line(two_runs: tuple[Path, Path, Path], args: list[str],
                                       fragments: list[str]) -> None:
    root, a, b = two_runs
    result = invoke("compare", *[x.format(a=a.name, b=b.name) for x in args], "--runs-dir", root)
    assert_user_error(result.exit_code, result.stderr, result.stdout, *fragments)


@run_async
async def test_the_compare_screen_shows_the_same_config_diff(two_runs: tuple[Path, Path, Path],
                                                             tui_dirs: tuple[Path, Path]) -> None:
    root, a, b = two_runs
    app = make_app((root, tui_dirs[1]))
    async with app.run_test(size=(120, 30)) as pilot:
        await app.push_screen(CompareScreen(Run(a), Run(b)))
        await wait_for(pilot, lambda: bool(app.screen.shared_axes))
        screen = app.screen
        diff = rendered(screen.query_one("#compare-diff"))
        assert "lr" in diff and "0.003" in diff and "0.01" in diff and "n_features" not in diff
        assert a.name in diff and b.name in diff
        assert screen.metrics[0] == "loss"
