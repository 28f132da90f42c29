"""The ReLU output model's declaration (Elhage et al. 2022), shared by the kinds built on it; trained by
engine/models/relu_output.py."""

from __future__ import annotations

from typing import Any

from toysup.engine.errors import SpecError
from toysup.engine.kinds.base import Column, ModelKind
from toysup.engine.params import CORRELATIONS, FEATURE_DISTS, SUPERPOSITION_PARAMS, Param

SUPERPOSITION_COLUMNS: tuple[Column, ...] = (
    Column("loss", "final expected importance-weighted MSE (no dropout), by the sparse-data estimator: exact for "
           "no and one active feature, importance-sampled co-activation (eval_batch_size inputs)", headline=1, keep=1),
    Column("features_represented", "features whose mean ablation (x_i at its mean in h, output i the best "
           "constant) raises the loss by > 10% of their constant-output loss I_i Var(x_i)/n (toysup's own cut)",
           "int", headline=2, keep=3, short="repr"),
    Column("dims_per_feature", "D* = m / ||W||_F^2 (moves with the norms: dropout, decay and L1 shrink them)",
           headline=3, keep=4, short="D*"),
    Column("orientation_angle_deg", "angle between the largest-norm represented feature and its nearest hidden "
           "axis (empty if none is represented)",
           headline=5, keep=5, short="angle°"),
    # The orientation angle on another scale: in summaries only when there is room, never charted.
    Column("axis_alignment", "max_j |u_j| for u the largest-norm represented feature's unit direction", headline=6,
           summary="wide", chart=False, short="align"),
    Column("polysemantic_neurons", "neurons carrying 2+ represented features (drive >= carry_threshold ||W_i||); "
           "empty without a privileged basis", "int", headline=7, keep=6, short="poly"),
    Column("monosemantic_neurons", "neurons with max_i drive / ||drive|| > 0.99 (toysup's own cut); empty "
           "without a privileged basis", "int", headline=8, summary="wide", short="mono"),
    Column("max_feature_norm", "largest ||W_i||", short="max‖W‖"),
    Column("collapsed", "loss >= 0.98 trivial_loss: no better than the best constant output (2% margin, "
           "toysup's own), so orientation means nothing", "bool", headline=9, keep=2, summary="if_true"),
    Column("linear_regions", "effective number of linear regions, exp(entropy) of the ReLU activation patterns "
           "over a fixed probe of 32,768 inputs with at least one feature active (polytope lens); empty if > 5% of "
           "the probe is in regions seen once"),
    Column("features_per_dim", "features_represented / m: above 1 = superposition (scale-free)"),
    Column("mean_dimensionality", "mean D_i over represented features (scale-free; 1/2 antipodal pairs, "
           "2/5 pentagon)", headline=4),
    Column("trivial_loss", "the best constant output's loss, analytic: mean_i I_i Var(x_i) (the constant is "
           "E[x_i]; Var = p/3 - p^2/4 uniform, p(1 - p) binary, p/2 - p^2/4 exponential, p - p^2/4 Pareto)"),
    Column("loss_se", "standard error of loss (the co-activation stratum's Monte Carlo; the rest is exact)",
           summary="wide", chart=False, short="±loss"),
)

FEATURE_COLUMNS: tuple[Column, ...] = (
    Column("norm", "||W_i||"),
    Column("dimensionality", "D_i = ||W_i||^2 / sum_j (W^_i . W_j)^2"),
    Column("interference", "sum_{j != i} (W^_i . W_j)^2"),
    Column("bias", "b_i"),
    Column("importance", "importance_decay ** i"),
    Column("ablation_gain", "expected loss increase when feature i is mean-ablated, as a share of its "
           "constant-output loss (represented above 0.1); empty for constant data"),
    Column("ablation_gain_se", "standard error of ablation_gain (same inputs as the loss: common random numbers)"),
    Column("represented", "1 if feature i is represented (see features_represented), else 0", "int"),
)


ADAM_FLOPS_PER_PARAM = 14  # see flops_per_instance_step


def flops_per_instance_step(n: int, m: int, batch: int) -> int:
    """Floating-point operations in one relu_output training step of one instance, counted by hand.

    Conventions: a (a x k) by (k x b) matmul is 2abk, any other arithmetic or
    comparison is 1 per element, scalar work is free, and the integer hashing
    that makes random bits is not floating-point work. With B the batch, n the
    features and m the hidden size:

    - data, 3Bn: scale a uniform by 1/p, compare it with the threshold, select;
    - forward, 4Bnm + 2Bn: h = x W (2Bnm), pre = h W^T + b (2Bnm + Bn), out = ReLU(pre) (Bn);
    - loss, 4Bn: out - x, square, times the importance, sum;
    - backward, 6Bnm + 3Bn + nm: g = dloss/dpre = importance * (out - x) * [pre > 0] (2Bn, the constant 2/(Bn)
      folded into the importance), db = sum over the batch of g (Bn), dh = g W (2Bnm), dW = x^T dh + g^T h
      (4Bnm + nm);
    - Adam, 14 per parameter (nm + n parameters): first moment 3, second moment 4, two bias corrections,
      square root, epsilon, divide, times lr, subtract.

    In all 10Bnm + 12Bn + nm + 14(nm + n): 1,271,540 at n=20, m=5, B=1024, of which the
    five matmuls are 80%.
    """
    matmuls = 10 * batch * n * m
    elementwise = (3 + 2 + 4 + 3) * batch * n + n * m
    return matmuls + elementwise + ADAM_FLOPS_PER_PARAM * (n * m + n)


class ReluOutputKind(ModelKind):
    kind = "relu_output"
    implementation = "toysup.engine.models.relu_output:ReluOutput"
    summary = "h = W x, x' = ReLU(W^T h + b), importance-weighted MSE (Elhage et al. 2022)"
    params = (
        *SUPERPOSITION_PARAMS,
        Param("dropout", "float", 0.0, "dropout rate q on h in training; survivors scaled by 1/(1-q)",
              low=0.0, high=1.0, high_open=True),
        Param("activation", "choice", "relu", "output nonlinearity: relu (the paper's), gelu or silu",
              choices=("relu", "gelu", "silu"), structural=True),
        Param("correlation", "choice", "none",
              "feature pairs (0,1), (2,3), ...: none, correlated (shared on/off draw) or anticorrelated "
              "(at most one active; needs p <= 0.5)", choices=CORRELATIONS, structural=True),
        Param("feature_dist", "choice", "uniform",
              "value of an active feature: uniform on [0, 1) (the paper's), binary (exactly 1), exponential "
              "(mean 1/2) or pareto (Pareto II, P(x > t) = (1 + t)^-3, mean 1/2)", choices=FEATURE_DISTS,
              structural=True),
        Param("probability_ratio", "float", 1.0,
              "the second half of the features has probability feature_probability * ratio (1 = uniform)",
              low=0.0, high=1000.0, low_open=True, log_scale=True),
        Param("hidden_l1", "float", 0.0, "L1 penalty on the hidden layer: loss += hidden_l1 * mean over batch of "
              "sum_j |h_j|", low=0.0, high=100.0),
    )
    columns = SUPERPOSITION_COLUMNS
    feature_columns = FEATURE_COLUMNS

    @classmethod
    def neuron_sense(cls, config: dict[str, Any]) -> str | None:
        """h = W x is linear, and without dropout or an L1 penalty on h the loss is the same for any
        rotation of h: no privileged basis, so no neuron metrics. Dropout or hidden_l1 > 0 make
        the basis privileged; a weight of either sign then drives its neuron."""
        return "magnitude" if config.get("dropout", 0) > 0 or config.get("hidden_l1", 0) > 0 else None

    @classmethod
    def check(cls, config: dict[str, Any]) -> None:
        if config["batch_size"] * config["n_features"] >= 2**31:
            raise SpecError("batch_size * n_features must stay below 2**31 values per instance and step")
        p = config["feature_probability"]
        p2 = p * config.get("probability_ratio", 1.0)
        if p2 > 1:
            raise SpecError(f"feature_probability * probability_ratio = {p2:g} exceeds 1; lower one of them")
        if config.get("correlation") == "anticorrelated" and max(p, p2) > 0.5:
            raise SpecError(f"anticorrelated pairs need feature_probability <= 0.5 (got {max(p, p2):g}): "
                            "at most one feature of a pair is active")

    @classmethod
    def bytes_per_instance(cls, config: dict[str, Any]) -> int:
        n, m = config["n_features"], config["n_hidden"]
        train = config["batch_size"] * (10 * n + 6 * m)
        # The evaluation (engine/estimator.py, EVAL_ROWS instances at a time, blocks of at most 4,096 inputs)
        # and the linear-region probe (PROBE_ROWS instances at a time) take a fixed amount of memory, not a
        # share per instance (at n=20 tens of MB each on a CPU).
        return 4 * (train + 8 * n * m + 4 * n)
