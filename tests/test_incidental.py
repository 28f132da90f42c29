"""The incidental-polysemanticity model (Lecomte et al. 2023): metrics on hand-built weights,
the two published outcomes on small seeded runs, and the presets through the runner."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch

from toysup.engine.errors import SpecError
from toysup.engine.metrics import polysemantic_neurons
from toysup.engine.models import Hyper, get_model
from toysup.engine.models.incidental import (
    ablation_gains,
    basis_sparsity,
    feature_basis_sparsity,
    features_near_unit,
    init_correlation,
    polysemantic_neurons_paper,
    represented,
    top_weights,
)
from toysup.engine.rng import CounterRNG
from toysup.engine.run import folder as run_folder
from toysup.engine.runner import run_sweep
from toysup.engine.spec import load

from helpers import by_instance, make_spec, run_options, train_all


def batch(*matrices: list[list[float]]) -> torch.Tensor:
    """Hand-built (I, n, m) weights from row lists (rows = features, columns = neurons)."""
    return torch.tensor(matrices, dtype=torch.float32)


# --- metrics on hand-built weights -------------------------------------------------------------


def test_identity_is_monosemantic_and_basis_sparse() -> None:
    W = torch.eye(4).unsqueeze(0)
    assert polysemantic_neurons(W).item() == 0
    assert polysemantic_neurons_paper(W).item() == 0
    assert basis_sparsity(W).item() == pytest.approx(1.0)
    assert features_near_unit(W).item() == 4


def test_one_neuron_carrying_two_features_counts_once() -> None:
    # Features 0 and 1 share neuron 0 with opposite signs (no interference after the ReLU),
    # feature 2 has neuron 1 to itself, neuron 2 is unused.
    W = batch([[1.0, 0, 0], [-1.0, 0, 0], [0, 1.0, 0]])
    assert polysemantic_neurons(W).item() == 1
    assert polysemantic_neurons_paper(W).item() == 1
    assert basis_sparsity(W).item() == pytest.approx(1.0)
    top, neuron = top_weights(W)
    assert top.tolist() == [[1.0, -1.0, 1.0]]
    assert neuron.tolist() == [[0, 0, 1]]


@pytest.mark.parametrize("k", [1, 2, 4, 8])
def test_feature_spread_over_k_neurons_has_basis_sparsity_one_over_k(k: int) -> None:
    W = torch.zeros(1, 1, 8)
    W[0, 0, :k] = 1 / math.sqrt(k)
    assert feature_basis_sparsity(W).item() == pytest.approx(1 / k)
    assert basis_sparsity(W).item() == pytest.approx(1 / k)
    assert feature_basis_sparsity(3 * W).item() == pytest.approx(1 / k)  # scale-free


def test_basis_sparsity_skips_unrepresented_features() -> None:
    W = batch([[1.0, 0], [0.1, 0.1]], [[0.01, 0], [0, 0.02]])
    assert feature_basis_sparsity(W)[0].tolist() == pytest.approx([1.0, 0.5])
    assert basis_sparsity(W)[0].item() == pytest.approx(1.0)  # the weak feature is not represented
    assert math.isnan(basis_sparsity(W)[1].item())  # nothing represented: an empty cell, not a number
    assert feature_basis_sparsity(torch.zeros(1, 2, 3)).tolist() == [[0.0, 0.0]]


def test_ablation_gains_on_the_identity_batch() -> None:
    # Identity: each feature reconstructs itself exactly; zeroing it costs its diagonal 1.
    assert ablation_gains(torch.eye(3).unsqueeze(0)).tolist() == [[1.0, 1.0, 1.0]]
    # Features 0 and 1 on one neuron with the same sign: each leaks 1 into the other's output, and
    # removing either one removes both leaks (error 2 -> 0 off the diagonal) but loses its own 1.
    W = batch([[1.0, 0], [1.0, 0], [0, 1.0]])
    assert ablation_gains(W)[0].tolist() == pytest.approx([-1.0, -1.0, 1.0])
    assert represented(W)[0].tolist() == [False, False, True]
    # Opposite signs: no leak after the ReLU, both represented (the paper's incidental collision).
    assert represented(batch([[1.0, 0], [-1.0, 0], [0, 1.0]]))[0].tolist() == [True, True, True]
    # Scale-free in the sense that matters: a feature shrunk to norm 0.7 still reconstructs half its input.
    assert represented(batch([[0.7, 0], [0, 1.0]]))[0].tolist() == [True, True]


def test_neuron_counts_and_prediction_only_where_they_apply() -> None:
    cls = get_model("incidental")
    base = {p.name: p.default for p in cls.param_table().values()}
    runs = [{"l1": 0.01, "noise": "none"}, {"l1": 0.0, "noise": "bernoulli"}, {"l1": 0.0, "noise": "gaussian"},
            {"l1": 0.0, "noise": "none"}]
    configs = [{**base, "n_features": 3, "n_hidden": 3, **r} for r in runs]
    model = cls(Hyper(configs, torch.device("cpu")), CounterRNG(torch.arange(4), "cpu"))
    got = model.metrics({"W": batch(*[[[1.0, 0, 0], [-1.0, 0, 0], [0, 1.0, 0]]] * 4)})
    poly = got["polysemantic_neurons"].tolist()
    assert poly[:2] == [1.0, 1.0] and math.isnan(poly[2]) and math.isnan(poly[3])
    predicted = got["predicted_polysemantic"].tolist()
    assert predicted[0] == pytest.approx(3 * 2 / (4 * 3)) and all(math.isnan(v) for v in predicted[1:])
    assert got["basis_sparsity"].tolist() == pytest.approx([1.0] * 4)  # the privilege test itself stays


def test_paper_count_uses_the_near_unit_window() -> None:
    # Neuron 0 holds 0.9 and 1.1 (both in [0.8, 1.2]); neuron 1 holds 0.5 and 1.0 (only one in the window).
    W = batch([[0.9, 0.5], [1.1, 0], [0, 1.0]])
    assert polysemantic_neurons_paper(W).item() == 1
    assert features_near_unit(W).item() == 3


def test_init_correlation_on_hand_built_weights() -> None:
    init = torch.eye(3).unsqueeze(0)
    same, _ = init_correlation(init, 2 * init)  # unchanged directions, any scale
    assert same.item() == pytest.approx(1.0)
    # Final = a cyclic shift of the initial rows: no feature kept its own direction,
    # every feature took another's: diagonal 0, off-diagonal |cos| 1 in 3 of 6 pairs.
    diag, off = init_correlation(init, init[:, [1, 2, 0]])
    assert diag.item() == pytest.approx(0.0)
    assert off.item() == pytest.approx(0.5)
    # Winner-take-all: each feature keeps only its largest initial weight.
    start = batch([[0.6, 0.8, 0.0], [0.0, -0.3, 0.4]])
    end = batch([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    diag, off = init_correlation(start, end)
    assert diag.item() == pytest.approx((0.8 + 0.8) / 2)
    assert off.item() == pytest.approx((0.0 + 0.6) / 2)  # cos(init_1, end_0) = -0.6, cos(init_0, end_1) = 0


def test_n_hidden_below_n_features_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="n_hidden=4 must be >= n_features=8"):
        make_spec({"n_features": 8, "n_hidden": 4}, model="incidental")
    with pytest.raises(SpecError, match="n_hidden"):
        make_spec({"n_features": 8}, {"n_hidden": [4, 8, 16]}, model="incidental")
    make_spec({"n_features": 8, "n_hidden": 8}, model="incidental")  # m = n is allowed


def test_superposition_data_parameters_are_not_offered() -> None:
    table = make_spec({}, model="incidental").param_table()
    assert "feature_probability" not in table and "importance_decay" not in table
    for name in ("n_features", "n_hidden", "l1", "noise", "noise_scale", "init_scale", "carry_threshold"):
        assert name in table


# --- training: the published outcomes on small seeded runs ---------------------------------------


def test_init_has_the_authors_scale() -> None:
    # std 1/sqrt(m) per entry (their "normal" init): every feature starts with norm about init_scale.
    spec = make_spec({"n_features": 16, "n_hidden": 256, "steps": 1, "lr": 1e-9, "optimizer": "sgd"},
                     {"init_scale": [1.0, 0.5]}, model="incidental")
    runs = by_instance(train_all(spec))
    assert runs[0]["features"]["norm"].mean().item() == pytest.approx(1.0, abs=0.05)
    assert runs[1]["features"]["norm"].mean().item() == pytest.approx(0.5, abs=0.03)


def test_l1_gives_winner_take_all_and_about_n2_over_4m_polysemantic_neurons() -> None:
    """n = 32 features, m = 64 neurons: predicted C(32, 2) / (2 * 64) = 32 * 31 / (4 * 64) = 3.875
    polysemantic neurons (Lecomte et al.'s derivation; n^2 / (4m) = 4 is its large-n form).

    Each seed's count is a small random number (a birthday problem), so the test checks the
    mean over 8 seeds against the prediction within a factor of 2, and that the collisions are
    real: every feature sits on one neuron at about unit weight (basis sparsity near 1)."""
    spec = make_spec({"n_features": 32, "n_hidden": 64, "l1": 0.1, "optimizer": "adamw", "weight_decay": 0.01,
                      "lr": 1e-3, "steps": 2500, "seeds": 8}, model="incidental")
    runs = by_instance(train_all(spec)).values()
    counts = [r["metrics"]["polysemantic_neurons"].item() for r in runs]
    predicted = next(iter(runs))["metrics"]["predicted_polysemantic"].item()
    assert predicted == pytest.approx(3.875)
    mean = sum(counts) / len(counts)
    assert predicted / 2 <= mean <= predicted * 2, counts
    for r in runs:
        m = r["metrics"]
        assert m["basis_sparsity"].item() > 0.95
        assert m["features_represented"].item() == 32
        assert m["polysemantic_neurons_paper"].item() == m["polysemantic_neurons"].item()
        # final weights remember the init: each feature ends where its initial weight was largest
        assert m["init_correlation"].item() > 2 * m["init_correlation_offdiag"].item()


def test_bernoulli_noise_sparsifies_and_gaussian_does_not() -> None:
    """n = 8, m = 16, no L1, SGD. The authors ran lr 0.02 for 100,000 steps; lr 0.05 for 5,000
    steps shows the same split in a few seconds (larger lr diffuses the weights instead)."""
    spec = make_spec({"n_features": 8, "n_hidden": 16, "l1": 0.0, "noise_scale": 0.15, "optimizer": "sgd",
                      "lr": 0.05, "steps": 5000, "seeds": 3}, {"noise": ["bernoulli", "gaussian"]},
                     model="incidental")
    runs = by_instance(train_all(spec))
    sparsity = {"bernoulli": [], "gaussian": []}
    for r in runs.values():
        sparsity[r["config"]["noise"]].append(r["metrics"]["basis_sparsity"].item())
    bern = sum(sparsity["bernoulli"]) / 3
    gauss = sum(sparsity["gaussian"]) / 3
    # A random direction in 16 dimensions has ||w||_4^4 / ||w||_2^4 = 3 / (m + 2) = 0.17.
    assert gauss < 0.3, sparsity
    assert bern > 0.45 and bern > 2 * gauss, sparsity


def test_noise_draws_come_from_the_seed() -> None:
    """Same seed twice, alone or with other instances in the batch: identical weights."""
    params = {"n_features": 6, "n_hidden": 8, "l1": 0.01, "noise_scale": 0.2, "optimizer": "sgd",
              "lr": 0.05, "steps": 300, "seed": 3}
    for noise in ("bernoulli", "gaussian"):
        alone = by_instance(train_all(make_spec({**params, "noise": noise}, model="incidental")))[0]
        again = by_instance(train_all(make_spec({**params, "noise": noise}, model="incidental")))[0]
        mixed = by_instance(train_all(make_spec({**params, "seed": 1, "seeds": 3},
                                                {"noise": ["none", "bernoulli", "gaussian"]},
                                                model="incidental")))
        in_batch = next(r for r in mixed.values() if r["config"]["noise"] == noise and r["config"]["seed"] == 3)
        assert torch.equal(alone["weights"]["W"], again["weights"]["W"])
        assert torch.equal(alone["weights"]["W"], in_batch["weights"]["W"])
    # and the noise does something: without it the same seed trains to other weights
    quiet = by_instance(train_all(make_spec({**params, "noise": "none"}, model="incidental")))[0]
    assert not torch.equal(quiet["weights"]["W"], alone["weights"]["W"])


# --- the presets through the runner ----------------------------------------------------------------


@pytest.mark.parametrize("preset", ["incidental-l1", "incidental-noise"])
def test_preset_runs_and_writes_the_columns(preset: str, tmp_path: Path) -> None:
    spec = load(preset, sets=["steps=200"], seeds=1)
    outcome = run_sweep(spec, tmp_path, run_options())
    assert outcome.status == "completed", outcome.error
    with open(outcome.run_dir / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == spec.n_instances
    for column in ("loss", "polysemantic_neurons", "predicted_polysemantic", "basis_sparsity", "init_correlation",
                   "features_represented", "polysemantic_neurons_paper", "features_near_unit"):
        assert column in rows[0]
    # The prediction is the paper's for L1 runs only; Gaussian noise leaves no privileged basis.
    for row in rows:
        assert (row["predicted_polysemantic"] == "") == (preset == "incidental-noise")
        assert (row["polysemantic_neurons"] == "") == (row.get("noise") == "gaussian")
    with open(outcome.run_dir / "curves.csv", newline="") as f:
        curve = next(csv.DictReader(f))
    assert "l1_norm" in curve and float(curve["l1_norm"]) > 0
    with open(outcome.run_dir / "features.csv", newline="") as f:
        feature = next(csv.DictReader(f))
    for column in ("norm", "basis_sparsity", "top_weight", "top_neuron", "init_overlap"):
        assert column in feature


# --- the follow-ups: untied weights, the noise's kurtosis, the sparsification rate -------------------


def incidental(configs: list[dict], seeds: list[int]) -> tuple[object, CounterRNG]:
    """An incidental model over hand-made configs (every parameter at its default unless given)."""
    table = get_model("incidental").param_table()
    full = [{**{p.name: p.default for p in table.values()}, **c} for c in configs]
    rng = CounterRNG(torch.tensor(seeds), "cpu")
    return get_model("incidental")(Hyper(full, torch.device("cpu")), rng), rng


def test_three_point_noise_has_the_stated_variance_and_kurtosis() -> None:
    configs = [{"n_features": 2, "n_hidden": 64, "noise": "three_point", "noise_scale": 0.2, "noise_kurtosis": k}
               for k in (1.0, 3.0, 6.0)]
    model, _ = incidental(configs, [0, 1, 2])
    noise = torch.cat([model._draw_block(b) for b in range(20)], dim=1).flatten(1)  # (3, 20 * 256 * 64)
    variance = noise.square().mean(-1)
    kurtosis = noise.pow(4).mean(-1) / variance.square()
    assert variance.tolist() == pytest.approx([0.04] * 3, rel=0.03)
    assert kurtosis.tolist() == pytest.approx([1.0, 3.0, 6.0], rel=0.04)
    assert noise.mean(-1).abs().max().item() < 0.005  # symmetric
    assert set(torch.unique(noise[2]).tolist()) == pytest.approx([-0.2 * 6**0.5, 0.0, 0.2 * 6**0.5])


def test_three_point_noise_at_kurtosis_one_is_the_bernoulli_noise() -> None:
    params = {"n_features": 6, "n_hidden": 8, "l1": 0.0, "noise_scale": 0.2, "optimizer": "sgd", "lr": 0.05,
              "steps": 300, "seed": 3}
    bernoulli = by_instance(train_all(make_spec({**params, "noise": "bernoulli"}, model="incidental")))[0]
    three = by_instance(train_all(make_spec({**params, "noise": "three_point", "noise_kurtosis": 1.0},
                                            model="incidental")))[0]
    assert torch.equal(bernoulli["weights"]["W"], three["weights"]["W"])
    assert three["metrics"]["polysemantic_neurons"].isfinite()  # three-point noise privileges the basis


def test_untied_weights_keep_the_tied_encoder_init_and_add_a_decoder() -> None:
    model, _ = incidental([{"tied": False}, {"tied": False}], [5, 6])
    tied, _ = incidental([{"tied": True}, {"tied": True}], [5, 6])
    untied_init, tied_init = model.init_weights(), tied.init_weights()
    assert set(untied_init) == {"W", "W_dec"} and set(tied_init) == {"W"}
    assert torch.equal(untied_init["W"], tied_init["W"])
    assert not torch.equal(untied_init["W_dec"], untied_init["W"])
    assert untied_init["W_dec"].std().item() == pytest.approx(untied_init["W"].std().item(), rel=0.1)
    # the output is ReLU(W W_dec^T): a decoder equal to the encoder gives the tied ablation gains
    W = torch.eye(3).unsqueeze(0)
    assert torch.equal(ablation_gains(W, W), ablation_gains(W))
    assert ablation_gains(W, torch.zeros_like(W)).tolist() == [[0.0, 0.0, 0.0]]  # nothing reconstructed


def test_untied_training_is_batch_independent_and_reports_the_decoder() -> None:
    params = {"n_features": 6, "n_hidden": 12, "l1": 0.05, "optimizer": "adamw", "lr": 1e-2, "steps": 200,
              "tied": False}
    alone = by_instance(train_all(make_spec({**params, "seed": 2}, model="incidental")))[0]
    batch = by_instance(train_all(make_spec({**params, "seed": 0, "seeds": 3}, model="incidental")))[2]
    for name in ("W", "W_dec"):
        assert torch.equal(alone["weights"][name], batch["weights"][name])
    assert alone["metrics"]["decoder_alignment"].isfinite()
    tied = by_instance(train_all(make_spec({**params, "tied": True, "seed": 2}, model="incidental")))[0]
    assert tied["metrics"]["decoder_alignment"].isnan()
    assert "W_dec" not in tied["weights"]


def test_noise_kurtosis_not_noise_as_such_decides_the_sparsification() -> None:
    """Three-point noise at the same variance: kurtosis 1 (Bernoulli) puts features on neurons, kurtosis 3
    (the Gaussian's) leaves random directions (3 / (m + 2) = 0.17 for m = 16) and 6 spreads them further.
    Measured over 3 seeds: 0.63, 0.16, 0.14."""
    spec = make_spec({"n_features": 8, "n_hidden": 16, "l1": 0.0, "noise": "three_point", "noise_scale": 0.15,
                      "optimizer": "sgd", "lr": 0.05, "steps": 5000, "seeds": 2}, {"noise_kurtosis": [1.0, 3.0, 6.0]},
                     model="incidental")
    sparsity: dict[float, list[float]] = {}
    for r in by_instance(train_all(spec)).values():
        sparsity.setdefault(r["config"]["noise_kurtosis"], []).append(r["metrics"]["basis_sparsity"].item())
    mean = {k: sum(v) / len(v) for k, v in sparsity.items()}
    assert mean[1.0] > 0.45 > 0.25 > mean[3.0] > mean[6.0], sparsity


def test_sparsification_rate_is_proportional_to_l1_and_time_is_lr_times_steps(tmp_path: Path) -> None:
    """The incidental-rate preset, small: the paper's law through the runner and the report. The rate per
    unit time (slope / lr) is c * l1 with c the same at both l1 and both lr (a rate per step would double
    with lr), of order 1 like the authors' one-feature simulation's at the same m and l1, not 1; the curve
    starts at 1.25 / sqrt(m) (the Gaussian init: sqrt(pi/2) / sqrt(m))."""
    from toysup.engine.analysis.sparsification import rate_law
    from toysup.engine.results import Results

    from helpers import invoke

    spec = load("incidental-rate", sets=["n_features=8", "steps=3000"],
                sweeps=["l1=0.03,0.1", "n_hidden=16,64", "lr=0.01,0.02"], seeds=2)
    outcome = run_sweep(spec, tmp_path, run_options())
    assert outcome.status == "completed", outcome.error
    law = rate_law(Results.open(run_folder.Run(outcome.run_dir)))
    assert len(law.points) == 8 and all(p.fitted_seeds == 2 for p in law.points)
    c = {(p.m, p.l1, p.lr): p.constant.mean for p in law.points if p.constant is not None}
    assert all(0.35 < v < 0.8 for v in c.values()), c
    for m in (16, 64):
        for l1 in (0.03, 0.1):
            assert c[m, l1, 0.02] == pytest.approx(c[m, l1, 0.01], rel=0.25), c  # per unit time (per step: 2x)
            authors = law.references[m, l1]
            assert authors is not None and abs(authors[0].mean - c[m, l1, 0.01]) < 0.2, (authors, c)
    assert law.l1_exponent is not None and 0.9 < law.l1_exponent.value < 1.1, law.l1_exponent
    assert law.start_exponent is not None and abs(law.start_exponent.value + 0.5) < 0.03, law.start_exponent
    assert all(p.start is not None and p.start.mean == pytest.approx(1.25, abs=0.1) for p in law.points)
    shown = invoke("report", outcome.run_dir.name, "--runs-dir", tmp_path, env={"COLUMNS": "160"})
    assert shown.exit_code == 0, shown.stderr
    for fragment in ("authors' c", "rate ∝ l1^", "start 1/||W_i||_1 ∝ m^", "the authors' simulation at the same m"):
        assert fragment in shown.stdout, fragment
