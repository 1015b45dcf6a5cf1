import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import integrate, stats
from torch.distributions import Categorical, Normal
from torch.distributions import kl_divergence as torch_kl

from npgbook import (
    CategoricalPolicy,
    GaussianPolicy,
    MLPCategoricalPolicy,
    kl_divergence,
    kl_monte_carlo,
    policy_kl,
)

means = st.floats(-5, 5)
scales = st.floats(0.05, 5)


@given(means, scales, means, scales)
def test_gaussian_kl_matches_torch(mu_p, s_p, mu_q, s_q):
    p, q = Normal(torch.tensor(mu_p), torch.tensor(s_p)), Normal(torch.tensor(mu_q), torch.tensor(s_q))
    assert torch.allclose(kl_divergence(p, q), torch_kl(p, q), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("mu_p, s_p, mu_q, s_q", [(0, 0.3, 1, 0.3), (0, 3, 1, 3), (0.5, 1, -1, 2)])
def test_gaussian_kl_matches_numerical_integration(mu_p, s_p, mu_q, s_q):
    p, q = stats.norm(mu_p, s_p), stats.norm(mu_q, s_q)
    reference, _ = integrate.quad(lambda x: p.pdf(x) * (p.logpdf(x) - q.logpdf(x)), -60, 60, limit=200)
    ours = kl_divergence(Normal(torch.tensor(mu_p, dtype=torch.float64), s_p), Normal(torch.tensor(mu_q, dtype=torch.float64), s_q))
    assert math.isclose(float(ours), reference, rel_tol=1e-8)


@given(st.lists(st.floats(-6, 6), min_size=2, max_size=6), st.integers(0, 2**31 - 1))
def test_categorical_kl_matches_torch(logits, seed):
    p_logits = torch.tensor(logits)
    q_logits = torch.randn(len(logits), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    p, q = Categorical(logits=p_logits), Categorical(logits=q_logits)
    assert torch.allclose(kl_divergence(p, q), torch_kl(p, q), atol=1e-12)


def test_categorical_kl_with_zero_probabilities():
    p = Categorical(probs=torch.tensor([0.5, 0.5, 0.0]))
    q = Categorical(probs=torch.tensor([0.25, 0.25, 0.5]))
    assert math.isclose(float(kl_divergence(p, q)), math.log(2.0), rel_tol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_monte_carlo_kl_is_within_its_error_bars(seed):
    p, q = Normal(torch.tensor(0.0), torch.tensor(1.0)), Normal(torch.tensor(0.7), torch.tensor(1.5))
    est = kl_monte_carlo(p, q, 20_000, torch.Generator().manual_seed(seed))
    exact = float(torch_kl(p, q))
    assert abs(est.value - exact) < 4.5 * est.std_error
    assert est.std_error < 0.01


def test_monte_carlo_kl_categorical():
    p, q = Categorical(logits=torch.tensor([0.0, 1.0, 2.0])), Categorical(logits=torch.tensor([1.0, 0.0, 0.0]))
    est = kl_monte_carlo(p, q, 50_000, torch.Generator().manual_seed(0))
    assert abs(est.value - float(torch_kl(p, q))) < 4.5 * est.std_error


def test_policy_kl_is_zero_at_the_same_parameters_and_positive_elsewhere():
    policy = MLPCategoricalPolicy(4, 2, (8,))
    theta = policy.initial_params(0, last_layer_scale=1.0)
    obs = torch.randn(32, 4)
    assert float(policy_kl(policy, theta, theta, obs)) == 0.0
    other = theta + 0.1 * torch.randn(policy.n_params, generator=torch.Generator().manual_seed(0))
    per_state = torch_kl(policy.distribution(theta, obs), policy.distribution(other, obs))
    assert math.isclose(float(policy_kl(policy, theta, other, obs)), float(per_state.mean()), rel_tol=1e-12)


def test_policy_kl_stateless_and_errors():
    g = GaussianPolicy("log_sigma")
    kl = policy_kl(g, g.params(0, 1), g.params(1, 1))
    assert math.isclose(float(kl), 0.5, rel_tol=1e-12)
    with pytest.raises(ValueError, match="theta_new"):
        policy_kl(g, g.params(0, 1), torch.tensor([0.0, float("nan")]))
    with pytest.raises(TypeError, match="Normal or both Categorical"):
        kl_divergence(Normal(0.0, 1.0), Categorical(logits=torch.zeros(2)))
    with pytest.raises(ValueError, match="n_samples"):
        kl_monte_carlo(Normal(0.0, 1.0), Normal(0.0, 1.0), 1, torch.Generator())
    with pytest.raises(ValueError, match="obs"):
        policy_kl(CategoricalPolicy(2), torch.zeros(2), torch.zeros(2), torch.zeros(1, 2))
