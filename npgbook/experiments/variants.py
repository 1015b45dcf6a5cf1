r"""Two more update rules for the CartPole trainer of :mod:`npgbook.rl` (the note's §6).

The note's §6 names K-FAC as a remedy for the cost of the Fisher matrix, and first-order
optimizers such as Adam as what natural gradients must compete with. Both plug into
:class:`npgbook.rl.Trainer` as an update rule with the signature of
:func:`npgbook.rl.npg_update`, so that rollouts, advantages, value baseline and bookkeeping are
identical and only the update differs:

* :func:`kfac_npg_update` -- Algorithm 1 with :math:`\hat H^{-1}\hat g` from the K-FAC matrix
  (:mod:`npgbook.kfac`) instead of conjugate gradient, :math:`\lambda` = ``config.cg_damping``;
* :class:`AdamUpdate` -- vanilla policy-gradient ascent on :math:`\hat g` with Adam
  (Kingma & Ba, 2015) at learning rate ``config.learning_rate``.

:func:`train_with_update` runs the trainer with one of them, :func:`train_many` runs several
configurations in parallel processes, and :func:`policy_snapshot` trains briefly and returns a
policy with a fresh batch, the test bench of chapter 6.
"""

from __future__ import annotations

import math
import multiprocessing
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .._checks import DTYPE, require_int
from ..kfac import kfac_fisher, kfac_natural_step
from ..policies import MLPCategoricalPolicy, Policy
from ..rl import (
    IterationRecord,
    PolicyData,
    TrainConfig,
    Trainer,
    TrainResult,
    UpdateResult,
    UpdateSkippedWarning,
    gae,
    policy_gradient,
    train,
)
from ..solvers import NotPositiveDefiniteError

UpdateRule = Callable[[Policy, Tensor, PolicyData, TrainConfig], UpdateResult]


def kfac_npg_update(policy: Policy, theta: Tensor, data: PolicyData, config: TrainConfig) -> UpdateResult:
    r"""Algorithm 1 with the K-FAC Fisher: :math:`\theta_k + \sqrt{2\delta/\hat g^\top d}\; d`, :math:`d = (\hat F_{\text{K-FAC}}+\lambda I)^{-1}\hat g`.

    The factors are built on the batch states with the exact expectation over actions, so
    the only approximation beyond the sampled states is K-FAC's own. An update whose
    :math:`\hat g^\top d` is not positive and finite is skipped (parameters unchanged).
    """
    if not isinstance(policy, MLPCategoricalPolicy):
        raise TypeError(f"policy must be an MLPCategoricalPolicy, got {type(policy).__name__}")
    grad = policy_gradient(policy, theta, data)
    grad_norm = float(grad.norm())
    if not (torch.isfinite(grad).all() and grad_norm > 0.0):
        return UpdateResult(theta=theta, accepted=False, grad_norm=grad_norm, skipped="gradient is 0 or not finite")
    approx = kfac_fisher(policy, theta, data.obs)
    try:
        step = kfac_natural_step(grad, approx, config.delta, config.cg_damping)
    except NotPositiveDefiniteError as exc:
        return UpdateResult(theta=theta, accepted=False, grad_norm=grad_norm, skipped=str(exc))
    new = (theta + step.step).detach()
    if not bool(torch.isfinite(new).all()):
        return UpdateResult(theta=theta, accepted=False, grad_norm=grad_norm, skipped="new parameters not finite")
    return UpdateResult(theta=new, accepted=True, quad=step.quad, grad_norm=grad_norm, step_fraction=1.0)


class AdamUpdate:
    r"""Vanilla policy-gradient ascent with Adam: :math:`\theta_{k+1} = \theta_k + \text{Adam}(\hat g_k)`.

    Adam keeps running means of :math:`\hat g` and of :math:`\hat g^2` (elementwise) and steps by
    :math:`\alpha\,\hat m/(\sqrt{\hat v}+10^{-8})`: a per-coordinate rescaling by the typical
    gradient size, not a curvature or KL correction. One instance keeps that state across the
    iterations of one run; use a fresh instance per run.
    """

    def __init__(self) -> None:
        self._param: torch.nn.Parameter | None = None
        self._optimizer: torch.optim.Adam | None = None

    def __call__(self, policy: Policy, theta: Tensor, data: PolicyData, config: TrainConfig) -> UpdateResult:
        grad = policy_gradient(policy, theta, data)
        grad_norm = float(grad.norm())
        if not bool(torch.isfinite(grad).all()):
            return UpdateResult(theta=theta, accepted=False, grad_norm=grad_norm, skipped="gradient not finite")
        if self._param is None or self._optimizer is None:
            self._param = torch.nn.Parameter(theta.detach().clone())
            self._optimizer = torch.optim.Adam([self._param], lr=config.learning_rate)
        elif theta.shape != self._param.shape:
            raise ValueError(
                f"theta has shape {tuple(theta.shape)}, but this AdamUpdate was started with shape "
                f"{tuple(self._param.shape)}; use a fresh instance per run"
            )
        with torch.no_grad():
            self._param.copy_(theta)
        self._param.grad = -grad.to(self._param.dtype)  # Adam minimizes: ascend J by descending -J
        self._optimizer.step()
        new = self._param.detach().clone()
        return UpdateResult(theta=new, accepted=bool(grad.any()), grad_norm=grad_norm, step_fraction=1.0)


def train_with_update(config: TrainConfig, update: UpdateRule) -> TrainResult:
    """Run :class:`npgbook.rl.Trainer` with ``config`` but with ``update`` as the update rule.

    ``config.algo`` only labels the run here; everything else (environments, seeds, batch
    sizes, advantages, value baseline, :math:`\\delta`, damping, learning rate) is taken from
    ``config`` as usual.
    """
    if not callable(update):
        raise TypeError(f"update must be callable, got {type(update).__name__}")
    trainer = Trainer(config)
    trainer.update = update
    try:
        trainer.run()
    finally:
        trainer.close()
    return TrainResult(config, trainer.history, trainer.episodes, trainer.policy, trainer.theta, trainer.value)


UPDATE_RULES: tuple[str, ...] = ("npg", "trpo", "vpg", "kfac-npg", "adam")
"""Names accepted by :func:`train_many`: the trainer's own rules, and this module's two."""


@dataclass(frozen=True)
class RunSummary:
    """What :func:`train_many` returns for one run: enough to plot and compare, small to pickle.

    Attributes:
        rule: the update rule's name (see :data:`UPDATE_RULES`).
        config: the hyperparameters.
        history: one :class:`npgbook.rl.IterationRecord` per iteration.
        episode_returns, episode_end_steps: every finished episode's return and the
            environment-step count at its end.
    """

    rule: str
    config: TrainConfig
    history: list[IterationRecord]
    episode_returns: list[float]
    episode_end_steps: list[int]


def _run(job: tuple[str, TrainConfig]) -> RunSummary:
    rule, config = job
    with warnings.catch_warnings():  # a skipped update is recorded in the history (``skipped``)
        warnings.simplefilter("ignore", UpdateSkippedWarning)
        if rule == "kfac-npg":
            result = train_with_update(config.replace(algo="npg"), kfac_npg_update)
        elif rule == "adam":
            result = train_with_update(config.replace(algo="vpg"), AdamUpdate())
        else:
            result = train(config.replace(algo=rule))
    return RunSummary(rule, result.config, result.history, result.episodes.returns, result.episodes.end_steps)


def train_many(jobs: Sequence[tuple[str, TrainConfig]], processes: int = 2) -> list[RunSummary]:
    """Train each ``(rule, config)`` job, ``processes`` at a time in fresh (spawned) processes.

    Each run is single-threaded (``config.num_threads``) and independent, so two processes use
    two cores fully. ``processes=1`` runs everything in this process. The result order is the
    job order, and a run's outcome depends only on its configuration (seeded), not on the
    process that ran it.

    Args:
        jobs: pairs of an update-rule name from :data:`UPDATE_RULES` and a configuration
            (``config.algo`` is set from the rule).
        processes: worker processes, at least 1.

    Raises:
        ValueError: if ``processes`` is not a positive integer, a job is not a pair, or a rule is unknown.
        TypeError: if a configuration is not a :class:`npgbook.rl.TrainConfig`.
    """
    processes = require_int("processes", processes)
    jobs = list(jobs)
    for job in jobs:
        if not (isinstance(job, (tuple, list)) and len(job) == 2):
            raise ValueError(f"jobs must be (rule, config) pairs, got {job!r}")
        rule, config = job
        if rule not in UPDATE_RULES:
            raise ValueError(f"rule must be one of {UPDATE_RULES}, got {rule!r}")
        if not isinstance(config, TrainConfig):
            raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    if processes == 1 or len(jobs) <= 1:
        return [_run(job) for job in jobs]
    with ProcessPoolExecutor(max_workers=processes, mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(_run, jobs))


def policy_snapshot(
    config: TrainConfig, steps_per_env: int, *, thetas: list[Tensor] | None = None
) -> tuple[MLPCategoricalPolicy, Tensor, PolicyData]:
    r"""Train with ``config``, then collect one more batch; return it in float64 for analysis.

    The batch is what the next update of Algorithm 1 would see: ``steps_per_env`` steps of
    each of ``config.num_envs`` environments on :math:`\pi_{\theta_k}`, advantages by GAE with
    the trained value baseline, normalized as the trainer does.

    Returns:
        ``(policy, theta, data)``: a float64 copy of the policy network, its parameters
        :math:`\theta_k`, and the batch (states, actions, advantages, old log-probabilities).

    Args:
        thetas: if given, a list to which :math:`\theta_1, \dots, \theta_k` (after each
            update) are appended, to compare a training run with a stored one.
    """
    steps_per_env = require_int("steps_per_env", steps_per_env)
    trainer = Trainer(config)
    try:
        trainer.run(None if thetas is None else lambda _: thetas.append(trainer.theta.clone()))
        batch = trainer.sampler.collect(trainer.policy, trainer.theta, steps_per_env, trainer.sample_generator)
        advantages, _ = gae(
            batch.rewards,
            trainer.value(batch.obs),
            batch.terminated,
            batch.truncated,
            batch.valid,
            gamma=config.gamma,
            lam=config.gae_lambda,
        )
    finally:
        trainer.close()
    obs, actions = batch.flat()
    data = trainer.policy_data(obs, actions, advantages[batch.valid])  # normalized as in training
    source = trainer.policy
    policy = MLPCategoricalPolicy(source.obs_dim, source.n_actions, source.hidden, DTYPE)
    theta = trainer.theta.to(DTYPE)
    obs = data.obs.to(DTYPE)
    with torch.no_grad():
        old_log_probs = policy.distribution(theta, obs).log_prob(actions)
    return policy, theta, PolicyData(obs, actions, data.advantages.to(DTYPE), old_log_probs)


# ----------------------------------------------------------------------------------------
# Does Adam take curvature into account? (the note's §6: Adam "also takes into account
# second-order effects")

StepRule = Callable[[Tensor, Callable[[Tensor], Tensor], dict], Tensor]
"""``rule(x, objective, adam_state) -> step``: one minimization step from ``x``.

``adam_state`` holds Adam's running moments at ``x`` (``"step"``, ``"exp_avg"``,
``"exp_avg_sq"``, and the hyperparameters ``"lr"``, ``"betas"``, ``"eps"``); a rule may
differentiate ``objective`` as often as it likes."""


def _gradient(objective: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    return torch.func.grad(objective)(x)


def adam_step(x: Tensor, objective: Callable[[Tensor], Tensor], state: dict) -> Tensor:
    """One step of :class:`torch.optim.Adam` from ``x`` with the given running moments."""
    param = torch.nn.Parameter(x.detach().clone())
    optimizer = torch.optim.Adam([param], lr=state["lr"], betas=state["betas"], eps=state["eps"])
    optimizer.state[param] = {
        "step": torch.tensor(float(state["step"])),
        "exp_avg": state["exp_avg"].clone(),
        "exp_avg_sq": state["exp_avg_sq"].clone(),
    }
    param.grad = _gradient(objective, x)
    optimizer.step()
    return param.detach() - x


def diagonal_hessian_step(x: Tensor, objective: Callable[[Tensor], Tensor], state: dict) -> Tensor:
    r"""Adam with its :math:`\sqrt{\hat v}` replaced by the diagonal of the Hessian: :math:`-\alpha\,\hat m / |\operatorname{diag}\nabla^2 f|`.

    A counterfactual optimizer that *does* use second derivatives (a diagonal Newton method
    with Adam's momentum), for comparison with :func:`adam_step`.
    """
    beta1, _ = state["betas"]
    t = int(state["step"]) + 1
    m = beta1 * state["exp_avg"] + (1 - beta1) * _gradient(objective, x)
    curvature = torch.func.hessian(objective)(x).diagonal().abs()
    return -state["lr"] * (m / (1 - beta1**t)) / (curvature + state["eps"])


def newton_step(x: Tensor, objective: Callable[[Tensor], Tensor], state: dict) -> Tensor:
    r"""The Newton step :math:`-(\nabla^2 f)^{-1}\nabla f` (on a quadratic with :math:`F = \nabla^2 f`, the natural step)."""
    return -torch.linalg.solve(torch.func.hessian(objective)(x), _gradient(objective, x))


@dataclass(frozen=True)
class CurvatureResponse:
    r"""A step rule's response to the curvature when the gradient and the optimizer state are held fixed.

    From the point :math:`x_T` reached by ``warmup`` Adam steps on
    :math:`f(x) = \frac12(x-a)^\top H(x-a)`, every objective
    :math:`f_s(x) = g^\top(x-x_T) + \frac s2(x-x_T)^\top H(x-x_T)` has the same gradient
    :math:`g = \nabla f(x_T)` at :math:`x_T` but the Hessian :math:`sH`.

    Attributes:
        scales: the curvature scales :math:`s`.
        point, gradient: :math:`x_T` and :math:`g`.
        steps: the rule's step from :math:`x_T` on each :math:`f_s`, shape ``(len(scales), d)``.
        newton_steps: the Newton steps :math:`-(sH)^{-1}g`, for reference.
        response: :math:`\max_{s,s'}\|\text{step}_s - \text{step}_{s'}\| / \max_s\|\text{step}_s\|`
            (0: the step ignores the curvature).
        newton_response: the same for the Newton steps (:math:`1 - s_{\min}/s_{\max}`).
    """

    scales: np.ndarray
    point: np.ndarray
    gradient: np.ndarray
    steps: np.ndarray
    newton_steps: np.ndarray
    response: float
    newton_response: float


def _response(steps: Tensor) -> float:
    spread = max(float((a - b).norm()) for a in steps for b in steps)
    return spread / float(steps.norm(dim=1).max())


def curvature_response(
    rule: StepRule = adam_step,
    *,
    hessian: Sequence[Sequence[float]] = ((10.0, 3.0), (3.0, 1.0)),
    minimum: Sequence[float] = (1.0, -1.0),
    start: Sequence[float] = (0.0, 0.0),
    scales: Sequence[float] = (0.25, 1.0, 4.0),
    warmup: int = 20,
    lr: float = 0.05,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> CurvatureResponse:
    """Does ``rule``'s step change when only the curvature does? (see :class:`CurvatureResponse`)

    The warm-up runs :class:`torch.optim.Adam` (as :class:`AdamUpdate` does), so the running
    moments at :math:`x_T` are Adam's own after ``warmup`` steps; float64 throughout.
    """
    h = torch.tensor(hessian, dtype=torch.float64)
    a = torch.tensor(minimum, dtype=torch.float64)
    if h.ndim != 2 or h.shape[0] != h.shape[1] or a.shape != (h.shape[0],):
        raise ValueError("hessian must be a (d, d) matrix and minimum a vector of length d")
    if not bool(torch.all(torch.linalg.eigvalsh(h) > 0)):
        raise ValueError("hessian must be positive definite")
    warmup = require_int("warmup", warmup, minimum=0)
    ss = [float(s) for s in scales]
    if len(ss) < 2 or min(ss) <= 0:
        raise ValueError("scales must hold at least two positive numbers")
    param = torch.nn.Parameter(torch.tensor(start, dtype=torch.float64))
    optimizer = torch.optim.Adam([param], lr=lr, betas=betas, eps=eps)
    for _ in range(warmup):
        optimizer.zero_grad()
        (0.5 * (param - a) @ h @ (param - a)).backward()
        optimizer.step()
    x = param.detach().clone()
    g = h @ (x - a)
    moments = optimizer.state.get(param, {})
    state = {
        "step": float(moments["step"]) if moments else 0.0,
        "exp_avg": moments["exp_avg"].clone() if moments else torch.zeros_like(x),
        "exp_avg_sq": moments["exp_avg_sq"].clone() if moments else torch.zeros_like(x),
        "lr": lr,
        "betas": betas,
        "eps": eps,
    }
    steps, newton = [], []
    for s in ss:

        def objective(y: Tensor, s: float = s) -> Tensor:
            d = y - x
            return g @ d + 0.5 * s * d @ h @ d

        steps.append(rule(x, objective, state))
        newton.append(newton_step(x, objective, state))
    steps_t, newton_t = torch.stack(steps), torch.stack(newton)
    return CurvatureResponse(
        np.array(ss),
        x.numpy().copy(),
        g.numpy().copy(),
        steps_t.numpy().copy(),
        newton_t.numpy().copy(),
        _response(steps_t),
        _response(newton_t),
    )


@dataclass(frozen=True)
class RewarmedResponse:
    r"""How a step rule's path responds to the curvature when its history is its own.

    Every objective :math:`f_s(x) = g_0^\top(x-x_0) + \frac s2(x-x_0)^\top H(x-x_0)` has the same
    gradient :math:`g_0` at the start :math:`x_0` and the Hessian :math:`sH`. On each, the rule
    runs from :math:`x_0` with Adam's running moments built from the gradients *it* meets on
    that objective (the warm-up redone per objective). A method that reads the curvature
    responds at once: Newton's first step :math:`-(sH)^{-1}g_0` already differs by the factor
    :math:`1/s`. A first-order method can only respond after the curvature has changed the
    gradients it sees; plain gradient descent, whose first step has the same length as the
    rule's, is the yardstick of that.

    Attributes:
        scales: the curvature scales :math:`s`.
        iterations: :math:`k = 1, \dots, K`.
        displacements: :math:`x_k - x_0` per scale and iteration, shape ``(len(scales), K, d)``.
        response: per :math:`k`, the spread of :math:`x_k - x_0` over the scales relative to the
            largest (as :class:`CurvatureResponse`; 0: the path ignores the curvature).
        gd_response: the same for gradient descent.
        newton_response: the same for Newton's first step (:math:`1 - s_{\min}/s_{\max}`).
        excess: ``max_k(response - gd_response)``, the response beyond what the gradients
            alone give a first-order method.
    """

    scales: np.ndarray
    iterations: np.ndarray
    displacements: np.ndarray
    response: np.ndarray
    gd_response: np.ndarray
    newton_response: float
    excess: float


def curvature_response_rewarmed(
    rule: StepRule = adam_step,
    *,
    hessian: Sequence[Sequence[float]] = ((10.0, 3.0), (3.0, 1.0)),
    minimum: Sequence[float] = (1.0, -1.0),
    start: Sequence[float] = (0.0, 0.0),
    scales: Sequence[float] = (0.25, 1.0, 4.0),
    iterations: int = 5,
    lr: float = 0.05,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> RewarmedResponse:
    r"""Run ``rule`` for ``iterations`` steps on each :math:`f_s` (see :class:`RewarmedResponse`).

    :math:`g_0 = H(x_0 - a)` is the gradient at ``start`` of the quadratic with minimum ``a`` =
    ``minimum``. After each step the moments are updated as :class:`torch.optim.Adam` does
    (:math:`m \leftarrow \beta_1 m + (1-\beta_1)g`, :math:`v \leftarrow \beta_2 v + (1-\beta_2)g^2`),
    so :func:`adam_step` reproduces Adam's own path. Gradient descent uses the learning rate
    :math:`\alpha\sqrt d/\|g_0\|`, which makes its first step as long as Adam's
    (:math:`\alpha` per coordinate). Float64 throughout.
    """
    h = torch.tensor(hessian, dtype=torch.float64)
    a = torch.tensor(minimum, dtype=torch.float64)
    x0 = torch.tensor(start, dtype=torch.float64)
    if h.ndim != 2 or h.shape[0] != h.shape[1] or a.shape != (h.shape[0],) or x0.shape != a.shape:
        raise ValueError("hessian must be a (d, d) matrix and minimum, start vectors of length d")
    if not bool(torch.all(torch.linalg.eigvalsh(h) > 0)):
        raise ValueError("hessian must be positive definite")
    k_max = require_int("iterations", iterations, minimum=1)
    ss = [float(s) for s in scales]
    if len(ss) < 2 or min(ss) <= 0:
        raise ValueError("scales must hold at least two positive numbers")
    g0 = h @ (x0 - a)
    if float(g0.norm()) == 0.0:
        raise ValueError("start must differ from minimum (the gradient there is zero)")
    beta1, beta2 = betas
    gd_lr = lr * math.sqrt(x0.shape[0]) / float(g0.norm())
    paths, gd_paths = [], []
    for s in ss:

        def objective(y: Tensor, s: float = s) -> Tensor:
            d = y - x0
            return g0 @ d + 0.5 * s * d @ h @ d

        x, y = x0.clone(), x0.clone()
        state = {"step": 0.0, "exp_avg": torch.zeros_like(x0), "exp_avg_sq": torch.zeros_like(x0),
                 "lr": lr, "betas": betas, "eps": eps}
        path, gd_path = [], []
        for _ in range(k_max):
            step = rule(x, objective, state)
            g = _gradient(objective, x)
            state = {**state, "step": state["step"] + 1,
                     "exp_avg": beta1 * state["exp_avg"] + (1 - beta1) * g,
                     "exp_avg_sq": beta2 * state["exp_avg_sq"] + (1 - beta2) * g * g}
            x = x + step
            y = y - gd_lr * _gradient(objective, y)
            path.append(x - x0)
            gd_path.append(y - x0)
        paths.append(torch.stack(path))
        gd_paths.append(torch.stack(gd_path))
    disp, gd_disp = torch.stack(paths), torch.stack(gd_paths)
    response = np.array([_response(disp[:, k]) for k in range(k_max)])
    gd_response = np.array([_response(gd_disp[:, k]) for k in range(k_max)])
    newton = torch.stack([-torch.linalg.solve(s * h, g0) for s in ss])
    return RewarmedResponse(
        np.array(ss),
        np.arange(1, k_max + 1),
        disp.numpy().copy(),
        response,
        gd_response,
        _response(newton),
        float((response - gd_response).max()),
    )
