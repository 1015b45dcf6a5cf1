"""Environment helpers: real CartPole-v1 observations for the geometry chapters."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from .._checks import DTYPE, require_int


def cartpole_observations(n: int, seed: int) -> Tensor:
    """``n`` observations of CartPole-v1 visited by a uniformly random policy.

    Episodes are reset when they end, so the states come from the start of many
    episodes as well as from later in them. Returns a float64 tensor of shape ``(n, 4)``.
    """
    n = require_int("n", n)
    env = gym.make("CartPole-v1")
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=int(seed))
    rows = []
    for _ in range(n):
        rows.append(obs)
        obs, _, terminated, truncated, _ = env.step(int(rng.integers(2)))
        if terminated or truncated:
            obs, _ = env.reset()
    env.close()
    return torch.as_tensor(np.asarray(rows), dtype=DTYPE)
