r"""The natural-gradient step of the note's §5.

Maximizing the linear model :math:`g^\top \Delta\theta` subject to the quadratic KL model
:math:`\tfrac12 \Delta\theta^\top F \Delta\theta \le \epsilon` gives

.. math::

    \Delta\theta = \alpha\, F^{-1} g, \qquad
    \alpha = \sqrt{\frac{2\epsilon}{g^\top F^{-1} g}},

so that :math:`\tfrac12 \Delta\theta^\top F \Delta\theta = \epsilon` exactly. The
direction :math:`\tilde\nabla J = F^{-1} g` is the natural gradient.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ._checks import as_tensor, require_finite, require_positive, require_vector
from .solvers import CGResult, NotPositiveDefiniteError, Operator, conjugate_gradient


@dataclass(frozen=True)
class NaturalStep:
    r"""A natural-gradient step and the quantities that define it.

    Attributes:
        step: :math:`\Delta\theta = \alpha F^{-1} g` (zero when :math:`g = 0`).
        direction: the natural gradient :math:`F^{-1} g` (exact or by CG).
        alpha: the step size :math:`\sqrt{2\epsilon / g^\top F^{-1} g}` (0 when :math:`g = 0`).
        quad: :math:`g^\top F^{-1} g`, the squared length of :math:`g` in the metric
            :math:`F^{-1}`.
        cg: the conjugate-gradient result when :math:`F` was given as an operator.
    """

    step: Tensor
    direction: Tensor
    alpha: float
    quad: float
    cg: CGResult | None = None


def natural_gradient(
    grad: Tensor, fisher: Tensor | Operator, *, max_iter: int | None = None, rtol: float = 1e-10
) -> tuple[Tensor, CGResult | None]:
    r"""The natural gradient :math:`F^{-1} g`.

    ``fisher`` is either a dense symmetric matrix, solved exactly through a Cholesky
    factorization, or a Fisher-vector-product operator, solved by conjugate gradient
    with ``max_iter`` and ``rtol``.

    Raises:
        NotPositiveDefiniteError: if :math:`F` is not positive definite (Cholesky fails, or
            CG meets non-positive curvature).
    """
    grad = require_finite("grad", require_vector("grad", as_tensor("grad", grad)))
    if callable(fisher) and not isinstance(fisher, Tensor):
        result = conjugate_gradient(fisher, grad, max_iter=max_iter, rtol=rtol)
        return result.x, result
    matrix = require_finite("fisher", as_tensor("fisher", fisher).to(grad.dtype))
    n = grad.shape[0]
    if matrix.shape != (n, n):
        raise ValueError(f"fisher must have shape ({n}, {n}), got {tuple(matrix.shape)}")
    chol, info = torch.linalg.cholesky_ex(matrix)
    if int(info) != 0:
        raise NotPositiveDefiniteError("fisher is not positive definite (Cholesky failed)")
    return torch.cholesky_solve(grad.unsqueeze(1), chol).squeeze(1), None


def natural_step(
    grad: Tensor,
    fisher: Tensor | Operator,
    epsilon: float,
    *,
    max_iter: int | None = None,
    rtol: float = 1e-10,
) -> NaturalStep:
    r"""The KL-capped natural step :math:`\sqrt{2\epsilon / g^\top F^{-1} g}\; F^{-1} g`.

    Args:
        grad: the policy gradient :math:`g = \nabla_\theta J`.
        fisher: :math:`F` as a dense matrix or a Fisher-vector product (see
            :func:`natural_gradient`).
        epsilon: the KL budget :math:`\epsilon > 0` of the quadratic model.
        max_iter, rtol: conjugate-gradient settings when ``fisher`` is an operator.

    A zero gradient gives a zero step (no direction to move in) rather than the
    :math:`0 \cdot \infty` that the formula would produce.

    Raises:
        ValueError: if ``epsilon`` is not a finite positive number, or ``grad`` is bad.
        NotPositiveDefiniteError: if :math:`g^\top F^{-1} g` is not positive and finite.
    """
    epsilon = require_positive("epsilon", epsilon)
    grad = require_finite("grad", require_vector("grad", as_tensor("grad", grad)))
    if not bool(grad.any()):
        zero = torch.zeros_like(grad)
        return NaturalStep(step=zero, direction=zero, alpha=0.0, quad=0.0, cg=None)
    direction, cg = natural_gradient(grad, fisher, max_iter=max_iter, rtol=rtol)
    quad = float(grad @ direction)
    if not (math.isfinite(quad) and quad > 0.0):
        raise NotPositiveDefiniteError(f"g^T F^-1 g = {quad:.3e} must be positive and finite")
    alpha = math.sqrt(2.0 * epsilon / quad)
    return NaturalStep(step=alpha * direction, direction=direction, alpha=alpha, quad=quad, cg=cg)
