"""The compute kind's declaration (computation in superposition beyond |x|); trained by
engine/models/compute.py, whose docstring explains the functions and metrics."""

from __future__ import annotations

from typing import Any

from toysup.engine.errors import SpecError
from toysup.engine.kinds.abs_value import PROBE_POINTS, AbsValueKind
from toysup.engine.kinds.base import Column, ModelKind
from toysup.engine.params import SUPERPOSITION_PARAMS, Param

# The functions computed, each with its number of inputs (engine/models/compute.py implements them).
ARITY: dict[str, int] = {"abs": 1, "square": 1, "max": 2, "and": 2, "or": 2}
ABLATION_THRESHOLD = 0.1  # default: a neuron serves a function if zeroing it loses >= 10% of Var(f)


class ComputeKind(ModelKind):
    kind = "compute"
    implementation = "toysup.engine.models.compute:Compute"
    summary = ("n copies of |x|, x^2, max(x, y), AND or OR through one shared ReLU layer, sparse inputs: "
               "how many functions m neurons compute (computation in superposition)")
    params = (
        Param("function", "choice", "max", "the function computed n times: abs (|x|, x in [-1, 1]), square (x^2), "
              "max (max(x, y), x, y in [0, 1]), and, or (of two bits)", choices=tuple(ARITY), structural=True),
        Param("n_features", "int", 5, "number of functions n (each reads its own 1 or 2 inputs)", low=1,
              high=100_000, structural=True),
        SUPERPOSITION_PARAMS[1],
        Param("feature_probability", "float", 0.1, "probability p that a function's inputs are non-zero in a sample "
              "(all of them together)", low=0.0, high=1.0, low_open=True, log_scale=True, short="p"),
        Param("importance_decay", "float", 1.0, "importance of function i is decay**i (1 = all equally important)",
              low=0.0, high=10.0, low_open=True, short="decay"),
        Param("hidden_bias", "bool", True, "a trained bias on the hidden layer (off: abs_value's architecture; "
              "then x^2 is at best a hinge and AND uses the output bias)", structural=True),
        Param("hidden_activation", "choice", "relu", "the hidden layer's activation: relu, or linear (the control "
              "without a hidden nonlinearity: each output is then ReLU of an affine map of the inputs)",
              choices=("relu", "linear"), structural=True),
        Param("ablation_threshold", "float", ABLATION_THRESHOLD, "neuron k serves function i if zeroing it adds at "
              "least this share of the best affine readout's error to output i's", low=0.0, high=1.0, low_open=True),
        AbsValueKind.param_table()["w2_init"],
    )
    columns = (
        Column("loss", "final importance-weighted MSE against f on the training distribution (stratified by the "
               "number of active functions; loss_se is its standard error)", headline=1, keep=1),
        Column("loss_se", "standard error of loss (the stratified estimate's)", summary="wide", short="±"),
        Column("functions_computed", "functions whose error on the training distribution (others co-active as "
               "the data makes them) is below half the best affine readout's on the same inputs", "int",
               headline=2, keep=2, short="computed"),
        Column("functions_computed_hidden", "of those, functions whose error is also below half the best "
               "output-ReLU readout's ReLU(a.x + c) (no hidden nonlinearity; 0 for AND, which it solves)", "int",
               headline=3, keep=3, short="hidden"),
        Column("functions_computed_alone", "functions computed by the same rule on the isolated probe (inputs alone "
               "active over a grid): the old, optimistic rule", "int", headline=7, short="alone"),
        Column("functions_per_neuron", "functions_computed / m: above 1 only in superposition (each function "
               "needs a neuron of its own otherwise)", headline=4, keep=4, short="f/neuron"),
        Column("neurons_per_function", "mean over computed functions of the neurons serving each (zeroing one "
               "adds >= ablation_threshold of the affine readout's error, on the training distribution); empty "
               "if none is computed", headline=6, short="n/f"),
        Column("neurons_used", "neurons serving at least one computed function (empty for a linear hidden layer, "
               "as every neuron column: no privileged basis)", "int", headline=8, short="used"),
        Column("polysemantic_neurons", "neurons serving 2+ computed functions", "int", headline=5, keep=5,
               short="poly"),
        Column("monosemantic_neurons", "neurons with max_i ||W1_i,n|| / ||W1_n|| > 0.99, a function's inputs "
               "grouped (toysup's own cut)", "int", summary="wide", short="mono"),
        Column("mean_neuron_monosemanticity", "mean over neurons of max_i ||W1_i,n|| / ||W1_n||"),
        Column("trivial_loss", "the loss of the best constant output, I-weighted Var(f_i): the baseline"),
    )
    feature_columns = (
        Column("error", "E (y_i - f_i)^2 on the training distribution, other functions co-active (stratified)"),
        Column("error_se", "standard error of error"),
        Column("affine_error", "the best affine readout a.x_i + c's error on the same inputs (exact)"),
        Column("control_error", "the best output-ReLU readout ReLU(a.x_i + c)'s error on the same inputs (no "
               "hidden nonlinearity; fitted on a grid)"),
        Column("explained", "1 - error / Var(f_i): share of the best constant's error removed"),
        Column("beyond_linear", "1 - error / affine_error"),
        Column("wrong_rate", "P(|y_i - f_i| >= 1/2) on the training distribution: for AND and OR, the share of "
               "samples whose output rounds to the wrong bit (the U-AND constructions' accuracy, with co-activity)"),
        Column("beyond_linear_alone", "the same on the isolated probe (inputs alone active over a grid)"),
        Column("computed", "1 if error < 0.5 affine_error", "int"),
        Column("computed_hidden", "1 if also error < 0.5 control_error (the hidden layer's work)", "int"),
        Column("computed_alone", "1 if beyond_linear_alone > 0.5 (the old probe rule)", "int"),
        Column("neurons", "neurons serving function i (zeroing one adds >= ablation_threshold of the affine "
               "readout's error, on the training distribution)", "int"),
        Column("norm", "||W1_i||, function i's input weights (scale-free only up to W2)"),
        Column("bias", "b_i"),
        Column("importance", "importance_decay ** i"),
    )

    @classmethod
    def check(cls, config: dict[str, Any]) -> None:
        if config["batch_size"] * config["n_features"] * ARITY[config["function"]] >= 2**31:
            raise SpecError("batch_size * n_features * inputs per function must stay below 2**31 values per "
                            "instance and step")

    @classmethod
    def neuron_sense(cls, config: dict[str, Any]) -> str | None:
        """A ReLU on h (privileged); either sign of a weight can fire a neuron (pairs mix signs: y - x).
        A linear hidden layer (the control) has no privileged basis: neuron counts are left empty."""
        return None if config["hidden_activation"] == "linear" else "magnitude"

    @classmethod
    def bytes_per_instance(cls, config: dict[str, Any]) -> int:
        n, m = config["n_features"], config["n_hidden"]
        n_in = n * ARITY[config["function"]]
        train = config["batch_size"] * (8 * n_in + 4 * n + 6 * m)
        rows = -(-config["eval_batch_size"] // n) * n  # one stratum of the real-input evaluation
        evaluate = rows * (5 * n_in + 4 * n + 2 * m + 3 * m * n)
        probing = n * PROBE_POINTS * (4 * m + 4)
        return 4 * (max(train, evaluate, probing) + 12 * n_in * m + 6 * n + 6 * m)
