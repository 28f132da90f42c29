"""SAEs on a toy model's hidden activations (engine/models/sae_hidden.py), and the two initialisations
proposed for them (init=svd, init=noised_basis; engine/models/sae.py).

Headline outcome on a small seeded config: the toy model (n=5 features in m=2 dimensions, sparse)
stores all five features as a pentagon, and an SAE with twice as many latents and a moderate L1
recovers the five directions (MMCS > 0.9); three latents cannot.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from engine.models import Hyper, get_model
from engine.models.sae import mmcs
from engine.rng import DATA, CounterRNG
from engine.runner import run_sweep
from engine.spec import load

from helpers import CPU, by_instance, make_spec, train_all

# Trains in a few seconds: toy model 3000 steps at lr 1e-2 (a pentagon at p = 0.05), SAE 2000 steps.
SMALL = {"n_features": 5, "n_hidden": 2, "feature_probability": 0.05, "toy_steps": 3000, "toy_lr": 1e-2,
         "steps": 2000, "batch_size": 256, "lr": 1e-2, "eval_batch_size": 2048, "l1": 0.1}


def build(kind: str = "sae_hidden", seeds: int = 1, **params: Any):
    """A model object for ``seeds`` instances (seeds 0, 1, ...) and its initial weights."""
    base = SMALL if kind == "sae_hidden" else {"batch_size": 256}
    spec = make_spec({**base, "seeds": seeds, **params}, model=kind)
    configs = [inst.config for inst in spec.instances()]
    model = get_model(kind)(Hyper(configs, CPU), CounterRNG(torch.tensor([c["seed"] for c in configs]), CPU))
    return model, model.init_weights()


# --- the published outcome -------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained() -> dict[int, dict[str, Any]]:
    spec = make_spec({**SMALL, "seeds": 2}, {"dict_ratio": "0.6,2"}, model="sae_hidden")
    return by_instance(train_all(spec))


def _by_ratio(trained: dict[int, dict[str, Any]], ratio: float) -> list[dict[str, Any]]:
    return [r for r in trained.values() if r["config"]["dict_ratio"] == ratio]


def test_the_toy_model_represents_all_five_features(trained):
    for run in trained.values():
        assert run["metrics"]["toy_features_represented"] == 5, run["metrics"]
        assert run["features"]["represented"].tolist() == [1] * 5


def test_a_large_dictionary_recovers_the_toy_models_five_directions(trained):
    for run in _by_ratio(trained, 2.0):
        m = run["metrics"]
        assert m["mmcs"] > 0.9, m
        assert m["features_recovered"] >= 4, m
        assert m["n_latents"] == 10
        assert m["normalised_mse"] < 0.2, m  # it also reconstructs h


def test_a_dictionary_smaller_than_the_features_does_not(trained):
    small = [r["metrics"]["mmcs"].item() for r in _by_ratio(trained, 0.6)]
    large = [r["metrics"]["mmcs"].item() for r in _by_ratio(trained, 2.0)]
    assert max(small) < 0.85, small  # 3 latents for 5 directions
    assert min(large) - max(small) > 0.15, (small, large)
    for run in _by_ratio(trained, 0.6):
        assert run["metrics"]["features_recovered"] <= 3


def test_features_csv_holds_the_per_feature_max_cosine_that_mmcs_averages(trained):
    for run in trained.values():
        best, mask = run["features"]["max_cosine"], run["features"]["represented"].bool()
        assert best.shape == (5,)
        assert math.isclose(best[mask].mean().item(), run["metrics"]["mmcs"].item(), abs_tol=1e-5)
        norms = run["weights"]["ground_truth"].norm(dim=-1)
        assert torch.allclose(run["features"]["toy_norm"], norms)


def test_the_toy_model_is_the_one_relu_output_trains_from_the_same_seed(trained):
    """One piece of code trains the toy model: a relu_output run with the same settings and seeds gives
    the same W, and every dictionary size of a seed is scored against that one toy model."""
    toy = {"n_features": 5, "n_hidden": 2, "feature_probability": 0.05, "steps": SMALL["toy_steps"],
           "lr": SMALL["toy_lr"], "batch_size": 1024, "eval_batch_size": SMALL["eval_batch_size"], "seeds": 2}
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
    from engine.errors import SpecError

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
    outcome = run_sweep(spec, tmp_path, device="cpu")
    assert outcome.status == "completed", outcome.error
    rows = _csv_rows(outcome.run_dir / "results.csv")
    assert len(rows) == 4
    assert {"dict_ratio", "l1", "mmcs", "features_recovered", "toy_features_represented", "dead_latents", "l0",
            "reconstruction_mse", "normalised_mse", "n_latents", "toy_loss"} <= set(rows[0])
    features = _csv_rows(outcome.run_dir / "features.csv")
    assert {"max_cosine", "represented", "toy_norm"} <= set(features[0])
    assert len(features) == 4 * 5  # per instance, one row per toy feature
