r"""Collecting trajectories :math:`\mathcal D_k` on the current policy (Algorithm 1, line 1).

A :class:`VectorSampler` steps a gymnasium vector environment (``gym.make_vec``) with the
policy :math:`\pi_{\theta_k}` and writes every transition into preallocated arrays of
shape ``(T, N)`` (``T`` steps of ``N`` environments).

**Autoreset.** Gymnasium 1.x vector environments reset a finished sub-environment in the
``NEXT_STEP`` mode: the step that ends an episode returns the episode's *last*
observation, and the following call to ``step`` ignores the action, resets that
sub-environment and returns the new first observation with reward 0 and
``terminated = truncated = False``. That call is not an environment step. The sampler
marks its slot ``valid = False``; it is never counted, never used for a gradient and
never part of an advantage. Because the last observation is returned by the step that
ends the episode, ``obs[t + 1]`` is always the true successor of ``obs[t]`` at a valid
slot, including the final observation of an episode cut by the time limit, which is
what the truncation bootstrap :math:`V(s_{T})` needs (see :mod:`npgbook.rl.advantages`).
No transition crosses an episode boundary.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from .._checks import require_int
from ..policies import MLPGaussianPolicy, Policy, _MLPPolicy
from .cartpole import FastCartPoleVectorEnv
from .normalization import RunningNormalizer
from .pendulum import FastPendulumVectorEnv

VECTORIZATION_MODES = ("auto", "sync", "async", "vector_entry_point")
FAST_VECTOR_ENVS = {"CartPole-v1": FastCartPoleVectorEnv, "Pendulum-v1": FastPendulumVectorEnv}  # used by "auto"


@dataclass
class Batch:
    r"""The trajectories of one iteration, time-major, with ``N`` parallel environments.

    Attributes:
        obs: observations as the policy sees them (normalized, if the sampler was given a
            normalizer), shape ``(T + 1, N, obs_dim)``; ``obs[t]`` is seen before step ``t`` and
            ``obs[T]`` is the observation after the last step.
        actions: actions taken, shape ``(T, N)`` (discrete) or ``(T, N, act_dim)``
            (continuous: the policy's sample, *before* clipping to the action space; the
            environment received the clipped action).
        rewards: rewards, shape ``(T, N)`` (0 on invalid slots).
        terminated: the step ended the episode in a terminal state, shape ``(T, N)``.
        truncated: the step ended the episode by the time limit, shape ``(T, N)``.
        valid: the slot is a real environment step (``False`` on the autoreset call that
            follows an episode end), shape ``(T, N)``.
        episode_returns, episode_lengths: returns and lengths of the episodes that ended
            during this batch, in the order they ended.
        episode_end_steps: the sampler's cumulative environment-step count when each of
            those episodes ended.
        episode_end_times: ``time.perf_counter()`` when each of them ended.
        raw_obs: the observations as the environment returned them, ``(T + 1, N, obs_dim)``,
            if they were normalized (``None`` otherwise).
    """

    obs: Tensor
    actions: Tensor
    rewards: Tensor
    terminated: Tensor
    truncated: Tensor
    valid: Tensor
    episode_returns: list[float] = field(default_factory=list)
    episode_lengths: list[int] = field(default_factory=list)
    episode_end_steps: list[int] = field(default_factory=list)
    episode_end_times: list[float] = field(default_factory=list)
    raw_obs: Tensor | None = None

    @property
    def n_steps(self) -> int:
        """Number of real environment steps in the batch (valid slots)."""
        return int(self.valid.sum())

    def flat(self) -> tuple[Tensor, Tensor]:
        """Observations and actions of the valid slots, shapes ``(M, obs_dim)`` and ``(M,)`` (or ``(M, act_dim)``)."""
        return self.obs[:-1][self.valid], self.actions[self.valid]


def make_vector_env(
    env_id: str = "CartPole-v1", num_envs: int = 8, vectorization_mode: str = "auto"
) -> gym.vector.VectorEnv:
    """``gym.make_vec(env_id, num_envs, vectorization_mode)``, with checked arguments.

    Args:
        env_id: a registered gymnasium id with a vector observation and discrete actions.
        num_envs: number of parallel copies ``N``.
        vectorization_mode: ``"vector_entry_point"`` (the environment's own numpy-vectorized
            version: all copies in one array; CartPole has one),
            ``"sync"`` (copies stepped in turn in this process, each with its own wrappers),
            ``"async"`` (one subprocess per copy), or ``"auto"`` (the default): for
            CartPole-v1 :class:`~npgbook.rl.cartpole.FastCartPoleVectorEnv` (gymnasium's vector
            CartPole, bitwise, at half the cost per call), else ``"vector_entry_point"`` when
            the environment registers one, else ``"sync"``. All of them use the same
            ``NEXT_STEP`` autoreset rule.
    """
    num_envs = require_int("num_envs", num_envs)
    if vectorization_mode not in VECTORIZATION_MODES:
        raise ValueError(f"vectorization_mode must be one of {VECTORIZATION_MODES}, got {vectorization_mode!r}")
    if not isinstance(env_id, str):
        raise TypeError(f"env_id must be a string, got {type(env_id).__name__}")
    try:
        if vectorization_mode == "auto" and env_id in FAST_VECTOR_ENVS:
            return FAST_VECTOR_ENVS[env_id](num_envs=num_envs, max_episode_steps=gym.spec(env_id).max_episode_steps)
        if vectorization_mode == "auto":
            has_vector = gym.spec(env_id).vector_entry_point is not None
            vectorization_mode = "vector_entry_point" if has_vector else "sync"
        return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode=vectorization_mode)
    except gym.error.Error as exc:
        raise ValueError(f"env_id {env_id!r} cannot be made: {exc}") from exc


def _logits_fn(policy: Policy, theta: Tensor) -> Callable[[Tensor], Tensor]:
    """A fast ``obs -> logits`` map (the mean, for a Gaussian policy) for a fixed ``theta``.

    For the MLP policies the weights are unflattened once and the tanh network is evaluated
    with plain matrix products, which is several times faster per call than
    :func:`torch.func.functional_call` on small batches (the unit tests check it against
    :meth:`~npgbook.policies.MLPCategoricalPolicy.logits`).
    """
    if isinstance(policy, _MLPPolicy):
        weights = list(policy.unflatten(theta).values())
        layers = [(w.T.contiguous(), b) for w, b in zip(weights[::2], weights[1::2])]
        *hidden, (w_out, b_out) = layers

        def logits(obs: Tensor) -> Tensor:
            for w, b in hidden:
                obs = torch.tanh(torch.addmm(b, obs, w))
            return torch.addmm(b_out, obs, w_out)

        return logits
    return lambda obs: policy._distribution(theta, obs).logits


def _numpy_net(policy: Policy, theta: Tensor) -> Callable[[np.ndarray], np.ndarray]:
    """The policy's network output (logits, or the Gaussian mean) as a numpy function of ``obs``.

    For the MLP policies the tanh network runs in numpy on weights converted once per batch:
    on the few rows of a vector env, one numpy call costs about a microsecond, a third of a
    torch call, and the observations and actions never leave numpy.
    """
    if isinstance(policy, _MLPPolicy):
        weights = [w.numpy() for w in policy.unflatten(theta).values()]
        *hidden, (w_out, b_out) = [(w.T.copy(), b) for w, b in zip(weights[::2], weights[1::2])]

        def net(obs: np.ndarray) -> np.ndarray:
            for w, b in hidden:
                obs = np.tanh(obs @ w + b)
            return obs @ w_out + b_out

        return net
    torch_logits = _logits_fn(policy, theta)

    def net_torch(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return torch_logits(torch.from_numpy(obs).to(policy.dtype)).numpy()

    return net_torch


def _numpy_actor(policy: Policy, theta: Tensor) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    r"""``(obs, noise) -> actions`` for a fixed ``theta``: sampling from the policy with given noise.

    ``obs`` has shape ``(N, obs_dim)``.

    * Discrete: ``noise`` holds one uniform :math:`u` per row, shape ``(N, 1)``; inverse-CDF
      sampling. With logits :math:`\ell` and :math:`c_j = \sum_{b\le j} e^{\ell_b - \max\ell}`,
      the action is :math:`\#\{j < n - 1 : c_j \le u\, c_{n-1}\}`, i.e. the first :math:`a` with
      :math:`u < P(A \le a)`.
    * Gaussian (:class:`~npgbook.policies.MLPGaussianPolicy`): ``noise`` holds standard normals
      :math:`z`, shape ``(N, act_dim)``; the action is :math:`\mu(s) + e^{\ell} z`.
    """
    net = _numpy_net(policy, theta)
    if isinstance(policy, MLPGaussianPolicy):
        std = np.exp(theta[policy.n_net_params :].numpy())

        def act_gaussian(obs: np.ndarray, z: np.ndarray) -> np.ndarray:
            return net(obs) + std * z

        return act_gaussian

    def act(obs: np.ndarray, u: np.ndarray) -> np.ndarray:
        ell = net(obs)
        cdf = np.exp(ell - ell.max(axis=1, keepdims=True)).cumsum(axis=1)
        return (cdf[:, :-1] <= u * cdf[:, -1:]).sum(axis=1)

    return act


def _env_name(env: gym.vector.VectorEnv) -> str:
    spec = getattr(env, "spec", None)
    return spec.id if spec is not None else type(env).__name__


class VectorSampler:
    r"""Runs a policy on a vector environment and records :class:`Batch` es.

    The environment keeps running across calls to :meth:`collect`: an episode that is
    still going at the end of one batch continues in the next one, exactly as if the
    batches were one long rollout.

    Args:
        env: a gymnasium vector environment with a 1-D ``Box`` observation, a ``Discrete`` or
            1-D ``Box`` action space, and the ``NEXT_STEP`` autoreset mode (the default of
            ``gym.make_vec``).
        seed: seeds the environment copies (``seed, seed + 1, ..., seed + N - 1``).

    Raises:
        TypeError: naming the environment and the space, for any other space (images,
            ``Dict``, ``Tuple``, multi-dimensional boxes, ``MultiDiscrete``...).
    """

    def __init__(self, env: gym.vector.VectorEnv, seed: int) -> None:
        if not isinstance(env, gym.vector.VectorEnv):
            raise TypeError(f"env must be a gymnasium VectorEnv, got {type(env).__name__}")
        mode = env.metadata.get("autoreset_mode")
        if mode != gym.vector.AutoresetMode.NEXT_STEP:
            raise ValueError(f"env must use the NEXT_STEP autoreset mode, got {mode!r}")
        obs_space, act_space = env.single_observation_space, env.single_action_space
        name = _env_name(env)
        if not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) != 1:
            raise TypeError(
                f"environment {name} has the observation space {obs_space}; npgbook.rl needs a "
                "1-D Box (a vector of numbers), not images, Dict or Tuple spaces"
            )
        self.discrete = isinstance(act_space, gym.spaces.Discrete)
        if not self.discrete and not (isinstance(act_space, gym.spaces.Box) and len(act_space.shape) == 1):
            raise TypeError(
                f"environment {name} has the action space {act_space}; npgbook.rl needs Discrete "
                "or a 1-D Box (a vector of continuous actions)"
            )
        self.env = env
        self.num_envs: int = env.num_envs
        self.obs_dim: int = int(obs_space.shape[0])
        self.n_actions: int | None = int(act_space.n) if self.discrete else None
        self.act_dim: int | None = None if self.discrete else int(act_space.shape[0])
        self.action_low = None if self.discrete else np.asarray(act_space.low, dtype=np.float64)
        self.action_high = None if self.discrete else np.asarray(act_space.high, dtype=np.float64)
        obs, _ = env.reset(seed=require_int("seed", seed, minimum=0))
        self._obs = np.asarray(obs, dtype=np.float32)
        self._needs_reset = np.zeros(self.num_envs, dtype=bool)  # the next call is an autoreset
        self._episode_return = np.zeros(self.num_envs, dtype=np.float64)
        self._episode_length = np.zeros(self.num_envs, dtype=np.int64)
        self.total_steps = 0  # real environment steps so far

    def close(self) -> None:
        """Close the environment."""
        self.env.close()

    def collect(
        self,
        policy: Policy,
        theta: Tensor,
        steps_per_env: int,
        generator: torch.Generator,
        normalizer: RunningNormalizer | None = None,
    ) -> Batch:
        r"""Run :math:`\pi_\theta` for ``steps_per_env`` vector steps and return the batch.

        All sampling noise is generated up front with ``generator``, so the sampling is fixed by
        the generator's seed: for a discrete policy, action :math:`a` is the number of partial
        sums :math:`\sum_{b \le j} e^{\ell_b}`, :math:`j < n-1`, that are
        :math:`\le u \sum_b e^{\ell_b}` for logits :math:`\ell` and a uniform :math:`u`; for a
        Gaussian policy it is :math:`\mu(s) + e^{\ell} z` with a standard normal :math:`z`,
        recorded as sampled and clipped to the action space only when sent to the environment.

        The loop over time does only what must be done step by step (act, step the
        environment, store); the masking of autoreset slots, the step counts and the episode
        returns and lengths are computed afterwards on whole arrays.

        Args:
            policy: a policy that reads observations, with the env's observation size and its
                action count (discrete) or action size (continuous).
            theta: its flat parameter vector.
            steps_per_env: ``T``, the number of calls to ``env.step`` (slots per copy).
            generator: the source of all sampling randomness.
            normalizer: if given, the policy sees ``normalizer(obs)`` (its statistics are not
                changed here) and :attr:`Batch.obs` holds the normalized observations.
        """
        if policy.stateless or policy.discrete != self.discrete:
            kind = "discrete" if self.discrete else "continuous (Gaussian)"
            raise ValueError(f"policy must be a {kind} policy that reads observations, got {policy!r}")
        if self.discrete and (policy.obs_dim != self.obs_dim or policy.n_actions != self.n_actions):
            raise ValueError(
                f"policy has obs_dim={policy.obs_dim}, n_actions={policy.n_actions}; the env has "
                f"obs_dim={self.obs_dim}, n_actions={self.n_actions}"
            )
        if not self.discrete and (policy.obs_dim != self.obs_dim or getattr(policy, "act_dim", None) != self.act_dim):
            raise ValueError(
                f"policy has obs_dim={policy.obs_dim}, act_dim={getattr(policy, 'act_dim', None)}; the env has "
                f"obs_dim={self.obs_dim}, act_dim={self.act_dim}"
            )
        if normalizer is not None and normalizer.dim != self.obs_dim:
            raise ValueError(f"normalizer has dim={normalizer.dim}, the env has obs_dim={self.obs_dim}")
        T = require_int("steps_per_env", steps_per_env)
        N = self.num_envs
        theta = policy.check_theta(theta).detach()
        obs_buf = np.empty((T + 1, N, self.obs_dim), dtype=np.float32)
        seen_buf = obs_buf if normalizer is None else np.empty_like(obs_buf)  # what the policy sees
        if self.discrete:
            act_buf = np.empty((T, N), dtype=np.int64)
            noise = torch.rand((T, N, 1), generator=generator, dtype=policy.dtype).numpy()
        else:
            act_buf = np.empty((T, N, self.act_dim), dtype=theta.numpy().dtype)
            noise = torch.randn((T, N, self.act_dim), generator=generator, dtype=policy.dtype).numpy()
        rew_buf = np.empty((T, N), dtype=np.float32)
        term_buf = np.empty((T, N), dtype=bool)
        trunc_buf = np.empty((T, N), dtype=bool)
        valid_buf = np.empty((T, N), dtype=bool)
        times = np.empty(T)
        act = _numpy_actor(policy, theta)
        step, clock = self.env.step, time.perf_counter
        low, high = self.action_low, self.action_high
        obs_buf[0] = self._obs
        if normalizer is not None:
            seen_buf[0] = normalizer(obs_buf[0])
        valid = ~self._needs_reset
        for t in range(T):
            valid_buf[t] = valid
            act_buf[t] = act(seen_buf[t], noise[t])
            obs, reward, terminated, truncated, _ = step(act_buf[t] if low is None else np.clip(act_buf[t], low, high))
            times[t] = clock()
            obs_buf[t + 1], rew_buf[t], term_buf[t], trunc_buf[t] = obs, reward, terminated, truncated
            if normalizer is not None:
                seen_buf[t + 1] = normalizer(obs_buf[t + 1])
            valid = ~((terminated | truncated) & valid)  # the next call after an episode end is an autoreset
        # an autoreset slot is not a step: no reward, no episode end
        rew_buf *= valid_buf
        term_buf &= valid_buf
        trunc_buf &= valid_buf
        done = term_buf | trunc_buf
        steps_after = self.total_steps + np.cumsum(valid_buf.sum(axis=1))  # total steps after slot t
        # each copy's running return and length, carried over from the previous batch
        ret = self._episode_return + np.cumsum(rew_buf, axis=0, dtype=np.float64)
        length = self._episode_length + np.cumsum(valid_buf, axis=0)
        ret_before, len_before = np.zeros(N), np.zeros(N, dtype=np.int64)  # at the last episode end
        returns: list[float] = []
        lengths: list[int] = []
        end_steps: list[int] = []
        end_times: list[float] = []
        for t, i in zip(*np.nonzero(done)):  # in the order the episodes ended
            returns.append(float(ret[t, i] - ret_before[i]))
            lengths.append(int(length[t, i] - len_before[i]))
            end_steps.append(int(steps_after[t]))
            end_times.append(float(times[t]))
            ret_before[i], len_before[i] = ret[t, i], length[t, i]
        self._episode_return = ret[-1] - ret_before
        self._episode_length = length[-1] - len_before
        self.total_steps = int(steps_after[-1])
        self._needs_reset = ~valid
        self._obs = obs_buf[T].copy()
        return Batch(
            obs=torch.from_numpy(seen_buf).to(policy.dtype),
            actions=torch.from_numpy(act_buf),
            rewards=torch.from_numpy(rew_buf).to(policy.dtype),
            terminated=torch.from_numpy(term_buf),
            truncated=torch.from_numpy(trunc_buf),
            valid=torch.from_numpy(valid_buf),
            episode_returns=returns,
            episode_lengths=lengths,
            episode_end_steps=end_steps,
            episode_end_times=end_times,
            raw_obs=None if normalizer is None else torch.from_numpy(obs_buf),
        )


def evaluate_actor(
    act: Callable[[np.ndarray], np.ndarray], *, env_id: str = "CartPole-v1", n_episodes: int = 20, seed: int = 0
) -> np.ndarray:
    """Returns of ``n_episodes`` fresh episodes, one per copy of a vector env, run in parallel.

    Args:
        act: maps a batch of observations ``(n_episodes, obs_dim)`` to a batch of actions
            (any agent: an npgbook policy, or another library's model in the benchmark).
        env_id: the environment.
        n_episodes: number of episodes (= parallel copies); each copy's first episode counts.
        seed: seeds the copies ``seed, ..., seed + n_episodes - 1``.
    """
    n_episodes = require_int("n_episodes", n_episodes)
    env = make_vector_env(env_id, n_episodes, "sync")
    try:
        obs, _ = env.reset(seed=require_int("seed", seed, minimum=0))
        totals = np.zeros(n_episodes)
        running = np.ones(n_episodes, dtype=bool)
        while running.any():
            obs, reward, terminated, truncated, _ = env.step(np.asarray(act(np.asarray(obs))))
            totals += np.where(running, reward, 0.0)
            running &= ~(terminated | truncated)
    finally:
        env.close()
    return totals


def evaluate_policy(
    policy: Policy,
    theta: Tensor,
    *,
    env_id: str = "CartPole-v1",
    n_episodes: int = 20,
    seed: int = 0,
    deterministic: bool = True,
    generator: torch.Generator | None = None,
    normalizer: RunningNormalizer | None = None,
) -> np.ndarray:
    """Returns of ``n_episodes`` fresh episodes of the policy (see :func:`evaluate_actor`).

    Args:
        policy, theta: the policy to evaluate.
        env_id, n_episodes, seed: as in :func:`evaluate_actor`.
        deterministic: take the most probable action (the usual evaluation: the argmax of a
            categorical policy, the mean of a Gaussian one) instead of sampling.
        generator: sampling randomness when ``deterministic`` is false.
        normalizer: the observation normalization the policy was trained with, if any.
    """
    if not deterministic and generator is None:
        raise ValueError("generator is required when deterministic is False")
    theta = policy.check_theta(theta).detach()
    net = _logits_fn(policy, theta)
    gaussian = isinstance(policy, MLPGaussianPolicy)
    bounds: tuple[np.ndarray, np.ndarray] | None = None
    if gaussian:
        probe = gym.make(env_id)
        try:
            bounds = (np.asarray(probe.action_space.low), np.asarray(probe.action_space.high))
        finally:
            probe.close()

    def act(obs: np.ndarray) -> np.ndarray:
        seen = obs if normalizer is None else normalizer(np.asarray(obs, dtype=np.float32))
        with torch.no_grad():
            out = net(torch.as_tensor(seen, dtype=policy.dtype))
            if gaussian:
                assert bounds is not None
                if not deterministic:
                    std = torch.exp(theta[policy.n_net_params :])
                    noise = torch.randn(out.shape, generator=generator, dtype=out.dtype)
                    out = out + std * noise
                return np.clip(out.numpy(), *bounds)
            if deterministic:
                return out.argmax(-1).numpy()
            return torch.multinomial(torch.softmax(out, -1), 1, generator=generator)[:, 0].numpy()

    return evaluate_actor(act, env_id=env_id, n_episodes=n_episodes, seed=seed)
