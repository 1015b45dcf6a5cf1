r"""The learned value baseline :math:`V_\phi(s)` used by the advantage estimator.

A tanh MLP regressed on the GAE value targets :math:`\hat A_t + V_{\phi_{\rm old}}(s_t)` by
Adam on the mean squared error, for a few epochs of shuffled minibatches per iteration.
The network, its gradient and Adam are written out by hand on one flat parameter vector
(:class:`~npgbook.rl.mlp.TanhMLP`): the same algorithm as ``torch.optim.Adam`` on an
``nn.Sequential`` (the tests check it against them), at a fraction of the cost per minibatch.
The baseline only reduces the variance of :math:`\hat g`; it does not change the policy
update rule, so NPG, TRPO and the vanilla policy gradient share it.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._checks import require_int, require_positive
from ..policies import _orthogonal_
from .mlp import TanhMLP

ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8  # torch.optim.Adam's defaults


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

    Attributes:
        params: :math:`\phi`, all weights and biases in one flat vector (``nn.Linear`` layout).
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
        self.mlp = TanhMLP((obs_dim, *hidden, 1))
        self.params = torch.zeros(self.mlp.n_params, dtype=dtype)
        generator = torch.Generator().manual_seed(int(seed))
        layers = self.mlp.layers(self.params)
        for i, (weight, _) in enumerate(layers):  # biases stay 0
            _orthogonal_(weight, 1.0 if i == len(layers) - 1 else math.sqrt(2.0), generator)
        self._grad = torch.zeros_like(self.params)
        self._m = torch.zeros_like(self.params)  # Adam's first and second moments
        self._v = torch.zeros_like(self.params)
        self._steps = 0
        self._layers, self._grad_layers = self.mlp.layers(self.params), self.mlp.layers(self._grad)  # views, kept

    def __call__(self, obs: Tensor) -> Tensor:
        """Values of a batch of observations ``(..., obs_dim) -> (...)``, without gradient."""
        x = obs.to(self.dtype)
        with torch.no_grad():
            out = self.mlp.forward(self.params, x.reshape(-1, x.shape[-1]).contiguous())[-1]
        return out.reshape(x.shape[:-1])

    def _adam_step(self, grad: Tensor) -> None:
        r"""Adam: :math:`m \leftarrow \beta_1 m + (1-\beta_1) g`, :math:`v \leftarrow \beta_2 v + (1-\beta_2) g^2`,
        :math:`\phi \leftarrow \phi - \frac{\eta}{1-\beta_1^t}\, m / (\sqrt{v/(1-\beta_2^t)} + \epsilon)`."""
        (b1, b2), self._steps = ADAM_BETAS, self._steps + 1
        self._m.mul_(b1).add_(grad, alpha=1.0 - b1)
        self._v.mul_(b2).addcmul_(grad, grad, value=1.0 - b2)
        denom = self._v.sqrt().div_(math.sqrt(1.0 - b2**self._steps)).add_(ADAM_EPS)
        self.params.addcdiv_(self._m, denom, value=-self.lr / (1.0 - b1**self._steps))

    def fit(self, obs: Tensor, targets: Tensor, generator: torch.Generator) -> float:
        r"""Regress on ``targets`` for :attr:`epochs` epochs; return the mean squared error before fitting.

        Each epoch draws a random order of the :math:`M` samples and takes one Adam step per
        minibatch :math:`B` on :math:`\frac1{|B|}\sum_{i\in B} (V_\phi(s_i) - y_i)^2`, whose
        gradient is the network's backward pass of :math:`\frac2{|B|}(V_\phi(s_i) - y_i)`.

        Args:
            obs: observations ``(M, obs_dim)``.
            targets: value targets ``(M,)``.
            generator: shuffles the minibatches.
        """
        if obs.ndim != 2 or targets.shape != (obs.shape[0],):
            raise ValueError(f"obs (M, d) and targets (M,) must match, got {tuple(obs.shape)}, {tuple(targets.shape)}")
        if not bool(torch.isfinite(targets).all()):
            raise ValueError("targets must be finite")
        obs, targets = obs.to(self.dtype).contiguous(), targets.to(self.dtype)
        mlp, params = self.mlp, self.params
        with torch.no_grad():
            loss_before = float((mlp.forward(params, obs)[-1][:, 0] - targets).pow(2).mean())
            m = obs.shape[0]
            for _ in range(self.epochs):
                order = torch.randperm(m, generator=generator)
                for start in range(0, m, self.minibatch_size):
                    idx = order[start : start + self.minibatch_size]
                    acts = mlp.forward(params, obs[idx], self._layers)
                    residual = acts[-1].sub_(targets[idx, None]).mul_(2.0 / idx.shape[0])
                    grad = mlp.backward(params, acts, residual, self._grad, None, self._layers, self._grad_layers)
                    self._adam_step(grad)
        return loss_before
