r"""A one-step continuous bandit whose policy-gradient objective is known in closed form.

The action :math:`a \in \mathbb{R}` earns the reward of a Gaussian bump,

.. math::

    r(a) = \exp\!\left(-\frac{(a - c)^2}{2 w^2}\right),

peaking at the target :math:`c` with width :math:`w`. Under the Gaussian policy
:math:`a \sim \mathcal{N}(\mu, \sigma^2)` the expected reward is again a Gaussian integral,

.. math::

    J(\mu, \sigma) = \mathbb{E}_{a\sim\pi_\theta}[r(a)]
    = \frac{w}{\sqrt{w^2 + \sigma^2}} \exp\!\left(-\frac{(\mu - c)^2}{2 (w^2 + \sigma^2)}\right),

so the exact gradient :math:`\nabla_\theta J` is available by differentiating this formula.
That makes the bandit a test bench for sampled (REINFORCE) gradients and for the shape of a
policy-gradient landscape: a peak with nearly flat tails, where large steps overshoot and
small gradients stall.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._checks import DTYPE, as_tensor, require_finite, require_positive
from ..fisher import score_vectors
from ..policies import GaussianPolicy, sample_actions


class GaussianBandit:
    """The Gaussian-bump bandit :math:`r(a) = \\exp(-(a-c)^2 / 2w^2)`.

    Args:
        target: the best action :math:`c`.
        width: the width :math:`w > 0` of the reward bump; a narrow bump gives a landscape
            :math:`J(\\mu)` with a sharp peak and flat tails.
    """

    def __init__(self, target: float = 0.0, width: float = 1.0) -> None:
        self.target = float(require_finite("target", as_tensor("target", target)))
        self.width = require_positive("width", width)

    def __repr__(self) -> str:
        return f"GaussianBandit(target={self.target}, width={self.width})"

    def reward(self, actions: Tensor) -> Tensor:
        """:math:`r(a)` elementwise."""
        actions = require_finite("actions", as_tensor("actions", actions))
        return torch.exp(-0.5 * ((actions - self.target) / self.width) ** 2)

    def expected_reward(self, policy: GaussianPolicy, theta: Tensor) -> Tensor:
        r""":math:`J(\theta)` in closed form; differentiable in ``theta``."""
        if not isinstance(policy, GaussianPolicy):
            raise TypeError(f"policy must be a GaussianPolicy, got {type(policy).__name__}")
        return self._expected_reward(policy, policy.check_theta(theta))

    def _expected_reward(self, policy: GaussianPolicy, theta: Tensor) -> Tensor:
        mu, sigma = policy._mean_std(theta)
        spread = self.width**2 + sigma**2
        return self.width / torch.sqrt(spread) * torch.exp(-0.5 * (mu - self.target) ** 2 / spread)

    def exact_gradient(self, policy: GaussianPolicy, theta: Tensor) -> Tensor:
        r""":math:`\nabla_\theta J(\theta)`, by automatic differentiation of the closed form."""
        if not isinstance(policy, GaussianPolicy):
            raise TypeError(f"policy must be a GaussianPolicy, got {type(policy).__name__}")
        theta = policy.check_theta(theta).detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(self._expected_reward(policy, theta), theta)
        return grad

    def reinforce_gradient(
        self,
        policy: GaussianPolicy,
        theta: Tensor,
        n_samples: int,
        generator: torch.Generator,
        baseline: float = 0.0,
    ) -> Tensor:
        r"""The score-function (REINFORCE) estimate :math:`\frac1N\sum_i (r(a_i) - b)\,\nabla_\theta\log\pi_\theta(a_i)`.

        Unbiased for any constant baseline :math:`b`, because :math:`\mathbb{E}[\nabla\log\pi] = 0`;
        a baseline near :math:`J` lowers its variance.
        """
        theta = policy.check_theta(theta)
        baseline = float(require_finite("baseline", as_tensor("baseline", baseline)))
        actions = sample_actions(policy.distribution(theta), n_samples, generator).to(DTYPE)
        scores = score_vectors(policy, theta, actions)
        return ((self.reward(actions) - baseline).unsqueeze(1) * scores).mean(0)
