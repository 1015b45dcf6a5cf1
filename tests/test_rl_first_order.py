"""The first-order baselines of npgbook.rl against hand computations: KL-normalized step, Adam-PG, PPO."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import npgbook as nb
from npgbook import rl
from npgbook.rl import (
    AdamEpochs,
    PolicyData,
    TrainConfig,
    kl_vpg_update,
    policy_gradient,
    surrogate_objective,
)


@pytest.fixture
def bench():
    policy = nb.MLPCategoricalPolicy(3, 2, (5,), dtype=torch.float64)
    theta = policy.initial_params(0, last_layer_scale=1.0)
    g = torch.Generator().manual_seed(1)
    obs = torch.randn(40, 3, generator=g, dtype=torch.float64)
    with torch.no_grad():
        actions = policy.distribution(theta, obs).sample()
        old = policy.log_prob(theta, actions, obs)
    adv = torch.randn(40, generator=g, dtype=torch.float64)
    return policy, theta, PolicyData(obs, actions, adv, old)


def test_kl_normalized_step_spends_delta_in_the_quadratic_model(bench):
    policy, theta, data = bench
    config = TrainConfig(algo="kl-vpg", delta=0.01, cg_damping=0.0)
    out = kl_vpg_update(policy, theta, data, config)
    step = out.theta - theta
    grad = policy_gradient(policy, theta, data)
    fisher = nb.fisher_kl_hessian(policy, theta, data.obs)  # dense, by autograd: an independent reference
    # the direction is the vanilla gradient's, and the quadratic KL is exactly delta
    assert abs(float(torch.nn.functional.cosine_similarity(step, grad, dim=0)) - 1) < 1e-12
    assert abs(0.5 * float(step @ fisher @ step) - 0.01) < 1e-12
    # the realized KL of such a small step is close to the model's
    assert abs(float(nb.policy_kl(policy, theta, out.theta, data.obs)) / 0.01 - 1) < 0.2
    # with F = I it would be NPG's step (the same length rule): here F != I, so the two differ
    npg = rl.npg_update(policy, theta, data, config.replace(algo="npg", cg_iters=200))
    assert float(torch.nn.functional.cosine_similarity(npg.theta - theta, step, dim=0)) < 0.99


def test_surrogate_objectives_are_the_formulas(bench):
    policy, theta, data = bench
    moved = theta + 0.3 * torch.randn(
        theta.numel(), generator=torch.Generator().manual_seed(2), dtype=torch.float64
    )
    ratio = torch.exp(policy.log_prob(moved, data.actions, data.obs) - data.old_log_probs)
    a = data.advantages
    plain = float((ratio * a).mean())
    clipped = float(torch.minimum(ratio * a, torch.clamp(ratio, 0.8, 1.2) * a).mean())
    assert abs(float(surrogate_objective(policy, moved, data, None)) - plain) < 1e-14
    assert abs(float(surrogate_objective(policy, moved, data, 0.2)) - clipped) < 1e-14
    # at theta_k both have the policy gradient as their gradient
    for clip in (None, 0.2):
        point = theta.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(surrogate_objective(policy, point, data, clip), point)
        assert torch.allclose(g, policy_gradient(policy, theta, data), atol=1e-14)


def test_clipping_stops_the_pull_of_samples_past_the_bound(bench):
    policy, theta, data = bench
    moved = theta + 2.0 * policy_gradient(policy, theta, data) / float(
        policy_gradient(policy, theta, data).norm()
    )
    ratio = torch.exp(policy.log_prob(moved, data.actions, data.obs) - data.old_log_probs)
    a = data.advantages
    # samples with ratio past 1 + eps and A > 0 (or below 1 - eps and A < 0) give no gradient
    frozen = ((ratio > 1.2) & (a > 0)) | ((ratio < 0.8) & (a < 0))
    assert int(frozen.sum()) > 0
    idx = torch.nonzero(frozen)[:, 0]
    point = moved.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(surrogate_objective(policy, point, data, 0.2, idx), point)
    assert float(g.abs().max()) == 0.0
    (g_plain,) = torch.autograd.grad(surrogate_objective(policy, point, data, None, idx), point)
    assert float(g_plain.abs().max()) > 0.0


def test_adam_first_step_is_lr_times_the_sign_of_the_gradient(bench):
    policy, theta, data = bench
    for algo, clip in (("adam-vpg", False), ("ppo", True)):
        config = TrainConfig(algo=algo, adam_lr=1e-3, policy_epochs=1, policy_minibatch=1000)
        out = AdamEpochs(config, clip=clip)(policy, theta, data, config)
        grad = policy_gradient(policy, theta, data)
        # m_hat = g, v_hat = g^2: the step is lr * g / (|g| + 1e-8)
        expected = 1e-3 * grad / (grad.abs() + 1e-8)
        assert torch.allclose(out.theta - theta, expected, atol=1e-15)


def test_adam_epochs_take_epochs_times_minibatches_steps_and_keep_moments(bench):
    policy, theta, data = bench
    config = TrainConfig(algo="ppo", policy_epochs=3, policy_minibatch=16)  # 40 samples: 3 minibatches
    update = AdamEpochs(config, clip=True)
    first = update(policy, theta, data, config)
    assert update._steps == 9 and first.accepted
    second = update(policy, first.theta, data, config)
    assert update._steps == 18 and torch.isfinite(second.theta).all()
    # the same seed gives the same minibatch order and so the same parameters
    again = AdamEpochs(config, clip=True)(policy, theta, data, config)
    assert torch.equal(again.theta, first.theta)


def test_ppo_keeps_the_ratio_near_the_clip_range(bench):
    """PPO's promise: after its epochs, the probability ratios stay within a modest band of 1."""
    policy, theta, data = bench
    config = TrainConfig(algo="ppo", adam_lr=1e-2, policy_epochs=30, policy_minibatch=40, clip_range=0.1)
    ppo = AdamEpochs(config, clip=True)(policy, theta, data, config).theta
    plain = AdamEpochs(config, clip=False)(policy, theta, data, config).theta
    kl_ppo = float(nb.policy_kl(policy, theta, ppo, data.obs))
    kl_plain = float(nb.policy_kl(policy, theta, plain, data.obs))
    assert kl_ppo < kl_plain  # the unclipped surrogate keeps pulling


@pytest.mark.parametrize("algo", ["kl-vpg", "adam-vpg", "ppo"])
def test_training_with_the_baselines_is_finite(algo):
    result = rl.train(TrainConfig(algo=algo, total_steps=3000, seed=1))
    assert torch.isfinite(result.theta).all()
    assert all(h.skipped is None for h in result.history)
    if algo == "kl-vpg":  # the budget rule: realized KL within a factor 2 of delta on CartPole
        kls = np.array([h.kl for h in result.history])
        assert np.all((kls > 0.5 * 0.02) & (kls < 2 * 0.02))


def test_bad_hyperparameters_are_named():
    for name, value in [("adam_lr", 0.0), ("policy_epochs", 0), ("policy_minibatch", 0), ("clip_range", 1.5)]:
        with pytest.raises(ValueError, match=name):
            TrainConfig(**{name: value})
    assert math.isclose(TrainConfig().clip_range, 0.2)
