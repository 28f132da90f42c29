"""The declaration of an SAE on a trained toy model's hidden activations; trained by
engine/models/sae_hidden.py, whose docstring explains the two stages and the scoring."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from toysup.engine.kinds.base import Column
from toysup.engine.kinds.relu_output import ReluOutputKind
from toysup.engine.kinds.sae import COLUMNS as SAE_COLUMNS
from toysup.engine.kinds.sae import FEATURE_COLUMNS as SAE_FEATURE_COLUMNS
from toysup.engine.kinds.sae import SparseAutoencoderKind
from toysup.engine.params import SUPERPOSITION_PARAMS, Param

# The toy model's parameters this model exposes; the rest of relu_output's keep their defaults.
_TOY_PARAMS = {p.name: p for p in SUPERPOSITION_PARAMS}
_SAE_PARAMS = {p.name: p for p in SparseAutoencoderKind.params}
_SAE_COLUMN = {c.name: c for c in SAE_COLUMNS}

COLUMNS: tuple[Column, ...] = (
    _SAE_COLUMN["loss"],
    dataclasses.replace(_SAE_COLUMN["mmcs"], help="mean over the toy model's represented features of the max "
                        "cosine similarity between the feature's direction W_i (a column of the paper's W) and any "
                        "live decoder direction; empty if no feature is represented or every latent is dead"),
    dataclasses.replace(_SAE_COLUMN["mmcs_chance"], help="the MMCS a dictionary of as many uniformly random unit "
                        "directions in the n_hidden-dimensional space as the SAE has live latents scores, on "
                        "average (exact to 1e-9): MMCS means recovery only well above it"),
    dataclasses.replace(_SAE_COLUMN["features_recovered"], help="represented features whose max cosine with a "
                        "live latent exceeds recovery_cosine"),
    _SAE_COLUMN["recovery_cosine"],
    Column("toy_features_represented", "features the toy model represents (relu_output's rule: mean-ablating "
           "the feature raises its loss by > 10% of its constant-output loss)", "int"),
    _SAE_COLUMN["dead_latents"],
    _SAE_COLUMN["l0"],
    _SAE_COLUMN["reconstruction_mse"],
    Column("normalised_mse", "reconstruction error sum ||h - h_hat||^2 / sum ||h||^2 over the evaluation batches "
           "(0 = perfect, 1 = no better than h_hat = 0)"),
    Column("n_latents", "dictionary size L = round(dict_ratio * n_features)", "int"),
    Column("toy_loss", "the toy model's importance-weighted MSE on the evaluation batch"),
)

FEATURE_COLUMNS: tuple[Column, ...] = (
    *(dataclasses.replace(c, help="1 if the toy model represents the feature and its max_cosine exceeds the "
                          "instance's recovery_cosine, else 0") if c.name == "recovered" else c
      for c in SAE_FEATURE_COLUMNS),
    Column("represented", "1 if the toy model represents feature i (see toy_features_represented), else 0", "int"),
    Column("toy_norm", "||W_i||, the length of the toy model's feature direction"),
)


def toy_config(config: dict[str, Any]) -> dict[str, Any]:
    """The relu_output config of an instance's toy model: its own parameters, relu_output's defaults
    for the rest (no dropout, ReLU, uncorrelated features), Adam without weight decay."""
    toy = {name: p.default for name, p in ReluOutputKind.param_table().items()}
    toy.update({name: config[name] for name in ("n_features", "n_hidden", "feature_probability",
                                                "importance_decay", "eval_batch_size", "seed")})
    toy.update(steps=config["toy_steps"], lr=config["toy_lr"], batch_size=config["toy_batch_size"])
    return toy


class SaeHiddenKind(SparseAutoencoderKind):
    kind = "sae_hidden"
    implementation = "toysup.engine.models.sae_hidden:SaeHidden"
    summary = ("an SAE on the hidden activations h = W x of a ReLU output model trained first, scored against "
               "the toy model's own feature directions")
    params: ClassVar[tuple[Param, ...]] = (
        _TOY_PARAMS["n_features"],
        _TOY_PARAMS["n_hidden"],
        dataclasses.replace(_TOY_PARAMS["feature_probability"], default=0.05),
        _TOY_PARAMS["importance_decay"],
        Param("toy_steps", "int", 3000, "training steps of the toy model, before the SAE's `steps`",
              low=0, high=10_000_000, structural=True, log_scale=True),
        Param("toy_lr", "float", 1e-2, "the toy model's learning rate (Adam)", low=0.0, high=100.0, low_open=True,
              log_scale=True),
        Param("toy_batch_size", "int", 1024, "the toy model's samples per step", low=1, high=1_000_000,
              structural=True, log_scale=True),
        dataclasses.replace(_SAE_PARAMS["dict_ratio"], help="dictionary size / n_features: the SAE has "
                            "round(dict_ratio * n_features) latents"),
        _SAE_PARAMS["l1"],
        _SAE_PARAMS["l1_norm"],
        _SAE_PARAMS["resample_dead"],
        _SAE_PARAMS["init"],
    )
    columns = COLUMNS
    feature_columns = FEATURE_COLUMNS
    frozen: ClassVar[tuple[str, ...]] = ("ground_truth", "toy_b")

    @classmethod
    def sizes(cls, config: dict[str, Any]) -> tuple[int, int]:
        return config["n_hidden"], config["n_features"]

    @classmethod
    def check(cls, config: dict[str, Any]) -> None:
        ReluOutputKind.check(toy_config(config))
        cls.check_width(config)

    @classmethod
    def bytes_per_instance(cls, config: dict[str, Any]) -> int:
        # The toy model and its buffers stay alive while the SAE trains (its represented rule scores it).
        return super().bytes_per_instance(config) + ReluOutputKind.bytes_per_instance(toy_config(config))
