"""Chapter 1's baseline experiment, against scipy quadrature and against the estimator itself."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from npgbook import GaussianPolicy
from npgbook.experiments.baseline import baseline_comparison, best_baseline, score_function_variance
from npgbook.problems.bandit import GaussianBandit

BANDIT = GaussianBandit(2.0, 0.5)


def _expect(f, mu, sigma):
    """E[f(a)] for a ~ N(mu, sigma^2), by adaptive quadrature."""
    value, _ = integrate.quad(
        lambda a: stats.norm.pdf(a, mu, sigma) * f(a),
        mu - 14 * sigma,
        mu + 14 * sigma,
        points=[mu, 2.0],
        epsabs=0.0,
        epsrel=1e-11,
        limit=400,
    )
    return value


def _reward(a):
    return math.exp(-0.5 * ((a - 2.0) / 0.5) ** 2)


def _closed_form_scores(a, mu, sigma, param):
    z = (a - mu) / sigma
    if param == "log_sigma":
        return (z / sigma, z**2 - 1)
    return (z / sigma, (z**2 - 1) / sigma)


@pytest.mark.parametrize("param", ["sigma", "log_sigma"])
@pytest.mark.parametrize("mu, sigma, b", [(0.0, 1.0, 0.0), (0.0, 1.0, 0.3), (1.5, 0.4, 0.8)])
def test_variance_matches_scipy_quadrature(param, mu, sigma, b):
    policy = GaussianPolicy(param)
    theta = policy.params(mu, sigma)
    got = score_function_variance(BANDIT, policy, theta, b).numpy()
    for k in (0, 1):

        def term(a, k=k):
            return (_reward(a) - b) * _closed_form_scores(a, mu, sigma, param)[k]

        mean = _expect(term, mu, sigma)
        second = _expect(lambda a, term=term: term(a) ** 2, mu, sigma)
        assert math.isclose(got[k], second - mean**2, rel_tol=1e-8, abs_tol=1e-12)


def test_best_baseline_minimizes_the_variance():
    policy = GaussianPolicy("log_sigma")
    theta = policy.params(0.0, 1.0)
    best = best_baseline(BANDIT, policy, theta).numpy()
    grid = np.linspace(-0.5, 1.5, 401)
    v = np.array([score_function_variance(BANDIT, policy, theta, b).numpy() for b in grid])
    for k in (0, 1):
        assert abs(grid[v[:, k].argmin()] - best[k]) <= grid[1] - grid[0]
    # and it is the ratio of scipy integrals
    num = _expect(lambda a: _reward(a) * a**2, 0.0, 1.0)
    assert math.isclose(best[0], num / 1.0, rel_tol=1e-8)


def test_comparison_uses_the_estimator_and_agrees_with_the_exact_variance():
    policy = GaussianPolicy("log_sigma")
    theta = policy.params(0.0, 1.0)
    comp = baseline_comparison(BANDIT, policy, theta, (0.0, 0.25), n_samples=50, n_batches=400, seed=7)
    one = BANDIT.reinforce_gradient(policy, theta, 50, torch.Generator().manual_seed(7 + 3), baseline=0.25)
    assert torch.equal(comp.estimates[1, 3], one)
    assert comp.estimates.shape == (2, 400, 2)
    # unbiased for both baselines: within 4 standard errors
    assert bool((comp.bias_z < 4).all())
    # the measured variance agrees with v(b)/N; the relative standard error of a sample variance
    # from 400 draws is about sqrt(2/399) ~ 0.07 for normal data, more for heavy tails: allow 30%
    for i, b in enumerate(comp.baselines):
        exact = score_function_variance(BANDIT, policy, theta, b) / 50
        assert torch.allclose(comp.variance[i], exact, rtol=0.3)
    gain, stderr = comp.reduction(1, 0)
    exact_gain = float(
        (score_function_variance(BANDIT, policy, theta, 0.0) - score_function_variance(BANDIT, policy, theta, 0.25)).sum()
        / 50
    )
    assert abs(gain - exact_gain) < 4 * stderr
    assert comp.reduction(0, 0) == (0.0, 0.0)


def test_bad_inputs_name_the_argument():
    policy = GaussianPolicy("log_sigma")
    theta = policy.params(0.0, 1.0)
    with pytest.raises(ValueError, match="baselines"):
        baseline_comparison(BANDIT, policy, theta, (0.0, 0.0), 10, 5)
    with pytest.raises(ValueError, match="n_batches"):
        baseline_comparison(BANDIT, policy, theta, (0.0,), 10, 1)
    with pytest.raises(ValueError, match="baseline"):
        score_function_variance(BANDIT, policy, theta, float("nan"))
    with pytest.raises(TypeError, match="policy"):
        best_baseline(BANDIT, "gauss", theta)
