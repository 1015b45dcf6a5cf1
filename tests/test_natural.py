import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy.optimize import minimize

from npgbook import NotPositiveDefiniteError, natural_gradient, natural_step


def spd(n, seed):
    gen = torch.Generator().manual_seed(seed)
    m = torch.randn(n, n, generator=gen)
    return m @ m.T + 0.5 * torch.eye(n), torch.randn(n, generator=gen)


@given(st.integers(1, 12), st.integers(0, 2**31 - 1), st.floats(1e-4, 1.0))
def test_step_saturates_the_quadratic_kl_model(n, seed, eps):
    f, g = spd(n, seed)
    step = natural_step(g, f, eps)
    assert math.isclose(0.5 * float(step.step @ f @ step.step), eps, rel_tol=1e-9)
    assert torch.allclose(step.direction, torch.linalg.solve(f, g), rtol=1e-8, atol=1e-10)
    assert math.isclose(step.alpha, math.sqrt(2 * eps / float(g @ torch.linalg.solve(f, g))), rel_tol=1e-9)


@given(st.integers(2, 12), st.integers(0, 2**31 - 1))
def test_operator_and_matrix_give_the_same_step(n, seed):
    f, g = spd(n, seed)
    dense = natural_step(g, f, 0.01)
    by_cg = natural_step(g, lambda v: f @ v, 0.01, max_iter=10 * n, rtol=1e-13)
    assert by_cg.cg is not None and by_cg.cg.converged
    assert torch.allclose(dense.step, by_cg.step, rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_step_is_the_constrained_maximizer(seed):
    """scipy's SLSQP maximizes g.d subject to 1/2 d^T F d <= eps; it must find our step."""
    f, g = spd(4, seed)
    eps = 0.05
    fn, gn = f.numpy(), g.numpy()
    res = minimize(
        lambda d: -gn @ d,
        np.zeros(4),
        jac=lambda d: -gn,
        constraints=[{"type": "ineq", "fun": lambda d: eps - 0.5 * d @ fn @ d, "jac": lambda d: -fn @ d}],
        method="SLSQP",
        options={"ftol": 1e-14, "maxiter": 500},
    )
    assert res.success
    np.testing.assert_allclose(natural_step(g, f, eps).step.numpy(), res.x, atol=1e-6)


def test_zero_gradient_gives_zero_step():
    f, _ = spd(3, 0)
    step = natural_step(torch.zeros(3), f, 0.1)
    assert torch.equal(step.step, torch.zeros(3)) and step.alpha == 0.0
    assert not torch.isnan(step.step).any()


@pytest.mark.parametrize("eps", [0.0, -0.1, float("nan"), float("inf")])
def test_bad_epsilon_is_rejected(eps):
    f, g = spd(3, 0)
    with pytest.raises(ValueError, match="epsilon"):
        natural_step(g, f, eps)


def test_bad_inputs_and_indefinite_fisher():
    f, g = spd(3, 0)
    with pytest.raises(ValueError, match="grad"):
        natural_step(torch.tensor([1.0, float("nan"), 0.0]), f, 0.1)
    with pytest.raises(ValueError, match="fisher"):
        natural_step(g, torch.eye(4), 0.1)
    with pytest.raises(ValueError, match="fisher"):
        natural_step(g, torch.full((3, 3), float("nan")), 0.1)
    with pytest.raises(NotPositiveDefiniteError):
        natural_step(g, -torch.eye(3), 0.1)
    with pytest.raises(NotPositiveDefiniteError):
        natural_step(g, lambda v: -v, 0.1)
    with pytest.raises(NotPositiveDefiniteError):
        natural_gradient(g, torch.zeros(3, 3))
