r"""Trust regions: a cap on the parameter step (note §2) or on the policy change (note §3-§5).

The note poses two constrained problems for the update :math:`\Delta\theta`:

.. math::

    \max_{\|\Delta\theta\| \le \epsilon} J(\theta + \Delta\theta)
    \qquad\text{and}\qquad
    \max_{D_{\mathrm{KL}}(\pi_\theta\,\|\,\pi_{\theta+\Delta\theta}) \le \epsilon} J(\theta + \Delta\theta).

With :math:`J` replaced by its linear model :math:`g^\top\Delta\theta` the first has the closed
form :math:`\Delta\theta = \epsilon\, g / \|g\|` (:func:`euclidean_step`); with the KL also
replaced by its quadratic model the second gives the natural step of
:func:`npgbook.natural.natural_step`. :func:`maximize_in_region` solves either problem as
stated, with no model, by ``scipy.optimize.minimize``, so that the closed forms can be set
against the problems they approximate. :func:`ball_kl` measures how much the policy can
change inside a Euclidean ball, i.e. what the first cap actually caps.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import NonlinearConstraint, minimize
from torch import Tensor
from torch.func import hessian

from .._checks import DTYPE, as_tensor, require_finite, require_int, require_positive, require_vector
from ..divergences import policy_kl
from ..policies import Policy

Function = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class TrustRegionSolution:
    r"""The numerical solution of :math:`\max_{\Delta} f(\Delta)` subject to :math:`c(\Delta) \le b`.

    Attributes:
        step: the maximizer :math:`\Delta^*`.
        objective: :math:`f(\Delta^*)`.
        constraint: :math:`c(\Delta^*)`, to compare with the bound :math:`b`.
        multiplier: the Lagrange multiplier :math:`\lambda` of the KKT condition
            :math:`\nabla f = \lambda \nabla c` at :math:`\Delta^*`, by least squares (``nan`` if
            :math:`\nabla c = 0` there, i.e. the constraint is not active).
        success: scipy's success flag.
        message: scipy's message.
    """

    step: Tensor
    objective: float
    constraint: float
    multiplier: float
    success: bool
    message: str


def _value_and_grad(fn: Function, x: np.ndarray) -> tuple[float, np.ndarray]:
    delta = torch.as_tensor(x, dtype=DTYPE).requires_grad_(True)
    value = fn(delta)
    (grad,) = torch.autograd.grad(value, delta, allow_unused=True)
    grad = torch.zeros_like(delta) if grad is None else grad
    return float(value.detach()), grad.detach().numpy()


def _hessian(fn: Function, x: np.ndarray) -> np.ndarray:
    return hessian(fn)(torch.as_tensor(x, dtype=DTYPE)).detach().numpy()


def maximize_in_region(
    objective: Function,
    constraint: Function,
    bound: float,
    n_params: int,
    *,
    method: str = "SLSQP",
    x0: Tensor | None = None,
    tol: float = 1e-12,
    max_iter: int = 1000,
) -> TrustRegionSolution:
    r"""Maximize :math:`f(\Delta)` subject to :math:`c(\Delta) \le b` with ``scipy.optimize.minimize``.

    Gradients of :math:`f` and :math:`c` come from torch autograd, so both may be any
    differentiable torch function of :math:`\Delta` (a linear or true objective, a quadratic
    or exact KL, a squared Euclidean norm).

    Args:
        objective: :math:`f`, mapping a step :math:`\Delta \in \mathbb{R}^n` to a scalar tensor.
        constraint: :math:`c`, likewise.
        bound: the bound :math:`b > 0`.
        n_params: the dimension :math:`n` of :math:`\Delta`.
        method: ``"SLSQP"`` or ``"trust-constr"``.
        x0: the starting step (default: zero, which is feasible).
        tol: the optimizer's tolerance (``ftol`` for SLSQP, ``gtol`` and ``xtol`` for trust-constr).
        max_iter: the optimizer's iteration cap.
    """
    bound = require_positive("bound", bound)
    n = require_int("n_params", n_params)
    tol = require_positive("tol", tol)
    max_iter = require_int("max_iter", max_iter)
    if method not in ("SLSQP", "trust-constr"):
        raise ValueError(f"method must be 'SLSQP' or 'trust-constr', got {method!r}")
    start = torch.zeros(n, dtype=DTYPE) if x0 is None else as_tensor("x0", x0).to(DTYPE)
    require_finite("x0", require_vector("x0", start, n))

    def neg_f(x: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad = _value_and_grad(objective, x)
        return -value, -grad

    def c_value(x: np.ndarray) -> float:
        return _value_and_grad(constraint, x)[0]

    def c_grad(x: np.ndarray) -> np.ndarray:
        return _value_and_grad(constraint, x)[1]

    if method == "SLSQP":
        cons = [{"type": "ineq", "fun": lambda x: bound - c_value(x), "jac": lambda x: -c_grad(x)}]
        options = {"ftol": tol, "maxiter": max_iter}
        res = minimize(neg_f, start.numpy(), jac=True, method="SLSQP", constraints=cons, options=options)
    else:
        # exact Hessians (torch.func.hessian): quasi-Newton updates break down on linear terms
        cons = [
            NonlinearConstraint(
                c_value,
                -np.inf,
                bound,
                jac=lambda x: c_grad(x)[None, :],
                hess=lambda x, v: v[0] * _hessian(constraint, x),
            )
        ]
        # start the interior-point barrier small: scipy stops on gtol of the barrier subproblem,
        # and with its default start (0.1) the answer would stay visibly inside the boundary
        options = {
            "gtol": tol,
            "xtol": tol,
            "barrier_tol": tol,
            "initial_barrier_parameter": math.sqrt(tol),
            "maxiter": max_iter,
        }
        res = minimize(
            neg_f,
            start.numpy(),
            jac=True,
            hess=lambda x: -_hessian(objective, x),
            method="trust-constr",
            constraints=cons,
            options=options,
        )
    step = torch.as_tensor(res.x, dtype=DTYPE)
    f_value, f_grad = _value_and_grad(objective, res.x)
    c_val, c_grd = _value_and_grad(constraint, res.x)
    norm2 = float(c_grd @ c_grd)
    multiplier = float(f_grad @ c_grd) / norm2 if norm2 > 0 else math.nan
    return TrustRegionSolution(step, f_value, c_val, multiplier, bool(res.success), str(res.message))


def euclidean_step(grad: Tensor, epsilon: float) -> Tensor:
    r"""The maximizer :math:`\epsilon\, g/\|g\|` of the linear model :math:`g^\top\Delta` over :math:`\|\Delta\| \le \epsilon`.

    By Cauchy–Schwarz :math:`g^\top\Delta \le \|g\|\,\|\Delta\| \le \epsilon\|g\|`, with equality
    only at this step. A zero gradient gives a zero step.
    """
    epsilon = require_positive("epsilon", epsilon)
    grad = require_finite("grad", require_vector("grad", as_tensor("grad", grad)))
    norm = float(grad.norm())
    return torch.zeros_like(grad) if norm == 0.0 else epsilon * grad / norm


def circle_directions(n_directions: int) -> Tensor:
    r"""``n_directions`` unit vectors :math:`(\cos\phi, \sin\phi)` at evenly spaced angles, shape ``(m, 2)``."""
    m = require_int("n_directions", n_directions, minimum=3)
    angles = torch.arange(m, dtype=DTYPE) * (2 * math.pi / m)
    return torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)


def ball_kl(
    policy: Policy, theta: Tensor, radii: Tensor, directions: Tensor, obs: Tensor | None = None
) -> Tensor:
    r""":math:`D_{\mathrm{KL}}(\pi_\theta\,\|\,\pi_{\theta + r u})` for every radius :math:`r` and direction :math:`u`.

    Returns shape ``(len(radii), len(directions))``; the directions are normalized to unit
    length, so row :math:`i` samples the sphere :math:`\|\Delta\theta\| = r_i`. Every point must
    be a valid parameter vector (e.g. :math:`\sigma > 0`), otherwise ``ValueError``.

    Args:
        policy, theta, obs: the policy, the centre :math:`\theta` of the ball and the states.
        radii: the radii :math:`r \ge 0`, a 1-D tensor.
        directions: the directions :math:`u`, shape ``(m, n_params)``, none zero.
    """
    theta = policy.check_theta(theta)
    radii = require_finite("radii", require_vector("radii", as_tensor("radii", radii)))
    if bool((radii < 0).any()):
        raise ValueError("radii must be >= 0")
    directions = require_finite("directions", as_tensor("directions", directions).to(DTYPE))
    if directions.ndim != 2 or directions.shape[1] != policy.n_params:
        raise ValueError(f"directions must have shape (m, {policy.n_params}), got {tuple(directions.shape)}")
    norms = directions.norm(dim=1, keepdim=True)
    if bool((norms == 0).any()):
        raise ValueError("directions must be non-zero vectors")
    units = directions / norms
    return torch.stack(
        [torch.stack([policy_kl(policy, theta, theta + r * u, obs) for u in units]) for r in radii]
    )


@dataclass(frozen=True)
class GaussianPairs:
    r"""Pairs :math:`\mathcal N(m_0, \sigma^2)`, :math:`\mathcal N(m_1, \sigma^2)` of equal width (:func:`equal_width_pairs`).

    Attributes:
        sigmas: the widths :math:`\sigma`, one pair each.
        distance: the Euclidean distance :math:`\lVert\theta_1 - \theta_0\rVert` of each pair
            in the policy's parameters, shape ``(len(sigmas),)``.
        kl: the divergence of each pair, :math:`D(\pi_{\theta_0}\,\|\,\pi_{\theta_1})`, same shape.
    """

    sigmas: tuple[float, ...]
    distance: Tensor
    kl: Tensor


def equal_width_pairs(
    policy: Policy,
    sigmas: tuple[float, ...] | list[float],
    means: tuple[float, float] = (0.0, 1.0),
    divergence: Callable[[Policy, Tensor, Tensor], Tensor] = policy_kl,
) -> GaussianPairs:
    r"""For every :math:`\sigma`: the parameter distance and the KL between two Gaussians of width :math:`\sigma`.

    The note's Figure 2 example: ``means = (0, 1)`` and :math:`\sigma \in \{0.3, 3\}` in the
    parameterization :math:`\theta = (\mu, \sigma)`, where both pairs are at distance 1.

    Args:
        policy: a :class:`~npgbook.policies.GaussianPolicy` (its parameterization sets the distance).
        sigmas: the common widths :math:`\sigma > 0`.
        means: the two means :math:`(m_0, m_1)`.
        divergence: :math:`(\text{policy}, \theta_0, \theta_1) \mapsto D`, the KL by default.
    """
    sigmas = tuple(require_positive("sigma", s) for s in sigmas)
    if not sigmas:
        raise ValueError("sigmas must not be empty")
    m0, m1 = (float(require_finite("means", as_tensor("means", m))) for m in means)
    firsts = [policy.params(m0, s) for s in sigmas]  # type: ignore[attr-defined]
    seconds = [policy.params(m1, s) for s in sigmas]  # type: ignore[attr-defined]
    distance = torch.stack([(b - a).norm() for a, b in zip(firsts, seconds)])
    kl = torch.stack([torch.as_tensor(divergence(policy, a, b)) for a, b in zip(firsts, seconds)])
    return GaussianPairs(sigmas, distance, kl)
