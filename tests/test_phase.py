"""The phase diagrams (n=2, m=1 and n=3, m=2): classification (engine/analysis/phase.py), seed selection, the
grid, the paper's theoretical phases and their boundaries drawn over the grid, and the relu_output_phase model
reproducing the paper's three regions (Elhage et al. 2022, "Superposition as a Phase Change")."""

from __future__ import annotations

import io
import json
import math

import pytest
import torch
from rich.console import Console

from toysup.engine.analysis.phase import PHASES, majority_phase, phase_grid, phase_name
from toysup.engine.analysis.phase_theory import candidate_losses, theoretical_phase, theory_misses
from toysup.engine.analysis.selection import best_of_k, drop_worst
from toysup.engine.errors import SpecError
from toysup.engine.models.relu_output_phase import classify_phase
from toysup.engine.results import Results
from toysup.engine.run.folder import Run
from toysup.engine.run.layout import read_csv
from toysup.engine.runner import run_sweep
from toysup.engine.spec import load
from toysup_tui.render.phase import PHASE_COLORS, draw_grid, phase_grid_table, phase_table, theory_boundaries
from toysup_tui.report import print_report

from helpers import assert_user_error, invoke, make_spec, run_options, train_all

NOT_LEARNED, SUPERPOSED, DEDICATED = range(3)


# --- classification on hand-built weights ---------------------------------------------------------


@pytest.mark.parametrize("w0, w1, phase", [
    (1.0, 0.0, NOT_LEARNED),  # the paper's W = [1, 0]: the extra feature thrown away
    (1.0, 0.15, NOT_LEARNED),  # a small embedding is not a represented feature (below 0.2 of the largest norm)
    (0.0, 0.0, NOT_LEARNED),
    (1.0, -1.0, SUPERPOSED),  # W = [1, -1]: antipodal
    (-0.8, 1.1, SUPERPOSED),
    (0.9, 0.9, SUPERPOSED),  # same sign still shares the one dimension (the "confused" solution)
    (0.0, 1.0, DEDICATED),  # W = [0, 1]: the first feature dropped, the extra one owns the dimension
    (0.1, -1.0, DEDICATED),
])
def test_classify_two_features_in_one_dimension(w0, w1, phase):
    W = torch.tensor([[[w0], [w1]]])
    assert classify_phase(W).tolist() == [phase]


def test_classify_takes_the_models_represented_mask():
    # W = [1, 0.3]: norm-wise the extra feature passes (0.3 of the largest), but the model's rule (its
    # ablation barely moves the loss) says it is not represented: not learned.
    W = torch.tensor([[[1.0], [0.3]]])
    assert classify_phase(W).tolist() == [SUPERPOSED]
    assert classify_phase(W, represented=torch.tensor([[True, False]])).tolist() == [NOT_LEARNED]


def phase_model(p: float, importance: float, n: int = 2):
    from toysup.engine.models import Hyper, get_model
    from toysup.engine.rng import CounterRNG

    spec = make_spec({"n_features": n, "n_hidden": n - 1, "feature_probability": p, "importance_decay": importance},
                     model="relu_output_phase")
    return get_model("relu_output_phase")(Hyper([i.config for i in spec.instances()], torch.device("cpu")),
                                          CounterRNG(torch.tensor([0]), "cpu"))


def test_the_phase_model_decides_represented_by_the_loss():
    """relu_output_phase passes its loss-based mask: an extra feature whose output the bias holds off
    is not learned, whatever its norm; the antipodal pair is superposed where it pays (sparse data)
    and not where it costs the first feature more than it gains (dense data)."""
    held_off = {"W": torch.tensor([[[1.0], [0.3]]]), "b": torch.tensor([[0.0, -5.0]])}
    got = phase_model(1.0, 0.1).metrics(held_off)
    assert got["phase"].tolist() == [NOT_LEARNED] and got["features_represented"].tolist() == [1]
    antipodal = {"W": torch.tensor([[[1.0], [-1.0]]]), "b": torch.tensor([[0.0, 0.0]])}
    got = phase_model(0.05, 1.0).metrics(antipodal)
    assert got["phase"].tolist() == [SUPERPOSED] and got["antipodal"].tolist() == [True]
    assert phase_model(1.0, 0.1).metrics(antipodal)["phase"].tolist() == [NOT_LEARNED]


def test_sparse_seeds_are_selected_by_the_estimated_loss_and_the_known_winner_is_classified_right():
    """Three hand-built 3-in-2 seeds at density 0.01, extra importance 3, where the theory's winner is
    "features 0 and 1 antipodal, the extra one alone" (summed loss (1+1)p^2/6) over "the extra feature antipodal
    with feature 0" ((1+3)p^2/6). Only co-active pairs cost anything: about 0.4 of 4,096 samples, so a single
    evaluation batch ranks these seeds by chance. The model's loss estimate must find the closed forms (toysup's
    loss is the mean over the 3 features) and both selections the dedicated seed."""
    p, r = 0.01, 3.0
    dedicated = [[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]]
    paired = [[0.0, 1.0], [1.0, 0.0], [0.0, -1.0]]
    W = torch.tensor([paired, dedicated, paired])
    weights = {"W": W, "b": torch.zeros(3, 3)}
    model = phase_model_seeds(p, r, n=3, seeds=3)
    loss = model.eval_loss(weights)
    expected = torch.tensor([(1 + r) * p * p / 6, 2 * p * p / 6, (1 + r) * p * p / 6]) / 3
    got = model.metrics(weights)
    se = got["loss_se"]
    assert ((loss - expected).abs() <= 4 * se + 1e-3 * expected).all(), (loss, expected, se)  # within its error
    assert (se < 0.05 * expected).all()  # and that error is small enough to rank the seeds
    assert got["phase"].tolist() == [SUPERPOSED, DEDICATED, SUPERPOSED]
    spec = make_spec({"n_features": 3, "n_hidden": 2, "seeds": 3}, sweep={"feature_probability": [p],
                     "importance_decay": [r]}, model="relu_output_phase")
    rows = [{"instance": i, "seed": i, "point": 0, "loss": float(loss[i]), "phase": int(got["phase"][i])}
            for i in range(3)]
    results = Results(spec, list(rows[0]), rows)
    for selection in ("best", "majority"):  # the majority: 1 of 2 kept seeds each, a tie to the lower loss
        grid = phase_grid(results, x_axis="importance_decay", y_axis="feature_probability", selection=selection)
        assert grid.cells[0][0].phase == "dedicated" == theoretical_phase(r, p, 3), selection


def phase_model_seeds(p: float, importance: float, n: int, seeds: int):
    from toysup.engine.models import Hyper, get_model
    from toysup.engine.rng import CounterRNG

    spec = make_spec({"n_features": n, "n_hidden": n - 1, "feature_probability": p, "importance_decay": importance,
                      "seeds": seeds}, model="relu_output_phase")
    return get_model("relu_output_phase")(Hyper([i.config for i in spec.instances()], torch.device("cpu")),
                                          CounterRNG(torch.arange(seeds), "cpu"))


def test_classify_is_batched_and_takes_the_extra_feature_index():
    W = torch.tensor([[[1.0], [0.0]], [[1.0], [-1.0]], [[0.0], [1.0]]])
    assert classify_phase(W).tolist() == [NOT_LEARNED, SUPERPOSED, DEDICATED]
    assert classify_phase(W, extra=0).tolist() == [DEDICATED, SUPERPOSED, NOT_LEARNED]


def test_the_extra_feature_is_the_last_with_importance_r_and_the_others_have_importance_1():
    assert phase_model(0.1, 4.0, n=3).importance.squeeze(1).tolist() == [[1.0, 1.0, 4.0]]
    assert phase_model(0.1, 4.0, n=2).importance.squeeze(1).tolist() == [[1.0, 4.0]]  # relu_output's decay**i


def test_the_phase_model_classifies_three_features_in_two_dimensions():
    """Hand-built 3-in-2 solutions through the model's own (loss-based) represented rule, at a density where
    superposition pays: the extra feature antipodal with feature 1 (feature 0 on its own axis) is superposed,
    the extra feature on its own axis beside the antipodal pair 0/1 is dedicated, and an extra feature whose
    output the bias holds off is not learned."""
    paired = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [0.0, -1.0]]])
    dedicated = torch.tensor([[[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]]])
    zero_bias = torch.zeros(1, 3)
    model = phase_model(0.05, 1.0, n=3)
    got = model.metrics({"W": paired, "b": zero_bias})
    assert got["phase"].tolist() == [SUPERPOSED] and got["antipodal"].tolist() == [True]
    assert got["features_represented"].tolist() == [3] and got["extra_norm"].tolist() == [1.0]
    got = phase_model(0.05, 1.0, n=3).metrics({"W": dedicated, "b": zero_bias})
    assert got["phase"].tolist() == [DEDICATED] and got["antipodal"].tolist() == [False]
    held_off = {"W": torch.tensor([[[1.0, 0.0], [0.0, 1.0], [0.0, 0.3]]]), "b": torch.tensor([[0.0, 0.0, -5.0]])}
    got = phase_model(0.05, 1.0, n=3).metrics(held_off)
    assert got["phase"].tolist() == [NOT_LEARNED] and got["features_represented"].tolist() == [2]


def test_classify_three_features_in_two_dimensions():
    # The paper's 3-in-2 solutions: W ⊥ [1, 1, 0] gives the extra feature a dedicated dimension;
    # W ⊥ [0, 1, 1] puts it in an antipodal pair with feature 1.
    dedicated = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]])
    paired = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    assert classify_phase(torch.stack([dedicated, paired])).tolist() == [DEDICATED, SUPERPOSED]


def test_phase_names_round_trip_from_csv_values():
    assert [phase_name(i) for i in range(3)] == list(PHASES)
    assert phase_name(2.0) == "dedicated" and phase_name("superposed") == "superposed"
    for bad in (3, 1.5, "liquid"):
        with pytest.raises(ValueError):
            phase_name(bad)


# --- seed selection on hand-built rows --------------------------------------------------------------

# Density p down, importance r across; nothing ever ran at r=1, nor at (p=0.01, r=10).
SPEC = make_spec({"seeds": 3}, sweep={"feature_probability": [1.0, 0.01], "importance_decay": [0.1, 1.0, 10]})
P_VALUES, R_VALUES = (1.0, 0.01), (0.1, 1.0, 10)


def rows_of(*entries):
    """Results rows at (p, r, seed) with their sweep point and instance, as results.csv holds them."""
    rows = []
    for p, r, s, loss, ph in entries:
        point = P_VALUES.index(p) * len(R_VALUES) + R_VALUES.index(r)
        rows.append({"instance": point * SPEC.seeds + s, "seed": s, "point": point, "p": p, "r": r, "loss": loss,
                     "phase": ph})
    return rows


ROWS = rows_of(
    (1.0, 0.1, 0, 0.5, NOT_LEARNED), (1.0, 0.1, 1, 0.2, SUPERPOSED), (1.0, 0.1, 2, 0.9, DEDICATED),
    (1.0, 10, 0, 0.1, DEDICATED), (1.0, 10, 1, math.nan, NOT_LEARNED),
    (0.01, 0.1, 0, 0.3, SUPERPOSED), (0.01, 0.1, 1, "", NOT_LEARNED),
)
RESULTS = Results(SPEC, list(ROWS[0]), ROWS)


def test_best_of_k_picks_the_lowest_finite_loss_per_point():
    best = best_of_k(ROWS)
    assert [(r["p"], r["r"], r["seed"]) for r in best] == [(1.0, 0.1, 1), (1.0, 10, 0), (0.01, 0.1, 0)]
    assert RESULTS.best_of().rows == best


def test_best_of_k_limits_the_choice_to_the_first_k_seeds():
    best = best_of_k(ROWS, k=1)
    assert [r["seed"] for r in best] == [0, 0, 0]
    assert best[0]["loss"] == 0.5
    with pytest.raises(ValueError):
        best_of_k(ROWS, k=0)


def test_best_of_k_leaves_out_a_point_with_no_usable_loss():
    rows = rows_of((1.0, 0.1, 0, math.nan, NOT_LEARNED), (1.0, 1.0, 0, 0.4, SUPERPOSED))
    assert [r["r"] for r in best_of_k(rows)] == [1.0]


def test_best_of_k_tells_apart_points_whose_csv_values_are_equal():
    """Points are told apart by their index, not by values read back from a CSV (which may round alike)."""
    rows = [{"point": 0, "seed": 0, "p": 0.333333333, "loss": 0.2}, {"point": 1, "seed": 0, "p": 0.333333333,
                                                                      "loss": 0.1}]
    assert best_of_k(rows) == rows


def test_drop_worst_discards_the_highest_loss_seed_per_point_and_keeps_one():
    kept = drop_worst(ROWS)
    assert [(r["p"], r["r"], r["seed"]) for r in kept] == [
        (1.0, 0.1, 0), (1.0, 0.1, 1), (1.0, 10, 0), (0.01, 0.1, 0)]  # a missing loss counts as the worst
    single = rows_of((1.0, 0.1, 0, 0.5, NOT_LEARNED))
    assert drop_worst(single, count=5) == single


# --- the grid -------------------------------------------------------------------------------------


def test_phase_grid_cells_hold_the_best_phase_and_fractions():
    grid = phase_grid(RESULTS, x_axis="importance_decay", y_axis="feature_probability")
    assert grid.x_values == (0.1, 1.0, 10) and grid.y_values == (1.0, 0.01)  # y from the top, like a chart
    top_left = grid.cells[0][0]
    assert top_left.best == "superposed" and top_left.seeds == 3
    assert top_left.fractions == pytest.approx({"not_learned": 1 / 3, "superposed": 1 / 3, "dedicated": 1 / 3})
    assert grid.cells[0][2].best == "dedicated"
    assert grid.cells[1][2] is None  # no run at (p=0.01, r=10)
    dropped = phase_grid(RESULTS, x_axis="importance_decay", y_axis="feature_probability", discard_worst=1)
    assert dropped.cells[0][0].seeds == 2
    assert dropped.cells[0][0].fractions["dedicated"] == 0.0


# A cell whose lowest-loss seed is in the minority: best-of-k says superposed, the paper's drop-worst mean
# (the phase most of the kept seeds have) dedicated; the highest-loss seed (superposed) is dropped first.
MIXED = rows_of((0.01, 0.1, 0, 0.1, SUPERPOSED), (0.01, 0.1, 1, 0.2, DEDICATED), (0.01, 0.1, 2, 0.9, SUPERPOSED))
MIXED += rows_of((0.01, 1.0, 0, 0.3, DEDICATED), (0.01, 1.0, 1, 0.2, DEDICATED), (0.01, 1.0, 2, 0.1, NOT_LEARNED))


def test_the_majority_selection_drops_the_worst_seed_and_takes_the_phase_most_kept_seeds_have():
    results = Results(SPEC, list(MIXED[0]), MIXED)
    best = phase_grid(results, x_axis="importance_decay", y_axis="feature_probability")
    mean = phase_grid(results, x_axis="importance_decay", y_axis="feature_probability", selection="majority")
    assert mean.discarded_worst == 1 and best.discarded_worst == 0  # the paper drops one of its ten
    tie, tie_again = mean.cells[1][0], mean.cells[1][1]
    assert best.cells[1][0].phase == "superposed" and best.cells[1][1].phase == "not_learned"
    # seeds 0 (S, 0.1) and 1 (D, 0.2) kept: a tie, which goes to the lower-loss seed's phase
    assert tie.seeds == 2 and tie.phase == "superposed" and tie.best == "superposed"
    # seed 0 (D, 0.3) dropped, seeds 1 (D) and 2 (N) kept: a tie again, to N, the lowest loss ...
    assert tie_again.seeds == 2 and tie_again.phase == "not_learned"
    # ... while with every seed kept the two dedicated seeds outvote it
    every = phase_grid(results, x_axis="importance_decay", y_axis="feature_probability", selection="majority",
                       discard_worst=0)
    assert every.cells[1][1].phase == "dedicated" and every.cells[1][1].best == "not_learned"
    assert every.cells[1][0].phase == "superposed"  # two S of three
    assert majority_phase([{"loss": math.nan, "phase": 0}]) is None
    with pytest.raises(ValueError, match="unknown phase selection"):
        phase_grid(results, x_axis="importance_decay", y_axis="feature_probability", selection="mean")


def test_theory_misses_lists_the_cells_off_the_theorys_side():
    grid = phase_grid(RESULTS, x_axis="importance_decay", y_axis="feature_probability")
    cells, misses = theory_misses(grid, 2)
    # (p=1, r=0.1): S, theory N; (p=1, r=10): D, theory D; (p=0.01, r=0.1): S, theory S
    assert cells == 3 and misses == [(0.1, 1.0, "superposed", "not_learned")]


def test_the_report_offers_the_papers_selection_for_the_phase_grid(tmp_path):
    spec = load("tms-phase", sets=["steps=20", "seeds=3"],
                sweeps=["feature_probability=1,0.1", "importance_decay=0.1,10"])
    outcome = run_sweep(spec, tmp_path, run_options())
    assert outcome.status == "completed", outcome.error
    result = invoke("report", str(outcome.run_dir), "--phase-selection", "majority", "--width", "160")
    assert result.exit_code == 0, result.stderr
    assert "phase most seeds have (the paper's drop-worst mean)" in " ".join(result.stdout.split())
    assert "after dropping the 1 highest-loss seed(s)" in " ".join(result.stdout.split())
    result = invoke("report", str(outcome.run_dir))
    assert "phase of the lowest-loss seed (best-of-k)" in " ".join(result.stdout.split())
    bad = invoke("report", str(outcome.run_dir), "--phase-selection", "mean")
    assert_user_error(bad.exit_code, bad.stderr, bad.stdout, "--phase-selection 'mean'", "best or majority")


def test_phase_grid_table_is_plain_data_for_any_front_end():
    table = phase_grid_table(phase_grid(RESULTS, x_axis="importance_decay", y_axis="feature_probability"))
    assert table.columns == ("0.1", "1", "10") and table.row_labels == ("1", "0.01")
    assert table.corner == "feature_probability \\ importance_decay"
    first = table.cells[0][0]
    assert (first.text, first.phase, first.color) == ("S 1/3", "superposed", PHASE_COLORS["superposed"])
    assert first.agreement == pytest.approx(1 / 3)
    assert table.cells[0][1].phase is None and table.cells[0][1].text == "·"  # importance 1 was never run
    assert [entry[1] for entry in table.legend] == list(PHASES)


# --- the model ---------------------------------------------------------------------------------------


def test_phase_model_needs_one_of_the_papers_two_sizes():
    with pytest.raises(SpecError, match="n_features=2 and n_hidden=1, or n_features=3 and n_hidden=2"):
        make_spec({"n_features": 3, "n_hidden": 1}, model="relu_output_phase")
    assert make_spec({"n_features": 3, "n_hidden": 2}, model="relu_output_phase").params["n_features"] == 3


def test_three_regions_appear_in_their_published_places():
    """Dense data: the extra feature is dropped at importance 0.1 and takes the dimension at
    importance 10; sparse data at importance ~0.3: it shares the dimension, antipodally."""
    spec = make_spec({"n_features": 2, "n_hidden": 1, "steps": 1000, "batch_size": 128, "lr": 3e-3, "seeds": 3},
                     sweep={"feature_probability": "1,0.1", "importance_decay": "0.1,0.3,10"},
                     model="relu_output_phase")
    rows = []
    for result in train_all(spec):
        for i, inst in enumerate(result.chunk.instances):
            rows.append({"seed": inst.seed, "point": inst.point, "p": inst.config["feature_probability"],
                         "r": inst.config["importance_decay"],
                         **{k: v[i].item() for k, v in result.metrics.items()}})
    best = {(r["p"], r["r"]): r for r in best_of_k(rows)}
    assert phase_name(best[1.0, 0.1]["phase"]) == "not_learned"
    assert phase_name(best[1.0, 10]["phase"]) == "dedicated"
    assert phase_name(best[0.1, 0.3]["phase"]) == "superposed"
    assert best[0.1, 0.3]["antipodal"]
    # With dense data every seed agrees; at low density some seeds stall (not learned), which is
    # why the paper keeps the best seeds.
    for key in ((1.0, 0.1), (1.0, 10)):
        phases = {r["phase"] for r in rows if (r["p"], r["r"]) == key}
        assert phases == {best[key]["phase"]}, key


def test_preset_runs_and_results_have_the_phase_columns(tmp_path):
    spec = load("tms-phase", sets=["steps=20", "seeds=1"],
                sweeps=["feature_probability=1,0.1", "importance_decay=0.1,10"])
    outcome = run_sweep(spec, tmp_path, run_options())
    assert outcome.status == "completed", outcome.error
    header, rows = read_csv(outcome.run_dir / "results.csv")
    assert {"phase", "extra_norm", "first_norm", "antipodal", "loss"} <= set(header)
    assert len(rows) == 4 and all(phase_name(r["phase"]) in PHASES for r in rows)
    grid = phase_grid(Results.open(Run(outcome.run_dir)), x_axis="importance_decay", y_axis="feature_probability")
    assert len(grid.cells) == 2 and all(len(row) == 2 and all(row) for row in grid.cells)
    # The phase grid counts seeds per cell, so each cell trains its own seeds; run.json and the report say so.
    assert sorted(r["seed"] for r in rows) == [0, 1, 2, 3]
    assert json.loads((outcome.run_dir / "run.json").read_text())["seed_mode"] == "independent"
    console = Console(record=True, width=120, file=io.StringIO(), color_system=None)
    print_report(console, Run(outcome.run_dir))
    assert "seeds independent: every point trains its own seeds" in console.export_text()


# --- the paper's theory, and its boundaries over the grid ---------------------------------------------


def test_the_theoretical_phases_follow_the_papers_candidate_losses():
    # Dense (p = 1): superposition never pays; the extra feature is dropped below r = 1 and takes the dimension
    # above it, for n=2 and n=3 alike.
    for n in (2, 3):
        assert theoretical_phase(0.5, 1.0, n) == "not_learned" and theoretical_phase(2.0, 1.0, n) == "dedicated"
    # Sparse (p = 0.1), n=2: superposed for 2p/(4-5p) < r < 2/p - 5/2, i.e. 0.057 < r < 17.5.
    assert [theoretical_phase(r, 0.1) for r in (0.05, 0.06, 1.0, 17.0, 18.0)] == [
        "not_learned", "superposed", "superposed", "superposed", "dedicated"]
    # n=3 adds "features 0 and 1 antipodal, the extra one alone", which wins over superposing the extra feature
    # once r > 1 (where p < 4/7): the superposed band ends at r = 1.
    assert theoretical_phase(0.9, 0.1, 3) == "superposed" and theoretical_phase(1.1, 0.1, 3) == "dedicated"
    losses = candidate_losses(1.1, 0.1, 3)
    assert min(losses, key=losses.get) == "others_paired"
    assert math.isclose(candidate_losses(2.0, 0.3)["extra_paired"], 3 * 0.09 / 6)


def test_boundaries_are_drawn_between_cells_of_different_theoretical_phase():
    theory = (("not_learned", "dedicated"),
              ("superposed", "superposed"))
    bounds = theory_boundaries(theory)
    assert bounds.vertical == ((True,), (False,)) and bounds.horizontal == ((True, True),)
    table = phase_grid_table(phase_grid(RESULTS, x_axis="importance_decay", y_axis="feature_probability"))
    lines = draw_grid(table, theory_boundaries((("not_learned", "not_learned", "dedicated"),
                                                ("superposed", "superposed", "superposed")))).plain.splitlines()
    corner, header, first, between, second = lines
    assert corner == "feature_probability \\ importance_decay"
    assert "0.1" in header and first.count("┃") == 1 and "┃" not in second
    cut = first.index("┃")  # the line between importance 1 and 10 in the top row ...
    assert first.index("S 1/3") < cut < first.index("D 1/2")
    assert set(between.strip()) == {"━", "┻", "╸"} and between.index("┻") == cut  # ... meets the horizontal one
    plain = draw_grid(table, None).plain
    assert not set(plain) & set("┃━┻╋")


def test_the_3in2_preset_runs_and_draws_the_theory_over_its_grid(tmp_path):
    spec = load("tms-phase-3in2", sets=["steps=20", "seeds=1"],
                sweeps=["feature_probability=1,0.1", "importance_decay=0.1,2,10"])
    assert (spec.params["n_features"], spec.params["n_hidden"]) == (3, 2)
    outcome = run_sweep(spec, tmp_path, run_options())
    assert outcome.status == "completed", outcome.error
    console = Console(record=True, width=120, file=io.StringIO(), color_system=None)
    console.print(phase_table(Results.open(Run(outcome.run_dir))))
    text = console.export_text()
    # theory: dense, N below r = 1 and D above; sparse (p=0.1), S for 2p/(4-5p) = 0.057 < r < 1, D above
    assert [theoretical_phase(r, p, 3) for p in (1.0, 0.1) for r in (0.1, 2, 10)] == [
        "not_learned", "dedicated", "dedicated", "superposed", "dedicated", "dedicated"]
    assert "┃" in text and "━" in text and "theoretical boundaries" in text
