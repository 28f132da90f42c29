"""The linear baseline's declaration: relu_output without its output nonlinearity (trained by
engine/models/linear.py)."""

from toysup.engine.kinds.relu_output import ReluOutputKind


class LinearKind(ReluOutputKind):
    kind = "linear"
    implementation = "toysup.engine.models.linear:Linear"
    summary = "h = W x, x' = W^T h + b: the linear baseline, which does PCA (no superposition)"
    # No output nonlinearity, so the activation choice does not apply.
    params = tuple(p for p in ReluOutputKind.params if p.name != "activation")
