import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy.optimize import minimize, minimize_scalar
from torch.distributions import kl_divergence as torch_kl

from npgbook import CategoricalPolicy, GaussianPolicy, NotPositiveDefiniteError, fisher_gaussian, natural_step
from npgbook.experiments.taylor import (
    dual_function,
    fit_loglog_slope,
    kl_along_ray,
    kl_model,
    lambda_for_epsilon,
    objective_along_ray,
    objective_derivatives,
    penalty_maximizer,
    penalty_objective,
)
from npgbook.problems.bandit import GaussianBandit


def spd(n, seed):
    gen = torch.Generator().manual_seed(seed)
    m = torch.randn(n, n, generator=gen)
    return m @ m.T + 0.3 * torch.eye(n), torch.randn(n, generator=gen)


# -- fit_loglog_slope ---------------------------------------------------------------


@given(st.floats(-4, 4), st.floats(1e-3, 1e3))
def test_slope_of_an_exact_power_law(power, scale):
    x = np.logspace(-3, 0, 7)
    assert math.isclose(fit_loglog_slope(x, scale * x**power), power, abs_tol=1e-9)


@pytest.mark.parametrize(
    "x, y",
    [([1.0, 2.0], [1.0, -1.0]), ([1.0, 2.0], [1.0, float("nan")]), ([0.0, 1.0], [1.0, 2.0]), ([1.0], [1.0]),
     ([1.0, 2.0, 3.0], [1.0, 2.0]), ([2.0, 2.0], [1.0, 3.0])],
)
def test_slope_rejects_bad_input(x, y):
    with pytest.raises(ValueError):
        fit_loglog_slope(x, y)


# -- the quadratic model and the penalty problem --------------------------------------


def test_kl_model_dense_and_operator_agree():
    f, g = spd(5, 0)
    assert math.isclose(float(kl_model(f, g)), 0.5 * float(g @ f @ g), rel_tol=1e-12)
    assert math.isclose(float(kl_model(lambda v: f @ v, g)), float(kl_model(f, g)), rel_tol=1e-12)
    with pytest.raises(ValueError, match="fisher"):
        kl_model(torch.eye(4), g)
    with pytest.raises(ValueError, match="step"):
        kl_model(f, torch.full((5,), float("nan")))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("lam", [0.1, 1.0, 30.0])
def test_penalty_maximizer_matches_scipy(seed, lam):
    """BFGS on the negated penalty objective (with J(θ) and λε included) finds F^{-1} g / λ."""
    f, g = spd(4, seed)
    fn, gn = f.numpy(), g.numpy()
    res = minimize(
        lambda d: -float(penalty_objective(g, f, torch.tensor(d), lam, 0.05, j_old=3.0)),
        np.zeros(4),
        jac=lambda d: -(gn - lam * fn @ d),
        method="BFGS",
        options={"gtol": 1e-12},
    )
    np.testing.assert_allclose(penalty_maximizer(g, f, lam).numpy(), res.x, rtol=1e-6, atol=1e-8)
    # the gradient of the penalty objective (by autograd) vanishes there
    step = penalty_maximizer(g, f, lam).requires_grad_(True)
    (grad,) = torch.autograd.grad(penalty_objective(g, f, step, lam, 0.05), step)
    assert float(grad.abs().max()) < 1e-10


def test_constant_terms_do_not_move_the_maximizer():
    f, g = spd(3, 4)
    d = torch.tensor([0.3, -0.2, 0.1])
    a = penalty_objective(g, f, d, 2.0, 0.1, j_old=0.0)
    b = penalty_objective(g, f, d, 2.0, 0.7, j_old=5.0)
    assert math.isclose(float(b - a), 5.0 + 2.0 * (0.7 - 0.1), rel_tol=1e-12)


@given(st.integers(1, 8), st.integers(0, 2**31 - 1), st.floats(0.05, 20.0), st.floats(1e-4, 1.0))
def test_dual_function_closed_form(n, seed, lam, eps):
    f, g = spd(n, seed)
    quad = float(g @ torch.linalg.solve(f, g))
    assert math.isclose(dual_function(g, f, lam, eps, j_old=1.5), 1.5 + quad / (2 * lam) + lam * eps, rel_tol=1e-9)


@given(st.integers(1, 8), st.integers(0, 2**31 - 1), st.floats(1e-8, 1e4))
def test_lambda_for_epsilon_matches_the_closed_form(n, seed, eps):
    f, g = spd(n, seed)
    lam = lambda_for_epsilon(g, f, eps)
    closed = math.sqrt(float(g @ torch.linalg.solve(f, g)) / (2 * eps))
    assert math.isclose(lam, closed, rel_tol=1e-9)
    assert math.isclose(lam, 1.0 / natural_step(g, f, eps).alpha, rel_tol=1e-9)
    assert math.isclose(float(kl_model(f, penalty_maximizer(g, f, lam))), eps, rel_tol=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lambda_for_epsilon_minimizes_the_dual(seed):
    f, g = spd(3, seed)
    eps = 0.02
    res = minimize_scalar(lambda log_lam: dual_function(g, f, math.exp(log_lam), eps), bounds=(-10, 10),
                          method="bounded", options={"xatol": 1e-10})
    assert math.isclose(math.exp(res.x), lambda_for_epsilon(g, f, eps), rel_tol=1e-6)


def test_lambda_and_penalty_reject_bad_input():
    f, g = spd(3, 0)
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="epsilon"):
            lambda_for_epsilon(g, f, bad)
        with pytest.raises(ValueError, match="lam"):
            penalty_maximizer(g, f, bad)
        with pytest.raises(ValueError, match="lam"):
            penalty_objective(g, f, g, bad, 0.1)
        with pytest.raises(ValueError, match="epsilon"):
            penalty_objective(g, f, g, 1.0, bad)
    with pytest.raises(ValueError, match="grad"):
        lambda_for_epsilon(torch.zeros(3), f, 0.1)
    with pytest.raises(ValueError, match="j_old"):
        penalty_objective(g, f, g, 1.0, 0.1, j_old=float("nan"))
    with pytest.raises(ValueError, match="step"):
        penalty_objective(g, f, torch.ones(2), 1.0, 0.1)
    with pytest.raises(NotPositiveDefiniteError):
        penalty_maximizer(g, -f, 1.0)


# -- Taylor models along a ray ---------------------------------------------------------


@pytest.mark.parametrize("param", ["sigma", "log_sigma"])
def test_kl_along_ray_against_torch_and_the_closed_form_fisher(param):
    policy = GaussianPolicy(param)
    theta = policy.params(0.4, 0.9)
    u = torch.tensor([0.6, -0.8])
    lengths = [1e-3, 0.01, 0.1, 0.3]
    ray = kl_along_ray(policy, theta, u, lengths)
    for t, fwd, rev in zip(lengths, ray.forward, ray.reverse):
        a, b = policy.distribution(theta), policy.distribution(theta + t * u)
        assert math.isclose(fwd, float(torch_kl(a, b)), rel_tol=1e-10)
        assert math.isclose(rev, float(torch_kl(b, a)), rel_tol=1e-10)
    f = fisher_gaussian(0.4, 0.9, param)
    np.testing.assert_allclose(ray.quadratic, 0.5 * np.array(lengths) ** 2 * float(u @ f @ u), rtol=1e-12)


def test_kl_along_ray_log_sigma_direction_has_the_exact_expansion():
    """Along log σ: KL(σ‖σe^t) = t + e^{-2t}/2 − 1/2, whose Taylor series is t² − 2t³/3 + ..."""
    policy = GaussianPolicy("log_sigma")
    lengths = np.array([1e-3, 1e-2, 0.1, 0.5])
    ray = kl_along_ray(policy, policy.params(1.0, 2.0), torch.tensor([0.0, 1.0]), lengths)
    np.testing.assert_allclose(ray.forward, lengths + np.exp(-2 * lengths) / 2 - 0.5, rtol=1e-8)
    np.testing.assert_allclose(ray.quadratic, lengths**2, rtol=1e-12)
    np.testing.assert_allclose((ray.forward - ray.quadratic)[:2] / lengths[:2] ** 3, -2 / 3, rtol=0.01)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_categorical_cubic_coefficient_is_the_third_cumulant(seed):
    """KL(p_θ‖p_θ+tu) = κ2 t²/2 + κ3 t³/6 + O(t⁴); reverse = κ2 t²/2 + κ3 t³/3 + O(t⁴)."""
    gen = torch.Generator().manual_seed(seed)
    logits, u = torch.randn(5, generator=gen), torch.randn(5, generator=gen)
    p = torch.softmax(logits, 0)
    centred = u - p @ u
    k2, k3 = float(p @ centred**2), float(p @ centred**3)
    t = 1e-3
    ray = kl_along_ray(CategoricalPolicy(5), logits, u, [t])
    assert math.isclose(float(ray.quadratic[0]), k2 * t**2 / 2, rel_tol=1e-10)
    assert math.isclose(float(ray.forward[0] - ray.quadratic[0]) / t**3, k3 / 6, rel_tol=0.02, abs_tol=1e-4)
    assert math.isclose(float(ray.reverse[0] - ray.quadratic[0]) / t**3, k3 / 3, rel_tol=0.02, abs_tol=1e-4)


def test_kl_along_ray_rejects_bad_input():
    policy = GaussianPolicy("sigma")
    theta = policy.params(0.0, 0.5)
    with pytest.raises(ValueError, match="theta_new"):
        kl_along_ray(policy, theta, torch.tensor([0.0, -1.0]), [1.0])  # σ would become negative
    with pytest.raises(ValueError, match="lengths"):
        kl_along_ray(policy, theta, torch.tensor([1.0, 0.0]), [0.1, -0.1])
    with pytest.raises(ValueError, match="lengths"):
        kl_along_ray(policy, theta, torch.tensor([1.0, 0.0]), [])
    with pytest.raises(ValueError, match="direction"):
        kl_along_ray(policy, theta, torch.tensor([1.0, 0.0, 0.0]), [0.1])
    with pytest.raises(ValueError, match="fisher"):
        kl_along_ray(policy, theta, torch.tensor([1.0, 0.0]), [0.1], fisher=torch.eye(3))


def test_kl_along_ray_uses_a_given_fisher():
    policy = GaussianPolicy("sigma")
    theta = policy.params(0.0, 0.5)
    ray = kl_along_ray(policy, theta, torch.tensor([1.0, 0.0]), [0.1], fisher=2 * torch.eye(2))
    assert math.isclose(float(ray.quadratic[0]), 0.01, rel_tol=1e-12)


@pytest.mark.parametrize("param", ["sigma", "log_sigma"])
def test_objective_along_ray_against_finite_differences(param):
    bandit, policy = GaussianBandit(1.0, 0.5), GaussianPolicy(param)
    theta = policy.params(-0.5, 0.8)
    u = torch.tensor([0.8, 0.6])
    ray = objective_along_ray(lambda th: bandit.expected_reward(policy, th), theta, u, [1e-3, 0.1])
    assert torch.allclose(ray.gradient, bandit.exact_gradient(policy, theta), rtol=1e-12)
    h = 1e-4
    j = lambda th: float(bandit.expected_reward(policy, th))
    fd = torch.tensor(
        [[(j(theta + h * a + h * b) - j(theta + h * a - h * b) - j(theta - h * a + h * b) + j(theta - h * a - h * b)) / (4 * h * h)
          for b in torch.eye(2)] for a in torch.eye(2)]
    )
    assert torch.allclose(ray.hessian, fd, atol=1e-6)
    for t, value, linear in zip(ray.lengths, ray.value, ray.linear):
        assert math.isclose(value, j(theta + t * u), rel_tol=1e-12)
        assert math.isclose(linear, j(theta) + t * float(ray.gradient @ u), rel_tol=1e-12)


def test_objective_along_ray_rejects_bad_objectives():
    theta = torch.tensor([0.0, 1.0])
    u = torch.tensor([1.0, 0.0])
    with pytest.raises(ValueError, match="scalar"):
        objective_along_ray(lambda th: th * 2, theta, u, [0.1])
    with pytest.raises(ValueError, match="objective"):
        objective_along_ray(lambda th: torch.log(th[0] - 0.05), theta, u, [0.1])  # NaN at θ = (0, 1)
    with pytest.raises(ValueError, match="length"):
        objective_along_ray(lambda th: torch.log(1.0 - th[0]), theta, u, [0.5, 2.0])  # NaN at t = 2
    with pytest.raises(ValueError, match="direction"):
        objective_along_ray(lambda th: th.sum(), theta, torch.ones(3), [0.1])


@given(st.integers(1, 5), st.integers(0, 2**31 - 1))
def test_objective_derivatives_of_a_quadratic_are_exact(n, seed):
    a, b = spd(n, seed)
    value, gradient, hess = objective_derivatives(lambda th: 0.5 * th @ a @ th + b @ th + 2.0, b)
    assert math.isclose(value, float(0.5 * b @ a @ b + b @ b + 2.0), rel_tol=1e-12)
    assert torch.allclose(gradient, a @ b + b, rtol=1e-12, atol=1e-12)
    assert torch.allclose(hess, a, rtol=1e-12, atol=1e-12)


def test_objective_derivatives_reject_bad_input():
    with pytest.raises(ValueError, match="theta"):
        objective_derivatives(lambda th: th.sum(), torch.tensor([[1.0]]))
    with pytest.raises(ValueError, match="scalar"):
        objective_derivatives(lambda th: th, torch.ones(2))
    with pytest.raises(ValueError, match="gradient"):
        objective_derivatives(lambda th: torch.sqrt(th).sum(), torch.tensor([0.0, 1.0]))  # infinite slope at 0
