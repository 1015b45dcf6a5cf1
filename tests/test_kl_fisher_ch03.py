"""Unit tests of npgbook.experiments.kl_fisher (chapter 3) against closed forms and hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import npgbook as nb
from npgbook.experiments import kl_fisher
from npgbook.problems.bandit import GaussianBandit


@pytest.fixture(autouse=True)
def float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def test_independent_fisher_closed_forms():
    cases = kl_fisher.book_policies(n_states=32)
    sigma = 0.8
    expected = {
        "Gaussian (μ, σ)": torch.diag(torch.tensor([1 / sigma**2, 2 / sigma**2])),
        "Gaussian (μ, log σ)": torch.diag(torch.tensor([1 / sigma**2, 2.0])),
    }
    for name, matrix in expected.items():
        policy, theta, obs = cases[name]
        assert torch.allclose(kl_fisher.independent_fisher(policy, theta, obs), matrix, rtol=1e-14)
    policy, logits, _ = cases["categorical"]
    p = torch.softmax(logits, 0)
    assert torch.allclose(kl_fisher.independent_fisher(policy, logits), torch.diag(p) - torch.outer(p, p))
    # the MLP: a two-action softmax, F = mean over states of p(1-p) ∇z ∇zᵀ with z the logit difference
    mlp, theta, obs = cases["MLP on CartPole"]
    jac = torch.func.jacrev(lambda th: mlp.distribution(th, obs).logits)(theta)  # (B, 2, n)
    probs = mlp.distribution(theta, obs).probs
    dz = jac[:, 0] - jac[:, 1]
    by_hand = torch.einsum("b,bi,bj->ij", probs[:, 0] * probs[:, 1], dz, dz) / obs.shape[0]
    assert torch.allclose(kl_fisher.independent_fisher(mlp, theta, obs), by_hand, atol=1e-13)


def test_fisher_routes_detects_a_wrong_matrix():
    cases = {k: v for k, v in kl_fisher.book_policies(32).items() if k != "MLP on CartPole"}
    assert kl_fisher.fisher_routes(cases).worst < 1e-12
    doubled = kl_fisher.fisher_routes(cases, fisher=lambda p, t, o: 2 * kl_fisher.independent_fisher(p, t, o))
    assert doubled.gaps["Gaussian (μ, σ)"] == pytest.approx(2 / 0.8**2, rel=1e-12)


def test_kl_rays_model_is_the_closed_form_quadratic():
    cases = {"categorical": kl_fisher.book_policies(32)["categorical"]}
    lengths = np.logspace(-3, -1, 5)
    study = kl_fisher.kl_rays(cases, lengths, seeds=[0])
    policy, logits, _ = cases["categorical"]
    u = torch.randn(4, generator=torch.Generator().manual_seed(0))
    u = u / u.norm()
    p = torch.softmax(logits, 0)
    quad = 0.5 * float(p @ u**2 - (p @ u) ** 2) * lengths**2  # ½ t² Var(u_a)
    ray = study.rays["categorical", 0]
    assert np.allclose(ray.quadratic, quad, rtol=1e-12)
    assert np.allclose(ray.forward[-1], float(nb.policy_kl(policy, logits, logits + lengths[-1] * u)))
    assert abs(study.model_slopes["categorical"][0] - 3) < 0.05


def test_policy_kl_from_samples_is_zero_without_a_step_and_unbiased():
    mlp, theta, obs = kl_fisher.book_policies(64)["MLP on CartPole"]
    zero = kl_fisher.policy_kl_from_samples(mlp, theta, theta, obs, 100, torch.Generator().manual_seed(0))
    assert zero.value == 0.0 and zero.std_error == 0.0
    theta_new = kl_fisher.book_step(mlp, theta, length=3.0)
    exact = float(nb.policy_kl(mlp, theta, theta_new, obs))
    values = [
        kl_fisher.policy_kl_from_samples(
            mlp, theta, theta_new, obs, 500, torch.Generator().manual_seed(s)
        ).value
        for s in range(200)
    ]
    assert abs(np.mean(values) - exact) < 4 * np.std(values, ddof=1) / math.sqrt(len(values))


def test_sampled_kl_study_statistics_by_hand():
    mlp, theta, obs = kl_fisher.book_policies(64)["MLP on CartPole"]
    theta_new = kl_fisher.book_step(mlp, theta)
    study = kl_fisher.sampled_kl_study(mlp, theta, theta_new, obs, sizes=(16, 64), n_seeds=10)
    assert study.n_pairs == 128 and study.estimates.shape == (2, 10)
    err = study.estimates - study.exact
    assert np.allclose(study.rms_error, np.sqrt((err**2).mean(1)))
    assert np.allclose(study.bias_z, err.mean(1) / (study.estimates.std(1, ddof=1) / math.sqrt(10)))
    assert study.rms_slope == pytest.approx(np.log(study.rms_error[1] / study.rms_error[0]) / np.log(4))


def test_natural_vs_vanilla_with_the_identity_map():
    policy, bandit = nb.GaussianPolicy("sigma"), GaussianBandit(target=2.0, width=0.5)
    theta = policy.params(0.0, 0.3)
    fisher = nb.fisher_gaussian(0.0, 0.3)
    c = kl_fisher.natural_vs_vanilla(
        policy, lambda th: bandit.expected_reward(policy, th), lambda v: v, theta, lambda th: fisher
    )
    grad = bandit.exact_gradient(policy, theta)
    assert torch.allclose(c.fisher_new, fisher, rtol=1e-12)  # the KL Hessian is F
    assert torch.allclose(c.vanilla_new, grad, rtol=1e-12)
    assert torch.allclose(c.natural_mapped, grad / fisher.diagonal(), rtol=1e-12)
    assert c.metric_gap == pytest.approx(2 / 0.09 - 1, rel=1e-10)


def test_kl_over_half_squared_length_along_the_mean():
    policy = nb.GaussianPolicy("sigma")
    theta = policy.params(0.0, 0.3)
    dirs = kl_fisher.circle_directions(4)
    assert torch.allclose(dirs, torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]]), atol=1e-15)
    study = kl_fisher.kl_over_half_squared_length(policy, theta, torch.eye(2), [0.01, 0.1], dirs[[0, 2]])
    assert np.allclose(study.ratio, 1 / 0.09, rtol=1e-8)  # KL = Δμ²/(2σ²) exactly
