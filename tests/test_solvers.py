import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy.sparse.linalg import cg as scipy_cg

from npgbook import NotPositiveDefiniteError, conjugate_gradient


def random_spd(n, seed, cond=100.0):
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=gen))
    eig = torch.logspace(0, math.log10(cond), n)
    return q @ torch.diag(eig) @ q.T, torch.randn(n, generator=gen)


@given(st.integers(1, 30), st.integers(0, 2**31 - 1))
def test_cg_matches_direct_solve(n, seed):
    a, b = random_spd(n, seed)
    result = conjugate_gradient(lambda v: a @ v, b, max_iter=4 * n, rtol=1e-12)
    assert result.converged
    assert torch.allclose(result.x, torch.linalg.solve(a, b), rtol=1e-8, atol=1e-9)
    assert result.residual_norms[0] == pytest.approx(float(b.norm()))
    assert result.residual_norms[-1] <= 1e-12 * float(b.norm())
    assert len(result.residual_norms) == result.iterations + 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cg_matches_scipy_iterate_by_iterate(seed):
    """Same start, same Krylov space: after k iterations both give the same iterate."""
    a, b = random_spd(25, seed, cond=1e3)
    for k in (1, 3, 8):
        ours = conjugate_gradient(lambda v: a @ v, b, max_iter=k, rtol=0.0)
        ref, _ = scipy_cg(a.numpy(), b.numpy(), maxiter=k, rtol=0.0, atol=0.0)
        assert ours.iterations == k and not ours.converged
        np.testing.assert_allclose(ours.x.numpy(), ref, rtol=1e-8, atol=1e-10)


def test_cg_zero_rhs_gives_zero():
    result = conjugate_gradient(lambda v: 2 * v, torch.zeros(4))
    assert result.converged and result.iterations == 0 and torch.equal(result.x, torch.zeros(4))


@pytest.mark.parametrize("diag", [[1.0, -1.0, 2.0], [1.0, 0.0, 0.0], [-1.0, -2.0, -3.0]])
def test_cg_raises_on_non_positive_curvature(diag):
    a = torch.diag(torch.tensor(diag))
    b = torch.tensor([1.0, 1.0, 1.0])
    with pytest.raises(NotPositiveDefiniteError, match="not positive definite"):
        conjugate_gradient(lambda v: a @ v, b)


def test_cg_bad_inputs():
    ident = lambda v: v
    with pytest.raises(ValueError, match="b"):
        conjugate_gradient(ident, torch.tensor([1.0, float("nan")]))
    with pytest.raises(ValueError, match="b"):
        conjugate_gradient(ident, torch.ones(2, 2))
    with pytest.raises(ValueError, match="max_iter"):
        conjugate_gradient(ident, torch.ones(2), max_iter=0)
    with pytest.raises(ValueError, match="rtol"):
        conjugate_gradient(ident, torch.ones(2), rtol=-1.0)
    with pytest.raises(ValueError, match="non-finite"):
        conjugate_gradient(lambda v: v * float("nan"), torch.ones(2))
    with pytest.raises(ValueError, match="shape"):
        conjugate_gradient(lambda v: torch.ones(3), torch.ones(2))
