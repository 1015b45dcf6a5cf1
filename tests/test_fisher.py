import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import integrate
from torch.distributions import kl_divergence as torch_kl

from npgbook import (
    CategoricalPolicy,
    GaussianPolicy,
    MLPCategoricalPolicy,
    fisher_categorical,
    fisher_gaussian,
    fisher_kl_hessian,
    fisher_score_outer,
    fisher_vector_product,
    score_vectors,
)


def reference_hessian(policy, theta, obs=None):
    """Hessian of KL by torch.autograd.functional.hessian of torch's own KL."""

    def kl(delta):
        return torch_kl(policy._distribution(theta, obs), policy._distribution(theta + delta, obs)).mean()

    return torch.autograd.functional.hessian(kl, torch.zeros_like(theta))


@given(st.floats(-3, 3), st.floats(0.1, 4))
def test_gaussian_fisher_textbook_forms(mu, sigma):
    assert torch.allclose(fisher_gaussian(mu, sigma, "sigma"), torch.diag(torch.tensor([1 / sigma**2, 2 / sigma**2])))
    assert torch.allclose(fisher_gaussian(mu, sigma, "log_sigma"), torch.diag(torch.tensor([1 / sigma**2, 2.0])))


@pytest.mark.parametrize("param", ["sigma", "log_sigma"])
@given(mu=st.floats(-3, 3), sigma=st.floats(0.1, 4))
def test_gaussian_kl_hessian_is_fisher(param, mu, sigma):
    policy = GaussianPolicy(param)
    theta = policy.params(mu, sigma)
    hess = fisher_kl_hessian(policy, theta)
    assert torch.allclose(hess, fisher_gaussian(mu, sigma, param), rtol=1e-10, atol=1e-12)
    assert torch.allclose(hess, reference_hessian(policy, theta), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("param", ["sigma", "log_sigma"])
def test_gaussian_fisher_by_numerical_integration(param):
    """E[s s^T] integrated by scipy.integrate.quad with the score written out by hand."""
    mu, sigma = 0.3, 0.8
    pdf = lambda x: math.exp(-0.5 * ((x - mu) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
    d_mu = lambda x: (x - mu) / sigma**2
    d_second = lambda x: (((x - mu) ** 2 / sigma**2) - 1.0) / (sigma if param == "sigma" else 1.0)
    scores = [d_mu, d_second]
    ref = torch.tensor(
        [[integrate.quad(lambda x, a=si, b=sj: pdf(x) * a(x) * b(x), -20, 20)[0] for sj in scores] for si in scores]
    )
    assert torch.allclose(fisher_gaussian(mu, sigma, param), ref, atol=1e-9)
    # and the Monte Carlo score estimate agrees within sampling error (several seeds)
    policy = GaussianPolicy(param)
    for seed in range(3):
        est = fisher_score_outer(policy, policy.params(mu, sigma), n_samples=100_000, generator=torch.Generator().manual_seed(seed))
        assert torch.allclose(est, ref, rtol=0.05, atol=0.05)


@given(st.lists(st.floats(-4, 4), min_size=2, max_size=6))
def test_categorical_fisher_three_ways(logits):
    logits = torch.tensor(logits)
    policy = CategoricalPolicy(len(logits))
    analytic = fisher_categorical(logits)
    p = torch.softmax(logits, 0)
    assert torch.allclose(analytic, torch.diag(p) - torch.outer(p, p))
    assert torch.allclose(fisher_kl_hessian(policy, logits), analytic, atol=1e-12)
    assert torch.allclose(fisher_score_outer(policy, logits), analytic, atol=1e-12)
    assert torch.allclose(reference_hessian(policy, logits), analytic, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mlp_fisher_three_ways(seed):
    policy = MLPCategoricalPolicy(4, 3, hidden=(6,))
    theta = policy.initial_params(seed, last_layer_scale=1.0)
    obs = torch.randn(20, 4, generator=torch.Generator().manual_seed(seed))
    hess = fisher_kl_hessian(policy, theta, obs)
    assert torch.allclose(hess, reference_hessian(policy, theta, obs), atol=1e-12)
    assert torch.allclose(fisher_score_outer(policy, theta, obs), hess, atol=1e-12)
    # score vectors against a plain autograd loop
    actions = torch.tensor([i % 3 for i in range(20)])
    scores = score_vectors(policy, theta, actions, obs)
    for i in (0, 7, 19):
        th = theta.clone().requires_grad_(True)
        lp = policy.distribution(th, obs[i : i + 1]).log_prob(actions[i : i + 1]).sum()
        (g,) = torch.autograd.grad(lp, th)
        assert torch.allclose(scores[i], g, atol=1e-12)


@given(st.integers(0, 2**31 - 1), st.floats(0.0, 1.0))
def test_fisher_vector_product_matches_dense(seed, damping):
    gen = torch.Generator().manual_seed(seed)
    policy = MLPCategoricalPolicy(4, 2, hidden=(5,))
    theta = policy.initial_params(seed, last_layer_scale=1.0)
    obs = torch.randn(16, 4, generator=gen)
    dense = reference_hessian(policy, theta, obs) + damping * torch.eye(policy.n_params)
    fvp = fisher_vector_product(policy, theta, obs, damping=damping)
    for _ in range(2):
        v = torch.randn(policy.n_params, generator=gen)
        assert torch.allclose(fvp(v), dense @ v, atol=1e-12)


def test_fisher_bad_inputs():
    with pytest.raises(ValueError, match="sigma"):
        fisher_gaussian(0.0, -1.0)
    with pytest.raises(ValueError, match="logits"):
        fisher_categorical(torch.tensor([0.0, float("inf")]))
    with pytest.raises(ValueError, match="logits"):
        fisher_categorical(torch.zeros(2, 2))
    policy = CategoricalPolicy(3)
    with pytest.raises(ValueError, match="damping"):
        fisher_vector_product(policy, torch.zeros(3), damping=-1.0)
    with pytest.raises(ValueError, match="theta"):
        fisher_kl_hessian(policy, torch.zeros(4))
    fvp = fisher_vector_product(policy, torch.zeros(3))
    with pytest.raises(ValueError, match="v"):
        fvp(torch.zeros(2))
    with pytest.raises(ValueError, match="v"):
        fvp(torch.tensor([0.0, float("nan"), 0.0]))
    with pytest.raises(ValueError, match="n_samples"):
        fisher_score_outer(policy, torch.zeros(3), n_samples=10)
    with pytest.raises(ValueError, match="n_samples"):
        fisher_score_outer(GaussianPolicy(), torch.tensor([0.0, 1.0]))
