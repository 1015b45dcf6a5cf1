r"""The Fisher matrix as a metric on parameter space (the note's §3).

Near :math:`\theta` the KL divergence is the quadratic form
:math:`D_{\mathrm{KL}}(\pi_\theta\,\|\,\pi_{\theta+\Delta\theta}) \approx \tfrac12\Delta\theta^\top F\Delta\theta`,
so :math:`F` plays the role of a (Riemannian) metric: it says how far apart, in policy
terms, two nearby parameter vectors are. This module draws the balls of that metric and
moves it between coordinate systems.

* :func:`kl_ball` -- the ellipse :math:`\{\Delta\theta : \tfrac12\Delta\theta^\top F\Delta\theta = \epsilon\}`
  of a two-parameter policy;
* :func:`change_of_coordinates` -- how :math:`F` and the gradient :math:`g` transform when the
  policy is reparameterized, :math:`F' = J^\top F J` and :math:`g' = J^\top g`;
* :func:`whitening_jacobian` -- the linear reparameterization
  :math:`\theta = \theta_0 + F(\theta_0)^{-1/2}\theta'` in which the metric at :math:`\theta_0`
  is the identity, so that the vanilla gradient *is* the natural gradient there.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._checks import as_tensor, require_finite, require_int, require_positive, require_vector


def _square_matrix(name: str, value: Tensor, size: int | None = None) -> Tensor:
    """Return ``value`` as a finite symmetric square float tensor, or raise ``ValueError`` naming it."""
    matrix = require_finite(name, as_tensor(name, value))
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"{name} must be a square matrix, got shape {tuple(matrix.shape)}")
    if size is not None and matrix.shape[0] != size:
        raise ValueError(f"{name} must have shape ({size}, {size}), got {tuple(matrix.shape)}")
    if not torch.allclose(matrix, matrix.T, rtol=1e-10, atol=1e-12):
        raise ValueError(f"{name} must be symmetric")
    return matrix


def kl_ball(fisher: Tensor, epsilon: float, n_points: int = 200) -> Tensor:
    r"""Points on the boundary of the KL ball :math:`\tfrac12\Delta\theta^\top F\Delta\theta = \epsilon`.

    For a positive definite :math:`2\times2` matrix :math:`F = LL^\top` (Cholesky) the
    boundary is the ellipse :math:`\Delta\theta(\varphi) = \sqrt{2\epsilon}\,L^{-\top}
    (\cos\varphi, \sin\varphi)^\top`; its semi-axes are :math:`\sqrt{2\epsilon/\lambda_i}` for the
    eigenvalues :math:`\lambda_i` of :math:`F`, and its area is :math:`2\pi\epsilon/\sqrt{\det F}`.

    Args:
        fisher: the :math:`2\times2` symmetric positive definite metric :math:`F(\theta)`.
        epsilon: the KL budget :math:`\epsilon > 0` (the "radius" of the ball).
        n_points: how many points, equally spaced in :math:`\varphi \in [0, 2\pi]` (the last
            repeats the first, so a plot closes).

    Returns:
        Steps :math:`\Delta\theta` of shape ``(n_points, 2)``; add them to the centre :math:`\theta`.
    """
    matrix = _square_matrix("fisher", fisher, 2)
    epsilon = require_positive("epsilon", epsilon)
    n_points = require_int("n_points", n_points, minimum=3)
    chol, info = torch.linalg.cholesky_ex(matrix)
    if int(info) != 0:
        raise ValueError("fisher must be positive definite")
    phi = torch.linspace(0.0, 2.0 * math.pi, n_points, dtype=matrix.dtype)
    circle = torch.stack([torch.cos(phi), torch.sin(phi)])  # (2, n_points)
    steps = torch.linalg.solve_triangular(chol.T, circle, upper=True)  # L^{-T} circle
    return (math.sqrt(2.0 * epsilon) * steps).T


def change_of_coordinates(fisher: Tensor, grad: Tensor, jacobian: Tensor) -> tuple[Tensor, Tensor]:
    r"""The Fisher matrix and the gradient in new coordinates :math:`\theta'`.

    If :math:`\theta = \phi(\theta')` with Jacobian :math:`J = \partial\theta/\partial\theta'`, the
    chain rule gives :math:`g' = J^\top g`, and the KL model
    :math:`\tfrac12\Delta\theta^\top F\Delta\theta` with :math:`\Delta\theta = J\Delta\theta'` gives
    :math:`F' = J^\top F J`. The natural gradient is a tangent vector: :math:`J\,F'^{-1}g' = F^{-1}g`
    whenever :math:`J` is invertible, which is the note's "regardless of parameterization".

    Args:
        fisher: :math:`F` in the old coordinates :math:`\theta`, shape ``(n, n)``.
        grad: :math:`g = \nabla_\theta J` in the old coordinates, shape ``(n,)``.
        jacobian: :math:`J = \partial\theta/\partial\theta'` at the point, shape ``(n, m)``.

    Returns:
        ``(fisher_new, grad_new)``: :math:`J^\top F J` of shape ``(m, m)`` and :math:`J^\top g` of
        shape ``(m,)``.
    """
    matrix = _square_matrix("fisher", fisher)
    n = matrix.shape[0]
    grad = require_finite("grad", require_vector("grad", as_tensor("grad", grad), n)).to(matrix.dtype)
    jac = require_finite("jacobian", as_tensor("jacobian", jacobian)).to(matrix.dtype)
    if jac.ndim != 2 or jac.shape[0] != n:
        raise ValueError(f"jacobian must have shape ({n}, m), got {tuple(jac.shape)}")
    return jac.T @ matrix @ jac, jac.T @ grad


def whitening_jacobian(fisher: Tensor) -> Tensor:
    r"""The symmetric :math:`F^{-1/2}`: the Jacobian of coordinates in which the metric is :math:`I`.

    With :math:`\theta = \theta_0 + F(\theta_0)^{-1/2}\theta'`, :func:`change_of_coordinates`
    gives :math:`F' = F^{-1/2} F F^{-1/2} = I` at :math:`\theta_0`: in these coordinates the KL
    ball is a Euclidean ball and the vanilla gradient equals the natural gradient. Computed from
    the eigendecomposition :math:`F = Q\Lambda Q^\top` as :math:`Q\Lambda^{-1/2}Q^\top`.

    Args:
        fisher: a symmetric positive definite matrix.

    Raises:
        ValueError: if ``fisher`` is not symmetric positive definite (a singular Fisher, such as
            a softmax's, has no such coordinates).
    """
    matrix = _square_matrix("fisher", fisher)
    eigenvalues, vectors = torch.linalg.eigh(matrix)
    if not bool(eigenvalues.min() > 1e-12 * max(1.0, float(eigenvalues.max()))):
        raise ValueError(f"fisher must be positive definite, smallest eigenvalue {float(eigenvalues.min()):.3e}")
    return vectors @ torch.diag(eigenvalues.rsqrt()) @ vectors.T
