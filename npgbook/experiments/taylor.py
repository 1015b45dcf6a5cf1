r"""Lagrangian relaxation and Taylor models of the KL-constrained update (the note's §4).

The update the note wants is

.. math::

    \Delta\theta^* = \arg\max_{\Delta\theta}\ J(\theta+\Delta\theta)
    \quad\text{s.t.}\quad D_{\mathrm{KL}}(\pi_\theta\,\|\,\pi_{\theta+\Delta\theta}) \le \epsilon .

Replacing :math:`J` by its first-order Taylor model :math:`J(\theta) + g^\top\Delta\theta` and the
KL by its second-order model :math:`\tfrac12\Delta\theta^\top F\Delta\theta`, and the constraint by a
penalty with multiplier :math:`\lambda > 0`, gives the *penalty* (Lagrangian) objective

.. math::

    L_\lambda(\Delta\theta) = J(\theta) + g^\top\Delta\theta
        - \lambda\left(\tfrac12\Delta\theta^\top F\Delta\theta - \epsilon\right),

maximized by :math:`\Delta\theta(\lambda) = F^{-1}g/\lambda`. Its maximum, the *dual function*
:math:`d(\lambda) = J(\theta) + g^\top F^{-1} g / (2\lambda) + \lambda\epsilon`, is smallest at the
:math:`\lambda` whose maximizer exactly spends the budget,
:math:`\tfrac12\Delta\theta(\lambda)^\top F\Delta\theta(\lambda) = \epsilon`.

This module provides those pieces (:func:`kl_model`, :func:`penalty_objective`,
:func:`penalty_maximizer`, :func:`dual_function`, :func:`lambda_for_epsilon`), and evaluates the
Taylor models against the exact functions along a ray :math:`\theta + t u`
(:func:`kl_along_ray`, :func:`objective_along_ray`, with the coefficients of :math:`J`'s models
from :func:`objective_derivatives`), with :func:`fit_loglog_slope` to read off the order of
their errors.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import brentq
from torch import Tensor

from .._checks import as_tensor, require_finite, require_positive, require_vector
from ..divergences import policy_kl
from ..fisher import fisher_kl_hessian
from ..natural import natural_gradient
from ..policies import Policy
from ..solvers import Operator

Metric = Tensor | Operator
"""The Fisher matrix, dense or as a matrix-free product ``v -> F v``."""


def _apply(fisher: Metric, vector: Tensor) -> Tensor:
    """:math:`F v` for a dense ``fisher`` or a Fisher-vector-product operator."""
    if callable(fisher) and not isinstance(fisher, Tensor):
        return fisher(vector)
    matrix = require_finite("fisher", as_tensor("fisher", fisher)).to(vector.dtype)
    n = vector.shape[0]
    if matrix.shape != (n, n):
        raise ValueError(f"fisher must have shape ({n}, {n}), got {tuple(matrix.shape)}")
    return matrix @ vector


def _vector(name: str, value: Tensor, length: int | None = None) -> Tensor:
    return require_finite(name, require_vector(name, as_tensor(name, value), length))


def fit_loglog_slope(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    r"""Least-squares slope of :math:`\log y` against :math:`\log x`.

    If :math:`y \approx C x^p` the slope is :math:`p`: an error of order :math:`O(t^3)` has slope
    3, a Monte Carlo error of order :math:`N^{-1/2}` has slope :math:`-\tfrac12`.

    Args:
        x, y: equally long sequences of at least two positive finite numbers.
    """
    xs = np.asarray(x, dtype=float)
    ys = np.asarray(y, dtype=float)
    for name, values in (("x", xs), ("y", ys)):
        if values.ndim != 1 or values.size < 2:
            raise ValueError(f"{name} must be a 1-D sequence of at least two numbers")
        if not (np.all(np.isfinite(values)) and np.all(values > 0)):
            raise ValueError(f"{name} must hold positive finite numbers only")
    if xs.size != ys.size:
        raise ValueError(f"x and y must have the same length, got {xs.size} and {ys.size}")
    if np.ptp(np.log(xs)) == 0:
        raise ValueError("x must hold at least two different values")
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])


def kl_model(fisher: Metric, step: Tensor) -> Tensor:
    r"""The second-order model of the KL divergence, :math:`\tfrac12\Delta\theta^\top F\Delta\theta`.

    Args:
        fisher: :math:`F(\theta)`, a dense ``(n, n)`` matrix or a Fisher-vector product.
        step: the parameter step :math:`\Delta\theta`, shape ``(n,)``.
    """
    step = _vector("step", step)
    return 0.5 * step @ _apply(fisher, step)


def penalty_objective(
    grad: Tensor, fisher: Metric, step: Tensor, lam: float, epsilon: float, j_old: float = 0.0
) -> Tensor:
    r"""The relaxed objective :math:`J(\theta) + g^\top\Delta\theta - \lambda(\tfrac12\Delta\theta^\top F\Delta\theta - \epsilon)`.

    Args:
        grad: :math:`g = \nabla_\theta J(\theta)`.
        fisher: :math:`F(\theta)` (dense or operator).
        step: the candidate step :math:`\Delta\theta`.
        lam: the multiplier :math:`\lambda > 0` that prices a unit of KL.
        epsilon: the KL budget :math:`\epsilon > 0`.
        j_old: :math:`J(\theta)`; like :math:`\lambda\epsilon` it does not depend on the step and
            so does not move the maximizer.
    """
    grad = _vector("grad", grad)
    step = _vector("step", step, grad.shape[0]).to(grad.dtype)
    lam = require_positive("lam", lam)
    epsilon = require_positive("epsilon", epsilon)
    j_old = float(require_finite("j_old", as_tensor("j_old", j_old)))
    return j_old + grad @ step - lam * (kl_model(fisher, step) - epsilon)


def penalty_maximizer(grad: Tensor, fisher: Metric, lam: float) -> Tensor:
    r"""The maximizer :math:`\Delta\theta(\lambda) = F^{-1}g/\lambda` of :func:`penalty_objective`.

    Setting the gradient :math:`g - \lambda F\Delta\theta` of the penalty objective to zero gives
    it; it is a maximum because :math:`F` is positive definite. The solve uses
    :func:`npgbook.natural_gradient` (Cholesky for a matrix, conjugate gradient for an operator).

    Raises:
        NotPositiveDefiniteError: if :math:`F` is not positive definite.
    """
    lam = require_positive("lam", lam)
    direction, _ = natural_gradient(_vector("grad", grad), fisher)
    return direction / lam


def dual_function(grad: Tensor, fisher: Metric, lam: float, epsilon: float, j_old: float = 0.0) -> float:
    r"""The Lagrangian dual :math:`d(\lambda) = \max_{\Delta\theta} L_\lambda(\Delta\theta)`.

    Evaluated as the penalty objective at its maximizer; algebraically it equals
    :math:`J(\theta) + g^\top F^{-1}g/(2\lambda) + \lambda\epsilon`. The :math:`\lambda\epsilon` term is
    what gives :math:`d` a minimum over :math:`\lambda`: without it :math:`d` would decrease forever
    and pick :math:`\lambda \to \infty`, the zero step.
    """
    step = penalty_maximizer(grad, fisher, lam)
    return float(penalty_objective(grad, fisher, step, lam, epsilon, j_old))


def lambda_for_epsilon(grad: Tensor, fisher: Metric, epsilon: float) -> float:
    r"""The multiplier whose penalty maximizer spends exactly the KL budget, found by root finding.

    Solves :math:`\tfrac12\Delta\theta(\lambda)^\top F\,\Delta\theta(\lambda) = \epsilon` for
    :math:`\lambda` with :func:`scipy.optimize.brentq`, after bracketing the root by factors of
    10. (The left side decreases like :math:`1/\lambda^2`, so the root is unique; the closed
    form is :math:`\lambda = \sqrt{g^\top F^{-1}g/(2\epsilon)}`, the reciprocal of the step size
    :math:`\alpha` of :func:`npgbook.natural_step`.) The same :math:`\lambda` minimizes
    :func:`dual_function`.

    Raises:
        ValueError: if ``epsilon`` is not positive, or ``grad`` is zero (every :math:`\lambda`
            gives the zero step, so none spends the budget).
    """
    epsilon = require_positive("epsilon", epsilon)
    grad = _vector("grad", grad)
    if not bool(grad.any()):
        raise ValueError("grad must be nonzero: with g = 0 no multiplier spends the budget")
    direction, _ = natural_gradient(grad, fisher)

    def excess(log_lam: float) -> float:
        return float(kl_model(fisher, direction / np.exp(log_lam))) - epsilon

    lo = hi = 0.0
    for _ in range(400):
        if excess(lo) > 0:
            break
        lo -= np.log(10.0)
    for _ in range(400):
        if excess(hi) < 0:
            break
        hi += np.log(10.0)
    if not (excess(lo) > 0 > excess(hi)):
        raise ValueError("could not bracket the multiplier; is fisher positive definite?")
    return float(np.exp(brentq(excess, lo, hi, xtol=1e-15, rtol=1e-15, maxiter=500)))


def _lengths(lengths: Sequence[float] | np.ndarray) -> np.ndarray:
    values = np.asarray(lengths, dtype=float)
    if values.ndim != 1 or values.size == 0:
        raise ValueError("lengths must be a non-empty 1-D sequence")
    if not (np.all(np.isfinite(values)) and np.all(values > 0)):
        raise ValueError("lengths must hold positive finite numbers only")
    return values


@dataclass(frozen=True)
class KLRay:
    r"""The KL divergence and its quadratic model along :math:`\theta + t u`.

    Attributes:
        lengths: the step lengths :math:`t`.
        forward: :math:`D_{\mathrm{KL}}(\pi_\theta\,\|\,\pi_{\theta+tu})`, the note's direction.
        reverse: :math:`D_{\mathrm{KL}}(\pi_{\theta+tu}\,\|\,\pi_\theta)`.
        quadratic: :math:`\tfrac12 t^2 u^\top F(\theta) u`, the model of both.
    """

    lengths: np.ndarray
    forward: np.ndarray
    reverse: np.ndarray
    quadratic: np.ndarray


def kl_along_ray(
    policy: Policy,
    theta: Tensor,
    direction: Tensor,
    lengths: Sequence[float] | np.ndarray,
    obs: Tensor | None = None,
    fisher: Tensor | None = None,
) -> KLRay:
    r"""Exact KL in both directions and its quadratic model at :math:`\theta + t u` for each length :math:`t`.

    Args:
        policy: the policy family.
        theta: the current parameters :math:`\theta`.
        direction: the direction :math:`u` (not normalized here: the step is :math:`t u`).
        lengths: positive step lengths :math:`t`.
        obs: states for a state-dependent policy (the KL is averaged over them).
        fisher: :math:`F(\theta)` if already computed; by default :func:`npgbook.fisher_kl_hessian`.

    Raises ``ValueError`` if a point :math:`\theta + tu` is outside the parameter space
    (e.g. :math:`\sigma \le 0`).
    """
    theta = policy.check_theta(theta).detach()
    u = _vector("direction", direction, policy.n_params).to(theta.dtype)
    ts = _lengths(lengths)
    n = policy.n_params
    if fisher is None:
        fisher = fisher_kl_hessian(policy, theta, obs)
    fisher = require_finite("fisher", as_tensor("fisher", fisher)).to(theta.dtype)
    if fisher.shape != (n, n):
        raise ValueError(f"fisher must have shape ({n}, {n}), got {tuple(fisher.shape)}")
    unit_quad = 0.5 * float(u @ fisher @ u)
    forward, reverse = [], []
    with torch.no_grad():
        for t in ts:
            moved = theta + float(t) * u
            forward.append(float(policy_kl(policy, theta, moved, obs)))
            reverse.append(float(policy_kl(policy, moved, theta, obs)))
    return KLRay(ts, np.array(forward), np.array(reverse), unit_quad * ts**2)


@dataclass(frozen=True)
class ObjectiveRay:
    r"""An objective and its Taylor models along :math:`\theta + t u`.

    Attributes:
        lengths: the step lengths :math:`t`.
        value: the exact :math:`J(\theta + t u)`.
        linear: the first-order model :math:`J(\theta) + t\,g^\top u`.
        quadratic: the second-order model :math:`J(\theta) + t\,g^\top u + \tfrac12 t^2 u^\top H u`
            with :math:`H = \nabla^2 J(\theta)`.
        gradient: :math:`g = \nabla J(\theta)`.
        hessian: :math:`H = \nabla^2 J(\theta)`.
    """

    lengths: np.ndarray
    value: np.ndarray
    linear: np.ndarray
    quadratic: np.ndarray
    gradient: Tensor
    hessian: Tensor


def _scalar_objective(objective: Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
    def checked(point: Tensor) -> Tensor:
        value = objective(point)
        if not isinstance(value, Tensor) or value.ndim != 0:
            raise ValueError("objective must return a scalar tensor")
        return value

    return checked


def objective_derivatives(objective: Callable[[Tensor], Tensor], theta: Tensor) -> tuple[float, Tensor, Tensor]:
    r"""Value, gradient and Hessian of an objective: :math:`J(\theta)`, :math:`\nabla J(\theta)`, :math:`\nabla^2 J(\theta)`.

    The coefficients of the Taylor models of :math:`J`. Computed with
    :func:`torch.autograd.functional.jacobian` and :func:`torch.autograd.functional.hessian`
    (not :mod:`torch.func`, so that the objective may validate its input with ordinary Python
    control flow, as :meth:`npgbook.problems.bandit.GaussianBandit.expected_reward` does).

    Args:
        objective: a twice differentiable :math:`\theta \mapsto J(\theta)` returning a scalar tensor,
            e.g. ``lambda th: bandit.expected_reward(policy, th)``.
        theta: the point.

    Raises:
        ValueError: if the objective is not a scalar, or the value, gradient or Hessian is not finite.
    """
    theta = _vector("theta", theta)
    checked = _scalar_objective(objective)
    value = checked(theta)
    require_finite("objective(theta)", value)
    gradient = torch.autograd.functional.jacobian(checked, theta)
    hess = torch.autograd.functional.hessian(checked, theta)
    require_finite("gradient of objective", gradient)
    require_finite("Hessian of objective", hess)
    return float(value), gradient, hess


def objective_along_ray(
    objective: Callable[[Tensor], Tensor],
    theta: Tensor,
    direction: Tensor,
    lengths: Sequence[float] | np.ndarray,
) -> ObjectiveRay:
    r"""Compare :math:`J(\theta + tu)` with its first- and second-order Taylor models.

    Args:
        objective: a differentiable function :math:`\theta \mapsto J(\theta)` returning a scalar
            tensor, e.g. ``lambda th: bandit.expected_reward(policy, th)``.
        theta: the expansion point.
        direction: the direction :math:`u`.
        lengths: positive step lengths :math:`t`.

    The coefficients come from :func:`objective_derivatives`.

    Raises:
        ValueError: if the objective is not a finite scalar at a point of the ray.
    """
    theta = _vector("theta", theta)
    u = _vector("direction", direction, theta.shape[0]).to(theta.dtype)
    ts = _lengths(lengths)
    checked = _scalar_objective(objective)
    j0, gradient, hess = objective_derivatives(objective, theta)
    slope, curvature = float(gradient @ u), float(u @ hess @ u)
    values = []
    with torch.no_grad():
        for t in ts:
            value = checked(theta + float(t) * u)
            require_finite(f"objective at length {t}", value)
            values.append(float(value))
    linear = j0 + slope * ts
    return ObjectiveRay(ts, np.array(values), linear, linear + 0.5 * curvature * ts**2, gradient, hess)
