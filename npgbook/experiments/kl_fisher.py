r"""Chapter 3's experiments: the KL divergence, its quadratic model and the Fisher metric (§3).

Each function returns the numbers one of the chapter's checks decides from, so that the
chapter and its claims in :mod:`npgbook.claims.ch03_kl_and_fisher` share one computation:

* :func:`book_policies` -- the chapter's four policy families at the chapter's points;
* :func:`independent_fisher` -- :math:`F(\theta)` by a route that does not differentiate the KL
  (closed forms, or the exact expected score outer product);
* :func:`fisher_routes` -- the KL Hessian at :math:`\Delta\theta = 0` against that Fisher matrix,
  with the KL and its gradient at 0;
* :func:`kl_rays` -- the KL in both directions and the model :math:`\frac12\Delta\theta^\top F\Delta\theta`
  along random rays, with the log-log slopes of the model error and of the asymmetry;
* :func:`policy_kl_from_samples`, :func:`sampled_kl_study` -- the KL of a state-dependent policy
  estimated from sampled states and actions, against its exact value;
* :func:`natural_vs_vanilla` -- the natural direction of one coordinate system, mapped into
  another, against the vanilla gradient there;
* :func:`kl_over_half_squared_length` -- :math:`D_{\mathrm{KL}} / (\frac12\|\Delta\theta'\|^2)` in given
  coordinates, which is 1 to second order exactly when the metric there is :math:`I`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..divergences import MonteCarloEstimate, policy_kl
from ..fisher import fisher_categorical, fisher_gaussian, fisher_kl_hessian, fisher_score_outer
from ..natural import natural_gradient
from ..policies import CategoricalPolicy, GaussianPolicy, MLPCategoricalPolicy, Policy, sample_actions
from ..problems import envs
from .taylor import KLRay, fit_loglog_slope

Case = tuple[Policy, Tensor, "Tensor | None"]
FisherFn = Callable[[Policy, Tensor, "Tensor | None"], Tensor]
Divergence = Callable[[Policy, Tensor, Tensor, "Tensor | None"], Tensor]


def book_policies(n_states: int = 512) -> dict[str, Case]:
    r"""Chapter 3's policies and points: ``name -> (policy, theta, obs)``.

    A Gaussian :math:`\mathcal N(0.5, 0.8^2)` in :math:`(\mu,\sigma)` and in :math:`(\mu,\log\sigma)`, a
    softmax over four logits drawn with seed 0, and a tanh MLP (one hidden layer of 16 units,
    114 parameters) on ``n_states`` CartPole states visited by a random policy (seed 0).
    Built in the current default dtype (the chapter and the checks use float64).
    """
    gauss, gauss_log = GaussianPolicy("sigma"), GaussianPolicy("log_sigma")
    obs = envs.cartpole_observations(n_states, seed=0).to(torch.get_default_dtype())
    mlp = MLPCategoricalPolicy(obs_dim=4, n_actions=2, hidden=(16,))
    return {
        "Gaussian (μ, σ)": (gauss, gauss.params(0.5, 0.8), None),
        "Gaussian (μ, log σ)": (gauss_log, gauss_log.params(0.5, 0.8), None),
        "categorical": (
            CategoricalPolicy(4),
            torch.randn(4, generator=torch.Generator().manual_seed(0)),
            None,
        ),
        "MLP on CartPole": (mlp, mlp.initial_params(seed=0, last_layer_scale=1.0), obs),
    }


def independent_fisher(policy: Policy, theta: Tensor, obs: Tensor | None = None) -> Tensor:
    r""":math:`F(\theta)` without differentiating the KL.

    The closed forms :func:`npgbook.fisher_gaussian` and :func:`npgbook.fisher_categorical` for the
    stateless families; for a discrete state-dependent policy the expected score outer product
    :func:`npgbook.fisher_score_outer`, summed exactly over the actions (one backward pass per
    state and action, no second derivatives).

    Raises:
        TypeError: for a continuous state-dependent policy (its score sum is not exact).
    """
    if isinstance(policy, GaussianPolicy) and obs is None:
        mu, sigma = (float(x) for x in policy.mean_std(theta))
        return fisher_gaussian(mu, sigma, policy.parameterization)
    if isinstance(policy, CategoricalPolicy) and obs is None:
        return fisher_categorical(theta)
    if policy.discrete:
        return fisher_score_outer(policy, theta, obs)
    raise TypeError(f"no exact independent Fisher matrix for {type(policy).__name__} with states")


@dataclass(frozen=True)
class FisherRoutes:
    """The KL Hessian against the independent Fisher matrix, per family.

    Attributes:
        gaps: the largest entrywise :math:`|\\nabla^2 D_{KL}(0) - F|`.
        kl_at_zero: :math:`|D_{KL}|` at :math:`\\Delta\\theta = 0`.
        grad_at_zero: the largest :math:`|\\partial D_{KL}/\\partial\\Delta\\theta_i|` at 0.
        n_params: the number of parameters of each family.
    """

    gaps: dict[str, float]
    kl_at_zero: dict[str, float]
    grad_at_zero: dict[str, float]
    n_params: dict[str, int]

    @property
    def worst(self) -> float:
        """The largest of all gaps, |KL| and |∇KL| values."""
        return max(*self.gaps.values(), *self.kl_at_zero.values(), *self.grad_at_zero.values())


def fisher_routes(
    cases: dict[str, Case],
    *,
    hessian: FisherFn = fisher_kl_hessian,
    fisher: FisherFn = independent_fisher,
) -> FisherRoutes:
    r"""Compare ``hessian`` (default: the autograd Hessian of the KL at 0) with ``fisher``."""
    gaps, kl0, grad0, sizes = {}, {}, {}, {}
    for name, (policy, theta, obs) in cases.items():
        gaps[name] = float((hessian(policy, theta, obs) - fisher(policy, theta, obs)).abs().max())
        delta = torch.zeros_like(theta, requires_grad=True)
        kl = policy_kl(policy, theta, theta + delta, obs)
        (grad,) = torch.autograd.grad(kl, delta)
        kl0[name], grad0[name] = abs(float(kl.detach())), float(grad.abs().max())
        sizes[name] = policy.n_params
    return FisherRoutes(gaps, kl0, grad0, sizes)


@dataclass(frozen=True)
class RayStudy:
    r"""The KL and its quadratic model along random rays :math:`\theta + t u`, per family and seed.

    Attributes:
        rays: ``(family, seed) -> KLRay`` (forward and reverse KL, and the model with the
            independent Fisher matrix).
        model_slopes: per family, the log-log slopes of :math:`|D_{KL} - \frac12 t^2 u^\top F u|`.
        asymmetry_slopes: per family, the slopes of :math:`|D_{KL}(\pi\|\pi') - D_{KL}(\pi'\|\pi)|`
            on the rays where that difference keeps its sign (through a zero crossing a slope
            means nothing).
        sign_changes: per family, the seeds whose asymmetry changes sign along the ray.
        model_relative: the largest relative model error at the smallest length.
        asymmetry_relative: the largest relative asymmetry at the smallest length.
    """

    rays: dict[tuple[str, int], KLRay]
    model_slopes: dict[str, list[float]]
    asymmetry_slopes: dict[str, list[float]]
    sign_changes: dict[str, list[int]]
    model_relative: float
    asymmetry_relative: float


def _positive(values: np.ndarray) -> np.ndarray:
    """``values`` with exact zeros replaced by the smallest positive float (for log-log fits)."""
    return np.where(values > 0, values, np.finfo(float).tiny)


def kl_rays(
    cases: dict[str, Case],
    lengths: Sequence[float] | np.ndarray,
    seeds: Sequence[int] = range(5),
    *,
    fisher: FisherFn = independent_fisher,
    divergence: Divergence = policy_kl,
) -> RayStudy:
    r"""KL both ways and :math:`\frac12 t^2 u^\top F u` along unit directions :math:`u` (one per seed).

    Args:
        cases: ``name -> (policy, theta, obs)``, e.g. :func:`book_policies`.
        lengths: the step lengths :math:`t`.
        seeds: each seed draws one standard normal direction, normalized to length 1.
        fisher: the matrix of the model (default :func:`independent_fisher`: not the KL Hessian,
            so the model error tests that the Fisher matrix is the KL's curvature).
        divergence: ``(policy, theta, theta_new, obs) -> D(π_theta ‖ π_theta_new)``.
    """
    ts = np.asarray(lengths, dtype=float)
    rays: dict[tuple[str, int], KLRay] = {}
    model_slopes: dict[str, list[float]] = {}
    asym_slopes: dict[str, list[float]] = {}
    sign_changes: dict[str, list[int]] = {}
    model_rel, asym_rel = 0.0, 0.0
    for name, (policy, theta, obs) in cases.items():
        matrix = fisher(policy, theta, obs)
        model_slopes[name], asym_slopes[name], sign_changes[name] = [], [], []
        for seed in seeds:
            u = torch.randn(policy.n_params, generator=torch.Generator().manual_seed(seed))
            u = (u / u.norm()).to(theta.dtype)
            forward, reverse = [], []
            with torch.no_grad():
                for t in ts:
                    moved = theta + float(t) * u
                    forward.append(float(divergence(policy, theta, moved, obs)))
                    reverse.append(float(divergence(policy, moved, theta, obs)))
            quad = 0.5 * float(u @ matrix.to(u.dtype) @ u) * ts**2
            ray = KLRay(ts, np.array(forward), np.array(reverse), quad)
            rays[name, seed] = ray
            error, asym = ray.forward - ray.quadratic, ray.forward - ray.reverse
            model_slopes[name].append(fit_loglog_slope(ts, _positive(np.abs(error))))
            if np.any(np.sign(asym) != np.sign(asym[0])):
                sign_changes[name].append(seed)
            else:
                asym_slopes[name].append(fit_loglog_slope(ts, _positive(np.abs(asym))))
            model_rel = max(model_rel, float(abs(error[0]) / abs(ray.forward[0])))
            asym_rel = max(asym_rel, float(abs(asym[0]) / abs(ray.forward[0])))
    return RayStudy(rays, model_slopes, asym_slopes, sign_changes, model_rel, asym_rel)


# ----------------------------------------------------------------------------------------
# The KL from samples


def policy_kl_from_samples(
    policy: Policy,
    theta: Tensor,
    theta_new: Tensor,
    obs: Tensor,
    n_samples: int,
    generator: torch.Generator,
) -> MonteCarloEstimate:
    r"""Estimate :math:`\bar D_{KL}(\theta\|\theta')` from ``n_samples`` sampled states and actions.

    Draws state indices uniformly from ``obs`` and one action per drawn state from the *old*
    policy, :math:`a_k \sim \pi_\theta(\cdot\mid s_k)`, and averages the log-ratios
    :math:`\log\pi_\theta(a_k\mid s_k) - \log\pi_{\theta'}(a_k\mid s_k)` -- the estimator of
    :func:`npgbook.kl_monte_carlo`, applied to the joint distribution of state and action. It is
    unbiased for the state-averaged KL of :func:`npgbook.policy_kl` on ``obs``, and evaluates the
    two policies only at the sampled pairs.
    """
    n = int(n_samples)
    if n < 2:
        raise ValueError(f"n_samples must be at least 2, got {n_samples}")
    index = torch.randint(obs.shape[0], (n,), generator=generator)
    states = obs[index]
    old = policy.distribution(theta, states)
    actions = sample_actions(old, 1, generator)[0]
    log_ratio = old.log_prob(actions) - policy.distribution(theta_new, states).log_prob(actions)
    return MonteCarloEstimate(
        value=float(log_ratio.mean()),
        std_error=float(log_ratio.std()) / math.sqrt(n),
        n_samples=n,
    )


Estimator = Callable[[Policy, Tensor, Tensor, Tensor, int, torch.Generator], MonteCarloEstimate]


@dataclass(frozen=True)
class SampledKLStudy:
    r"""Repeated sample estimates of a state-averaged KL against its exact value.

    Attributes:
        exact: :func:`npgbook.policy_kl` over all states (every state-action pair evaluated).
        n_pairs: how many state-action pairs the exact value evaluates.
        sizes: the sample sizes :math:`N`.
        estimates: shape ``(len(sizes), n_seeds)``.
        bias_z: per size, (mean of the estimates − exact) over its standard error
            (spread over seeds / √seeds): within a few units if the estimator is unbiased.
        rms_error: per size, the root-mean-square error over seeds.
        rms_slope: the log-log slope of ``rms_error`` against :math:`N` (:math:`-\frac12` for an
            unbiased estimator with finite variance).
    """

    exact: float
    n_pairs: int
    sizes: np.ndarray
    estimates: np.ndarray
    bias_z: np.ndarray
    rms_error: np.ndarray
    rms_slope: float


def book_step(policy: Policy, theta: Tensor, length: float = 1.0, seed: int = 0) -> Tensor:
    r"""The new parameters :math:`\theta + t u` of chapter 3's sampled-KL experiment.

    :math:`u` is a standard normal direction (``seed``) of unit length; with :math:`t = 1` the
    MLP's KL is about 0.0085, the size of a typical trust region.
    """
    u = torch.randn(policy.n_params, generator=torch.Generator().manual_seed(seed)).to(theta.dtype)
    return theta + float(length) * u / u.norm()


def sampled_kl_study(
    policy: Policy,
    theta: Tensor,
    theta_new: Tensor,
    obs: Tensor,
    sizes: Sequence[int] = (64, 256, 1024, 4096),
    n_seeds: int = 100,
    *,
    estimator: Estimator = policy_kl_from_samples,
) -> SampledKLStudy:
    """Run ``estimator`` ``n_seeds`` times (seeds 0, 1, ...) at each sample size; compare with the exact KL."""
    exact = float(policy_kl(policy, theta, theta_new, obs))
    n_pairs = obs.shape[0] * (policy.n_actions if policy.discrete else 0)
    ns = np.asarray(sizes, dtype=int)
    estimates = np.array(
        [
            [
                estimator(policy, theta, theta_new, obs, int(n), torch.Generator().manual_seed(seed)).value
                for seed in range(n_seeds)
            ]
            for n in ns
        ]
    )
    errors = estimates - exact
    bias_z = errors.mean(1) / (estimates.std(1, ddof=1) / math.sqrt(n_seeds))
    rms = np.sqrt((errors**2).mean(1))
    return SampledKLStudy(exact, n_pairs, ns, estimates, bias_z, rms, fit_loglog_slope(ns, rms))


# ----------------------------------------------------------------------------------------
# Coordinates in which F = I


@dataclass(frozen=True)
class CoordinateComparison:
    r"""The natural direction of :math:`\theta`, seen in new coordinates :math:`\theta'`, and the vanilla gradient there.

    Attributes:
        theta: the point in the original coordinates, :math:`\phi(\theta')`.
        fisher_new: :math:`F'`, the Hessian in :math:`\theta'` of
            :math:`D_{KL}(\pi_{\phi(\theta')}\|\pi_{\phi(\theta'+\delta)})` at :math:`\delta = 0`, by autograd
            (it does not use the Fisher matrix of the original coordinates).
        natural_mapped: :math:`J^{-1}F(\theta)^{-1}\nabla_\theta J`, with :math:`J = \partial\theta/\partial\theta'`:
            the natural direction of the original coordinates, in :math:`\theta'`-components.
        vanilla_new: :math:`\nabla_{\theta'} J(\phi(\theta'))`, by autograd through the map.
    """

    theta: Tensor
    fisher_new: Tensor
    natural_mapped: Tensor
    vanilla_new: Tensor

    @property
    def metric_gap(self) -> float:
        """The largest entry of :math:`|F' - I|`."""
        eye = torch.eye(self.fisher_new.shape[0], dtype=self.fisher_new.dtype)
        return float((self.fisher_new - eye).abs().max())

    @property
    def direction_gap(self) -> float:
        """The largest entry of :math:`|J^{-1}F^{-1}g - g'|`."""
        return float((self.natural_mapped - self.vanilla_new).abs().max())


def natural_vs_vanilla(
    policy: Policy,
    objective: Callable[[Tensor], Tensor],
    to_theta: Callable[[Tensor], Tensor],
    theta_new: Tensor,
    fisher: Callable[[Tensor], Tensor],
) -> CoordinateComparison:
    r"""Map the natural gradient of the coordinates :math:`\theta` into :math:`\theta' = \phi^{-1}(\theta)`.

    Args:
        policy: the policy in the original coordinates :math:`\theta`.
        objective: :math:`\theta \mapsto J(\theta)`, differentiable.
        to_theta: the map :math:`\phi: \theta' \mapsto \theta`, differentiable.
        theta_new: the point :math:`\theta'`.
        fisher: :math:`\theta \mapsto F(\theta)` in the original coordinates.

    The two vectors agree exactly when :math:`F(\theta)^{-1} = J J^\top`, that is when
    :math:`F' = J^\top F J = I`: where the metric of the new coordinates is the identity, the
    natural gradient is their vanilla gradient. A wrong Jacobian or a wrong ``fisher`` breaks it.
    """
    theta_new = theta_new.detach()
    theta = to_theta(theta_new).detach()
    jac = torch.autograd.functional.jacobian(to_theta, theta_new)
    grad = torch.func.grad(objective)(theta)
    natural, _ = natural_gradient(grad, fisher(theta))
    vanilla = torch.func.grad(lambda v: objective(to_theta(v)))(theta_new)

    def kl_of_step(delta: Tensor) -> Tensor:
        return policy_kl(policy, theta, to_theta(theta_new + delta))

    fisher_new = torch.autograd.functional.hessian(kl_of_step, torch.zeros_like(theta_new))
    return CoordinateComparison(theta, fisher_new, torch.linalg.solve(jac, natural), vanilla)


@dataclass(frozen=True)
class EuclideanComparison:
    r"""The exact KL of steps :math:`\Delta\theta = J\,t\,u` against :math:`\frac12\|t u\|^2 = \frac12 t^2`.

    Attributes:
        lengths: the step lengths :math:`t` in the new coordinates.
        directions: the unit directions :math:`u`, shape ``(k, n)``.
        ratio: :math:`D_{KL}(\pi_\theta\|\pi_{\theta+Jtu}) / (\frac12 t^2)`, shape ``(len(lengths), k)``.
    """

    lengths: np.ndarray
    directions: Tensor
    ratio: np.ndarray

    def deviation(self) -> np.ndarray:
        """Per length, the largest :math:`|\\text{ratio} - 1|` over the directions."""
        return np.abs(self.ratio - 1.0).max(axis=1)


def circle_directions(n: int) -> Tensor:
    """``n`` unit vectors of the plane at equally spaced angles, starting along the first axis."""
    angles = torch.arange(n, dtype=torch.get_default_dtype()) * (2 * math.pi / n)
    return torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)


def kl_over_half_squared_length(
    policy: Policy,
    theta: Tensor,
    jacobian: Tensor,
    lengths: Sequence[float] | np.ndarray,
    directions: Tensor,
    obs: Tensor | None = None,
) -> EuclideanComparison:
    r"""The KL of steps of Euclidean length :math:`t` in the coordinates :math:`\theta = \theta_0 + J\theta'`.

    If the metric of those coordinates is :math:`I` at :math:`\theta_0`, the ratio tends to 1 as
    :math:`t \to 0`, with an error of order :math:`t` (the KL's cubic term over its quadratic one).
    """
    ts = np.asarray(lengths, dtype=float)
    jac = jacobian.to(theta.dtype)
    with torch.no_grad():
        ratio = np.array(
            [
                [
                    float(policy_kl(policy, theta, theta + jac @ (float(t) * u), obs)) / (0.5 * t**2)
                    for u in directions
                ]
                for t in ts
            ]
        )
    return EuclideanComparison(ts, directions, ratio)
