import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from npgbook import GaussianPolicy, fisher_categorical, fisher_gaussian, natural_gradient
from npgbook.metric import change_of_coordinates, kl_ball, whitening_jacobian
from npgbook.problems.bandit import GaussianBandit


def spd(n, seed):
    gen = torch.Generator().manual_seed(seed)
    m = torch.randn(n, n, generator=gen)
    return m @ m.T + 0.3 * torch.eye(n), torch.randn(n, generator=gen), torch.randn(n, n, generator=gen)


@given(st.integers(0, 2**31 - 1), st.floats(1e-4, 10.0))
def test_kl_ball_lies_on_the_quadratic_level_set(seed, eps):
    f, _, _ = spd(2, seed)
    ring = kl_ball(f, eps, 64)
    values = 0.5 * torch.einsum("ni,ij,nj->n", ring, f, ring)
    assert torch.allclose(values, torch.full_like(values, eps), rtol=1e-9)
    assert torch.allclose(ring[0], ring[-1], atol=1e-12)  # closed curve


@pytest.mark.parametrize("sigma", [0.3, 1.0, 3.0])
def test_kl_ball_axes_and_area_for_the_gaussian(sigma):
    eps = 0.05
    ring = kl_ball(fisher_gaussian(0.0, sigma), eps, 2001).numpy()
    assert math.isclose(ring[:, 0].max(), math.sqrt(2 * eps) * sigma, rel_tol=1e-6)
    assert math.isclose(ring[:, 1].max(), math.sqrt(eps) * sigma, rel_tol=1e-6)
    x, y = ring[:, 0], ring[:, 1]
    area = 0.5 * abs(np.dot(x[:-1], y[1:]) - np.dot(x[1:], y[:-1]))
    assert math.isclose(area, math.pi * math.sqrt(2 * eps * sigma**2) * math.sqrt(eps * sigma**2), rel_tol=1e-5)


def test_kl_ball_rejects_bad_input():
    with pytest.raises(ValueError, match="fisher"):
        kl_ball(torch.eye(3), 0.1)
    with pytest.raises(ValueError, match="fisher"):
        kl_ball(torch.tensor([[1.0, 0.0], [0.0, -1.0]]), 0.1)
    with pytest.raises(ValueError, match="fisher"):
        kl_ball(torch.tensor([[1.0, 0.5], [0.0, 1.0]]), 0.1)
    with pytest.raises(ValueError, match="fisher"):
        kl_ball(torch.tensor([[1.0, float("nan")], [float("nan"), 1.0]]), 0.1)
    for eps in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="epsilon"):
            kl_ball(torch.eye(2), eps)
    with pytest.raises(ValueError, match="n_points"):
        kl_ball(torch.eye(2), 0.1, 2)


@pytest.mark.parametrize("mu, sigma", [(0.0, 0.3), (-1.0, 1.0), (2.0, 2.5)])
def test_change_of_coordinates_matches_autograd_in_the_other_parameterization(mu, sigma):
    """(μ, σ) -> (μ, log σ): J = diag(1, σ); compare with the other policy's own Fisher and gradient."""
    bandit = GaussianBandit(1.0, 0.7)
    pol_s, pol_l = GaussianPolicy("sigma"), GaussianPolicy("log_sigma")
    jac = torch.diag(torch.tensor([1.0, sigma]))
    f_new, g_new = change_of_coordinates(
        fisher_gaussian(mu, sigma, "sigma"), bandit.exact_gradient(pol_s, pol_s.params(mu, sigma)), jac
    )
    assert torch.allclose(f_new, fisher_gaussian(mu, sigma, "log_sigma"), rtol=1e-12)
    assert torch.allclose(g_new, bandit.exact_gradient(pol_l, pol_l.params(mu, sigma)), rtol=1e-10, atol=1e-14)


@given(st.integers(1, 6), st.integers(0, 2**31 - 1))
def test_natural_gradient_is_invariant_under_reparameterization(n, seed):
    f, g, jac = spd(n, seed)
    jac = jac + 3 * torch.eye(n)  # keep it comfortably invertible
    f_new, g_new = change_of_coordinates(f, g, jac)
    old, _ = natural_gradient(g, f)
    new, _ = natural_gradient(g_new, f_new)
    assert torch.allclose(jac @ new, old, rtol=1e-6, atol=1e-8)


def test_change_of_coordinates_rejects_bad_shapes():
    f, g, _ = spd(3, 0)
    with pytest.raises(ValueError, match="grad"):
        change_of_coordinates(f, torch.ones(2), torch.eye(3))
    with pytest.raises(ValueError, match="jacobian"):
        change_of_coordinates(f, g, torch.eye(2))
    with pytest.raises(ValueError, match="jacobian"):
        change_of_coordinates(f, g, torch.full((3, 3), float("inf")))
    with pytest.raises(ValueError, match="fisher"):
        change_of_coordinates(torch.ones(3), g, torch.eye(3))


@given(st.integers(1, 6), st.integers(0, 2**31 - 1))
def test_whitening_makes_the_metric_the_identity(n, seed):
    f, _, _ = spd(n, seed)
    w = whitening_jacobian(f)
    assert torch.allclose(w, w.T, atol=1e-12)
    assert torch.allclose(w.T @ f @ w, torch.eye(n), atol=1e-8)
    assert torch.allclose(w @ w, torch.linalg.inv(f), rtol=1e-6, atol=1e-8)


def test_whitening_rejects_singular_and_asymmetric_matrices():
    with pytest.raises(ValueError, match="positive definite"):
        whitening_jacobian(fisher_categorical(torch.tensor([0.1, 0.5, -0.2])))
    with pytest.raises(ValueError, match="symmetric"):
        whitening_jacobian(torch.tensor([[1.0, 2.0], [0.0, 1.0]]))
