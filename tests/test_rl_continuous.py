"""npgbook.rl on continuous (Box) action spaces: Gaussian policy, clipping, observation normalization."""

from __future__ import annotations

import json
from typing import ClassVar

import gymnasium as gym
import numpy as np
import pytest
import torch

import npgbook as nb
from npgbook import rl
from npgbook.cli import main as cli_main
from npgbook.rl.mlp import fisher_operator


class RecordingEnv(gym.Env):
    """A 2-D observation, 1-D action in [-1, 1]; remembers the actions it was given."""

    received: ClassVar[list[float]] = []

    def __init__(self, obs_space: gym.Space | None = None, act_space: gym.Space | None = None) -> None:
        self.observation_space = obs_space or gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.action_space = act_space or gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([100.0, -3.0], dtype=np.float32) + self.np_random.normal(size=2).astype(
            np.float32
        ), {}

    def step(self, action):
        RecordingEnv.received.append(float(np.asarray(action).reshape(-1)[0]))
        self.t += 1
        obs = np.array([100.0 + self.t, -3.0], dtype=np.float32)
        return obs, -float(np.sum(np.asarray(action) ** 2)), self.t >= 5, False, {}


def vec(n=2, **kw) -> gym.vector.VectorEnv:
    return gym.vector.SyncVectorEnv([lambda: RecordingEnv(**kw) for _ in range(n)])


def test_actions_are_recorded_unclipped_and_sent_clipped():
    RecordingEnv.received = []
    sampler = rl.VectorSampler(vec(), seed=0)
    assert not sampler.discrete and sampler.act_dim == 1 and sampler.n_actions is None
    policy = nb.MLPGaussianPolicy(2, 1, (4,), dtype=torch.float64)
    theta = policy.initial_params(0, log_std=1.5)  # std 4.5: most samples fall outside [-1, 1]
    batch = sampler.collect(policy, theta, 12, torch.Generator().manual_seed(0))
    assert batch.actions.shape == (12, 2, 1)
    stored = batch.actions[:, 0, 0][batch.valid[:, 0]].numpy()  # copy 0's real steps
    assert np.abs(stored).max() > 1.0  # the sample itself is kept
    sent = np.array(RecordingEnv.received).reshape(-1, 2)[:, 0]  # steps alternate copies 0, 1
    assert np.array_equal(sent, np.clip(stored, -1.0, 1.0))
    # the log-probability is that of the unclipped sample under the Gaussian
    states, actions = batch.flat()
    mean, log_std = policy.mean_log_std(theta, states)
    normal = torch.distributions.Normal(mean, torch.exp(log_std))
    assert torch.allclose(policy.log_prob(theta, actions, states), normal.log_prob(actions).sum(-1))


def test_sampling_is_fixed_by_the_generator():
    policy = nb.MLPGaussianPolicy(2, 1, (4,), dtype=torch.float32)
    theta = policy.initial_params(1)
    a = rl.VectorSampler(vec(), 3).collect(policy, theta, 9, torch.Generator().manual_seed(5))
    b = rl.VectorSampler(vec(), 3).collect(policy, theta, 9, torch.Generator().manual_seed(5))
    assert torch.equal(a.actions, b.actions) and torch.equal(a.obs, b.obs)


def test_running_normalizer_matches_numpy_and_round_trips():
    rng = np.random.default_rng(0)
    chunks = [rng.normal(5.0, 3.0, size=(n, 3)) for n in (1, 7, 50, 200)]
    norm = rl.RunningNormalizer(3)
    assert np.allclose(norm(np.ones((2, 3))), 1.0, rtol=0, atol=1e-7)  # identity before any data
    for c in chunks:
        norm.update(c)
    everything = np.concatenate(chunks)
    assert norm.count == everything.shape[0]
    assert np.allclose(norm.mean, everything.mean(0), atol=1e-12)
    assert np.allclose(norm.var, everything.var(0), atol=1e-10)
    z = norm(everything)
    assert np.allclose(z.mean(0), 0.0, atol=1e-9) and np.allclose(z.std(0), 1.0, atol=1e-6)
    assert norm(np.full((1, 3), 1e9)).max() == norm.clip  # clipped at c
    again = rl.RunningNormalizer.from_state_dict(json.loads(json.dumps(norm.state_dict())))
    assert np.array_equal(again(everything), z)
    for bad in (np.zeros((3, 2)), np.full((1, 3), np.nan)):
        with pytest.raises(ValueError, match="x"):
            norm.update(bad)
    with pytest.raises(ValueError, match="dim"):
        rl.RunningNormalizer(0)


def test_the_policy_sees_normalized_observations_with_frozen_statistics():
    norm = rl.RunningNormalizer(2)
    norm.update(np.array([[100.0, -3.0], [110.0, -3.0]]))
    before = norm.state_dict()
    policy = nb.MLPGaussianPolicy(2, 1, (4,), dtype=torch.float64)
    batch = rl.VectorSampler(vec(), 0).collect(policy, policy.initial_params(0), 8, torch.Generator(), norm)
    assert norm.state_dict() == before  # collecting does not change the statistics
    assert batch.raw_obs is not None
    assert torch.allclose(batch.obs, torch.from_numpy(norm(batch.raw_obs.numpy())).double())
    assert float(batch.raw_obs[..., 0].min()) > 90 and float(batch.obs[..., 0].abs().max()) < 5


def test_trainer_updates_statistics_after_the_update_only():
    config = rl.TrainConfig(env_id="Pendulum-v1", total_steps=1024, num_envs=2, steps_per_env=64, hidden=(8,))
    trainer = rl.Trainer(config)
    try:
        assert trainer.normalizer is not None and trainer.normalizer.count == 0
        assert isinstance(trainer.policy, nb.MLPGaussianPolicy)
        record = trainer.iteration()
        assert trainer.normalizer.count == record.batch_steps == 128
    finally:
        trainer.close()
    off = rl.Trainer(config.replace(obs_norm="off"))
    off.close()
    assert off.normalizer is None
    assert rl.Trainer(rl.TrainConfig(total_steps=10)).normalizer is None  # CartPole: off by default


def test_gaussian_fisher_operator_matches_double_backprop():
    policy = nb.MLPGaussianPolicy(3, 2, (6, 5), dtype=torch.float64)
    theta = policy.initial_params(2, last_layer_scale=0.7, log_std=-0.4)
    obs = torch.randn(11, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    fast = fisher_operator(policy, theta, obs, damping=0.1)
    reference = nb.fisher_vector_product(policy, theta, obs, damping=0.1)
    dense = nb.fisher_mlp_gaussian(policy, theta, obs) + 0.1 * torch.eye(policy.n_params, dtype=torch.float64)
    for seed in range(3):
        v = torch.randn(policy.n_params, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        assert torch.allclose(fast(v), reference(v), atol=1e-12)
        assert torch.allclose(fast(v), dense @ v, atol=1e-12)


@pytest.mark.parametrize("algo", ["npg", "trpo", "vpg"])
def test_training_on_pendulum_is_finite_and_npg_spends_about_delta(algo):
    config = rl.TrainConfig(
        algo=algo,
        env_id="Pendulum-v1",
        total_steps=4096,
        num_envs=4,
        steps_per_env=256,
        hidden=(16,),
        learning_rate=0.01,
    )
    result = rl.train(config)
    assert torch.isfinite(result.theta).all()
    assert all(h.skipped is None for h in result.history)
    assert result.normalizer is not None and result.normalizer.count >= 4096
    if algo == "npg":  # the quadratic model's budget, realized to within a factor 2 at these small steps
        kls = np.array([h.kl for h in result.history])
        assert np.all((kls > 0.5 * config.delta) & (kls < 2 * config.delta))
    if algo == "trpo":
        assert all(h.kl <= config.delta for h in result.history)
    returns = rl.evaluate_policy(
        result.policy, result.theta, env_id="Pendulum-v1", n_episodes=2, normalizer=result.normalizer
    )
    assert returns.shape == (2,) and np.all(returns < 0)


def test_unsupported_spaces_are_named():
    cases = [
        ({"obs_space": gym.spaces.Dict({"x": gym.spaces.Box(-1, 1, (2,))})}, "observation space Dict"),
        ({"obs_space": gym.spaces.Box(0, 255, (8, 8, 3), np.uint8)}, "observation space Box"),
        (
            {"act_space": gym.spaces.Tuple((gym.spaces.Discrete(2), gym.spaces.Discrete(3)))},
            "action space Tuple",
        ),
        ({"act_space": gym.spaces.MultiDiscrete([2, 3])}, "action space MultiDiscrete"),
    ]
    for kw, message in cases:
        with pytest.raises(TypeError, match=message):
            rl.VectorSampler(vec(**kw), 0)
    with pytest.raises(TypeError, match="RecordingEnv|SyncVectorEnv"):
        rl.VectorSampler(vec(obs_space=gym.spaces.Dict({"x": gym.spaces.Box(-1, 1, (2,))})), 0)


def test_sampler_refuses_a_policy_of_the_other_kind():
    sampler = rl.VectorSampler(vec(), 0)
    with pytest.raises(ValueError, match="continuous"):
        sampler.collect(nb.MLPCategoricalPolicy(2, 2, (4,)), torch.zeros(22), 4, torch.Generator())
    with pytest.raises(ValueError, match="act_dim"):
        sampler.collect(nb.MLPGaussianPolicy(2, 3, (4,)), torch.zeros(27), 4, torch.Generator())


def test_cli_trains_on_pendulum_and_saves_the_normalizer(tmp_path, capsys):
    out = tmp_path / "run"
    status = cli_main(
        [
            "train",
            "--env",
            "Pendulum-v1",
            "--steps",
            "1024",
            "--num-envs",
            "2",
            "--steps-per-env",
            "128",
            "--hidden",
            "8",
            "--out",
            str(out),
            "--eval-episodes",
            "1",
            "--no-progress",
        ]
    )
    assert status == 0
    saved = torch.load(out / "policy.pt", weights_only=False)
    assert saved["obs_normalizer"]["count"] >= 1024 and saved["theta"].numel() == (3 * 8 + 8) + (8 + 1) + 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["skipped_updates"] == 0 and summary["eval_mean_return"] < 0
    assert "Pendulum-v1" in capsys.readouterr().out
