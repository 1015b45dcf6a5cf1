r"""The learned value baseline :math:`V_\phi(s)` used by the advantage estimator.

A tanh MLP regressed on the GAE value targets :math:`\hat A_t + V_{\phi_{\rm old}}(s_t)` by
Adam on the mean squared error, for a few epochs of shuffled minibatches per iteration.
The baseline only reduces the variance of :math:`\hat g`; it does not change the policy
update rule, so NPG, TRPO and REINFORCE share it.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .._checks import require_int, require_positive
from ..policies import _orthogonal_


class ValueFunction:
    r""":math:`V_\phi: \mathbb{R}^{d} \to \mathbb{R}`, a tanh MLP trained by regression.

    Args:
        obs_dim: observation size :math:`d`.
        hidden: hidden-layer widths.
        lr: Adam learning rate.
        epochs: passes over the batch per call to :meth:`fit`.
        minibatch_size: samples per Adam step.
        seed: fixes the initial weights (orthogonal, gain :math:`\sqrt2`; output gain 1).
        dtype: floating type of the network.
    """

    def __init__(
        self,
        obs_dim: int,
        hidden: tuple[int, ...] = (64, 64),
        *,
        lr: float = 1e-3,
        epochs: int = 10,
        minibatch_size: int = 256,
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        obs_dim = require_int("obs_dim", obs_dim)
        hidden = tuple(require_int("value_hidden", h) for h in hidden)
        self.lr = require_positive("value_lr", lr)
        self.epochs = require_int("value_epochs", epochs, minimum=0)
        self.minibatch_size = require_int("value_minibatch", minibatch_size)
        self.dtype = dtype
        layers: list[nn.Module] = []
        width = obs_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.Tanh()]
            width = h
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers).to(dtype)
        generator = torch.Generator().manual_seed(int(seed))
        linears = [m for m in self.net if isinstance(m, nn.Linear)]
        with torch.no_grad():
            for i, layer in enumerate(linears):
                gain = 1.0 if i == len(linears) - 1 else math.sqrt(2.0)
                _orthogonal_(layer.weight, gain, generator)
                layer.bias.zero_()
        try:  # the fused CPU kernel is the fastest for many small steps
            self.optimizer = torch.optim.Adam(self.net.parameters(), lr=self.lr, fused=True)
        except (RuntimeError, TypeError):  # pragma: no cover - older torch
            self.optimizer = torch.optim.Adam(self.net.parameters(), lr=self.lr, foreach=True)

    def __call__(self, obs: Tensor) -> Tensor:
        """Values of a batch of observations ``(..., obs_dim) -> (...)``, without gradient."""
        with torch.no_grad():
            return self.net(obs.to(self.dtype)).squeeze(-1)

    def fit(self, obs: Tensor, targets: Tensor, generator: torch.Generator) -> float:
        """Regress on ``targets`` for :attr:`epochs` epochs; return the mean squared error before fitting.

        Args:
            obs: observations ``(M, obs_dim)``.
            targets: value targets ``(M,)``.
            generator: shuffles the minibatches.
        """
        if obs.ndim != 2 or targets.shape != (obs.shape[0],):
            raise ValueError(f"obs (M, d) and targets (M,) must match, got {tuple(obs.shape)}, {tuple(targets.shape)}")
        if not bool(torch.isfinite(targets).all()):
            raise ValueError("targets must be finite")
        obs, targets = obs.to(self.dtype), targets.to(self.dtype)
        with torch.no_grad():
            loss_before = float((self.net(obs).squeeze(-1) - targets).pow(2).mean())
        m = obs.shape[0]
        for _ in range(self.epochs):
            order = torch.randperm(m, generator=generator)
            for start in range(0, m, self.minibatch_size):
                idx = order[start : start + self.minibatch_size]
                loss = (self.net(obs[idx]).squeeze(-1) - targets[idx]).pow(2).mean()
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
        return loss_before
