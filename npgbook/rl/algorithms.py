r"""Algorithm 1 of the note (natural policy gradient), TRPO and the vanilla policy gradient, in one training loop.

Each iteration :math:`k` of :class:`Trainer` does, for all three algorithms:

1. collect trajectories :math:`\mathcal D_k` with :math:`\pi_{\theta_k}` on a vector
   environment (:class:`~npgbook.rl.rollout.VectorSampler`);
2. estimate advantages :math:`\hat A_t` by GAE(:math:`\lambda`) with the learned value
   baseline (:func:`~npgbook.rl.advantages.gae`), then center and scale them;
3. form the sample policy gradient :math:`\hat g_k = \frac1M\sum_t \nabla_\theta \log
   \pi_\theta(a_t\mid s_t)\,\hat A_t` (:func:`policy_gradient`) and -- for NPG and TRPO --
   the sampled KL Hessian :math:`\hat H_k` as a Fisher-vector product
   (:func:`~npgbook.rl.mlp.fisher_operator`, the product of
   :func:`npgbook.fisher.fisher_vector_product` computed in closed form for the MLP policy;
   the matrix is never formed);
4. update :math:`\theta`:

   * **NPG** (:func:`npg_update`): :math:`\theta_{k+1} = \theta_k + \sqrt{2\delta /
     \hat g_k^\top \hat H_k^{-1} \hat g_k}\, \hat H_k^{-1}\hat g_k`, with
     :math:`\hat H_k^{-1}\hat g_k` from conjugate gradient
     (:func:`npgbook.natural.natural_step`);
   * **TRPO** (:func:`trpo_update`): the same step, shrunk by a backtracking line search
     until the sampled KL is :math:`\le \delta` and the surrogate improved, else no
     update;
   * **vanilla policy gradient** (:func:`vpg_update`): the vanilla step
     :math:`\theta_{k+1} = \theta_k + \alpha\,\hat g_k` with a fixed learning rate. With
     the GAE advantages and the learned value baseline of steps 2 and 5 this is not plain
     REINFORCE (which weights each score by the sampled return) but REINFORCE with a baseline
     and a critic;

5. refit the value baseline on the GAE targets, and record one :class:`IterationRecord`.

A step that cannot be computed safely (:math:`\hat g^\top\hat H^{-1}\hat g \le 0` or not
finite, a non-finite gradient or parameter) is skipped with an
:class:`UpdateSkippedWarning`; the parameters never become NaN.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields

import numpy as np
import torch
from torch import Tensor

from .._checks import require_int, require_positive
from ..divergences import _policy_kl
from ..natural import natural_step
from ..policies import MLPCategoricalPolicy, MLPGaussianPolicy, Policy
from .advantages import gae, normalize_advantages
from .mlp import fisher_operator
from .normalization import RunningNormalizer
from .rollout import VECTORIZATION_MODES, VectorSampler, make_vector_env
from .value import ValueFunction

ALGORITHMS = ("npg", "trpo", "vpg", "kl-vpg", "adam-vpg", "ppo")
OBS_NORM_MODES = ("auto", "on", "off")
DTYPES = {"float32": torch.float32, "float64": torch.float64}


class UpdateSkippedWarning(RuntimeWarning):
    """A policy update was not applied because it could not be computed safely."""


# Hyperparameters and their meaning; the CLI's --help is generated from these texts.
HELP: dict[str, str] = {
    "algo": "update rule: 'npg' (Algorithm 1), 'trpo' (NPG step + backtracking line search), "
    "'vpg' (vanilla gradient ascent with a fixed learning rate), 'kl-vpg' (the vanilla direction "
    "with the length that spends delta in the quadratic KL model), 'adam-vpg' (Adam on the "
    "surrogate, minibatch epochs) or 'ppo' (Adam on the clipped surrogate, minibatch epochs)",
    "env_id": "gymnasium environment id (vector observation; discrete or continuous actions)",
    "seed": "one seed fixes the environments, the initial policy and value weights, and all sampling",
    "total_steps": "stop after this many real environment steps (the last batch is completed)",
    "num_envs": "N, parallel environment copies in the vector env",
    "steps_per_env": "T, steps per copy per iteration: a batch has N*T slots",
    "gamma": "discount factor in [0, 1]",
    "gae_lambda": "GAE lambda in [0, 1]: 0 = one-step TD advantage, 1 = Monte Carlo return minus baseline",
    "delta": "KL budget delta > 0 of the natural step, sqrt(2 delta / g^T H^-1 g) H^-1 g (npg, trpo)",
    "cg_iters": "conjugate-gradient iterations (Fisher-vector products) per update (npg, trpo)",
    "cg_damping": "damping lambda >= 0: CG solves (H + lambda I) x = g (npg, trpo)",
    "cg_rtol": "CG stops early when the residual falls below cg_rtol * |g| (npg, trpo)",
    "backtrack_coef": "TRPO line search shrinks the step by this factor in (0, 1) per try",
    "max_backtracks": "TRPO line search tries before the update is rejected",
    "learning_rate": "vanilla policy gradient step size alpha > 0 of theta += alpha * g",
    "hidden": "hidden-layer widths of the tanh policy network, e.g. 32,32",
    "value_hidden": "hidden-layer widths of the tanh value network",
    "value_lr": "Adam learning rate of the value baseline",
    "value_epochs": "passes of Adam over each batch to fit the value baseline (0 = no baseline learning)",
    "value_minibatch": "minibatch size of the value fit",
    "dtype": "floating type of policy and value networks: float32 (fast) or float64",
    "vectorization_mode": "gym.make_vec mode: auto (the env's numpy-vectorized version if it has one, else sync), "
    "sync, async or vector_entry_point",
    "num_threads": "torch threads while training (restored afterwards); 1 is fastest for small networks",
    "adam_lr": "Adam learning rate of adam-vpg and ppo",
    "policy_epochs": "passes over each batch of adam-vpg and ppo",
    "policy_minibatch": "minibatch size of adam-vpg and ppo",
    "clip_range": "PPO's clipping epsilon of the probability ratio",
    "obs_norm": "running observation normalization: auto (on for continuous actions, off for discrete), on or off",
    "reward_scale": "multiply rewards by this constant before GAE and the value fit (episode returns stay unscaled)",
    "init_log_std": "initial log standard deviation of a Gaussian policy (continuous actions)",
}


@dataclass(frozen=True)
class TrainConfig:
    """All hyperparameters of a run (see :data:`HELP` for each); validated on construction.

    Raises:
        ValueError: naming the first invalid hyperparameter.
    """

    algo: str = "npg"
    env_id: str = "CartPole-v1"
    seed: int = 0
    total_steps: int = 100_000
    num_envs: int = 8
    steps_per_env: int = 128
    gamma: float = 0.99
    gae_lambda: float = 0.95
    delta: float = 0.02
    cg_iters: int = 10
    cg_damping: float = 0.01
    cg_rtol: float = 1e-10
    backtrack_coef: float = 0.8
    max_backtracks: int = 10
    learning_rate: float = 1.0
    hidden: tuple[int, ...] = (32, 32)
    value_hidden: tuple[int, ...] = (64, 64)
    value_lr: float = 3e-3
    value_epochs: int = 10
    value_minibatch: int = 256
    dtype: str = "float32"
    vectorization_mode: str = "auto"
    num_threads: int = 1
    adam_lr: float = 3e-4
    policy_epochs: int = 10
    policy_minibatch: int = 64
    clip_range: float = 0.2
    obs_norm: str = "auto"
    reward_scale: float = 1.0
    init_log_std: float = 0.0

    def __post_init__(self) -> None:
        if self.algo not in ALGORITHMS:
            raise ValueError(f"algo must be one of {ALGORITHMS}, got {self.algo!r}")
        if not isinstance(self.env_id, str) or not self.env_id:
            raise ValueError(f"env_id must be a non-empty string, got {self.env_id!r}")
        require_int("seed", self.seed, minimum=0)
        require_int("total_steps", self.total_steps)
        require_int("num_envs", self.num_envs)
        require_int("steps_per_env", self.steps_per_env)
        for name in ("gamma", "gae_lambda"):
            value = require_positive(name, getattr(self, name), allow_zero=True)
            if value > 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        require_positive("delta", self.delta)
        require_int("cg_iters", self.cg_iters)
        require_positive("cg_damping", self.cg_damping, allow_zero=True)
        require_positive("cg_rtol", self.cg_rtol, allow_zero=True)
        coef = require_positive("backtrack_coef", self.backtrack_coef)
        if coef >= 1.0:
            raise ValueError(f"backtrack_coef must be in (0, 1), got {coef}")
        require_int("max_backtracks", self.max_backtracks)
        require_positive("learning_rate", self.learning_rate)
        for name in ("hidden", "value_hidden"):
            widths = getattr(self, name)
            if not isinstance(widths, tuple):
                raise TypeError(f"{name} must be a tuple of layer widths, got {widths!r}")
            for w in widths:
                require_int(name, w)
        require_positive("value_lr", self.value_lr)
        require_int("value_epochs", self.value_epochs, minimum=0)
        require_int("value_minibatch", self.value_minibatch)
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {tuple(DTYPES)}, got {self.dtype!r}")
        if self.vectorization_mode not in VECTORIZATION_MODES:
            raise ValueError(
                f"vectorization_mode must be one of {VECTORIZATION_MODES}, got {self.vectorization_mode!r}"
            )
        require_int("num_threads", self.num_threads)
        require_positive("adam_lr", self.adam_lr)
        require_int("policy_epochs", self.policy_epochs)
        require_int("policy_minibatch", self.policy_minibatch)
        if not 0.0 < require_positive("clip_range", self.clip_range) < 1.0:
            raise ValueError(f"clip_range must be in (0, 1), got {self.clip_range}")
        if self.obs_norm not in OBS_NORM_MODES:
            raise ValueError(f"obs_norm must be one of {OBS_NORM_MODES}, got {self.obs_norm!r}")
        require_positive("reward_scale", self.reward_scale)
        if not math.isfinite(float(self.init_log_std)):
            raise ValueError(f"init_log_std must be finite, got {self.init_log_std!r}")

    def replace(self, **changes: object) -> TrainConfig:
        """A copy with some hyperparameters changed (validated again)."""
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise ValueError(f"unknown hyperparameters: {sorted(unknown)}")
        return TrainConfig(**{**asdict(self), **changes})


@dataclass(frozen=True)
class PolicyData:
    r"""The valid slots of a batch, flattened: what the policy update needs.

    Attributes:
        obs: states :math:`s_t`, ``(M, obs_dim)``.
        actions: actions :math:`a_t`, ``(M,)``.
        advantages: normalized advantages :math:`\hat A_t`, ``(M,)``.
        old_log_probs: :math:`\log\pi_{\theta_k}(a_t\mid s_t)`, ``(M,)``.
    """

    obs: Tensor
    actions: Tensor
    advantages: Tensor
    old_log_probs: Tensor


@dataclass(frozen=True)
class UpdateResult:
    """What a policy update did.

    Attributes:
        theta: the new parameters (the old ones if the update was skipped or rejected).
        accepted: whether the parameters changed.
        quad: :math:`\\hat g^\\top \\hat H^{-1} \\hat g` (``None`` for the vanilla gradient or if not computed).
        cg_iterations: Fisher-vector products used by conjugate gradient.
        cg_residual: final CG residual relative to :math:`\\|\\hat g\\|`.
        linesearch_tries: candidate steps evaluated by TRPO's line search.
        step_fraction: the accepted fraction of the full natural step (TRPO).
        grad_norm: :math:`\\|\\hat g\\|`.
        skipped: the reason the update was skipped, or ``None``.
    """

    theta: Tensor
    accepted: bool
    quad: float | None = None
    cg_iterations: int | None = None
    cg_residual: float | None = None
    linesearch_tries: int = 0
    step_fraction: float | None = None
    grad_norm: float | None = None
    skipped: str | None = None


def surrogate(policy: Policy, theta: Tensor, data: PolicyData) -> Tensor:
    r"""The importance-weighted surrogate :math:`L(\theta) = \frac1M\sum_t \frac{\pi_\theta(a_t\mid s_t)}{\pi_{\theta_k}(a_t\mid s_t)}\hat A_t`.

    At :math:`\theta = \theta_k` its gradient is the policy gradient :math:`\hat g_k`;
    TRPO's line search asks that it increase.
    """
    log_prob = policy._distribution(theta, data.obs).log_prob(data.actions)
    return (torch.exp(log_prob - data.old_log_probs) * data.advantages).mean()


def policy_gradient(policy: Policy, theta: Tensor, data: PolicyData) -> Tensor:
    r""":math:`\hat g = \nabla_\theta L(\theta)\big|_{\theta_k} = \frac1M\sum_t \nabla_\theta\log\pi_\theta(a_t\mid s_t)\,\hat A_t`."""
    theta = theta.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(surrogate(policy, theta, data), theta)
    return grad


def _skip(theta: Tensor, reason: str, **info: object) -> UpdateResult:
    warnings.warn(f"update skipped: {reason}", UpdateSkippedWarning, stacklevel=3)
    return UpdateResult(theta=theta, accepted=False, skipped=reason, **info)  # type: ignore[arg-type]


def _natural_step(
    policy: Policy, theta: Tensor, data: PolicyData, config: TrainConfig
) -> tuple[Tensor, UpdateResult | None, dict[str, object]]:
    """Shared by NPG and TRPO: the full natural step, or a skip result."""
    grad = policy_gradient(policy, theta, data)
    if not bool(torch.isfinite(grad).all()):
        return grad, _skip(theta, "the policy gradient is not finite"), {}
    grad_norm = float(grad.norm())
    if grad_norm == 0.0:
        return grad, _skip(theta, "the policy gradient is 0 (all advantages equal)", quad=0.0, grad_norm=0.0), {}
    fvp = fisher_operator(policy, theta, data.obs, damping=config.cg_damping)
    try:
        step = natural_step(grad, fvp, config.delta, max_iter=config.cg_iters, rtol=config.cg_rtol)
    except ValueError as exc:  # NotPositiveDefiniteError, or a non-finite Fisher-vector product
        return grad, _skip(theta, f"g^T H^-1 g is not positive and finite ({exc})", grad_norm=grad_norm), {}
    assert step.cg is not None
    info: dict[str, object] = {
        "quad": step.quad,
        "cg_iterations": step.cg.iterations,
        "cg_residual": step.cg.residual_norms[-1] / step.cg.residual_norms[0],
        "grad_norm": grad_norm,
    }
    return step.step, None, info


def npg_update(policy: Policy, theta: Tensor, data: PolicyData, config: TrainConfig) -> UpdateResult:
    r"""Algorithm 1: :math:`\theta_k + \sqrt{2\delta/\hat g^\top\hat H^{-1}\hat g}\;\hat H^{-1}\hat g`."""
    step, skipped, info = _natural_step(policy, theta, data, config)
    if skipped is not None:
        return skipped
    new = theta + step
    if not bool(torch.isfinite(new).all()):
        return _skip(theta, "the new parameters are not finite", **info)
    return UpdateResult(theta=new.detach(), accepted=True, linesearch_tries=0, step_fraction=1.0, **info)  # type: ignore[arg-type]


def trpo_update(policy: Policy, theta: Tensor, data: PolicyData, config: TrainConfig) -> UpdateResult:
    r"""The natural step, backtracked: accept :math:`\theta_k + \beta^j s` for the first
    :math:`j` with sampled KL :math:`\le\delta` and :math:`L(\theta_k+\beta^j s) > L(\theta_k)`;
    if no try qualifies, keep :math:`\theta_k`."""
    step, skipped, info = _natural_step(policy, theta, data, config)
    if skipped is not None:
        return skipped
    with torch.no_grad():
        old_objective = float(surrogate(policy, theta, data))
        for j in range(config.max_backtracks):
            fraction = config.backtrack_coef**j
            candidate = theta + fraction * step
            if not bool(torch.isfinite(candidate).all()):
                continue
            kl = float(_policy_kl(policy, theta, candidate, data.obs))
            objective = float(surrogate(policy, candidate, data))
            if math.isfinite(kl) and math.isfinite(objective) and kl <= config.delta and objective > old_objective:
                return UpdateResult(
                    theta=candidate, accepted=True, linesearch_tries=j + 1, step_fraction=fraction, **info  # type: ignore[arg-type]
                )
    return UpdateResult(theta=theta, accepted=False, linesearch_tries=config.max_backtracks, **info)  # type: ignore[arg-type]


def vpg_update(policy: Policy, theta: Tensor, data: PolicyData, config: TrainConfig) -> UpdateResult:
    r"""Vanilla policy gradient ascent :math:`\theta_k + \alpha\,\hat g_k`."""
    grad = policy_gradient(policy, theta, data)
    if not bool(torch.isfinite(grad).all()):
        return _skip(theta, "the policy gradient is not finite")
    new = theta + config.learning_rate * grad
    if not bool(torch.isfinite(new).all()):
        return _skip(theta, "the new parameters are not finite", grad_norm=float(grad.norm()))
    return UpdateResult(theta=new, accepted=bool(grad.any()), grad_norm=float(grad.norm()), step_fraction=1.0)


UPDATES: dict[str, Callable[[Policy, Tensor, PolicyData, TrainConfig], UpdateResult]] = {
    "npg": npg_update,
    "trpo": trpo_update,
    "vpg": vpg_update,
}


@dataclass(frozen=True)
class IterationRecord:
    """The diagnostics of one iteration (one row of the history).

    Attributes:
        iteration: :math:`k`, from 0.
        env_steps: real environment steps so far (cumulative).
        batch_steps: real environment steps in this iteration's batch.
        episodes: episodes that ended during this batch.
        mean_return: their mean return (``None`` if none ended).
        last20_return: mean return of the last 20 episodes ended so far (fewer at the start).
        kl: realized KL :math:`\\bar D_{KL}(\\pi_{\\theta_k}\\|\\pi_{\\theta_{k+1}})` on the batch states.
        quad: :math:`\\hat g^\\top \\hat H^{-1}\\hat g` (NPG, TRPO).
        cg_iterations, cg_residual: CG products used and its final relative residual.
        linesearch_tries: TRPO line-search tries (0 otherwise).
        step_fraction: fraction of the full step taken (1 for NPG and the vanilla gradient, TRPO: accepted :math:`\\beta^j`).
        accepted: whether :math:`\\theta` changed.
        skipped: why the update was skipped, if it was.
        grad_norm: :math:`\\|\\hat g\\|`.
        entropy: mean policy entropy on the batch states before the update.
        value_loss: mean squared error of the value baseline on its targets before the fit.
        wall_time: seconds since the trainer was created.
    """

    iteration: int
    env_steps: int
    batch_steps: int
    episodes: int
    mean_return: float | None
    last20_return: float | None
    kl: float
    quad: float | None
    cg_iterations: int | None
    cg_residual: float | None
    linesearch_tries: int
    step_fraction: float | None
    accepted: bool
    skipped: str | None
    grad_norm: float | None
    entropy: float
    value_loss: float
    wall_time: float


@dataclass
class EpisodeLog:
    """Every finished training episode: return, length, env-step count and seconds at its end."""

    returns: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    end_steps: list[int] = field(default_factory=list)
    end_times: list[float] = field(default_factory=list)


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run a block with ``torch.set_num_threads(n)``, then restore the previous setting.

    The networks here are tiny: with several threads, synchronization costs more than the
    arithmetic, and on a busy machine it can cost a hundredfold.
    """
    old = torch.get_num_threads()
    if old != n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if old != n:
            torch.set_num_threads(old)


def make_update(config: TrainConfig) -> Callable[[Policy, Tensor, PolicyData, TrainConfig], UpdateResult]:
    """The update rule of ``config.algo``; the Adam-based ones are fresh objects (their moments live per run)."""
    if config.algo in UPDATES:
        return UPDATES[config.algo]
    from .first_order import AdamEpochs, kl_vpg_update  # they build on this module

    if config.algo == "kl-vpg":
        return kl_vpg_update
    return AdamEpochs(config, clip=config.algo == "ppo")


def seeds_from(seed: int, n: int) -> list[int]:
    """``n`` independent 32-bit seeds derived from one seed (numpy ``SeedSequence``)."""
    return [int(s) for s in np.random.SeedSequence(require_int("seed", seed, minimum=0)).generate_state(n)]


class Trainer:
    """Runs NPG, TRPO or the vanilla policy gradient on a gymnasium vector environment; one call to :meth:`iteration` per batch.

    Args:
        config: the hyperparameters.
    """

    def __init__(self, config: TrainConfig) -> None:
        if not isinstance(config, TrainConfig):
            raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
        self.start = time.perf_counter()
        self.config = config
        env_seed, policy_seed, value_seed, sample_seed, shuffle_seed = seeds_from(config.seed, 5)
        dtype = DTYPES[config.dtype]
        env = make_vector_env(config.env_id, config.num_envs, config.vectorization_mode)
        try:
            self.sampler = VectorSampler(env, env_seed)
        except (TypeError, ValueError):
            env.close()
            raise
        sampler = self.sampler
        self.policy: MLPCategoricalPolicy | MLPGaussianPolicy
        if sampler.discrete:
            assert sampler.n_actions is not None
            self.policy = MLPCategoricalPolicy(sampler.obs_dim, sampler.n_actions, config.hidden, dtype)
            self.theta = self.policy.initial_params(policy_seed)
        else:
            assert sampler.act_dim is not None
            self.policy = MLPGaussianPolicy(sampler.obs_dim, sampler.act_dim, config.hidden, dtype)
            self.theta = self.policy.initial_params(policy_seed, log_std=config.init_log_std)
        normalize = config.obs_norm == "on" or (config.obs_norm == "auto" and not sampler.discrete)
        self.normalizer = RunningNormalizer(sampler.obs_dim) if normalize else None
        self.value = ValueFunction(
            self.sampler.obs_dim,
            config.value_hidden,
            lr=config.value_lr,
            epochs=config.value_epochs,
            minibatch_size=config.value_minibatch,
            seed=value_seed,
            dtype=dtype,
        )
        self.sample_generator = torch.Generator().manual_seed(sample_seed)
        self.shuffle_generator = torch.Generator().manual_seed(shuffle_seed)
        self.update = make_update(config)
        self.episodes = EpisodeLog()
        self.history: list[IterationRecord] = []

    def close(self) -> None:
        """Close the environments."""
        self.sampler.close()

    def policy_data(self, batch_obs: Tensor, actions: Tensor, advantages: Tensor) -> PolicyData:
        """Normalize advantages and attach :math:`\\log\\pi_{\\theta_k}(a\\mid s)` of the current policy."""
        with torch.no_grad():
            old_log_probs = self.policy._distribution(self.theta, batch_obs).log_prob(actions)
        return PolicyData(batch_obs, actions, normalize_advantages(advantages), old_log_probs)

    def iteration(self) -> IterationRecord:
        """One pass of Algorithm 1 (or its TRPO / vanilla-gradient variant); returns and stores its record."""
        with torch_threads(self.config.num_threads):
            return self._iteration()

    def _iteration(self) -> IterationRecord:
        cfg = self.config
        # line 1: collect trajectories on pi_k
        # (with the observation normalization frozen until the updates below are done)
        batch = self.sampler.collect(self.policy, self.theta, cfg.steps_per_env, self.sample_generator, self.normalizer)
        # line 2: advantages by GAE(lambda) with the value baseline
        values = self.value(batch.obs)
        rewards = batch.rewards if cfg.reward_scale == 1.0 else batch.rewards * cfg.reward_scale
        advantages, targets = gae(
            rewards, values, batch.terminated, batch.truncated, batch.valid, gamma=cfg.gamma, lam=cfg.gae_lambda
        )
        obs, actions = batch.flat()
        data = self.policy_data(obs, actions, advantages[batch.valid])
        with torch.no_grad():
            entropy = float(self.policy._distribution(self.theta, obs).entropy().mean())
        # lines 3-4: g, the Fisher-vector products, CG and the step
        result = self.update(self.policy, self.theta, data, cfg)
        with torch.no_grad():
            kl = float(_policy_kl(self.policy, self.theta, result.theta, obs)) if result.accepted else 0.0
        self.theta = result.theta
        value_loss = self.value.fit(obs, targets[batch.valid], self.shuffle_generator)
        if self.normalizer is not None:  # only now: pi_k and its update saw the same statistics
            assert batch.raw_obs is not None
            self.normalizer.update(batch.raw_obs[:-1][batch.valid].numpy())
        # bookkeeping
        log = self.episodes
        log.returns += batch.episode_returns
        log.lengths += batch.episode_lengths
        log.end_steps += batch.episode_end_steps
        log.end_times += [t - self.start for t in batch.episode_end_times]
        record = IterationRecord(
            iteration=len(self.history),
            env_steps=self.sampler.total_steps,
            batch_steps=batch.n_steps,
            episodes=len(batch.episode_returns),
            mean_return=float(np.mean(batch.episode_returns)) if batch.episode_returns else None,
            last20_return=float(np.mean(log.returns[-20:])) if log.returns else None,
            kl=kl,
            quad=result.quad,
            cg_iterations=result.cg_iterations,
            cg_residual=result.cg_residual,
            linesearch_tries=result.linesearch_tries,
            step_fraction=result.step_fraction,
            accepted=result.accepted,
            skipped=result.skipped,
            grad_norm=result.grad_norm,
            entropy=entropy,
            value_loss=value_loss,
            wall_time=time.perf_counter() - self.start,
        )
        self.history.append(record)
        return record

    def run(self, callback: Callable[[IterationRecord], None] | None = None) -> list[IterationRecord]:
        """Iterate until ``config.total_steps`` environment steps; call ``callback`` after each iteration."""
        while self.sampler.total_steps < self.config.total_steps:
            record = self.iteration()
            if callback is not None:
                callback(record)
        return self.history


@dataclass
class TrainResult:
    """A finished run: its configuration, history, episodes, final parameters and networks."""

    config: TrainConfig
    history: list[IterationRecord]
    episodes: EpisodeLog
    policy: MLPCategoricalPolicy | MLPGaussianPolicy
    theta: Tensor
    value: ValueFunction
    normalizer: RunningNormalizer | None = None


def train(config: TrainConfig, callback: Callable[[IterationRecord], None] | None = None) -> TrainResult:
    """Train with ``config`` for ``config.total_steps`` environment steps."""
    trainer = Trainer(config)
    try:
        trainer.run(callback)
    finally:
        trainer.close()
    return TrainResult(
        config, trainer.history, trainer.episodes, trainer.policy, trainer.theta, trainer.value, trainer.normalizer
    )


def first_solved(returns: list[float] | np.ndarray, *, window: int = 20, threshold: float = 475.0) -> int | None:
    """Index of the first episode at which the mean of the last ``window`` returns reaches ``threshold``.

    ``None`` if it never does (or fewer than ``window`` episodes ended). CartPole-v1 counts
    as solved at a mean of 475 over the last episodes.
    """
    window = require_int("window", window)
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 1:
        raise ValueError(f"returns must be 1-D, got shape {r.shape}")
    if r.shape[0] < window:
        return None
    c = np.concatenate([[0.0], np.cumsum(r)])
    means = (c[window:] - c[:-window]) / window
    hits = np.flatnonzero(means >= threshold - 1e-9 * max(1.0, abs(threshold)))
    return int(hits[0]) + window - 1 if hits.size else None


def learning_curve(
    returns: list[float] | np.ndarray, end_steps: list[int] | np.ndarray, grid: np.ndarray, *, window: int = 20
) -> np.ndarray:
    """The mean return of the last ``window`` finished episodes, read off at each env-step count in ``grid``.

    Puts runs whose episodes end at different steps on one axis, so that several seeds can
    be averaged. Episodes that ended at or before ``grid[i]`` count for entry ``i``.

    Raises:
        ValueError: if a grid point comes before the first episode ended.
    """
    window = require_int("window", window)
    r = np.asarray(returns, dtype=np.float64)
    s = np.asarray(end_steps)
    if r.ndim != 1 or r.shape != s.shape or r.size == 0:
        raise ValueError("returns and end_steps must be non-empty 1-D arrays of one length")
    grid = np.asarray(grid)
    count = np.searchsorted(s, grid, side="right")  # episodes finished by each grid point
    if np.any(count == 0):
        raise ValueError(f"grid starts at {grid.min()}, before the first episode ended (step {s[0]})")
    c = np.concatenate([[0.0], np.cumsum(r)])
    lo = np.maximum(count - window, 0)
    return (c[count] - c[lo]) / (count - lo)
