import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from npgbook import GaussianPolicy, natural_step
from npgbook.experiments.trust_region import ball_kl, circle_directions, euclidean_step, maximize_in_region


def spd(n, seed):
    gen = torch.Generator().manual_seed(seed)
    m = torch.randn(n, n, generator=gen)
    return m @ m.T + 0.5 * torch.eye(n), torch.randn(n, generator=gen)


@pytest.mark.parametrize("method", ["SLSQP", "trust-constr"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_linear_model_in_a_ball_is_solved_by_the_normalized_gradient(method, seed):
    _, g = spd(3, seed)
    eps = 0.3
    sol = maximize_in_region(lambda d: g @ d, lambda d: d @ d, eps**2, 3, method=method)
    assert torch.allclose(sol.step, euclidean_step(g, eps), atol=1e-6)
    assert math.isclose(sol.objective, eps * float(g.norm()), rel_tol=1e-6)


@pytest.mark.parametrize("method", ["SLSQP", "trust-constr"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_quadratic_kl_model_is_solved_by_the_natural_step(method, seed):
    f, g = spd(4, seed)
    eps = 0.02
    sol = maximize_in_region(lambda d: g @ d, lambda d: 0.5 * d @ f @ d, eps, 4, method=method)
    nat = natural_step(g, f, eps)
    assert torch.allclose(sol.step, nat.step, atol=1e-6)
    assert math.isclose(sol.constraint, eps, rel_tol=1e-6)
    # KKT: g = lambda F step with lambda = 1 / alpha
    assert math.isclose(sol.multiplier, 1.0 / nat.alpha, rel_tol=1e-5)


def test_nonlinear_objective_on_a_disc():
    """max x + y - (x^2 + y^2) ... subject to x^2 + y^2 <= 1/16: the boundary point (1,1)/(4 sqrt 2)."""
    sol = maximize_in_region(lambda d: d.sum() - d @ d, lambda d: d @ d, 1 / 16, 2)
    assert sol.success
    assert torch.allclose(sol.step, torch.full((2,), 0.25 / math.sqrt(2)), atol=1e-7)
    # unconstrained maximum (1/2, 1/2) lies outside; at a larger radius it is interior
    inner = maximize_in_region(lambda d: d.sum() - d @ d, lambda d: d @ d, 4.0, 2)
    assert torch.allclose(inner.step, torch.full((2,), 0.5), atol=1e-6)
    assert math.isnan(inner.multiplier) or abs(inner.multiplier) < 1e-6


def test_euclidean_step_and_circle_directions():
    g = torch.tensor([3.0, 4.0])
    assert torch.allclose(euclidean_step(g, 2.0), torch.tensor([1.2, 1.6]))
    assert torch.equal(euclidean_step(torch.zeros(2), 1.0), torch.zeros(2))
    dirs = circle_directions(8)
    assert dirs.shape == (8, 2) and torch.allclose(dirs.norm(dim=1), torch.ones(8))
    assert torch.allclose(dirs[2], torch.tensor([0.0, 1.0]), atol=1e-15)


@pytest.mark.parametrize("param", ["sigma", "log_sigma"])
def test_ball_kl_matches_the_textbook_gaussian_kl_and_quadrature(param):
    policy = GaussianPolicy(param)
    mu, sigma = 0.3, 0.7
    theta = policy.params(mu, sigma)
    radii = torch.tensor([0.0, 0.1, 0.25])
    dirs = circle_directions(6)
    kl = ball_kl(policy, theta, radii, dirs)
    assert kl.shape == (3, 6) and torch.equal(kl[0], torch.zeros(6))
    for i, r in enumerate(radii):
        for j, u in enumerate(dirs):
            m2 = mu + float(r * u[0])
            s2 = sigma + float(r * u[1]) if param == "sigma" else sigma * math.exp(float(r * u[1]))
            ref = math.log(s2 / sigma) + (sigma**2 + (mu - m2) ** 2) / (2 * s2**2) - 0.5
            assert math.isclose(float(kl[i, j]), ref, rel_tol=1e-10, abs_tol=1e-14)
    m2, s2 = mu + 0.25, sigma
    quad, _ = integrate.quad(
        lambda x: stats.norm.pdf(x, mu, sigma) * (stats.norm.logpdf(x, mu, sigma) - stats.norm.logpdf(x, m2, s2)),
        -20,
        20,
        epsabs=1e-13,
    )
    assert math.isclose(float(kl[2, 0]), quad, rel_tol=1e-8)


def test_bad_inputs():
    policy = GaussianPolicy("sigma")
    theta = policy.params(0.0, 0.2)
    with pytest.raises(ValueError, match="theta"):  # the ball reaches sigma <= 0
        ball_kl(policy, theta, torch.tensor([0.5]), circle_directions(4))
    with pytest.raises(ValueError, match="radii"):
        ball_kl(policy, theta, torch.tensor([-0.1]), circle_directions(4))
    with pytest.raises(ValueError, match="directions"):
        ball_kl(policy, theta, torch.tensor([0.1]), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="directions"):
        ball_kl(policy, theta, torch.tensor([0.1]), torch.ones(3, 3))
    with pytest.raises(ValueError, match="n_directions"):
        circle_directions(2)
    with pytest.raises(ValueError, match="epsilon"):
        euclidean_step(torch.ones(2), 0.0)
    with pytest.raises(ValueError, match="grad"):
        euclidean_step(torch.tensor([np.nan, 1.0]), 1.0)
    with pytest.raises(ValueError, match="bound"):
        maximize_in_region(lambda d: d.sum(), lambda d: d @ d, -1.0, 2)
    with pytest.raises(ValueError, match="method"):
        maximize_in_region(lambda d: d.sum(), lambda d: d @ d, 1.0, 2, method="COBYLA")
    with pytest.raises(ValueError, match="x0"):
        maximize_in_region(lambda d: d.sum(), lambda d: d @ d, 1.0, 2, x0=torch.zeros(3))
