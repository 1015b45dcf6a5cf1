r"""How the natural-gradient computation breaks in practice (the note's §6, first problem).

The note warns that natural gradients are "numerically brittle": the Fisher matrix is only
estimated from samples and only locally valid. This module measures three symptoms.

* A sampled Fisher matrix :math:`\hat F = \frac1N\sum_i s_i s_i^\top` has rank at most
  :math:`N`, so it is singular whenever the batch is smaller than the parameter count;
  conjugate gradient on a singular or nearly singular system stalls (the part of
  :math:`g` outside the range of :math:`\hat F` can never be matched) while its iterate grows
  without bound (:func:`cg_trace`); :func:`fisher_spectrum` shows why.
* Damping, :math:`(\hat F + \lambda I)^{-1} g`, trades that instability for bias;
  :func:`damping_sweep` scores the step for each :math:`\lambda` by its direction, measured
  in the metric of the *reference* Fisher matrix (:func:`metric_cosine`), and by the KL it
  really causes compared with the budget :math:`\epsilon`.
* The budget is met only to second order: :func:`natural_step_kl` computes the realized KL
  of the step :math:`\sqrt{2\epsilon/d^\top F d}\; d` for budgets far from 0.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .._checks import as_tensor, require_finite, require_int, require_positive, require_vector
from ..divergences import policy_kl
from ..natural import natural_step
from ..policies import Policy
from ..solvers import NotPositiveDefiniteError, Operator, conjugate_gradient
from .taylor import Metric, kl_model


def _vector(name: str, value: Tensor, length: int | None = None) -> Tensor:
    return require_finite(name, require_vector(name, as_tensor(name, value), length))


def _numbers(name: str, values: Sequence[float], *, allow_zero: bool) -> list[float]:
    """A sequence of finite positive (or non-negative) numbers, checked."""
    try:
        return [require_positive(name, value, allow_zero=allow_zero) for value in values]
    except TypeError as exc:
        raise ValueError(f"{name} must be a sequence of numbers, got {values!r}") from exc


def _operator(fisher: Metric, n: int, name: str = "fisher") -> Operator:
    """``v -> F v`` for a dense ``(n, n)`` matrix or an operator, its output checked and in ``v``'s dtype."""
    if callable(fisher) and not isinstance(fisher, Tensor):
        operator = fisher

        def checked(v: Tensor) -> Tensor:
            out = operator(v)
            if not isinstance(out, Tensor) or out.shape != v.shape:
                got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
                raise ValueError(f"{name} must map a vector of shape {tuple(v.shape)} to one of that shape, got {got}")
            return require_finite(name, out).to(v.dtype)

        return checked
    matrix = require_finite(name, as_tensor(name, fisher))
    if matrix.shape != (n, n):
        raise ValueError(f"{name} must have shape ({n}, {n}), got {tuple(matrix.shape)}")
    return lambda v: (matrix @ v.to(matrix.dtype)).to(v.dtype)


def metric_cosine(direction: Tensor, reference: Tensor, fisher: Metric) -> float:
    r"""The cosine of the angle between two directions measured by the metric :math:`F`.

    .. math::

        \cos_F(d, d^*) = \frac{d^\top F d^*}{\sqrt{d^\top F d}\,\sqrt{d^{*\top} F d^*}}.

    With :math:`d^* = F^{-1}g` (the natural gradient) it equals
    :math:`g^\top d / (\|d\|_F \sqrt{g^\top F^{-1} g})`: the share of the best possible
    first-order improvement that a step along :math:`d` achieves for the same quadratic KL.
    Unlike the Euclidean cosine it does not depend on the parameterization, and it ignores
    directions the policy does not respond to.

    Raises:
        ValueError: if either direction has zero length in the metric, the vectors are not
            finite 1-D vectors of one length, or ``fisher`` is not an ``(n, n)`` matrix (or an
            operator returning finite vectors of length :math:`n`).
    """
    d = _vector("direction", direction)
    ref = _vector("reference", reference, d.shape[0]).to(d.dtype)
    apply = _operator(fisher, d.shape[0])
    f_ref = apply(ref)
    dd, rr = float(d @ apply(d)), float(ref @ f_ref)
    if not (dd > 0.0 and rr > 0.0):
        raise ValueError("direction and reference must have positive length in the metric fisher")
    return float(d @ f_ref) / math.sqrt(dd * rr)


def sampled_fisher_rank(scores: Tensor, rtol: float | None = None) -> int:
    r"""Numerical rank of the sampled Fisher matrix :math:`\hat F = \frac1N S^\top S` from its score matrix :math:`S`.

    :math:`\hat F` is :math:`n \times n` but its nonzero eigenvalues are those of the
    :math:`N \times N` Gram matrix :math:`\frac1N S S^\top`, which is cheap when
    :math:`N \ll n`; so its rank is at most :math:`N`. An eigenvalue counts if it exceeds
    ``rtol`` times the largest one; the default ``rtol`` is :math:`n` times the machine
    epsilon, the threshold :func:`torch.linalg.matrix_rank` applies to :math:`\hat F`.

    Args:
        scores: :math:`S`, shape ``(N, n)``, one score :math:`\nabla_\theta\log\pi_\theta(a_i\mid s_i)`
            per row (e.g. from :func:`npgbook.score_vectors`).
        rtol: relative threshold, or ``None`` for the default.

    Raises:
        ValueError: if ``scores`` is not a finite ``(N, n)`` matrix with :math:`N, n \ge 1`, or
            ``rtol`` is not positive.
    """
    scores = require_finite("scores", as_tensor("scores", scores))
    if scores.ndim != 2 or 0 in scores.shape:
        raise ValueError(f"scores must have shape (N, n) with N, n >= 1, got {tuple(scores.shape)}")
    n_samples, n_params = scores.shape
    if rtol is None:
        rtol = n_params * torch.finfo(scores.dtype).eps
    rtol = require_positive("rtol", rtol)
    gram = scores @ scores.T / n_samples
    eigenvalues = torch.linalg.eigvalsh(gram)
    top = float(eigenvalues[-1])
    if top <= 0.0:
        return 0
    return int((eigenvalues > rtol * top).sum())


@dataclass(frozen=True)
class FisherSpectrum:
    r"""Eigenvalues of a Fisher matrix and the natural gradient by its pseudo-inverse.

    Attributes:
        eigenvalues: all eigenvalues, largest first (rounding can make the smallest slightly
            negative).
        rank: how many exceed ``rtol`` times the largest (:func:`torch.linalg.matrix_rank`'s rule).
        natural_gradient: :math:`F^+ g = \sum_{i \le \text{rank}} u_i u_i^\top g / \lambda_i`, the
            minimum-norm solution of :math:`F x = g` when :math:`g` lies in the range of :math:`F`.
    """

    eigenvalues: np.ndarray
    rank: int
    natural_gradient: Tensor


def fisher_spectrum(fisher: Tensor, grad: Tensor, rtol: float | None = None) -> FisherSpectrum:
    r"""One symmetric eigendecomposition of :math:`F`: its spectrum, numerical rank and :math:`F^+g`.

    Args:
        fisher: a dense symmetric :math:`n \times n` Fisher matrix.
        grad: the gradient :math:`g`.
        rtol: relative eigenvalue threshold; default :math:`n` times the machine epsilon.

    Raises:
        ValueError: if ``fisher`` is not a finite, non-empty, symmetric square matrix (up to
            rounding), ``grad`` is not a finite vector of matching length, or ``rtol`` is not
            positive.
    """
    matrix = require_finite("fisher", as_tensor("fisher", fisher))
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] == 0:
        raise ValueError(f"fisher must be a non-empty square matrix, got shape {tuple(matrix.shape)}")
    # eigh reads one triangle only: an asymmetric matrix would be silently replaced by another one
    tolerance = math.sqrt(torch.finfo(matrix.dtype).eps) * float(matrix.abs().max())
    if float((matrix - matrix.T).abs().max()) > tolerance:
        raise ValueError("fisher must be symmetric")
    g = _vector("grad", grad, matrix.shape[0]).to(matrix.dtype)
    if rtol is None:
        rtol = matrix.shape[0] * torch.finfo(matrix.dtype).eps
    rtol = require_positive("rtol", rtol)
    values, vectors = torch.linalg.eigh(matrix)
    keep = values > rtol * float(values[-1].clamp_min(0.0))
    if float(values[-1]) <= 0.0:
        keep = torch.zeros_like(keep)
    basis = vectors[:, keep]
    direction = basis @ ((basis.T @ g) / values[keep])
    return FisherSpectrum(values.flip(0).numpy().copy(), int(keep.sum()), direction)


@dataclass(frozen=True)
class CGTrace:
    r"""Conjugate gradient on :math:`Ax = b`, observed at chosen iteration counts.

    Attributes:
        iterations: the iteration counts :math:`k` at which CG was observed.
        residual: :math:`\|b - A x_k\| / \|b\|` (recomputed, not the recursively updated residual).
        solution_norm: :math:`\|x_k\|`.
        broke_down: the first observed :math:`k` at which CG met a direction with
            :math:`p^\top A p \le 0` (:class:`~npgbook.solvers.NotPositiveDefiniteError`), else ``None``;
            observation stops there.
    """

    iterations: np.ndarray
    residual: np.ndarray
    solution_norm: np.ndarray
    broke_down: int | None


def cg_trace(matvec: Operator, b: Tensor, iterations: Sequence[int]) -> CGTrace:
    r"""Run :func:`npgbook.conjugate_gradient` for each iteration count in ``iterations`` and record the iterate.

    Each run restarts from :math:`x_0 = 0` (CG is deterministic, so :math:`x_k` is the same as in
    one long run); the cost is the sum of the counts.

    Args:
        matvec: :math:`v \mapsto A v`.
        b: the right-hand side, nonzero.
        iterations: increasing positive iteration counts.

    Raises:
        ValueError: if ``b`` is zero or not a finite vector, or ``iterations`` is not a
            non-empty increasing sequence of positive integers.
    """
    b = _vector("b", b)
    try:
        counts = [require_int("iterations", k) for k in iterations]
    except TypeError as exc:
        raise ValueError(f"iterations must be a sequence of iteration counts, got {iterations!r}") from exc
    if not counts or any(later <= earlier for earlier, later in itertools.pairwise(counts)):
        raise ValueError("iterations must be a non-empty increasing sequence")
    b_norm = float(b.norm())
    if b_norm == 0.0:
        raise ValueError("b must be nonzero")
    seen, residual, norms = [], [], []
    for k in counts:
        try:
            result = conjugate_gradient(matvec, b, max_iter=k, rtol=1e-13)
        except NotPositiveDefiniteError:
            return CGTrace(np.array(seen), np.array(residual), np.array(norms), k)
        seen.append(k)
        residual.append(float((b - matvec(result.x)).norm()) / b_norm)
        norms.append(float(result.x.norm()))
    return CGTrace(np.array(seen), np.array(residual), np.array(norms), None)


@dataclass(frozen=True)
class DampingSweep:
    r"""The natural step computed with each damping :math:`\lambda`, scored against a reference.

    Attributes:
        dampings: the :math:`\lambda` values.
        cosine: :func:`metric_cosine` of the step direction with the reference direction, in
            the reference metric.
        kl_ratio: realized :math:`\bar D_{\mathrm{KL}}(\pi_\theta\|\pi_{\theta+\Delta\theta})/\epsilon`.
        residual: final CG residual :math:`\|g - (\hat F+\lambda I)x\|/\|g\|`.
        failed: whether CG broke down (non-positive curvature), in which case the other entries
            are :math:`\infty` (``cosine``: :math:`-\infty`).
    """

    dampings: np.ndarray
    cosine: np.ndarray
    kl_ratio: np.ndarray
    residual: np.ndarray
    failed: np.ndarray


def damping_sweep(
    policy: Policy,
    theta: Tensor,
    obs: Tensor | None,
    grad: Tensor,
    fisher: Metric,
    dampings: Sequence[float],
    *,
    epsilon: float,
    max_iter: int,
    reference: Tensor,
    reference_fisher: Metric,
) -> DampingSweep:
    r"""Natural steps :math:`\sqrt{2\epsilon/g^\top x}\;x` with :math:`x \approx (\hat F+\lambda I)^{-1}g` by CG, for each :math:`\lambda`.

    Args:
        policy, theta, obs: the policy, the current parameters and the states on which the
            realized KL is averaged.
        grad: the policy gradient :math:`g`.
        fisher: :math:`\hat F`, the (possibly sampled, possibly singular) Fisher matrix the step
            is computed with, dense or as an operator.
        dampings: the values :math:`\lambda \ge 0` to try.
        epsilon: the KL budget :math:`\epsilon`.
        max_iter: CG iterations (10 is TRPO's custom; the dimension runs CG to convergence).
        reference: the direction to compare with, e.g. the exact natural gradient :math:`F^+g`
            computed by a dense solve.
        reference_fisher: the metric :math:`F` in which directions are compared.

    Raises:
        ValueError: for a bad ``theta``; a ``grad`` or ``reference`` that is not a finite vector
            of the parameter count; a zero ``grad``; a ``fisher`` or ``reference_fisher`` of the
            wrong shape or not finite; a non-positive ``epsilon`` or ``max_iter``; ``dampings``
            empty or with a negative or non-finite entry.
    """
    theta = policy.check_theta(theta)
    n = theta.shape[0]
    grad = _vector("grad", grad, n)
    if not bool(grad.any()):
        raise ValueError("grad must be nonzero (a zero gradient has no natural step)")
    epsilon = require_positive("epsilon", epsilon)
    max_iter = require_int("max_iter", max_iter)
    lams = np.array(_numbers("dampings", dampings, allow_zero=True))
    if lams.size == 0:
        raise ValueError("dampings must not be empty")
    base = _operator(fisher, n)
    _vector("reference", reference, n)
    _operator(reference_fisher, n, "reference_fisher")
    cosine, ratio, residual, failed = [], [], [], []
    for lam in lams:

        def damped(v: Tensor, lam: float = float(lam)) -> Tensor:
            return base(v) + lam * v

        try:
            step = natural_step(grad, damped, epsilon, max_iter=max_iter)
        except NotPositiveDefiniteError:
            cosine.append(-math.inf), ratio.append(math.inf), residual.append(math.inf), failed.append(True)
            continue
        assert step.cg is not None
        with torch.no_grad():
            kl = float(policy_kl(policy, theta, theta + step.step, obs))
        cosine.append(metric_cosine(step.direction, reference, reference_fisher))
        ratio.append(kl / epsilon)
        residual.append(float((grad - damped(step.direction)).norm() / grad.norm()))
        failed.append(False)
    return DampingSweep(lams, np.array(cosine), np.array(ratio), np.array(residual), np.array(failed))


def natural_step_kl(
    policy: Policy,
    theta: Tensor,
    obs: Tensor | None,
    direction: Tensor,
    fisher: Metric,
    epsilons: Sequence[float],
) -> np.ndarray:
    r"""Realized KL of the step :math:`\Delta\theta(\epsilon) = \sqrt{2\epsilon / d^\top F d}\; d` for each budget.

    By construction the quadratic model :math:`\tfrac12\Delta\theta^\top F\Delta\theta`
    (:func:`npgbook.experiments.taylor.kl_model`) equals :math:`\epsilon`; the realized
    :math:`\bar D_{\mathrm{KL}}(\pi_\theta\|\pi_{\theta+\Delta\theta})` agrees with it only as
    :math:`\epsilon \to 0`.

    Args:
        policy, theta, obs: the policy, the current parameters and the states.
        direction: the step direction :math:`d`, e.g. a natural gradient.
        fisher: the metric :math:`F` that defines the budget.
        epsilons: the budgets :math:`\epsilon > 0`.

    Raises:
        ValueError: if a step leaves the parameter space (e.g. makes :math:`\sigma \le 0`),
            ``direction`` has zero length in the metric, is not a finite vector of the parameter
            count, ``fisher`` has the wrong shape or is not finite, or a budget is not positive.
    """
    theta = policy.check_theta(theta)
    d = _vector("direction", direction, theta.shape[0]).to(theta.dtype)
    unit = float(kl_model(_operator(fisher, d.shape[0]), d))  # ½ dᵀFd
    if not unit > 0.0:
        raise ValueError("direction must have positive length in the metric fisher")
    out = []
    for eps in _numbers("epsilons", epsilons, allow_zero=False):
        with torch.no_grad():
            out.append(float(policy_kl(policy, theta, theta + math.sqrt(eps / unit) * d, obs)))
    return np.array(out)


@dataclass(frozen=True)
class EstimateDefiniteness:
    r"""How often the two sample estimates of the Fisher matrix fail to be positive definite.

    For each sample size :math:`N`, ``draws`` independent batches of :math:`N` actions
    :math:`a_i \sim \pi_\theta(\cdot\mid s_i)` give the outer-product estimate
    :math:`\hat F = \frac1N\sum_i s_is_i^\top` (:func:`npgbook.fisher_from_samples`) and the
    Hessian-form estimate :math:`\hat H = -\frac1N\sum_i\nabla^2\log\pi_\theta(a_i\mid s_i)`
    (:func:`npgbook.fisher_from_sample_hessians`). An estimate is *not positive definite* when
    its smallest eigenvalue is at most ``rtol`` times its largest (singular up to rounding, or
    indefinite), and *indefinite* when it is below :math:`-\text{rtol}` times the largest.

    Attributes:
        sizes: the sample sizes :math:`N`.
        n_params: the number of parameters :math:`n`.
        draws: batches per size.
        outer_not_pd, outer_indefinite: share of the draws, per size, for :math:`\hat F`.
        outer_rank: the largest numerical rank of :math:`\hat F` over the draws, per size.
        outer_min_ratio: the smallest :math:`\lambda_{\min}/\lambda_{\max}` of :math:`\hat F` over the draws.
        hessian_not_pd, hessian_indefinite: the same shares for :math:`\hat H`.
        hessian_min_ratio: the smallest :math:`\lambda_{\min}/\lambda_{\max}` of :math:`\hat H` over the draws.
    """

    sizes: np.ndarray
    n_params: int
    draws: int
    outer_not_pd: np.ndarray
    outer_indefinite: np.ndarray
    outer_rank: np.ndarray
    outer_min_ratio: np.ndarray
    hessian_not_pd: np.ndarray
    hessian_indefinite: np.ndarray
    hessian_min_ratio: np.ndarray


def estimate_definiteness(
    policy: Policy,
    theta: Tensor,
    obs: Tensor | None,
    sizes: Sequence[int],
    *,
    draws: int = 5,
    seed: int = 0,
    rtol: float | None = None,
) -> EstimateDefiniteness:
    r"""Whether the sampled Fisher matrices become positive definite as the sample grows.

    Args:
        policy, theta: the policy and its parameters.
        obs: the states; sample :math:`i` is taken in state ``obs[i % len(obs)]`` (``None`` for a
            stateless policy).
        sizes: sample sizes :math:`N \ge 1`; take some above :math:`n`, where the outer-product
            estimate *can* be nonsingular.
        draws: independent batches per size.
        seed: seeds the action sampling.
        rtol: relative eigenvalue threshold; default :math:`n` times the machine epsilon (the rule
            of :func:`torch.linalg.matrix_rank`).
    """
    from ..fisher import fisher_from_sample_hessians, fisher_from_samples
    from ..policies import sample_actions

    theta = policy.check_theta(theta).detach()
    obs = policy.check_obs(obs)
    ns = [require_int("sizes", n) for n in sizes]
    draws = require_int("draws", draws)
    n = theta.shape[0]
    if rtol is None:
        rtol = n * torch.finfo(theta.dtype).eps
    rtol = require_positive("rtol", rtol)
    generator = torch.Generator().manual_seed(require_int("seed", seed, minimum=0))
    rows: dict[str, list[float]] = {k: [] for k in ("on", "oi", "or", "om", "hn", "hi", "hm")}
    for size in ns:
        states = None if obs is None else obs[torch.arange(size) % obs.shape[0]]
        stats = []
        for _ in range(draws):
            dist = policy.distribution(theta, states)
            actions = sample_actions(dist, 1, generator).reshape(-1)
            if obs is None:
                actions = sample_actions(dist, size, generator).reshape(-1)
            outer = torch.linalg.eigvalsh(fisher_from_samples(policy, theta, actions, states))
            hess = torch.linalg.eigvalsh(fisher_from_sample_hessians(policy, theta, actions, states))
            stats.append((outer, hess))
        for key, index in (("o", 0), ("h", 1)):
            values = [s[index] for s in stats]
            ratios = [float(v[0]) / float(v[-1].abs().clamp_min(torch.finfo(v.dtype).tiny)) for v in values]
            rows[key + "n"].append(float(np.mean([r <= rtol for r in ratios])))
            rows[key + "i"].append(float(np.mean([r < -rtol for r in ratios])))
            rows[key + "m"].append(min(ratios))
        rows["or"].append(max(int((s[0] > rtol * float(s[0][-1])).sum()) for s in stats))
    return EstimateDefiniteness(
        np.array(ns),
        n,
        draws,
        np.array(rows["on"]),
        np.array(rows["oi"]),
        np.array(rows["or"], dtype=int),
        np.array(rows["om"]),
        np.array(rows["hn"]),
        np.array(rows["hi"]),
        np.array(rows["hm"]),
    )


@dataclass(frozen=True)
class RangeDefiniteness:
    r"""Whether the sample estimates are positive definite *on the range of the exact* :math:`F`.

    The exact Fisher matrix of a softmax network is itself singular (redundant logit directions
    are null for every state), so a sample estimate that is singular in those directions only
    inherits :math:`F`'s null space. This judges the estimates where :math:`F` is not zero:
    with :math:`U` the eigenvectors of the exact :math:`F` (over the same states) whose
    eigenvalues exceed ``range_rtol`` times the largest, an estimate :math:`\hat M` is
    *positive definite on the range* when the smallest eigenvalue of :math:`U^\top\hat M U` is
    above :math:`n\varepsilon_{\text{mach}}` times its largest, and *indefinite on the range*
    when it is below minus that.

    Attributes:
        sizes: the sample sizes :math:`N`.
        n_params: :math:`n`.
        draws: batches per size.
        range_dim: the dimension of the range of the exact :math:`F`, per size.
        outer_not_pd, outer_indefinite: share of the draws, per size, for :math:`\hat F`.
        outer_min_ratio: the smallest :math:`\lambda_{\min}/\lambda_{\max}` of
            :math:`U^\top\hat F U` over the draws, per size.
        hessian_not_pd, hessian_indefinite, hessian_min_ratio: the same for :math:`\hat H`.
    """

    sizes: np.ndarray
    n_params: int
    draws: int
    range_dim: np.ndarray
    outer_not_pd: np.ndarray
    outer_indefinite: np.ndarray
    outer_min_ratio: np.ndarray
    hessian_not_pd: np.ndarray
    hessian_indefinite: np.ndarray
    hessian_min_ratio: np.ndarray


def definiteness_on_range(
    policy: Policy,
    theta: Tensor,
    obs: Tensor | None,
    sizes: Sequence[int],
    *,
    exact_fisher: Callable[[Tensor | None], Tensor] | None = None,
    draws: int = 4,
    seed: int = 0,
    range_rtol: float = 1e-10,
) -> RangeDefiniteness:
    r"""The sample estimates of :func:`estimate_definiteness`, judged on the range of the exact F.

    Args:
        policy, theta, obs, sizes, draws, seed: as for :func:`estimate_definiteness` (sample
            :math:`i` in state ``obs[i % len(obs)]``; the same action draws for the same seed).
        exact_fisher: ``exact_fisher(states)`` gives the exact Fisher matrix over the states of
            a sample (``None`` for a stateless policy); default the exact expectation over
            actions, :func:`npgbook.fisher_score_outer` (categorical policies).
        range_rtol: eigenvalues of the exact :math:`F` above this share of the largest span the
            range; the default :math:`10^{-10}` keeps directions well above rounding
            (:math:`n\varepsilon_{\text{mach}} \approx 10^{-14}` here).
    """
    from ..fisher import fisher_from_sample_hessians, fisher_from_samples, fisher_score_outer
    from ..policies import sample_actions

    theta = policy.check_theta(theta).detach()
    obs = policy.check_obs(obs)
    ns = [require_int("sizes", n) for n in sizes]
    draws = require_int("draws", draws)
    range_rtol = require_positive("range_rtol", range_rtol)
    if exact_fisher is None:
        if obs is None:
            raise ValueError("exact_fisher is required for a stateless policy (obs is None)")

        def exact_fisher(states: Tensor | None) -> Tensor:
            return fisher_score_outer(policy, theta, states)

    n = theta.shape[0]
    rtol = n * torch.finfo(theta.dtype).eps
    generator = torch.Generator().manual_seed(require_int("seed", seed, minimum=0))
    rows: dict[str, list[float]] = {k: [] for k in ("r", "on", "oi", "om", "hn", "hi", "hm")}
    for size in ns:
        states = None if obs is None else obs[torch.arange(size) % obs.shape[0]]
        values, vectors = torch.linalg.eigh(exact_fisher(states))
        basis = vectors[:, values > range_rtol * float(values[-1])]
        rows["r"].append(basis.shape[1])
        ratios: dict[str, list[float]] = {"o": [], "h": []}
        for _ in range(draws):
            dist = policy.distribution(theta, states)
            actions = sample_actions(dist, 1, generator).reshape(-1)
            if obs is None:
                actions = sample_actions(dist, size, generator).reshape(-1)
            for key, estimate in (
                ("o", fisher_from_samples(policy, theta, actions, states)),
                ("h", fisher_from_sample_hessians(policy, theta, actions, states)),
            ):
                v = torch.linalg.eigvalsh(basis.T @ estimate @ basis)
                ratios[key].append(float(v[0]) / float(v[-1].abs().clamp_min(torch.finfo(v.dtype).tiny)))
        for key in ("o", "h"):
            rows[key + "n"].append(float(np.mean([r <= rtol for r in ratios[key]])))
            rows[key + "i"].append(float(np.mean([r < -rtol for r in ratios[key]])))
            rows[key + "m"].append(min(ratios[key]))
    return RangeDefiniteness(
        np.array(ns),
        n,
        draws,
        np.array(rows["r"], dtype=int),
        *(np.array(rows[k]) for k in ("on", "oi", "om", "hn", "hi", "hm")),
    )
