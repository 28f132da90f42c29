"""The sparse autoencoder on toy data (engine/models/sae.py; Sharkey, Braun, Millidge 2022).

Headline outcome on a small seeded config: a dictionary at least as large as the ground truth
with a moderate L1 recovers the features (MMCS > 0.9), half as many latents as features cannot.
Metrics are checked on hand-built decoders with known answers; the fused training loss against
plain autograd; the frozen ground truth, resampling and the preset through the run store.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from toysup.engine.errors import SpecError
from toysup.engine.kinds.sae import LIVE_SLICES
from toysup.engine.models import Hyper, get_model
from toysup.engine.models.sae import RECOVERED_COSINE, code_stats, max_cosine, mmcs, recovery_cosine
from toysup.engine.rng import DATA, EVAL, CounterRNG
from toysup.engine.runner import run_sweep
from toysup.engine.sae_chance import chance_quantile, expected_max_cosine, mmcs_chance
from toysup.engine.spec import load

from helpers import CPU, by_instance, make_spec, run_options, train_all

# Small enough to train in a few seconds: G = 2d features in superposition, 2 active per sample.
SMALL = {"n_dims": 10, "n_ground_truth": 20, "active_features": 2, "steps": 600, "batch_size": 128,
         "lr": 1e-2, "eval_batch_size": 2048}
GEN = torch.Generator().manual_seed(0)  # hand-built weights only; the model draws from its counter RNG


def build(seeds: int = 1, **params: Any):
    """A model object for ``seeds`` instances of one config (seeds 0, 1, ...), and its initial weights."""
    spec = make_spec({**SMALL, "seeds": seeds, **params}, model="sae")
    configs = [inst.config for inst in spec.instances()]
    hp = Hyper(configs, CPU)
    model = get_model("sae")(hp, CounterRNG(torch.tensor([c["seed"] for c in configs]), CPU))
    return model, model.init_weights()


# --- the published outcome -------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained() -> dict[int, dict[str, Any]]:
    spec = make_spec({**SMALL, "seeds": 2}, {"dict_ratio": "0.5,2", "l1": "0.001,0.03"}, model="sae")
    return by_instance(train_all(spec))


def _by_ratio(trained: dict[int, dict[str, Any]], ratio: float, l1: float = 0.03) -> list[dict[str, Any]]:
    return [r for r in trained.values() if r["config"]["dict_ratio"] == ratio and r["config"]["l1"] == l1]


def test_large_dictionary_with_moderate_l1_recovers_the_features(trained):
    for run in _by_ratio(trained, 2.0):
        m = run["metrics"]
        assert m["mmcs"] > 0.9, m
        # Well above what a random dictionary of as many (live) directions in 10-D scores (about 0.6).
        live = m["n_latents"] - m["dead_latents"]
        assert m["mmcs_chance"].item() == pytest.approx(expected_max_cosine(10, int(live)), abs=1e-6)
        assert m["mmcs"] > m["mmcs_chance"] + 0.25, m
        assert m["features_recovered"] >= 0.8 * SMALL["n_ground_truth"], m
        # Sparse codes: about as many active latents as active true features (2), not the dense 10+.
        assert m["l0"] < 6, m
        assert m["n_latents"] == 40


def test_too_small_dictionary_leaves_features_in_superposition(trained):
    small = [r["metrics"]["mmcs"].item() for r in _by_ratio(trained, 0.5)]
    large = [r["metrics"]["mmcs"].item() for r in _by_ratio(trained, 2.0)]
    assert max(small) < 0.85, small
    assert min(large) - max(small) > 0.1, (small, large)


def test_too_small_l1_leaves_features_in_superposition(trained):
    """With a large dictionary but almost no sparsity pressure the codes stay dense and the decoder
    directions are mixtures of features."""
    weak = [r["metrics"] for r in _by_ratio(trained, 2.0, l1=0.001)]
    good = [r["metrics"] for r in _by_ratio(trained, 2.0)]
    assert max(m["mmcs"].item() for m in weak) < 0.9, weak
    assert min(m["l0"].item() for m in weak) > 2 * max(m["l0"].item() for m in good)
    # ... while reconstructing better: the L1 trade-off, not a failure to train.
    assert max(m["reconstruction_mse"].item() for m in weak) < min(m["reconstruction_mse"].item() for m in good)


def test_decoder_directions_are_unit_norm_after_training(trained):
    for run in trained.values():
        norms = run["weights"]["W_dec"].norm(dim=-1)
        assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5)


def test_ground_truth_is_saved_unit_norm_and_untrained(trained):
    _, initial = build(seeds=2, dict_ratio=2.0)
    for run in _by_ratio(trained, 2.0):
        seed = run["config"]["seed"]
        gt = run["weights"]["ground_truth"]
        assert gt.shape == (SMALL["n_ground_truth"], SMALL["n_dims"])
        assert torch.equal(gt, initial["ground_truth"][seed])
        assert torch.allclose(gt.norm(dim=-1), torch.ones(len(gt)), atol=1e-6)


def test_max_cosine_is_kept_per_ground_truth_feature(trained):
    run = next(iter(trained.values()))
    best = run["features"]["max_cosine"]
    assert best.shape == (SMALL["n_ground_truth"],)
    assert math.isclose(best.mean().item(), run["metrics"]["mmcs"].item(), abs_tol=1e-5)
    assert int((best > RECOVERED_COSINE).sum()) == run["metrics"]["features_recovered"]


# --- metrics on hand-built decoders ------------------------------------------------------------


def test_decoder_equal_to_the_ground_truth_has_mmcs_one():
    gt = torch.nn.functional.normalize(torch.randn(2, 6, 4, generator=GEN), dim=-1)
    assert torch.allclose(mmcs(gt, gt), torch.ones(2), atol=1e-6)
    # Extra latents, permuted and rescaled copies change nothing; the best latent is found.
    perm = torch.tensor([5, 3, 0, 1, 2, 4])
    dec = torch.cat([3.0 * gt[:, perm], torch.randn(2, 5, 4, generator=GEN)], dim=1)
    best, latent = max_cosine(gt, dec)
    assert torch.allclose(best, torch.ones(2, 6), atol=1e-5)
    assert latent[0].tolist() == perm.argsort().tolist()


def test_mmcs_of_known_angles_and_signs():
    gt = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    c, s = math.cos(0.5), math.sin(0.5)
    dec = torch.tensor([[[c, s], [-1.0, 0.0]]])  # one rotated by 0.5 rad, one anti-parallel
    best, _ = max_cosine(gt, dec)
    # Feature 0: cos 0.5 rad (the anti-parallel column does not count: codes are non-negative).
    # Feature 1: the rotated column, cos(pi/2 - 0.5) = sin 0.5.
    assert best[0].tolist() == pytest.approx([c, s], abs=1e-6)
    assert mmcs(gt, dec).item() == pytest.approx((c + s) / 2, abs=1e-6)


def test_code_stats_count_firings_and_l0():
    codes = torch.tensor([[[0.5, 0.0, 0.0, 0.2],
                           [0.1, 0.0, 0.0, 0.0],
                           [0.3, 0.0, 0.0, 0.7]]])
    fires, l0 = code_stats(codes)
    assert fires.tolist() == [[3, 0, 0, 2]]  # samples on which each latent fires
    assert l0.tolist() == pytest.approx([5 / 3])


def test_exact_autoencoder_of_orthonormal_features():
    """G = d orthonormal features (the basis, so that float arithmetic is exact), W_enc = W_dec =
    ground truth, b = 0: codes are recovered exactly, so the MSE is 0, L0 is the data's own count of
    active features, and no latent is dead."""
    model, _ = build(n_dims=6, n_ground_truth=6, dict_ratio=1.0, active_features=2, l1=0.0)
    gt = torch.eye(6)[torch.tensor([3, 0, 5, 1, 4, 2])].unsqueeze(0)
    weights = {"ground_truth": gt, "W_enc": gt.clone(), "W_dec": gt.clone(), "b_enc": torch.zeros(1, 6)}
    metrics = model.metrics(weights)
    size = SMALL["eval_batch_size"]
    codes = torch.empty(1, size, 6)
    active = []
    for step in range(LIVE_SLICES):  # the evaluation batches' true codes
        model._data(EVAL, step, codes, torch.empty(1, size, 6), gt)
        active.append((codes > 0).sum(-1).float().mean().item())
    assert metrics["reconstruction_mse"].item() < 1e-10
    assert metrics["l0"].item() == pytest.approx(sum(active) / LIVE_SLICES, abs=1e-6)
    assert metrics["l0"].item() == pytest.approx(2.0, abs=0.1)
    assert metrics["dead_latents"].item() == 0
    assert metrics["mmcs"].item() == pytest.approx(1.0, abs=1e-6)
    assert metrics["features_recovered"].item() == 6
    # A latent whose bias keeps it below zero never fires: dead, and the rest still reconstruct.
    weights["b_enc"] = torch.tensor([[0.0, 0.0, -100.0, 0.0, 0.0, 0.0]])
    metrics = model.metrics(weights)
    assert metrics["dead_latents"].item() == 1
    assert metrics["reconstruction_mse"].item() > 1e-3
    # The dead latent still points exactly at feature 2 (the ground truth's third row), but represents
    # nothing: MMCS, the recovered count and chance are taken over the 5 live latents only.
    features = model.feature_metrics(weights)
    assert features["recovered"][0].tolist() == [1, 1, 0, 1, 1, 1]
    assert features["best_latent"][0, 2].item() != 2
    assert features["max_cosine"][0, 2].item() == pytest.approx(0.0, abs=1e-6)  # orthogonal to the live ones
    assert metrics["features_recovered"].item() == 5
    assert metrics["mmcs"].item() == pytest.approx(5 / 6, abs=1e-6)
    assert metrics["mmcs_chance"].item() == pytest.approx(expected_max_cosine(6, 5), abs=1e-6)


def test_max_cosine_over_live_latents_only():
    gt = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    dec = torch.tensor([[[1.0, 0.0], [0.6, 0.8], [0.0, -1.0]]])
    best, latent = max_cosine(gt, dec, torch.tensor([[False, True, True]]))
    assert best[0].tolist() == pytest.approx([0.6, 0.8])
    assert latent[0].tolist() == [1, 1]
    # No live latent: nothing to recover, NaN (an empty cell), not the dead directions' 1.0.
    best, latent = max_cosine(gt, dec, torch.zeros(1, 3, dtype=torch.bool))
    assert best.isnan().all() and latent.tolist() == [[-1, -1]]


# --- the chance level: a random dictionary's MMCS ------------------------------------------------


@pytest.mark.parametrize("latents", [1, 2, 5, 40, 1000])
def test_chance_in_three_dimensions_is_the_closed_form(latents: int):
    """In 3-D the cosine with a random direction is uniform on [-1, 1] (Archimedes), so the max of L
    has mean (L - 1)/(L + 1) and P(max <= t) = ((1 + t)/2)^L."""
    assert expected_max_cosine(3, latents) == pytest.approx((latents - 1) / (latents + 1), abs=1e-9)
    assert chance_quantile(3, latents, 0.99) == pytest.approx(2 * 0.99 ** (1 / latents) - 1, abs=1e-9)


def test_chance_in_one_dimension_and_without_latents():
    assert expected_max_cosine(1, 3) == pytest.approx(1 - 2 * 0.5**3)  # +-1 each: -1 only if all are
    assert math.isnan(expected_max_cosine(5, 0))
    assert mmcs_chance(4, torch.tensor([0, 1])).tolist()[1] == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize(("d", "latents"), [(2, 5), (2, 20), (10, 40), (20, 60)])
def test_chance_matches_random_dictionaries(d: int, latents: int):
    """Monte Carlo: the MMCS of uniformly random unit dictionaries against fixed features, averaged over
    4,000 dictionaries, within 4 standard errors of mmcs_chance; and the 99% quantile is exceeded by the
    max cosine of about 1% of them (the recovery cut's chance rate)."""
    gen = torch.Generator().manual_seed(d * 1000 + latents)
    features = torch.nn.functional.normalize(torch.randn(1, 5, d, generator=gen, dtype=torch.float64), dim=-1)
    dictionaries = torch.randn(4000, latents, d, generator=gen, dtype=torch.float64)
    best = max_cosine(features.expand(4000, -1, -1), dictionaries)[0]  # (4000, 5)
    values = best.mean(-1)
    se = values.std().item() / math.sqrt(len(values))
    assert abs(values.mean().item() - expected_max_cosine(d, latents)) < 4 * se, (values.mean(), se)
    exceeded = (best > chance_quantile(d, latents, 0.99)).double().mean().item()
    assert abs(exceeded - 0.01) < 4 * math.sqrt(0.01 * 0.99 / best.numel()), exceeded


def test_chance_in_two_dimensions_saturates():
    """The issue's numbers: random unit directions in 2-D score 0.79 / 0.93 / 0.98 against any features
    at 5 / 10 / 20 latents; so in 2-D the recovery cut rises to the chance quantile, far above 0.9."""
    assert [round(expected_max_cosine(2, n), 2) for n in (5, 10, 20)] == [0.79, 0.93, 0.98]
    cut = recovery_cosine(2, torch.tensor([10, 0]))
    assert cut[0].item() > 0.99999  # within 0.2 degrees: 10 random directions get there 1% of the time
    assert recovery_cosine(20, torch.tensor([60]))[0].item() == pytest.approx(RECOVERED_COSINE)


def test_noised_init_starts_near_the_ground_truth_and_others_do_not():
    for init, low, high in (("noised", 0.8, 1.0), ("orthogonal", 0.0, 0.7), ("random", 0.0, 0.7)):
        _, w = build(seeds=3, init=init, dict_ratio=1.0)
        value = mmcs(w["ground_truth"], w["W_dec"])
        assert ((value > low) & (value < high)).all(), (init, value)
        assert torch.allclose(w["W_dec"].norm(dim=-1), torch.ones(3, 20), atol=1e-5)


def test_noised_init_gives_one_copy_per_feature_and_random_latents_beyond():
    _, w = build(init="noised", dict_ratio=2.0)
    gt, dec, enc = w["ground_truth"][0], w["W_dec"][0], w["W_enc"][0]
    own = (gt * dec[:20]).sum(-1)  # latent g against feature g
    assert (own > 0.75).all(), own
    assert torch.equal(enc[:20], dec[:20])  # tied
    extra, _ = max_cosine(dec[None, 20:], gt[None])  # the other 20 latents are not copies
    assert extra.mean() < 0.7


def test_orthogonal_init_has_orthonormal_decoder_directions_when_they_fit():
    _, w = build(n_dims=16, n_ground_truth=20, dict_ratio=0.5)  # 10 latents in 16 dimensions
    gram = w["W_dec"] @ w["W_dec"].transpose(1, 2)
    assert torch.allclose(gram, torch.eye(10).expand_as(gram), atol=1e-5)


def test_init_and_ground_truth_depend_only_on_the_instance_seed():
    """Mixing init kinds in one batch must not change any instance's ground truth or weights."""
    spec = make_spec({**SMALL, "seeds": 2}, {"init": "noised,orthogonal"}, model="sae")
    configs = [inst.config for inst in spec.instances()]
    hp = Hyper(configs, CPU)
    mixed = get_model("sae")(hp, CounterRNG(torch.tensor([c["seed"] for c in configs]), CPU)).init_weights()
    for k, config in enumerate(configs):
        _, alone = build(seeds=1, init=config["init"], seed=config["seed"])
        for name in ("ground_truth", "W_enc", "W_dec"):
            assert torch.equal(mixed[name][k], alone[name][0]), (name, config["init"])


# --- the fused training loss ------------------------------------------------------------------


def test_fused_loss_matches_autograd_of_the_reference():
    model, w = build(seeds=2, dict_ratio=1.5, l1=0.02)
    w["b_enc"] += 0.05 * torch.randn(w["b_enc"].shape, generator=GEN)  # some pre-activations near zero
    params = ["W_enc", "b_enc", "W_dec"]
    for k in params:
        w[k].requires_grad_(True)
    scale = torch.tensor([1.0, 3.0])  # distinct per-instance upstream gradients
    fused = model.loss(w, step=5)
    ref, _, _ = model.reference_loss(w, model._x)
    assert torch.allclose(fused, ref, rtol=1e-5, atol=1e-7)
    g_fused = torch.autograd.grad((scale * fused).sum(), [w[k] for k in params])
    g_ref = torch.autograd.grad((scale * ref).sum(), [w[k] for k in params])
    for name, a, b in zip(params, g_fused, g_ref):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-7), name


def test_l1_norm_mean_divides_the_penalty_by_the_dictionary_size():
    model_sum, w = build(dict_ratio=2.0, l1=0.1)
    model_mean, _ = build(dict_ratio=2.0, l1=0.1, l1_norm="mean")
    x = model_sum._data(DATA, 1, model_sum._codes, model_sum._x, w["ground_truth"])
    loss_sum, mse, _ = model_sum.reference_loss(w, x)
    loss_mean, _, _ = model_mean.reference_loss(w, x)
    assert (loss_mean - mse).item() == pytest.approx((loss_sum - mse).item() / 40, rel=1e-5)


# --- resampling dead latents -----------------------------------------------------------------


def test_resampling_repoints_only_latents_that_did_not_fire():
    model, w = build(dict_ratio=1.0, resample_dead=10, l1=0.01)
    w["b_enc"][0, :5] = -100.0  # latents 0-4 can never fire
    before = {k: v.clone() for k, v in w.items()}
    for step in range(1, 11):
        model.loss(w, step)
        model.after_step(w, step)
    revived = model.metrics(w)
    assert (w["b_enc"][0, :5] == 0).all()
    # The resampled decoder directions are unit-length residual directions, distinct from before.
    assert torch.allclose(w["W_dec"][0, :5].norm(dim=-1), torch.ones(5), atol=1e-5)
    assert not torch.allclose(w["W_dec"][0, :5], before["W_dec"][0, :5])
    # Live latents are untouched (no optimiser step ran, and their columns were already unit).
    assert torch.allclose(w["W_dec"][0, 5:], before["W_dec"][0, 5:], atol=1e-6)
    assert torch.equal(w["W_enc"][0, 5:], before["W_enc"][0, 5:])
    assert revived["dead_latents"].item() < 5


def test_no_resampling_within_the_last_interval():
    """Steps 20, K = 10: resampling at step 10 only, so every resampled latent trains for K steps."""
    model, w = build(dict_ratio=1.0, resample_dead=10, steps=20)
    for step in range(1, 21):
        if step in (1, 11):
            w["b_enc"][0, :5] = -100.0  # dead again after the step-10 resample
        model.loss(w, step)
        model.after_step(w, step)
        if step == 10:
            assert (w["b_enc"][0, :5] == 0).all()
    assert (w["b_enc"][0, :5] == -100.0).all()


def test_resampling_off_leaves_dead_latents_dead():
    model, w = build(dict_ratio=1.0, resample_dead=0)
    w["b_enc"][0, :5] = -100.0
    for step in range(1, 11):
        model.loss(w, step)
        model.after_step(w, step)
    assert (w["b_enc"][0, :5] == -100.0).all()
    assert model.metrics(w)["dead_latents"].item() >= 5


# --- parameters and the preset ---------------------------------------------------------------


def test_more_active_features_than_features_is_a_user_error():
    with pytest.raises(SpecError, match="active_features"):
        make_spec({"n_ground_truth": 4, "active_features": 5}, model="sae")


def test_dictionary_size_is_rounded_ratio_times_ground_truth():
    for ratio, expected in ((0.5, 10), (1.0, 20), (0.01, 1), (1.26, 25)):
        _, w = build(dict_ratio=ratio)
        assert w["W_dec"].shape == (1, expected, SMALL["n_dims"]), ratio


def test_preset_runs_and_stores_the_columns(tmp_path: Path):
    spec = load("sae-recovery", sets=["steps=30", "eval_batch_size=256"],
                sweeps=["n_ground_truth=16,32", "dict_ratio=0.5,2", "l1=0.001,0.1"], seeds=1)
    outcome = run_sweep(spec, tmp_path, run_options())
    assert outcome.status == "completed", outcome.error
    with open(outcome.run_dir / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8
    for column in ("n_ground_truth", "dict_ratio", "l1", "loss", "mmcs", "mmcs_chance", "features_recovered",
                   "recovery_cosine", "dead_latents", "l0", "reconstruction_mse", "n_latents"):
        assert column in rows[0], column
    with open(outcome.run_dir / "features.csv", newline="") as f:
        features = list(csv.DictReader(f))
    assert {"max_cosine", "best_latent", "recovered"} <= set(features[0])
    assert len(features) == 2 * (16 + 32) * 2  # per instance, one row per ground-truth feature
