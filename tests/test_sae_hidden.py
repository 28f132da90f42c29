"""SAEs on a toy model's hidden activations (engine/models/sae_hidden.py), and the two initialisations
proposed for them (init=svd, init=noised_basis; engine/models/sae.py).

Headline outcome on a small seeded config of the preset's regime, where chance is low: the toy model
(n=60 features in m=20 dimensions, p=0.03) represents all 60, an untrained SAE scores the MMCS of a
random dictionary (mmcs_chance, about 0.5), and an SAE with as many latents as features and a moderate
L1 recovers the directions far above it (MMCS > 0.95), half as many latents cannot. In 2-D (the
pentagon variant) chance alone is 0.98 at 20 latents.
"""

from __future__ import annotations

import csv
import math
import statistics
from pathlib import Path
from typing import Any

import pytest
import torch

from toysup.engine.models import Hyper, get_model
from toysup.engine.models.sae import mmcs
from toysup.engine.rng import DATA, CounterRNG
from toysup.engine.runner import run_sweep
from toysup.engine.sae_chance import expected_max_cosine
from toysup.engine.spec import load

from helpers import CPU, by_instance, make_spec, run_options, train_all

# The 2-D pentagon: toy model 3000 steps at lr 1e-2 (a pentagon at p = 0.05); cheap, for the mechanics.
SMALL = {"n_features": 5, "n_hidden": 2, "feature_probability": 0.05, "toy_steps": 3000, "toy_lr": 1e-2,
         "steps": 2000, "batch_size": 256, "lr": 1e-2, "eval_batch_size": 2048, "l1": 0.1}
# The preset's regime (60 features in 20 dims, p = 0.03), trained shorter: a few seconds.
WIDE = {"n_features": 60, "n_hidden": 20, "feature_probability": 0.03, "toy_steps": 1000, "toy_batch_size": 256,
        "toy_lr": 1e-2, "steps": 800, "batch_size": 256, "lr": 1e-2, "eval_batch_size": 2048, "l1": 0.01}


def build(kind: str = "sae_hidden", seeds: int = 1, sweep: dict[str, str] | None = None, base=None, **params: Any):
    """A model object for ``seeds`` instances (seeds 0, 1, ...) and its initial weights."""
    if base is None:
        base = SMALL if kind == "sae_hidden" else {"batch_size": 256}
    spec = make_spec({**base, "seeds": seeds, **params}, sweep, model=kind)
    configs = [inst.config for inst in spec.instances()]
    model = get_model(kind)(Hyper(configs, CPU), CounterRNG(torch.tensor([c["seed"] for c in configs]), CPU))
    return model, model.init_weights()


# --- the published outcome, against chance ----------------------------------------------------


@pytest.fixture(scope="module")
def trained() -> dict[int, dict[str, Any]]:
    spec = make_spec({**WIDE, "seeds": 2}, {"dict_ratio": "0.5,1"}, model="sae_hidden")
    return by_instance(train_all(spec))


def _by_ratio(trained: dict[int, dict[str, Any]], ratio: float) -> list[dict[str, Any]]:
    return [r for r in trained.values() if r["config"]["dict_ratio"] == ratio]


def test_the_toy_model_represents_all_sixty_features(trained):
    for run in trained.values():
        assert run["metrics"]["toy_features_represented"] == 60, run["metrics"]
        assert run["features"]["represented"].tolist() == [1] * 60


def test_an_untrained_sae_scores_at_chance():
    """Ten seeds, no SAE training: with random (Gaussian) directions the mean MMCS is within 4 standard
    errors (over seeds) of mmcs_chance, and nothing counts as recovered. The orthogonal init (the
    default: a tight frame, spread more evenly than independent directions) sits up to 0.02 above."""
    model, w = build(seeds=10, sweep={"init": "random,orthogonal"}, base=WIDE, toy_steps=400, dict_ratio=1.0)
    metrics = model.metrics(w)
    assert (metrics["toy_features_represented"] == 60).all()
    assert (metrics["dead_latents"] == 0).all() and (metrics["features_recovered"] == 0).all()
    chance = expected_max_cosine(20, 60)
    assert metrics["mmcs_chance"].tolist() == pytest.approx([chance] * 20, abs=1e-6)
    assert chance < 0.5
    for init, slack in (("random", 0.0), ("orthogonal", 0.02)):
        values = [metrics["mmcs"][k].item() for k, c in enumerate(model.hp.configs) if c["init"] == init]
        se = statistics.stdev(values) / math.sqrt(len(values))
        assert abs(statistics.mean(values) - chance) < 4 * se + slack, (init, values, chance)


def test_a_dictionary_as_large_as_the_features_recovers_them_far_above_chance(trained):
    for run in _by_ratio(trained, 1.0):
        m = run["metrics"]
        live = int(m["n_latents"] - m["dead_latents"])
        assert m["mmcs_chance"].item() == pytest.approx(expected_max_cosine(20, live), abs=1e-6)
        assert m["mmcs"] > 0.95, m
        assert m["mmcs"] > m["mmcs_chance"] + 0.4, m
        assert m["features_recovered"] >= 55, m
        assert m["recovery_cosine"].item() == pytest.approx(0.9)  # chance's 99% quantile is lower in 20-D
        assert m["normalised_mse"] < 0.2, m  # it also reconstructs h


def test_half_as_many_latents_as_features_do_not(trained):
    for run in _by_ratio(trained, 0.5):
        m = run["metrics"]
        assert m["mmcs"] < 0.7, m
        assert m["features_recovered"] <= 10, m


def test_features_csv_holds_the_per_feature_max_cosine_that_mmcs_averages(trained):
    for run in trained.values():
        best, mask = run["features"]["max_cosine"], run["features"]["represented"].bool()
        assert best.shape == (60,)
        assert math.isclose(best[mask].mean().item(), run["metrics"]["mmcs"].item(), abs_tol=1e-5)
        assert int(run["features"]["recovered"].sum()) == run["metrics"]["features_recovered"]
        norms = run["weights"]["ground_truth"].norm(dim=-1)
        assert torch.allclose(run["features"]["toy_norm"], norms)


def test_in_two_dimensions_chance_alone_is_near_one():
    """The pentagon variant: an untrained SAE with 20 latents scores about 0.98, which is chance, and
    no feature counts as recovered, since the cut rises to chance's 99% quantile (about 1 - 1e-6)."""
    model, w = build(seeds=2, dict_ratio=4.0)
    metrics = model.metrics(w)
    assert (metrics["toy_features_represented"] == 5).all()
    assert metrics["mmcs_chance"].tolist() == pytest.approx([0.979] * 2, abs=1e-3)
    assert (metrics["mmcs"] > 0.9).all(), metrics["mmcs"]
    assert (metrics["features_recovered"] == 0).all()
    assert (metrics["recovery_cosine"] > 0.99999).all()


def test_the_toy_model_is_the_one_relu_output_trains_from_the_same_seed(trained):
    """One piece of code trains the toy model: a relu_output run with the same settings and seeds gives
    the same W, and every dictionary size of a seed is scored against that one toy model."""
    toy = {"n_features": 60, "n_hidden": 20, "feature_probability": 0.03, "steps": WIDE["toy_steps"],
           "lr": WIDE["toy_lr"], "batch_size": WIDE["toy_batch_size"], "eval_batch_size": WIDE["eval_batch_size"],
           "seeds": 2}
    reference = by_instance(train_all(make_spec(toy)))
    for run in trained.values():
        W = reference[run["config"]["seed"]]["weights"]["W"]
        assert torch.allclose(run["weights"]["ground_truth"], W, atol=1e-6)
        assert torch.allclose(run["weights"]["toy_b"], reference[run["config"]["seed"]]["weights"]["b"], atol=1e-6)


def test_the_sae_trains_on_samples_after_the_toy_models():
    """SAE step s draws the inputs of step toy_steps + s: never a sample the toy model trained on."""
    model, w = build(toy_steps=20)
    model.loss(w, 1)
    x = torch.empty(1, SMALL["batch_size"], 5)
    model.toy._draw(DATA, 21, x)
    assert torch.allclose(model._x, torch.bmm(x, w["ground_truth"]))
    model.toy._draw(DATA, 1, x)
    assert not torch.allclose(model._x, torch.bmm(x, w["ground_truth"]))


def test_mmcs_counts_only_the_features_the_toy_model_represents():
    """Dense features (p = 1) with decaying importance: the toy model keeps 2 of 5, orthogonal; MMCS
    averages over those 2, and a decoder holding exactly them scores 1."""
    model, w = build(feature_probability=1.0, importance_decay=0.7, toy_steps=2000, dict_ratio=0.4)
    metrics = model.metrics(w)
    assert metrics["toy_features_represented"].item() == 2
    mask = model.feature_metrics(w)["represented"][0].bool()
    w["W_dec"] = w["ground_truth"][:, mask].clone()
    assert model.metrics(w)["mmcs"].item() == pytest.approx(1.0, abs=1e-6)
    assert mmcs(w["ground_truth"], w["W_dec"]).item() < 0.99  # over all five it would not be


def test_a_toy_model_too_large_for_int32_indexing_is_a_user_error():
    from toysup.engine.errors import SpecError

    with pytest.raises(SpecError, match="batch_size"):
        make_spec({"n_features": 100_000, "toy_batch_size": 1_000_000}, model="sae_hidden")


# --- the proposed initialisations ------------------------------------------------------------


def test_svd_init_atoms_are_the_datas_top_singular_vectors_then_their_negatives():
    """One ground-truth feature f: the data s f (s >= 0) has f as its only singular vector, with
    a positive mean projection. Two features: the top two singular vectors span their plane."""
    _, w = build("sae", n_dims=6, n_ground_truth=1, active_features=1, dict_ratio=12.0, init="svd")
    f, dec = w["ground_truth"][0, 0], w["W_dec"][0]
    assert (dec[0] @ f).item() == pytest.approx(1.0, abs=1e-5)
    assert (dec[6] @ f).item() == pytest.approx(-1.0, abs=1e-5)  # latent d = 6 is the first one's negative
    assert torch.allclose(dec[:6] @ dec[:6].T, torch.eye(6), atol=1e-5)  # all d singular vectors
    _, w = build("sae", n_dims=6, n_ground_truth=2, active_features=1, dict_ratio=6.0, init="svd")
    dec, gt = w["W_dec"][0], w["ground_truth"][0]
    top = dec[:2]
    assert torch.allclose(top @ top.T, torch.eye(2), atol=1e-5)  # orthonormal
    assert torch.allclose((gt @ top.T).norm(dim=-1), torch.ones(2), atol=1e-4)  # the features' plane
    assert torch.allclose(dec[6:12], -dec[:6])
    assert torch.equal(w["W_enc"][0, :12], dec[:12])  # tied


def test_svd_init_on_the_hidden_activations_spans_them():
    _, w = build(init="svd", dict_ratio=2.0, toy_steps=10)  # 10 latents: 2 singular vectors, their negatives, 6 random
    dec = w["W_dec"][0]
    assert torch.allclose(dec[:2] @ dec[:2].T, torch.eye(2), atol=1e-5)
    assert torch.allclose(dec[2:4], -dec[:2])
    assert torch.allclose(dec.norm(dim=-1), torch.ones(10), atol=1e-5)


def test_noised_basis_init_is_unit_vectors_near_the_axes_and_tied():
    _, w = build("sae", seeds=3, n_dims=8, n_ground_truth=16, dict_ratio=1.0, init="noised_basis")
    dec, enc = w["W_dec"], w["W_enc"]
    assert torch.allclose(dec.norm(dim=-1), torch.ones(3, 16), atol=1e-5)
    axis = torch.arange(16) % 8
    assert torch.equal(dec.abs().argmax(-1), axis.expand(3, -1))  # latent j is nearest to e_(j mod d) ...
    own = dec[:, torch.arange(16), axis]
    assert (own > 0.5).all() and own.mean() > 0.85, own  # ... at a cosine of about 0.9 (noise norm 0.5)
    assert not torch.allclose(dec[:, :8], dec[:, 8:], atol=1e-2)  # the noise separates latents sharing an axis
    assert torch.equal(enc, dec)


@pytest.mark.parametrize("init", ["svd", "noised_basis"])
def test_new_inits_depend_only_on_the_instance_seed(init: str):
    spec = make_spec({**SMALL, "toy_steps": 10, "seeds": 2}, {"init": f"{init},orthogonal"}, model="sae_hidden")
    configs = [inst.config for inst in spec.instances()]
    mixed = get_model("sae_hidden")(Hyper(configs, CPU), CounterRNG(torch.tensor([c["seed"] for c in configs]),
                                                                    CPU)).init_weights()
    for k, config in enumerate(configs):
        _, alone = build(init=config["init"], seed=config["seed"], toy_steps=10)
        for name in ("ground_truth", "W_enc", "W_dec"):
            assert torch.equal(mixed[name][k], alone[name][0]), (name, config["init"])


# --- the preset ------------------------------------------------------------------------------


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_preset_runs_and_stores_the_columns(tmp_path: Path):
    spec = load("sae-hidden", sets=["steps=30", "toy_steps=30", "eval_batch_size=256"],
                sweeps=["dict_ratio=0.6,2", "l1=0.01,0.1"], seeds=1)
    outcome = run_sweep(spec, tmp_path, run_options())
    assert outcome.status == "completed", outcome.error
    rows = _csv_rows(outcome.run_dir / "results.csv")
    assert len(rows) == 4
    assert {"dict_ratio", "l1", "mmcs", "mmcs_chance", "features_recovered", "recovery_cosine",
            "toy_features_represented", "dead_latents", "l0", "reconstruction_mse", "normalised_mse", "n_latents",
            "toy_loss"} <= set(rows[0])
    features = _csv_rows(outcome.run_dir / "features.csv")
    assert {"max_cosine", "recovered", "represented", "toy_norm"} <= set(features[0])
    assert len(features) == 4 * 60  # per instance, one row per toy feature
