"""A sparse autoencoder on toy data (Sharkey, Braun, Millidge 2022, "Taking features out of
superposition with sparse autoencoders").

Data: G ground-truth unit vectors f_1..f_G in d dimensions, drawn once per instance
from its seed and fixed during training. A sample is x = sum_g s_g f_g, with each
code s_g independently non-zero with probability active_features / G and then
uniform on [0, 1) (the paper's uncorrelated generator, without its per-feature
probability decay 0.99**g: here every feature is equally frequent).

SAE: c = ReLU(W_e x + b_e), x_hat = W_d c, no decoder bias. The decoder's columns
(the rows of ``W_dec`` below, one unit vector per latent, like the ground truth's
rows) are renormalised to unit norm after every step.

Loss = MSE + l1 * L1, with MSE the mean over batch and dimensions of (x - x_hat)^2
(torch's MSELoss, as in the paper's code) and L1 = mean over batch of sum_j |c_j|
(``l1_norm = "sum"``, the default). The paper's code divided L1 by the dictionary
size (``l1_norm = "mean"``, offered to reproduce its alpha grid); its first author
later called that a mistake, because a bigger dictionary then gets less penalty
per latent, which is why "sum" is the default here.

Scoring counts live latents only: a dead latent keeps whatever direction it had when it died (at
worst its random init) and represents nothing. Live = fires on at least LIVE_RATE * p of LIVE_SLICES
evaluation batches (p: a feature's probability of being active), a rate, so that the count does not
grow with the evaluation budget. MMCS is reported beside ``mmcs_chance``, the MMCS of a random
dictionary with as many live directions in the same space (engine/sae_chance.py), and a feature is
recovered only when its max cosine beats both RECOVERED_COSINE and chance's 99% quantile.

Weights (all (I, ...)): ``W_enc`` (L, d), rows are the encoder's rows; ``b_enc`` (L,);
``W_dec`` (L, d), rows are the dictionary directions; ``ground_truth`` (G, d), frozen:
saved with the weights, never trained (see ``ToyModel.frozen``).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from toysup.engine.data import sparse_uniform_
from toysup.engine.kinds.sae import (
    CHANCE_QUANTILE,
    LIVE_RATE,
    LIVE_SLICES,
    NOISED_INIT_SCALE,
    RECOVERED_COSINE,
    SparseAutoencoderKind,
)
from toysup.engine.models.base import Hyper, ToyModel
from toysup.engine.rng import DATA, EVAL, INIT, CounterRNG
from toysup.engine.sae_chance import mmcs_chance, quantile_of_chance

RESAMPLE_ENCODER_SCALE = 0.2  # resampled encoder rows: this times the mean norm of the live latents' rows
EPS = 1e-8
# Sub-streams of INIT (the step argument of a draw at initialisation), so that changing
# the SAE's init never changes the ground truth it is asked to recover.
_GROUND_TRUTH, _ENCODER, _DECODER, _NOISE, _SVD_DATA = 0, 1, 2, 3, 4


def unit_rows(W: torch.Tensor) -> torch.Tensor:
    """Each row scaled to unit norm (zero rows stay zero)."""
    return W / W.norm(dim=-1, keepdim=True).clamp_min(EPS)


def max_cosine(ground_truth: torch.Tensor, W_dec: torch.Tensor, live: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per ground-truth feature, the max (signed) cosine similarity with any live decoder direction and
    the latent that attains it: shapes (I, G), (I, G); NaN and -1 where an instance has no live latent.
    Signed, as in the paper: codes are non-negative, so a direction pointing away from a feature cannot
    represent it. ``live`` (I, L) bool, None = every latent: a dead latent keeps whatever direction it
    had when it died (at worst its random init), which represents nothing but would still count."""
    cos = torch.einsum("igd,ild->igl", unit_rows(ground_truth), unit_rows(W_dec))
    if live is None:
        return cos.max(-1)
    best, latent = cos.masked_fill(~live.unsqueeze(1), -math.inf).max(-1)
    none = ~live.any(-1, keepdim=True)
    return best.masked_fill(none, math.nan), latent.masked_fill(none, -1)


def mmcs(ground_truth: torch.Tensor, W_dec: torch.Tensor, live: torch.Tensor | None = None) -> torch.Tensor:
    """Mean max cosine similarity over the live latents (None = all), shape (I,); NaN without one."""
    return max_cosine(ground_truth, W_dec, live)[0].mean(-1)


def recovery_cosine(d: int, live: torch.Tensor) -> torch.Tensor:
    """Per instance, the cosine a feature's max must exceed to count as recovered, shape (I,), from the
    live-latent counts (I,): RECOVERED_COSINE, raised to the CHANCE_QUANTILE quantile of what a random
    dictionary of as many directions in d dimensions scores (which it beats with probability 1%), so a
    random dictionary recovers at most 1% of features on average. 2-D, 10 live latents: 0.999995."""
    return quantile_of_chance(d, live, CHANCE_QUANTILE).clamp_min(RECOVERED_COSINE)


def code_stats(c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Firings (samples on which each latent is > 0, as exact float counts) and L0 (mean active latents per
    sample) of codes c >= 0 (I, B, L): shapes (I, L), (I,). sign(c) is the indicator here, and float sums
    run about 15x faster on a CPU than sums of a bool mask."""
    active = torch.sign(c)
    return active.sum(1), active.sum(-1).mean(-1)


def orthogonal(rng: CounterRNG, step: int, rows: int, cols: int) -> torch.Tensor:
    """A Haar-random (I, rows, cols) matrix with orthonormal rows (rows <= cols) or columns, via a
    batched QR of Gaussians with the usual sign fix, like torch.nn.init.orthogonal_ per instance."""
    tall = rows >= cols
    G = rng.normal(INIT, step, (rows, cols) if tall else (cols, rows))
    Q, R = torch.linalg.qr(G)
    Q = Q * torch.sign(torch.diagonal(R, dim1=-2, dim2=-1)).unsqueeze(-2)
    return Q if tall else Q.transpose(1, 2)


class Buffers:
    """Per-step (I, B, L) tensors kept alive across steps: on a CPU a fresh tensor of that size
    each step costs more than the arithmetic on it (design.md), and these are the big ones."""

    def __init__(self, count: int, batch: int, latents: int, device: torch.device):
        self.codes = torch.empty(count, batch, latents, device=device)  # c, then reused by the next step
        self.grad = torch.empty_like(self.codes)  # dLoss/dc
        self.active = torch.empty(count, batch, latents, dtype=torch.bool, device=device)  # c > 0
        self.residual: torch.Tensor | None = None  # x_hat - x, (I, B, d)


class FusedLoss(torch.autograd.Function):
    """Per-instance training loss MSE + l1 * sum_j c_j / B with a hand-written backward into kept
    buffers. Same value and gradients as :meth:`SparseAutoencoder.reference_loss` (a test checks);
    about 3x faster on a CPU than autograd's graph, which allocates every intermediate afresh."""

    @staticmethod
    def forward(ctx: Any, W_enc: torch.Tensor, b_enc: torch.Tensor, W_dec: torch.Tensor, x: torch.Tensor,
                l1: torch.Tensor, buf: Buffers) -> torch.Tensor:
        c = torch.baddbmm(b_enc.unsqueeze(1), x, W_enc.transpose(1, 2), out=buf.codes).clamp_min_(0.0)
        residual = torch.bmm(c, W_dec).sub_(x)  # x_hat - x
        B, d = x.shape[1], x.shape[2]
        loss = residual.square().sum((1, 2)).div_(B * d) + l1 * c.sum((1, 2)).div_(B)
        ctx.save_for_backward(W_dec, x, l1)
        ctx.buf = buf
        buf.residual = residual
        return loss

    @staticmethod
    def backward(ctx: Any, grad_loss: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        W_dec, x, l1 = ctx.saved_tensors
        buf: Buffers = ctx.buf
        B, d = x.shape[1], x.shape[2]
        g = grad_loss.view(-1, 1, 1)
        grad_xhat = buf.residual * (g * (2.0 / (B * d)))  # (I, B, d)
        c, grad_c = buf.codes, buf.grad
        grad_W_dec = torch.bmm(c.transpose(1, 2), grad_xhat)
        # dLoss/dc = grad_xhat W_dec^T + l1 / B, kept only where the ReLU passed (c > 0).
        torch.baddbmm((g * l1.view(-1, 1, 1)).div_(B), grad_xhat, W_dec.transpose(1, 2), out=grad_c)
        grad_c.mul_(torch.gt(c, 0.0, out=buf.active))
        grad_W_enc = torch.bmm(grad_c.transpose(1, 2), x)
        grad_b_enc = grad_c.sum(1)
        return grad_W_enc, grad_b_enc, grad_W_dec, None, None, None


class SparseAutoencoder(SparseAutoencoderKind, ToyModel):
    def __init__(self, hp: Hyper, rng: CounterRNG):
        super().__init__(hp, rng)
        self.d, self.G = self.sizes(hp.configs[0])  # structural: the same for the whole chunk
        self.L = self.latents(hp.configs[0])
        self.batch = hp.value("batch_size")
        self.steps = hp.value("steps")
        count = len(hp)
        self.p = self.code_probability(hp).view(count, 1, 1)
        self.data_offset = 0  # training step s draws the data of step data_offset + s
        per_latent = torch.tensor([c["l1_norm"] == "mean" for c in hp.configs], device=hp.device)
        self.l1 = hp.tensor("l1") / torch.where(per_latent, float(self.L), 1.0)
        self.resample_every = hp.tensor("resample_dead").long()
        self.resamples = bool((self.resample_every > 0).any())
        self._codes = torch.empty(count, self.batch, self.G, device=hp.device)
        self._buf = Buffers(count, self.batch, self.L, hp.device)
        self._x = torch.empty(count, self.batch, self.d, device=hp.device)
        self._fired = torch.zeros(count, self.L, dtype=torch.bool, device=hp.device)
        self._trained = False  # whether self._buf.codes holds a training batch's codes yet
        # The curves' MMCS counts the latents that fired within the last live_window steps.
        self.live_window = max(1, math.ceil(hp.value("eval_batch_size") / self.batch))
        self._step = 0
        self._last_fired = torch.zeros(count, self.L, dtype=torch.long, device=hp.device)

    @staticmethod
    def code_probability(hp: Hyper) -> torch.Tensor:
        """Per instance, the probability (I,) that a ground-truth feature is active in a sample."""
        return hp.tensor("active_features") / hp.value("n_ground_truth")

    # --- initialisation ---------------------------------------------------------------------

    def ground_truth(self) -> dict[str, torch.Tensor]:
        """The frozen tensors: here the G ground-truth unit vectors (rows), drawn from the seed."""
        return {"ground_truth": unit_rows(self.rng.normal(INIT, _GROUND_TRUTH, (self.G, self.d)))}

    def init_weights(self) -> dict[str, torch.Tensor]:
        frozen = self.ground_truth()
        ground_truth = frozen["ground_truth"]
        kinds = [c["init"] for c in self.hp.configs]
        # Every instance's init is a pure function of its seed, whatever its batch-mates chose:
        # draw each kind the batch uses for all instances, then pick per instance.
        W_enc = torch.empty(len(self.hp), self.L, self.d, device=self.hp.device)
        W_dec = torch.empty_like(W_enc)
        for kind in dict.fromkeys(kinds):
            enc, dec = self._init(kind, ground_truth)
            mask = torch.tensor([k == kind for k in kinds], device=self.hp.device).view(-1, 1, 1)
            W_enc = torch.where(mask, enc, W_enc)
            W_dec = torch.where(mask, dec, W_dec)
        b_enc = torch.zeros(len(self.hp), self.L, device=self.hp.device)
        return {"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, **frozen}

    def _init(self, kind: str, ground_truth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(encoder, decoder) of one init kind for every instance in the batch."""
        # The paper's encoder is torch's default Linear init (std 1/sqrt(3d)); a Gaussian of the same std.
        enc = self.rng.normal(INIT, _ENCODER, (self.L, self.d)) / math.sqrt(3 * self.d)
        if kind == "orthogonal":
            return enc, unit_rows(orthogonal(self.rng, _DECODER, self.L, self.d))
        dec = unit_rows(self.rng.normal(INIT, _DECODER, (self.L, self.d)))
        if kind in ("svd", "noised_basis"):
            atoms = self._svd_atoms(ground_truth) if kind == "svd" else self._noised_basis()
            k = atoms.shape[1]
            dec = torch.cat([atoms, dec[:, k:]], dim=1)
            enc = torch.cat([atoms, enc[:, k:]], dim=1)
        if kind == "noised":
            # One noisy copy per feature (the first min(L, G) latents), tied encoder; the rest stay random.
            # Several copies of one feature would compete for it and split it, which is no baseline.
            k = min(self.L, self.G)
            noise = self.rng.normal(INIT, _NOISE, (k, self.d)) * (NOISED_INIT_SCALE / math.sqrt(self.d))
            copies = unit_rows(ground_truth[:, :k] + noise)
            dec = torch.cat([copies, dec[:, k:]], dim=1)
            enc = torch.cat([copies, enc[:, k:]], dim=1)
        return enc, dec

    def _svd_atoms(self, ground_truth: torch.Tensor) -> torch.Tensor:
        """The first min(L, 2d) atoms of init="svd", (I, k, d): the right singular vectors of a batch of
        data (stream INIT, batch_size samples, not centred: the SAE has no decoder bias), by decreasing
        singular value, each signed so that the data's mean projection on it is >= 0 (codes are
        non-negative), followed by their negatives for latents d..2d-1."""
        x = self._data(INIT, _SVD_DATA, self._codes, self._x, ground_truth)
        V = torch.linalg.svd(x, full_matrices=False)[2]  # (I, r, d), r = min(batch, d), rows by singular value
        mean_projection = torch.einsum("ibd,ird->ibr", x, V).mean(1)  # (I, r)
        V = V * torch.where(mean_projection < 0, -1.0, 1.0).unsqueeze(-1)
        return torch.cat([V, -V], dim=1)[:, : self.L]

    def _noised_basis(self) -> torch.Tensor:
        """init="noised_basis", (I, L, d): latent j is the unit vector e_(j mod d) plus Gaussian noise of
        norm about NOISED_INIT_SCALE (which also separates latents that share a unit vector), renormalised."""
        basis = torch.eye(self.d, device=self.hp.device)[torch.arange(self.L, device=self.hp.device) % self.d]
        noise = self.rng.normal(INIT, _NOISE, (self.L, self.d)) * (NOISED_INIT_SCALE / math.sqrt(self.d))
        return unit_rows(basis + noise)

    # --- training ---------------------------------------------------------------------------

    def _data(self, stream: int, step: int, codes: torch.Tensor, x: torch.Tensor,
              ground_truth: torch.Tensor) -> torch.Tensor:
        """x = codes @ ground_truth into ``x``, with fresh sparse codes drawn into ``codes``."""
        sparse_uniform_(self.rng, stream, step, self.p, codes)
        return torch.bmm(codes, ground_truth, out=x)

    @staticmethod
    def encode(weights: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """Codes c = ReLU(W_e x + b_e), shape (I, B, L)."""
        return torch.relu(torch.baddbmm(weights["b_enc"].unsqueeze(1), x, weights["W_enc"].transpose(1, 2)))

    def reference_loss(self, weights: dict[str, torch.Tensor], x: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(loss, mse, codes) per instance, in plain autograd: the definition that :class:`FusedLoss`
        implements faster, and the evaluation."""
        c = self.encode(weights, x)
        mse = (x - torch.bmm(c, weights["W_dec"])).square().mean((1, 2))
        l1 = c.sum(-1).mean(-1)  # c >= 0, so |c| = c
        return mse + self.l1 * l1, mse, c

    def loss(self, weights: dict[str, torch.Tensor], step: int) -> torch.Tensor:
        x = self._data(DATA, self.data_offset + step, self._codes, self._x, weights["ground_truth"])
        loss = FusedLoss.apply(weights["W_enc"], weights["b_enc"], weights["W_dec"], x, self.l1, self._buf)
        self._trained = True
        if self.resamples:
            with torch.no_grad():
                self._fired |= self._buf.codes.gt(0).any(1)
        return loss

    def after_step(self, weights: dict[str, torch.Tensor], step: int) -> None:
        self._step = step
        self._last_fired.masked_fill_(self._buf.active.any(1), step)  # c > 0, kept by the backward
        if self.resamples:
            self._resample(weights, step)
        W_dec = weights["W_dec"]
        W_dec.div_(W_dec.norm(dim=-1, keepdim=True).clamp_min(EPS))

    def _resample(self, weights: dict[str, torch.Tensor], step: int) -> None:
        """Re-point the latents that did not fire since the last check (for the instances whose
        resample_dead interval K divides ``step``, and only while at least K steps remain) at the
        batch's worst-reconstructed samples.

        Dead latent number k of an instance (in latent order) takes the k-th largest residual
        x - x_hat of the last training batch: its unit direction becomes the decoder direction,
        the encoder row is that direction times RESAMPLE_ENCODER_SCALE times the mean encoder
        row norm of the live latents, and the bias is 0. The residual is what the current
        dictionary fails to explain, so it points toward missing features. The optimiser's
        moments are not reset: a dead latent's gradients were zero, so they have decayed.
        """
        every = self.resample_every
        # Never in the last interval: a resampled latent gets at least that long to train before the end.
        due = (every > 0) & (step % every.clamp_min(1) == 0) & (step + every <= self.steps)
        if self._buf.residual is None or not bool(due.any()):
            return
        residual = -self._buf.residual  # x - x_hat: what the dictionary fails to explain
        dead = ~self._fired & due.unsqueeze(-1)  # (I, L)
        order = residual.square().sum(-1).argsort(-1, descending=True)  # (I, B)
        rank = (dead.long().cumsum(-1) - 1).clamp_min(0) % order.shape[-1]
        picks = order.gather(-1, rank)  # (I, L): which sample each latent would take
        directions = unit_rows(residual.gather(1, picks.unsqueeze(-1).expand(-1, -1, self.d)))
        W_enc, b_enc, W_dec = weights["W_enc"], weights["b_enc"], weights["W_dec"]
        alive = (~dead).float()
        row_norms = W_enc.norm(dim=-1)
        mean_alive = (row_norms * alive).sum(-1) / alive.sum(-1).clamp_min(1.0)
        mean_alive = torch.where(alive.sum(-1) > 0, mean_alive, row_norms.mean(-1))
        scale = (RESAMPLE_ENCODER_SCALE * mean_alive).view(-1, 1, 1)
        W_dec.copy_(torch.where(dead.unsqueeze(-1), directions, W_dec))
        W_enc.copy_(torch.where(dead.unsqueeze(-1), directions * scale, W_enc))
        b_enc.masked_fill_(dead, 0.0)
        self._fired &= ~due.unsqueeze(-1)

    def curve_values(self, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        # After the step's backward, the codes buffer still holds this step's codes.
        l0 = code_stats(self._buf.codes)[1] if self._trained else torch.zeros(len(self.hp), device=self.hp.device)
        return {"mmcs": mmcs(weights["ground_truth"], weights["W_dec"], self._recently_live()), "l0": l0}

    def _recently_live(self) -> torch.Tensor:
        """(I, L): the latents that fired within the last ``live_window`` training steps (about as many
        samples as the evaluation batch that decides the final dead count); every latent at first."""
        return (self._step - self._last_fired) < self.live_window

    # --- evaluation -------------------------------------------------------------------------

    def _evaluate(self, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Loss, MSE, mean squared signal and L0, averaged over LIVE_SLICES evaluation batches (stream EVAL,
        steps 0..LIVE_SLICES-1: 16 x eval_batch_size samples, drawn and scored one batch at a time), and
        the live latents (I, L): those that fire on at least LIVE_RATE * p of those samples, p = a feature's
        probability of being active. Computed once per final weights (eval_loss, metrics and
        feature_metrics all read them); only reductions are kept, never the (I, B, L) codes."""
        key = tuple(weights[k] for k in ("W_enc", "b_enc", "W_dec", "ground_truth"))
        cached = getattr(self, "_eval_cache", None)
        if cached is not None and all(a is b for a, b in zip(cached[0], key, strict=True)):
            return cached[1]
        size = self.hp.value("eval_batch_size")
        codes = torch.empty(len(self.hp), size, self.G, device=self.hp.device)
        x = torch.empty(len(self.hp), size, self.d, device=self.hp.device)
        fires = torch.zeros(len(self.hp), self.L, device=self.hp.device)  # only a rate is read from it
        sums = {name: torch.zeros(len(self.hp), device=self.hp.device) for name in ("loss", "mse", "signal", "l0")}
        for step in range(LIVE_SLICES):
            x = self._data(EVAL, step, codes, x, weights["ground_truth"])
            loss, mse, c = self.reference_loss(weights, x)
            batch_fires, l0 = code_stats(c)
            fires += batch_fires
            for name, value in (("loss", loss), ("mse", mse), ("signal", x.square().mean((1, 2))), ("l0", l0)):
                sums[name] += value
        out = {name: total / LIVE_SLICES for name, total in sums.items()}
        out["live"] = fires / float(LIVE_SLICES * size) >= LIVE_RATE * self.p.view(-1, 1)
        self._eval_cache = (key, out)
        return out

    def _recovery(self, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per feature over the live latents: ``best`` max cosine and ``latent`` (I, G), ``recovered``
        (I, G) bool (best > ``cut``); per instance the chance MMCS ``chance`` and the ``cut`` (I,)."""
        live = self._evaluate(weights)["live"]
        best, latent = max_cosine(weights["ground_truth"], weights["W_dec"], live)
        count = live.sum(-1)
        cut = recovery_cosine(self.d, count)
        return {"best": best, "latent": latent, "recovered": best > cut.unsqueeze(-1),
                "chance": mmcs_chance(self.d, count), "cut": cut}

    @torch.no_grad()
    def eval_loss(self, weights: dict[str, torch.Tensor]) -> torch.Tensor:
        return self._evaluate(weights)["loss"]

    @torch.no_grad()
    def metrics(self, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        ev, rec = self._evaluate(weights), self._recovery(weights)
        dead = (~ev["live"]).sum(-1)
        return {
            "mmcs": rec["best"].mean(-1),
            "mmcs_chance": rec["chance"],
            "features_recovered": rec["recovered"].sum(-1),
            "recovery_cosine": rec["cut"],
            "dead_latents": dead,
            "l0": ev["l0"],
            "reconstruction_mse": ev["mse"],
            "n_latents": torch.full_like(dead, self.L),
        }

    @torch.no_grad()
    def feature_metrics(self, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        rec = self._recovery(weights)
        return {"max_cosine": rec["best"], "best_latent": rec["latent"], "recovered": rec["recovered"].long()}
