"""Tests of npgbook.experiments.lagrangian (chapter 4's experiments) against independent references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import npgbook as nb
from npgbook.experiments import lagrangian
from npgbook.problems import envs
from npgbook.problems.bandit import GaussianBandit

BANDIT = GaussianBandit(target=2.0, width=0.5)


@pytest.mark.parametrize("parameterization", ["sigma", "log_sigma"])
def test_pointwise_hessians_match_per_point_autograd_and_closed_form(parameterization):
    policy = nb.GaussianPolicy(parameterization)
    points = [(0.0, 0.5), (1.0, 0.5), (1.8, 0.3), (-1.0, 2.0)]
    thetas = torch.stack([policy.params(m, s) for m, s in points])
    h_batch = lagrangian.objective_hessians(BANDIT, policy, thetas)
    f_batch = lagrangian.gaussian_kl_hessians(policy, thetas)
    for (m, s), theta, h, f in zip(points, thetas, h_batch, f_batch):
        reference = torch.autograd.functional.hessian(lambda th: BANDIT.expected_reward(policy, th), theta)
        torch.testing.assert_close(h, reference, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(f, nb.fisher_gaussian(m, s, parameterization), rtol=1e-12, atol=1e-14)


def test_pointwise_hessians_of_a_linear_function_are_zero():
    out = lagrangian._pointwise_hessians(lambda x: x[0] + 2 * x[1], torch.ones(3, 2))
    assert out.shape == (3, 2, 2) and not out.any()


def test_curvature_map_shapes_and_fisher_bound():
    grid_mu, grid_sigma = np.linspace(-1, 4, 6), np.array([0.2, 0.5, 1.0])
    cm = lagrangian.curvature_map(BANDIT, "sigma", grid_mu, grid_sigma)
    assert cm.classes.shape == (3, 6) and cm.hessian_eigs.shape == (3, 6, 2)
    # in (μ, σ) the Fisher matrix is diag(1/σ², 2/σ²): smallest over largest is 1/2 everywhere
    np.testing.assert_allclose(cm.fisher_min, 0.5, rtol=1e-12)
    assert math.isclose(cm.share(-1) + cm.share(0) + cm.share(1), 1.0)


def test_penalty_and_constraint_closed_form():
    g = torch.tensor([0.5, 0.1])
    f = torch.diag(torch.tensor([4.0, 2.0]))
    result = lagrangian.compare_penalty_and_constraint(g, f, (0.01, 0.1))
    quad = 0.5**2 / 4 + 0.1**2 / 2
    np.testing.assert_allclose(result.lambdas_closed, np.sqrt(quad / (2 * np.array([0.01, 0.1]))), rtol=1e-14)
    assert result.lambda_gap < 1e-10 and result.step_gap < 1e-6
    np.testing.assert_allclose(result.penalty_steps[0], (g / torch.diag(f)).numpy() / result.lambdas[0])


def test_natural_ray_accuracy_orders_and_model():
    policy = nb.GaussianPolicy("log_sigma")
    budgets = np.logspace(-5, -1, 9)
    run = lagrangian.natural_ray_accuracy(BANDIT, policy, policy.params(1.0, 0.5), budgets)
    np.testing.assert_allclose(run.kl_model, budgets, rtol=1e-12)  # ½uᵀFu = ½ by construction
    assert abs(run.order_j - 2) < 0.1 and abs(run.order_kl - 3) < 0.1
    assert abs(run.gain_ratio[0] - 1) < 1e-2 and abs(run.kl_ratio[0] - 1) < 1e-2


def test_score_outer_gap_against_closed_form():
    cat = nb.CategoricalPolicy(3)
    logits = torch.tensor([0.3, -1.0, 0.8])
    closed = lambda p, th, o=None: nb.fisher_categorical(th)
    assert lagrangian.score_outer_gap(cat, logits, reference=closed) < 1e-12
    doubled = lambda p, th, o=None: 2 * nb.fisher_categorical(th)
    assert math.isclose(lagrangian.score_outer_gap(cat, logits, outer=doubled, reference=closed), 1.0)


def test_sample_state_actions_shapes():
    gen = torch.Generator().manual_seed(0)
    actions, states = lagrangian.sample_state_actions(nb.CategoricalPolicy(4), torch.zeros(4), None, 7, gen)
    assert actions.shape == (7,) and states is None
    obs = envs.cartpole_observations(10, seed=0)
    mlp = nb.MLPCategoricalPolicy(4, 2, (3,))
    actions, states = lagrangian.sample_state_actions(mlp, mlp.initial_params(seed=0), obs, 5, gen)
    assert actions.shape == (5,) and states.shape == (5, 4)
    assert all(any(torch.equal(s, o) for o in obs) for s in states)


def test_sampled_fisher_convergence_with_a_deterministic_error():
    """An 'estimate' F(1 + N^-1/2) has relative error exactly N^-1/2: slope −1/2, no spread."""
    policy = nb.GaussianPolicy("log_sigma")
    theta = policy.params(1.0, 0.5)
    run = lagrangian.sampled_fisher_convergence(
        policy,
        theta,
        sizes=(4, 16, 64),
        n_seeds=3,
        estimator=lambda p, th, a, s: nb.fisher_kl_hessian(p, th) * (1 + a.shape[0] ** -0.5),
    )
    np.testing.assert_allclose(run.errors, np.tile([0.5, 0.25, 0.125], (3, 1)), rtol=1e-12)
    assert math.isclose(run.slope, -0.5, rel_tol=1e-10) and run.slope_se < 1e-12
    # smallest eigenvalue of any estimate over the largest of F = diag(4, 2): 2(1 + 1/8) / 4
    assert math.isclose(run.smallest_eigenvalue, 0.5625, rel_tol=1e-12)


def test_count_fisher_flops_by_hand():
    """Two flops per multiply-add of the MLP's matrix products (layers 4 → w → w → 2, N states)."""
    w, n_states = 8, 16
    obs = envs.cartpole_observations(n_states, seed=1)
    net = nb.MLPCategoricalPolicy(4, 2, (w, w))
    counts = lagrangian.count_fisher_flops(
        net, net.initial_params(seed=0), obs, torch.Generator().manual_seed(0)
    )
    n = net.n_params
    forward = 2 * n_states * (4 * w + w * w + w * 2)
    # backward: the weight gradients of all layers, the input gradients of all but the first
    assert counts.batch_gradient == 2 * forward + 2 * n_states * (w * w + w * 2)
    assert counts.scores == counts.batch_gradient  # the same products, not summed over the batch
    assert counts.sampled == counts.scores + 2 * n_states * n * n  # plus ΨᵀΨ
    assert counts.values_scores == n_states * n and counts.values_batch_gradient == n
    assert counts.hessian > counts.score_outer > counts.sampled


def test_numeric_penalty_maximizer_and_multiplier_match_the_closed_form():
    g = torch.tensor([0.3, -0.2, 0.5])
    a = torch.tensor([[2.0, 0.3, 0.0], [0.3, 1.0, 0.2], [0.0, 0.2, 0.5]])
    step = lagrangian.numeric_penalty_maximizer(g, a, 2.0)
    np.testing.assert_allclose(step.numpy(), torch.linalg.solve(a, g).numpy() / 2.0, atol=1e-10)
    quad = float(g @ torch.linalg.solve(a, g))
    lam = lagrangian.numeric_multiplier(g, a, 0.03)
    assert math.isclose(lam, math.sqrt(quad / (2 * 0.03)), rel_tol=1e-9)
    # the dual at the optimum: J + gᵀF⁻¹g/(2λ) + λε, by hand
    assert math.isclose(
        lagrangian.numeric_dual(g, a, lam, 0.03, 1.0), 1.0 + quad / (2 * lam) + lam * 0.03, rel_tol=1e-12
    )


def test_sampled_fisher_mse_gaussian_by_hand_and_categorical_by_monte_carlo():
    # (μ, log σ), σ = 1/2: ψ = (z/σ, z² − 1), F = diag(4, 2); E‖ψψᵀ − F‖² = 2/σ⁴ + 2·10/σ² + 56 = 168
    policy = nb.GaussianPolicy("log_sigma")
    assert math.isclose(lagrangian.sampled_fisher_mse(policy, policy.params(1.0, 0.5)), 168 / 20, rel_tol=1e-12)
    cat = nb.CategoricalPolicy(3)
    logits = torch.tensor([0.2, -0.5, 1.0])
    gen = torch.Generator().manual_seed(0)
    actions, _ = lagrangian.sample_state_actions(cat, logits, None, 200_000, gen)
    scores = nb.score_vectors(cat, logits, actions)
    f = nb.fisher_kl_hessian(cat, logits)
    mc = float(((scores[:, :, None] * scores[:, None, :] - f) ** 2).sum(dim=(1, 2)).mean() / (f**2).sum())
    assert math.isclose(lagrangian.sampled_fisher_mse(cat, logits), mc, rel_tol=0.02)


def test_fvp_cost_counts_scale_with_the_batch_and_product_is_right():
    net = nb.MLPCategoricalPolicy(obs_dim=4, n_actions=2, hidden=(8,))
    theta = net.initial_params(seed=0)
    obs = torch.randn(16, 4, generator=torch.Generator().manual_seed(1))
    one = lagrangian.fvp_cost(net, theta, obs, torch.Generator().manual_seed(0), repeats=1)
    two = lagrangian.fvp_cost(net, theta, torch.cat([obs, obs]), torch.Generator().manual_seed(0), repeats=1)
    assert one.n_params == net.n_params and one.n_states == 16
    # matrix products are linear in the batch: twice the states, twice the operations
    assert two.flops_product == 2 * one.flops_product and two.flops_setup == 2 * one.flops_setup
    assert one.flops_product > 0 and one.seconds_product > 0 and one.bytes_graph > 0
