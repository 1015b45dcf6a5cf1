"""FastPendulumVectorEnv against gymnasium's Pendulum-v1 vector environment, step by step."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

from npgbook import rl
from npgbook.rl.pendulum import FastPendulumVectorEnv


def test_same_observations_rewards_and_autoresets_as_gymnasium():
    ref = gym.make_vec("Pendulum-v1", 4, vectorization_mode="sync")
    fast = FastPendulumVectorEnv(4)
    o_ref, _ = ref.reset(seed=7)
    o_fast, _ = fast.reset(seed=7)
    assert np.array_equal(o_ref, o_fast)  # the same per-copy seeding
    rng = np.random.default_rng(0)
    for _ in range(650):  # three episodes of 200 steps and their autoresets
        action = rng.uniform(-3.0, 3.0, size=(4, 1))  # beyond the torque bound: clipped inside
        r, f = ref.step(action), fast.step(action)
        # elementwise numpy on arrays may round sin differently from the scalar path: 1 ulp-level
        assert np.allclose(r[0], f[0], rtol=0, atol=1e-12) and np.allclose(r[1], f[1], rtol=0, atol=1e-12)
        assert np.array_equal(r[2], f[2]) and np.array_equal(r[3], f[3])
    assert fast.single_observation_space == ref.single_observation_space
    assert fast.single_action_space == ref.single_action_space
    ref.close()


def test_auto_mode_uses_it_and_training_sees_200_step_episodes():
    env = rl.make_vector_env("Pendulum-v1", 2, "auto")
    assert isinstance(env, FastPendulumVectorEnv)
    sampler = rl.VectorSampler(env, 0)
    policy = rl.Trainer(rl.TrainConfig(env_id="Pendulum-v1", total_steps=10)).policy
    batch = sampler.collect(policy, policy.initial_params(0), 450, torch.Generator().manual_seed(0))
    assert batch.episode_lengths == [200, 200, 200, 200] and int(batch.truncated.sum()) == 4
    assert int((~batch.valid).sum()) == 4  # one autoreset slot after each episode
