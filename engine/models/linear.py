"""The linear baseline: h = W x, x' = W^T h + b. It learns PCA, so no superposition."""

from toysup.engine.kinds.linear import LinearKind
from toysup.engine.models.relu_output import ReluOutput


class Linear(LinearKind, ReluOutput):
    relu = False
