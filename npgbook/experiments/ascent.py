r"""Policy-gradient ascent on an exact objective: the vanilla update and the natural one.

The note's §2 update is

.. math::

    \theta_{k+1} = \theta_k + \alpha\, \nabla_\theta J(\theta_k)

with a fixed step size :math:`\alpha`; its §5 update (Algorithm 1) is

.. math::

    \theta_{k+1} = \theta_k + \sqrt{\frac{2\epsilon}{g_k^\top F_k^{-1} g_k}}\; F_k^{-1} g_k,
    \qquad g_k = \nabla_\theta J(\theta_k),\ F_k = F(\theta_k),

whose step always has the same length :math:`\epsilon` in the quadratic KL model.
Both loops here take the objective, its gradient and (for the natural one) the Fisher
matrix as functions of :math:`\theta`, so that the same code runs on the Gaussian bandit
and on a finite MDP, where all three are exact. They record the path and the objective,
and can stop as soon as the objective reaches a target — which is how the book counts
"iterations to escape a plateau".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .._checks import as_tensor, require_finite, require_int, require_positive, require_vector
from ..natural import natural_step
from ..solvers import Operator

Function = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class AscentPath:
    r"""The iterates of an ascent run.

    Attributes:
        thetas: :math:`\theta_0, \theta_1, \dots`, shape ``(k + 1, n)``.
        values: :math:`J(\theta_0), J(\theta_1), \dots`, shape ``(k + 1,)``.
        reached: the first iteration :math:`k` with :math:`J(\theta_k) \ge` ``target``, or
            ``None`` if the target was not reached (or not given).
    """

    thetas: Tensor
    values: Tensor
    reached: int | None

    @property
    def iterations(self) -> int:
        """The number of updates performed."""
        return self.thetas.shape[0] - 1


def _run(
    objective: Function,
    update: Callable[[Tensor], Tensor],
    theta0: Tensor,
    n_iter: int,
    target: float | None,
) -> AscentPath:
    """Iterate ``theta <- theta + update(theta)``, stopping at ``target``."""
    theta = require_finite("theta0", require_vector("theta0", as_tensor("theta0", theta0))).detach()
    n_iter = require_int("n_iter", n_iter, minimum=0)
    if target is not None:
        target = float(require_finite("target", as_tensor("target", target)))
    thetas, values = [theta], [float(objective(theta))]
    reached = 0 if target is not None and values[0] >= target else None
    for k in range(1, n_iter + 1):
        if reached is not None:
            break
        step = require_finite("update step", update(theta).detach())
        theta = theta + step
        thetas.append(theta)
        values.append(float(objective(theta)))
        if target is not None and values[-1] >= target:
            reached = k
    return AscentPath(torch.stack(thetas), torch.tensor(values, dtype=theta.dtype), reached)


def vanilla_ascent(
    objective: Function,
    gradient: Function,
    theta0: Tensor,
    alpha: float,
    n_iter: int,
    *,
    target: float | None = None,
) -> AscentPath:
    r"""Run :math:`\theta \leftarrow \theta + \alpha\,\nabla J(\theta)` for up to ``n_iter`` updates.

    Args:
        objective: :math:`\theta \mapsto J(\theta)` (a scalar tensor), recorded at every iterate.
        gradient: :math:`\theta \mapsto \nabla_\theta J(\theta)`.
        theta0: the starting parameters.
        alpha: the fixed step size :math:`\alpha > 0`.
        n_iter: the largest number of updates.
        target: stop as soon as :math:`J(\theta_k) \ge` ``target``.

    Raises:
        ValueError: for bad arguments, or if a gradient is not finite.
    """
    alpha = require_positive("alpha", alpha)
    return _run(objective, lambda th: alpha * gradient(th), theta0, n_iter, target)


def natural_ascent(
    objective: Function,
    gradient: Function,
    fisher: Callable[[Tensor], Tensor | Operator],
    theta0: Tensor,
    epsilon: float,
    n_iter: int,
    *,
    target: float | None = None,
    max_iter: int | None = None,
    rtol: float = 1e-10,
) -> AscentPath:
    r"""Run the natural update :math:`\theta \leftarrow \theta + \sqrt{2\epsilon/g^\top F^{-1}g}\,F^{-1}g`.

    Args:
        objective, gradient, theta0, n_iter, target: as in :func:`vanilla_ascent`.
        fisher: :math:`\theta \mapsto F(\theta)`, a dense positive definite matrix, or an
            operator :math:`v \mapsto F v` solved by conjugate gradient (use the operator form
            when :math:`F` is singular but :math:`g` lies in its range, as for softmax
            policies).
        epsilon: the KL budget :math:`\epsilon > 0` of every step (quadratic model).
        max_iter, rtol: conjugate-gradient settings, see :func:`npgbook.natural.natural_step`.
    """
    epsilon = require_positive("epsilon", epsilon)

    def update(theta: Tensor) -> Tensor:
        return natural_step(gradient(theta), fisher(theta), epsilon, max_iter=max_iter, rtol=rtol).step

    return _run(objective, update, theta0, n_iter, target)
