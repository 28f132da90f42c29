"""Incidental polysemanticity (Lecomte, Thaman, Schaeffer, Bashkansky, Chow, Koyejo 2023,
"What causes polysemanticity?", arXiv 2312.03096).

The model is y = ReLU(W W^T x) with tied weights, no bias and m >= n neurons, so
nothing forces two features onto one neuron. The batch is the whole n x n
identity at every step (no random data), so with W stored as (I, n, m) the
hidden layer is h = x @ W = W and the output is ReLU(h @ W^T). Two pressures
make the representation sparse in the neuron basis:

- ``l1 > 0``: loss + l1 * sum |W| gives winner-take-all dynamics: each feature
  ends on the one neuron its initial weight favoured, so two features that
  started on the same neuron with opposite signs (no interference after the
  ReLU) stay there together. The paper derives C(n, 2) / (2m) = n(n-1)/(4m)
  such neurons (about n^2 / (4m) for large n); ``predicted_polysemantic`` gives
  it for L1 runs only (no noise), the only runs the derivation covers.
- ``noise``: a vector added to the hidden layer each step, drawn per instance and
  shared by the n inputs of that step's batch (as in the authors' code, which
  draws one (m,) vector per step). Bernoulli +-sigma (negative excess kurtosis)
  drives each feature onto one neuron; Gaussian noise does not.

Conventions taken from the authors' code (github.com/kushalthaman/polysemanticity,
project-code/models/autoencoder.py and experiments/*.py):

- init: W ~ N(0, (init_scale / sqrt(m))^2) per entry ("normal" weight_distri,
  std 1/sqrt(n_hidden)), so every feature starts with norm about init_scale.
  ``init_scale`` is therefore a multiplier on their std; 1 reproduces them.
- loss: F.mse_loss(output, batch, reduction="sum") + l1 * torch.norm(W, p=1):
  the squared error summed over the batch and the features, so l1 values carry
  over from the paper. This is the training loss (and the loss curve).
- L1 runs (experiments/collisions.py, all_curves.py): AdamW (torch's default
  weight decay 0.01), lr 1e-3, 7500 steps, l1 in {1e-3, 1e-2, 1e-1}, n = 256,
  m = 256..4096. Noise runs (experiments/fourth_norm.py): plain SGD, lr 0.02,
  100,000 steps, n = 8, m = 16, sigma in {0.07, 0.1, 0.15}, l1 = 0.
- their polysemanticity count: per neuron, the features with |W_n,i| in
  [0.8, 1.2]; a neuron with 2+ of them is polysemantic (our
  ``polysemantic_neurons_paper``). Their weight-correlation figure is the
  feature-by-feature matrix W_init W_final^T (einsum "i n m, i l m -> i n l").

``batch_size`` and ``eval_batch_size`` are ignored: the batch is always the identity.

Represented features: zeroing W_i raises the (noise-free) loss on the identity batch
by more than 10% of feature i's loss at zero output (which is 1), computed exactly
(relu_output's rule, toysup's own cut). The
basis is privileged only with an L1 penalty or Bernoulli noise: with neither (or
with Gaussian noise, which is isotropic) the loss is the same for any rotation of
the hidden layer, so the neuron counts are left empty. ``basis_sparsity`` stays: for a
random rotation it is 3 / (m + 2) on average, so it is the measure that shows whether
the basis became privileged (Gaussian noise: it stays there).
"""

from __future__ import annotations

import torch

from toysup.engine import metrics as M
from toysup.engine.kinds.incidental import IncidentalKind, noise_block
from toysup.engine.models.base import Hyper, ToyModel
from toysup.engine.rng import INIT, NOISE, CounterRNG

NEAR_UNIT = (0.8, 1.2)  # the authors' window for "a feature sits on this neuron at full strength"

# --- pure metrics of (I, n, m) weights --------------------------------------------------------


def feature_basis_sparsity(W: torch.Tensor) -> torch.Tensor:
    """||W_i||_4^4 / ||W_i||_2^4 per feature, shape (I, n): 1 on one neuron, 1/k spread evenly
    over k neurons, 3 / (m + 2) on average for a random direction (0.17 for m = 16). 0 for a zero feature."""
    sq = W.square()
    fourth = sq.square().sum(-1)
    second = sq.sum(-1).square()
    return torch.where(second > M.EPS**2, fourth / second.clamp_min(M.EPS**2), torch.zeros_like(fourth))


def ablation_gains(W: torch.Tensor, W_dec: torch.Tensor | None = None) -> torch.Tensor:
    """The noise-free loss increase when feature i's row W_i is zeroed, (I, n), exactly.

    On the identity batch the output is R = ReLU(W W^T) and the loss sum_ab (R_ab - delta_ab)^2.
    Zeroing W_i zeroes row and column i of R: their errors are replaced by 1 on the diagonal and
    0 elsewhere, so the gain is 1 - (row i's error + column i's error - the shared diagonal one).
    A plain zero ablation, unlike relu_output's mean ablation: with no bias the model has no
    constant to output but 0, so no embedding can stand in for one. With a decoder ``W_dec`` the output
    is ReLU(W W_dec^T) and feature i's ablation zeroes both W_i and W_dec_i: the same row and column."""
    decoder = W if W_dec is None else W_dec
    E = (torch.relu(torch.bmm(W, decoder.transpose(1, 2))) - torch.eye(W.shape[1], device=W.device)).square()
    return 1.0 - (E.sum(-1) + E.sum(-2) - torch.diagonal(E, dim1=-2, dim2=-1))


def represented(W: torch.Tensor, W_dec: torch.Tensor | None = None) -> torch.Tensor:
    """Boolean (I, n): engine.metrics.represented with each feature's loss at zero output, 1, as its share."""
    return M.represented(ablation_gains(W, W_dec), torch.ones_like(W[..., 0]))


def basis_sparsity(W: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of :func:`feature_basis_sparsity` over represented features (``mask``, by default
    :func:`represented`), shape (I,); NaN (an empty cell) when an instance represents nothing."""
    represented_ = represented(W) if mask is None else mask
    total = (feature_basis_sparsity(W) * represented_).sum(-1)
    count = represented_.sum(-1)
    return torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, float("nan")))


def polysemantic_neurons_paper(W: torch.Tensor, window: tuple[float, float] = NEAR_UNIT) -> torch.Tensor:
    """The authors' count (experiments/collisions.py): neurons with two or more weights whose
    magnitude lies in ``window``, shape (I,)."""
    near = (W.abs() >= window[0]) & (W.abs() <= window[1])
    return (near.sum(-2) >= 2).sum(-1)


def features_near_unit(W: torch.Tensor, window: tuple[float, float] = NEAR_UNIT) -> torch.Tensor:
    """Features with at least one weight of magnitude in ``window``, shape (I,)."""
    near = (W.abs() >= window[0]) & (W.abs() <= window[1])
    return near.any(-1).sum(-1)


def init_overlaps(W_init: torch.Tensor, W_final: torch.Tensor) -> torch.Tensor:
    """C[k, i, j] = cos(W_init_i, W_final_j), shape (I, n, n): the authors' W_init W_final^T
    (feature by feature), with each row scaled to unit norm so the init scale drops out."""
    a = W_init / M.feature_norms(W_init).clamp_min(M.EPS).unsqueeze(-1)
    b = W_final / M.feature_norms(W_final).clamp_min(M.EPS).unsqueeze(-1)
    return torch.einsum("kim,kjm->kij", a, b)


def init_correlation(W_init: torch.Tensor, W_final: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Diagonal mean cos(W_init_i, W_final_i) and off-diagonal mean |cos(W_init_j, W_final_i)|, (I,) each.

    Under winner-take-all, feature i ends on the neuron where its initial weight was largest,
    so the diagonal is about max_j |g_j| / ||g|| (0.3 for m = 64) while an unrelated pair gives
    about E|g_j| / ||g|| (0.1): the diagonal standing well above the off-diagonal is the paper's
    "final weights correlate with the initial ones"."""
    C = init_overlaps(W_init, W_final)
    n = C.shape[-1]
    diag = torch.diagonal(C, dim1=-2, dim2=-1)
    if n < 2:
        return diag.mean(-1), torch.full_like(diag[..., 0], float("nan"))
    off = (C.abs().sum((-2, -1)) - diag.abs().sum(-1)) / (n * (n - 1))
    return diag.mean(-1), off


def inverse_feature_l1(W: torch.Tensor) -> torch.Tensor:
    """Mean over features of 1 / ||W_i||_1, shape (I,): 1/sqrt(k) for unit features spread evenly
    over k neurons, 1 for unit features each on one neuron (a zero feature counts 0)."""
    l1 = W.abs().sum(-1)
    return torch.where(l1 > M.EPS, 1.0 / l1.clamp_min(M.EPS), torch.zeros_like(l1)).mean(-1)


def decoder_alignment(W: torch.Tensor, W_dec: torch.Tensor) -> torch.Tensor:
    """Mean over features of cos(W_i, W_dec_i), shape (I,)."""
    return torch.nn.functional.cosine_similarity(W, W_dec, dim=-1, eps=M.EPS).mean(-1)


def top_weights(W: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each feature's largest-magnitude weight (signed) and the neuron holding it, (I, n) each."""
    neuron = W.abs().argmax(-1)
    return W.gather(-1, neuron.unsqueeze(-1)).squeeze(-1), neuron


# --- the model ----------------------------------------------------------------------------------


class Incidental(IncidentalKind, ToyModel):
    def __init__(self, hp: Hyper, rng: CounterRNG):
        super().__init__(hp, rng)
        self.n = hp.value("n_features")
        self.m = hp.value("n_hidden")
        count = len(hp)
        self.l1 = hp.tensor("l1")
        self.uses_l1 = bool((self.l1 > 0).any())
        self.tied = hp.value("tied")
        kinds = [c["noise"] for c in hp.configs]
        scale = hp.tensor("noise_scale")
        # Per-instance amplitudes, zero where that noise kind is off, so one batch mixes kinds.
        self.bernoulli = (scale * torch.tensor([k == "bernoulli" for k in kinds], device=hp.device)).view(count, 1, 1)
        self.gaussian = (scale * torch.tensor([k == "gaussian" for k in kinds], device=hp.device)).view(count, 1, 1)
        # three_point: +-a with probability q/2 each, else 0; q = 1/kurtosis and a = sigma / sqrt(q) keep the
        # variance sigma^2. Instances of other kinds get amplitude 0 (and q = 1, harmlessly).
        kurtosis = hp.tensor("noise_kurtosis")
        three = torch.tensor([k == "three_point" for k in kinds], device=hp.device)
        self.three_q = torch.where(three, 1.0 / kurtosis, torch.ones_like(kurtosis)).view(count, 1, 1)
        self.three_amp = (scale * three * kurtosis.sqrt()).view(count, 1, 1)
        self.uses_bernoulli = bool((self.bernoulli != 0).any())
        self.uses_gaussian = bool((self.gaussian != 0).any())
        self.uses_three_point = bool((self.three_amp != 0).any())
        self.eye = torch.eye(self.n, device=hp.device)
        self.privileged = torch.tensor([self.neuron_sense(c) is not None for c in hp.configs], device=hp.device)
        # The paper's prediction covers L1 runs without noise only.
        self.l1_only = torch.tensor([c["l1"] > 0 and c["noise"] == "none" for c in hp.configs], device=hp.device)
        self.noise_block = noise_block(self.m)
        self._block_index = -1
        self._block = torch.empty(0)

    def init_weights(self) -> dict[str, torch.Tensor]:
        # The authors' "normal" init: std 1/sqrt(m) per entry, per instance (no fan from the instance dim).
        std = self.hp.tensor("init_scale").view(-1, 1, 1) / self.m**0.5
        weights = {"W": self.rng.normal(INIT, 0, (self.n, self.m)).mul_(std)}
        if not self.tied:  # the decoder from the next draw of the same stream: the encoder stays the tied W
            weights["W_dec"] = self.rng.normal(INIT, 1, (self.n, self.m)).mul_(std)
        return weights

    def _noise(self, step: int) -> torch.Tensor | None:
        """The step's hidden-layer noise, (I, 1, m): one vector per instance, shared by the n inputs.

        Drawn ``noise_block`` steps at a time (draw number (step - 1) // noise_block of the
        NOISE stream), because on a CPU the per-draw cost of the counter RNG's keys dwarfs an
        (I, m) draw. Still a pure function of (seed, step) for a given m."""
        if not (self.uses_bernoulli or self.uses_gaussian or self.uses_three_point):
            return None
        block, offset = divmod(step - 1, self.noise_block)
        if block != self._block_index:
            self._block = self._draw_block(block)
            self._block_index = block
        return self._block[:, offset].unsqueeze(1)

    def _draw_block(self, block: int) -> torch.Tensor:
        shape = (self.noise_block, self.m)
        noise = torch.zeros(len(self.hp), *shape, device=self.hp.device)
        if self.uses_bernoulli:
            signs = self.rng.uniform(NOISE, block, shape).lt_(0.5).mul_(2.0).sub_(1.0)
            noise.addcmul_(signs, self.bernoulli)
        if self.uses_gaussian:
            # Box-Muller reads NOISE and NOISE + 1; sharing NOISE with the signs above is harmless:
            # an instance has one noise kind, so it never sees the other kind's draws.
            noise.addcmul_(self.rng.normal(NOISE, block, shape), self.gaussian)
        if self.uses_three_point:
            # One uniform u: +a below q/2, -a in [q/2, q), 0 above. At kurtosis 1 (q = 1) that is exactly
            # the Bernoulli draw (u < 1/2 gives +sigma), so the two kinds agree to the bit there.
            u = self.rng.uniform(NOISE, block, shape)
            q = self.three_q
            values = torch.where(u < q / 2, 1.0, torch.where(u < q, -1.0, 0.0))
            noise.addcmul_(values, self.three_amp)
        return noise

    def _sq_error(self, weights: dict[str, torch.Tensor], noise: torch.Tensor | None) -> torch.Tensor:
        W = weights["W"]
        h = W if noise is None else W + noise  # x = I, so h = x @ W = W
        out = torch.relu(torch.bmm(h, weights.get("W_dec", W).transpose(1, 2)))
        return (out - self.eye).square().sum((1, 2))

    def loss(self, weights: dict[str, torch.Tensor], step: int) -> torch.Tensor:
        loss = self._sq_error(weights, self._noise(step))
        if self.uses_l1:
            # The authors' untied option puts the L1 on both matrices.
            loss = loss + self.l1 * sum(w.abs().sum((1, 2)) for w in weights.values())
        return loss

    @torch.no_grad()
    def curve_values(self, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        W = weights["W"]
        return {"l1_norm": W.abs().sum((1, 2)), "inverse_feature_l1": inverse_feature_l1(W),
                "basis_sparsity": basis_sparsity(W, represented(W, weights.get("W_dec")))}

    @torch.no_grad()
    def eval_loss(self, weights: dict[str, torch.Tensor]) -> torch.Tensor:
        return self._sq_error(weights, None)

    @torch.no_grad()
    def metrics(self, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        W = weights["W"]
        # The init is a pure function of each instance's seed: recompute it rather than keep a copy.
        diag, off = init_correlation(self.init_weights()["W"], W)
        W_dec = weights.get("W_dec")
        mask = represented(W, W_dec)
        alignment = torch.full_like(diag, float("nan")) if W_dec is None else decoder_alignment(W, W_dec)
        predicted = torch.full((len(self.hp),), self.n * (self.n - 1) / (4 * self.m), device=W.device)
        return {
            "polysemantic_neurons": M.where_privileged(
                M.polysemantic_neurons(W, self.hp.tensor("carry_threshold"), mask), self.privileged),
            "predicted_polysemantic": torch.where(self.l1_only, predicted, torch.full_like(predicted, float("nan"))),
            "polysemantic_neurons_paper": M.where_privileged(polysemantic_neurons_paper(W), self.privileged),
            "basis_sparsity": basis_sparsity(W, mask),
            "init_correlation": diag,
            "init_correlation_offdiag": off,
            "features_represented": M.features_represented(W, mask),
            "features_near_unit": features_near_unit(W),
            "decoder_alignment": alignment,
        }

    @torch.no_grad()
    def feature_metrics(self, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        W = weights["W"]
        top, neuron = top_weights(W)
        overlap = torch.diagonal(init_overlaps(self.init_weights()["W"], W), dim1=-2, dim2=-1)
        return {
            "norm": M.feature_norms(W),
            "basis_sparsity": feature_basis_sparsity(W),
            "top_weight": top,
            "top_neuron": neuron,
            "init_overlap": overlap,
        }
