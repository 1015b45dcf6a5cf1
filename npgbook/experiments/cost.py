r"""What a natural-gradient direction :math:`F^{-1}g` costs as the policy network grows (the note's §6).

Three ways to compute it for an MLP policy with :math:`n` parameters on :math:`N` states:

* ``"dense"`` -- form :math:`F` (:func:`npgbook.fisher_score_outer`, :math:`n^2` numbers, time
  :math:`\propto N n^2`) and solve :math:`(F+\lambda I)x = g` by Cholesky (:math:`n^3/3`
  flops, i.e. :math:`n^3/6` multiply-adds);
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


# ----------------------------------------------------------------------------------------
# Counting arithmetic instead of timing it: operation counts depend only on the shapes, so
# they are the same on every machine (timings are not).

_MATMUL_OPS = ("mm", "addmm", "bmm", "baddbmm", "mv", "addmv", "dot", "vdot")
_ROWWISE_OPS = ("_softmax", "_log_softmax", "_softmax_backward_data", "_log_softmax_backward_data")
_OPAQUE_MARKS = ("linalg", "cholesky", "triangular", "lu_", "eig", "svd", "inverse", "solve")


@dataclass(frozen=True)
class OpCount:
    r"""The arithmetic that :func:`count_flops` saw.

    Attributes:
        flops: floating-point operations: :math:`2mkn` for an ``(m, k) @ (k, n)`` product (a
            multiply and an add per term, plus the added matrix for ``addmm``), one per output
            entry of an elementwise op, one per input entry of a reduction.
        uncounted: names of the linear-algebra routines (factorizations, solves) that ran but
            have no formula here; their work must be added by the caller.
    """

    flops: int
    uncounted: tuple[str, ...]


def _matmul_flops(name: str, args: tuple, out: Tensor) -> int:
    if name in ("dot", "vdot"):
        return 2 * args[0].numel()
    if name in ("mv", "addmv"):
        matrix = args[1] if name == "addmv" else args[0]
        return 2 * matrix.numel() + (out.numel() if name == "addmv" else 0)
    left = args[1] if name in ("addmm", "baddbmm") else args[0]
    inner = left.shape[-1]
    return 2 * out.numel() * inner + (out.numel() if name in ("addmm", "baddbmm") else 0)


def count_flops(run: Callable[[], T]) -> tuple[T, OpCount]:
    """Run ``run()`` and count the floating-point operations of the torch ops it executes.

    The ops are intercepted at torch's dispatcher (a ``TorchDispatchMode``), so autograd's
    backward passes and ``vmap``'s batched kernels are counted too. Views, copies and
    creation ops count as free; see :class:`OpCount` for the rules.

    Returns:
        ``(result, count)``.
    """
    from torch.utils._python_dispatch import TorchDispatchMode

    total = [0]
    opaque: list[str] = []

    class _Counter(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            out = func(*args, **(kwargs or {}))
            name = func.overloadpacket.__name__
            first = out[0] if isinstance(out, (tuple, list)) and out else out
            if not isinstance(first, Tensor) or not first.is_floating_point():
                return out
            if name in _MATMUL_OPS:
                total[0] += _matmul_flops(name, args, first)
            elif torch.Tag.pointwise in func.tags or name in _ROWWISE_OPS:
                if not name.startswith(("copy", "clone", "fill", "zero", "_to_copy")):
                    total[0] += first.numel()
            elif hasattr(torch.Tag, "reduction") and torch.Tag.reduction in func.tags:
                source = args[0] if args and isinstance(args[0], Tensor) else first
                total[0] += source.numel()
            elif any(mark in name for mark in _OPAQUE_MARKS) and name not in opaque:
                opaque.append(name)
            return out

    with _Counter():
        result = run()
    return result, OpCount(int(total[0]), tuple(opaque))


def gauss_jordan_inverse(a: Tensor) -> Tensor:
    r"""The inverse of a square matrix by Gauss-Jordan elimination on :math:`[A \mid I]` (partial pivoting).

    The textbook algorithm, written with torch ops so that :func:`count_flops` can count it:
    each of the :math:`n` steps divides the pivot row (:math:`2n` operations) and subtracts a
    rank-one update from all :math:`n` rows of the :math:`n \times 2n` tableau, written as a
    matrix product with inner dimension 1 (which :func:`count_flops` charges :math:`2\cdot n\cdot 2n`,
    a multiply and an add per entry, though there is nothing to add) and a difference
    (:math:`2n^2`): :math:`6n^2` per step, about :math:`6n^3` counted operations in all. The
    product itself needs only :math:`2n^2` multiplies (:math:`4n^3` in all), and a Gauss-Jordan
    inverse that skips the known zeros and ones of :math:`[A \mid I]` needs about :math:`2n^3` flops.

    Only the shape is checked (a finiteness check would add :math:`n^2` counted operations);
    a non-finite input gives a non-finite result.

    Raises:
        ValueError: if ``a`` is not a square matrix or is singular (a zero pivot).
    """
    a = torch.as_tensor(a)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] == 0:
        raise ValueError(f"a must be a non-empty square matrix, got shape {tuple(a.shape)}")
    n = a.shape[0]
    m = torch.cat([a, torch.eye(n, dtype=a.dtype)], dim=1)
    for k in range(n):
        p = k + int(m[k:, k].abs().argmax())
        if p != k:
            m[[k, p]] = m[[p, k]]
        pivot = float(m[k, k])
        if pivot == 0.0:
            raise ValueError("a is singular")
        row = m[k] / pivot
        m = m - m[:, k : k + 1] @ row[None, :]
        m[k] = row
    return m[:, n:]


def diagonal_inverse(a: Tensor) -> Tensor:
    """The inverse of a *diagonal* matrix: the reciprocals of its diagonal (:math:`n` operations).

    A linear-cost counterpart of :func:`gauss_jordan_inverse`, correct only for diagonal input.
    """
    a = torch.as_tensor(a)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"a must be a square matrix, got shape {tuple(a.shape)}")
    return torch.diag(torch.diagonal(a).reciprocal())


def well_conditioned_matrix(n: int, seed: int = 0) -> Tensor:
    r"""A random symmetric positive definite test matrix :math:`BB^\top/n + I` (float64, condition ~5)."""
    n = require_int("n", n)
    b = torch.randn(n, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return b @ b.T / n + torch.eye(n, dtype=torch.float64)


@dataclass(frozen=True)
class InverseScaling:
    r"""Counted operations of an inversion algorithm against the matrix size.

    Attributes:
        sizes: the sizes :math:`n`.
        flops: operations counted by :func:`count_flops` at each size.
        exponent: the least-squares log-log slope of ``flops`` against ``sizes``.
        max_residual: the largest :math:`\max_{ij}|(AX - I)_{ij}|` over the sizes: whether the
            algorithm really inverted the matrices it was counted on.
        uncounted: routines that ran without a formula (then the counts are incomplete).
    """

    sizes: np.ndarray
    flops: np.ndarray
    exponent: float
    max_residual: float
    uncounted: tuple[str, ...]


def inverse_scaling(
    invert: Callable[[Tensor], Tensor] = gauss_jordan_inverse,
    sizes: Sequence[int] = (16, 32, 64, 128),
    matrix: Callable[[int], Tensor] = well_conditioned_matrix,
) -> InverseScaling:
    """Count the operations of ``invert(matrix(n))`` for each ``n`` and fit their growth exponent."""
    ns = [require_int("sizes", n) for n in sizes]
    flops, residual, uncounted = [], 0.0, []
    for n in ns:
        a = require_finite("matrix(n)", matrix(n))
        if a.shape != (n, n):
            raise ValueError(f"matrix(n) must have shape ({n}, {n}), got {tuple(a.shape)}")
        inverse, count = count_flops(lambda a=a: invert(a))
        flops.append(count.flops)
        uncounted += [u for u in count.uncounted if u not in uncounted]
        residual = max(residual, float((a @ inverse - torch.eye(n, dtype=a.dtype)).abs().max()))
    array = np.array(flops, dtype=float)
    exponent = fit_loglog_slope(ns, array) if np.all(array > 0) else 0.0
    return InverseScaling(np.array(ns), array, exponent, residual, tuple(uncounted))


def inverse_timing(
    sizes: Sequence[int] = (384, 768, 1536),
    repeats: int = 2,
    invert: Callable[[Tensor], Tensor] = torch.linalg.inv,
) -> tuple[np.ndarray, PowerLaw]:
    """CPU seconds (best of ``repeats``) of ``invert`` on :func:`well_conditioned_matrix` and their power law.

    Timings vary between machines and runs; the book uses them only as a check on the counts.
    """
    ns = [require_int("sizes", n) for n in sizes]
    repeats = require_int("repeats", repeats)
    seconds = []
    for n in ns:
        a = well_conditioned_matrix(n)
        seconds.append(_best_time(lambda a=a: invert(a), repeats, budget=0.0))
    return np.array(seconds), fit_power_law(ns, seconds)


@dataclass(frozen=True)
class RemedyComparison:
    r"""CG and K-FAC against the dense damped solve :math:`d_\lambda = (F+\lambda I)^{-1}\hat g`, on one batch.

    Directions are compared by :func:`~npgbook.experiments.brittleness.metric_cosine` in the
    metric :math:`F + \lambda I` (``*_cosine``). Costs are counted, not timed, so they are the
    same on every machine: ``*_flops`` by :func:`count_flops` (the dense route's Cholesky
    factorization, which that counter cannot see, is added as :math:`n^3/3` flops,
    i.e. :math:`n^3/6` multiply-adds, plus :math:`2n^2` flops for the two triangular solves), ``*_stored``
    in numbers kept.

    Attributes:
        n, states: parameters and batch states.
        damping, cg_iters: :math:`\lambda` and the number of CG iterations (= Fisher-vector products).
        cg_cosine, kfac_cosine, vanilla_cosine: metric cosines with :math:`d_\lambda`.
        kfac_error: :math:`\|\hat F_{\text{K-FAC}} - F\|_F / \|F\|_F`.
        dense_flops: forming :math:`F` by :func:`npgbook.fisher_score_outer` plus the Cholesky solve.
        cg_flops: building the Fisher-vector product plus ``cg_iters`` CG iterations.
        dense_stored: :math:`n^2`.
        cg_stored: the numbers saved in the Fisher-vector product's autograd graph
            (:func:`saved_graph_bytes`) plus CG's four vectors :math:`x, r, p, Fp`.
        kfac_stored: the factors' entries :math:`\sum_\ell (\text{in}_\ell+1)^2 + \text{out}_\ell^2`.
        dense_inverse, kfac_inverse: the work of inverting, :math:`n^3/3` flops for a Cholesky
            factorization against :math:`\sum_\ell (\text{in}_\ell+1)^3 + \text{out}_\ell^3` for
            K-FAC's eigendecompositions of its factors (up to a constant factor of order ten).
    """

    n: int
    states: int
    damping: float
    cg_iters: int
    cg_cosine: float
    kfac_cosine: float
    vanilla_cosine: float
    kfac_error: float
    dense_flops: int
    cg_flops: int
    dense_stored: int
    cg_stored: int
    kfac_stored: int
    dense_inverse: float
    kfac_inverse: float


def compare_remedies(
    policy: MLPCategoricalPolicy,
    theta: Tensor,
    obs: Tensor,
    grad: Tensor,
    *,
    damping: float = 0.01,
    cg_iters: int = 10,
    approximation: Callable[[MLPCategoricalPolicy, Tensor, Tensor], object] = kfac_fisher,
) -> RemedyComparison:
    r"""Accuracy and counted cost of CG (``cg_iters`` products, all run) and of K-FAC against the dense solve.

    Args:
        policy, theta, obs: the policy, its parameters and the batch states.
        grad: the policy gradient :math:`\hat g`.
        damping: :math:`\lambda > 0`, the same for all three routes.
        cg_iters: CG iterations; CG is run without early stopping, so exactly this many
            Fisher-vector products are made.
        approximation: builds the K-FAC matrix (:func:`npgbook.kfac.kfac_fisher`), an object with
            ``dense()``, ``solve(v, damping)``, ``n_stored`` and ``layers``.
    """
    from .brittleness import metric_cosine

    theta = policy.check_theta(theta).detach()
    obs = policy.check_obs(obs)
    grad = require_finite("grad", require_vector("grad", grad, policy.n_params)).to(theta.dtype)
    damping = require_positive("damping", damping)
    cg_iters = require_int("cg_iters", cg_iters)
    n = policy.n_params
    fisher, form = count_flops(lambda: fisher_score_outer(policy, theta, obs))
    damped = fisher + damping * torch.eye(n, dtype=fisher.dtype)
    exact = torch.linalg.solve(damped, grad)
    dense_flops = form.flops + n**3 // 3 + 2 * n**2

    def cg_route() -> Tensor:
        fvp = fisher_vector_product(policy, theta, obs, damping=damping)
        return conjugate_gradient(fvp, grad, max_iter=cg_iters, rtol=0.0).x

    cg_dir, cg_count = count_flops(cg_route)
    _, graph_bytes = saved_graph_bytes(lambda: fisher_vector_product(policy, theta, obs, damping=damping))
    approx = approximation(policy, theta, obs)
    kfac_dir = approx.solve(grad, damping)  # type: ignore[attr-defined]
    layers = approx.layers  # type: ignore[attr-defined]
    return RemedyComparison(
        n=n,
        states=obs.shape[0],
        damping=damping,
        cg_iters=cg_iters,
        cg_cosine=metric_cosine(cg_dir, exact, damped),
        kfac_cosine=metric_cosine(kfac_dir, exact, damped),
        vanilla_cosine=metric_cosine(grad, exact, damped),
        kfac_error=float((approx.dense() - fisher).norm() / fisher.norm()),  # type: ignore[attr-defined]
        dense_flops=int(dense_flops),
        cg_flops=cg_count.flops,
        dense_stored=n * n,
        cg_stored=graph_bytes // fisher.element_size() + 4 * n,
        kfac_stored=int(approx.n_stored),  # type: ignore[attr-defined]
        dense_inverse=n**3 / 3,
        kfac_inverse=float(sum(layer.A.shape[0] ** 3 + layer.G.shape[0] ** 3 for layer in layers)),
    )
