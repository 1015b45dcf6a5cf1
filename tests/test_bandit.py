import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from npgbook import GaussianPolicy
from npgbook.problems.bandit import GaussianBandit


@pytest.mark.parametrize("mu, sigma, target, width", [(0.0, 1.0, 0.0, 1.0), (-2.0, 0.3, 1.0, 0.5), (1.5, 2.0, -1.0, 0.2)])
def test_expected_reward_matches_numerical_integration(mu, sigma, target, width):
    bandit = GaussianBandit(target, width)
    ref, _ = integrate.quad(
        lambda a: stats.norm.pdf(a, mu, sigma) * math.exp(-0.5 * ((a - target) / width) ** 2), -50, 50, points=[mu, target], epsabs=0.0, epsrel=1e-12, limit=200
    )
    for param in ("sigma", "log_sigma"):
        policy = GaussianPolicy(param)
        assert math.isclose(float(bandit.expected_reward(policy, policy.params(mu, sigma))), ref, rel_tol=1e-9)


@pytest.mark.parametrize("param", ["sigma", "log_sigma"])
def test_exact_gradient_matches_central_differences(param):
    bandit, policy = GaussianBandit(0.5, 0.7), GaussianPolicy(param)
    theta = policy.params(-0.3, 0.9)
    h = 1e-6
    fd = torch.stack(
        [
            (bandit.expected_reward(policy, theta + h * e) - bandit.expected_reward(policy, theta - h * e)) / (2 * h)
            for e in torch.eye(2)
        ]
    )
    assert torch.allclose(bandit.exact_gradient(policy, theta), fd, atol=1e-8)


@pytest.mark.parametrize("baseline", [0.0, 0.5])
def test_reinforce_is_unbiased(baseline):
    bandit, policy = GaussianBandit(1.0, 0.8), GaussianPolicy("sigma")
    theta = policy.params(0.0, 1.0)
    draws = torch.stack(
        [bandit.reinforce_gradient(policy, theta, 2000, torch.Generator().manual_seed(s), baseline) for s in range(200)]
    ).numpy()
    exact = bandit.exact_gradient(policy, theta).numpy()
    stderr = draws.std(0, ddof=1) / np.sqrt(len(draws))
    assert np.all(np.abs(draws.mean(0) - exact) < 4 * stderr)


def test_bandit_bad_inputs():
    with pytest.raises(ValueError, match="width"):
        GaussianBandit(0.0, 0.0)
    with pytest.raises(ValueError, match="target"):
        GaussianBandit(float("nan"), 1.0)
    with pytest.raises(TypeError, match="policy"):
        GaussianBandit().expected_reward(object(), torch.zeros(2))
    with pytest.raises(ValueError, match="theta"):
        GaussianBandit().expected_reward(GaussianPolicy(), torch.tensor([0.0, -1.0]))
