"""The claims checked in chapter 3 (§3: KL divergence and the Fisher matrix).

Every check calls the functions of :mod:`npgbook.experiments.kl_fisher` with the chapter's
arguments, so the chapter prints the numbers the verdicts are decided from.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from .. import metric
from ..divergences import kl_divergence, policy_kl
from ..experiments import kl_fisher
from ..fisher import fisher_gaussian, fisher_kl_hessian
from ..policies import GaussianPolicy
from ._benches import _BANDIT
from ._registry import (
    Verdict,
    _bound,
    _fmt,
    claim,
    decide,
    grade,
)

# ----------------------------------------------------------------------------------------
# The book's settings (chapter 3 uses the same values)

RAY_LENGTHS = tuple(np.logspace(-3, -1, 9))
"""The step lengths t of the rays (chapter 3, 'The error in absolute terms')."""

NARROW_WIDE = ((0.0, 0.3), (1.0, 3.0))
"""N(0, 0.3²) and N(1, 3²): the chapter's pair of Gaussians of different widths."""

SAMPLE_SIZES = (64, 256, 1024, 4096)
"""The sample sizes N of the sampled-KL experiment (chapter 3, 'The KL from samples')."""

WHITEN_POINT = (0.0, 0.3)
"""(μ, σ) of the point at which chapter 3 whitens the Fisher metric."""

BALL_RADIUS = math.sqrt(2 * 0.02)
"""√(2ε) for the KL budget ε = 0.02 of chapter 3's balls: the finite step of the Euclidean claim."""


def _gaussian_fisher_at(fisher: Callable[..., Tensor]) -> Callable[[Tensor], Tensor]:
    """θ = (μ, σ) ↦ ``fisher(μ, σ)``, the closed form at a point of the (μ, σ) coordinates."""
    return lambda theta: fisher(float(theta[0]), float(theta[1]))


def sqrt2_log_sigma(scale: float = math.sqrt(2.0)) -> Callable[[Tensor], Tensor]:
    """The map θ' = (μ, c log σ) ↦ θ = (μ, σ); with c = √2 the metric is I on the line σ = 1."""
    return lambda v: torch.stack([v[0], torch.exp(v[1] / scale)])


# ----------------------------------------------------------------------------------------
# §3


@claim(
    "kl_not_symmetric",
    "§3",
    "The KL divergence is not symmetric.",
    "03_kl_and_fisher",
)
def _kl_not_symmetric(
    *,
    kl: Callable[..., Tensor] = kl_divergence,
    pairs: Sequence[tuple[tuple[float, float], tuple[float, float]]] = (NARROW_WIDE,),
) -> Verdict:
    normal = torch.distributions.Normal
    found, texts = False, []
    for (mp, sp), (mq, sq) in pairs:
        p = normal(torch.tensor(float(mp)), torch.tensor(float(sp)))
        q = normal(torch.tensor(float(mq)), torch.tensor(float(sq)))
        forward, reverse = float(kl(p, q)), float(kl(q, p))
        found |= abs(forward - reverse) > 0.1 * min(forward, reverse)
        texts.append(
            f"KL(N({mp:g}, {sp:g}²) ‖ N({mq:g}, {sq:g}²)) = {forward:.2f}, the reverse {reverse:.2f}"
        )
    return Verdict(decide(found), "; ".join(texts))


@claim(
    "kl_symmetric_for_small_steps",
    "§3",
    "The KL divergence is approximately symmetric for small policy changes.",
    "03_kl_and_fisher",
)
def _kl_small_symmetric(
    *,
    divergence: kl_fisher.Divergence = policy_kl,
    lengths: Sequence[float] = RAY_LENGTHS,
    seeds: Sequence[int] = range(5),
) -> Verdict:
    study = kl_fisher.kl_rays(kl_fisher.book_policies(), lengths, seeds, divergence=divergence)
    slopes = [s for family in study.asymmetry_slopes.values() for s in family]
    n_rays = len(study.rays)
    # at least cubic (slope > 2.5, clear of a second-order asymmetry's 2) and below 1% at the
    # smallest step
    outcome = decide(bool(slopes) and min(slopes) > 2.5 and study.asymmetry_relative < 1e-2)
    n_sign = sum(len(v) for v in study.sign_changes.values())
    slope_text = f"{min(slopes):.1f}–{max(slopes):.1f}" if slopes else "none"
    return Verdict(
        outcome,
        f"|KL(π‖π') − KL(π'‖π)| along {n_rays} rays of 4 policies: log-log slopes {slope_text} "
        f"(the {n_sign} whose asymmetry changes sign left out); relative asymmetry at step "
        f"length {lengths[0]:g} at most {_fmt(study.asymmetry_relative, 1)}",
    )


@claim(
    "kl_hessian_is_fisher",
    "§3",
    "At Δθ = 0 the KL and its gradient vanish and its Hessian is the Fisher information matrix.",
    "03_kl_and_fisher",
)
def _kl_hessian_is_fisher(
    *,
    hessian: kl_fisher.FisherFn = fisher_kl_hessian,
    fisher: kl_fisher.FisherFn = kl_fisher.independent_fisher,
) -> Verdict:
    routes = kl_fisher.fisher_routes(kl_fisher.book_policies(), hessian=hessian, fisher=fisher)
    worst = routes.worst
    n_mlp = routes.n_params["MLP on CartPole"]
    return Verdict(
        grade(worst, 1e-8),
        "largest gap between the KL Hessian and the Fisher matrix (closed forms for the Gaussian "
        f"×2 and the categorical, exact score sum for a {n_mlp}-parameter MLP on 512 CartPole "
        f"states), and largest |KL| or |∇KL| at 0: {_bound(worst, 1e-8)}",
    )


@claim(
    "kl_quadratic_model",
    "§3–4",
    "For small steps KL ≈ ½ΔθᵀFΔθ.",
    "03_kl_and_fisher",
)
def _kl_quadratic_model(
    *,
    fisher: kl_fisher.FisherFn = kl_fisher.independent_fisher,
    lengths: Sequence[float] = RAY_LENGTHS,
    seeds: Sequence[int] = range(5),
) -> Verdict:
    study = kl_fisher.kl_rays(kl_fisher.book_policies(), lengths, seeds, fisher=fisher)
    slopes = [s for family in study.model_slopes.values() for s in family]
    # an O(t³) error: slope 3; a wrong F leaves an O(t²) error, slope 2
    outcome = decide(max(abs(s - 3) for s in slopes) < 0.1 and study.model_relative < 1e-2)
    return Verdict(
        outcome,
        f"with F independent of the KL (closed forms, exact score sum), the error of the model "
        f"has log-log slopes {min(slopes):.2f}–{max(slopes):.2f} ({len(slopes)} rays, 4 policies); "
        f"relative error at t = {lengths[0]:g} at most {_fmt(study.model_relative, 1)}",
    )


@claim(
    "identity_fisher_vanilla",
    "§3, §5",
    "Where F = I the natural gradient is the vanilla gradient.",
    "03_kl_and_fisher",
)
def _identity_fisher(
    *,
    fisher: Callable[..., Tensor] = fisher_gaussian,
    log_scale: float = math.sqrt(2.0),
    jacobian: Callable[[Tensor], Tensor] = metric.whitening_jacobian,
) -> Verdict:
    policy = GaussianPolicy("sigma")

    def objective(th: Tensor) -> Tensor:
        return _BANDIT.expected_reward(policy, th)

    fisher_at = _gaussian_fisher_at(fisher)
    # (μ, c log σ) at σ = 1, and whitened coordinates θ = θ0 + W θ' at θ0 = (0, 0.3)
    theta0 = policy.params(*WHITEN_POINT)
    white = jacobian(fisher(*WHITEN_POINT))
    cases = {
        "(μ, √2 log σ) at σ = 1": kl_fisher.natural_vs_vanilla(
            policy, objective, sqrt2_log_sigma(log_scale), torch.zeros(2), fisher_at
        ),
        "whitened at σ = 0.3": kl_fisher.natural_vs_vanilla(
            policy, objective, lambda v: theta0 + white @ v, torch.zeros(2), fisher_at
        ),
    }
    metric_gap = max(c.metric_gap for c in cases.values())
    direction_gap = max(c.direction_gap for c in cases.values())
    return Verdict(
        grade(max(metric_gap, direction_gap), 1e-10),
        "in (μ, √2 log σ) at σ = 1 and in whitened coordinates at N(0, 0.3²): |F' − I| "
        f"(F' the autograd KL Hessian in θ') {_bound(metric_gap, 1e-10)}, "
        f"|J_φ⁻¹F⁻¹g − ∇θ'(expected reward)| "
        f"{_bound(direction_gap, 1e-10)}",
    )


@claim(
    "identity_fisher_euclidean",
    "§3",
    "If F = I, the KL distance is the Euclidean distance.",
    "03_kl_and_fisher",
)
def _identity_euclidean(
    *,
    fisher: Callable[..., Tensor] = fisher_gaussian,
    jacobian: Callable[[Tensor], Tensor] = metric.whitening_jacobian,
    directions: Tensor | None = None,
    finite_step: float = BALL_RADIUS,
) -> Verdict:
    policy = GaussianPolicy("sigma")
    lengths = np.logspace(-3, math.log10(finite_step), 7)
    dirs = kl_fisher.circle_directions(72) if directions is None else directions
    study = kl_fisher.kl_over_half_squared_length(
        policy, policy.params(*WHITEN_POINT), jacobian(fisher(*WHITEN_POINT)), lengths, dirs
    )
    deviation = study.deviation()
    limit_ok = deviation[0] < 1e-2  # the relative error of the quadratic model is O(t), t = 1e-3
    exact = deviation[-1] <= 1e-6
    low, high = float(study.ratio[-1].min()), float(study.ratio[-1].max())
    finite = f"{_bound(deviation[-1], 1e-6)} from 1" if exact else f"between {low:.2f} and {high:.2f}"
    return Verdict(
        decide(limit_ok and exact, limit_ok),
        f"KL / (½‖Δθ'‖²) in whitened coordinates at N(0, 0.3²), {dirs.shape[0]} directions: "
        f"within {_bound(deviation[0], 1e-6) if deviation[0] <= 1e-6 else _fmt(deviation[0], 1)} "
        f"of 1 at ‖Δθ'‖ = 0.001, {finite} at ‖Δθ'‖ = {finite_step:.2f} (the KL ball ε = 0.02)",
    )


# ----------------------------------------------------------------------------------------
# §3–§4: the KL from samples


@claim(
    "kl_from_samples",
    "§3–4",
    "The KL divergence cannot be computed directly from samples; it requires evaluating all "
    "state-action pairs.",
    "03_kl_and_fisher",
)
def _kl_from_samples(
    *,
    estimator: kl_fisher.Estimator = kl_fisher.policy_kl_from_samples,
    sizes: Sequence[int] = SAMPLE_SIZES,
    n_seeds: int = 100,
) -> Verdict:
    mlp, theta, obs = kl_fisher.book_policies()["MLP on CartPole"]
    study = kl_fisher.sampled_kl_study(
        mlp, theta, kl_fisher.book_step(mlp, theta), obs, sizes, n_seeds, estimator=estimator
    )
    worst_z = float(np.abs(study.bias_z).max())
    # unbiased: every size within 4 standard errors (4 sizes); error falling like N^-1/2: the
    # RMS error's slope, estimated from 100 seeds, within 0.1 of −1/2
    estimable = worst_z < 4 and abs(study.rms_slope + 0.5) < 0.1
    return Verdict(
        decide(not estimable),
        f"MLP on CartPole, exact KL {study.exact:.4f} over {study.n_pairs} state-action pairs; "
        f"estimates from N = {sizes[0]}–{sizes[-1]} sampled pairs, {n_seeds} seeds: mean within "
        f"{worst_z:.1f} standard errors of it, RMS error slope {study.rms_slope:.2f} in N "
        f"(RMS {_fmt(float(study.rms_error[0]))} at N = {sizes[0]})",
    )
