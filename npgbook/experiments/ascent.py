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

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .._checks import as_tensor, require_finite, require_int, require_positive, require_vector
from ..natural import natural_step
from ..policies import GaussianPolicy
from ..problems.bandit import GaussianBandit
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


# ----------------------------------------------------------------------------------------
# Chapters 1 and 2: sweeps over the step size, a plateau, and one poor update with samples.


@dataclass(frozen=True)
class StepSizeSweep:
    r"""Vanilla ascent from one start with several fixed step sizes (:func:`step_size_sweep`).

    Attributes:
        alphas: the step sizes, in the order given.
        runs: the run of each step size, an :class:`AscentPath`.
    """

    alphas: tuple[float, ...]
    runs: tuple[AscentPath, ...]

    @property
    def final(self) -> Tensor:
        r""":math:`J` at the last iterate of every run, shape ``(len(alphas),)``."""
        return torch.stack([run.values[-1] for run in self.runs])

    def settled(self, level: float, last: int) -> list[bool]:
        r"""For every run: whether :math:`J \ge` ``level`` at each of its last ``last`` iterates.

        A run that merely passes through the region (and is thrown out again) has not settled.
        """
        last = require_int("last", last)
        return [bool((run.values[-last:] >= level).all()) and run.iterations >= last for run in self.runs]

    @property
    def reached(self) -> list[int | None]:
        """The first iteration at the target of every run (``None``: not reached)."""
        return [run.reached for run in self.runs]

    def run(self, alpha: float) -> AscentPath:
        """The run with step size ``alpha``."""
        return self.runs[self.alphas.index(float(alpha))]


def step_size_sweep(
    objective: Function,
    gradient: Function,
    theta0: Tensor,
    alphas: Sequence[float],
    n_iter: int,
    *,
    target: float | None = None,
) -> StepSizeSweep:
    r"""Run :func:`vanilla_ascent` from ``theta0`` once for every step size in ``alphas``.

    Args:
        objective, gradient, theta0, n_iter, target: as in :func:`vanilla_ascent`.
        alphas: the step sizes :math:`\alpha > 0`, at least one, no repeats.
    """
    alphas = tuple(require_positive("alpha", a) for a in alphas)
    if not alphas or len(set(alphas)) != len(alphas):
        raise ValueError(f"alphas must be a non-empty sequence without repeats, got {alphas}")
    runs = tuple(vanilla_ascent(objective, gradient, theta0, a, n_iter, target=target) for a in alphas)
    return StepSizeSweep(alphas, runs)


@dataclass(frozen=True)
class PlateauEscape:
    r"""A vanilla run that starts next to a plateau (:func:`plateau_escape`).

    Attributes:
        path: the run, stopped at the target.
        reached: the first iteration with :math:`J \ge` target, ``None`` if the budget ran out.
        on_plateau: how many iterates have :math:`|J - J_{\text{plateau}}| <` ``band``.
        share: ``on_plateau`` divided by the number of updates performed.
        grad_start: :math:`\lVert\nabla J\rVert` at the start.
        grad_mid: :math:`\lVert\nabla J\rVert` at the iterate halfway through the run.
        grad_end: :math:`\lVert\nabla J\rVert` at the last iterate.
        rise: :math:`J` at the last iterate minus :math:`J` halfway through the run (positive
            if the run is still climbing).
    """

    path: AscentPath
    reached: int | None
    on_plateau: int
    share: float
    grad_start: float
    grad_mid: float
    grad_end: float
    rise: float


def plateau_escape(
    objective: Function,
    gradient: Function,
    theta0: Tensor,
    alpha: float,
    n_iter: int,
    *,
    target: float,
    plateau: float,
    band: float,
) -> PlateauEscape:
    r"""Run :func:`vanilla_ascent` until :math:`J \ge` ``target`` and measure the time on a plateau.

    Args:
        objective, gradient, theta0, alpha, n_iter, target: as in :func:`vanilla_ascent`.
        plateau: the value :math:`J_{\text{plateau}}` of the flat region.
        band: an iterate is on the plateau if :math:`|J - J_{\text{plateau}}| <` ``band``.
    """
    band = require_positive("band", band)
    plateau = float(require_finite("plateau", as_tensor("plateau", plateau)))
    path = vanilla_ascent(objective, gradient, theta0, alpha, n_iter, target=target)
    on_plateau = int(((path.values - plateau).abs() < band).sum())
    mid = path.iterations // 2
    return PlateauEscape(
        path=path,
        reached=path.reached,
        on_plateau=on_plateau,
        share=on_plateau / max(path.iterations, 1),
        grad_start=float(gradient(path.thetas[0]).norm()),
        grad_mid=float(gradient(path.thetas[mid]).norm()),
        grad_end=float(gradient(path.thetas[-1]).norm()),
        rise=float(path.values[-1] - path.values[mid]),
    )


@dataclass(frozen=True)
class SampledRuns:
    r"""Independent REINFORCE runs on the Gaussian bandit (:func:`reinforce_bandit_runs`).

    Attributes:
        thetas: the iterates of every run, shape ``(n_iter + 1, n_runs, 2)``.
        values: the exact :math:`J` of every iterate, shape ``(n_iter + 1, n_runs)``.
        target: the level that counts as recovered.
        first: for every run the first iteration with :math:`J \ge` target, or ``-1`` if the
            run never gets there within the budget, shape ``(n_runs,)``.
    """

    thetas: Tensor
    values: Tensor
    target: float
    first: Tensor

    @property
    def n_runs(self) -> int:
        """The number of runs."""
        return self.thetas.shape[1]

    @property
    def recovered(self) -> int:
        """How many runs reach the target within the budget."""
        return int((self.first >= 0).sum())

    @property
    def fraction(self) -> float:
        """The fraction of runs that reach the target within the budget."""
        return self.recovered / self.n_runs

    def recovered_by(self, k: int) -> int:
        """How many runs reach the target within ``k`` iterations."""
        return int(((self.first >= 0) & (self.first <= k)).sum())

    def fraction_by(self, k: int) -> float:
        """The fraction of runs that reach the target within ``k`` iterations."""
        return self.recovered_by(k) / self.n_runs


def reinforce_bandit_runs(
    bandit: GaussianBandit,
    policy: GaussianPolicy,
    theta0: Tensor,
    alpha: float,
    n_iter: int,
    n_samples: int,
    n_runs: int,
    *,
    seed: int,
    target: float,
    stop_early: bool = False,
) -> SampledRuns:
    r"""``n_runs`` independent runs of :math:`\theta \leftarrow \theta + \alpha\,\hat g_N(\theta)` on the bandit.

    :math:`\hat g_N` is the REINFORCE estimate of
    :meth:`~npgbook.problems.bandit.GaussianBandit.reinforce_gradient` (no baseline), from
    ``n_samples`` fresh actions per run and iteration. The runs are advanced together: every
    iteration draws an ``(n_runs, n_samples)`` block of standard normals from one generator
    seeded with ``seed``, so a single run (``n_runs = 1``) draws exactly the actions
    ``reinforce_gradient`` draws from the same generator. The scores are the Gaussian's closed
    form, :math:`\partial_\mu\log\pi = (a-\mu)/\sigma^2` and
    :math:`\partial_{\log\sigma}\log\pi = (a-\mu)^2/\sigma^2 - 1` (divided by :math:`\sigma`
    for the parameter :math:`\sigma`). :math:`J` is evaluated exactly at every iterate.

    Args:
        bandit, policy: the problem and the Gaussian policy (either parameterization).
        theta0: the start of every run.
        alpha: the fixed step size :math:`\alpha > 0`.
        n_iter: the budget of updates per run.
        n_samples: the batch size :math:`N` of every gradient estimate.
        n_runs: the number of independent runs.
        seed: the seed of the generator.
        target: a run has *recovered* once :math:`J \ge` ``target``.
        stop_early: stop as soon as every run has recovered (``thetas`` is then shorter; the
            first iterations are the same as without stopping).

    Raises:
        ValueError: for bad arguments, or if an iterate leaves the parameter space
            (:math:`\sigma \le 0` with the parameter :math:`\sigma`).
    """
    if not isinstance(bandit, GaussianBandit):
        raise TypeError(f"bandit must be a GaussianBandit, got {type(bandit).__name__}")
    if not isinstance(policy, GaussianPolicy):
        raise TypeError(f"policy must be a GaussianPolicy, got {type(policy).__name__}")
    theta0 = policy.check_theta(require_finite("theta0", as_tensor("theta0", theta0))).detach()
    alpha = require_positive("alpha", alpha)
    n_iter = require_int("n_iter", n_iter, minimum=0)
    n_samples = require_int("n_samples", n_samples)
    n_runs = require_int("n_runs", n_runs)
    target = float(require_finite("target", as_tensor("target", target)))
    generator = torch.Generator().manual_seed(require_int("seed", seed, minimum=0))
    log_sigma = policy.parameterization == "log_sigma"

    def value(theta: Tensor) -> Tensor:
        # the closed form of J broadcasts: theta[0] and theta[1] may be arrays of mu and sigma
        return bandit._expected_reward(policy, theta.T)

    theta = theta0.expand(n_runs, 2).clone()
    thetas, values = [theta], [value(theta)]
    done = values[0] >= target
    for _ in range(n_iter):
        if stop_early and bool(done.all()):
            break
        mu = theta[:, :1]
        sigma = torch.exp(theta[:, 1:]) if log_sigma else theta[:, 1:]
        noise = torch.randn((n_runs, n_samples), generator=generator, dtype=theta.dtype)
        reward = bandit.reward(mu + sigma * noise)
        score_mu = noise / sigma
        score_sigma = noise**2 - 1 if log_sigma else (noise**2 - 1) / sigma
        step = alpha * torch.stack([(reward * score_mu).mean(1), (reward * score_sigma).mean(1)], 1)
        theta = require_finite("REINFORCE iterate", theta + step)
        if not log_sigma and bool((theta[:, 1] <= 0).any()):
            raise ValueError("a REINFORCE step left the parameter space (sigma <= 0)")
        thetas.append(theta)
        values.append(value(theta))
        done = done | (values[-1] >= target)
    hit = torch.stack(values) >= target
    first = torch.where(hit.any(0), hit.to(torch.int64).argmax(0), torch.tensor(-1))
    return SampledRuns(torch.stack(thetas), torch.stack(values), target, first)


def _stderr_of_difference(x1: int, n1: int, x2: int, n2: int) -> float:
    """The Agresti-Caffo standard error of a difference of two proportions x1/n1 - x2/n2.

    Adding one success and one failure to each group keeps it positive at 0/n and n/n.
    """
    p1, p2 = (x1 + 1) / (n1 + 2), (x2 + 1) / (n2 + 2)
    return math.sqrt(p1 * (1 - p1) / (n1 + 2) + p2 * (1 - p2) / (n2 + 2))


@dataclass(frozen=True)
class PoorUpdateRecovery:
    r"""Sampled runs with and without one poor update first (:func:`poor_update_recovery`).

    Attributes:
        theta0: the start.
        landing: where one exact-gradient step of length ``poor_alpha`` lands.
        j0, j_landing: :math:`J` at ``theta0`` and at ``landing``.
        n_iter: the budget of updates.
        without: REINFORCE runs from ``theta0`` (no poor update).
        after: REINFORCE runs from ``landing`` (after the poor update).
    """

    theta0: Tensor
    landing: Tensor
    j0: float
    j_landing: float
    n_iter: int
    without: SampledRuns
    after: SampledRuns

    def difference(self, k: int | None = None) -> float:
        """The share of runs the poor update costs: recovered within ``k`` iterations (default:
        the whole budget) without it, minus with it."""
        k = self.n_iter if k is None else k
        return self.without.fraction_by(k) - self.after.fraction_by(k)

    def stderr(self, k: int | None = None) -> float:
        """The (Agresti-Caffo) standard error of :meth:`difference` ``(k)``."""
        k = self.n_iter if k is None else k
        x1, x2 = self.without.recovered_by(k), self.after.recovered_by(k)
        return _stderr_of_difference(x1, self.without.n_runs, x2, self.after.n_runs)


def poor_update_recovery(
    bandit: GaussianBandit,
    policy: GaussianPolicy,
    theta0: Tensor,
    poor_alpha: float,
    alpha: float,
    n_iter: int,
    n_samples: int,
    n_runs: int,
    *,
    seed: int = 0,
    target: float = 0.5,
) -> PoorUpdateRecovery:
    r"""Does REINFORCE recover from one poor update? Runs with and without it, compared.

    The poor update is one *exact*-gradient step :math:`\theta_0 + \alpha_{\text{poor}}\nabla J(\theta_0)`.
    From there, and separately from :math:`\theta_0` itself, ``n_runs`` REINFORCE runs
    (:func:`reinforce_bandit_runs`, step size ``alpha``, ``n_samples`` actions per estimate,
    up to ``n_iter`` updates, stopped once every run of the group has recovered) try to reach
    :math:`J \ge` ``target``. The two groups use the seeds ``seed`` and ``seed + 1``, so they
    are independent.
    """
    theta0 = policy.check_theta(require_finite("theta0", as_tensor("theta0", theta0))).detach()
    poor_alpha = require_positive("poor_alpha", poor_alpha)
    n_iter = require_int("n_iter", n_iter, minimum=0)
    landing = theta0 + poor_alpha * bandit.exact_gradient(policy, theta0)
    without, after = (
        reinforce_bandit_runs(
            bandit, policy, start, alpha, n_iter, n_samples, n_runs, seed=s, target=target, stop_early=True
        )
        for start, s in ((theta0, seed), (landing, seed + 1))
    )
    return PoorUpdateRecovery(
        theta0=theta0,
        landing=landing,
        j0=float(bandit.expected_reward(policy, theta0)),
        j_landing=float(bandit.expected_reward(policy, landing)),
        n_iter=n_iter,
        without=without,
        after=after,
    )
