"""A batched optimiser: one update for every instance's parameters at once, with
per-instance learning rate and weight decay tensors (torch.optim takes one lr per group)."""

from __future__ import annotations

import torch


class BatchedOptimizer:
    """Adam, AdamW (decoupled decay) or plain SGD, matching torch.optim's update rules.

    ``lr`` and ``weight_decay`` are (I,) tensors; every parameter has a leading
    instance dimension.
    """

    def __init__(self, kind: str, params: dict[str, torch.Tensor], lr: torch.Tensor,
                 weight_decay: torch.Tensor, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.kind = kind
        self.params = params
        self.betas = betas
        self.eps = eps
        self.t = 0
        self._lr = {k: lr.view(-1, *(1,) * (p.dim() - 1)) for k, p in params.items()}
        self._wd = {k: weight_decay.view(-1, *(1,) * (p.dim() - 1)) for k, p in params.items()}
        self._has_wd = bool((weight_decay != 0).any())
        if kind in ("adam", "adamw"):
            self.m = {k: torch.zeros_like(p) for k, p in params.items()}
            self.v = {k: torch.zeros_like(p) for k, p in params.items()}

    def moments(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """The first and second moment estimates by parameter, for a checkpoint (both empty for SGD; the step
        count is ``t``)."""
        if self.kind == "sgd":
            return {}, {}
        return self.m, self.v

    @torch.no_grad()
    def load_moments(self, first: dict[str, torch.Tensor], second: dict[str, torch.Tensor], t: int) -> None:
        """Continue from a checkpoint's moments and step count."""
        for name, value in first.items():  # none for SGD
            self.m[name].copy_(value)
        for name, value in second.items():
            self.v[name].copy_(value)
        self.t = t

    @torch.no_grad()
    def step(self, grads: dict[str, torch.Tensor], frozen: torch.Tensor | None = None) -> None:
        """One update. ``frozen`` (I,) bool marks instances that must not move (diverged ones):
        their update is zeroed with ``where``, since lr * NaN would still be NaN."""
        self.t += 1
        b1, b2 = self.betas
        for name, p in self.params.items():
            g, lr, wd = grads[name], self._lr[name], self._wd[name]
            if self.kind == "sgd":
                if self._has_wd:
                    g = g + wd * p
                p.sub_(self._masked(lr * g, frozen))
                continue
            if self.kind == "adamw":
                if self._has_wd:
                    p.mul_(1 - lr * wd)
            elif self._has_wd:
                g = g + wd * p
            m, v = self.m[name], self.v[name]
            m.lerp_(g, 1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            bias1 = 1 - b1**self.t
            bias2_sqrt = (1 - b2**self.t) ** 0.5
            denom = (v.sqrt() / bias2_sqrt).add_(self.eps)
            p.sub_(self._masked((lr / bias1) * m / denom, frozen))

    @staticmethod
    def _masked(update: torch.Tensor, frozen: torch.Tensor | None) -> torch.Tensor:
        if frozen is None:
            return update
        return torch.where(frozen.view(-1, *(1,) * (update.dim() - 1)), torch.zeros((), device=update.device), update)
