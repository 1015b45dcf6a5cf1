"""MLPGaussianPolicy: the note's Gaussian policy with an MLP mean, checked against references.

The Fisher matrix three ways (closed form in the output coordinates, the autograd Hessian of the
closed-form KL, the score outer product by Monte Carlo within its standard error); the KL against
scipy-free closed forms computed here by hand; the log-density against the textbook formula.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import npgbook as nb
from npgbook.policies import MLPGaussianPolicy


@pytest.fixture
def bench():
    policy = MLPGaussianPolicy(3, 2, (5,), dtype=torch.float64)
    theta = policy.initial_params(0, last_layer_scale=0.5, log_std=-0.3)
    theta[-1] = 0.4  # the two action coordinates get different spreads
    obs = torch.randn(7, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    return policy, theta, obs


def test_layout_and_initialization(bench):
    policy, theta, obs = bench
    assert policy.n_params == (3 * 5 + 5) + (5 * 2 + 2) + 2 == theta.numel()
    assert torch.equal(theta[-2], torch.tensor(-0.3, dtype=torch.float64))
    mean, log_std = policy.mean_log_std(theta, obs)
    assert mean.shape == (7, 2) and torch.equal(log_std, theta[-2:])
    fresh = policy.initial_params(3)
    assert torch.equal(fresh[-2:], torch.zeros(2, dtype=torch.float64))
    # a small last layer: the initial mean is close to 0
    assert float(policy.mean_log_std(fresh, obs)[0].abs().max()) < 0.1
    assert torch.equal(fresh, policy.initial_params(3))
    assert policy.initial_params(3, log_std=0.13)[-1].item() == 0.13  # float64, not via float32


def test_log_prob_is_the_diagonal_gaussian_density(bench):
    policy, theta, obs = bench
    mean, log_std = policy.mean_log_std(theta, obs)
    actions = torch.randn(7, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    sigma = torch.exp(log_std)
    by_hand = (-0.5 * ((actions - mean) / sigma) ** 2 - torch.log(sigma) - 0.5 * math.log(2 * math.pi)).sum(-1)
    assert torch.allclose(policy.log_prob(theta, actions, obs), by_hand, atol=1e-13)


def test_kl_is_the_sum_of_the_coordinates_closed_forms(bench):
    policy, theta, obs = bench
    other = theta + 0.1 * torch.randn(theta.numel(), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    m1, l1 = policy.mean_log_std(theta, obs)
    m2, l2 = policy.mean_log_std(other, obs)
    s1, s2 = torch.exp(l1), torch.exp(l2)
    by_hand = (torch.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5).sum(-1).mean()
    assert abs(float(nb.policy_kl(policy, theta, other, obs)) - float(by_hand)) < 1e-13
    assert float(nb.policy_kl(policy, theta, theta, obs)) == 0.0


def test_fisher_three_ways(bench):
    policy, theta, obs = bench
    closed = nb.fisher_mlp_gaussian(policy, theta, obs)
    hessian = nb.fisher_kl_hessian(policy, theta, obs)
    assert torch.allclose(hessian, closed, atol=1e-10, rtol=0)
    # the log-std block is 2I and the cross terms vanish, whatever the mean network
    k = policy.n_net_params
    assert torch.allclose(closed[k:, k:], 2 * torch.eye(2, dtype=torch.float64))
    assert float(hessian[:k, k:].abs().max()) < 1e-10
    # the score outer product by Monte Carlo: unbiased, each entry within 5 standard errors
    n = 4000
    actions = nb.sample_actions(policy.distribution(theta, obs), n, torch.Generator().manual_seed(4))
    scores = nb.score_vectors(policy, theta, actions.reshape(-1, 2), obs.repeat(n, 1))
    outer = torch.einsum("si,sj->sij", scores, scores)
    mc, se = outer.mean(0), outer.std(0) / math.sqrt(outer.shape[0])
    assert bool(((mc - closed).abs() <= 5 * se + 1e-12).all())
    estimate = nb.fisher_score_outer(policy, theta, obs, n_samples=n, generator=torch.Generator().manual_seed(4))
    assert torch.allclose(estimate, mc, atol=1e-12)


def test_fisher_block_scales_as_one_over_sigma_squared(bench):
    """The mean block is e^{-2l}-weighted: halving sigma quadruples the curvature in the mean."""
    policy, theta, obs = bench
    k = policy.n_net_params
    narrower = theta.clone()
    narrower[k:] -= math.log(2.0)
    ratio = nb.fisher_mlp_gaussian(policy, narrower, obs)[:k, :k] / nb.fisher_mlp_gaussian(policy, theta, obs)[:k, :k]
    finite = torch.isfinite(ratio)
    assert torch.allclose(ratio[finite], torch.full_like(ratio[finite], 4.0), atol=1e-9)


def test_float32_policy(bench):
    policy32 = MLPGaussianPolicy(3, 2, (5,), dtype=torch.float32)
    theta = policy32.initial_params(0)
    assert theta.dtype == torch.float32
    obs = np.zeros((4, 3), dtype=np.float32)
    assert policy32.distribution(theta, obs).sample().shape == (4, 2)


def test_bad_inputs(bench):
    policy, theta, obs = bench
    for name, call in [
        ("act_dim", lambda: MLPGaussianPolicy(3, 0)),
        ("obs_dim", lambda: MLPGaussianPolicy(0, 1)),
        ("log_std", lambda: policy.initial_params(0, log_std=float("nan"))),
        ("theta", lambda: policy.mean_log_std(theta[:-1], obs)),
        ("obs", lambda: policy.mean_log_std(theta, obs[:, :2])),
        ("actions", lambda: nb.score_vectors(policy, theta, torch.zeros(7), obs)),
    ]:
        with pytest.raises(ValueError, match=name):
            call()
    with pytest.raises(TypeError, match="policy"):
        nb.fisher_mlp_gaussian(nb.GaussianPolicy(), torch.tensor([0.0, 1.0]), obs)
