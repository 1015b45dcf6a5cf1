r"""The Kullback-Leibler divergence between policies (the note's §3).

.. math::

    D_{\mathrm{KL}}(p \,\|\, q) = \mathbb{E}_{x \sim p}\left[\log p(x) - \log q(x)\right]

in closed form for the Gaussian and categorical families, by Monte Carlo from samples
for anything that can be sampled, and averaged over observed states for a policy:
:math:`\bar D_{\mathrm{KL}}(\theta \,\|\, \theta') = \frac1N \sum_i
D_{\mathrm{KL}}(\pi_\theta(\cdot\mid s_i) \,\|\, \pi_{\theta'}(\cdot\mid s_i))`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.distributions import Categorical, Distribution, Independent, Normal

from ._checks import require_int
from .policies import Policy, sample_actions


def kl_divergence(p: Distribution, q: Distribution) -> Tensor:
    r"""Closed-form :math:`D_{\mathrm{KL}}(p \,\|\, q)`, elementwise over the batch.

    * Gaussians: :math:`\log\frac{\sigma_q}{\sigma_p} + \frac{\sigma_p^2 + (\mu_p-\mu_q)^2}
      {2\sigma_q^2} - \frac12`.
    * Categoricals: :math:`\sum_a p_a (\log p_a - \log q_a)`, with :math:`0 \log 0 = 0`.
    * Diagonal Gaussians (``Independent`` over ``Normal``): the sum of the coordinates' KLs.

    Raises:
        TypeError: if ``p`` and ``q`` are not both Normal, both diagonal Normal or both Categorical.
    """
    if isinstance(p, Independent) and isinstance(q, Independent):
        # diagonal Gaussians: the coordinates are independent, so their KLs add up
        if p.reinterpreted_batch_ndims != q.reinterpreted_batch_ndims:
            raise TypeError("p and q must reinterpret the same number of dimensions as events")
        return kl_divergence(p.base_dist, q.base_dist).sum(tuple(range(-p.reinterpreted_batch_ndims, 0)))
    if isinstance(p, Normal) and isinstance(q, Normal):
        var_ratio = (p.scale / q.scale) ** 2
        mean_term = ((p.loc - q.loc) / q.scale) ** 2
        return 0.5 * (var_ratio + mean_term - 1.0 - torch.log(var_ratio))
    if isinstance(p, Categorical) and isinstance(q, Categorical):
        # Categorical keeps normalized log-probabilities in .logits; where p_a = 0 the
        # term is 0 whatever q_a is.
        terms = p.probs * (p.logits - q.logits)
        return torch.where(p.probs > 0, terms, torch.zeros_like(terms)).sum(-1)
    raise TypeError(
        "p and q must both be Normal or both Categorical, got "
        f"{type(p).__name__} and {type(q).__name__}"
    )


@dataclass(frozen=True)
class MonteCarloEstimate:
    """A Monte Carlo mean with its standard error (sample std / sqrt(n))."""

    value: float
    std_error: float
    n_samples: int


def kl_monte_carlo(
    p: Distribution, q: Distribution, n_samples: int, generator: torch.Generator
) -> MonteCarloEstimate:
    r"""Unbiased sample estimate of :math:`D_{\mathrm{KL}}(p\,\|\,q)` for a single (unbatched) pair.

    Draws :math:`x_1..x_n \sim p` and averages :math:`\log p(x_i) - \log q(x_i)`.
    It needs only samples and log-densities, which is how KL is estimated from rollouts.
    """
    n = require_int("n_samples", n_samples, minimum=2)
    if p.batch_shape != torch.Size() or q.batch_shape != torch.Size():
        raise ValueError("p and q must be single distributions (empty batch_shape)")
    x = sample_actions(p, n, generator)
    log_ratio = p.log_prob(x) - q.log_prob(x)
    return MonteCarloEstimate(
        value=float(log_ratio.mean()),
        std_error=float(log_ratio.std(unbiased=True)) / math.sqrt(n),
        n_samples=n,
    )


def policy_kl(
    policy: Policy, theta: Tensor, theta_new: Tensor, obs: Tensor | None = None
) -> Tensor:
    r"""Mean over states of :math:`D_{\mathrm{KL}}(\pi_\theta(\cdot\mid s) \,\|\, \pi_{\theta_{new}}(\cdot\mid s))`.

    Differentiable in both parameter vectors. For a stateless policy ``obs`` is ``None``
    and the result is the KL between the two distributions.
    """
    theta = policy.check_theta(theta, "theta")
    theta_new = policy.check_theta(theta_new, "theta_new")
    obs = policy.check_obs(obs)
    return _policy_kl(policy, theta, theta_new, obs)


def _policy_kl(policy: Policy, theta: Tensor, theta_new: Tensor, obs: Tensor | None) -> Tensor:
    """Unchecked :func:`policy_kl`, safe inside :mod:`torch.func` transforms."""
    kl = kl_divergence(policy._distribution(theta, obs), policy._distribution(theta_new, obs))
    return kl.mean()
