"""The sparse autoencoder's declaration (Sharkey, Braun, Millidge 2022); trained by engine/models/sae.py,
whose docstring explains the data, loss and metrics."""

from __future__ import annotations

from typing import Any, ClassVar

from toysup.engine.errors import SpecError
from toysup.engine.kinds.base import Column, ModelKind
from toysup.engine.params import Param

# A ground-truth feature counts as recovered when some live decoder direction is closer than
# RECOVERED_COSINE and than the CHANCE_QUANTILE quantile of what a random dictionary of as many
# directions scores (engine/sae_chance.py): a random dictionary passes for 1% of features at most.
RECOVERED_COSINE = 0.9
CHANCE_QUANTILE = 0.99
# The SAE's evaluation scores LIVE_SLICES evaluation batches of eval_batch_size samples. A latent is
# live when it fires on at least LIVE_RATE * p of them (p: one ground-truth feature's probability of
# being active); the others are dead. A latent that carries a feature fires about as often as the
# feature (rate ~ p); on sae-hidden the measured rates are bimodal (most >= p/3 or < p/300), while
# "never fires on one batch" moved with the batch size (105 -> 68 dead of 240 at 16x the samples).
LIVE_RATE = 1 / 30
LIVE_SLICES = 16
NOISED_INIT_SCALE = 0.5  # init="noised": expected norm of the Gaussian noise added to each ground-truth copy
INITS = ("random", "orthogonal", "noised", "svd", "noised_basis")

COLUMNS: tuple[Column, ...] = (
    Column("loss", f"final MSE + l1 * L1, averaged over {LIVE_SLICES} evaluation batches", headline=1, keep=1),
    Column("mmcs", "mean over ground-truth features of the max cosine similarity with any live decoder direction "
           "(dead latents excluded); empty if every latent is dead", headline=2, keep=2),
    Column("mmcs_chance", "the MMCS a dictionary of as many uniformly random unit directions as the SAE has live "
           "latents scores in the same space, on average (exact to 1e-9): MMCS means recovery only well above it",
           headline=3, keep=3),
    Column("features_recovered", "ground-truth features whose max cosine with a live latent exceeds "
           "recovery_cosine", "int", headline=4),
    Column("recovery_cosine", f"the cut of features_recovered: {RECOVERED_COSINE}, or the "
           f"{CHANCE_QUANTILE:.0%} quantile of a random dictionary's max cosine with one feature (as many "
           "directions as live latents) if higher", summary="wide", chart=False),
    Column("dead_latents", f"latents that fire (c_j > 0) on fewer than 1/{round(1 / LIVE_RATE)} as many samples as "
           f"one ground-truth feature is active, counted on {LIVE_SLICES} evaluation batches; the others are live",
           "int"),
    Column("l0", f"mean number of active latents (c_j > 0) per sample, over {LIVE_SLICES} evaluation batches"),
    Column("reconstruction_mse",
           f"mean over samples and dimensions of (x - x_hat)^2, over {LIVE_SLICES} evaluation batches"),
    Column("n_latents", "dictionary size L = round(dict_ratio * n_ground_truth)", "int"),
)

FEATURE_COLUMNS: tuple[Column, ...] = (
    Column("max_cosine", "per ground-truth feature: max cosine similarity with any live decoder direction"),
    Column("best_latent", "per ground-truth feature: the live latent whose decoder direction is closest (-1: none)",
           "int"),
    Column("recovered", "1 if max_cosine exceeds the instance's recovery_cosine, else 0", "int"),
)

CURVE_COLUMNS: tuple[Column, ...] = (
    Column("mmcs", "MMCS of the decoder at this step, over the latents that fired within the last "
           "ceil(eval_batch_size / batch_size) training steps"),
    Column("l0", "mean active latents per sample on this step's training batch"),
)


def n_latents(dict_ratio: float, features: int) -> int:
    """Dictionary size: round(dict_ratio * G), at least 1."""
    return max(1, round(dict_ratio * features))


class SparseAutoencoderKind(ModelKind):
    # The dead-latent counters of resample_dead are not checkpointed: resume redoes the chunk.
    mid_chunk_checkpoints = False
    kind = "sae"
    implementation = "toysup.engine.models.sae:SparseAutoencoder"
    summary = "c = ReLU(W_e x + b_e), x_hat = W_d c, MSE + l1 |c|_1 on toy ground-truth features (Sharkey et al. 2022)"
    params: ClassVar[tuple[Param, ...]] = (
        Param("n_dims", "int", 32, "data dimensions d", low=1, high=100_000, structural=True),
        Param("n_ground_truth", "int", 64, "ground-truth features G (unit vectors in d dimensions)",
              low=1, high=100_000, structural=True),
        Param("dict_ratio", "float", 1.0, "dictionary size / G: the SAE has round(dict_ratio * G) latents",
              low=0.0, high=1000.0, low_open=True, structural=True, log_scale=True),
        Param("l1", "float", 1e-3, "L1 coefficient alpha on the codes", low=0.0, high=1e6, log_scale=True),
        Param("active_features", "float", 4.0,
              "mean number of ground-truth features active per sample (each with probability this / G)",
              low=0.0, high=100_000.0, low_open=True),
        Param("l1_norm", "choice", "sum",
              "L1 term: sum (mean over batch of sum_j |c_j|) or mean (divided by the dictionary size, "
              "as the paper's code did)", choices=("sum", "mean")),
        Param("resample_dead", "int", 0,
              "every this many steps (but not within the last interval), re-point latents that did not fire "
              "since the last check at the batch's worst-reconstructed residuals (0 = never)",
              low=0, high=10_000_000),
        Param("init", "choice", "orthogonal",
              "random (Gaussian), orthogonal (decoder, as the paper), noised (latent g starts as ground-truth "
              f"feature g plus noise of norm about {NOISED_INIT_SCALE}, encoder tied; latents beyond G random: "
              "a sanity baseline), svd (the data's right singular vectors, then their negatives; encoder tied) or "
              "noised_basis (latent j starts at the unit vector e_(j mod d) plus noise, renormalised; encoder tied)",
              choices=INITS),
    )
    columns = COLUMNS
    feature_columns = FEATURE_COLUMNS
    curve_columns = CURVE_COLUMNS
    frozen: ClassVar[tuple[str, ...]] = ("ground_truth",)

    @classmethod
    def sizes(cls, config: dict[str, Any]) -> tuple[int, int]:
        """(d, G): the data's dimensions and its number of ground-truth features."""
        return config["n_dims"], config["n_ground_truth"]

    @classmethod
    def latents(cls, config: dict[str, Any]) -> int:
        """Dictionary size L = round(dict_ratio * G)."""
        return n_latents(config["dict_ratio"], cls.sizes(config)[1])

    @classmethod
    def check(cls, config: dict[str, Any]) -> None:
        if config["active_features"] > config["n_ground_truth"]:
            raise SpecError(f"active_features={config['active_features']:g} exceeds n_ground_truth="
                            f"{config['n_ground_truth']}: each feature is active with probability "
                            "active_features / n_ground_truth")
        cls.check_width(config)

    @classmethod
    def check_width(cls, config: dict[str, Any]) -> None:
        """The (batch, features or latents) tensors must stay indexable by int32."""
        widest = max(cls.sizes(config)[1], cls.latents(config))
        if max(config["batch_size"], config["eval_batch_size"]) * widest >= 2**31:
            raise SpecError("batch_size (and eval_batch_size) * max(ground-truth features, latents) must stay "
                            "below 2**31 values per instance")

    @classmethod
    def bytes_per_instance(cls, config: dict[str, Any]) -> int:
        (d, G), L = cls.sizes(config), cls.latents(config)
        train = config["batch_size"] * (2 * G + 6 * L + 6 * d)
        evaluate = config["eval_batch_size"] * (2 * G + 3 * L + 3 * d)
        return 4 * (max(train, evaluate) + 12 * L * d + G * d + 4 * L)
