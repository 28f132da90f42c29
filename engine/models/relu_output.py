"""The ReLU output model of Elhage et al. (2022): h = W x, x' = ReLU(W^T h + b).

Optional dropout on h during training (the privileged-basis experiment): each
hidden unit is zeroed with probability q and the survivors are scaled by
1/(1-q), as torch's dropout does, so evaluation needs no rescaling.

Open-problem variants (Nanda's list): correlated or anticorrelated feature
pairs, a different sparsity for the second half of the features, GELU or SiLU
in place of the ReLU, and an L1 penalty on the hidden layer.
"""

from __future__ import annotations

from typing import Any

import torch

from toysup.engine import compiler
from toysup.engine import metrics as M
from toysup.engine.data import feature_probabilities, importance, sparse_uniform_
from toysup.engine.estimator import DataLaw, Estimate, active_inputs, estimate
from toysup.engine.kinds.relu_output import ReluOutputKind
from toysup.engine.models.base import Hyper, ToyModel
from toysup.engine.models.relu_output_compiled import UNIFORM_SCALE, block_step
from toysup.engine.rng import DATA, DROPOUT, INIT, PROBE, CounterRNG

BLOCK_VALUES = 1 << 19  # numbers per (B, n) tensor in one CPU block: 2 MB, measured best of 2^16..2^21
COMPILED_BLOCK_VALUES = 1 << 17  # the same for the compiled step, whose blocks all have one size (padded)
COMPILED_BLOCK_VALUES_GPU = 1 << 24  # a GPU's compiled blocks: large, so a step is a few kernels (unmeasured)

PROBE_SAMPLES = 1 << 15  # the fixed probe set of the linear-region count: 32,768 inputs with a feature active ...
PROBE_SEED = 0x5EED  # ... drawn from the instance's data distribution with this seed, not the instance's
PROBE_BLOCK = 4096  # probe samples per draw (a constant, so the probe never depends on chunk size)
PROBE_ROWS = 64  # instances probed together (bounds the (rows, PROBE_SAMPLES) codes in memory)

EVAL_BLOCK_VALUES = 1 << 22  # numbers in the evaluation's widest tensor per call (bounds its memory)
# Instances evaluated together: their Monte Carlo inputs, (rows, 4096, n) floats, bound the evaluation's memory
# whatever the chunk's size (16: 5 MB per such tensor; 1,500 instances at once took 4 GB of fresh pages, and
# the time per instance grew with the chunk). Measured at 300 instances, one thread, in-process alternation:
# median 1.9 s in blocks of 16, 2.3-2.4 s of 32, 2.2 of 64, 2.6-3.7 s all at once. A GPU takes more at once
# (fewer launches; unmeasured).
EVAL_ROWS = 16
EVAL_ROWS_GPU = 2048

ACTIVATIONS = {"relu": torch.relu, "gelu": torch.nn.functional.gelu, "silu": torch.nn.functional.silu}

def superposition_metrics(W: torch.Tensor, carry_threshold: torch.Tensor, mask: torch.Tensor,
                          privileged: torch.Tensor, sense: str = "magnitude") -> dict[str, torch.Tensor]:
    """The shared per-instance metrics of a (I, n, m) embedding matrix, given which features are
    represented (``mask``, (I, n)) and which instances have a privileged basis (``privileged``, (I,)):
    neuron counts are NaN (empty) for the others. ``sense``: how a weight drives a neuron."""
    alignment, angle = M.orientation(W, mask)
    m = W.shape[-1]
    return {
        "features_represented": M.features_represented(W, mask),
        "features_per_dim": M.features_per_dim(mask, m),
        "mean_dimensionality": M.mean_dimensionality(W, mask),
        "dims_per_feature": M.dims_per_feature(W),
        "orientation_angle_deg": angle,
        "axis_alignment": alignment,
        "polysemantic_neurons": M.where_privileged(M.polysemantic_neurons(W, carry_threshold, mask, sense),
                                                   privileged),
        "monosemantic_neurons": M.where_privileged(M.monosemantic_neurons(W, sense), privileged),
        "max_feature_norm": M.feature_norms(W).amax(-1),
    }


def normalised(value: torch.Tensor, share: torch.Tensor) -> torch.Tensor:
    """``value`` as a share of the feature's constant-output loss; NaN (empty) where that is 0 (constant
    data: nothing to represent)."""
    return torch.where(share > 0, value / share.clamp_min(torch.finfo(share.dtype).tiny),
                       torch.full_like(value, float("nan")))


class ReluOutput(ReluOutputKind, ToyModel):
    relu = True  # the output nonlinearity (the linear baseline sets False)
    hidden_relu = False  # ReLU on h as well (the neuron model sets True)

    @staticmethod
    def feature_importance(decay: torch.Tensor, n: int) -> torch.Tensor:
        """Each instance's feature importances, (I, n): decay**i (a subclass may set them otherwise)."""
        return importance(decay, n)

    def __init__(self, hp: Hyper, rng: CounterRNG):
        super().__init__(hp, rng)
        self.n = hp.value("n_features")
        self.m = hp.value("n_hidden")
        self.batch = hp.value("batch_size")
        count = len(hp)
        self.p = feature_probabilities(hp.tensor("feature_probability"), hp.tensor("probability_ratio"), self.n)
        self.correlation = hp.value("correlation")
        self.feature_dist = hp.value("feature_dist")
        self.importance = self.feature_importance(hp.tensor("importance_decay"), self.n).unsqueeze(1)
        self.q = hp.tensor("dropout").view(count, 1, 1)
        self.uses_dropout = any(c["dropout"] > 0 for c in hp.configs)
        self.hidden_l1 = hp.tensor("hidden_l1")
        self.uses_hidden_l1 = any(c["hidden_l1"] > 0 for c in hp.configs)
        self.activation = ACTIVATIONS[hp.value("activation")] if self.relu else None
        self._x: torch.Tensor | None = None  # the autograd path's batch, made on first use
        self.compiled = False  # see use_compiled_step
        # The hand-written backward covers ReLU or no output activation, with or without dropout
        # and a hidden ReLU; GELU/SiLU and the hidden-layer L1 fall back to autograd.
        self.analytic = self.activation in (None, torch.relu) and not self.uses_hidden_l1
        if self.analytic:
            self._blocks = self._block_rows()
            size = self._blocks[0].stop - self._blocks[0].start
            dev = hp.device
            self._xb = torch.empty(size, self.batch, self.n, device=dev)
            self._hT = torch.empty(size, self.m, self.batch, device=dev)
            self._ghT = torch.empty(size, self.m, self.batch, device=dev)
            self._pre = torch.empty(size, self.batch, self.n, device=dev)
            self._g = torch.empty(size, self.batch, self.n, device=dev)
            self._weighted = torch.empty(size, self.batch, self.n, device=dev)
            self._loss = torch.empty(count, device=dev)
            self._dWT = torch.empty(count, self.m, self.n, device=dev)
            self._db = torch.empty(count, self.n, device=dev)
            # 2 / (B n) folded into the importance once: dloss/dpre = importance2 * diff.
            self._importance2 = self.importance * (2.0 / (self.batch * self.n))

    def _block_rows(self) -> list[slice]:
        """Instance blocks for the CPU step: each block's batch tensors hold about BLOCK_VALUES
        numbers, so a dozen elementwise passes run from cache instead of memory. Measured at
        400 x 1024 x 20: 115 ms per step in 2 MB blocks, 164 ms in 8 MB ones. A GPU takes the
        whole chunk at once."""
        count = len(self.hp)
        if self.hp.device.type != "cpu":
            return [slice(0, count)]
        size = max(1, BLOCK_VALUES // (self.batch * self.n))
        return [slice(s, min(s + size, count)) for s in range(0, count, size)]

    @classmethod
    def has_compiled_step(cls, config: dict[str, Any]) -> bool:
        """The compiled step covers the hand-written backward's cases with independent, uniform features."""
        return (config.get("activation", "relu") == "relu" and config.get("hidden_l1", 0) == 0
                and config.get("correlation", "none") == "none" and config.get("feature_dist", "uniform") == "uniform")

    def use_compiled_step(self) -> None:
        """Every block has COMPILED_BLOCK_VALUES / (B n) instances (at least one), the last one filled up with
        copies of the chunk's last instance: one static shape, one compiled graph for every chunk size."""
        if not self.analytic or self.correlation != "none" or self.feature_dist != "uniform":
            raise ValueError("this chunk has no compiled step (GELU/SiLU, hidden_l1, correlated or non-uniform "
                             "features)")
        count = len(self.hp)
        values = COMPILED_BLOCK_VALUES if self.hp.device.type == "cpu" else COMPILED_BLOCK_VALUES_GPU
        size = max(1, values // (self.batch * self.n))
        self._compiled_size = size
        self._compiled_blocks = [slice(s, min(s + size, count)) for s in range(0, count, size)]
        self._data_scale = (-1.0 / self.p) * UNIFORM_SCALE  # as sparse_uniform_ computes its multiplier
        self.compiled = True

    def use_eager_step(self) -> None:
        self.compiled = False

    def init_weights(self) -> dict[str, torch.Tensor]:
        # Xavier-normal per instance: the fan is n + m, never the instance count.
        std = (2.0 / (self.n + self.m)) ** 0.5
        W = self.rng.normal(INIT, 0, (self.n, self.m)).mul_(std)
        b = torch.zeros(len(self.hp), self.n, device=self.hp.device)
        return {"W": W, "b": b}

    def _hidden(self, weights: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        h = torch.bmm(x, weights["W"])
        return torch.relu(h) if self.hidden_relu else h

    def _pre_output(self, weights: dict[str, torch.Tensor], h: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(weights["b"].unsqueeze(1), h, weights["W"].transpose(1, 2))

    def _forward(self, weights: dict[str, torch.Tensor], x: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
        h = self._hidden(weights, x)
        if keep is not None:
            h = h * keep
        out = self._pre_output(weights, h)
        return self.activation(out) if self.activation is not None else out

    def _weighted_mse(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        return (self.importance * (x - out).square()).mean((1, 2))

    def _draw(self, stream: int, step: int, out: torch.Tensor, rows: slice = slice(None)) -> torch.Tensor:
        return sparse_uniform_(self.rng, stream, step, self.p[rows], out, self.correlation, rows, self.feature_dist)

    def _keep(self, step: int, rows: slice = slice(None)) -> torch.Tensor | None:
        """The dropout mask on h, scaled by 1/(1-q), shape (I, B, m) (or the block ``rows``); None
        without dropout."""
        if not self.uses_dropout:
            return None
        u = self.rng.uniform(DROPOUT, step, (self.batch, self.m), rows=rows)
        q = self.q[rows]
        return (u >= q) / (1.0 - q)

    def loss_and_grads(self, weights: dict[str, torch.Tensor], step: int
                       ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The training step's loss and gradients, by hand where the model allows it.

        Autograd on models this small spends more time on bookkeeping and fresh
        allocations than on arithmetic. Here every large tensor is a kept buffer,
        the step runs block by block over instances (cache-sized, see _block_rows),
        and each batched matmul is arranged so its output's last dimension is B or
        n, never m (a (B, m) output runs 4-5x slower in CPU BLAS for small m).
        tests/test_gradients.py checks this against autograd.
        """
        if not self.analytic:
            return super().loss_and_grads(weights, step)
        if self.compiled:
            for rows in self._compiled_blocks:
                self._compiled_block(weights, step, rows)
            return self._loss, {"W": self._dWT.transpose(1, 2), "b": self._db}
        for rows in self._blocks:
            self._block_step(weights, step, rows)
        return self._loss, {"W": self._dWT.transpose(1, 2), "b": self._db}

    def _compiled_block(self, weights: dict[str, torch.Tensor], step: int, rows: slice) -> None:
        """One block through the compiled step (engine/models/relu_output_compiled.py)."""
        real = rows.stop - rows.start
        pick: slice | torch.Tensor
        if real == self._compiled_size:
            pick = rows
        else:  # the last block: fill up with the chunk's last instance (results depend only on their own row)
            pick = torch.arange(rows.start, rows.start + self._compiled_size, device=self.hp.device).clamp_(
                max=rows.stop - 1)
        k1, k2 = self.rng.keys(DATA, step)
        elements = self.rng.element_hash((self.batch, self.n))
        if self.uses_dropout:
            d1, d2 = self.rng.keys(DROPOUT, step)
            drop = (d1[pick], d2[pick], self.rng.element_hash((self.batch, self.m)))
        else:  # not read by the graph
            drop = (k1[pick], k2[pick], elements)
        loss, dWT, db = compiler.call(
            block_step, weights["W"][pick], weights["b"][pick], k1[pick], k2[pick], elements,
            self._data_scale[pick], self._importance2[pick], *drop, self.q[pick],
            self.relu, self.hidden_relu, self.uses_dropout)
        self._loss[rows] = loss[:real]
        self._dWT[rows] = dWT[:real]
        self._db[rows] = db[:real]

    def _block_step(self, weights: dict[str, torch.Tensor], step: int, rows: slice) -> None:
        """Loss and gradients of the instances in ``rows``, written into the step's outputs."""
        W, b = weights["W"][rows], weights["b"][rows]
        count = len(W)
        Wt = W.transpose(1, 2)  # (k, m, n), a view
        x = self._draw(DATA, step, self._xb[:count], rows)  # (k, B, n)
        hT = torch.bmm(Wt, x.transpose(1, 2), out=self._hT[:count])  # h^T = W^T x^T: (k, m, B)
        hidden_active = None
        if self.hidden_relu:
            hidden_active = hT > 0
            hT.clamp_min_(0.0)
        keep = self._keep(step, rows)
        keep_T = None if keep is None else keep.transpose(1, 2)
        if keep_T is not None:
            hT.mul_(keep_T)
        pre = torch.bmm(hT.transpose(1, 2), Wt, out=self._pre[:count]).add_(b.unsqueeze(1))  # (k, B, n)
        diff = self._g[:count]
        if self.relu:
            torch.clamp_min(pre, 0.0, out=diff).sub_(x)  # relu(pre) - x, which is -x where pre <= 0
        else:
            torch.sub(pre, x, out=diff)
        # g = dloss/dpre = 2 importance diff / (B n), zero where the output ReLU is off
        g = torch.mul(diff, self._importance2[rows], out=self._weighted[:count])
        # loss = mean over batch and features of importance diff^2 = <g, diff> / 2, as a batched dot
        if self.exact_loss:  # a recorded step: the same value whatever the chunk's size (see Model.exact_loss)
            flat = (count, self.batch * self.n)
            self._loss[rows] = (g.reshape(flat).double() * diff.reshape(flat).double()).sum(1).mul_(0.5)
        else:
            torch.bmm(g.view(count, 1, -1), diff.view(count, -1, 1), out=self._loss[rows].view(count, 1, 1))
            self._loss[rows].mul_(0.5)
        if self.relu:
            g.mul_(torch.gt(pre, 0.0, out=pre))  # the ReLU's mask, as 0/1 floats in pre's buffer
        torch.sum(g, 1, out=self._db[rows])
        ghT = torch.bmm(Wt, g.transpose(1, 2), out=self._ghT[:count])  # dloss/dh^T = W^T g^T: (k, m, B)
        if keep_T is not None:
            ghT.mul_(keep_T)
        if hidden_active is not None:
            ghT.mul_(hidden_active)
        # W appears twice (h = x W, pre = h W^T): dW^T = (dh^T) x + h^T g
        torch.bmm(ghT, x, out=self._dWT[rows]).baddbmm_(hT, g)

    def loss(self, weights: dict[str, torch.Tensor], step: int) -> torch.Tensor:
        if self._x is None:
            self._x = torch.empty(len(self.hp), self.batch, self.n, device=self.hp.device)
        x = self._draw(DATA, step, self._x)
        keep = self._keep(step)
        if not self.uses_hidden_l1:
            return self._weighted_mse(x, self._forward(weights, x, keep))
        h = self._hidden(weights, x)
        penalty = self.hidden_l1 * h.abs().sum(-1).mean(-1)
        if keep is not None:
            h = h * keep
        out = self._pre_output(weights, h)
        out = self.activation(out) if self.activation is not None else out
        return self._weighted_mse(x, out) + penalty

    def data_law(self) -> DataLaw:
        """The evaluation's view of this chunk's data distribution (engine/estimator.py)."""
        count = len(self.hp)
        return DataLaw(self.p.reshape(count, -1).expand(count, self.n), self.correlation, self.feature_dist)

    @torch.no_grad()
    def eval_loss(self, weights: dict[str, torch.Tensor]) -> torch.Tensor:
        """E[loss] without dropout, by the stratified estimator (see _representation)."""
        return self._representation(weights)["loss"]

    def _privileged(self) -> torch.Tensor:
        return torch.tensor([self.neuron_sense(c) is not None for c in self.hp.configs], device=self.hp.device)

    def _sense(self) -> str:
        return "positive" if self.hidden_relu else "magnitude"

    @torch.no_grad()
    def _representation(self, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Expected loss, constant-output baseline, ablation gains (with standard errors) and the
        represented mask, computed once per final weights (``eval_loss``, ``metrics`` and
        ``feature_metrics`` all use them). The loss and the gains come from engine/estimator.py
        (exact strata for no and one active feature, importance-sampled co-activation with
        ``eval_batch_size`` inputs); the baseline I_i Var(x_i) / n is analytic."""
        cached = getattr(self, "_represent_cache", None)
        if cached is not None and cached[0] is weights["W"]:
            return cached[1]
        W, b = weights["W"], weights["b"]
        importance = self.importance.squeeze(1)
        law = self.data_law()
        mean = law.mean().to(W.dtype)
        count, n, m = len(self.hp), self.n, self.m
        # EVAL_ROWS instances at a time, each call of evaluate on `chunk` inputs: the memory is bounded whatever
        # the chunk's size, and the split depends on the shapes alone, so an instance's numbers do not depend on
        # the other instances in its chunk.
        block = EVAL_ROWS if self.hp.device.type == "cpu" else EVAL_ROWS_GPU
        chunk = max(16, EVAL_BLOCK_VALUES // (block * n * max(n, m)))
        parts = []
        for start in range(0, count, block):
            rows = slice(start, min(start + block, count))

            def evaluate(x: torch.Tensor, rows: slice = rows) -> tuple[torch.Tensor, torch.Tensor]:
                losses = torch.empty(x.shape[:2], device=x.device)  # filled on the way (one forward pass)
                deltas = M.ablation_deltas(x, W[rows], b[rows], importance[rows], mean[rows], self.activation,
                                           self.hidden_relu, losses=losses)
                return losses, deltas

            part_law = DataLaw(law.p[rows], law.correlation, law.dist)
            parts.append(estimate(part_law, evaluate, self.rng.subset(rows), self.hp.value("eval_batch_size"), chunk))
        est = Estimate(*(torch.cat([getattr(e, f) for e in parts]) for f in ("loss", "loss_se", "gain", "gain_se")))
        assert est.gain is not None and est.gain_se is not None
        share = (importance.to(torch.float64) * law.variance() / n)
        out = {"loss": est.loss.to(torch.float32), "loss_se": est.loss_se.to(torch.float32),
               "constant": share.sum(-1).to(torch.float32), "share": share.to(torch.float32),
               "gain": est.gain.to(torch.float32), "gain_se": est.gain_se.to(torch.float32),
               "mask": M.represented(est.gain, share)}
        self._represent_cache = (weights["W"], out)
        return out

    @torch.no_grad()
    def metrics(self, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        rep = self._representation(weights)
        out = superposition_metrics(weights["W"], self.hp.tensor("carry_threshold"), rep["mask"],
                                    self._privileged(), self._sense())
        out["trivial_loss"] = rep["constant"]
        out["loss_se"] = rep["loss_se"]
        out["collapsed"] = M.collapsed(rep["loss"], rep["constant"])
        out["linear_regions"] = self.linear_regions(weights)
        return out

    def _patterns(self, weights: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor | None:
        """The on/off pattern of every ReLU (hidden, then output) per input, (I, B, k); None without ReLUs."""
        h = torch.bmm(x, weights["W"])
        patterns = []
        if self.hidden_relu:
            patterns.append(h > 0)
            h = h.clamp_min(0.0)
        if self.relu:
            patterns.append(self._pre_output(weights, h) > 0)
        return torch.cat(patterns, -1) if patterns else None

    def _code_bits(self) -> int:
        return self.n * self.relu + self.m * self.hidden_relu

    def _codes(self, weights: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """Each input's activation pattern (:meth:`_patterns`) as one integer, (I, B): a one-to-one code, so it
        counts the regions as M.pattern_codes does, computed without boolean patterns or a pass to add b, and
        without a hidden ReLU through W W^T (a (B, m) output runs 4-5x slower in CPU BLAS). Rounding differs
        from _patterns' order of operations, so an input within float32 round-off of a ReLU's kink may fall on
        the other side (measured: 3 of 150 instances moved by at most 4e-5, relative). The bits of each layer
        sum in float32, exact up to 24 of them; wider layers take M.pattern_codes."""
        if max(self.n, self.m) > 24:
            patterns = self._patterns(weights, x)
            assert patterns is not None  # a model without ReLUs has no regions to count
            return M.pattern_codes(patterns)
        W, b = weights["W"], weights["b"].unsqueeze(1)
        Wt = W.transpose(1, 2)
        code: torch.Tensor | None = None
        if self.hidden_relu:
            h = torch.bmm(x, W)  # (I, B, m)
            bits = 2.0 ** torch.arange(self.m, device=x.device, dtype=x.dtype)
            code = torch.matmul((h > 0).to(x.dtype), bits).to(torch.int64)
            pre = torch.bmm(h.clamp_min_(0.0), Wt)  # (I, B, n), without b: compared with -b below
        else:  # x W W^T: twice the multiplications of going through h, but no (B, m) output
            pre = torch.bmm(x, torch.bmm(W, Wt))
        if self.relu:  # fired where x W W^T > -b (no pass to add b)
            bits = 2.0 ** torch.arange(self.n, device=x.device, dtype=x.dtype)
            fired = torch.matmul(torch.gt(pre, b.neg(), out=pre), bits).to(torch.int64)  # 0/1 floats in pre
            code = fired if code is None else code.bitwise_left_shift_(self.n).add_(fired)
        assert code is not None  # a model without ReLUs has no regions to count
        return code

    @torch.no_grad()
    def linear_regions(self, weights: dict[str, torch.Tensor], samples: int = PROBE_SAMPLES) -> torch.Tensor:
        """The effective number of linear regions (engine.metrics.effective_patterns), (I,), over a
        fixed probe: ``samples`` inputs from each instance's data distribution conditioned on at least
        one active feature (engine.estimator.active_inputs), drawn with PROBE_SEED (not the instance's
        seed) in blocks of PROBE_BLOCK. The input x = 0 is one region, and at sparse p it holds almost
        all of the data ((1 - p)^n), so unconditioned the count read 1.01 for any sparse pentagon.
        The probe depends on neither the evaluation budget nor the chunk, so the count is a property of
        the weights. NaN (empty) where the probe cannot resolve the regions (M.UNRESOLVED_SHARE)."""
        count = len(self.hp)
        if not (self.relu or self.hidden_relu):
            return torch.ones(count, device=self.hp.device)
        out = torch.empty(count, device=self.hp.device)
        blocks = -(-samples // PROBE_BLOCK)
        for start in range(0, count, PROBE_ROWS):
            rows = slice(start, min(start + PROBE_ROWS, count))
            size = rows.stop - rows.start
            rng = CounterRNG.shared(PROBE_SEED, size, self.hp.device)  # one seed for all: each draw hashed once
            part = {k: v[rows] for k, v in weights.items()}
            law = DataLaw(self.p[rows].reshape(size, -1).expand(size, self.n), self.correlation, self.feature_dist)
            x = torch.empty(size, PROBE_BLOCK, self.n, device=self.hp.device)
            scratch = torch.empty_like(x)
            wide = self._code_bits() > 31 or max(self.n, self.m) > 24  # M.pattern_codes: int64 codes
            codes = torch.empty(size, blocks * PROBE_BLOCK, dtype=torch.int64 if wide else torch.int32,
                                device=self.hp.device)
            for block in range(blocks):
                x = active_inputs(law, rng, PROBE, block, PROBE_BLOCK, out=x, scratch=scratch)
                codes[:, block * PROBE_BLOCK:(block + 1) * PROBE_BLOCK] = self._codes(part, x)
            out[rows] = M.effective_patterns(codes[:, :samples], M.UNRESOLVED_SHARE)
        return out

    @torch.no_grad()
    def feature_metrics(self, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        W = weights["W"]
        rep = self._representation(weights)
        return {
            "norm": M.feature_norms(W),
            "dimensionality": M.feature_dimensionality(W),
            "interference": M.interference(W),
            "bias": weights["b"],
            "importance": self.importance.squeeze(1),
            "ablation_gain": normalised(rep["gain"], rep["share"]),
            "ablation_gain_se": normalised(rep["gain_se"], rep["share"]),
            "represented": rep["mask"].to(torch.int64),
        }
