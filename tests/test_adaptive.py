"""Adaptive sweeps (engine/adaptive.py): refinement as a pure function, the sweep file's [adaptive] table, and
runs whose instances are the uniform sweep's own (same seeds, same results) and that resume like any other."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from rich.console import Console

from toysup.engine.adaptive import schedule
from toysup.engine.adaptive_grid import (
    agreement,
    coarse_nodes,
    grid_labels,
    inferred,
    level,
    neighbour_edges,
    node_of,
    point_of,
    refine,
)
from toysup.engine.errors import SpecError
from toysup.engine.models import get_model
from toysup.engine.results import Results
from toysup.engine.run.folder import Run
from toysup.engine.run_format import parse_csv
from toysup.engine.runner import resume_sweep, run_sweep
from toysup.engine.spec import resolve
from toysup_tui.render.phase import phase_table

from helpers import assert_same_results, assert_user_error, folder_state, invoke, run_options

# --- refinement, a pure function ------------------------------------------------------------------


def test_refine_picks_only_the_cells_whose_corners_disagree():
    # A 5 x 5 final grid, round 0 on every other node (3 x 3): the left column "a", the rest "b".
    labels = {(r, c): ("a" if c == 0 else "b") for r in (0, 2, 4) for c in (0, 2, 4)}
    cells, new = refine(labels, (5, 5), side=2)
    assert cells == [(0, 0), (2, 0)]  # the two cells between columns 0 and 2; the cells right of them agree
    assert new == [(0, 1), (1, 0), (1, 1), (1, 2), (2, 1), (3, 0), (3, 1), (3, 2), (4, 1)]
    assert all(node not in labels for node in new)


def test_refine_needs_every_corner_and_treats_a_missing_label_as_a_label():
    labels = {(0,): 1, (4,): 1, (8,): 2}
    assert refine(labels, (9,), side=4) == ([(4,)], [(6,)])
    # a cell whose corner was never trained is not a cell yet
    assert refine({(0,): 1, (2,): 2}, (9,), side=2) == ([(0,)], [(1,)])
    # None (every seed diverged) differs from any class; 1 and True are different labels too
    assert refine({(0,): None, (2,): 0}, (3,), side=2)[1] == [(1,)]
    assert refine({(0,): 1, (2,): True}, (3,), side=2)[1] == [(1,)]
    assert refine({(0,): 3, (2,): 3}, (3,), side=2) == ([], [])


def test_a_refined_grid_fills_the_untrained_nodes_of_agreeing_cells_only():
    labels = {(r, c): ("a" if c == 0 else "b") for r in (0, 2, 4) for c in (0, 2, 4)}
    labels.update({n: "a" for n in [(0, 1), (1, 0), (2, 1), (3, 0), (3, 1)]})
    labels.update({n: "b" for n in [(1, 1), (1, 2), (3, 2), (4, 1)]})
    filled = inferred(labels, (5, 5), rounds=1)
    assert filled == {n: "b" for n in [(0, 3), (1, 3), (1, 4), (2, 3), (3, 3), (3, 4), (4, 3)]}
    # with the right-hand cells disagreeing too, nothing there is filled
    labels[(4, 4)] = "a"
    assert set(inferred(labels, (5, 5), rounds=1)) == {(0, 3), (1, 3), (1, 4), (2, 3)}


def test_agreement_counts_points_and_boundary_edges_against_an_independent_uniform_grid():
    """A 5 x 5 grid, one refinement round. The reference (a uniform grid of other seeds) has "a" in column 0 and
    "b" elsewhere, but for an isolated "a" at (4, 3) that no coarse cell flags. The refined run trained the
    coarse nodes and the left column's two cells, and its seeds put (3, 1) in "a"."""
    reference = {(r, c): "a" if c == 0 or (r, c) == (4, 3) else "b" for r in range(5) for c in range(5)}
    trained = {(r, c): reference[r, c] for r in (0, 2, 4) for c in (0, 2, 4)}
    trained.update({n: reference[n] for n in [(0, 1), (1, 0), (1, 1), (1, 2), (2, 1), (3, 0), (3, 2), (4, 1)]})
    trained[3, 1] = "a"
    got = agreement(trained, reference, (5, 5), rounds=1)
    assert (got.points, got.trained, got.filled) == (25, 18, 7)  # filled: columns 3-4 of the agreeing right cells
    assert (got.agree, got.agree_trained) == (23, 17)  # misses: (3, 1), and (4, 3) filled with "b"
    # the reference's boundary: 5 edges between columns 0 and 1, 3 around (4, 3); the refined grid changes label
    # across 4 of the first (not in row 3) and none of the three around the point it never saw
    assert (got.boundary, got.found, got.found_trained) == (8, 4, 4)
    assert len(neighbour_edges((5, 5))) == 40
    assert agreement(reference, reference, (5, 5), rounds=1).found == 8


def test_grid_labels_are_the_best_seeds_class_by_node():
    rows = [{"point": 0, "seed": 0, "loss": 0.2, "phase": 1}, {"point": 0, "seed": 1, "loss": 0.1, "phase": 2},
            {"point": 5, "seed": 0, "loss": 0.3, "phase": 0}]
    assert grid_labels(rows, (2, 3), "phase") == {(0, 0): 2, (1, 2): 0}


def test_levels_say_in_which_round_a_node_is_first_trained():
    assert [level((i,), 2) for i in range(9)] == [0, 2, 1, 2, 0, 2, 1, 2, 0]
    assert level((4, 2), 2) == 1 and level((8, 0), 2) == 0 and level((3, 4), 2) == 2
    assert coarse_nodes((5, 9), 2) == [(0, 0), (0, 4), (0, 8), (4, 0), (4, 4), (4, 8)]
    shape = (5, 9)
    assert all(point_of(node_of(p, shape), shape) == p for p in range(45))
    assert node_of(10, shape) == (1, 1)  # the spec's points run with the last axis fastest


# --- the sweep file --------------------------------------------------------------------------------

BASE = {"name": "adaptive", "model": "relu_output_phase",
        "params": {"steps": 300, "batch_size": 64, "eval_batch_size": 512, "seeds": 2, "seed_mode": "independent"},
        "sweep": {"feature_probability": "log:1:0.1:9", "importance_decay": "log:0.1:10:9"}}


def spec_with(adaptive: dict | None, **sweep: str):
    data = {**BASE, "sweep": {**BASE["sweep"], **sweep}}
    if adaptive is not None:
        data["adaptive"] = adaptive
    return resolve(data)


@pytest.mark.parametrize("adaptive, message", [
    ({"classify": "phase", "rounds": 2, "extra": 1}, "unknown key 'extra' in [adaptive]"),
    ({"classify": "loss", "rounds": 2}, "classify = 'loss' is not an int or bool column"),
    ({"rounds": 2}, "classify = None"),
    ({"classify": "phase", "rounds": 0}, "rounds = 0 must be an integer from 1 to 10"),
    ({"classify": "phase", "rounds": 2.0}, "rounds = 2.0 must be an integer"),
    ({"classify": "phase", "rounds": 4}, "needs every swept axis to have k * 16 + 1 values (17, 33, 49, ...)"),
    ({"classify": "phase", "rounds": 2, "budget": 10}, "budget = 10 is below the coarse grid's 18 instances"),
    ({"classify": "phase", "rounds": 2, "budget": -1}, "budget = -1 must be a positive integer"),
    ("phase", "[adaptive] must be a table"),
])
def test_the_adaptive_table_is_checked_with_one_clear_line(adaptive, message):
    with pytest.raises(SpecError, match=re.escape(message)):
        spec_with(adaptive)


def test_an_axis_that_does_not_nest_is_refused():
    with pytest.raises(SpecError, match="importance_decay has 7"):
        spec_with({"classify": "phase", "rounds": 2}, importance_decay="log:0.1:10:7")


def test_the_adaptive_table_round_trips_through_config_toml():
    import tomllib

    spec = spec_with({"classify": "features_represented", "rounds": 3, "budget": 500},
                     feature_probability="log:1:0.1:9", importance_decay="log:0.1:10:17")
    again = resolve(tomllib.loads(spec.to_toml()))
    assert again == spec and again.adaptive.budget == 500 and again.adaptive.classify == "features_represented"


def test_a_bad_adaptive_table_is_one_line_on_the_command_line_and_writes_nothing(tmp_path: Path):
    preset = tmp_path / "bad.toml"
    preset.write_text('model = "relu_output_phase"\n[sweep]\nimportance_decay = "log:0.1:10:6"\n'
                      '[adaptive]\nclassify = "phase"\nrounds = 1\n')
    result = invoke("run", preset, "--runs-dir", tmp_path / "runs", "--device", "cpu")
    assert_user_error(result.exit_code, result.stderr, result.stdout, "importance_decay has 6")
    assert folder_state(tmp_path / "runs") is None


def test_the_schedule_stops_at_the_budget_or_when_no_cell_disagrees():
    """Rounds from hand-made rows: round 0 complete and all one class stops ("converged"); one corner
    different starts round 1 unless the budget forbids it; a round with a missing seed is not complete."""
    spec = spec_with({"classify": "phase", "rounds": 2})  # 9 x 9, coarse 3 x 3, 2 seeds
    shape = (9, 9)
    coarse = [point_of(n, shape) for n in coarse_nodes(shape, 2)]

    def rows(phases: dict[int, int], seeds: int = 2) -> list[dict]:
        return [{"instance": p * 2 + s, "point": p, "seed": s, "loss": 0.1 + s, "phase": ph}
                for p, ph in phases.items() for s in range(seeds)]

    same = schedule(spec, rows(dict.fromkeys(coarse, 1)))
    assert (same.complete, same.finished, same.stop, len(same.rounds)) == (True, True, "converged", 1)
    one_off = {**dict.fromkeys(coarse, 1), point_of((0, 0), shape): 2}
    grown = schedule(spec, rows(one_off))
    assert (grown.complete, grown.finished, len(grown.rounds)) == (False, False, 2)
    assert grown.rounds[1].cells == 1 and len(grown.rounds[1].points) == 5  # the one cell's 3 x 3 less its corners
    assert len(grown.instances(spec)) == 2 * (9 + 5)
    capped = schedule(spec_with({"classify": "phase", "rounds": 2, "budget": 20}), rows(one_off))
    assert (capped.finished, capped.stop, len(capped.rounds)) == (True, "budget", 1)
    partial = schedule(spec, rows(one_off, seeds=1))
    assert (partial.complete, len(partial.rounds)) == (False, 1)


# --- runs --------------------------------------------------------------------------------------

ADAPTIVE = {"classify": "phase", "rounds": 2}
CHUNK = 8 * get_model("relu_output_phase").bytes_per_instance(spec_with(None).instances()[0].config)


def rows_of(run_dir: Path) -> dict[int, dict]:
    return {r["instance"]: r for r in parse_csv((run_dir / "results.csv").read_text(), "results.csv")[1]}


def lines_of(run_dir: Path, table: str, instances: set[int]) -> list[str]:
    lines = (run_dir / f"{table}.csv").read_text().splitlines()
    return sorted(line for line in lines[1:] if int(line.split(",", 1)[0]) in instances)


def test_an_adaptive_sweep_trains_the_uniform_sweeps_instances_at_a_fraction_of_them(tmp_path: Path):
    uniform = run_sweep(spec_with(None), tmp_path / "uniform", run_options(max_memory_bytes=CHUNK))
    spec = spec_with(ADAPTIVE)
    adaptive = run_sweep(spec, tmp_path / "adaptive", run_options(max_memory_bytes=CHUNK))
    assert uniform.status == adaptive.status == "completed"
    full, some = rows_of(uniform.run_dir), rows_of(adaptive.run_dir)
    assert 18 < len(some) < len(full) == 162  # more than the coarse grid, less than the final one
    assert all(some[i] == full[i] for i in some)  # same point, seed and results, digit for digit
    for table in ("curves", "features"):
        assert lines_of(adaptive.run_dir, table, set(some)) == lines_of(uniform.run_dir, table, set(some))
    # every round is in the same run, and run.json says what each one trained
    reached = schedule(spec, list(some.values()))
    assert reached.finished and reached.stop in ("resolution", "converged")
    info = json.loads((adaptive.run_dir / "run.json").read_text())
    assert [r["instances"] for r in info["adaptive_rounds"]] == [2 * len(r.points) for r in reached.rounds]
    assert info["instances"] == info["instances_done"] == len(some)
    assert Run(adaptive.run_dir).status() == "completed"  # not "damaged" for holding fewer rows than the grid
    # the points each round added are where the coarser labels disagreed: a refined cell's corners differ
    shape = (9, 9)
    labels = {node_of(p, shape): min((r for r in some.values() if r["point"] == p), key=lambda r: r["loss"])["phase"]
              for p in reached.rounds[0].points}
    cells, new = refine(labels, shape, side=4)
    assert cells
    assert sorted(point_of(n, shape) for n in new) == list(reached.rounds[1].points)
    # the report draws the refined grid: trained points in capitals, the agreeing cells' points in lower case
    drawn = Console(width=200, file=io.StringIO(), color_system=None)
    drawn.print(phase_table(Results.open(Run(adaptive.run_dir))))
    text = drawn.file.getvalue()
    lines = text.splitlines()
    start = lines.index("feature_probability \\ importance_decay") + 2  # the corner, then the column labels
    grid_lines = lines[start::2][:9]  # the 9 rows, each followed by a line for the boundaries
    letters = [ch for line in grid_lines for ch in line.split(maxsplit=1)[1] if ch in "NSDnsd·"]
    assert len(letters) == 81 and sum(ch.isupper() for ch in letters) == len(some) // 2
    assert "capitals were trained" in text


def test_an_adaptive_sweep_resumes_to_the_uninterrupted_runs_results(tmp_path: Path):
    spec = spec_with(ADAPTIVE)
    whole = run_sweep(spec, tmp_path / "whole", run_options(max_memory_bytes=CHUNK))
    rounds_seen: list[int] = []
    stored: list[int] = []

    def sink(event) -> None:
        if type(event).__name__ == "RoundStarted":
            rounds_seen.append(event.round)
        if type(event).__name__ == "ChunkFinished" and rounds_seen:
            stored.append(event.chunk)

    cut = run_sweep(spec, tmp_path / "cut", run_options(max_memory_bytes=CHUNK), emit=sink,
                    should_stop=lambda: bool(stored))  # stop inside round 1, after its first chunk
    assert cut.status == "interrupted" and rounds_seen == [1]
    partial = len(rows_of(cut.run_dir))
    assert 18 < partial < len(rows_of(whole.run_dir))
    done = resume_sweep(cut.run_dir, run_options(max_memory_bytes=CHUNK))
    assert done.status == "completed"
    assert_same_results(whole.run_dir, cut.run_dir)


def test_dry_run_says_what_round_0_trains_and_that_the_total_is_a_bound():
    # tms-phase-adaptive: a 17 x 17 final grid, 2 rounds, so round 0 is every 4th node: 5 x 5 points.
    result = invoke("run", "tms-phase-adaptive", "--dry-run")
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())  # the lines wrap at the console's width
    assert "= at most 1734 instances" in text
    assert "round 0 trains 25 of the 289 points (150 instances)" in text
    data = json.loads(invoke("run", "tms-phase-adaptive", "--dry-run", "--json").stdout)
    assert data["adaptive"] == {"classify": "phase", "rounds": 2, "round0_points": 25, "round0_instances": 150}
