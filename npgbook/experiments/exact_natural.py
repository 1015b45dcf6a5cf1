r"""Chapter 5's experiments: the natural step on problems where everything is exact (§5-§6).

Each function returns the numbers that chapter 5 prints or plots and that the chapter's claims
(:mod:`npgbook.claims.ch05_natural_step`) decide their verdicts from, so that the book and the
claims table show one computation:

* :func:`note_intermediate_step`, :func:`relaxed_stationarity`, :func:`random_problem` -- the sign
  of the stationary point of the relaxed problem;
* :func:`budget_spending` -- whether :math:`\alpha = \sqrt{2\epsilon/g^\top F^{-1}g}` spends the budget;
* :func:`kl_benches`, :func:`realized_kl_ratios` -- the KL a natural step really causes;
* :func:`reparameterization_errors`, :func:`traced_path`, :func:`invariance_distances` -- the
  natural step under the change :math:`(\mu, \sigma) \to (\mu, \log\sigma)`;
* :func:`step_scan` -- step lengths across the bandit's landscape at a given :math:`\sigma`;
* :func:`plateau_iterations`, :func:`plateau_vanilla_iterations` -- the natural and the vanilla
  update on chapter 2's two-state plateau;
* :func:`first_overshoot`, :func:`peak_approach` -- fixed-length runs towards the bandit's peak.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial.distance import directed_hausdorff
from torch import Tensor

from ..divergences import policy_kl
from ..fisher import fisher_categorical, fisher_gaussian, fisher_vector_product
from ..natural import NaturalStep, natural_step
from ..policies import CategoricalPolicy, GaussianPolicy, MLPCategoricalPolicy, Policy
from ..problems import mdp as finite_mdp
from ..problems.bandit import GaussianBandit
from .ascent import AscentPath, natural_ascent, vanilla_ascent
from .taylor import kl_model, lambda_for_epsilon

BANDIT = GaussianBandit(target=2.0, width=0.5)
"""The book's Gaussian-bump bandit (chapters 1, 2 and 5)."""

GaussianFisher = Callable[[float, float, str], Tensor]
"""``(mu, sigma, parameterization) -> F``, e.g. :func:`npgbook.fisher_gaussian`."""

StepFunction = Callable[..., NaturalStep]
"""A function with the signature of :func:`npgbook.natural_step`."""


def _gaussian_fisher_fn(policy: GaussianPolicy, fisher: GaussianFisher) -> Callable[[Tensor], Tensor]:
    def at(theta: Tensor) -> Tensor:
        mu, sigma = (float(x) for x in policy.mean_std(theta))
        return fisher(mu, sigma, policy.parameterization)

    return at


# ----------------------------------------------------------------------------------------
# The stationary point of the relaxed problem


def note_intermediate_step(g: Tensor, fisher: Tensor, lam: float) -> Tensor:
    r"""The note's intermediate solution :math:`\Delta\theta = -\tfrac1\lambda F^{-1}\nabla J`."""
    return -torch.linalg.solve(fisher, g) / lam


@dataclass(frozen=True)
class RelaxedStationarity:
    r"""How a candidate step does on :math:`L(\Delta\theta) = g^\top\Delta\theta - \tfrac\lambda2\Delta\theta^\top F\Delta\theta`.

    Attributes:
        residual: :math:`\lVert g - \lambda F\Delta\theta\rVert / \lVert g\rVert`, the gradient of
            :math:`L` at the step relative to :math:`g` (0 at the maximizer).
        slope: :math:`g^\top\Delta\theta`, the first-order change of :math:`J` (> 0: uphill).
        objective: :math:`L(\Delta\theta)`.
        optimum: :math:`\max L = g^\top F^{-1}g / (2\lambda)`.
    """

    residual: float
    slope: float
    objective: float
    optimum: float


def relaxed_stationarity(g: Tensor, fisher: Tensor, lam: float, step: Tensor) -> RelaxedStationarity:
    r"""Evaluate ``step`` as a solution of :math:`\max_{\Delta\theta} L(\Delta\theta)` (see
    :class:`RelaxedStationarity`). :math:`L` is concave for positive definite :math:`F`, so a
    step with zero residual is its maximizer."""
    residual = float((g - lam * fisher @ step).norm() / g.norm())
    objective = float(g @ step - 0.5 * lam * step @ fisher @ step)
    optimum = float(g @ torch.linalg.solve(fisher, g)) / (2 * lam)
    return RelaxedStationarity(residual, float(g @ step), objective, optimum)


def random_problem(seed: int, n: int = 6) -> tuple[Tensor, Tensor]:
    """A random gradient and a random positive definite matrix ``m mᵀ + 0.1 I`` of size ``n``."""
    gen = torch.Generator().manual_seed(seed)
    m = torch.randn(n, n, generator=gen)
    g = torch.randn(n, generator=gen)
    return g, m @ m.T + 0.1 * torch.eye(n)


# ----------------------------------------------------------------------------------------
# The step size


@dataclass(frozen=True)
class BudgetSpending:
    r"""The largest relative deviations over a set of budgets.

    Attributes:
        model: :math:`|\tfrac12\Delta\theta^\top F\Delta\theta/\epsilon - 1|`.
        alpha: :math:`|\alpha / \sqrt{2\epsilon/g^\top F^{-1}g} - 1|`.
        multiplier: :math:`|\lambda\alpha - 1|`, :math:`\lambda` by root finding (chapter 4).
    """

    model: float
    alpha: float
    multiplier: float


def budget_spending(
    g: Tensor,
    fisher: Tensor,
    budgets: Sequence[float],
    *,
    step: StepFunction = natural_step,
) -> BudgetSpending:
    """How exactly the steps ``step(g, fisher, ε)`` spend each budget ε (see :class:`BudgetSpending`)."""
    quad = float(g @ torch.linalg.solve(fisher, g))
    model = alpha = multiplier = 0.0
    for e in budgets:
        s = step(g, fisher, float(e))
        model = max(model, abs(float(kl_model(fisher, s.step)) / e - 1))
        alpha = max(alpha, abs(s.alpha / math.sqrt(2 * e / quad) - 1))
        multiplier = max(multiplier, abs(lambda_for_epsilon(g, fisher, float(e)) * s.alpha - 1))
    return BudgetSpending(model, alpha, multiplier)


# ----------------------------------------------------------------------------------------
# The realized KL


@dataclass(frozen=True)
class KLBench:
    """A policy at a point, with the gradient and the Fisher matrix (or operator) of a natural step.

    ``solver`` holds the conjugate-gradient settings when ``fisher`` is an operator.
    """

    policy: Policy
    theta: Tensor
    grad: Tensor
    fisher: Tensor | Callable[[Tensor], Tensor]
    obs: Tensor | None = None
    solver: dict | None = None


def kl_benches(advantage_seeds: Sequence[int] = (2, 5)) -> dict[str, KLBench]:
    """Chapter 5's policies for the realized-KL measurement.

    The Gaussian at N(1, 0.3²) on :data:`BANDIT` in both parameterizations; a 4-action
    categorical policy (logits from seed 0) with the gradient of a random reward vector
    (seed 1); and a 67-parameter ``MLPCategoricalPolicy(4, 3, hidden=(8,))`` on 256 standard
    normal observations (seed 3) with the gradient of a random advantage table per seed.
    """
    benches: dict[str, KLBench] = {}
    for param, label in (("sigma", "σ"), ("log_sigma", "log σ")):
        pol = GaussianPolicy(param)
        th = pol.params(1.0, 0.3)
        benches[f"Gaussian (μ, {label})"] = KLBench(
            pol, th, BANDIT.exact_gradient(pol, th), fisher_gaussian(1.0, 0.3, param)
        )
    cat = CategoricalPolicy(4)
    logits = torch.randn(4, generator=torch.Generator().manual_seed(0))
    rewards = torch.randn(4, generator=torch.Generator().manual_seed(1))
    g_cat = torch.func.grad(lambda th: torch.softmax(th, 0) @ rewards)(logits)
    f_cat = fisher_categorical(logits)
    benches["categorical"] = KLBench(cat, logits, g_cat, lambda v: f_cat @ v, solver={"rtol": 1e-14})
    obs = torch.randn(256, 4, generator=torch.Generator().manual_seed(3))
    mlp = MLPCategoricalPolicy(4, 3, hidden=(8,))
    theta = mlp.initial_params(seed=0, last_layer_scale=1.0)
    fvp = fisher_vector_product(mlp, theta, obs)
    for seed in advantage_seeds:
        adv = torch.randn(256, 3, generator=torch.Generator().manual_seed(seed))
        g = torch.func.grad(lambda th, adv=adv: (mlp.distribution(th, obs).probs * adv).sum(1).mean())(theta)
        benches[f"MLP, advantages seed {seed}"] = KLBench(
            mlp, theta, g, fvp, obs, {"max_iter": 1000, "rtol": 1e-10}
        )
    return benches


def realized_kl_ratios(
    eps_grid: Sequence[float],
    *,
    benches: dict[str, KLBench] | None = None,
    step: StepFunction = natural_step,
) -> dict[str, np.ndarray]:
    r"""Realized :math:`D_{\mathrm{KL}}(\pi_\theta\,\|\,\pi_{\theta+\Delta\theta}) / \epsilon` of the natural step.

    For each bench (default :func:`kl_benches`) the step for :math:`\epsilon = 1` is computed once;
    the step for budget :math:`\epsilon` is :math:`\sqrt\epsilon` times it (the step is
    proportional to :math:`\sqrt\epsilon`).

    Raises:
        RuntimeError: if a conjugate-gradient solve did not converge.
    """
    benches = kl_benches() if benches is None else benches
    out = {}
    for name, b in benches.items():
        unit = step(b.grad, b.fisher, 1.0, **(b.solver or {}))
        if unit.cg is not None and not unit.cg.converged:
            raise RuntimeError(f"conjugate gradient did not converge for {name}")
        out[name] = np.array(
            [
                float(policy_kl(b.policy, b.theta, b.theta + math.sqrt(e) * unit.step, b.obs)) / e
                for e in eps_grid
            ]
        )
    return out


# ----------------------------------------------------------------------------------------
# Parameterization invariance


@dataclass(frozen=True)
class ReparameterizationErrors:
    r"""The relations between the natural steps in :math:`\theta = (\mu,\sigma)` and :math:`\phi = (\mu,\log\sigma)`.

    With :math:`J = \partial\theta/\partial\phi = \operatorname{diag}(1, \sigma)`, the largest
    relative errors over the points of:

    Attributes:
        fisher: :math:`F_\phi = J^\top F_\theta J`.
        gradient: :math:`g_\phi = J^\top g_\theta`.
        direction: :math:`J F_\phi^{-1}g_\phi = F_\theta^{-1}g_\theta`.
        step: :math:`J\Delta\phi = \Delta\theta` (the two natural steps, budget ``epsilons[0]``).
        kl_model: :math:`\tfrac12\Delta\phi^\top F_\phi\Delta\phi = \tfrac12\Delta\theta^\top F_\theta\Delta\theta`.
        remainder: per budget, :math:`\lVert\theta(\phi + \Delta\phi) - (\theta + \Delta\theta)\rVert /
            \lVert\Delta\theta\rVert` (largest over the points): how far the :math:`\log\sigma`
            step, carried over exactly, lands from the :math:`\sigma` step. First-order agreement
            makes it shrink like :math:`\sqrt\epsilon`.
    """

    fisher: float
    gradient: float
    direction: float
    step: float
    kl_model: float
    remainder: dict[float, float]

    @property
    def exact(self) -> float:
        """The largest of the exact relations' errors."""
        return max(self.fisher, self.gradient, self.direction, self.step, self.kl_model)


def _rel(a: Tensor, b: Tensor) -> float:
    return float((a - b).norm() / b.norm())


def reparameterization_errors(
    points: Sequence[tuple[float, float]],
    epsilons: Sequence[float],
    *,
    fisher: GaussianFisher = fisher_gaussian,
    bandit: GaussianBandit = BANDIT,
) -> ReparameterizationErrors:
    """Measure :class:`ReparameterizationErrors` at the points ``(μ, σ)`` on ``bandit``."""
    sig, log = GaussianPolicy("sigma"), GaussianPolicy("log_sigma")
    err = {"fisher": 0.0, "gradient": 0.0, "direction": 0.0, "step": 0.0, "kl_model": 0.0}
    remainder = {float(e): 0.0 for e in epsilons}
    for mu, sigma in points:
        th, ph = sig.params(mu, sigma), log.params(mu, sigma)
        jac = torch.diag(torch.tensor([1.0, sigma]))
        f_th, f_ph = fisher(mu, sigma, "sigma"), fisher(mu, sigma, "log_sigma")
        g_th, g_ph = bandit.exact_gradient(sig, th), bandit.exact_gradient(log, ph)
        err["fisher"] = max(err["fisher"], _rel(f_ph, jac.T @ f_th @ jac))
        err["gradient"] = max(err["gradient"], _rel(g_ph, jac.T @ g_th))
        for i, e in enumerate(epsilons):
            s_th, s_ph = natural_step(g_th, f_th, float(e)), natural_step(g_ph, f_ph, float(e))
            if i == 0:
                err["direction"] = max(err["direction"], _rel(jac @ s_ph.direction, s_th.direction))
                err["step"] = max(err["step"], _rel(jac @ s_ph.step, s_th.step))
                kl_th, kl_ph = kl_model(f_th, s_th.step), kl_model(f_ph, s_ph.step)
                err["kl_model"] = max(err["kl_model"], abs(float(kl_ph / kl_th) - 1))
            mapped = torch.stack(list(log.mean_std(ph + s_ph.step)))
            remainder[float(e)] = max(
                remainder[float(e)], float((mapped - (th + s_th.step)).norm() / s_th.step.norm())
            )
    return ReparameterizationErrors(**err, remainder=remainder)


def traced_path(
    method: str,
    parameterization: str,
    size: float,
    *,
    fisher: GaussianFisher = fisher_gaussian,
    bandit: GaussianBandit = BANDIT,
    start: tuple[float, float] = (0.0, 2.0),
    target: float = 0.9,
    max_iter: int = 5000,
) -> np.ndarray:
    """The ``(μ, σ)`` points of a ``"vanilla"`` (size = α) or ``"natural"`` (size = ε) run.

    The run starts at ``N(start)`` and stops when ``J ≥ target`` (or after ``max_iter`` updates).
    """
    pol = GaussianPolicy(parameterization)  # type: ignore[arg-type]

    def obj(th: Tensor) -> Tensor:
        return bandit.expected_reward(pol, th)

    def grd(th: Tensor) -> Tensor:
        return bandit.exact_gradient(pol, th)

    theta0 = pol.params(*start)
    if method == "natural":
        fis = _gaussian_fisher_fn(pol, fisher)
        run = natural_ascent(obj, grd, fis, theta0, size, max_iter, target=target)
    elif method == "vanilla":
        run = vanilla_ascent(obj, grd, theta0, size, max_iter, target=target)
    else:
        raise ValueError(f"method must be 'natural' or 'vanilla', got {method!r}")
    return np.array([[float(x) for x in pol.mean_std(th)] for th in run.thetas])


def hausdorff(a: np.ndarray, b: np.ndarray) -> float:
    """The symmetric Hausdorff distance between two point sets."""
    return max(directed_hausdorff(a, b)[0], directed_hausdorff(b, a)[0])


@dataclass(frozen=True)
class InvarianceDistances:
    """Hausdorff distances between the (μ, σ) and (μ, log σ) paths, per step size.

    ``curves`` maps ``(method, parameterization, size)`` to the traced ``(μ, σ)`` points.
    """

    natural: dict[float, float]
    vanilla: dict[float, float]
    curves: dict[tuple[str, str, float], np.ndarray]


def invariance_distances(
    nat_eps: Sequence[float],
    van_alpha: Sequence[float],
    *,
    fisher: GaussianFisher = fisher_gaussian,
) -> InvarianceDistances:
    """Trace natural (ε) and vanilla (α) paths in both parameterizations (:func:`traced_path`)."""
    curves = {}
    dist: dict[str, dict[float, float]] = {"natural": {}, "vanilla": {}}
    for method, sizes in (("natural", nat_eps), ("vanilla", van_alpha)):
        for s in sizes:
            for p in ("sigma", "log_sigma"):
                curves[method, p, s] = traced_path(method, p, s, fisher=fisher)
            dist[method][s] = hausdorff(curves[method, "sigma", s], curves[method, "log_sigma", s])
    return InvarianceDistances(dist["natural"], dist["vanilla"], curves)


# ----------------------------------------------------------------------------------------
# Cautious and bold


@dataclass(frozen=True)
class StepScan:
    r"""Steps along a line :math:`\sigma = \text{const}` of the bandit, :math:`\theta = (\mu, \log\sigma)`.

    Attributes:
        mus: the grid of means.
        vanilla: :math:`\lVert\nabla J\rVert` (the vanilla step with :math:`\alpha = 1`).
        natural: :math:`\lVert\Delta\theta\rVert` of the natural step.
        natural_mu: :math:`|\Delta\mu|`, the natural step's component along :math:`\mu`.
        slope_mu: :math:`|\partial J/\partial\mu|`.
    """

    mus: np.ndarray
    vanilla: np.ndarray
    natural: np.ndarray
    natural_mu: np.ndarray
    slope_mu: np.ndarray


def step_scan(
    mus: Sequence[float],
    sigma: float,
    epsilon: float,
    *,
    fisher: GaussianFisher = fisher_gaussian,
    bandit: GaussianBandit = BANDIT,
) -> StepScan:
    """Vanilla and natural steps at ``N(μ, sigma²)`` for every μ in ``mus`` (see :class:`StepScan`)."""
    policy = GaussianPolicy("log_sigma")
    rows = []
    for m in mus:
        g = bandit.exact_gradient(policy, policy.params(float(m), sigma))
        s = natural_step(g, fisher(float(m), sigma, "log_sigma"), epsilon).step
        rows.append((float(g.norm()), float(s.norm()), abs(float(s[0])), abs(float(g[0]))))
    van, nat, nat_mu, slope = (np.array(c) for c in zip(*rows, strict=True))
    return StepScan(np.asarray(mus, dtype=float), van, nat, nat_mu, slope)


# ----------------------------------------------------------------------------------------
# The two-state plateau


def two_state() -> tuple[finite_mdp.FiniteMDP, finite_mdp.TabularSoftmaxPolicy]:
    """Chapter 2's two-state decision process and its tabular softmax policy."""
    mdp = finite_mdp.two_state_mdp(stay_rewards=(1.0, 2.0), gamma=0.9)
    return mdp, finite_mdp.TabularSoftmaxPolicy(2, 2)


def plateau_start(gap: float) -> Tensor:
    """The logits ``[[0, -gap], [-gap, 0]]``: each state prefers the action that leaves it."""
    return finite_mdp.TabularSoftmaxPolicy(2, 2).params([[0.0, -gap], [-gap, 0.0]])


def plateau_iterations(
    gap: float,
    epsilon: float,
    n_iter: int = 500,
    *,
    gradient: Callable[[Tensor], Tensor] | None = None,
    fisher: Callable[[Tensor], Tensor] | None = None,
) -> int | None:
    r"""Natural-update iterations to :math:`J \ge 0.9 J^*` on :func:`two_state` from
    :func:`plateau_start` (``None`` if ``n_iter`` updates do not reach it).

    ``gradient`` and ``fisher`` default to the exact gradient and Kakade's Fisher matrix; the
    singular Fisher matrix is handed to the solver as an operator (conjugate gradient).
    """
    mdp, tabular = two_state()
    grd = gradient or (lambda th: mdp.exact_gradient(tabular, th))
    fis = fisher or (lambda th: mdp.fisher(tabular, th))

    def operator(th: Tensor) -> Callable[[Tensor], Tensor]:
        matrix = fis(th)
        return lambda v: matrix @ v

    run = natural_ascent(
        lambda th: mdp.expected_return(tabular, th),
        grd,
        operator,
        plateau_start(gap),
        epsilon,
        n_iter,
        target=0.9 * mdp.optimal_return(),
    )
    return run.reached


PLATEAU_VANILLA_ITERATIONS = 10_000
"""The vanilla update's iteration budget on the plateau (chapter 2's budget)."""


def plateau_vanilla_iterations(
    gap: float,
    alpha: float = 1.0,
    n_iter: int = PLATEAU_VANILLA_ITERATIONS,
    *,
    gradient: Callable[[Tensor], Tensor] | None = None,
) -> int | None:
    r"""Vanilla-update iterations to :math:`J \ge 0.9 J^*` on :func:`two_state` from
    :func:`plateau_start` (``None`` if ``n_iter`` updates do not reach it).

    The update is :math:`\theta_{k+1} = \theta_k + \alpha\nabla J(\theta_k)` with the exact
    gradient (or ``gradient``), the run of chapter 2's plateau experiment; chapter 5 and its
    claim ``natural_escapes_plateau`` both count with this function.
    """
    mdp, tabular = two_state()
    grd = gradient or (lambda th: mdp.exact_gradient(tabular, th))
    run = vanilla_ascent(
        lambda th: mdp.expected_return(tabular, th),
        grd,
        plateau_start(gap),
        alpha,
        n_iter,
        target=0.9 * mdp.optimal_return(),
    )
    return run.reached


# ----------------------------------------------------------------------------------------
# Approaching the peak


def first_overshoot(path: AscentPath, peak: float, tol: float = 1e-9) -> int | None:
    """The first iteration k whose step k → k+1 overshoots the peak, or ``None``.

    A step overshoots if it lowers J by more than ``tol``, or if μ (the first parameter)
    crosses ``peak`` and lands farther from it (by more than ``tol``) than it was.
    """
    d = path.thetas[:, 0].numpy() - peak
    falls = np.diff(path.values.numpy()) < -tol
    jumps = (d[:-1] * d[1:] < 0) & (np.abs(d[1:]) > np.abs(d[:-1]) + tol)
    hits = np.nonzero(falls | jumps)[0]
    return int(hits[0]) if hits.size else None


@dataclass(frozen=True)
class PeakRun:
    """A fixed-length run: its path, the first overshoot (or ``None``) and the progress made.

    ``progress`` is the share of the gap between the starting J and the best value 1 (the peak
    reward) closed at the end of the run.
    """

    path: AscentPath
    overshoot: int | None
    progress: float


@dataclass(frozen=True)
class PeakApproach:
    """Natural runs per (budget, start name) and vanilla runs from the flank per step size."""

    starts: dict[str, Tensor]
    natural: dict[tuple[float, str], PeakRun]
    vanilla: dict[float, PeakRun]


def peak_approach(
    budgets: Sequence[float],
    alphas: Sequence[float],
    n_iter: int = 60,
    *,
    gradient: Callable[[Tensor], Tensor] | None = None,
    fisher: GaussianFisher = fisher_gaussian,
    overshoot: Callable[[AscentPath, float], int | None] = first_overshoot,
    bandit: GaussianBandit = BANDIT,
) -> PeakApproach:
    r"""Run ``n_iter`` natural updates (no stopping at a target) per budget from N(1, 0.3²) and
    from the flat tail where one vanilla step with :math:`\alpha = 10` lands, and ``n_iter``
    vanilla updates from N(1, 0.3²) per step size; record overshoots and progress
    (:class:`PeakRun`). ``gradient`` defaults to the exact gradient of ``bandit``."""
    policy = GaussianPolicy("log_sigma")

    def objective(th: Tensor) -> Tensor:
        return bandit.expected_reward(policy, th)

    def exact(th: Tensor) -> Tensor:
        return bandit.exact_gradient(policy, th)

    grd = gradient or exact
    fis = _gaussian_fisher_fn(policy, fisher)
    flank = policy.params(1.0, 0.3)
    tail = vanilla_ascent(objective, exact, flank, 10.0, 1).thetas[1]
    starts = {"N(1, 0.3²)": flank, f"the tail μ = {float(tail[0]):.1f}": tail}
    best = float(bandit.reward(torch.tensor(bandit.target)))

    def record(path: AscentPath) -> PeakRun:
        j0, j1 = float(path.values[0]), float(path.values[-1])
        return PeakRun(path, overshoot(path, bandit.target), (j1 - j0) / (best - j0))

    natural = {
        (e, name): record(natural_ascent(objective, grd, fis, th, e, n_iter))
        for e in budgets
        for name, th in starts.items()
    }
    vanilla = {a: record(vanilla_ascent(objective, grd, flank, a, n_iter)) for a in alphas}
    return PeakApproach(starts, natural, vanilla)
