"""Every parameter a sweep can set, declared once.

The CLI's ``-s``/``--sweep`` parsing, the spec validation and the TUI's form all
read these declarations, so a parameter's name, type, default, range and help
text live here and nowhere else. A model lists the parameters it uses (shared
tuples from here plus its own, see ``engine/models``); every model also takes
:data:`TRAINING_PARAMS`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from toysup.engine.errors import SpecError

Kind = Literal["int", "float", "choice", "bool", "str"]


@dataclass(frozen=True)
class Param:
    """One user-settable parameter.

    ``structural`` marks parameters that change tensor shapes or the training
    loop itself (sizes, step count, optimiser). Instances are grouped by them;
    every other parameter becomes a per-instance tensor inside one batch.
    ``per_instance`` is False for sweep-level settings (``seeds``) that are not
    a property of a trained instance.
    """

    name: str
    kind: Kind
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] = ()
    structural: bool = False
    per_instance: bool = True
    log_scale: bool = False  # a sensible axis for charts and the TUI's range hint
    unit: str = ""  # of a number, as errors and the form name it: "a number of GiB in (0, inf)"
    short: str = ""  # the abbreviated header of narrow tables ("p"); "" keeps the name

    def range_text(self) -> str:
        """The valid values in the notation users see in errors and the form."""
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices)
        if self.kind == "bool":
            return "true or false"
        if self.kind == "str":
            return "text"
        lo = "-inf" if self.low is None else _fmt(self.low)
        hi = "inf" if self.high is None else _fmt(self.high)
        left = "(" if self.low_open or self.low is None else "["
        right = ")" if self.high_open or self.high is None else "]"
        kind = ("an integer" if self.kind == "int" else "a number") + (f" of {self.unit}" if self.unit else "")
        return f"{kind} in {left}{lo}, {hi}{right}"

    def parse(self, raw: Any) -> Any:
        """Coerce a TOML value or a command-line string, then check its range."""
        value = self._coerce(raw)
        self.check(value)
        return value

    def named(self, shown: str) -> str:
        """The parameter with a value, as errors quote it: ``steps=0``."""
        return f"{self.name}={shown}"

    def check(self, value: Any) -> None:
        if self.kind == "choice":
            if value not in self.choices:
                raise SpecError(f"{self.named(repr(value))} is not valid: expected {self.range_text()}")
            return
        if self.kind in ("bool", "str"):
            return
        if isinstance(value, float) and not math.isfinite(value):
            raise SpecError(f"{self.named(str(value))} is not valid: expected {self.range_text()}")
        bad = (
            (self.low is not None and (value < self.low or (self.low_open and value == self.low)))
            or (self.high is not None and (value > self.high or (self.high_open and value == self.high)))
        )
        if bad:
            raise SpecError(f"{self.named(_fmt(value))} is out of range: expected {self.range_text()}")

    def _coerce(self, raw: Any) -> Any:
        what = self.range_text()
        if self.kind == "bool":
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("true", "1", "yes", "on"):
                return True
            if text in ("false", "0", "no", "off"):
                return False
            raise SpecError(f"{self.named(repr(raw))} is not valid: expected {what}")
        if self.kind in ("choice", "str"):
            return str(raw).strip()
        if isinstance(raw, bool):
            raise SpecError(f"{self.named(repr(raw))} is not valid: expected {what}")
        try:
            if self.kind == "int":
                if isinstance(raw, float):
                    if not raw.is_integer():
                        raise ValueError
                    return int(raw)
                if isinstance(raw, str):
                    number = float(raw.strip().replace("_", ""))
                    if not number.is_integer():
                        raise ValueError
                    return int(number)
                return int(raw)
            return float(raw)
        except (TypeError, ValueError):
            raise SpecError(f"{self.named(repr(raw))} is not valid: expected {what}") from None


def _fmt(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


SEED_MODES = ("paired", "independent")

# Parameters every model trains with.
TRAINING_PARAMS: tuple[Param, ...] = (
    Param("steps", "int", 5000, "training steps", low=1, high=10_000_000, structural=True, log_scale=True),
    Param("batch_size", "int", 1024, "samples per step, drawn fresh each step", low=1, high=1_000_000,
          structural=True, log_scale=True),
    Param("lr", "float", 1e-3, "learning rate (constant)", low=0.0, high=100.0, low_open=True, log_scale=True),
    Param("weight_decay", "float", 0.0,
          "weight decay: decoupled for adamw, an L2 term in the gradient for adam and sgd",
          low=0.0, high=100.0),
    Param("optimizer", "choice", "adam", "optimiser: adam, adamw (decoupled decay) or sgd (plain, no momentum)",
          choices=("adam", "adamw", "sgd"), structural=True),
    Param("seed", "int", 0, "first seed; seed indices are seed, seed+1, ... (same seed = same init and data)",
          low=0, high=2**31 - 1),
    Param("seeds", "int", 1, "instances (seeds) trained per sweep point", low=1, high=1_000_000,
          per_instance=False),
    Param("seed_mode", "choice", "paired",
          "paired: every sweep point trains seeds seed..seed+seeds-1, so points share their initial weights and "
          "data (common random numbers: smooth curves, paired comparisons); independent: point k trains seeds "
          "seed+k*seeds.., distinct draws at every point (counts over seeds are independent samples)",
          choices=SEED_MODES, per_instance=False),
    Param("eval_batch_size", "int", 4096, "evaluation budget: Monte Carlo inputs for the final metrics (superposition "
          "models: of the co-activation stratum, whose standard error is loss_se; other models: the batch)",
          low=1, high=1_000_000, structural=True),
    Param("snapshots", "int", 0, "weight snapshots kept during training at log-spaced steps, plus the initial "
          "weights (0 = final weights only)", low=0, high=1000, structural=True),
)

CORRELATIONS = ("none", "correlated", "anticorrelated")  # how feature pairs are drawn (engine/data.py)
# Values of an active feature (Nanda's open problem: feature values other than uniform), drawn in engine/data.py.
FEATURE_DISTS = ("uniform", "binary", "exponential", "pareto")

# The toy-models-of-superposition setting (Elhage et al. 2022), shared by the models built on it.
SUPERPOSITION_PARAMS: tuple[Param, ...] = (
    Param("n_features", "int", 5, "number of input features n", low=1, high=100_000, structural=True),
    Param("n_hidden", "int", 2, "hidden dimensions (neurons) m", low=1, high=100_000, structural=True),
    Param(
        "feature_probability", "float", 0.1,
        "probability p = 1 - S that a feature is non-zero in a sample",
        low=0.0, high=1.0, low_open=True, log_scale=True, short="p",
    ),
    Param(
        "importance_decay", "float", 1.0,
        "importance of feature i is decay**i (1 = all features equally important)",
        low=0.0, high=10.0, low_open=True, short="decay",
    ),
    Param("carry_threshold", "float", 0.5,
          "neuron n carries feature i if |W_n,i| >= threshold * ||W_i|| (polysemanticity)",
          low=0.0, high=1.0, low_open=True),
)


def param_table(model_params: tuple[Param, ...] = ()) -> dict[str, Param]:
    """A model's parameters (listed first, as a form shows them) plus the training parameters, by name."""
    table = {p.name: p for p in model_params}
    for p in TRAINING_PARAMS:
        table.setdefault(p.name, p)
    return table
