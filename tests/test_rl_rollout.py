"""Rollouts: every counted step is a real environment step and no transition crosses an episode."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.wrappers import TimeLimit

import npgbook as nb
from npgbook.rl import VectorSampler, evaluate_policy, make_vector_env
from npgbook.rl.rollout import _logits_fn, _numpy_actor


class EpisodeClock(gym.Env):
    """Observation (episode number, time in episode); terminates after ``length`` steps, or never.

    Counts its own real ``step`` calls, so the test can compare with the sampler's count.
    """

    observation_space = gym.spaces.Box(-1e6, 1e6, shape=(2,), dtype=np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, length: int | None):
        self.length = length
        self.episode = -1
        self.t = 0
        self.real_steps = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.episode += 1
        self.t = 0
        return np.array([self.episode, 0], dtype=np.float32), {}

    def step(self, action):
        self.real_steps += 1
        self.t += 1
        reward = 100.0 * self.episode + self.t  # identifies the transition
        terminated = self.length is not None and self.t >= self.length
        return np.array([self.episode, self.t], dtype=np.float32), reward, terminated, False, {}


# (length to termination, time limit): episodes end at different times, by both causes
SPECS = [(2, None), (None, 3), (5, 7), (4, 4), (None, 1)]


def make_clock_vector():
    return gym.vector.SyncVectorEnv(
        [(lambda L=L, lim=lim: EpisodeClock(L) if lim is None else TimeLimit(EpisodeClock(L), lim)) for L, lim in SPECS]
    )


@pytest.mark.parametrize("steps_per_env", [1, 4, 11])
def test_no_transition_crosses_an_episode_and_every_counted_step_is_real(steps_per_env):
    env = make_clock_vector()
    sampler = VectorSampler(env, seed=0)
    policy = nb.MLPCategoricalPolicy(2, 2, (4,))
    theta = policy.initial_params(0)
    gen = torch.Generator().manual_seed(0)
    batches = [sampler.collect(policy, theta, steps_per_env, gen) for _ in range(30 // steps_per_env)]
    real = [e.unwrapped.real_steps for e in env.envs]
    assert sampler.total_steps == sum(real) == sum(b.n_steps for b in batches)
    returns = []
    for b in batches:
        obs, nxt = b.obs[:-1], b.obs[1:]
        valid, done = b.valid, b.terminated | b.truncated
        # a valid slot goes one tick forward within the same episode, with that tick's reward
        assert torch.equal(nxt[..., 0][valid], obs[..., 0][valid])
        assert torch.equal(nxt[..., 1][valid], obs[..., 1][valid] + 1)
        assert torch.equal(b.rewards[valid], (100 * nxt[..., 0] + nxt[..., 1])[valid])
        # an invalid slot is the autoreset call: it starts a new episode at time 0, reward 0
        assert torch.equal(nxt[..., 1][~valid], torch.zeros(int((~valid).sum())))
        assert torch.equal(b.rewards[~valid], torch.zeros(int((~valid).sum())))
        assert not (b.terminated | b.truncated)[~valid].any()
        # an invalid slot follows an episode end, and an episode end is followed by an invalid slot
        assert torch.equal(~valid[1:], done[:-1])
        returns += b.episode_returns
        assert b.episode_end_steps == sorted(b.episode_end_steps)
    for i, (length, limit) in enumerate(SPECS):
        ends = [x for x in (length, limit) if x is not None]
        assert min(ends) >= 1
    # terminated vs truncated are told apart: env 1 only truncates, env 0 only terminates
    all_b = {k: torch.cat([getattr(b, k) for b in batches]) for k in ("terminated", "truncated")}
    assert not all_b["truncated"][:, 0].any() and all_b["terminated"][:, 0].any()
    assert not all_b["terminated"][:, 1].any() and all_b["truncated"][:, 1].any()
    assert all(r > 0 for r in returns)


def test_cartpole_batches_replay_exactly_on_single_environments():
    """Replaying the recorded actions of each copy on its own gym.make env reproduces the batch."""
    seed, n = 3, 3
    sampler = VectorSampler(make_vector_env("CartPole-v1", n, "sync"), seed=seed)
    policy = nb.MLPCategoricalPolicy(4, 2, (8,), dtype=torch.float32)
    theta = policy.initial_params(0, last_layer_scale=1.0)
    gen = torch.Generator().manual_seed(1)
    batches = [sampler.collect(policy, theta, 60, gen) for _ in range(2)]
    obs = torch.cat([batches[0].obs[:-1], batches[1].obs])
    cat = {k: torch.cat([getattr(b, k) for b in batches]) for k in ("actions", "rewards", "terminated", "truncated", "valid")}
    assert cat["terminated"].any()  # several episodes ended inside the batch
    steps = 0
    for i in range(n):
        env = gym.make("CartPole-v1")
        o, _ = env.reset(seed=seed + i)
        for t in range(obs.shape[0] - 1):
            if not cat["valid"][t, i]:
                o, _ = env.reset()
                assert np.allclose(obs[t + 1, i].numpy(), o)
                continue
            assert np.allclose(obs[t, i].numpy(), o)
            o, r, term, trunc, _ = env.step(int(cat["actions"][t, i]))
            steps += 1
            assert np.allclose(obs[t + 1, i].numpy(), o)  # the final observation too
            assert (float(cat["rewards"][t, i]), bool(cat["terminated"][t, i]), bool(cat["truncated"][t, i])) == (
                r,
                term,
                trunc,
            )
    assert steps == sampler.total_steps


def test_fast_logits_match_the_policy():
    policy = nb.MLPCategoricalPolicy(4, 3, (7, 5), dtype=torch.float32)
    theta = policy.initial_params(2, last_layer_scale=1.0)
    obs = torch.randn(9, 4, dtype=torch.float32)
    assert torch.allclose(_logits_fn(policy, theta)(obs), policy.logits(theta, obs), atol=1e-6)
    cat = nb.CategoricalPolicy(3)
    with pytest.raises(ValueError, match="reads observations"):
        VectorSampler(make_vector_env("CartPole-v1", 1), 0).collect(cat, torch.zeros(3), 2, torch.Generator())


def test_sampled_action_frequencies_match_the_policy():
    """Inverse-CDF sampling: 8 envs x 2000 steps, frequencies within 4 standard errors."""
    sampler = VectorSampler(make_vector_env("CartPole-v1", 8, "sync"), seed=0)
    policy = nb.MLPCategoricalPolicy(4, 2, (), dtype=torch.float64)
    theta = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.8])  # state-independent logits
    b = sampler.collect(policy, theta, 2000, torch.Generator().manual_seed(0))
    p1 = float(torch.sigmoid(torch.tensor(0.8)))
    freq = float(b.actions.double().mean())
    assert abs(freq - p1) < 4 * (p1 * (1 - p1) / b.actions.numel()) ** 0.5


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_envs"):
        make_vector_env("CartPole-v1", 0)
    with pytest.raises(ValueError, match="vectorization_mode"):
        make_vector_env("CartPole-v1", 2, "threads")
    with pytest.raises(ValueError, match="env_id"):
        make_vector_env("NoSuchEnv-v0", 2)
    same_step = gym.make_vec("CartPole-v1", 2, vectorization_mode="sync", vector_kwargs={"autoreset_mode": "SameStep"})
    with pytest.raises(ValueError, match="NEXT_STEP"):
        VectorSampler(same_step, 0)
    with pytest.raises(TypeError, match="Blackjack-v1 has the observation space Tuple"):
        VectorSampler(gym.make_vec("Blackjack-v1", 2, vectorization_mode="sync"), 0)
    with pytest.raises(TypeError, match="VectorEnv"):
        VectorSampler(gym.make("CartPole-v1"), 0)
    sampler = VectorSampler(make_vector_env("CartPole-v1", 2), 0)
    with pytest.raises(ValueError, match="obs_dim"):
        sampler.collect(nb.MLPCategoricalPolicy(3, 2), torch.zeros(nb.MLPCategoricalPolicy(3, 2).n_params), 2, torch.Generator())
    policy = nb.MLPCategoricalPolicy(4, 2, (4,))
    with pytest.raises(ValueError, match="steps_per_env"):
        sampler.collect(policy, policy.initial_params(0), 0, torch.Generator())


def test_evaluate_policy():
    policy = nb.MLPCategoricalPolicy(4, 2, (8,), dtype=torch.float32)
    theta = policy.initial_params(0)
    returns = evaluate_policy(policy, theta, n_episodes=5, seed=1)
    assert returns.shape == (5,) and np.all((returns >= 1) & (returns <= 500))
    again = evaluate_policy(policy, theta, n_episodes=5, seed=1)
    assert np.array_equal(returns, again)
    sampled = evaluate_policy(policy, theta, n_episodes=5, seed=1, deterministic=False, generator=torch.Generator())
    assert sampled.shape == (5,)
    with pytest.raises(ValueError, match="generator"):
        evaluate_policy(policy, theta, n_episodes=2, deterministic=False)


def test_evaluate_actor_matches_single_environments():
    """A fixed actor (always push left) scores the same as on gym.make envs seeded seed + i."""
    from npgbook.rl import evaluate_actor

    returns = evaluate_actor(lambda obs: np.zeros(len(obs), dtype=np.int64), n_episodes=4, seed=7)
    expected = []
    for i in range(4):
        env = gym.make("CartPole-v1")
        env.reset(seed=7 + i)
        total, done = 0.0, False
        while not done:
            _, r, term, trunc, _ = env.step(0)
            total += r
            done = term or trunc
        expected.append(total)
    assert returns.tolist() == expected


def test_numpy_actor_is_inverse_cdf_sampling_of_the_policy():
    """The numpy actor picks the first action a with u < P(A <= a) under the policy's own probabilities."""
    policy = nb.MLPCategoricalPolicy(4, 3, (7, 5), dtype=torch.float64)
    theta = policy.initial_params(2, last_layer_scale=3.0)
    obs = np.random.default_rng(0).normal(size=(500, 4)).astype(np.float32)
    u = np.random.default_rng(1).uniform(size=(500, 1))
    probs = policy.distribution(theta, torch.from_numpy(obs).double()).probs.numpy()
    expected = (u >= probs.cumsum(axis=1)[:, :-1]).sum(axis=1)
    assert np.array_equal(_numpy_actor(policy, theta)(obs, u), expected)
    assert len(set(expected.tolist())) == 3


def _episodes_from_batches(batches, n_envs):
    """Episode returns and lengths recounted slot by slot, in the order the episodes ended."""
    ret, length, out = np.zeros(n_envs), np.zeros(n_envs, dtype=int), []
    for b in batches:
        for t in range(b.valid.shape[0]):
            for i in range(n_envs):
                if b.valid[t, i]:
                    ret[i] += float(b.rewards[t, i])
                    length[i] += 1
                    if b.terminated[t, i] or b.truncated[t, i]:
                        out.append((ret[i], int(length[i])))
                        ret[i], length[i] = 0.0, 0
    return out


def episodes_of(batches):
    """The (return, length) pairs the sampler reported, in order."""
    return [(r, n) for b in batches for r, n in zip(b.episode_returns, b.episode_lengths)]


@pytest.mark.parametrize("steps_per_env", [1, 3, 13])
def test_episode_returns_and_lengths_carry_across_batches(steps_per_env):
    """Episodes that span batches are counted once, whole; an EpisodeClock return is known in closed form."""
    sampler = VectorSampler(make_clock_vector(), seed=0)
    policy = nb.MLPCategoricalPolicy(2, 2, (4,))
    theta = policy.initial_params(0)
    gen = torch.Generator().manual_seed(0)
    batches = [sampler.collect(policy, theta, steps_per_env, gen) for _ in range(40 // steps_per_env)]
    assert episodes_of(batches) == _episodes_from_batches(batches, len(SPECS))
    for b in batches:  # reward 100 * episode + t summed over t = 1..n
        for r, n in zip(b.episode_returns, b.episode_lengths):
            assert (r - n * (n + 1) / 2) % (100 * n) == 0
    steps = [s for b in batches for s in b.episode_end_steps]
    assert steps == sorted(steps) and steps[-1] <= sampler.total_steps


def test_numpy_vectorized_cartpole_replays_on_single_environments():
    """With the default (vector_entry_point) CartPole, every episode replays on gym.make's CartPole
    started from the batch's first observation, with the same rewards, ends and time limit."""
    sampler = VectorSampler(make_vector_env("CartPole-v1", 4), seed=5)
    assert type(sampler.env).__name__ == "FastCartPoleVectorEnv"
    policy = nb.MLPCategoricalPolicy(4, 2, (8,), dtype=torch.float32)
    theta = policy.initial_params(0, last_layer_scale=1.0)
    gen = torch.Generator().manual_seed(1)
    batches = [sampler.collect(policy, theta, 150, gen) for _ in range(2)]
    obs = torch.cat([batches[0].obs[:-1], batches[1].obs]).double().numpy()
    cat = {k: torch.cat([getattr(b, k) for b in batches]) for k in ("actions", "rewards", "terminated", "truncated", "valid")}
    assert cat["terminated"].any() and not cat["valid"].all()
    env = gym.make("CartPole-v1", max_episode_steps=10_000)
    for i in range(4):
        start = True
        for t in range(obs.shape[0] - 1):
            if not cat["valid"][t, i]:
                start = True
                continue
            if start:
                env.reset()
                env.unwrapped.state = obs[t, i].copy()
                start = False
            o, r, term, _, _ = env.step(int(cat["actions"][t, i]))
            assert np.allclose(obs[t + 1, i], o, atol=1e-5)
            assert (float(cat["rewards"][t, i]), bool(cat["terminated"][t, i])) == (r, term)
    assert sampler.total_steps == int(cat["valid"].sum())
    assert episodes_of(batches) == _episodes_from_batches(batches, 4)


def test_vector_entry_point_truncates_at_the_time_limit():
    """Time-limit ends are truncations of exactly the limit's length; terminations are shorter or equal."""
    from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv

    sampler = VectorSampler(CartPoleVectorEnv(num_envs=3, max_episode_steps=15), seed=0)
    policy = nb.MLPCategoricalPolicy(4, 2, (8,))
    b = sampler.collect(policy, policy.initial_params(0), 200, torch.Generator().manual_seed(0))
    ends = b.terminated | b.truncated
    lengths = np.array(b.episode_lengths)
    truncated = b.truncated[ends].numpy()  # in the order the episodes ended (time, then copy)
    assert truncated.any() and (~truncated).any()
    assert np.all(lengths[truncated] == 15) and np.all(lengths <= 15)
    assert type(make_vector_env("CartPole-v1", 2)).__name__ == "FastCartPoleVectorEnv"
    assert type(make_vector_env("CartPole-v1", 2, "vector_entry_point")).__name__ == "CartPoleVectorEnv"
    acrobot = make_vector_env("Acrobot-v1", 2)  # no vector entry point: "auto" falls back to sync
    assert type(acrobot).__name__ == "SyncVectorEnv"
    assert acrobot.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP


@pytest.mark.parametrize("integrator", ["euler", "semi-implicit euler"])
def test_fast_cartpole_is_bitwise_gymnasiums_vector_cartpole(integrator):
    """Same seed, same actions: observations, rewards, flags and autoresets identical to the bit."""
    from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv

    from npgbook.rl.cartpole import FastCartPoleVectorEnv

    ref, fast = CartPoleVectorEnv(num_envs=6, max_episode_steps=40), FastCartPoleVectorEnv(num_envs=6, max_episode_steps=40)
    ref.kinematics_integrator = fast.kinematics_integrator = integrator
    o1, _ = ref.reset(seed=3)
    o2, _ = fast.reset(seed=3)
    assert np.array_equal(o1, o2)
    actions = np.random.default_rng(0).integers(0, 2, size=(400, 6))
    ends = 0
    for a in actions:
        out1, out2 = ref.step(a), fast.step(a)
        for u, v in zip(out1[:4], out2[:4]):
            assert u.dtype == v.dtype and np.array_equal(u, v)
        ends += int((out1[2] | out1[3]).sum())
    assert ends > 20
