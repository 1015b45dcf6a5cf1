"""The claims checked in chapter 5 (§5-§6: the natural step on exact problems).

Every check computes its numbers with the functions of :mod:`npgbook.experiments.exact_natural`
that chapter 5 calls, with the chapter's arguments as the defaults of its keyword-only inputs.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from ..experiments.exact_natural import (
    BANDIT,
    PLATEAU_VANILLA_ITERATIONS,
    GaussianFisher,
    KLBench,
    StepFunction,
    budget_spending,
    first_overshoot,
    invariance_distances,
    note_intermediate_step,
    peak_approach,
    plateau_iterations,
    plateau_vanilla_iterations,
    random_problem,
    realized_kl_ratios,
    relaxed_stationarity,
    reparameterization_errors,
    step_scan,
)
from ..fisher import fisher_gaussian
from ..natural import natural_step
from ..policies import GaussianPolicy
from ._registry import Verdict, _bound, _fmt, _level, claim, decide, grade

# the chapter's settings
EPS_GRID = tuple(float(e) for e in np.logspace(-8, 1, 19))
"""The budgets of chapter 5's realized-KL measurement."""
SCAN = tuple(float(m) for m in np.linspace(-1.0, 7.0, 81))
"""The means of chapter 5's step-length scan."""
NAT_EPS = (0.1, 0.03, 0.01, 0.003, 0.001)
VAN_ALPHA = (0.3, 0.1, 0.03)
PEAK_BUDGETS = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
PEAK_ALPHAS = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)


# ----------------------------------------------------------------------------------------
# §5


@claim(
    "intermediate_sign",
    "§5",
    "The maximizer of the relaxed objective is Δθ = −(1/λ)F⁻¹∇J.",
    "05_natural_step",
)
def _intermediate_sign(
    *,
    solve: Callable = note_intermediate_step,
    lam: float = 2.0,
    point: tuple[float, float] = (1.0, 0.3),
    seeds: Sequence[int] = (0, 1, 2),
) -> Verdict:
    r"""Is ``solve(g, F, λ)`` (the note's :math:`-F^{-1}g/\lambda`) the maximizer of the relaxed
    problem :math:`L(\Delta\theta) = g^\top\Delta\theta - \tfrac\lambda2\Delta\theta^\top F\Delta\theta`?

    On the bandit at ``point`` and on random 6-dimensional problems: the step must be uphill
    (:math:`g^\top\Delta\theta > 0`, and :math:`J` must rise on the bandit) and stationary for
    :math:`L` (relative residual :math:`\lVert g - \lambda F\Delta\theta\rVert/\lVert g\rVert`
    below 1e-10: holds; below 1e-4: holds approximately). :math:`L` is concave, so a stationary
    point is its maximizer.
    """
    policy = GaussianPolicy("log_sigma")
    theta = policy.params(*point)
    g = BANDIT.exact_gradient(policy, theta)
    fisher = fisher_gaussian(*point, "log_sigma")
    problems = [(g, fisher), *(random_problem(s) for s in seeds)]
    checks = [relaxed_stationarity(gp, fp, lam, solve(gp, fp, lam)) for gp, fp in problems]
    residual = max(c.residual for c in checks)
    uphill = sum(c.slope > 0 for c in checks)
    j0 = float(BANDIT.expected_reward(policy, theta))
    j1 = float(BANDIT.expected_reward(policy, theta + solve(g, fisher, lam)))
    share = checks[0].objective / checks[0].optimum
    ascends = uphill == len(checks) and j1 > j0
    outcome = grade(residual, 1e-10, 1e-4) if ascends else "does not hold as stated"
    moves = "raises" if j1 > j0 else ("lowers" if j1 < j0 else "keeps")
    return Verdict(
        outcome,
        f"relaxed objective L = gᵀΔθ − ½λΔθᵀFΔθ (λ = {lam:g}) on the bandit at "
        f"N({point[0]:g}, {point[1]:g}²) and {len(seeds)} random 6-dimensional problems: at the "
        f"note's Δθ the residual ‖g − λFΔθ‖/‖g‖ {_level(residual, 1e-10)} (largest), "
        f"gᵀΔθ > 0 on {uphill} of {len(checks)}, L(Δθ)/max L = {_fmt(share)} on the bandit, "
        f"and the step {moves} J from {j0:.3f} to {j1:.3f}",
    )


@claim(
    "alpha_spends_epsilon",
    "§5",
    "α = √(2ε / gᵀF⁻¹g) makes the quadratic KL model of the step equal ε.",
    "05_natural_step",
)
def _alpha_spends_epsilon(
    *,
    step: StepFunction = natural_step,
    budgets: Sequence[float] = tuple(float(e) for e in np.logspace(-4, 0, 9)),
    point: tuple[float, float] = (1.0, 0.3),
) -> Verdict:
    policy = GaussianPolicy("log_sigma")
    theta = policy.params(*point)
    g = BANDIT.exact_gradient(policy, theta)
    spent = budget_spending(g, fisher_gaussian(*point, "log_sigma"), budgets, step=step)
    return Verdict(
        grade(spent.model, 1e-10),
        f"|½ΔθᵀFΔθ / ε − 1| {_bound(spent.model, 1e-10)} for {len(budgets)} budgets from "
        f"{_fmt(min(budgets), 1)} to {_fmt(max(budgets), 1)}",
    )


def _span(values: Iterable[float], fmt: Callable[[float], str]) -> str:
    values = list(values)
    lo, hi = fmt(min(values)), fmt(max(values))
    return lo if lo == hi else f"{lo}–{hi}"


@claim(
    "policy_change_epsilon",
    "§5",
    "The natural step changes the policy by a magnitude ε (realized KL = ε).",
    "05_natural_step",
)
def _policy_change_epsilon(
    *,
    step: StepFunction = natural_step,
    eps_grid: Sequence[float] = EPS_GRID,
    book_range: tuple[float, float] = (1e-3, 1.0),
    benches: dict[str, KLBench] | None = None,
) -> Verdict:
    r"""Realized KL / ε of the natural step for chapter 5's policies.

    Holds if the ratio is within 10% of 1 for every budget in ``book_range`` (the budgets
    chapter 5's runs use); holds approximately if it is within 1% at the smallest budget of
    ``eps_grid`` (the claim as a limit ε → 0); otherwise it does not hold.
    """
    ratios = realized_kl_ratios(eps_grid, benches=benches, step=step)
    grid = np.asarray(eps_grid, dtype=float)
    lo, hi = book_range
    inside = (grid >= lo * (1 - 1e-9)) & (grid <= hi * (1 + 1e-9))
    if not inside.any():
        raise ValueError(f"no budget of eps_grid lies in book_range {book_range}")
    small = int(np.argmin(grid))
    worst_range = max(float(np.abs(r[inside] - 1).max()) for r in ratios.values())
    limit = max(abs(float(r[small]) - 1) for r in ratios.values())

    def departure(r: np.ndarray) -> float:
        off = np.nonzero(np.abs(r - 1) > 0.1)[0]
        return float(grid[off[0]]) if off.size else math.inf

    groups: dict[str, list[np.ndarray]] = {}
    for name, r in ratios.items():
        groups.setdefault(name.split(" ")[0].rstrip(","), []).append(r)
    ranges = ", ".join(
        f"{_fmt(min(float(r[inside].min()) for r in rs))}–"
        f"{_fmt(max(float(r[inside].max()) for r in rs))} ({family})"
        for family, rs in groups.items()
    )
    departures = ", ".join(
        f"{_span([departure(r) for r in rs], lambda x: _fmt(x, 1))} ({family})"
        for family, rs in groups.items()
    )
    return Verdict(
        decide(worst_range <= 0.1, limit <= 0.01),
        f"realized KL / ε for {len(ratios)} benchmarks: within "
        f"{'1%' if limit <= 0.01 else 'more than 1%'} of 1 at ε = {_fmt(float(grid[small]), 1)} "
        f"for all; over the budgets {_fmt(lo, 1)} to {_fmt(hi, 1)} that chapter 5 runs with "
        f"{'within' if worst_range <= 0.1 else 'not within'} 10%, ranging over {ranges}; "
        f"first off by > 10% at ε ≈ {departures}",
    )


@claim(
    "parameterization_invariance",
    "§5",
    "The natural update does not depend on how the policy is parameterized.",
    "05_natural_step",
)
def _parameterization_invariance(
    *,
    fisher: GaussianFisher = fisher_gaussian,
    points: Sequence[tuple[float, float]] = ((0.0, 2.0), (1.0, 0.3)),
    epsilons: Sequence[float] = (1e-2, 1e-4),
    nat_eps: Sequence[float] = NAT_EPS,
    van_alpha: Sequence[float] = VAN_ALPHA,
) -> Verdict:
    r"""The natural step in :math:`(\mu,\sigma)` against the one in :math:`(\mu,\log\sigma)`.

    Exact relations (to 1e-10, :func:`reparameterization_errors`): :math:`F' = J^\top FJ`,
    :math:`g' = J^\top g`, :math:`JF'^{-1}g' = F^{-1}g`, :math:`J\Delta\theta' = \Delta\theta`, equal
    KL models. To first order: the :math:`\log\sigma` step carried over exactly lands within
    :math:`O(\epsilon)` of the :math:`\sigma` step, so its relative distance falls at least
    5-fold when :math:`\epsilon` falls 100-fold (:math:`\sqrt\epsilon` predicts 10-fold). Paths: the
    distance between the two traced paths shrinks with every smaller :math:`\epsilon` and ends below
    a quarter of the smallest vanilla distance. Holds if all three; holds approximately if the
    first-order and path conditions hold but not the exact relations.
    """
    rel = reparameterization_errors(points, epsilons, fisher=fisher)
    dist = invariance_distances(nat_eps, van_alpha, fisher=fisher)
    big, tiny = max(epsilons), min(epsilons)
    first_order = rel.remainder[tiny] <= 0.2 * rel.remainder[big]
    nat = [dist.natural[e] for e in sorted(nat_eps, reverse=True)]
    shrinks = all(b < a for a, b in itertools.pairwise(nat)) and nat[-1] < 0.25 * min(dist.vanilla.values())
    exact = rel.exact <= 1e-10
    names = {"fisher": "F′ = MᵀFM", "direction": "MF′⁻¹g′ = F⁻¹g", "step": "MΔθ′ = Δθ"}
    worst = max(names, key=lambda k: getattr(rel, k))
    relations = (
        "F′ = MᵀFM, g′ = Mᵀg, MF′⁻¹g′ = F⁻¹g, MΔθ′ = Δθ and equal KL models hold to 1e-10"
        if exact
        else f"the exact relations fail ({names[worst]} off by {_fmt(getattr(rel, worst))})"
    )
    return Verdict(
        decide(exact and first_order and shrinks, first_order and shrinks),
        f"θ = (μ, σ) against θ′ = (μ, log σ), M = ∂θ/∂θ′, at {len(points)} points of the bandit: "
        f"{relations}; the log σ step mapped exactly misses the σ step by "
        f"{_fmt(rel.remainder[big])} (ε = {_fmt(big, 1)}) and {_fmt(rel.remainder[tiny])} "
        f"(ε = {_fmt(tiny, 1)}) of its length; distance between the two paths: natural "
        f"{_fmt(dist.natural[max(nat_eps)])} (ε = {_fmt(max(nat_eps), 1)}) to "
        f"{_fmt(dist.natural[min(nat_eps)])} (ε = {_fmt(min(nat_eps), 1)}), "
        f"{'shrinking' if shrinks else 'not shrinking'} with the step; vanilla "
        f"{_span(dist.vanilla.values(), _fmt)} (α from {_fmt(min(van_alpha))} to "
        f"{_fmt(max(van_alpha))})",
    )


@claim(
    "cautious_steep_bold_flat",
    "§5",
    "The natural update is cautious on steep slopes and larger on flat ones.",
    "05_natural_step",
)
def _cautious_bold(
    *,
    fisher: GaussianFisher = fisher_gaussian,
    mus: Sequence[float] = SCAN,
    sigmas: tuple[float, float] = (0.3, 3.0),
    epsilon: float = 0.1,
) -> Verdict:
    r"""The note's sensitivity (its Figure 2): a policy with :math:`\sigma = 0.3` is sensitive to
    :math:`\mu`, one with :math:`\sigma = 3` is not. The natural step in :math:`\mu` should be short for
    the first and long for the second at the same :math:`\mu`.

    Holds if :math:`|\Delta\mu|` at ``sigmas[1]`` exceeds :math:`|\Delta\mu|` at ``sigmas[0]`` at every
    μ of the grid (except at the peak, where :math:`\partial J/\partial\mu = 0` and both steps move
    only :math:`\sigma`); holds approximately if at most of them; otherwise it does not hold.
    """
    sens = step_scan(mus, sigmas[0], epsilon, fisher=fisher)
    flat = step_scan(mus, sigmas[1], epsilon, fisher=fisher)
    keep = np.abs(sens.mus - BANDIT.target) > 1e-6
    ratio = flat.natural_mu[keep] / sens.natural_mu[keep]
    longer = int((ratio > 1).sum())
    van_spread = float(sens.vanilla.max() / sens.vanilla.min())
    nat_spread = float(sens.natural.max() / sens.natural.min())
    return Verdict(
        decide(longer == ratio.size, longer > ratio.size / 2),
        f"bandit, natural step with ε = {epsilon:g}: its μ-component is longer at σ = "
        f"{sigmas[1]:g} (insensitive policy) than at σ = {sigmas[0]:g} (sensitive) at {longer} of "
        f"{ratio.size} means from {min(mus):g} to {max(mus):g} (the peak excluded), by a factor "
        f"{_fmt(float(ratio.min()))} to {_fmt(float(ratio.max()))}; along σ = {sigmas[0]:g} the "
        f"vanilla step (∝ ‖∇J‖) varies {van_spread:.0e}-fold, the natural step "
        f"{_fmt(nat_spread)}-fold",
    )


# ----------------------------------------------------------------------------------------
# §6


@claim(
    "natural_escapes_plateau",
    "§6",
    "Natural gradients escape plateaus.",
    "05_natural_step",
)
def _natural_escapes_plateau(
    *,
    gradient: Callable | None = None,
    fisher: Callable | None = None,
    epsilon: float = 0.1,
    n_iter: int = 500,
    gap: float = 1.75,
    vanilla: Callable[[float], int | None] = plateau_vanilla_iterations,
) -> Verdict:
    r"""Iterations to 0.9 J* on chapter 2's two-state plateau (logit gap ``gap``), natural against
    vanilla (:math:`\alpha = 1`, ``vanilla(gap)``, by default :func:`plateau_vanilla_iterations`, the
    function chapter 5 counts with; ``None``, never within its budget, counts as slower than any
    count). Holds if the natural update needs at most a tenth of the vanilla iterations; holds
    approximately if it is faster; a natural run that never reaches the target (e.g. a zero
    natural gradient) does not hold.
    """
    natural = plateau_iterations(gap, epsilon, n_iter, gradient=gradient, fisher=fisher)
    van = vanilla(gap)
    van_count = math.inf if van is None else van
    van_text = (
        f"never within its {PLATEAU_VANILLA_ITERATIONS:,} iterations" if van is None else str(van)
    )
    if natural is None:
        outcome, nat_text = "does not hold as stated", f"never within {n_iter}"
    else:
        outcome, nat_text = decide(10 * natural <= van_count, natural < van_count), str(natural)
    return Verdict(
        outcome,
        f"two-state MDP from the logit gap {gap:g}, iterations to 0.9 J*: natural (ε = "
        f"{epsilon:g}) {nat_text}, vanilla (α = 1) {van_text}",
    )


@claim(
    "natural_approaches_peak",
    "§6",
    "Natural gradients approach a reward peak cautiously, without overshooting.",
    "05_natural_step",
)
def _natural_approaches_peak(
    *,
    gradient: Callable | None = None,
    fisher: GaussianFisher = fisher_gaussian,
    overshoot: Callable = first_overshoot,
    budgets: Sequence[float] = PEAK_BUDGETS,
    alphas: Sequence[float] = PEAK_ALPHAS,
    n_iter: int = 60,
    progress: float = 0.5,
) -> Verdict:
    """Fixed-length runs without stopping at a target, natural (ε grid) against vanilla (α grid).

    A budget is *good* if from both starts (the flank N(1, 0.3²) and the point in the flat tail
    where the vanilla step with α = 10 lands) its run never overshoots (:func:`first_overshoot`)
    and approaches the peak: it closes at least ``progress`` of the gap between its starting J
    and the peak value 1. Holds if every budget is good; holds approximately if the good budgets
    are exactly the smallest ones (cautious up to some ε); otherwise it does not hold.
    """
    res = peak_approach(budgets, alphas, n_iter, gradient=gradient, fisher=fisher, overshoot=overshoot)
    names = list(res.starts)

    def good(e: float) -> bool:
        runs = [res.natural[e, n] for n in names]
        return all(r.overshoot is None and r.progress >= progress for r in runs)

    safe = [e for e in budgets if good(e)]
    holds = len(safe) == len(budgets)
    prefix = bool(safe) and list(budgets[: len(safe)]) == safe
    text = (
        f"bandit (peak μ = {BANDIT.target:g}), {n_iter} iterations without stopping from "
        f"{names[0]} and from {names[1]}: "
    )
    if safe:
        least = min(res.natural[e, n].progress for e in safe for n in names)
        text += (
            f"natural runs never overshoot and close ≥ {math.floor(100 * least)}% of the gap to "
            f"the peak value 1 for ε "
            + (f"from {_fmt(budgets[0])} to {_fmt(budgets[-1])}" if holds else f"≤ {_fmt(max(safe))}")
        )
    if not holds:
        bad = next(e for e in budgets if e not in safe)
        name = next(
            n
            for n in names
            if res.natural[bad, n].overshoot is not None or res.natural[bad, n].progress < progress
        )
        run = res.natural[bad, name]
        text += "; " if safe else ""
        if run.overshoot is not None:
            k = run.overshoot
            mus = " → ".join(f"{float(x):.2f}" for x in run.path.thetas[: k + 2, 0])
            js = " → ".join(f"{float(x):.3f}" for x in run.path.values[: k + 2])
            text += f"with ε = {_fmt(bad)} from {name} μ {mus}, J {js}"
        else:
            text += (
                f"with ε = {_fmt(bad)} from {name} J only goes from "
                f"{float(run.path.values[0]):.3f} to {float(run.path.values[-1]):.3f}"
            )
    over = [a for a in alphas if res.vanilla[a].overshoot is not None]
    text += "; vanilla from N(1, 0.3²) " + (
        f"overshoots for α ≥ {_fmt(min(over))} (α from {_fmt(alphas[0])} to {_fmt(alphas[-1])})"
        if over
        else f"never overshoots for α from {_fmt(alphas[0])} to {_fmt(alphas[-1])}"
    )
    return Verdict(decide(holds, prefix), text)


# kept for the tests and chapters that used the old private name
_first_overshoot = first_overshoot
