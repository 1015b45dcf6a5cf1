"""K-FAC against the exact Fisher matrix computed by autograd (npgbook.fisher_score_outer)."""

import math

import pytest
import torch

import npgbook as nb
from npgbook.kfac import kfac_fisher, kfac_natural_step


def states(n, seed=0):
    return torch.randn(n, 4, generator=torch.Generator().manual_seed(seed))


def block(matrix, layer):
    index = torch.arange(layer.offset, layer.offset + layer.size)
    return matrix[index.unsqueeze(1), index.unsqueeze(0)]


@pytest.mark.parametrize("hidden", [(), (5,), (6, 3)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_single_state_diagonal_blocks_are_exact(hidden, seed):
    """With one state the layer input does not depend on the action: every diagonal block is G ⊗ A."""
    policy = nb.MLPCategoricalPolicy(4, 3, hidden)
    theta = policy.initial_params(seed, last_layer_scale=1.0)
    obs = states(1, seed)
    exact = nb.fisher_score_outer(policy, theta, obs)
    approx = kfac_fisher(policy, theta, obs)
    assert sum(layer.size for layer in approx.layers) == policy.n_params
    for layer in approx.layers:
        torch.testing.assert_close(block(approx.dense(), layer), block(exact, layer), rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_linear_softmax_single_state_is_exact(seed):
    policy = nb.MLPCategoricalPolicy(4, 3, ())
    theta = policy.initial_params(seed, last_layer_scale=1.0)
    obs = states(1, seed)
    torch.testing.assert_close(
        kfac_fisher(policy, theta, obs).dense(), nb.fisher_score_outer(policy, theta, obs), rtol=0, atol=1e-12
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_linear_softmax_with_state_independent_probabilities_is_exact(seed):
    """Zero weights: every state has the same action probabilities, so G_i = G for all i."""
    policy = nb.MLPCategoricalPolicy(4, 3, ())
    theta = torch.zeros(policy.n_params)
    theta[-3:] = torch.randn(3, generator=torch.Generator().manual_seed(seed))
    obs = states(50, seed)
    torch.testing.assert_close(
        kfac_fisher(policy, theta, obs).dense(), nb.fisher_score_outer(policy, theta, obs), rtol=0, atol=1e-12
    )


@pytest.mark.parametrize("hidden", [(), (5,)])
def test_many_states_are_approximate(hidden):
    """Across states the product of means differs from the mean of products; hidden layers add the
    dropped cross-layer blocks."""
    policy = nb.MLPCategoricalPolicy(4, 3, hidden)
    theta = policy.initial_params(0, last_layer_scale=1.0)
    obs = states(100)
    exact = nb.fisher_score_outer(policy, theta, obs)
    dense = kfac_fisher(policy, theta, obs).dense()
    assert float((dense - exact).norm() / exact.norm()) > 1e-3


def test_kfac_equals_the_mean_of_per_state_kronecker_products_when_one_state_repeats():
    policy = nb.MLPCategoricalPolicy(4, 2, (4,))
    theta = policy.initial_params(3, last_layer_scale=1.0)
    one = states(1, 3)
    torch.testing.assert_close(
        kfac_fisher(policy, theta, one.repeat(7, 1)).dense(), kfac_fisher(policy, theta, one).dense()
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matvec_solve_and_dense_agree(seed):
    policy = nb.MLPCategoricalPolicy(4, 3, (6, 5))
    theta = policy.initial_params(seed, last_layer_scale=1.0)
    approx = kfac_fisher(policy, theta, states(30, seed))
    dense = approx.dense()
    v = torch.randn(policy.n_params, generator=torch.Generator().manual_seed(seed))
    torch.testing.assert_close(approx.matvec(v), dense @ v, rtol=1e-12, atol=1e-12)
    for damping in (1e-3, 0.1, 10.0):
        expected = torch.linalg.solve(dense + damping * torch.eye(policy.n_params), v)
        torch.testing.assert_close(approx.solve(v, damping), expected, rtol=1e-8, atol=1e-10)
    assert torch.allclose(dense, dense.T)
    assert float(torch.linalg.eigvalsh(dense)[0]) > -1e-12  # positive semidefinite
    assert approx.n_stored == 5 * 5 + 6 * 6 + 7 * 7 + 5 * 5 + 6 * 6 + 3 * 3


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sampled_actions_estimate_the_exact_factor(seed):
    policy = nb.MLPCategoricalPolicy(4, 3, (5,))
    theta = policy.initial_params(seed, last_layer_scale=1.0)
    obs = states(20, seed)
    exact = kfac_fisher(policy, theta, obs)
    errors = []
    for n in (10, 1000):
        sampled = kfac_fisher(policy, theta, obs, n_samples=n, generator=torch.Generator().manual_seed(seed))
        for e, s in zip(exact.layers, sampled.layers):
            torch.testing.assert_close(s.A, e.A)  # the inputs do not depend on the action
        errors.append(max(float((s.G - e.G).norm() / e.G.norm()) for e, s in zip(exact.layers, sampled.layers)))
    assert errors[1] < 0.05
    assert errors[1] < errors[0] / 3  # Monte Carlo error shrinks like 1/sqrt(n): ~10x here


def test_float32_policy():
    policy = nb.MLPCategoricalPolicy(4, 2, (8,), dtype=torch.float32)
    theta = policy.initial_params(0, last_layer_scale=1.0)
    approx = kfac_fisher(policy, theta, states(10).float())
    assert approx.layers[0].A.dtype == torch.float32
    assert approx.solve(torch.ones(policy.n_params), 0.1).dtype == torch.float32


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kfac_natural_step_spends_the_budget_in_its_metric(seed):
    policy = nb.MLPCategoricalPolicy(4, 2, (6,))
    theta = policy.initial_params(seed, last_layer_scale=1.0)
    approx = kfac_fisher(policy, theta, states(40, seed))
    grad = torch.randn(policy.n_params, generator=torch.Generator().manual_seed(seed))
    damping, eps = 0.05, 0.01
    step = kfac_natural_step(grad, approx, eps, damping)
    damped = approx.dense() + damping * torch.eye(policy.n_params)
    assert math.isclose(0.5 * float(step.step @ damped @ step.step), eps, rel_tol=1e-9)
    reference = nb.natural_step(grad, damped, eps)
    torch.testing.assert_close(step.step, reference.step, rtol=1e-7, atol=1e-10)
    zero = kfac_natural_step(torch.zeros(policy.n_params), approx, eps, damping)
    assert zero.alpha == 0.0 and not zero.step.any()


def test_bad_inputs():
    policy = nb.MLPCategoricalPolicy(4, 2, (3,))
    theta = policy.initial_params(0)
    obs = states(5)
    with pytest.raises(TypeError, match="policy"):
        kfac_fisher(nb.CategoricalPolicy(3), torch.zeros(3), obs)
    with pytest.raises(ValueError, match="theta"):
        kfac_fisher(policy, torch.full((policy.n_params,), float("nan")), obs)
    with pytest.raises(ValueError, match="obs"):
        kfac_fisher(policy, theta, torch.zeros(5, 3))
    with pytest.raises(ValueError, match="generator"):
        kfac_fisher(policy, theta, obs, n_samples=10)
    with pytest.raises(ValueError, match="generator"):
        kfac_fisher(policy, theta, obs, generator=torch.Generator())
    with pytest.raises(ValueError, match="n_samples"):
        kfac_fisher(policy, theta, obs, n_samples=0, generator=torch.Generator())
    approx = kfac_fisher(policy, theta, obs)
    with pytest.raises(ValueError, match="damping"):
        approx.solve(torch.ones(policy.n_params), -1.0)
    with pytest.raises(ValueError, match="v"):
        approx.solve(torch.ones(policy.n_params + 1), 0.1)
    with pytest.raises(ValueError, match="v"):
        approx.matvec(torch.full((policy.n_params,), float("inf")))
    with pytest.raises(ValueError, match="epsilon"):
        kfac_natural_step(torch.ones(policy.n_params), approx, 0.0, 0.1)


def test_singular_factors_need_damping():
    """One state: A = h̄h̄ᵀ has rank 1, so the undamped K-FAC matrix is singular."""
    policy = nb.MLPCategoricalPolicy(4, 2, (3,))
    approx = kfac_fisher(policy, policy.initial_params(0), states(1))
    with pytest.raises(nb.NotPositiveDefiniteError):
        approx.solve(torch.ones(policy.n_params), 0.0)
    assert torch.isfinite(approx.solve(torch.ones(policy.n_params), 1e-3)).all()
