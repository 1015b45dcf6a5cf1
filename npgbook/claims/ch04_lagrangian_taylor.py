"""The claims checked in chapter 4 (§4: Lagrangian relaxation and Taylor expansion).

Every check calls the experiment functions of :mod:`npgbook.experiments.lagrangian` with the
chapter's setup, the same calls whose numbers the chapter prints.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from ..experiments import lagrangian
from ..fisher import fisher_from_samples, fisher_kl_hessian, fisher_score_outer
from ..policies import CategoricalPolicy, GaussianPolicy, MLPCategoricalPolicy, Policy
from ..problems import envs
from ._benches import _BANDIT
from ._registry import Verdict, _bound, _float64, _fmt, claim, decide, grade

# ----------------------------------------------------------------------------------------
# The chapter's setup (chapter 4 builds the same objects in its first cells)

BUDGETS = (0.005, 0.02, 0.08)
"""The KL budgets of the penalty-against-constraint comparison."""

STARTS = {"tail": (0.0, 0.5), "flank": (1.0, 0.5), "top": (1.8, 0.3)}
"""The three starting points (μ, σ) of the Taylor-model comparison."""

RAY_BUDGETS = tuple(np.logspace(-5, 0, 21))
"""The budgets ε along the natural direction."""

GRID_MU = tuple(np.linspace(-1.0, 4.0, 26))
GRID_SIGMA = tuple(np.logspace(-1, math.log10(2.0), 20))
"""The grid of the curvature map."""

COST_WIDTH = 32
"""Width of the two hidden layers of the largest network of the cost comparison (n = 1282)."""


@functools.cache
def _flank() -> tuple[GaussianPolicy, Tensor, Tensor, Tensor]:
    """The bandit's policy in (μ, log σ) at θ_old = (1, log 0.5), its exact gradient and Fisher matrix."""
    with _float64():
        policy = GaussianPolicy("log_sigma")
        theta = policy.params(1.0, 0.5)
        return policy, theta, _BANDIT.exact_gradient(policy, theta), fisher_kl_hessian(policy, theta)


@functools.cache
def _families() -> tuple[tuple[str, Policy, Tensor, Tensor | None], ...]:
    """The three policies of the sampled-Fisher section: Gaussian, categorical, MLP on CartPole."""
    with _float64():
        policy, theta, _, _ = _flank()
        cat = CategoricalPolicy(4)
        logits = torch.randn(4, generator=torch.Generator().manual_seed(0))
        obs = envs.cartpole_observations(512, seed=0)
        mlp = MLPCategoricalPolicy(obs_dim=4, n_actions=2, hidden=(16,))
        theta_mlp = mlp.initial_params(seed=0, last_layer_scale=1.0)
        return (
            ("Gaussian", policy, theta, None),
            ("categorical", cat, logits, None),
            ("MLP", mlp, theta_mlp, obs),
        )


def _convergence(
    families: Sequence[tuple[str, Policy, Tensor, Tensor | None]] | None,
    sampler: lagrangian.Sampler,
    estimator: Callable[..., Tensor],
) -> list[lagrangian.SampledFisherConvergence]:
    """:func:`~npgbook.experiments.lagrangian.sampled_fisher_convergence` for each family (the book's case cached)."""
    if families is None and sampler is lagrangian.sample_state_actions and estimator is fisher_from_samples:
        return list(_book_convergence())
    chosen = _families() if families is None else families
    return [
        lagrangian.sampled_fisher_convergence(p, th, o, sampler=sampler, estimator=estimator)
        for _, p, th, o in chosen
    ]


@functools.cache
def _book_convergence() -> tuple[lagrangian.SampledFisherConvergence, ...]:
    with _float64():
        return tuple(lagrangian.sampled_fisher_convergence(p, th, o) for _, p, th, o in _families())


# ----------------------------------------------------------------------------------------
# §4


@claim(
    "penalty_equals_constraint",
    "§4–5",
    "The penalty (Lagrangian) maximizer F⁻¹g/λ solves the KL-constrained quadratic problem for the right λ.",
    "04_lagrangian_taylor",
)
def _penalty_equals_constraint(
    *,
    grad: Tensor | None = None,
    fisher: Tensor | None = None,
    budgets: Sequence[float] = BUDGETS,
    multiplier: Callable[[Tensor, Tensor, float], float] | None = None,
    maximizer: Callable[[Tensor, Tensor, float], Tensor] | None = None,
) -> Verdict:
    # defaults: the chapter's black-box route (BFGS for the maximizer, root finding for λ*)
    _, _, g, f = _flank()
    g = g if grad is None else grad
    f = f if fisher is None else fisher
    result = lagrangian.compare_penalty_and_constraint(
        g, f, budgets, multiplier=multiplier, maximizer=maximizer
    )
    lam_gap, step_gap = result.lambda_gap, result.step_gap
    scale = float(np.abs(result.constrained_steps).max())
    # exact: brentq works to 1e-15 in log λ, SLSQP (ftol 1e-12) to well below 1e-6 in the step
    exact = lam_gap <= 1e-8 and step_gap <= 1e-6
    # approximately: the right multiplier and step to 1%
    near = lam_gap <= 1e-2 and step_gap <= 1e-2 * scale
    eps = ", ".join(f"{e:g}" for e in budgets)
    return Verdict(
        decide(exact, near),
        f"bandit at N(1, 0.5²), ε ∈ {{{eps}}}: the root-found λ* differs from √(gᵀF⁻¹g/2ε) by "
        f"{_bound(lam_gap, 1e-8)} (relative); F⁻¹g/λ* differs from SLSQP's constrained maximizer "
        f"by {_bound(step_gap, 1e-6)}",
    )


@claim(
    "fisher_score_outer",
    "§4",
    "The Fisher matrix is the expected outer product of the score ∇log π.",
    "04_lagrangian_taylor",
)
def _fisher_score_outer(
    *,
    cases: Sequence[tuple[str, Policy, Tensor, Tensor | None]] | None = None,
    outer: Callable[..., Tensor] = fisher_score_outer,
    reference: Callable[..., Tensor] = fisher_kl_hessian,
) -> Verdict:
    chosen = [c for c in _families() if c[1].discrete] if cases is None else cases
    gaps = {
        name: lagrangian.score_outer_gap(p, th, o, outer=outer, reference=reference)
        for name, p, th, o in chosen
    }
    gap = max(gaps.values())
    names = " and ".join(f"{name} ({p.n_params} parameters)" for name, p, _, _ in chosen)
    return Verdict(
        grade(gap, 1e-10, 0.05),
        f"the exact π-weighted sum of score outer products against the autograd KL Hessian, {names}: "
        f"largest gap {_bound(gap, 1e-10)} relative to the largest entry",
    )


@claim(
    "fisher_from_samples",
    "§4",
    "Because F is an expectation, it can be estimated from samples.",
    "04_lagrangian_taylor",
)
def _fisher_from_samples(
    *,
    families: Sequence[tuple[str, Policy, Tensor, Tensor | None]] | None = None,
    sampler: lagrangian.Sampler = lagrangian.sample_state_actions,
    estimator: Callable[..., Tensor] = fisher_from_samples,
) -> Verdict:
    names = [name for name, *_ in (_families() if families is None else families)]
    runs = _convergence(families, sampler, estimator)
    # an unbiased estimate has E‖F̂_N − F‖² ∝ 1/N exactly, so the slope of the RMS error is −1/2 up to
    # the spread over the seeds: allow three standard errors of the fitted slope
    z = max(abs(r.slope + 0.5) / r.slope_se for r in runs)
    falling = max(r.slope for r in runs) <= -0.25  # still converging, but slower than N^-1/2
    slopes = ", ".join(f"{n} {r.slope:.2f} ± {r.slope_se:.2f}" for n, r in zip(names, runs))
    first = runs[0]
    return Verdict(
        decide(z <= 3.0, falling),
        f"sampled score outer products, 20 seeds, N = {first.sizes[0]}…{first.sizes[-1]}: slope of the RMS "
        f"relative error {slopes} (largest distance from −1/2: {z:.1f} standard errors); "
        f"{names[0]}: error {_fmt(first.rms[0])} at N = {first.sizes[0]}, {_fmt(first.rms[-1])} at N = {first.sizes[-1]}",
    )


@claim(
    "fisher_psd_hessian_indefinite",
    "§4",
    "The curvature of the model is the Fisher matrix, positive semi-definite everywhere — unlike the Hessian of J.",
    "04_lagrangian_taylor",
)
def _fisher_psd(
    *,
    bandit: lagrangian.Bandit = _BANDIT,
    grid_mu: Sequence[float] = GRID_MU,
    grid_sigma: Sequence[float] = GRID_SIGMA,
    fisher: Callable[[GaussianPolicy, Tensor], Tensor] = lagrangian.gaussian_kl_hessians,
    families: Sequence[tuple[str, Policy, Tensor, Tensor | None]] | None = None,
    estimator: Callable[..., Tensor] = fisher_from_samples,
) -> Verdict:
    maps = [
        lagrangian.curvature_map(bandit, param, grid_mu, grid_sigma, fisher=fisher)
        for param in ("sigma", "log_sigma")
    ]
    runs = _convergence(families, lagrangian.sample_state_actions, estimator)
    grid_min = min(float(m.fisher_min.min()) for m in maps)
    sampled_min = min(r.smallest_eigenvalue for r in runs)
    negative = max(0.0, -grid_min, -sampled_min)  # the worst negative eigenvalue, relative to ‖F‖
    saddle = [float(m.indefinite.mean()) for m in maps]
    unlike_j = max(saddle) > 0
    n_points = sum(m.classes.size for m in maps)
    n_sampled = sum(r.errors.size for r in runs)
    grid_text = f"≥ {_fmt(grid_min)}" if grid_min >= 0 else _fmt(grid_min)
    sampled_text = "above −1e-12" if sampled_min >= -1e-12 else _fmt(sampled_min)
    return Verdict(
        decide(negative <= 1e-12 and unlike_j, negative <= 1e-6 and unlike_j),
        f"autograd KL Hessian at {n_points} Gaussian policies ({len(grid_mu)} × {len(grid_sigma)} grid, (μ, σ) and "
        f"(μ, log σ)): smallest eigenvalue {grid_text} × the largest; {n_sampled} sampled score outer products "
        f"(3 policies): smallest eigenvalue {sampled_text} "
        f"× the largest; ∇²J a saddle on {saddle[0]:.0%} and {saddle[1]:.0%} of the two grids",
    )


@claim(
    "local_validity",
    "§4",
    "The whole derivation is local: valid only for small policy changes.",
    "04_lagrangian_taylor",
)
def _local_validity(
    *,
    bandit: lagrangian.Bandit = _BANDIT,
    starts: dict[str, tuple[float, float]] = STARTS,
    budgets: Sequence[float] = RAY_BUDGETS,
    fisher: Callable[..., Tensor] = fisher_kl_hessian,
    divergence: Callable[..., np.ndarray] = lagrangian._exact_kl,
) -> Verdict:
    policy = GaussianPolicy("log_sigma")
    runs = [
        lagrangian.natural_ray_accuracy(
            bandit, policy, policy.params(m, s), budgets, fisher=fisher, divergence=divergence
        )
        for m, s in starts.values()
    ]
    ratios = np.array([[r.gain_ratio, r.kl_ratio] for r in runs])  # (starts, 2, budgets)
    small = float(np.abs(ratios[..., 0] - 1).max())  # the smallest budget
    large = float(np.abs(np.log(ratios[..., -1])).max())  # the largest budget
    gain_end, kl_end = ratios[:, 0, -1], ratios[:, 1, -1]
    return Verdict(
        # right to 2% for tiny steps, and off by a factor of 1.5 (1.1: approximately) for ε = 1
        decide(small <= 0.02 and large >= math.log(1.5), small <= 0.02 and large >= math.log(1.1)),
        f"true gain / linear prediction and true KL / ε along the natural direction (bandit, {len(runs)} "
        f"starts): both within {small:.1%} of 1 at ε = {budgets[0]:.0e}; gain / prediction "
        f"{gain_end.min():.2f}–{gain_end.max():.2f} and KL / ε {kl_end.min():.2f}–{kl_end.max():.2f} "
        f"at ε = {budgets[-1]:g}",
    )


@claim(
    "outer_product_cheaper",
    "§4",
    "The outer-product form of F is cheaper to compute than the KL Hessian, and reuses values the "
    "ordinary policy gradient computes anyway.",
    "04_lagrangian_taylor",
)
def _outer_product_cheaper(
    *,
    width: int = COST_WIDTH,
    fisher_flops: Callable[..., lagrangian.FisherFlops] = lagrangian.count_fisher_flops,
) -> Verdict:
    obs = envs.cartpole_observations(64, seed=1)
    net = MLPCategoricalPolicy(obs_dim=4, n_actions=2, hidden=(width, width))
    theta = net.initial_params(seed=0, last_layer_scale=1.0)
    counts = fisher_flops(net, theta, obs, torch.Generator().manual_seed(0))
    flop_ratio = counts.hessian / counts.score_outer
    # cheaper: at most half the matrix-product operations (counted, so the same on every machine;
    # CPU times are not used)
    cheaper = flop_ratio >= 2
    extra = counts.sampled / counts.batch_gradient
    # "already needed": forming F̂ from the scores costs at most one more policy gradient
    already = extra <= 2
    return Verdict(
        decide(cheaper and already, cheaper),
        f"MLP with n = {counts.n_params} parameters on N = {counts.n_states} states (counted operations): "
        f"the exact score outer product takes {flop_ratio:.1f}× fewer matrix-product operations than the "
        f"KL Hessian; the per-sample scores cost {counts.scores / counts.batch_gradient:.1f}× the operations "
        f"of one policy gradient but hold {counts.values_scores // counts.values_batch_gradient}× as many "
        f"numbers (N n, not n), and forming F̂ from them costs {_fmt(extra)}× a policy gradient",
    )
