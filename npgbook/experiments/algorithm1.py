r"""Section 5.9's look inside one update of Algorithm 1 on CartPole: a frozen batch, many steps.

Training runs in float32 and is chaotic, so a single update says little. Here one batch is
collected with a fixed policy (the initial one, or a trained one) and frozen; on it, in float64,
the natural step is recomputed for several dampings :math:`\lambda` and numbers of
conjugate-gradient iterations :math:`k`, and each step is measured against the KL budget
:math:`\delta`:

* :func:`frozen_batch` -- collect the batch, estimate GAE advantages with the run's value
  baseline, and form the sample gradient :math:`\hat g`;
* :func:`step_stats` / :func:`damping_table` -- the natural step
  :math:`\sqrt{2\delta/\hat g^\top x_k}\;x_k` with :math:`x_k` from :math:`k` CG iterations on
  :math:`(\hat H+\lambda I)x = \hat g` (the trainer's Fisher operator
  :func:`npgbook.rl.mlp.fisher_operator`), its realized KL, direction and surrogate gain;
* :func:`budget_learning_rate` -- the learning rate at which the vanilla step
  :math:`\alpha\hat g` has a quadratic KL model equal to :math:`\delta`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .._checks import require_int, require_positive
from ..divergences import policy_kl
from ..natural import natural_step
from ..policies import MLPCategoricalPolicy
from ..rl import (
    PolicyData,
    ValueFunction,
    VectorSampler,
    gae,
    make_vector_env,
    normalize_advantages,
    policy_gradient,
    surrogate,
)
from ..rl.mlp import fisher_operator


@dataclass(frozen=True)
class FrozenBatch:
    r"""One batch of CartPole states from a fixed policy, in float64, ready for natural steps.

    Attributes:
        policy: the float64 policy network.
        theta: its parameters :math:`\theta` (those of the policy that collected the batch).
        data: states, actions, normalized GAE advantages and :math:`\log\pi_\theta(a\mid s)`.
        grad: the sample policy gradient :math:`\hat g` at :math:`\theta`.
    """

    policy: MLPCategoricalPolicy
    theta: Tensor
    data: PolicyData
    grad: Tensor

    @property
    def n_states(self) -> int:
        """The number :math:`M` of state-action pairs (environment steps) in the batch."""
        return int(self.data.obs.shape[0])


def frozen_batch(
    theta: Tensor,
    value: ValueFunction,
    *,
    hidden: tuple[int, ...] = (32, 32),
    env_id: str = "CartPole-v1",
    num_envs: int = 8,
    steps_per_env: int = 128,
    seed: int = 123,
    gamma: float = 0.99,
    gae_lambda: float = 0.95,
) -> FrozenBatch:
    r"""Collect ``num_envs`` × ``steps_per_env`` slots with the policy :math:`\theta` and freeze them.

    The policy is rebuilt in float64 (``theta`` is converted), the environments and the action
    sampling are seeded with ``seed``, the advantages are GAE(:math:`\lambda`) with the value
    baseline ``value`` (in float64), centered and scaled as in training, and :math:`\hat g` is
    the gradient of the surrogate at :math:`\theta` (:func:`npgbook.rl.policy_gradient`).

    Raises:
        ValueError: if ``theta`` does not fit the network, or a count or seed is invalid.
    """
    seed = require_int("seed", seed, minimum=0)
    num_envs = require_int("num_envs", num_envs)
    steps_per_env = require_int("steps_per_env", steps_per_env)
    env = make_vector_env(env_id, num_envs, "auto")
    sampler = VectorSampler(env, seed)
    try:
        policy = MLPCategoricalPolicy(sampler.obs_dim, sampler.n_actions, hidden, dtype=torch.float64)
        theta = policy.check_theta(torch.as_tensor(theta).detach().to(torch.float64))
        batch = sampler.collect(policy, theta, steps_per_env, torch.Generator().manual_seed(seed))
    finally:
        sampler.close()
    advantages, _ = gae(
        batch.rewards,
        value(batch.obs).detach().to(torch.float64),
        batch.terminated,
        batch.truncated,
        batch.valid,
        gamma=gamma,
        lam=gae_lambda,
    )
    obs, actions = batch.flat()
    obs = obs.to(torch.float64)
    with torch.no_grad():
        old = policy.log_prob(theta, actions, obs)
    data = PolicyData(obs, actions, normalize_advantages(advantages[batch.valid].to(torch.float64)), old)
    return FrozenBatch(policy, theta, data, policy_gradient(policy, theta, data))


@dataclass(frozen=True)
class StepStats:
    r"""One natural step on a frozen batch and what it did.

    Attributes:
        residual: CG's final relative residual :math:`\|(\hat H+\lambda I)x_k-\hat g\|/\|\hat g\|`.
        quad: :math:`\hat g^\top x_k` (in exact arithmetic nondecreasing in :math:`k`).
        kl_ratio: realized :math:`\bar D_{\mathrm{KL}}(\pi_\theta\|\pi_{\theta+s})/\delta` on the batch states.
        model_ratio: the undamped quadratic model :math:`\tfrac12 s^\top\hat H s/\delta`
            (:math:`= 1 - \lambda\|s\|^2/2\delta`, since the damped model equals :math:`\delta`).
        cos_g: cosine between the step :math:`s` and :math:`\hat g`.
        gain: surrogate improvement :math:`L(\theta+s)-L(\theta)`.
        step_norm: :math:`\|s\|`.
    """

    residual: float
    quad: float
    kl_ratio: float
    model_ratio: float
    cos_g: float
    gain: float
    step_norm: float


def step_stats(
    frozen: FrozenBatch,
    delta: float,
    damping: float,
    iters: int,
    *,
    hessian: Callable[[Tensor], Tensor] | None = None,
) -> StepStats:
    r"""The natural step :math:`s = \sqrt{2\delta/\hat g^\top x_k}\,x_k` after ``iters`` CG iterations.

    :math:`x_k` approximates :math:`(\hat H+\lambda I)^{-1}\hat g` with :math:`\lambda` = ``damping``;
    CG runs exactly ``iters`` iterations (no early stop). See :class:`StepStats`.

    Args:
        frozen, delta, damping, iters: the batch, the budget :math:`\delta`, :math:`\lambda` and :math:`k`.
        hessian: :math:`v \mapsto \hat H v` (undamped) on the batch, if already built; by default
            :func:`npgbook.rl.mlp.fisher_operator`, the trainer's operator.

    Raises:
        ValueError: if ``delta`` is not positive, ``damping`` negative or ``iters`` not a positive int.
    """
    delta = require_positive("delta", delta)
    damping = require_positive("damping", damping, allow_zero=True)
    iters = require_int("iters", iters)
    pol, theta, data, g = frozen.policy, frozen.theta, frozen.data, frozen.grad
    undamped = fisher_operator(pol, theta, data.obs) if hessian is None else hessian

    def op(v: Tensor) -> Tensor:
        return undamped(v) + damping * v

    step = natural_step(g, op, delta, max_iter=iters, rtol=0.0)
    assert step.cg is not None
    s = step.step
    with torch.no_grad():
        kl = float(policy_kl(pol, theta, theta + s, data.obs))
        gain = float(surrogate(pol, theta + s, data) - surrogate(pol, theta, data))
    return StepStats(
        residual=step.cg.residual_norms[-1] / step.cg.residual_norms[0],
        quad=step.quad,
        kl_ratio=kl / delta,
        model_ratio=0.5 * float(s @ undamped(s)) / delta,
        cos_g=float(torch.nn.functional.cosine_similarity(s, g, dim=0)),
        gain=gain,
        step_norm=float(s.norm()),
    )


def damping_table(
    frozen: FrozenBatch, delta: float, dampings: Sequence[float], iters: Sequence[int]
) -> dict[tuple[float, int], StepStats]:
    """:func:`step_stats` for every pair (damping, CG iterations), keyed by ``(damping, iters)``."""
    hessian = fisher_operator(frozen.policy, frozen.theta, frozen.data.obs)
    return {
        (float(lam), int(k)): step_stats(frozen, delta, lam, k, hessian=hessian)
        for lam in dampings
        for k in iters
    }


def budget_learning_rate(frozen: FrozenBatch, delta: float) -> float:
    r"""The vanilla learning rate :math:`\alpha^* = \sqrt{2\delta/\hat g^\top\hat H\hat g}`.

    The quadratic model of the KL of the vanilla step :math:`\alpha\hat g` is
    :math:`\tfrac12\alpha^2\hat g^\top\hat H\hat g`; :math:`\alpha^*` makes it :math:`\delta`.
    It is the length that Algorithm 1 with one CG iteration and no damping would choose.

    Raises:
        ValueError: if ``delta`` is not positive or :math:`\hat g^\top\hat H\hat g` is not positive.
    """
    delta = require_positive("delta", delta)
    g = frozen.grad
    curvature = float(g @ fisher_operator(frozen.policy, frozen.theta, frozen.data.obs)(g))
    if not (math.isfinite(curvature) and curvature > 0.0):
        raise ValueError(f"g^T H g must be positive and finite, got {curvature!r}")
    return math.sqrt(2.0 * delta / curvature)
