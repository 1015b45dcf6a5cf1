r"""What a natural-gradient direction :math:`F^{-1}g` costs as the policy network grows (the note's §6).

Three ways to compute it for an MLP policy with :math:`n` parameters on :math:`N` states:

* ``"dense"`` -- form :math:`F` (:func:`npgbook.fisher_score_outer`, :math:`n^2` numbers, time
  :math:`\propto N n^2`) and solve :math:`(F+\lambda I)x = g` by Cholesky (:math:`n^3/3`
  multiply-adds);
* ``"cg"`` -- never form :math:`F`: conjugate gradient with Fisher-vector products
  (:func:`npgbook.fisher_vector_product`), memory :math:`O(n + N\cdot\text{width})` and time
  :math:`\propto` iterations :math:`\times N n`;
* ``"kfac"`` -- the Kronecker-factored approximation (:mod:`npgbook.kfac`): per layer two
  factors of the layer's widths, inverted through their eigendecompositions.

:func:`measure_natural_gradient_cost` times one of them and measures its peak memory
(:func:`peak_memory`); :func:`fit_power_law` fits :math:`y = c\,n^p` on log-log axes, which is
how the book reads off the exponents and extrapolates to sizes that do not fit in memory.
"""

from __future__ import annotations

import ctypes
import itertools
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

import numpy as np
import torch
from torch import Tensor

from .._checks import DTYPE, require_finite, require_int, require_positive, require_vector
from ..fisher import (
    fisher_from_samples,
    fisher_kl_hessian,
    fisher_score_outer,
    fisher_vector_product,
)
from ..kfac import kfac_fisher
from ..natural import natural_gradient
from ..policies import MLPCategoricalPolicy, Policy, sample_actions
from ..solvers import conjugate_gradient
from .taylor import fit_loglog_slope

T = TypeVar("T")
Method = Literal["dense", "cg", "kfac"]
METHODS: tuple[str, ...] = ("dense", "cg", "kfac")


def mlp_n_params(obs_dim: int, n_actions: int, hidden: Sequence[int]) -> int:
    r"""Parameter count of :class:`~npgbook.policies.MLPCategoricalPolicy`: :math:`\sum_\ell (\text{in}_\ell + 1)\,\text{out}_\ell`."""
    widths = [require_int("obs_dim", obs_dim), *(require_int("hidden", h) for h in hidden)]
    widths.append(require_int("n_actions", n_actions, minimum=2))
    return sum((a + 1) * b for a, b in itertools.pairwise(widths))


def mlp_with_n_params(
    n_params: int, *, obs_dim: int = 4, n_actions: int = 2, depth: int = 2, dtype: torch.dtype = DTYPE
) -> MLPCategoricalPolicy:
    """The MLP policy with ``depth`` hidden layers of one common width whose size is closest to ``n_params``.

    With CartPole's 4 inputs and 2 actions and two hidden layers of width :math:`h` the count is
    :math:`h^2 + 8h + 2`: 130 for :math:`h = 8`, about :math:`10^6` for :math:`h = 1000`.
    """
    target = require_int("n_params", n_params)
    depth = require_int("depth", depth)
    width = 1
    while mlp_n_params(obs_dim, n_actions, (width + 1,) * depth) <= target:
        width += 1
    below = mlp_n_params(obs_dim, n_actions, (width,) * depth)
    above = mlp_n_params(obs_dim, n_actions, (width + 1,) * depth)
    if abs(above - target) < abs(target - below):
        width += 1
    return MLPCategoricalPolicy(obs_dim, n_actions, (width,) * depth, dtype)


def dense_fisher_bytes(n_params: int, dtype: torch.dtype = DTYPE) -> int:
    """Bytes of a dense :math:`n \\times n` Fisher matrix: :math:`n^2` entries of ``dtype``'s size."""
    n = require_int("n_params", n_params)
    return n * n * torch.empty((), dtype=dtype).element_size()


def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not found in /proc/self/status")


def peak_memory_supported() -> bool:
    """Whether :func:`peak_memory` works here (Linux, with a writable ``/proc/self/clear_refs``)."""
    return os.access("/proc/self/clear_refs", os.W_OK) and os.path.exists("/proc/self/status")


def peak_memory(run: Callable[[], T]) -> tuple[T, int]:
    """Run ``run()`` and measure how far the process's resident memory rose above its level before.

    Linux only: returns the free heap to the system (``malloc_trim``), resets the kernel's
    peak-RSS counter (writing 5 to ``/proc/self/clear_refs``), runs, and reads the peak
    (``VmHWM``) minus the starting ``VmRSS``. It counts everything the computation touched:
    the result, temporary tensors and autograd graphs. Page granularity (4 KiB) and
    allocator reuse make it coarse for small computations.

    Returns:
        ``(result, n_bytes)``.

    Raises:
        RuntimeError: where the counters are unavailable (see :func:`peak_memory_supported`).
    """
    if not peak_memory_supported():
        raise RuntimeError("peak_memory needs Linux's /proc/self/clear_refs and /proc/self/status")
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # not glibc: the measurement is only coarser
        pass
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")
    start = _status_bytes("VmRSS")
    result = run()
    return result, max(_status_bytes("VmHWM") - start, 0)


@dataclass(frozen=True)
class CostMeasurement:
    """The cost of one natural-gradient direction by one method.

    Attributes:
        method: ``"dense"``, ``"cg"`` or ``"kfac"``.
        n_params: :math:`n`.
        n_states: :math:`N`, the states the Fisher matrix averages over.
        seconds_build: forming what the solve needs (dense :math:`F`; the Fisher-vector-product
            operator; the K-FAC factors and their eigendecompositions).
        seconds_solve: the solve (Cholesky; ``cg_iters`` CG iterations; the factored inverse).
        peak_bytes: peak memory of build plus solve (:func:`peak_memory`), ``None`` where it
            cannot be measured.
    """

    method: str
    n_params: int
    n_states: int
    seconds_build: float
    seconds_solve: float
    peak_bytes: int | None

    @property
    def seconds(self) -> float:
        """Build plus solve."""
        return self.seconds_build + self.seconds_solve


def measure_natural_gradient_cost(
    policy: MLPCategoricalPolicy,
    theta: Tensor,
    obs: Tensor,
    grad: Tensor,
    method: Method,
    *,
    damping: float = 0.01,
    cg_iters: int = 10,
    repeats: int = 2,
    memory: bool = True,
) -> CostMeasurement:
    r"""Time (shortest of ``repeats``) and peak memory of computing :math:`(F+\lambda I)^{-1}g` by ``method``.

    Args:
        policy, theta, obs: the policy, its parameters and the batch of states.
        grad: the right-hand side :math:`g` (its values do not affect the cost).
        method: ``"dense"``, ``"cg"`` or ``"kfac"`` (see the module docstring).
        damping: :math:`\lambda > 0` (keeps the dense Cholesky and K-FAC solves defined).
        cg_iters: conjugate-gradient iterations; all are run (no early stop) so that the
            cost is that of exactly ``cg_iters`` Fisher-vector products.
        repeats: timed runs per phase; the shortest is kept.
        memory: also measure peak memory (one more untimed run) if the platform allows.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    theta = policy.check_theta(theta).detach()
    obs = policy.check_obs(obs)
    grad = require_finite("grad", require_vector("grad", grad, policy.n_params)).to(theta.dtype)
    damping = require_positive("damping", damping)
    cg_iters = require_int("cg_iters", cg_iters)
    repeats = require_int("repeats", repeats)

    build: Callable[[], object]
    solve: Callable[[object], Tensor]
    if method == "dense":
        def build() -> object:
            fisher = fisher_score_outer(policy, theta, obs)
            fisher.diagonal().add_(damping)  # in place: no second n x n matrix
            return fisher

        def solve(fisher: object) -> Tensor:
            return natural_gradient(grad, fisher)[0]  # type: ignore[arg-type]

    elif method == "cg":

        def build() -> object:
            return fisher_vector_product(policy, theta, obs, damping=damping)

        def solve(fvp: object) -> Tensor:
            return conjugate_gradient(fvp, grad, max_iter=cg_iters, rtol=0.0).x  # type: ignore[arg-type]

    else:

        def build() -> object:
            return kfac_fisher(policy, theta, obs)  # the eigendecompositions are part of the build

        def solve(approx: object) -> Tensor:
            return approx.solve(grad, damping)  # type: ignore[attr-defined]

    prepared = [build()]
    seconds_build = _best_time(build, repeats)
    seconds_solve = _best_time(lambda: solve(prepared[0]), repeats)
    prepared.clear()  # free it before the memory measurement
    peak: int | None = None
    if memory and peak_memory_supported():
        _, peak = peak_memory(lambda: solve(build()))
    return CostMeasurement(method, policy.n_params, obs.shape[0], seconds_build, seconds_solve, peak)


@dataclass(frozen=True)
class PowerLaw:
    r"""The fit :math:`y = c\, n^p` (a straight line of slope :math:`p` on log-log axes).

    Attributes:
        exponent: :math:`p`.
        prefactor: :math:`c`.
    """

    exponent: float
    prefactor: float

    def __call__(self, n: float | np.ndarray) -> float | np.ndarray:
        """The fitted :math:`c\\,n^p` (an extrapolation outside the fitted range)."""
        return self.prefactor * np.asarray(n, dtype=float) ** self.exponent


def fit_power_law(n: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> PowerLaw:
    r"""Least-squares fit of :math:`\log y = \log c + p \log n`.

    The exponent is :func:`npgbook.experiments.taylor.fit_loglog_slope`; the prefactor is the matching
    least-squares intercept, :math:`\log c = \overline{\log y} - p\,\overline{\log n}`.

    Args:
        n, y: equally long sequences of at least two positive finite numbers, with at least
            two different ``n`` (checked by :func:`~npgbook.experiments.taylor.fit_loglog_slope`).
    """
    exponent = fit_loglog_slope(n, y)
    log_n, log_y = np.log(np.asarray(n, dtype=float)), np.log(np.asarray(y, dtype=float))
    return PowerLaw(exponent, float(math.exp(log_y.mean() - exponent * log_n.mean())))


def saved_graph_bytes(build: Callable[[], T]) -> tuple[T, int]:
    """Run ``build()`` and count the bytes of the tensors autograd saves for backward meanwhile.

    Uses :func:`torch.autograd.graph.saved_tensors_hooks`; tensors sharing a storage are
    counted once. This is the memory an autograd graph keeps alive, e.g. the graph that a
    Fisher-vector product reuses for every product.

    Returns:
        ``(result, n_bytes)``: what ``build`` returned and the bytes saved while it ran.
    """
    storages: dict[int, int] = {}

    def pack(tensor: Tensor) -> Tensor:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        result = build()
    return result, sum(storages.values())


def _best_time(run: Callable[[], object], repeats: int, budget: float = 0.05, max_calls: int = 200) -> float:
    """Smallest CPU time (:func:`time.process_time`) of at least ``repeats`` calls.

    CPU time rather than wall-clock time, so that waiting for a busy machine is not counted.
    Fast computations are repeated until ``budget`` CPU seconds have been spent (at most
    ``max_calls`` calls), so that their minimum is not one disturbed call.
    """
    best, spent, calls = float("inf"), 0.0, 0
    while calls < repeats or (spent < budget and calls < max_calls):
        start = time.process_time()
        run()
        elapsed = time.process_time() - start
        best, spent, calls = min(best, elapsed), spent + elapsed, calls + 1
    return best


@dataclass(frozen=True)
class FisherCost:
    """Cost of the routes to the Fisher matrix for one policy and one batch of states.

    Times are CPU seconds of a single thread, the best of several calls.

    Attributes:
        n_params: number of parameters :math:`n`.
        n_states: number of states :math:`N` in the batch.
        seconds_hessian: dense :math:`F` as the autograd Hessian of the KL
            (:func:`npgbook.fisher_kl_hessian`).
        seconds_score_outer: dense :math:`F` as the exact expected score outer product, summed
            over all actions (:func:`npgbook.fisher_score_outer`, ``vmap`` over ``jacrev``).
        seconds_sampled_scores: dense :math:`\\hat F` from one sampled action per state
            (:func:`fisher_from_samples`, ``vmap`` over ``grad``), sampling included.
        seconds_fvp_setup: building the Fisher-vector-product operator (one backward pass
            with ``create_graph=True``).
        seconds_fvp: one Fisher-vector product with that operator.
        seconds_batch_gradient: one ordinary policy gradient
            :math:`\\nabla_\\theta \\frac1N\\sum_i \\log\\pi_\\theta(a_i\\mid s_i)` (what vanilla PG computes).
        bytes_dense: memory of a dense :math:`n\\times n` Fisher matrix.
        bytes_fvp: memory the Fisher-vector-product operator keeps (its saved autograd graph).
        max_gap: largest entrywise disagreement between the Hessian, the exact score outer product,
            and the Fisher-vector product applied to a random vector.
    """

    n_params: int
    n_states: int
    seconds_hessian: float
    seconds_score_outer: float
    seconds_sampled_scores: float
    seconds_fvp_setup: float
    seconds_fvp: float
    seconds_batch_gradient: float
    bytes_dense: int
    bytes_fvp: int
    max_gap: float


def measure_fisher_cost(
    policy: Policy, theta: Tensor, obs: Tensor, generator: torch.Generator, repeats: int = 3
) -> FisherCost:
    """Time and size the routes to the Fisher matrix of a state-dependent discrete policy.

    Each route is timed in CPU seconds on one thread (the thread count is restored afterwards),
    at least ``repeats`` times, fast ones more often (up to 0.05 s of calls), and the shortest
    time is kept: timings vary from run to run, the minimum is the least disturbed by other work
    on the machine, and their ratios and growth are what matter. The three dense matrices and
    the product are also compared, so that the timings are of computations that agree.

    Args:
        policy: a state-dependent policy, e.g. :class:`npgbook.MLPCategoricalPolicy`.
        theta: its parameters.
        obs: a batch of states, shape ``(N, obs_dim)``.
        generator: the random source of the sampled actions and of the probe vector.
        repeats: number of timed calls per route (at least 1).
    """
    repeats = require_int("repeats", repeats)
    theta = policy.check_theta(theta).detach()
    obs = policy.check_obs(obs)
    if obs is None:
        raise ValueError("obs is required: measure_fisher_cost is for state-dependent policies")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: no thread pool spinning on a busy machine
    try:
        return _measure(policy, theta, obs, generator, repeats)
    finally:
        torch.set_num_threads(threads)


def _measure(policy: Policy, theta: Tensor, obs: Tensor, generator: torch.Generator, repeats: int) -> FisherCost:
    """The measurements of :func:`measure_fisher_cost` (inputs already checked)."""
    n = policy.n_params
    actions = sample_actions(policy.distribution(theta, obs), 1, generator).reshape(-1)
    probe = torch.randn(n, generator=generator, dtype=theta.dtype)

    def batch_gradient() -> Tensor:
        leaf = theta.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(policy.log_prob(leaf, actions, obs).mean(), leaf)
        return grad

    hessian = fisher_kl_hessian(policy, theta, obs)
    score_outer = fisher_score_outer(policy, theta, obs)
    fvp, bytes_fvp = saved_graph_bytes(lambda: fisher_vector_product(policy, theta, obs))
    max_gap = max(
        float((hessian - score_outer).abs().max()),
        float((fvp(probe) - hessian @ probe).abs().max()),
    )
    return FisherCost(
        n_params=n,
        n_states=obs.shape[0],
        seconds_hessian=_best_time(lambda: fisher_kl_hessian(policy, theta, obs), repeats),
        seconds_score_outer=_best_time(lambda: fisher_score_outer(policy, theta, obs), repeats),
        seconds_sampled_scores=_best_time(
            lambda: fisher_from_samples(
                policy, theta, sample_actions(policy.distribution(theta, obs), 1, generator).reshape(-1), obs
            ),
            repeats,
        ),
        seconds_fvp_setup=_best_time(lambda: fisher_vector_product(policy, theta, obs), repeats),
        seconds_fvp=_best_time(lambda: fvp(probe), repeats),
        seconds_batch_gradient=_best_time(batch_gradient, repeats),
        bytes_dense=n * n * hessian.element_size(),
        bytes_fvp=bytes_fvp,
        max_gap=max_gap,
    )
