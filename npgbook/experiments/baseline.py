r"""Chapter 1: a constant baseline in the REINFORCE estimator, on the Gaussian bandit.

With a constant baseline :math:`b` the score-function estimate from :math:`N` actions is

.. math::

    \hat g_N(b) = \frac1N \sum_{i=1}^N \big(r(a_i) - b\big)\,s(a_i),
    \qquad s(a) = \nabla_\theta \log\pi_\theta(a),\quad a_i \sim \pi_\theta .

Its mean is :math:`\nabla J` for every :math:`b`, because the score has mean zero,
:math:`\mathbb E[s] = \int \nabla_\theta\pi_\theta = \nabla_\theta \int \pi_\theta = 0`. Its variance is
not the same for every :math:`b`: per component :math:`k` one sample contributes

.. math::

    v_k(b) = \operatorname{Var}\big[(r - b)\,s_k\big]
    = \mathbb E\big[(r-b)^2 s_k^2\big] - g_k^2,

a quadratic in :math:`b` with its minimum at :math:`b^*_k = \mathbb E[r\,s_k^2] / \mathbb E[s_k^2]`,
and the batch estimate has variance :math:`v_k(b)/N`.

:func:`score_function_variance` and :func:`best_baseline` compute these expectations by
Gauss-Hermite quadrature (exact to rounding for this smooth integrand);
:func:`baseline_comparison` measures the same thing by drawing many batches, through
:meth:`~npgbook.problems.bandit.GaussianBandit.reinforce_gradient` itself.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .._checks import DTYPE, as_tensor, require_finite, require_int
from ..fisher import score_vectors
from ..policies import GaussianPolicy
from ..problems.bandit import GaussianBandit

__all__ = ["BaselineComparison", "baseline_comparison", "best_baseline", "score_function_variance"]


def _check(bandit: GaussianBandit, policy: GaussianPolicy, theta: Tensor) -> Tensor:
    if not isinstance(bandit, GaussianBandit):
        raise TypeError(f"bandit must be a GaussianBandit, got {type(bandit).__name__}")
    if not isinstance(policy, GaussianPolicy):
        raise TypeError(f"policy must be a GaussianPolicy, got {type(policy).__name__}")
    return policy.check_theta(require_finite("theta", as_tensor("theta", theta))).detach()


def _nodes(
    bandit: GaussianBandit, policy: GaussianPolicy, theta: Tensor, n_nodes: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Quadrature nodes: the weights, the rewards and the scores at :math:`a_j = \\mu + \\sigma x_j`."""
    n_nodes = require_int("n_nodes", n_nodes, minimum=8)
    x, w = np.polynomial.hermite_e.hermegauss(n_nodes)  # weight exp(-x^2/2)
    weights = torch.as_tensor(w / w.sum(), dtype=DTYPE)
    mu, sigma = policy.mean_std(theta)
    actions = mu + sigma * torch.as_tensor(x, dtype=DTYPE)
    return weights, bandit.reward(actions), score_vectors(policy, theta, actions)


def score_function_variance(
    bandit: GaussianBandit,
    policy: GaussianPolicy,
    theta: Tensor,
    baseline: float = 0.0,
    *,
    n_nodes: int = 96,
) -> Tensor:
    r"""Per-sample variance :math:`v_k(b) = \mathbb E[(r-b)^2 s_k^2] - g_k^2` of every component.

    The batch estimate :math:`\hat g_N(b)` has variance :math:`v_k(b)/N`.

    Args:
        bandit, policy, theta: the problem, the Gaussian policy and its parameters.
        baseline: the constant :math:`b`.
        n_nodes: the number of Gauss-Hermite nodes (at least 8).

    Returns:
        shape ``(2,)``, in the order of ``theta``.
    """
    theta = _check(bandit, policy, theta)
    b = float(require_finite("baseline", as_tensor("baseline", baseline)))
    weights, reward, scores = _nodes(bandit, policy, theta, n_nodes)
    second = (weights.unsqueeze(1) * ((reward - b).unsqueeze(1) * scores) ** 2).sum(0)
    return second - bandit.exact_gradient(policy, theta) ** 2


def best_baseline(
    bandit: GaussianBandit, policy: GaussianPolicy, theta: Tensor, *, n_nodes: int = 96
) -> Tensor:
    r"""The variance-minimizing constant baseline of every component,
    :math:`b^*_k = \mathbb E[r\,s_k^2] / \mathbb E[s_k^2]`, shape ``(2,)``."""
    theta = _check(bandit, policy, theta)
    weights, reward, scores = _nodes(bandit, policy, theta, n_nodes)
    w = weights.unsqueeze(1)
    return (w * reward.unsqueeze(1) * scores**2).sum(0) / (w * scores**2).sum(0)


@dataclass(frozen=True)
class BaselineComparison:
    r"""REINFORCE estimates with several baselines on the same batches (:func:`baseline_comparison`).

    Attributes:
        baselines: the constants :math:`b`, in the order given.
        n_samples: the batch size :math:`N`.
        exact: the exact gradient :math:`\nabla J`, shape ``(2,)``.
        estimates: :math:`\hat g_N(b)` of every baseline and batch, shape
            ``(len(baselines), n_batches, 2)``; batch :math:`m` has the same actions for
            every baseline.
    """

    baselines: tuple[float, ...]
    n_samples: int
    exact: Tensor
    estimates: Tensor

    @property
    def n_batches(self) -> int:
        """The number of batches per baseline."""
        return self.estimates.shape[1]

    @property
    def mean(self) -> Tensor:
        """The mean estimate of every baseline, shape ``(len(baselines), 2)``."""
        return self.estimates.mean(1)

    @property
    def bias_z(self) -> Tensor:
        r""":math:`|\bar g - \nabla J|` in standard errors of the mean, shape ``(len(baselines), 2)``."""
        stderr = self.estimates.std(1, correction=1) / math.sqrt(self.n_batches)
        return (self.mean - self.exact).abs() / stderr

    @property
    def variance(self) -> Tensor:
        """The variance of the estimates over the batches, shape ``(len(baselines), 2)``."""
        return self.estimates.var(1, correction=1)

    @property
    def squared_error(self) -> Tensor:
        r""":math:`\lVert \hat g_N(b) - \nabla J\rVert^2` of every baseline and batch,
        shape ``(len(baselines), n_batches)``."""
        return ((self.estimates - self.exact) ** 2).sum(2)

    def reduction(self, i: int, j: int = 0) -> tuple[float, float]:
        r"""How much lower the mean squared error of baseline ``i`` is than that of baseline ``j``,
        with its standard error.

        The mean squared error of an unbiased estimate is the trace of its covariance. The
        batches are paired (the same actions for both baselines), so the per-batch differences
        :math:`d_m = \lVert\hat g^{(j)}_m - \nabla J\rVert^2 - \lVert\hat g^{(i)}_m - \nabla J\rVert^2`
        are independent and their mean has standard error :math:`\mathrm{sd}(d)/\sqrt M`.

        Returns:
            ``(mean of d, standard error)``; positive means baseline ``i`` is better.
        """
        d = self.squared_error[j] - self.squared_error[i]
        return float(d.mean()), float(d.std(correction=1) / math.sqrt(self.n_batches))


def baseline_comparison(
    bandit: GaussianBandit,
    policy: GaussianPolicy,
    theta: Tensor,
    baselines: Sequence[float],
    n_samples: int,
    n_batches: int,
    *,
    seed: int = 0,
) -> BaselineComparison:
    r"""Draw ``n_batches`` REINFORCE estimates for every baseline, with common random numbers.

    Batch :math:`m` uses a generator seeded with ``seed + m`` for every baseline, so the
    estimates of two baselines differ only by :math:`-(b - b')\,\frac1N\sum_i s(a_i)`, and their
    comparison is paired. Each estimate is
    :meth:`~npgbook.problems.bandit.GaussianBandit.reinforce_gradient`.

    Args:
        bandit, policy, theta: the problem, the Gaussian policy and its parameters.
        baselines: the constants :math:`b`, at least one, no repeats.
        n_samples: the batch size :math:`N`.
        n_batches: the number :math:`M \ge 2` of batches.
        seed: the seed of the first batch.
    """
    theta = _check(bandit, policy, theta)
    values = tuple(float(require_finite("baselines", as_tensor("baselines", b))) for b in baselines)
    if not values or len(set(values)) != len(values):
        raise ValueError(f"baselines must be a non-empty sequence without repeats, got {baselines}")
    n_samples = require_int("n_samples", n_samples)
    n_batches = require_int("n_batches", n_batches, minimum=2)
    seed = require_int("seed", seed, minimum=0)
    estimates = torch.stack(
        [
            torch.stack(
                [
                    bandit.reinforce_gradient(
                        policy, theta, n_samples, torch.Generator().manual_seed(seed + m), baseline=b
                    )
                    for m in range(n_batches)
                ]
            )
            for b in values
        ]
    )
    return BaselineComparison(values, n_samples, bandit.exact_gradient(policy, theta), estimates)
