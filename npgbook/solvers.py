r"""Conjugate gradient on a matrix-free operator.

Solves :math:`A x = b` for a symmetric positive definite :math:`A` that is available only
as a function :math:`v \mapsto A v`, e.g. a Fisher-vector product. In exact arithmetic it
terminates in at most :math:`n` iterations; in practice a handful of iterations (10 is
TRPO's customary value) already gives a useful natural-gradient direction.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ._checks import as_tensor, require_finite, require_int, require_positive, require_vector

Operator = Callable[[Tensor], Tensor]


class NotPositiveDefiniteError(ValueError):
    """The operator has curvature :math:`p^\\top A p \\le 0` along a search direction."""


@dataclass(frozen=True)
class CGResult:
    """Outcome of :func:`conjugate_gradient`.

    Attributes:
        x: the approximate solution.
        residual_norms: :math:`\\|b - A x_k\\|` for :math:`k = 0, 1, \\dots` (recursively
            updated residuals, as CG maintains them).
        iterations: number of operator applications.
        converged: whether the residual tolerance was met before ``max_iter``.
    """

    x: Tensor
    residual_norms: list[float] = field(default_factory=list)
    iterations: int = 0
    converged: bool = False


def conjugate_gradient(
    matvec: Operator,
    b: Tensor,
    *,
    max_iter: int | None = None,
    rtol: float = 1e-10,
    atol: float = 0.0,
) -> CGResult:
    r"""Solve :math:`A x = b` by conjugate gradient, starting from :math:`x_0 = 0`.

    Stops when :math:`\|r_k\| \le \max(\text{rtol}\,\|b\|,\ \text{atol})` or after
    ``max_iter`` iterations (default: the dimension of ``b``).

    Args:
        matvec: the operator :math:`v \mapsto A v`; :math:`A` must be symmetric positive
            definite.
        b: right-hand side, a finite 1-D tensor.
        max_iter: cap on iterations (operator applications).
        rtol, atol: relative and absolute tolerance on the residual norm.

    Raises:
        NotPositiveDefiniteError: if :math:`p^\top A p \le 0` for a search direction
            :math:`p`, i.e. :math:`A` is not positive definite (CG would divide by it).
        ValueError: for bad arguments, or if ``matvec`` returns non-finite values.
    """
    b = require_finite("b", require_vector("b", as_tensor("b", b)))
    n = b.shape[0]
    max_iter = n if max_iter is None else require_int("max_iter", max_iter)
    rtol = require_positive("rtol", rtol, allow_zero=True)
    atol = require_positive("atol", atol, allow_zero=True)

    x = torch.zeros_like(b)
    r = b.clone()  # residual b - A x with x = 0
    p = r.clone()
    rr = float(r @ r)
    norms = [math.sqrt(rr)]
    threshold = max(rtol * norms[0], atol)
    if norms[0] <= threshold:
        return CGResult(x=x, residual_norms=norms, iterations=0, converged=True)
    for k in range(1, max_iter + 1):
        ap = matvec(p)
        if ap.shape != p.shape:
            raise ValueError(f"matvec must return shape {tuple(p.shape)}, got {tuple(ap.shape)}")
        if not bool(torch.isfinite(ap).all()):
            raise ValueError(f"matvec returned non-finite values at iteration {k}")
        curvature = float(p @ ap)
        if not curvature > 0.0:
            raise NotPositiveDefiniteError(
                f"operator is not positive definite: p^T A p = {curvature:.3e} <= 0 "
                f"along the search direction of iteration {k}"
            )
        step = rr / curvature
        x = x + step * p
        r = r - step * ap
        rr_new = float(r @ r)
        norms.append(math.sqrt(rr_new))
        if norms[-1] <= threshold:
            return CGResult(x=x, residual_norms=norms, iterations=k, converged=True)
        p = r + (rr_new / rr) * p
        rr = rr_new
    return CGResult(x=x, residual_norms=norms, iterations=max_iter, converged=False)
