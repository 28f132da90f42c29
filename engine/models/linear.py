"""The linear baseline: h = W x, x' = W^T h + b. It learns PCA, so no superposition."""

from engine.models.relu_output import ReluOutput


class Linear(ReluOutput):
    kind = "linear"
    summary = "h = W x, x' = W^T h + b: the linear baseline, which does PCA (no superposition)"
    relu = False
    # No output nonlinearity, so the activation choice does not apply.
    params = tuple(p for p in ReluOutput.params if p.name != "activation")
