"""The absolute-value model's declaration (computation in superposition, Elhage et al. 2022); trained by
engine/models/abs_value.py, whose docstring explains the metrics."""

from __future__ import annotations

from typing import Any

from toysup.engine.errors import SpecError
from toysup.engine.kinds.base import Column, ModelKind
from toysup.engine.params import SUPERPOSITION_PARAMS, Param

PROBE_POINTS = 64  # grid points on [-1, 1] for the isolated-feature probe (even: half on each side of 0)


class AbsValueKind(ModelKind):
    kind = "abs_value"
    implementation = "toysup.engine.models.abs_value:AbsValue"
    summary = "y = ReLU(W2 ReLU(W1 x) + b) learns |x| on sparse inputs in [-1, 1] (Elhage et al. 2022)"
    params = (
        *SUPERPOSITION_PARAMS,
        Param("w2_init", "choice", "independent",
              "W2 at init: independent (xavier, like W1; the literature's) or matched (W2 = |W1|^T, so every "
              "output starts alive for both signs of its own feature; independent leaves some outputs dead)",
              choices=("independent", "matched"), structural=True),
    )
    columns = (
        Column("loss", "final expected importance-weighted MSE against |x| (relu_output's sparse-data estimator)",
               headline=1, keep=1),
        Column("loss_se", "standard error of loss", summary="wide", chart=False, short="±loss"),
        Column("features_represented", "features computed: alone, the output explains > 50% of Var(|x_i|)", "int",
               headline=2, keep=2, short="repr"),
        Column("sides_computed", "sides of |x_i| (x_i < 0 or > 0, feature alone) explained > 50%, out of 2n", "int"),
        Column("sides_per_neuron", "sides_computed / m: above 1 only in superposition (a monosemantic neuron "
               "computes one side)"),
        Column("monosemantic_neurons", "neurons with max_i |W1_i,n| / ||W1_n|| > 0.99 (toysup's own cut)", "int",
               headline=4, summary="wide", short="mono"),
        Column("polysemantic_neurons", "neurons carrying 2+ features with a side computed "
               "(|W1_i,n| >= carry_threshold ||W1_i||)", "int", headline=3, keep=3, short="poly"),
        Column("mean_neuron_monosemanticity", "mean over neurons of max_i |W1_i,n| / ||W1_n||"),
        Column("trivial_loss", "the loss of the best constant predictor, I-weighted Var(|x_i|): the baseline"),
    )
    feature_columns = (
        Column("explained", "R_i: share of Var(|x_i|) explained with x_i alone active (1 = exact |x_i|)"),
        Column("explained_neg", "the same over x_i < 0 only (1 = exact ReLU(-x_i) side)"),
        Column("explained_pos", "the same over x_i > 0 only (1 = exact ReLU(x_i) side)"),
        Column("norm", "||W1_i||, feature i's input weights (scale-free only up to W2)"),
        Column("bias", "b_i"),
        Column("importance", "importance_decay ** i"),
    )

    @classmethod
    def check(cls, config: dict[str, Any]) -> None:
        if config["batch_size"] * config["n_features"] >= 2**31:
            raise SpecError("batch_size * n_features must stay below 2**31 values per instance and step")

    @classmethod
    def neuron_sense(cls, config: dict[str, Any]) -> str | None:
        """A ReLU on h (privileged); the inputs take both signs, so a weight of either sign drives."""
        return "magnitude"

    @classmethod
    def bytes_per_instance(cls, config: dict[str, Any]) -> int:
        n, m = config["n_features"], config["n_hidden"]
        train = config["batch_size"] * (10 * n + 6 * m)
        evaluate = max(config["eval_batch_size"], n * PROBE_POINTS) * (5 * n + 2 * m)
        return 4 * (max(train, evaluate) + 12 * n * m + 4 * n)
