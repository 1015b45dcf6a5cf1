r"""The sampled Fisher matrix and what each way of using the Fisher matrix costs (the note's §4).

The note recommends the outer-product form
:math:`F = \mathbb{E}[\nabla\log\pi\,\nabla\log\pi^\top]` as "computationally more efficient"
than the Hessian of the KL. This module provides

* :func:`fisher_from_samples` -- the estimate :math:`\hat F = \frac1N\sum_i s_i s_i^\top` from
  state-action samples :math:`a_i \sim \pi_\theta(\cdot\mid s_i)`, the form Algorithm 1 uses, and
  :func:`fisher_from_sample_hessians`, the estimate :math:`-\frac1N\sum_i\nabla^2\log\pi` of the same
  matrix, which need not be positive semi-definite;
* :func:`saved_graph_bytes` -- the memory autograd keeps for a computation;
* :func:`measure_fisher_cost` -- CPU time and memory of building :math:`F` by an
  autograd Hessian, by score outer products, and of applying it by a Fisher-vector product,
  next to the cost of the plain policy gradient.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import torch
from torch import Tensor

from ._checks import require_int
from .fisher import fisher_kl_hessian, fisher_score_outer, fisher_vector_product, score_vectors
from .policies import Policy, sample_actions

T = TypeVar("T")


def fisher_from_samples(policy: Policy, theta: Tensor, actions: Tensor, obs: Tensor | None = None) -> Tensor:
    r"""The sample Fisher matrix :math:`\hat F = \frac1N\sum_{i=1}^N s_i s_i^\top`, :math:`s_i = \nabla_\theta\log\pi_\theta(a_i\mid s_i)`.

    Unbiased for the Fisher matrix when each action is drawn from the policy itself,
    :math:`a_i \sim \pi_\theta(\cdot\mid s_i)`; its error then shrinks like :math:`1/\sqrt N`. It is
    positive semi-definite for every sample (a sum of outer products) and has rank at most
    :math:`N`. The scores come from :func:`npgbook.score_vectors` (``vmap`` over ``grad``).

    Args:
        policy: the policy :math:`\pi_\theta`.
        theta: the parameters at which :math:`F` is estimated.
        actions: the sampled actions, shape ``(N,)``.
        obs: the states the actions were taken in, shape ``(N, obs_dim)``; ``None`` for a
            stateless policy.
    """
    scores = score_vectors(policy, theta, actions, obs)
    return scores.T @ scores / scores.shape[0]


def fisher_from_sample_hessians(policy: Policy, theta: Tensor, actions: Tensor, obs: Tensor | None = None) -> Tensor:
    r"""The other sample estimate, :math:`\hat H = -\frac1N\sum_{i=1}^N \nabla^2_\theta\log\pi_\theta(a_i\mid s_i)`.

    Its expectation is also :math:`F` (the Hessian form of the Fisher matrix, chapter 3), but unlike
    :func:`fisher_from_samples` it is *not* positive semi-definite sample by sample: for a
    Gaussian in :math:`(\mu,\sigma)` one action with :math:`|a-\mu| < \sigma/\sqrt3` already gives a
    negative diagonal entry. Computed as the autograd Hessian
    (:func:`torch.autograd.functional.hessian`) of the mean negative log-likelihood of the batch.

    Args:
        policy, theta, actions, obs: as for :func:`fisher_from_samples`.
    """
    theta = policy.check_theta(theta).detach()
    obs = policy.check_obs(obs)
    actions = torch.as_tensor(actions)
    if actions.ndim != 1 or (obs is not None and actions.shape[0] != obs.shape[0]):
        raise ValueError(f"actions must have shape (batch,) matching obs, got {tuple(actions.shape)}")
    return torch.autograd.functional.hessian(
        lambda th: -policy._distribution(th, obs).log_prob(actions).mean(), theta, vectorize=True
    )


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
