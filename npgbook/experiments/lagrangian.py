r"""The experiments of chapter 4 (the note's §4), as functions that return their numbers.

Chapter 4 checks each move of the note's derivation of the natural step, and the claims of
:mod:`npgbook.claims.ch04_lagrangian_taylor` decide their verdicts from the same calls:

* :func:`numeric_penalty_maximizer`, :func:`numeric_multiplier`, :func:`numeric_dual` -- the
  relaxed problem solved by a generic optimizer (BFGS) and root finding, without its closed form
  (chapter 5 derives that);
* :func:`compare_penalty_and_constraint` -- the penalty maximizer at the root-found multiplier
  against SLSQP's constrained maximizer (and the multiplier against its closed form);
* :func:`natural_ray_accuracy` -- the linear model of :math:`J` and the quadratic model of the KL
  along the natural direction, as the budget grows;
* :func:`score_outer_gap` -- the expected score outer product against the KL Hessian;
* :func:`sampled_fisher_convergence` -- the sampled outer product :math:`\hat F_N` against the
  exact :math:`F` over seeds and sample sizes, with the standard error of the fitted slope;
* :func:`curvature_map` -- the eigenvalues of :math:`\nabla^2 J` and the smallest eigenvalue of
  the autograd Fisher matrix over a grid of Gaussian policies;
* :func:`sampled_fisher_mse` -- the exact constant :math:`c` of the sampled Fisher matrix's mean
  squared error :math:`c/N`;
* :func:`count_fisher_flops` -- the matrix-product operations of the routes to :math:`F`, which
  (unlike their timings) are the same on every machine;
* :func:`fvp_cost` -- building a Fisher-vector product and one product: counted and timed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from ..fisher import fisher_from_samples, fisher_kl_hessian, fisher_score_outer
from ..natural import natural_gradient
from ..policies import GaussianPolicy, Policy, sample_actions
from .taylor import (
    fit_loglog_slope,
    kl_along_ray,
    kl_model,
    objective_along_ray,
    objective_derivatives,
)
from .trust_region import maximize_in_region

FisherFn = Callable[..., Tensor]
"""``(policy, theta, obs=None) -> F``: a way to compute the Fisher matrix."""

Sampler = Callable[[Policy, Tensor, "Tensor | None", int, torch.Generator], "tuple[Tensor, Tensor | None]"]
"""``(policy, theta, states, n, generator) -> (actions, states of the actions)``."""


class Bandit(Protocol):
    """Anything with the bandit's closed-form objective (e.g. :class:`~npgbook.problems.bandit.GaussianBandit`).

    ``_expected_reward`` is the unchecked form, which also accepts parameters stacked as
    columns (one policy per column) and returns one value per column.
    """

    def expected_reward(self, policy: GaussianPolicy, theta: Tensor) -> Tensor: ...

    def _expected_reward(self, policy: GaussianPolicy, theta: Tensor) -> Tensor: ...


# ----------------------------------------------------------------------------------------
# From a constraint to a penalty


@dataclass(frozen=True)
class PenaltyConstraintComparison:
    r"""The penalty maximizer at the root-found multiplier, against the constrained maximizer.

    Attributes:
        budgets: the KL budgets :math:`\epsilon`.
        lambdas: the multipliers found by root finding (``multiplier``).
        lambdas_closed: the closed form :math:`\sqrt{g^\top F^{-1}g/(2\epsilon)}`.
        penalty_steps: :math:`\Delta\theta(\lambda)` at those multipliers, one row per budget.
        constrained_steps: SLSQP's maximizer of :math:`g^\top\Delta\theta` subject to
            :math:`\frac12\Delta\theta^\top F\Delta\theta \le \epsilon`, one row per budget.
    """

    budgets: np.ndarray
    lambdas: np.ndarray
    lambdas_closed: np.ndarray
    penalty_steps: np.ndarray
    constrained_steps: np.ndarray

    @property
    def lambda_gap(self) -> float:
        """Largest relative gap between the root-found and the closed-form multiplier."""
        return float(np.max(np.abs(self.lambdas / self.lambdas_closed - 1)))

    @property
    def step_gap(self) -> float:
        """Largest entrywise gap between the penalty and the constrained maximizer."""
        return float(np.max(np.abs(self.penalty_steps - self.constrained_steps)))


def compare_penalty_and_constraint(
    grad: Tensor,
    fisher: Tensor,
    budgets: Sequence[float],
    *,
    multiplier: Callable[[Tensor, Tensor, float], float] | None = None,
    maximizer: Callable[[Tensor, Tensor, float], Tensor] | None = None,
) -> PenaltyConstraintComparison:
    r"""For each budget: the multiplier, its closed form, the penalty step and the constrained step.

    The constrained problem is solved by :func:`~npgbook.experiments.trust_region.maximize_in_region`
    (SLSQP, tolerance :math:`10^{-12}`), which knows nothing of multipliers; the closed form uses
    :func:`npgbook.natural_gradient` directly.

    Args:
        grad: :math:`g`.
        fisher: :math:`F`, dense and positive definite.
        budgets: the budgets :math:`\epsilon > 0`.
        multiplier: ``(g, F, eps) -> lambda`` (default: root finding on the numerical
            maximizer, :func:`numeric_multiplier`).
        maximizer: ``(g, F, lambda) -> step`` (default :func:`numeric_penalty_maximizer`, BFGS;
            :func:`~npgbook.experiments.taylor.penalty_maximizer` is the closed form
            :math:`F^{-1}g/\lambda`).
    """
    if maximizer is None:
        maximizer = numeric_penalty_maximizer
    if multiplier is None:

        def multiplier(g: Tensor, f: Tensor, eps: float) -> float:
            return numeric_multiplier(g, f, eps, maximizer=maximizer)

    quad = float(grad @ natural_gradient(grad, fisher)[0])
    lambdas, closed, penalty, constrained = [], [], [], []
    for eps in budgets:
        lam = float(multiplier(grad, fisher, eps))
        lambdas.append(lam)
        closed.append(math.sqrt(quad / (2 * eps)))
        penalty.append(maximizer(grad, fisher, lam).detach().numpy())
        solution = maximize_in_region(lambda d: grad @ d, lambda d: kl_model(fisher, d), eps, grad.shape[0])
        constrained.append(solution.step.detach().numpy())
    return PenaltyConstraintComparison(
        np.asarray(budgets, dtype=float),
        np.array(lambdas),
        np.array(closed),
        np.array(penalty),
        np.array(constrained),
    )


# ----------------------------------------------------------------------------------------
# The Taylor models along the natural direction


@dataclass(frozen=True)
class RayAccuracy:
    r"""The two Taylor models along the natural direction from one start.

    The direction :math:`u = F^{-1}g / \sqrt{g^\top F^{-1} g}` has :math:`\frac12 u^\top F u = \frac12`,
    so the step :math:`t u` with :math:`t = \sqrt{2\epsilon}` has model KL :math:`\epsilon`.

    Attributes:
        budgets: the budgets :math:`\epsilon`.
        lengths: :math:`t = \sqrt{2\epsilon}`.
        gain: the true gain :math:`J(\theta + tu) - J(\theta)`.
        predicted: the linear model's gain :math:`t\, g^\top u`.
        kl: the true KL of the step (``divergence``).
        kl_model: the quadratic model :math:`\frac12 t^2 u^\top F u` of it.
        order_j, order_kl: log-log slopes of the two models' errors against :math:`t`, over
            the budgets up to ``fit_below`` (NaN where an error is exactly zero).
    """

    budgets: np.ndarray
    lengths: np.ndarray
    gain: np.ndarray
    predicted: np.ndarray
    kl: np.ndarray
    kl_model: np.ndarray
    order_j: float
    order_kl: float

    @property
    def gain_ratio(self) -> np.ndarray:
        """True gain over predicted gain, per budget."""
        return self.gain / self.predicted

    @property
    def kl_ratio(self) -> np.ndarray:
        """True KL over the budget (the model KL), per budget."""
        return self.kl / self.kl_model


def _order(lengths: np.ndarray, errors: np.ndarray) -> float:
    """The log-log slope of the errors, NaN if some are zero (a model that is exact there)."""
    return fit_loglog_slope(lengths, errors) if np.all(errors > 0) else math.nan


def _exact_kl(policy: Policy, theta: Tensor, direction: Tensor, lengths: np.ndarray) -> np.ndarray:
    return kl_along_ray(policy, theta, direction, lengths).forward


def natural_ray_accuracy(
    bandit: Bandit,
    policy: GaussianPolicy,
    theta: Tensor,
    budgets: Sequence[float] | np.ndarray,
    *,
    fisher: FisherFn = fisher_kl_hessian,
    divergence: Callable[[Policy, Tensor, Tensor, np.ndarray], np.ndarray] = _exact_kl,
    fit_below: float = 1e-3,
) -> RayAccuracy:
    r"""Walk along the natural direction from ``theta`` and compare the truth with both models.

    Args:
        bandit: supplies :math:`J` through ``expected_reward(policy, theta)``.
        policy, theta: the Gaussian policy and the start.
        budgets: the model KLs :math:`\epsilon` of the steps (positive, increasing).
        fisher: how :math:`F(\theta)` is computed (default: the autograd KL Hessian); it sets both
            the direction and the KL model.
        divergence: ``(policy, theta, u, lengths) -> true KL`` (default: the exact KL,
            :func:`~npgbook.experiments.taylor.kl_along_ray`).
        fit_below: the budgets over which the error orders are fitted.
    """
    budgets = np.asarray(budgets, dtype=float)
    lengths = np.sqrt(2 * budgets)

    def objective(th: Tensor) -> Tensor:
        return bandit.expected_reward(policy, th)

    _, g, _ = objective_derivatives(objective, theta)
    f = fisher(policy, theta)
    direction, _ = natural_gradient(g, f)
    u = direction / math.sqrt(float(g @ direction))
    ray = objective_along_ray(objective, theta, u, lengths)
    j0 = float(objective(theta))
    kl = np.asarray(divergence(policy, theta, u, lengths), dtype=float)
    model = 0.5 * float(u @ f @ u) * lengths**2
    fit = budgets <= fit_below
    order_j = _order(lengths[fit], np.abs(ray.value - ray.linear)[fit])
    order_kl = _order(lengths[fit], np.abs(kl - model)[fit])
    return RayAccuracy(budgets, lengths, ray.value - j0, ray.linear - j0, kl, model, order_j, order_kl)


# ----------------------------------------------------------------------------------------
# The Fisher matrix as an expected outer product, and from samples


def score_outer_gap(
    policy: Policy,
    theta: Tensor,
    obs: Tensor | None = None,
    *,
    outer: FisherFn = fisher_score_outer,
    reference: FisherFn = fisher_kl_hessian,
) -> float:
    r"""Largest entrywise gap between ``outer`` and ``reference``, relative to the largest entry of the latter.

    By default: the exact expected score outer product (a sum over all actions, weighted by
    :math:`\pi_\theta`) against the autograd Hessian of the KL, for a discrete policy.
    """
    f = outer(policy, theta, obs)
    ref = reference(policy, theta, obs)
    return float((f - ref).abs().max() / ref.abs().max())


def sample_state_actions(
    policy: Policy, theta: Tensor, states: Tensor | None, n: int, generator: torch.Generator
) -> tuple[Tensor, Tensor | None]:
    """``n`` state-action samples: states uniformly from ``states`` (if any), actions from the policy.

    Returns ``(actions, states of the samples)``; the states are ``None`` for a stateless policy.
    """
    if states is None:
        return sample_actions(policy.distribution(theta), n, generator).reshape(-1), None
    s = states[torch.randint(0, states.shape[0], (n,), generator=generator)]
    return sample_actions(policy.distribution(theta, s), 1, generator).reshape(-1), s


@dataclass(frozen=True)
class SampledFisherConvergence:
    r"""Relative error of a sampled Fisher matrix against the exact one, over seeds and sizes.

    Attributes:
        sizes: the sample sizes :math:`N`.
        errors: :math:`\|\hat F_N - F\|_F / \|F\|_F`, shape ``(seeds, sizes)``.
        rms: the root mean square of ``errors`` over the seeds, per size.
        slope: the log-log slope of ``rms`` against :math:`N` (:math:`-\frac12` for an unbiased estimate).
        slope_se: its standard error from the spread over the seeds (delta method:
            :math:`\mathrm{se}(\log \mathrm{rms}_k) = \frac12\,\mathrm{sd}(e_k^2) / (\sqrt{K}\,\overline{e_k^2})`
            for :math:`K` seeds, propagated through the least-squares weights; sizes are
            independent draws).
        per_seed_slopes: the slope of each seed's errors alone.
        smallest_eigenvalue: the smallest eigenvalue of any estimate, relative to :math:`\|F\|_2`.
    """

    sizes: np.ndarray
    errors: np.ndarray
    rms: np.ndarray
    slope: float
    slope_se: float
    per_seed_slopes: np.ndarray
    smallest_eigenvalue: float


def sampled_fisher_convergence(
    policy: Policy,
    theta: Tensor,
    obs: Tensor | None = None,
    *,
    sizes: Sequence[int] = (10, 32, 100, 316, 1000, 3162),
    n_seeds: int = 20,
    sampler: Sampler = sample_state_actions,
    estimator: FisherFn = fisher_from_samples,
    exact: FisherFn = fisher_kl_hessian,
) -> SampledFisherConvergence:
    r"""Estimate :math:`F` from :math:`N` samples for each size and seed, and measure the error.

    Seed ``k`` draws from ``torch.Generator().manual_seed(k)``, the sizes one after another.

    Args:
        policy, theta, obs: the policy, its parameters and (for a state-dependent policy) the
            states the samples are drawn from.
        sizes: the sample sizes.
        n_seeds: the number of seeds :math:`K`.
        sampler: ``(policy, theta, states, n, generator) -> (actions, states)`` (default:
            :func:`sample_state_actions`, actions from the policy itself).
        estimator: ``(policy, theta, actions, states) -> F_hat`` (default: the score outer
            product, :func:`npgbook.fisher_from_samples`).
        exact: ``(policy, theta, obs) -> F`` (default: the autograd KL Hessian).
    """
    sizes_arr = np.asarray(sizes, dtype=int)
    exact_f = exact(policy, theta, obs)
    scale = float(torch.linalg.eigvalsh(exact_f)[-1])
    errors = np.zeros((n_seeds, sizes_arr.size))
    smallest = math.inf
    for seed in range(n_seeds):
        gen = torch.Generator().manual_seed(seed)
        for k, n in enumerate(sizes_arr):
            actions, states = sampler(policy, theta, obs, int(n), gen)
            estimate = estimator(policy, theta, actions, states)
            errors[seed, k] = float((estimate - exact_f).norm() / exact_f.norm())
            smallest = min(smallest, float(torch.linalg.eigvalsh(estimate)[0]) / scale)
    squared = errors**2
    mean_sq = squared.mean(axis=0)
    rms = np.sqrt(mean_sq)
    se_log = 0.5 * squared.std(axis=0, ddof=1) / (math.sqrt(n_seeds) * mean_sq)
    x = np.log(sizes_arr.astype(float))
    weights = (x - x.mean()) / ((x - x.mean()) ** 2).sum()
    return SampledFisherConvergence(
        sizes_arr,
        errors,
        rms,
        fit_loglog_slope(sizes_arr, rms),
        float(np.sqrt((weights**2 * se_log**2).sum())),
        np.array([fit_loglog_slope(sizes_arr, e) for e in errors]),
        smallest,
    )


# ----------------------------------------------------------------------------------------
# The curvature of J against the Fisher matrix


def _pointwise_hessians(fn: Callable[[Tensor], Tensor], points: Tensor) -> Tensor:
    r"""Hessians of :math:`f_p` at :math:`x_p` for many points at once, by exact autograd.

    ``fn`` maps the points stacked as columns, shape ``(d, P)``, to the values
    :math:`f_p(x_p)`, shape ``(P,)``, where value :math:`p` depends on column :math:`p` only.
    The Hessian of :math:`\sum_p f_p` is then block diagonal, and its :math:`d` row blocks
    come from :math:`d` double-backward passes. Returns shape ``(P, d, d)``.
    """
    x = points.detach().T.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(fn(x).sum(), x, create_graph=True)
    rows = []
    for j in range(x.shape[0]):
        if not g.requires_grad:  # fn is linear: every second derivative is zero
            rows.append(torch.zeros_like(x))
            continue
        (row,) = torch.autograd.grad(
            g[j].sum(), x, retain_graph=True, allow_unused=True, materialize_grads=True
        )
        rows.append(row)
    return torch.stack(rows).permute(2, 0, 1).detach()


def objective_hessians(bandit: Bandit, policy: GaussianPolicy, thetas: Tensor) -> Tensor:
    r""":math:`\nabla^2 J(\theta_p)` of a bandit for a batch of parameters ``thetas``, shape ``(P, 2)``.

    Uses the bandit's unchecked, vectorized ``_expected_reward`` (one column per point).
    """
    return _pointwise_hessians(lambda x: bandit._expected_reward(policy, x), thetas)


def gaussian_kl_hessians(policy: GaussianPolicy, thetas: Tensor) -> Tensor:
    r"""The Fisher matrix at each of ``thetas`` (shape ``(P, 2)``) as the autograd Hessian of the KL.

    :math:`\nabla^2_{\Delta\theta} D_{\mathrm{KL}}(\pi_\theta \| \pi_{\theta+\Delta\theta})` at
    :math:`\Delta\theta = 0`, the computation of :func:`npgbook.fisher_kl_hessian` done for
    all points in one pass (it does not use the closed form of :math:`F`).
    """
    base = thetas.detach().T

    def kl(step: Tensor) -> Tensor:
        old = policy._distribution(base, None)
        return torch.distributions.kl_divergence(old, policy._distribution(base + step, None))

    return _pointwise_hessians(kl, torch.zeros_like(thetas))


@dataclass(frozen=True)
class CurvatureMap:
    r"""The Hessian of :math:`J` and the Fisher matrix over a grid of Gaussian policies.

    Attributes:
        parameterization: ``"sigma"`` or ``"log_sigma"``.
        grid_mu, grid_sigma: the grid.
        classes: per point (rows: :math:`\sigma`, columns: :math:`\mu`), the sign pattern of
            :math:`\nabla^2 J`: ``1`` positive definite (convex), ``-1`` negative definite
            (concave), ``0`` otherwise (indefinite or singular).
        hessian_eigs: per point, the two eigenvalues of :math:`\nabla^2 J`, ascending.
        fisher_min: per point, the smallest eigenvalue of the ``fisher`` matrix relative to its
            largest absolute eigenvalue (:math:`\ge 0` for a positive semi-definite matrix).
    """

    parameterization: str
    grid_mu: np.ndarray
    grid_sigma: np.ndarray
    classes: np.ndarray
    hessian_eigs: np.ndarray
    fisher_min: np.ndarray

    @property
    def indefinite(self) -> np.ndarray:
        """Per point, whether :math:`\nabla^2 J` has eigenvalues of both signs (a saddle)."""
        return (self.hessian_eigs[..., 0] < 0) & (self.hessian_eigs[..., 1] > 0)

    def share(self, pattern: int) -> float:
        """The share of grid points with sign pattern ``pattern`` (1, 0 or -1)."""
        return float(np.mean(self.classes == pattern))


def curvature_map(
    bandit: Bandit,
    parameterization: str,
    grid_mu: Sequence[float] | np.ndarray,
    grid_sigma: Sequence[float] | np.ndarray,
    *,
    fisher: Callable[[GaussianPolicy, Tensor], Tensor] = gaussian_kl_hessians,
) -> CurvatureMap:
    r"""At every grid point: the eigenvalues of :math:`\nabla^2 J` and the smallest one of :math:`F`.

    Args:
        bandit: supplies :math:`J` through its vectorized ``_expected_reward(policy, theta)``.
        parameterization: the Gaussian's parameterization.
        grid_mu, grid_sigma: the grid of means and standard deviations.
        fisher: ``(policy, thetas) -> matrices``, shapes ``(P, 2)`` and ``(P, 2, 2)``
            (default: the autograd KL Hessian, :func:`gaussian_kl_hessians`).
    """
    policy = GaussianPolicy(parameterization)  # type: ignore[arg-type]
    mus, sigmas = np.asarray(grid_mu, dtype=float), np.asarray(grid_sigma, dtype=float)
    thetas = torch.stack(
        [policy.params(float(m), float(s)) for s in sigmas for m in mus]
    )  # row-major: sigma outer, mu inner
    shape = (sigmas.size, mus.size)
    eig_h = torch.linalg.eigvalsh(objective_hessians(bandit, policy, thetas))
    eig_f = torch.linalg.eigvalsh(fisher(policy, thetas))
    lo, hi = eig_h[:, 0].numpy(), eig_h[:, -1].numpy()
    classes = np.where(lo > 0, 1, np.where(hi < 0, -1, 0)).reshape(shape)
    fisher_min = (eig_f[:, 0] / eig_f.abs().amax(dim=1)).numpy().reshape(shape)
    return CurvatureMap(parameterization, mus, sigmas, classes, eig_h.numpy().reshape(*shape, 2), fisher_min)


# ----------------------------------------------------------------------------------------
# What the routes to the Fisher matrix cost, counted


@dataclass(frozen=True)
class FisherFlops:
    r"""Floating-point operations of matrix products for each route to :math:`F`, counted exactly.

    Counted by :class:`torch.utils.flop_counter.FlopCounterMode` (two per multiply-add, matrix
    products only: for an MLP they are nearly all the arithmetic). The counts follow from the
    tensor shapes alone, so they are the same on every machine, unlike timings.

    Attributes:
        n_params: :math:`n`.
        n_states: :math:`N`.
        hessian: dense :math:`F` as the autograd Hessian of the KL (:func:`npgbook.fisher_kl_hessian`).
        score_outer: dense :math:`F` as the exact expected score outer product
            (:func:`npgbook.fisher_score_outer`).
        scores: the :math:`N` per-sample scores of one sampled action per state
            (:func:`npgbook.score_vectors`).
        sampled: :math:`\hat F` from those scores (:func:`npgbook.fisher_from_samples`: the scores
            and their outer product).
        batch_gradient: one ordinary policy gradient, the backward pass of the batch mean of
            :math:`\log\pi_\theta(a_i\mid s_i)`.
        values_scores, values_batch_gradient: how many numbers the per-sample scores and the
            batch gradient hold (:math:`Nn` and :math:`n`).
    """

    n_params: int
    n_states: int
    hessian: int
    score_outer: int
    scores: int
    sampled: int
    batch_gradient: int
    values_scores: int
    values_batch_gradient: int


def _counted(run: Callable[[], Tensor]) -> tuple[Tensor, int]:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        result = run()
    return result, int(counter.get_total_flops())


def count_fisher_flops(policy: Policy, theta: Tensor, obs: Tensor, generator: torch.Generator) -> FisherFlops:
    r"""Count the matrix-product operations of each route to :math:`F` (see :class:`FisherFlops`).

    The routes are those that :func:`npgbook.experiments.cost.measure_fisher_cost` times; the
    sampled actions (one per state) come from ``generator``.
    """
    from ..fisher import score_vectors

    theta = policy.check_theta(theta).detach()
    obs = policy.check_obs(obs)
    actions = sample_actions(policy.distribution(theta, obs), 1, generator).reshape(-1)

    def batch_gradient() -> Tensor:
        leaf = theta.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(policy.log_prob(leaf, actions, obs).mean(), leaf)
        return grad

    _, hessian = _counted(lambda: fisher_kl_hessian(policy, theta, obs))
    _, outer = _counted(lambda: fisher_score_outer(policy, theta, obs))
    scores_t, scores = _counted(lambda: score_vectors(policy, theta, actions, obs))
    _, sampled = _counted(lambda: fisher_from_samples(policy, theta, actions, obs))
    grad_t, batch = _counted(batch_gradient)
    return FisherFlops(
        policy.n_params,
        obs.shape[0],
        hessian,
        outer,
        scores,
        sampled,
        batch,
        scores_t.numel(),
        grad_t.numel(),
    )


# ----------------------------------------------------------------------------------------
# The relaxed problem solved by a generic optimizer (chapter 5 solves it by hand)


def numeric_penalty_maximizer(grad: Tensor, fisher: Tensor, lam: float) -> Tensor:
    r"""Maximize :math:`L_\lambda(\Delta\theta) = g^\top\Delta\theta - \lambda\,\tfrac12\Delta\theta^\top F\Delta\theta` numerically.

    A black-box solution: scipy's BFGS (gradient tolerance :math:`10^{-13}`) on
    :func:`~npgbook.experiments.taylor.penalty_objective`, with the gradient from autograd, starting
    at the zero step. It uses no formula for the maximizer, so chapter 4 can look at the relaxed
    problem's solutions before chapter 5 derives them (they agree with
    :func:`~npgbook.experiments.taylor.penalty_maximizer`, the closed form :math:`F^{-1}g/\lambda`).

    Args:
        grad: :math:`g`, shape ``(n,)``.
        fisher: :math:`F`, dense, shape ``(n, n)``, positive definite.
        lam: the multiplier :math:`\lambda > 0`.
    """
    from scipy.optimize import minimize

    from .._checks import require_positive
    from .taylor import penalty_objective

    lam = require_positive("lam", lam)
    grad = torch.as_tensor(grad, dtype=torch.float64)
    fisher = torch.as_tensor(fisher, dtype=torch.float64)

    def negative(x: np.ndarray) -> tuple[float, np.ndarray]:
        step = torch.from_numpy(x).requires_grad_(True)
        value = -penalty_objective(grad, fisher, step, lam, 1.0)
        (dvalue,) = torch.autograd.grad(value, step)
        return float(value.detach()), dvalue.numpy()

    result = minimize(negative, np.zeros(grad.shape[0]), jac=True, method="BFGS", options={"gtol": 1e-13})
    return torch.from_numpy(result.x)


def numeric_dual(
    grad: Tensor,
    fisher: Tensor,
    lam: float,
    epsilon: float,
    j_old: float = 0.0,
    *,
    maximizer: Callable[[Tensor, Tensor, float], Tensor] = numeric_penalty_maximizer,
) -> float:
    r"""The dual function :math:`d(\lambda) = \max_{\Delta\theta} L_\lambda(\Delta\theta)`, maximized numerically.

    :math:`L_\lambda(\Delta\theta) = J(\theta) + g^\top\Delta\theta - \lambda(\tfrac12\Delta\theta^\top F\Delta\theta - \epsilon)`
    evaluated at ``maximizer(g, F, lam)`` (default :func:`numeric_penalty_maximizer`).
    """
    from .taylor import penalty_objective

    step = maximizer(grad, fisher, lam)
    return float(penalty_objective(grad, fisher, step, lam, epsilon, j_old))


def numeric_multiplier(
    grad: Tensor,
    fisher: Tensor,
    epsilon: float,
    *,
    maximizer: Callable[[Tensor, Tensor, float], Tensor] = numeric_penalty_maximizer,
) -> float:
    r"""The multiplier :math:`\lambda^*` whose penalty maximizer spends exactly the budget :math:`\epsilon`.

    Root finding (:func:`scipy.optimize.brentq` in :math:`\log\lambda`, tolerance :math:`10^{-14}`)
    on :math:`\tfrac12\Delta\theta(\lambda)^\top F\Delta\theta(\lambda) - \epsilon`, with
    :math:`\Delta\theta(\lambda)` from ``maximizer`` (default: the numerical one), after bracketing
    by factors of 10. Needs no formula for :math:`\Delta\theta(\lambda)`; it assumes only that the
    KL of the maximizer falls as the price :math:`\lambda` rises.

    Raises:
        ValueError: if ``epsilon`` is not positive or no bracket is found.
    """
    from scipy.optimize import brentq

    from .._checks import require_positive

    epsilon = require_positive("epsilon", epsilon)

    def excess(log_lam: float) -> float:
        return float(kl_model(fisher, maximizer(grad, fisher, math.exp(log_lam)))) - epsilon

    lo, hi = -1.0, 1.0
    for _ in range(60):
        if excess(lo) > 0:
            break
        lo -= math.log(10.0)
    for _ in range(60):
        if excess(hi) < 0:
            break
        hi += math.log(10.0)
    if not (excess(lo) > 0 > excess(hi)):
        raise ValueError("epsilon: no multiplier spends this budget (is grad zero?)")
    return math.exp(brentq(excess, lo, hi, xtol=1e-14, rtol=1e-14))


# ----------------------------------------------------------------------------------------
# The exact mean squared error of the sampled Fisher matrix


def sampled_fisher_mse(policy: Policy, theta: Tensor, obs: Tensor | None = None, *, nodes: int = 20) -> float:
    r"""The constant :math:`c` in :math:`\mathbb E\|\hat F_N - F\|_F^2 / \|F\|_F^2 = c/N`, computed exactly.

    For :math:`\hat F_N = \frac1N\sum_i\psi_i\psi_i^\top` with independent samples,
    :math:`\mathbb E\|\hat F_N - F\|_F^2 = \frac1N\,\mathbb E\|\psi\psi^\top - F\|_F^2`, an expectation
    over one state-action pair. For a discrete policy it is a finite sum over the actions (and over
    the states of ``obs``, each weighted :math:`1/|\text{obs}|`, as
    :func:`sample_state_actions` draws them); for a Gaussian policy it is Gauss–Hermite quadrature
    with ``nodes`` nodes, exact for the polynomial of degree 8 in :math:`z = (a-\mu)/\sigma` that
    the integrand is. The root :math:`\sqrt{c/N}` is the RMS relative error that
    :func:`sampled_fisher_convergence` estimates from seeds.

    Args:
        policy, theta, obs: the policy, its parameters, the states (``None`` if stateless).
        nodes: quadrature nodes for a Gaussian policy (at least 5).
    """
    from .._checks import require_int
    from ..fisher import score_vectors

    nodes = require_int("nodes", nodes, minimum=5)
    theta = policy.check_theta(theta).detach()
    exact_f = fisher_kl_hessian(policy, theta, obs)
    if policy.discrete:
        probs = policy.distribution(theta, obs).probs  # (K,) or (S, K)
        k = int(probs.shape[-1])
        if obs is None:
            actions, states, weights = torch.arange(k), None, probs
        else:
            s = obs.shape[0]
            actions = torch.arange(k).repeat(s)
            states = obs.repeat_interleave(k, dim=0)
            weights = probs.reshape(-1) / s
    elif isinstance(policy, GaussianPolicy) and obs is None:
        z, w = np.polynomial.hermite_e.hermegauss(nodes)
        mu, sigma = policy.mean_std(theta)
        actions = mu + sigma * torch.from_numpy(z)
        states, weights = None, torch.from_numpy(w / w.sum())
    else:
        raise ValueError("policy must be discrete or a stateless GaussianPolicy")
    scores = score_vectors(policy, theta, actions, states)
    outer = scores[:, :, None] * scores[:, None, :] - exact_f
    return float((weights * (outer**2).sum(dim=(1, 2))).sum() / (exact_f**2).sum())


# ----------------------------------------------------------------------------------------
# The Fisher-vector product: what building the operator and one product cost


@dataclass(frozen=True)
class FVPCost:
    r"""Cost of the Fisher-vector product (:func:`npgbook.fisher_vector_product`) for one network.

    Attributes:
        n_params: :math:`n`.
        n_states: :math:`N`.
        flops_setup, flops_product: matrix-product operations (counted, as in
            :class:`FisherFlops`) of building the operator (forward pass and first backward pass)
            and of one product (the second backward pass).
        flops_gradient: those of one ordinary policy gradient on the same batch.
        seconds_setup, seconds_product, seconds_gradient: their CPU times (one thread, best of
            several calls); machine-dependent.
        bytes_graph: bytes of the autograd graph the operator keeps between products.
    """

    n_params: int
    n_states: int
    flops_setup: int
    flops_product: int
    flops_gradient: int
    seconds_setup: float
    seconds_product: float
    seconds_gradient: float
    bytes_graph: int


def fvp_cost(
    policy: Policy, theta: Tensor, obs: Tensor, generator: torch.Generator, repeats: int = 3
) -> FVPCost:
    r"""Count and time building :func:`npgbook.fisher_vector_product` and one product with it.

    Counting uses :class:`torch.utils.flop_counter.FlopCounterMode` (shapes only, the same on
    every machine). Timing is CPU seconds on one thread (restored afterwards), the best of at
    least ``repeats`` calls (more for fast ones), via
    :func:`npgbook.experiments.cost.measure_fisher_cost`'s timer; the probe vector and the
    sampled actions of the policy gradient come from ``generator``.
    """
    from .._checks import require_int
    from ..fisher import fisher_vector_product
    from .cost import _best_time, saved_graph_bytes

    repeats = require_int("repeats", repeats)
    theta = policy.check_theta(theta).detach()
    obs = policy.check_obs(obs)
    if obs is None:
        raise ValueError("obs is required: fvp_cost is for state-dependent policies")
    actions = sample_actions(policy.distribution(theta, obs), 1, generator).reshape(-1)
    probe = torch.randn(policy.n_params, generator=generator, dtype=theta.dtype)

    def build() -> Callable[[Tensor], Tensor]:
        return fisher_vector_product(policy, theta, obs)

    def gradient() -> Tensor:
        leaf = theta.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(policy.log_prob(leaf, actions, obs).mean(), leaf)
        return g

    fvp, flops_setup = _counted(build)  # type: ignore[arg-type]
    _, flops_product = _counted(lambda: fvp(probe))
    _, flops_gradient = _counted(gradient)
    _, n_bytes = saved_graph_bytes(build)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        seconds = (
            _best_time(build, repeats),
            _best_time(lambda: fvp(probe), repeats),
            _best_time(gradient, repeats),
        )
    finally:
        torch.set_num_threads(threads)
    return FVPCost(policy.n_params, obs.shape[0], flops_setup, flops_product, flops_gradient, *seconds, n_bytes)
