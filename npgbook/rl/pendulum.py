r"""Gymnasium's Pendulum-v1 for all copies at once in numpy: the same dynamics, seeding and autoreset.

Gymnasium has no vectorized Pendulum, so ``gym.make_vec("Pendulum-v1")`` steps one Python
environment (behind three wrappers) per copy, which is most of a training run's time.
:class:`FastPendulumVectorEnv` does the same arithmetic on arrays of all copies. With torque
:math:`u = \operatorname{clip}(a, -2, 2)`, :math:`g = 10`, :math:`m = l = 1`, :math:`\Delta t = 0.05`:

.. math::

    r = -\big(\bar\theta^2 + 0.1\,\dot\theta^2 + 0.001\,u^2\big), \quad
    \dot\theta' = \operatorname{clip}\!\Big(\dot\theta + \big(\tfrac{3g}{2l}\sin\theta + \tfrac{3}{ml^2}u\big)\Delta t,\ \pm 8\Big),
    \quad \theta' = \theta + \dot\theta'\Delta t,

with :math:`\bar\theta` the angle wrapped to :math:`[-\pi, \pi)`; the observation is
:math:`(\cos\theta, \sin\theta, \dot\theta)`, episodes are truncated after 200 steps and never
terminate. Copy :math:`i` is seeded with ``seed + i`` and draws its start
:math:`(\theta, \dot\theta) \sim U([-\pi, \pi] \times [-1, 1])` from its own generator, as
``SyncVectorEnv`` does, and a finished copy is reset on the next call (``NEXT_STEP`` autoreset:
reward 0, no episode end). The tests compare it with gymnasium's vector environment step by step.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector.utils import batch_space

MAX_SPEED, MAX_TORQUE, DT, G, M, L = 8.0, 2.0, 0.05, 10.0, 1.0, 1.0
START_HIGH = np.array([np.pi, 1.0])


class FastPendulumVectorEnv(gym.vector.VectorEnv):
    """``num_envs`` Pendulum-v1 copies stepped together (see the module)."""

    metadata: ClassVar[dict[str, Any]] = {"autoreset_mode": gym.vector.AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(self, num_envs: int, max_episode_steps: int = 200) -> None:
        self.num_envs = int(num_envs)
        self.max_episode_steps = int(max_episode_steps)
        high = np.array([1.0, 1.0, MAX_SPEED], dtype=np.float32)
        self.single_observation_space = gym.spaces.Box(-high, high, dtype=np.float32)
        self.single_action_space = gym.spaces.Box(-MAX_TORQUE, MAX_TORQUE, shape=(1,), dtype=np.float32)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.spec = gym.spec("Pendulum-v1")
        self._rngs = [seeding.np_random(None)[0] for _ in range(self.num_envs)]
        self.state = np.zeros((self.num_envs, 2))
        self.steps = np.zeros(self.num_envs, dtype=np.int64)
        self.prev_done = np.zeros(self.num_envs, dtype=bool)

    def _obs(self) -> np.ndarray:
        th, thdot = self.state[:, 0], self.state[:, 1]
        return np.stack([np.cos(th), np.sin(th), thdot], axis=1).astype(np.float32)

    def reset(
        self, *, seed: int | None = None, options: dict | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        if seed is not None:
            self._rngs = [seeding.np_random(int(seed) + i)[0] for i in range(self.num_envs)]
        for i, rng in enumerate(self._rngs):
            self.state[i] = rng.uniform(low=-START_HIGH, high=START_HIGH)
        self.steps[:] = 0
        self.prev_done[:] = False
        return self._obs(), {}

    def step(
        self, action: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        u = np.clip(np.asarray(action).reshape(self.num_envs, -1)[:, 0], -MAX_TORQUE, MAX_TORQUE)
        th, thdot = self.state[:, 0], self.state[:, 1]
        wrapped = ((th + np.pi) % (2 * np.pi)) - np.pi
        costs = wrapped**2 + 0.1 * thdot**2 + 0.001 * (u**2)
        newthdot = thdot + (3 * G / (2 * L) * np.sin(th) + 3.0 / (M * L**2) * u) * DT
        newthdot = np.clip(newthdot, -MAX_SPEED, MAX_SPEED)
        self.state = np.stack([th + newthdot * DT, newthdot], axis=1)
        self.steps += 1
        reward = -costs
        terminated = np.zeros(self.num_envs, dtype=bool)
        truncated = self.steps >= self.max_episode_steps
        for i in np.flatnonzero(self.prev_done):  # finished on the last call: start anew
            self.state[i] = self._rngs[i].uniform(low=-START_HIGH, high=START_HIGH)
            self.steps[i] = 0
            reward[i] = 0.0
            truncated[i] = False
        self.prev_done = terminated | truncated
        return self._obs(), reward, terminated, truncated, {}
