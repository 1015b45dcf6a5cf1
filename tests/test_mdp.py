import itertools
import math

import numpy as np
import pytest
import torch
from torch.func import hessian

from npgbook import GaussianPolicy, MLPCategoricalPolicy, fisher_categorical, fisher_kl_hessian
from npgbook.problems.mdp import FiniteMDP, TabularSoftmaxPolicy, two_state_mdp


def random_mdp(seed, n_states=3, n_actions=2, gamma=0.8):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(n_states), size=(n_states, n_actions))
    r = rng.normal(size=(n_states, n_actions))
    rho = rng.dirichlet(np.ones(n_states))
    return FiniteMDP(torch.tensor(p), torch.tensor(r), gamma, torch.tensor(rho))


def random_theta(policy, seed):
    return torch.randn(policy.n_params, generator=torch.Generator().manual_seed(seed))


def problem(seed, gamma=0.8):
    """A random 3-state MDP, the tabular softmax policy on it and random logits."""
    policy = TabularSoftmaxPolicy(3, 2)
    return random_mdp(seed, gamma=gamma), policy, random_theta(policy, seed)


def numpy_policy(theta, n_states, n_actions):
    logits = theta.numpy().reshape(n_states, n_actions)
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_return_matches_iterative_policy_evaluation(seed):
    mdp, policy, theta = problem(seed)
    pi = numpy_policy(theta, 3, 2)
    p, r = mdp.transitions.numpy(), mdp.rewards.numpy()
    v = np.zeros(3)
    for _ in range(2000):  # Bellman backups, gamma^2000 is far below rounding
        v = (pi * (r + mdp.gamma * p @ v)).sum(1)
    assert np.allclose(mdp.state_values(policy, theta).numpy(), v, atol=1e-10)
    assert math.isclose(float(mdp.expected_return(policy, theta)), float(mdp.initial.numpy() @ v), abs_tol=1e-10)
    q = r + mdp.gamma * p @ v
    assert np.allclose(mdp.advantages(policy, theta).numpy(), q - v[:, None], atol=1e-10)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_return_matches_monte_carlo_rollouts(seed):
    mdp = random_mdp(seed, gamma=0.7)
    policy = TabularSoftmaxPolicy(3, 2)
    theta = random_theta(policy, seed + 10)
    pi = numpy_policy(theta, 3, 2)
    p, r = mdp.transitions.numpy(), mdp.rewards.numpy()
    rng = np.random.default_rng(100 + seed)
    n, horizon = 4000, 60  # 0.7^60 ~ 5e-10: truncation is negligible
    s = rng.choice(3, size=n, p=mdp.initial.numpy())
    total, discount = np.zeros(n), 1.0
    for _ in range(horizon):
        a = (rng.random(n)[:, None] > np.cumsum(pi[s], 1)).sum(1)
        total += discount * r[s, a]
        s = (rng.random(n)[:, None] > np.cumsum(p[s, a], 1)).sum(1)
        discount *= mdp.gamma
    exact = float(mdp.expected_return(policy, theta))
    assert abs(total.mean() - exact) < 4 * total.std(ddof=1) / math.sqrt(n)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gradient_matches_central_differences(seed):
    mdp, policy, theta = problem(seed)
    h = 1e-6
    fd = torch.stack(
        [
            (mdp.expected_return(policy, theta + h * e) - mdp.expected_return(policy, theta - h * e)) / (2 * h)
            for e in torch.eye(policy.n_params)
        ]
    )
    assert torch.allclose(mdp.exact_gradient(policy, theta), fd, atol=1e-7)


@pytest.mark.parametrize("seed", [0, 1])
def test_policy_gradient_theorem(seed):
    """grad J(s, a) = d(s) pi(a|s) A(s, a) / (1 - gamma) for the tabular softmax."""
    mdp, policy, theta = problem(seed)
    d = mdp.state_visitation(policy, theta)
    pi = mdp.policy_table(policy, theta)
    expected = d[:, None] * pi * mdp.advantages(policy, theta) / (1 - mdp.gamma)
    assert torch.allclose(mdp.exact_gradient(policy, theta), expected.detach().reshape(-1), atol=1e-10)


@pytest.mark.parametrize("seed", [0, 1])
def test_state_visitation_is_the_discounted_power_series(seed):
    mdp, policy, theta = problem(seed)
    pi = numpy_policy(theta, 3, 2)
    p_pi = np.einsum("sa,sat->st", pi, mdp.transitions.numpy())
    occupancy, row = np.zeros(3), mdp.initial.numpy()
    for t in range(400):
        occupancy += (1 - mdp.gamma) * mdp.gamma**t * row
        row = row @ p_pi
    d = mdp.state_visitation(policy, theta).numpy()
    assert np.allclose(d, occupancy, atol=1e-12) and math.isclose(d.sum(), 1.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fisher_is_the_visitation_weighted_state_fisher(seed):
    mdp, policy, theta = problem(seed)
    d = mdp.state_visitation(policy, theta)
    fisher = mdp.fisher(policy, theta)
    # closed form: block diagonal, block s = d(s) (diag(pi_s) - pi_s pi_s^T)
    blocks = torch.block_diag(*[w * fisher_categorical(row) for w, row in zip(d, theta.reshape(3, 2))])
    assert torch.allclose(fisher, blocks, atol=1e-12)
    # Hessian of the KL at each one-hot state, weighted by d
    obs = mdp.states()
    weighted = sum(w * fisher_kl_hessian(policy, theta, obs[s : s + 1]) for s, w in enumerate(d))
    assert torch.allclose(fisher, weighted, atol=1e-12)
    # Hessian of the visitation-weighted KL in the new parameters
    kl_hess = hessian(lambda t: mdp.visitation_kl(policy, theta, t))(theta.clone())
    assert torch.allclose(fisher, kl_hess, atol=1e-10)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kakade_natural_gradient_is_the_advantage(seed):
    """F (A / (1-gamma)) = grad J: the natural gradient of the tabular softmax is the advantage."""
    mdp, policy, theta = problem(seed)
    adv = mdp.advantages(policy, theta).detach().reshape(-1) / (1 - mdp.gamma)
    assert torch.allclose(mdp.fisher(policy, theta) @ adv, mdp.exact_gradient(policy, theta), atol=1e-10)


def test_visitation_kl_is_zero_at_theta_and_positive_elsewhere():
    mdp = random_mdp(0)
    policy = TabularSoftmaxPolicy(3, 2)
    theta = random_theta(policy, 0)
    assert float(mdp.visitation_kl(policy, theta, theta)) == 0.0
    assert float(mdp.visitation_kl(policy, theta, theta + 0.1 * random_theta(policy, 1))) > 0.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_optimal_values_match_brute_force_over_deterministic_policies(seed):
    mdp = random_mdp(seed)
    p, r = mdp.transitions.numpy(), mdp.rewards.numpy()
    best = np.full(3, -np.inf)
    for actions in itertools.product(range(2), repeat=3):
        p_pi = p[np.arange(3), actions]
        v = np.linalg.solve(np.eye(3) - mdp.gamma * p_pi, r[np.arange(3), actions])
        best = np.maximum(best, v)
    assert np.allclose(mdp.optimal_values().numpy(), best, atol=1e-9)


def test_two_state_mdp_closed_forms():
    mdp = two_state_mdp(gamma=0.9)
    # best: switch once (reward 0), then stay in state 1 for 2 per step: 0.9 * 2 / 0.1 = 18
    assert math.isclose(mdp.optimal_return(), 18.0, rel_tol=1e-10)
    policy = TabularSoftmaxPolicy(2, 2)
    stay = policy.params([[40.0, 0.0], [40.0, 0.0]])  # stays in state 0 forever: 1 / 0.1 = 10
    assert math.isclose(float(mdp.expected_return(policy, stay)), 10.0, rel_tol=1e-10)


def test_any_discrete_policy_on_one_hot_states_works():
    mdp = random_mdp(4)
    mlp = MLPCategoricalPolicy(3, 2, hidden=(5,))
    theta = mlp.initial_params(seed=0, last_layer_scale=1.0)
    h = 1e-6
    e = torch.zeros(mlp.n_params)
    e[3] = 1.0
    fd = (mdp.expected_return(mlp, theta + h * e) - mdp.expected_return(mlp, theta - h * e)) / (2 * h)
    assert math.isclose(float(mdp.exact_gradient(mlp, theta)[3]), float(fd), abs_tol=1e-7)


def test_bad_inputs():
    p = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]]])
    r, rho = torch.zeros(2, 2), torch.tensor([1.0, 0.0])
    with pytest.raises(ValueError, match="transitions"):
        FiniteMDP(p * 0.5, r, 0.9, rho)
    with pytest.raises(ValueError, match="transitions"):
        FiniteMDP(p[0], r, 0.9, rho)
    with pytest.raises(ValueError, match="transitions"):
        FiniteMDP(p.clone().fill_(float("nan")), r, 0.9, rho)
    with pytest.raises(ValueError, match="rewards"):
        FiniteMDP(p, torch.zeros(3), 0.9, rho)
    with pytest.raises(ValueError, match="rewards"):
        FiniteMDP(p, torch.full((2, 2), float("inf")), 0.9, rho)
    for gamma in (1.0, -0.1, float("nan"), "x"):
        with pytest.raises(ValueError, match="gamma"):
            FiniteMDP(p, r, gamma, rho)
    with pytest.raises(ValueError, match="initial"):
        FiniteMDP(p, r, 0.9, torch.tensor([0.5, 0.6]))
    with pytest.raises(ValueError, match="n_actions"):
        TabularSoftmaxPolicy(2, 1)
    with pytest.raises(ValueError, match="n_states"):
        TabularSoftmaxPolicy(0, 2)
    policy = TabularSoftmaxPolicy(2, 2)
    with pytest.raises(ValueError, match="logits"):
        policy.params([[0.0, 1.0]])
    with pytest.raises(ValueError, match="obs"):
        policy.distribution(torch.zeros(4), torch.tensor([[0.5, 0.5]]))
    with pytest.raises(ValueError, match="theta"):
        policy.distribution(torch.tensor([0.0, float("nan"), 0.0, 0.0]), torch.eye(2))
    mdp = FiniteMDP(p, r, 0.9, rho)
    with pytest.raises(TypeError, match="policy"):
        mdp.expected_return(object(), torch.zeros(4))
    with pytest.raises(ValueError, match="policy"):
        mdp.expected_return(GaussianPolicy(), torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="policy"):
        mdp.fisher(TabularSoftmaxPolicy(3, 2), torch.zeros(6))
    with pytest.raises(ValueError, match="theta_new"):
        mdp.visitation_kl(policy, torch.zeros(4), torch.zeros(3))
