"""The claims checked in chapter 6 (§6: problems with natural gradients)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .. import rl
from ..experiments import brittleness, cost, variants
from ..policies import MLPCategoricalPolicy, Policy
from ..problems import envs
from ._registry import Verdict, _bound, _float64, _fmt, claim, decide, grade

LAPTOP_BYTES = 16e9
"""The memory of a well-equipped laptop (16 GB), the yardstick of the claim ``fisher_size``."""


@claim(
    "fisher_size",
    "§6",
    "A network with 100,000 parameters has a 10-billion-entry Fisher matrix, too large for a laptop.",
    "06_natural_gradient_problems",
)
def _fisher_size(
    *,
    n_params: int = 100_000,
    laptop_bytes: float = LAPTOP_BYTES,
    fisher_bytes: Callable[[int, torch.dtype], int] = cost.dense_fisher_bytes,
) -> Verdict:
    """Holds if n² is the note's 10 billion and the matrix exceeds the laptop even in float32."""
    entries = n_params * n_params
    bytes32 = fisher_bytes(n_params, torch.float32)
    gb64 = fisher_bytes(n_params, torch.float64) / 1e9
    return Verdict(
        decide(entries == 10**10 and bytes32 > laptop_bytes),
        f"{n_params:,}² = {entries:.0e} entries: {bytes32 / 1e9:.0f} GB in float32, {gb64:.0f} GB "
        f"in float64 — {bytes32 / laptop_bytes:.1f}× a {laptop_bytes / 1e9:.0f} GB laptop even in "
        "float32",
    )


# ----------------------------------------------------------------------------------------
# Brittleness: is the estimated matrix positive definite?

DEFINITENESS_SIZES = (16, 114, 456)
"""Sample sizes of ``estimated_fisher_not_pd``: below, at and four times the 114 parameters."""


@functools.cache
def definiteness_bench() -> tuple[MLPCategoricalPolicy, Tensor, Tensor]:
    """Chapter 6's definiteness test bench: a CartPole MLP (one tanh layer of 16) at its
    initial parameters (seed 0) and 256 CartPole states (seed 0), in float64."""
    with _float64():
        policy = MLPCategoricalPolicy(4, 2, (16,))
        return (
            policy,
            policy.initial_params(seed=0, last_layer_scale=1.0),
            envs.cartpole_observations(256, seed=0),
        )


@claim(
    "estimated_fisher_not_pd",
    "§6",
    "The estimated Hessian may not be positive definite.",
    "06_natural_gradient_problems",
)
def _estimated_fisher_not_pd(
    *,
    bench: Callable[[], tuple[Policy, Tensor, Tensor | None]] = definiteness_bench,
    sizes: tuple[int, ...] = DEFINITENESS_SIZES,
    draws: int = 4,
    exact_fisher: Callable[[Tensor | None], Tensor] | None = None,
) -> Verdict:
    """Both sample estimates of F (outer product of scores, and the Hessian form of chapter 4),
    each drawn ``draws`` times per sample size N, judged **on the range of the exact F** over
    the same states (``brittleness.definiteness_on_range``). A softmax network's exact F is
    itself singular (redundant logit directions), so singularity there is F's, not the
    estimate's; on the range an estimate fails only by a real defect.

    The note's worry is about the Hessian, so the verdict is decided by the Hessian-form
    estimate (the outer product is reported alongside: it is never indefinite). Holds if, at the
    largest N (at least the number of parameters n), most draws of the Hessian form are not
    positive definite on the range; holds approximately if it fails only at smaller N; does not
    hold if it is positive definite on the range at every N.
    """
    policy, theta, obs = bench()
    r = brittleness.definiteness_on_range(
        policy, theta, obs, sizes, draws=draws, exact_fisher=exact_fisher
    )
    n, big = r.n_params, int(r.sizes[-1])
    at_largest = r.hessian_not_pd[-1] >= 0.5
    anywhere = bool((r.hessian_not_pd > 0).any())
    pd_from = [int(N) for N, a, b in zip(r.sizes, r.outer_not_pd, r.hessian_not_pd) if a == 0 and b == 0]

    def share(x: float) -> str:
        return f"{round(x * r.draws)} of {r.draws}"

    hessian = f"indefinite in {share(r.hessian_indefinite[-1])} draws"
    if r.hessian_indefinite[-1] > 0:
        hessian += f" (λ_min/λ_max down to {r.hessian_min_ratio[-1]:.2f})"
    return Verdict(
        decide(big >= n and at_largest, anywhere),
        f"{n}-parameter policy, N = {', '.join(map(str, r.sizes))} samples, {r.draws} draws each, "
        f"judged on the range of the exact F ({r.range_dim[-1]} of {n} directions at N = {big}): "
        f"with N = {big} the outer-product estimate is positive definite there in "
        f"{share(1 - r.outer_not_pd[-1])} draws and indefinite in "
        f"{share(r.outer_indefinite.max())} draws at any N; the Hessian-form estimate is "
        f"{hessian}"
        + (f"; both positive definite in every draw from N = {pd_from[0]}" if pd_from else ""),
    )


# ----------------------------------------------------------------------------------------
# The remedies, on chapter 6's trained CartPole policy. Training is chaotic even in float64:
# rounding differences between CPUs (about 1e-12 after one update, from conjugate gradient
# on a nearly singular F) grow some tenfold per update, so two machines end 8,192 steps with
# visibly different policies. The book therefore analyses a *stored* snapshot, trained once
# by ``write_snapshots``; everything computed from it in float64 is the same on every machine,
# and ``tests/test_claims_ch06.py`` retrains it and compares the first updates.

SNAPSHOT_CONFIG = rl.TrainConfig(algo="npg", total_steps=8192, hidden=(16, 16), dtype="float64")
"""Chapter 6's snapshot: NPG on CartPole for 8,192 steps (two tanh layers of 16), in float64."""

SNAPSHOT_SEEDS = (0, 1, 2)
SNAPSHOT_STEPS_PER_ENV = 128
SNAPSHOT_FILE = Path(__file__).resolve().parent.parent / "experiments" / "data" / "ch06_snapshots.npz"
"""The stored snapshots (package data): per seed θ after every update, then the next batch."""


def train_snapshot(seed: int, thetas: list[Tensor] | None = None) -> tuple[MLPCategoricalPolicy, Tensor, rl.PolicyData]:
    """Train chapter 6's snapshot of ``seed`` now (float64, one thread): policy, θ_k, next batch."""
    with _float64():
        return variants.policy_snapshot(
            SNAPSHOT_CONFIG.replace(seed=seed), steps_per_env=SNAPSHOT_STEPS_PER_ENV, thetas=thetas
        )


def write_snapshots(path: Path | str = SNAPSHOT_FILE, seeds: tuple[int, ...] = SNAPSHOT_SEEDS) -> Path:
    """Train the snapshots of ``seeds`` and store them in ``path`` (``numpy.savez_compressed``)."""
    arrays: dict[str, np.ndarray] = {}
    for seed in seeds:
        thetas: list[Tensor] = []
        _, theta, data = train_snapshot(seed, thetas)
        arrays[f"seed{seed}_thetas"] = torch.stack(thetas).numpy()
        arrays[f"seed{seed}_obs"] = data.obs.numpy()
        arrays[f"seed{seed}_actions"] = data.actions.numpy()
        arrays[f"seed{seed}_advantages"] = data.advantages.numpy()
        assert torch.equal(thetas[-1], theta)
    path = Path(path)
    np.savez_compressed(path, **arrays)
    return path


@functools.cache
def stored_snapshot(seed: int = 0) -> dict[str, np.ndarray]:
    """The stored arrays of ``seed``: ``thetas`` (θ after each update), ``obs``, ``actions``, ``advantages``."""
    if seed not in SNAPSHOT_SEEDS:
        raise ValueError(f"seed must be one of the stored snapshot seeds {SNAPSHOT_SEEDS}, got {seed!r}")
    with np.load(SNAPSHOT_FILE) as stored:
        return {key.split("_", 1)[1]: stored[key] for key in stored.files if key.startswith(f"seed{seed}_")}


@functools.cache
def snapshot_bench(seed: int = 0) -> tuple[MLPCategoricalPolicy, Tensor, rl.PolicyData, Tensor]:
    """Chapter 6's test bench: the stored trained policy, its parameters, its next batch and ĝ.

    Everything is float64 and computed from stored arrays, so the same on every machine.
    """
    arrays = stored_snapshot(seed)
    with _float64():
        policy = MLPCategoricalPolicy(4, 2, SNAPSHOT_CONFIG.hidden, torch.float64)
        theta = torch.from_numpy(arrays["thetas"][-1].copy())
        obs = torch.from_numpy(arrays["obs"].copy())
        actions = torch.from_numpy(arrays["actions"].copy())
        with torch.no_grad():
            old_log_probs = policy.distribution(theta, obs).log_prob(actions)
        data = rl.PolicyData(obs, actions, torch.from_numpy(arrays["advantages"].copy()), old_log_probs)
        return policy, theta, data, rl.policy_gradient(policy, theta, data)


@functools.cache
def _remedies(damping: float = 0.01, cg_iters: int = 10) -> cost.RemedyComparison:
    policy, theta, data, grad = snapshot_bench()
    with _float64():
        return cost.compare_remedies(policy, theta, data.obs, grad, damping=damping, cg_iters=cg_iters)


def _compare(
    compare: Callable[..., cost.RemedyComparison], damping: float, cg_iters: int, **kw: object
) -> cost.RemedyComparison:
    if compare is cost.compare_remedies and not kw:
        return _remedies(damping, cg_iters)  # the book's inputs: computed once for both claims
    policy, theta, data, grad = snapshot_bench()
    return compare(policy, theta, data.obs, grad, damping=damping, cg_iters=cg_iters, **kw)


@claim(
    "conjugate_gradient_remedy",
    "§6",
    "Conjugate gradient addresses the cost: the natural direction without forming or inverting F.",
    "06_natural_gradient_problems",
)
def _cg_remedy(
    *,
    compare: Callable[..., cost.RemedyComparison] = cost.compare_remedies,
    damping: float = 0.01,
    cg_iters: int = 10,
) -> Verdict:
    """Accuracy against the *damped* dense solve (F + λI)⁻¹ĝ, λ = 0.01: CG replaces the dense
    solve of the system NPG actually solves (chapter 5); how damping moves that direction away
    from F⁺ĝ is the separate question of the brittleness section.

    Holds if CG's direction keeps 99% of the achievable improvement (cosine ≥ 0.99 in the metric
    F + λI) while costing fewer counted flops than forming F and factoring it, and storing fewer
    numbers than n²; holds approximately if cheap with cosine ≥ 0.9.
    """
    r = _compare(compare, damping, cg_iters)
    cheap = r.cg_flops < r.dense_flops and r.cg_stored < r.dense_stored
    flops = r.cg_flops / r.dense_flops
    return Verdict(
        decide(cheap and r.cg_cosine >= 0.99, cheap and r.cg_cosine >= 0.9),
        f"chapter 6's trained CartPole policy (seed 0, {r.n} parameters, {r.states} states), damping "
        f"{r.damping:g}: {r.cg_iters} Fisher-vector products give a direction with cosine "
        f"{_cosine(r.cg_cosine)} (in the metric F + λI) to the dense solve, for "
        f"{_ratio(flops)} the counted flops of forming and factoring F and "
        f"{'fewer' if r.cg_stored < r.dense_stored else 'more'} stored numbers than its "
        f"n² = {r.dense_stored:,}",
    )


def _cosine(c: float) -> str:
    """A cosine as a bound where rounding could flip a digit (CG's are within 1e-4 of 1)."""
    return "above 0.999" if c > 0.999 else f"{c:.2f}"


def _ratio(x: float) -> str:
    """A cost ratio as a bound (counted operations depend a little on the torch version)."""
    for bound, text in ((0.1, "under a tenth of"), (0.5, "under half of"), (1.0, "less than")):
        if x < bound:
            return text
    return "more than"


def _kfac_check(r: cost.RemedyComparison) -> Verdict:
    stored, inverse = r.dense_stored / r.kfac_stored, r.dense_inverse / r.kfac_inverse
    cheap = stored >= 10 and inverse >= 10
    between = r.vanilla_cosine + 0.05 <= r.kfac_cosine < r.cg_cosine
    return Verdict(
        decide(cheap and between and r.kfac_error > 0.05),
        f"same policy: K-FAC's factors hold {r.kfac_stored} numbers against n² = {r.dense_stored} "
        f"({stored:.0f}× fewer) and cost about {r.kfac_inverse:.0f} operations to invert against "
        f"n³/3 ≈ {_fmt(r.dense_inverse)} ({inverse:.0f}× fewer); its matrix is {r.kfac_error:.0%} off "
        f"F (Frobenius), yet its direction has cosine {r.kfac_cosine:.2f} to the damped natural "
        f"gradient, against {r.vanilla_cosine:.2f} for the vanilla gradient and "
        f"{_cosine(r.cg_cosine)} for conjugate gradient",
    )


@claim(
    "kfac_partial_remedy",
    "§6",
    "K-FAC partially addresses the cost with a cheap-to-invert approximation of F.",
    "06_natural_gradient_problems",
)
def _kfac_partial(
    *,
    compare: Callable[..., cost.RemedyComparison] = cost.compare_remedies,
    approximation: Callable[..., object] | None = None,
    damping: float = 0.01,
    cg_iters: int = 10,
) -> Verdict:
    """Holds if K-FAC is (i) cheap: it stores and inverts at least 10 times less than the dense
    matrix, and (ii) partial: its matrix is more than 5% off F, and its direction gains at least
    0.05 in cosine to the damped natural gradient over the vanilla gradient (5% of the achievable
    improvement) without reaching conjugate gradient's."""
    kw = {} if approximation is None else {"approximation": approximation}
    return _kfac_check(_compare(compare, damping, cg_iters, **kw))


# ----------------------------------------------------------------------------------------
# The cost of an inverse, and Adam


@claim(
    "inverse_cubic",
    "§6",
    "Inverting a matrix takes O(N³) operations.",
    "06_natural_gradient_problems",
)
def _inverse_cubic(
    *,
    invert: Callable[[Tensor], Tensor] = cost.gauss_jordan_inverse,
    matrix: Callable[[int], Tensor] = cost.well_conditioned_matrix,
    sizes: tuple[int, ...] = (16, 32, 64, 128),
) -> Verdict:
    """Counts (not timings: they are the same on every machine) the operations of a textbook
    inversion at each size and fits their growth exponent; the inverse must be right (residual
    ‖AX − I‖_max ≤ 1e-8). Holds if the exponent is within 0.15 of 3 (the O(N²) lower-order terms
    lower it by about 1/N·const at these sizes), approximately within 0.5."""
    r = cost.inverse_scaling(invert, sizes, matrix)
    correct = r.max_residual <= 1e-8 and not r.uncounted
    outcome = grade(abs(r.exponent - 3.0), 0.15, 0.5) if correct else "does not hold as stated"
    return Verdict(
        outcome,
        f"operations counted at n = {', '.join(map(str, r.sizes))}: {_fmt(r.flops[-1])} at n = "
        f"{r.sizes[-1]} ({r.flops[-1] / r.sizes[-1] ** 3:.1f} n³), growth exponent {r.exponent:.2f}; "
        f"max |AX − I| {_bound(r.max_residual, 1e-8)}"
        + (f"; not counted: {', '.join(r.uncounted)}" if r.uncounted else ""),
    )


@claim(
    "adam_second_order",
    "§6",
    "Adam also takes second-order effects into account.",
    "06_natural_gradient_problems",
)
def _adam_second_order(
    *,
    rule: variants.StepRule = variants.adam_step,
    scales: tuple[float, ...] = (0.25, 1.0, 4.0),
    iterations: int = 5,
) -> Verdict:
    """On 2-D quadratics with the same gradient at the start and the Hessian scaled by s, the
    rule runs from the start on each, with Adam's moments built from its own gradients there
    (the warm-up redone per objective; ``variants.curvature_response_rewarmed``). A rule that
    reads the curvature responds at once, as Newton's (= natural, for a quadratic) first step
    does; a first-order rule only through the gradients it meets, as gradient descent does.
    Holds if, over the first ``iterations`` steps, the rule's displacement responds to s more
    than gradient descent's by at least half of Newton's response; approximately if by a tenth;
    otherwise it does not hold as stated."""
    r = variants.curvature_response_rewarmed(rule, scales=scales, iterations=iterations)
    newton = r.newton_response
    return Verdict(
        decide(r.excess >= 0.5 * newton, r.excess >= 0.1 * newton),
        f"Hessian scaled by {', '.join(f'{s:g}' for s in r.scales)}, same gradient at the start, "
        f"moments the rule's own: after k = 1–{r.iterations[-1]} steps the displacement spreads "
        f"over the scales by {', '.join(f'{x:.2f}' for x in r.response)} of its length "
        f"(gradient descent: {', '.join(f'{x:.2f}' for x in r.gd_response)}; Newton's first "
        f"step: {newton:.2f}); largest excess over gradient descent {r.excess:.2f}",
    )
