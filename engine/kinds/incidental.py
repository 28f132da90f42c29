"""The incidental-polysemanticity model's declaration (Lecomte et al. 2023); trained by
engine/models/incidental.py, whose docstring explains the model and metrics."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from toysup.engine.errors import SpecError
from toysup.engine.kinds.base import Column, ModelKind
from toysup.engine.params import SUPERPOSITION_PARAMS, Param

NOISES = ("none", "bernoulli", "gaussian", "three_point")
_SHARED = {p.name: p for p in SUPERPOSITION_PARAMS}

PARAMS: tuple[Param, ...] = (
    replace(_SHARED["n_features"], default=32),
    replace(_SHARED["n_hidden"], default=64, help="hidden neurons m (must be >= n_features: no superposition needed)"),
    Param("l1", "float", 1e-2, "coefficient on sum |W| added to the summed squared error (0 = off)",
          low=0.0, high=100.0),
    Param("noise", "choice", "none",
          "noise added to the hidden layer each step: none, bernoulli (+-noise_scale), gaussian (std noise_scale) "
          "or three_point (std noise_scale, kurtosis noise_kurtosis)", choices=NOISES),
    Param("noise_scale", "float", 0.1, "sigma of the hidden-layer noise (the Bernoulli amplitude or Gaussian std)",
          low=0.0, high=100.0),
    Param("noise_kurtosis", "float", 1.0,
          "kurtosis k of the three_point noise: 0 with probability 1 - 1/k, else +-noise_scale sqrt(k) (variance "
          "noise_scale^2 whatever k; k = 1 is the Bernoulli noise, 3 the Gaussian's kurtosis)",
          low=1.0, high=1000.0, log_scale=True),
    Param("tied", "bool", True, "tied weights y = ReLU(W W^T x) (the paper's); false: an encoder W and a decoder "
          "W_dec, both N(0, 1/m) and both under the L1, y = ReLU(W_dec W^T x) (the authors' untied option)",
          structural=True),
    Param("init_scale", "float", 1.0,
          "initial weights ~ N(0, (init_scale / sqrt(m))^2): 1 is the authors' std 1/sqrt(m), feature norms about 1",
          low=0.0, high=100.0, low_open=True),
    _SHARED["carry_threshold"],
)

COLUMNS: tuple[Column, ...] = (
    Column("loss", "final summed squared error over the identity batch, without noise or the L1 term", headline=1,
           keep=1),
    Column("polysemantic_neurons", "neurons carrying 2+ represented features (|W_n,i| >= carry_threshold ||W_i||); "
           "empty without L1 or Bernoulli noise (no privileged basis)", "int", headline=3, keep=3, short="poly"),
    Column("predicted_polysemantic", "n(n-1) / (4m) = C(n,2)/(2m), the paper's expected count; L1 runs without "
           "noise only"),
    Column("polysemantic_neurons_paper", "the authors' count: neurons with 2+ weights |W_n,i| in [0.8, 1.2]; empty "
           "without a privileged basis", "int"),
    Column("basis_sparsity", "mean over represented features of ||W_i||_4^4 / ||W_i||_2^4 (1 = one neuron each)"),
    Column("init_correlation", "mean over features of cos(W_init_i, W_final_i): the diagonal of W_init W_final^T"),
    Column("init_correlation_offdiag", "mean over i != j of |cos(W_init_j, W_final_i)|: the unrelated baseline"),
    Column("features_represented", "features whose ablation (W_i zeroed) raises the loss by > 10% of their "
           "zero-output loss, 1 (toysup's own cut)", "int", headline=2, keep=2, short="repr"),
    Column("features_near_unit", "features with some |W_n,i| in [0.8, 1.2] (sitting on one neuron)", "int"),
    Column("decoder_alignment", "mean over features of cos(W_i, W_dec_i), encoder against decoder; empty with "
           "tied weights"),
)

FEATURE_COLUMNS: tuple[Column, ...] = (
    Column("norm", "||W_i||"),
    Column("basis_sparsity", "||W_i||_4^4 / ||W_i||_2^4 (0 for a zero feature)"),
    Column("top_weight", "the largest-magnitude weight of feature i, with its sign"),
    Column("top_neuron", "the neuron holding that weight", "int"),
    Column("init_overlap", "cos(W_init_i, W_final_i)"),
)

CURVE_COLUMNS: tuple[Column, ...] = (
    Column("l1_norm", "sum |W| over all weights (n at a clean one-neuron-per-feature solution)"),
    Column("inverse_feature_l1", "mean over features of 1 / ||W_i||_1 (the encoder's): the paper's law is a/sqrt(m) "
           "+ c l1 t with a, c of order 1, t the gradient-flow time (lr x step under plain SGD), until it reaches 1"),
    Column("basis_sparsity", "mean over represented features of ||W_i||_4^4 / ||W_i||_2^4"),
)

NOISE_BLOCK_VALUES = 1 << 14  # hidden-noise values drawn at once per instance (steps * m)


def noise_block(m: int) -> int:
    """Steps of hidden noise drawn together: up to 256, fewer for wide layers to bound memory."""
    return max(1, min(256, NOISE_BLOCK_VALUES // m))


class IncidentalKind(ModelKind):
    kind = "incidental"
    implementation = "toysup.engine.models.incidental:Incidental"
    summary = "y = ReLU(W W^T x) on the identity, m >= n, L1 or hidden noise (Lecomte et al. 2023)"
    params = PARAMS
    columns = COLUMNS
    feature_columns = FEATURE_COLUMNS
    curve_columns = CURVE_COLUMNS

    @classmethod
    def check(cls, config: dict[str, Any]) -> None:
        if config["n_hidden"] < config["n_features"]:
            raise SpecError(f"n_hidden={config['n_hidden']} must be >= n_features={config['n_features']}: "
                            "incidental polysemanticity needs at least one neuron per feature")

    @classmethod
    def neuron_sense(cls, config: dict[str, Any]) -> str | None:
        """L1 on W or Bernoulli noise on h is not rotation-invariant: a privileged basis, where a weight
        of either sign drives its neuron (h = W^T x is linear). So is three_point noise (not isotropic at any
        kurtosis). Without them the basis is not privileged."""
        axis_noise = config["noise"] in ("bernoulli", "three_point") and config["noise_scale"] > 0
        return "magnitude" if config["l1"] > 0 or axis_noise else None

    @classmethod
    def bytes_per_instance(cls, config: dict[str, Any]) -> int:
        n, m = config["n_features"], config["n_hidden"]
        matrices = 1 if config.get("tied", True) else 2
        # W, its gradient, Adam's two moments, the init (metrics), h and autograd's copies (each twice
        # untied); the n x n output; the block of hidden noise and the RNG's scratch for it.
        return 4 * (10 * matrices * n * m + 6 * n * n + 8 * noise_block(m) * m)
