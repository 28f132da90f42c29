"""The phase-diagram kind's declaration (n=2, m=1 and n=3, m=2): relu_output's parameters with valid defaults,
and the phase columns (trained by engine/models/relu_output_phase.py)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from toysup.engine.errors import SpecError
from toysup.engine.kinds.base import Column
from toysup.engine.kinds.relu_output import FEATURE_COLUMNS, ReluOutputKind

PHASES: tuple[str, ...] = ("not_learned", "superposed", "dedicated")  # results.csv stores the index (0, 1, 2)
SIZES = ((2, 1), (3, 2))  # (n_features, n_hidden): the paper's two diagrams


class ReluOutputPhaseKind(ReluOutputKind):
    kind = "relu_output_phase"
    implementation = "toysup.engine.models.relu_output_phase:ReluOutputPhase"
    summary = ("relu_output with n=2, m=1 or n=3, m=2 and the phase of the extra (last) feature (not learned / "
               "superposed / dedicated)")
    # Defaults that pass check(): a form or a bare preset starts from a valid diagram point.
    params = tuple(
        replace(p, default={"n_features": 2, "n_hidden": 1}[p.name]) if p.name in ("n_features", "n_hidden") else p
        for p in ReluOutputKind.params
    )
    columns = (
        Column("loss", "final expected importance-weighted MSE (relu_output's sparse-data estimator)", headline=1,
               keep=1),
        Column("loss_se", "standard error of loss", summary="wide", chart=False, short="±loss"),
        Column("phase", "the extra feature 1: " + ", ".join(f"{i} {p}" for i, p in enumerate(PHASES)), "int"),
        Column("features_represented", "features whose ablation raises the loss by > 10% of their constant-output "
               "loss (relu_output's rule)", "int", headline=2, keep=2, short="repr"),
        Column("extra_norm", "||W_extra||, the extra (last) feature's embedding norm"),
        Column("first_norm", "||W_0||, the first feature's embedding norm"),
        Column("antipodal", "the extra feature is represented and shares its direction with another represented "
               "feature with the opposite sign (the paper's W = [1, -1])", "bool"),
    )
    feature_columns = tuple(replace(c, help="1, and importance_decay for the extra (last) feature")
                            if c.name == "importance" else c for c in FEATURE_COLUMNS)

    @classmethod
    def check(cls, config: dict[str, Any]) -> None:
        super().check(config)
        if (config["n_features"], config["n_hidden"]) not in SIZES:
            raise SpecError(f"model {cls.kind} needs n_features=2 and n_hidden=1, or n_features=3 and n_hidden=2 "
                            f"(got {config['n_features']} and {config['n_hidden']}); use relu_output for other sizes")


def phase_name(value: Any) -> str:
    """A phase from results.csv (its index, an integral float, or its name) as its name."""
    if isinstance(value, str):
        if value in PHASES:
            return value
        raise ValueError(f"unknown phase {value!r}: expected one of {', '.join(PHASES)}")
    index = int(value)
    if index != value or not 0 <= index < len(PHASES):
        raise ValueError(f"unknown phase index {value!r}: expected 0-{len(PHASES) - 1}")
    return PHASES[index]
